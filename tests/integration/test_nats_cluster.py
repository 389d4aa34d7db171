"""The NATS sink against a three-node JetStream cluster on loopback
(nats_fixture.NatsCluster), and the duplicate window.

- The agent creates the stream with --nats-replicas 3 and
  --nats-duplicate-window; the stream's leader is SIGKILLed in the middle of
  the stream and started again: every object version is stored once, none
  missing (what was in flight is published again with the same id).
- The duplicate window is the longest outage ridden out without
  duplicates: an agent that comes back with its cursor before events the
  stream already has (a crash before the PubAcks reached it) publishes them
  again with the same ids; within the window JetStream drops every copy,
  after it each one is stored a second time.

The events come from the k8s fixture API server (stable ids
k8s-<resource>-<uid>-<resourceVersion>)."""
import json
import os
import shutil
import time
import unittest

import k8s_fixture
from nats_fixture import NATS_SERVER, NatsCluster, NatsServer
from tapiotest import Tapio, free_port, need_cmd, skip_or_fail, tmpdir

STREAM = "TAPIO_CLUSTER"


def clean_env():
    env = {k: v for k, v in os.environ.items()
           if not k.startswith("TAPIO_") or k in ("TAPIO_BIN", "TAPIO_ROOT")}
    for k in ("NODE_NAME", "KUBECONFIG", "KUBERNETES_SERVICE_HOST"):
        env.pop(k, None)
    return env


