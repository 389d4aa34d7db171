"""Nothing lost across a crash, for the k8s source: the fixture API server
(tests/integration/k8s_fixture.py), a real `nats-server -js`, and the agent
SIGKILLed at random points while pods and configmaps change, once while
NATS is down and the agent's small queue is full of what JetStream never
acknowledged. The stored resourceVersions and the saved seen maps move only
on the PubAck, and every event has a stable Nats-Msg-Id
(k8s-<resource>-<uid>-<resourceVersion>), so the stream holds every object
version exactly once, none missing. A stored resourceVersion that is empty
or that the server refuses (400) is reported by name and relists."""
import json
import os
import random
import threading
import time
import unittest

from crashtest import CrashTest

import k8s_fixture
from nats_fixture import NATS_SERVER, JsReader, NatsServer
from tapiotest import Tapio, clean_env, free_port, need_cmd, skip_or_fail, tmpdir

STREAM = "TAPIO_CRASH_K8S"
KILLS = 10
RESOURCES = ("pods", "configmaps")


def create(store, res, name):
    if res == "pods":  # on this node: pods are watched with spec.nodeName=node-k
        return store.create(res, name, spec={"nodeName": "node-k"})
    return store.create(res, name)


class Writer(threading.Thread):
    """Creates, updates and deletes pods and configmaps at a steady pace."""

    def __init__(self, store, n, pause, seed):
        super().__init__(daemon=True)
        self.store, self.n, self.pause = store, n, pause
        self.rnd = random.Random(seed)
        self.live = {r: [] for r in RESOURCES}
        self.error = None

    def run(self):
        try:
            for i in range(self.n):
                res = RESOURCES[i % 2]
                live = self.live[res]
                op = self.rnd.random()
                if len(live) < 5 or (op < 0.3 and len(live) < 40):
                    live.append(create(self.store, res, f"c{i}")["metadata"]["uid"])
                elif op < 0.85:
                    self.store.update(res, self.rnd.choice(live))
                else:
                    uid = live.pop(self.rnd.randrange(len(live)))
                    self.store.delete(res, uid)
                time.sleep(self.pause)
        except Exception as e:  # reported by the test
            self.error = e


