"""CNI result, netns and IPAM events across a crash, into a real
`nats-server -js`: their saved state (cni-dirs) moves only when JetStream
has acknowledged them, so a SIGKILL while NATS is down reports them again at
the next start; and their ids are derived from the entry (inode, mtime, size,
path), so an event read again after a crash has the id it had and JetStream
stores it once."""
import json
import os
import shutil
import time
import unittest
import uuid

from crashtest import CrashTest, tally

import cni_fixture as C
import tapiotest
from nats_fixture import NATS_SERVER, NatsServer
from tapiotest import Tapio, clean_env, free_port, need_root, skip_or_fail

STREAM = "TAPIO_CRASH_CNI_DIRS"


def key(ev):
    """(type, operation, file) of a directory event, or None for a log line."""
    if ev.get("type") in ("cni.result", "cni.ipam", "cni.netns"):
        return (ev["type"], ev["meta"]["operation"], ev["meta"]["file"])
    return None


class CniDirsCrashTest(CrashTest, unittest.TestCase):
    STREAM = STREAM

    def setUp(self):
        need_root(self)
        tapiotest.need_cmd(self, "ip")
        tapiotest.need_cmd(self, "unshare")
        if not os.access(NATS_SERVER, os.X_OK):
            skip_or_fail(self, "nats-server is not installed (make deps installs it)")
        self.tree = C.Tree(self)
        self.net = os.path.join(self.tree.networks, "podnet")
        os.makedirs(self.net)
        self.dirs_file = os.path.join(self.tree.state, "cni-dirs")
        self.agents = []
        self.addCleanup(lambda: [a.stop() for a in self.agents])
        self.srv = NatsServer(free_port())
        self.addCleanup(self.srv.close)
        self.srv.start()
        self.sh = C.NetnsShell(self.tree.netns)
        self.addCleanup(self.sh.close)
        self.ns = []
        self.addCleanup(lambda: [self.sh.run(f"ip netns del {n}") for n in self.ns])

    def agent(self, nats=True):
        if nats:
            t = self.tree.nats_agent(self, self.srv.url, STREAM, "node-d")
            self.agents.append(t)
            return t
        t = Tapio(*self.tree.args(), "--node-name", "node-d", env=clean_env())
        self.agents.append(t)
        if not t.wait_stderr("cni: following", 10):
            self.fail("the cni collector did not start: " + "\n".join(t.stderr_lines))
        return t

    def stored_dir_events(self):
        msgs = self.stored(self.srv)
        return [(key(json.loads(m["data"])), m["headers"]["Nats-Msg-Id"]) for m in msgs
                if key(json.loads(m["data"]))]

    def wait_stored(self, want, timeout=20):
        deadline = time.time() + timeout
        while time.time() < deadline:
            if want <= {k for k, _ in self.stored_dir_events()}:
                break
            time.sleep(0.2)
        time.sleep(1)  # anything stored twice arrives by now
        return self.stored_dir_events()

    def add_netns(self):
        name = "tapio-d-" + uuid.uuid4().hex[:8]
        self.assertEqual(self.sh.run(f"ip netns add {name}"), 0)
        self.ns.append(name)
        return os.path.join(self.tree.netns, name)

    def del_netns(self, path):
        name = os.path.basename(path)
        self.assertEqual(self.sh.run(f"ip netns del {name}"), 0)
        self.ns.remove(name)

    def result(self, cid):
        obj = C.libcni_cache("podnet", cid, "eth0", "pod-" + cid, "ns1", "/var/run/netns/x",
                             ["bridge"])
        path, _ = C.write_result(self.tree.results, "podnet", cid, "eth0", obj)
        return path

    def test_unacknowledged_changes_are_reported_again_with_the_same_ids(self):
        t = self.agent()  # the first start records what is there silently
        # 1. NATS down: the events wait in the agent's queue, unacknowledged
        self.srv.kill()
        want = set()
        for cid in ("aa01", "aa02", "aa03"):
            want.add(("cni.result", "ADD", self.result(cid)))
        for i in range(2, 5):
            want.add(("cni.ipam", "ADD", C.reserve_ip(self.net, f"10.30.0.{i}", f"aa0{i}", "eth0")))
        for _ in range(2):
            want.add(("cni.netns", "ADD", self.add_netns()))
        time.sleep(2.5)  # saves happen meanwhile: none may hold these entries
        with open(self.dirs_file) as f:
            saved = f.read()
        for _, _, path in want:
            self.assertNotIn(path, saved, "saved before JetStream acknowledged it")
        self.kill(t)
        self.srv.start()
        t = self.agent()
        got = self.wait_stored(want)
        missing, twice = tally(want, [k for k, _ in got])
        print(f"\ncni dirs, SIGKILL while NATS was down: {len(want)} changes, {len(got)} stored, "
              f"{len(missing)} missing, {len(twice)} stored twice", flush=True)
        self.assertEqual((missing, twice), ([], []))
        deadline = time.time() + 5
        while time.time() < deadline:
            with open(self.dirs_file) as f:
                saved = f.read()
            if all(p in saved for _, _, p in want):
                break
            time.sleep(0.2)
        for _, _, path in want:
            self.assertIn(path, saved, "acknowledged but not saved")
        first_ids = dict(got)

        # 2. delivered, then a crash before the state was saved: the state
        # file of before (as a SIGKILL leaves it), read again at the start
        shutil.copyfile(self.dirs_file, self.dirs_file + ".before")
        more = set()
        more.add(("cni.result", "ADD", self.result("bb01")))
        gone_result = sorted(p for k, o, p in want if k == "cni.result")[0]
        os.unlink(gone_result)
        more.add(("cni.result", "DEL", gone_result))
        gone_ip = os.path.join(self.net, "10.30.0.2")
        os.unlink(gone_ip)
        more.add(("cni.ipam", "DEL", gone_ip))
        gone_ns = sorted(p for k, o, p in want if k == "cni.netns")[0]
        self.del_netns(gone_ns)
        more.add(("cni.netns", "DEL", gone_ns))
        more.add(("cni.netns", "ADD", self.add_netns()))
        got = self.wait_stored(want | more)
        self.kill(t)
        os.replace(self.dirs_file + ".before", self.dirs_file)
        shutil.copyfile(self.dirs_file, self.dirs_file + ".before")
        ids = dict(got)
        # read again (into stdout): the same ids
        t = self.agent(nats=False)
        again = C.wait_count(t, key, len(more))
        C.settle(t)
        again = [e for e in t.events if key(e)]
        self.assertEqual(sorted(key(e) for e in again), sorted(more))
        for e in again:
            self.assertEqual(e["meta"]["id"], ids[key(e)], key(e))
        self.kill(t)
        # and into JetStream: stored once
        os.replace(self.dirs_file + ".before", self.dirs_file)
        t = self.agent()
        time.sleep(2)
        self.assertEqual(t.stop(), 0)
        self.agents.remove(t)
        self.assertGreaterEqual(t.summary()["cni"]["events"], len(more), t.summary())
        got = self.stored_dir_events()
        missing, twice = tally(want | more, [k for k, _ in got])
        print(f"cni dirs, read again after a crash: {len(want | more)} changes, {len(got)} stored, "
              f"{len(missing)} missing, {len(twice)} stored twice", flush=True)
        self.assertEqual((missing, twice), ([], []))
        for k, i in got:
            if k in first_ids:
                self.assertEqual(i, first_ids[k])


if __name__ == "__main__":
    unittest.main()