class ClusterTest(unittest.TestCase):
    def setUp(self):
        need_cmd(self, "openssl")
        if not os.access(NATS_SERVER, os.X_OK):
            skip_or_fail(self, "nats-server is not installed (make deps installs it)")
        self.dir = tmpdir(self, "tapio-nats-cluster-")
        self.state = os.path.join(self.dir, "state")
        self.fx = k8s_fixture.Fixture(self.dir).start()
        self.addCleanup(self.fx.stop)
        self.kc = self.fx.kubeconfig(os.path.join(self.dir, "kubeconfig"), token="tok-1")
        self.agents = []
        self.addCleanup(lambda: [a.stop() for a in self.agents])

    def agent(self, url, *extra):
        t = Tapio("agent", "--collectors", "k8s", "--k8s-kubeconfig", self.kc,
                  "--k8s-resources", "configmaps", "--state-dir", self.state,
                  "--output", url, "--nats-stream", STREAM, "--nats-ack-wait-ms", "2000",
                  "--metrics-addr=", "--node-name", "node-n", *extra, env=clean_env())
        self.agents.append(t)
        return t

    def wait_listed(self, t):
        rv = os.path.join(self.state, "k8s-configmaps.rv")
        deadline = time.time() + 30
        while not os.path.exists(rv):
            if time.time() > deadline or t.proc.poll() is not None:
                self.fail("the agent did not list:\n" + "\n".join(t.stderr_lines))
            time.sleep(0.05)

    @staticmethod
    def read(reader):
        try:
            info, msgs = reader.read_all(STREAM)
        finally:
            reader.close()
        return info, [(json.loads(m["data"])["meta"]["uid"],
                       json.loads(m["data"])["meta"]["resource_version"]) for m in msgs]

    def wanted(self):
        with self.fx.store.cv:
            return {(uid, rv) for res, uid, _, rv in self.fx.store.produced if res == "configmaps"}

    def wait_all(self, read, want, timeout=60):
        deadline = time.time() + timeout
        while True:
            try:
                info, got = read()
            except (OSError, RuntimeError, KeyError):
                info, got = None, []
            if want <= set(got) or time.time() > deadline:
                return info, got
            time.sleep(0.5)

    def test_leader_killed_mid_stream_nothing_missing_nothing_twice(self):
        cl = NatsCluster(free_port)
        self.addCleanup(cl.close)
        cl.start()
        t = self.agent(cl.url, "--nats-replicas", "3", "--nats-duplicate-window", "90")
        self.wait_listed(t)
        st = self.fx.store
        uids = [st.create("configmaps", f"c{i}")["metadata"]["uid"] for i in range(10)]
        leader = None
        for i in range(600):
            st.update("configmaps", uids[i % 10])
            if i == 200:
                r = cl.reader()
                try:
                    info = r.stream_info(STREAM)
                finally:
                    r.close()
                self.assertEqual(info["config"]["num_replicas"], 3)
                self.assertEqual(info["config"]["duplicate_window"], 90 * 10**9)
                leader = info["cluster"]["leader"]
                cl.nodes[leader].kill()
            if i == 400:
                cl.nodes[leader].start()
            time.sleep(0.005)
        want = self.wanted()
        self.assertEqual(len(want), 610)
        _, got = self.wait_all(lambda: self.read(cl.reader()), want)
        self.assertEqual(t.stop(), 0, "\n".join(t.stderr_lines[-20:]))
        self.agents.remove(t)
        print("\n".join(l for l in t.stderr_lines if "k8s:" not in l)[-3000:])
        # The leader change used up no message's attempts (publishes that fail
        # at once while the stream has no leader wait with backoff).
        c = t.summary()["sink"]["counters"]
        print(f"\nnats cluster: republished {c['republished']}, lost {c['lost']}", flush=True)
        self.assertEqual(c["lost"], 0, "events lost in the leader change")
        # Every node has the whole stream once the restarted one caught up.
        for name, node in cl.nodes.items():
            from nats_fixture import JsReader
            _, got = self.wait_all(lambda: self.read(JsReader(node.port)), want, 30)
            missing = want - set(got)
            twice = {v for v in got if got.count(v) > 1}
            print(f"\nnats cluster ({name}{', the killed leader' if name == leader else ''}): "
                  f"{len(want)} versions, {len(got)} stored, {len(missing)} missing, "
                  f"{len(twice)} stored twice", flush=True)
            self.assertEqual(sorted(missing), [], name)
            self.assertEqual(sorted(twice), [], name)

    def test_duplicate_window_is_the_longest_outage_without_duplicates(self):
        window = 4
        srv = NatsServer(free_port())
        self.addCleanup(srv.close)
        srv.start()
        t = self.agent(srv.url, "--nats-duplicate-window", str(window))
        self.wait_listed(t)
        self.assertEqual(t.stop(), 0)
        self.agents.remove(t)
        before = os.path.join(self.dir, "state-before")
        shutil.copytree(self.state, before)  # the cursor before the events below
        t = self.agent(srv.url, "--nats-duplicate-window", str(window))
        for i in range(20):
            self.fx.store.create("configmaps", f"w{i}")
        want = self.wanted()
        from nats_fixture import JsReader
        info, got = self.wait_all(lambda: self.read(JsReader(srv.port)), want)
        stored_at = time.time()
        self.assertEqual(info["config"]["duplicate_window"], window * 10**9)
        self.assertEqual(t.stop(), 0)
        self.agents.remove(t)
        self.assertEqual(len(got), 20)

        def come_back_after(outage):
            # As after a crash before the PubAcks: the cursor is behind what
            # the stream has, and the agent reads those events again.
            time.sleep(max(0, stored_at + outage - time.time()))
            shutil.rmtree(self.state)
            shutil.copytree(before, self.state)
            # a Lease of its own, with no cursor: the restored file is the cursor
            t = self.agent(srv.url, "--nats-duplicate-window", str(window),
                           "--k8s-lease-name", f"tapio-back-{int(outage * 1000)}")
            # The re-read is published and acknowledged: the cursor is past it.
            last = max(int(rv) for _, rv in want)
            rvfile = os.path.join(self.state, "k8s-configmaps.rv")
            deadline = time.time() + 20
            while time.time() < deadline:
                with open(rvfile) as f:
                    v = f.read().strip()
                if v.isdigit() and int(v) >= last:
                    break
                time.sleep(0.2)
            self.assertEqual(t.stop(), 0)
            self.agents.remove(t)
            _, got = self.read(JsReader(srv.port))
            return got

        got = come_back_after(window / 4)
        twice = {v for v in got if got.count(v) > 1}
        print(f"\nduplicate window {window} s: back after {window / 4:.0f} s: "
              f"{len(got)} stored, {len(twice)} twice", flush=True)
        self.assertEqual(len(got), 20)
        got = come_back_after(window * 3)
        twice = {v for v in got if got.count(v) > 1}
        print(f"duplicate window {window} s: back after {window * 3} s: "
              f"{len(got)} stored, {len(twice)} twice", flush=True)
        self.assertEqual(len(twice), 20, "past the window every re-read copy is stored again")
        self.assertEqual(set(got), want)


if __name__ == "__main__":
    unittest.main()