class K8sCrashTest(CrashTest, unittest.TestCase):
    STREAM = STREAM

    def setUp(self):
        need_cmd(self, "openssl")
        if not os.access(NATS_SERVER, os.X_OK):
            skip_or_fail(self, "nats-server is not installed (make deps installs it)")
        self.dir = tmpdir(self, "tapio-crash-k8s-")
        self.state = os.path.join(self.dir, "state")
        self.fx = k8s_fixture.Fixture(self.dir).start()
        self.addCleanup(self.fx.stop)
        self.kc = self.fx.kubeconfig(os.path.join(self.dir, "kubeconfig"), token="tok-1")
        self.agents = []
        self.addCleanup(lambda: [a.stop() for a in self.agents])

    def rvfile(self, res):
        return os.path.join(self.state, f"k8s-{res}.rv")

    def agent(self, output, *extra):
        t = Tapio("agent", "--collectors", "k8s", "--k8s-kubeconfig", self.kc,
                  "--k8s-resources", ",".join(RESOURCES), "--state-dir", self.state,
                  "--output", output, "--nats-stream", STREAM, "--queue-size", "64K",
                  "--nats-ack-wait-ms", "1000", "--node-name", "node-k", *extra,
                  env=clean_env())
        self.agents.append(t)
        return t

    def wait_started(self, t):
        deadline = time.time() + 15
        while not all(os.path.exists(self.rvfile(r)) for r in RESOURCES):
            if time.time() > deadline or t.proc.poll() is not None:
                self.fail("the agent did not list:\n" + "\n".join(t.stderr_lines))
            time.sleep(0.05)

    @staticmethod
    def version(m):
        meta = json.loads(m["data"])["meta"]
        return (meta["resource"], meta["uid"], meta["resource_version"])

    def test_sigkills_with_nats_lose_nothing_and_store_nothing_twice(self):
        srv = NatsServer(free_port())
        self.addCleanup(srv.close)
        srv.start()
        t = self.agent(srv.url)
        self.wait_started(t)  # listed (empty) before anything changes
        w = Writer(self.fx.store, 900, 0.004, 12)
        w.start()
        rnd = random.Random(12)
        for k in range(KILLS):
            time.sleep(rnd.uniform(0.1, 0.5))
            if k == 4:
                # NATS down: the queue fills with what JetStream never
                # acknowledged; then the agent dies too.
                srv.kill()
                time.sleep(1.5)
                self.kill(t)
                srv.start()
            else:
                self.kill(t)
            t = self.agent(srv.url)
        w.join(60)
        self.assertIsNone(w.error)
        with self.fx.store.cv:
            produced = list(self.fx.store.produced)
        want = {(res, uid, rv) for res, uid, _, rv in produced}
        self.assertEqual(len(want), 900)
        deadline = time.time() + 60
        while True:
            got = {self.version(m) for m in self.stored(srv)}
            if want <= got or time.time() > deadline:
                break
            time.sleep(0.5)
        rc = t.stop()
        self.assertEqual(rc, 0, "\n".join(t.stderr_lines[-20:]))
        self.agents.remove(t)
        msgs = self.stored(srv)
        vers = [self.version(m) for m in msgs]
        missing = sorted(want - set(vers))
        counts = {}
        for v in vers:
            counts[v] = counts.get(v, 0) + 1
        twice = sorted(v for v, n in counts.items() if n > 1)
        print(f"\nk8s crash: {KILLS} SIGKILLs, {len(want)} object versions made, "
              f"{len(msgs)} stored, {len(missing)} missing, {len(twice)} stored twice",
              flush=True)
        self.assertEqual(missing, [], "versions missing from the stream")
        self.assertEqual(twice, [], "versions stored twice")
        self.assertEqual(set(vers) - want, set(), "versions never made")
        for m in msgs:
            ev = json.loads(m["data"])
            meta = ev["meta"]
            self.assertEqual(m["headers"]["Nats-Msg-Id"], meta["id"])
            self.assertEqual(meta["id"], "k8s-%s-%s-%s" % (meta["resource"], meta["uid"],
                                                           meta["resource_version"]))
        # No stored cursor is past what JetStream has.
        for res in RESOURCES:
            with open(self.rvfile(res)) as f:
                rv = int(f.read())
            self.assertLessEqual(rv, max(int(v[2]) for v in vers))

    @staticmethod
    def file_versions(path):
        """(versions in the file's whole lines, lines that are not whole JSON)"""
        with open(path, "rb") as f:
            data = f.read()
        got, torn = [], 0
        for line in data.split(b"\n"):
            if not line:
                continue
            try:
                meta = json.loads(line)["meta"]
            except ValueError:
                torn += 1  # cut by a kill: ended on the next start
                continue
            got.append((meta["resource"], meta["uid"], meta["resource_version"]))
        return got, torn

    def saved_rvs(self):
        out = {}
        for res in RESOURCES:
            with open(self.rvfile(res)) as f:
                out[res] = int(f.read())
        return out

    def test_sigkills_with_a_file_sink_keep_every_event_whose_cursor_was_saved(self):
        out = os.path.join(self.dir, "events.jsonl")
        t = self.agent("file:" + out)
        self.wait_started(t)
        w = Writer(self.fx.store, 600, 0.004, 7)
        w.start()
        rnd = random.Random(7)
        for _ in range(KILLS):
            time.sleep(rnd.uniform(0.1, 0.4))
            before = self.saved_rvs()
            self.kill(t)
            saved = self.saved_rvs()
            with self.fx.store.cv:
                produced = list(self.fx.store.produced)
            have, _ = self.file_versions(out)
            have = set(have)
            for res in RESOURCES:
                self.assertGreaterEqual(saved[res], before[res])
                # Every version up to the saved cursor is in the file.
                owed = {(r, u, rv) for r, u, _, rv in produced if r == res and int(rv) <= saved[res]}
                self.assertEqual(sorted(owed - have)[:10], [],
                                 f"{res}: cursor {saved[res]} saved, versions missing from the file")
            t = self.agent("file:" + out)
        w.join(60)
        self.assertIsNone(w.error)
        with self.fx.store.cv:
            produced = list(self.fx.store.produced)
        want = {(res, uid, rv) for res, uid, _, rv in produced}
        self.assertEqual(len(want), 600)
        deadline = time.time() + 30
        while time.time() < deadline and not want <= set(self.file_versions(out)[0]):
            time.sleep(0.3)
        self.assertEqual(t.stop(), 0, "\n".join(t.stderr_lines[-20:]))
        self.agents.remove(t)
        got, torn = self.file_versions(out)
        missing = sorted(want - set(got))
        twice = len(got) - len(set(got))
        print(f"\nk8s file crash: {KILLS} SIGKILLs, {len(want)} object versions made, "
              f"{len(got)} lines, {len(missing)} missing, {twice} written twice (re-read "
              f"after a kill: at-least-once), {torn} torn lines", flush=True)
        self.assertEqual(missing, [], "versions missing from the file")
        self.assertEqual(set(got) - want, set(), "versions never made")
        with open(out, "rb") as f:
            self.assertTrue(f.read().endswith(b"\n"))

    def test_unreadable_or_refused_resource_version_relists(self):
        t = self.agent("stdout")
        self.wait_started(t)
        self.assertEqual(t.stop(), 0)
        self.agents.remove(t)
        # A crash between create and write (empty), and a version the API
        # server cannot read (it answers 400).
        with open(self.rvfile("configmaps"), "w"):
            pass
        with open(self.rvfile("pods"), "w") as f:
            f.write("garbage\n")
        pod = create(self.fx.store, "pods", "after")
        cm = create(self.fx.store, "configmaps", "after")
        # a Lease of its own: the cluster resources' cursor is then this
        # node's file, not the one the last holder left on the Lease
        t = self.agent("stdout", "--k8s-lease-name", "tapio-relist")
        for obj, res in ((pod, "pods"), (cm, "configmaps")):
            ev = t.wait_for(lambda e: e.get("source") == "k8s" and
                            e["meta"]["uid"] == obj["metadata"]["uid"], 15)
            self.assertIsNotNone(ev, f"no {res} event after the relist:\n" +
                                 "\n".join(t.stderr_lines[-20:]))
            self.assertEqual(ev["meta"]["origin"], "list")
        self.assertIsNotNone(t.wait_stderr("k8s-configmaps.rv is empty or cut short", 5),
                             "\n".join(t.stderr_lines))
        self.assertIsNotNone(t.wait_stderr("refused resourceVersion 'garbage'", 5),
                             "\n".join(t.stderr_lines))
        # The refused version was asked for once, then a relist: no retry loop.
        time.sleep(1)
        bad = [r for r in self.fx.watch_requests("pods")
               if r["query"].get("resourceVersion") == "garbage"]
        self.assertEqual(len(bad), 1)
        # the first start, the pod-cache LIST of a restart that resumes its
        # cursor, then the relist after the 400
        self.assertEqual(len(self.fx.list_requests("pods")), 3)
        for res in RESOURCES:  # the list's version is stored again once the sink has it
            deadline = time.time() + 10
            while time.time() < deadline:
                with open(self.rvfile(res)) as f:
                    v = f.read().strip()
                if v.isdigit():
                    break
                time.sleep(0.1)
            self.assertTrue(v.isdigit(), f"{res}: {v!r}")
        self.assertEqual(t.stop(), 0)
        self.agents.remove(t)


if __name__ == "__main__":
    unittest.main()
