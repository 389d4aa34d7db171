"""Nothing lost across a crash, for the etcd source: a real etcd, a real
`nats-server -js`, and the agent SIGKILLed at random points while keys are
written, once while NATS is down and the agent's small queue is full of
what JetStream never acknowledged. The stored cursor moves only on the
PubAck and every event has a stable Nats-Msg-Id (cluster, revision, key),
so the stream holds every revision exactly once, none missing. A file sink
under SIGKILL holds every event whose cursor was saved, in whole lines."""
import json
import os
import random
import threading
import time
import unittest

from crashtest import CrashTest

from tapiotest import Tapio, clean_env, need_cmd, need_root, skip_or_fail, tmpdir
from etcd_fixture import Etcd
from nats_fixture import NATS_SERVER, JsReader, NatsServer
from tapiotest import free_port

STREAM = "TAPIO_CRASH"
KILLS = 10


class Writer(threading.Thread):
    """Puts n keys, one revision each, at a steady pace; records revisions."""

    def __init__(self, etcd, n, pause):
        super().__init__(daemon=True)
        self.etcd, self.n, self.pause = etcd, n, pause
        self.revs = []
        self.error = None

    def run(self):
        try:
            for i in range(self.n):
                self.revs.append(self.etcd.put(f"/registry/crash/k{i % 97}", f"v{i}"))
                time.sleep(self.pause)
        except Exception as e:  # reported by the test
            self.error = e


class EtcdCrashTest(CrashTest, unittest.TestCase):
    STREAM = STREAM

    def setUp(self):
        need_root(self)
        need_cmd(self, "etcd")
        if not os.access(NATS_SERVER, os.X_OK):
            skip_or_fail(self, "nats-server is not installed (make deps installs it)")
        self.dir = tmpdir(self, "tapio-crash-")
        self.state = os.path.join(self.dir, "state")
        self.revfile = os.path.join(self.state, "etcd.revision")
        self.etcd = Etcd(self.dir).start()
        self.addCleanup(self.etcd.stop)
        self.agents = []
        self.addCleanup(lambda: [a.stop() for a in self.agents])

    def agent(self, output):
        t = Tapio("agent", "--collectors", "etcd", "--etcd-endpoints", self.etcd.url,
                  "--etcd-prefix", "/registry/crash/", "--state-dir", self.state,
                  "--output", output, "--nats-stream", STREAM, "--queue-size", "64K",
                  "--nats-ack-wait-ms", "1000", "--node-name", "node-c", env=clean_env())
        self.agents.append(t)
        return t

    def wait_started(self, t):
        deadline = time.time() + 15
        while not os.path.exists(self.revfile):
            if time.time() > deadline or t.proc.poll() is not None:
                self.fail("the agent did not start watching:\n" + "\n".join(t.stderr_lines))
            time.sleep(0.05)

    def test_sigkills_with_nats_lose_nothing_and_store_nothing_twice(self):
        srv = NatsServer(free_port())
        self.addCleanup(srv.close)
        srv.start()
        t = self.agent(srv.url)
        self.wait_started(t)
        w = Writer(self.etcd, 900, 0.004)
        w.start()
        rnd = random.Random(12)
        for k in range(KILLS):
            time.sleep(rnd.uniform(0.1, 0.5))
            if k == 4:
                # NATS down: the agent's queue fills with what JetStream
                # never acknowledged; then the agent dies too.
                srv.kill()
                time.sleep(1.5)
                self.kill(t)
                srv.start()
            else:
                self.kill(t)
            t = self.agent(srv.url)
        w.join(60)
        self.assertIsNone(w.error)
        want = set(w.revs)
        self.assertEqual(len(want), 900)
        deadline = time.time() + 60
        while True:
            msgs = self.stored(srv)
            got = [int(json.loads(m["data"])["meta"]["revision"]) for m in msgs]
            if want <= set(got) or time.time() > deadline:
                break
            time.sleep(0.5)
        rc = t.stop()
        self.assertEqual(rc, 0, "\n".join(t.stderr_lines[-20:]))
        self.agents.remove(t)
        msgs = self.stored(srv)
        revs = [int(json.loads(m["data"])["meta"]["revision"]) for m in msgs]
        missing = sorted(want - set(revs))
        twice = sorted({r for r in revs if revs.count(r) > 1})
        print(f"\netcd crash: {KILLS} SIGKILLs, {len(want)} revisions written, "
              f"{len(msgs)} stored, {len(missing)} missing, {len(twice)} stored twice",
              flush=True)
        self.assertEqual(missing, [], "revisions missing from the stream")
        self.assertEqual(twice, [], "revisions stored twice")
        for m in msgs:
            ev = json.loads(m["data"])
            self.assertEqual(m["headers"]["Nats-Msg-Id"], ev["meta"]["id"])
            self.assertRegex(ev["meta"]["id"], r"^etcd-[0-9a-f]{16}-%d-[0-9a-f]{16}$"
                             % int(ev["meta"]["revision"]))
        # The stored cursor is never past what JetStream has.
        with open(self.revfile) as f:
            self.assertLessEqual(int(f.read()), max(revs))

    def test_sigkills_with_a_file_sink_keep_every_acknowledged_event(self):
        out = os.path.join(self.dir, "events.jsonl")
        t = self.agent("file:" + out)
        self.wait_started(t)
        w = Writer(self.etcd, 600, 0.003)
        w.start()
        rnd = random.Random(7)
        for _ in range(KILLS):
            time.sleep(rnd.uniform(0.1, 0.4))
            with open(self.revfile) as f:
                saved_before_kill = int(f.read())
            self.kill(t)
            with open(self.revfile) as f:
                saved = int(f.read())
            self.assertGreaterEqual(saved, saved_before_kill)
            # Every event whose cursor was saved is in the file.
            with open(out, "rb") as f:
                data = f.read()
            have = set()
            for line in data.split(b"\n"):
                try:
                    have.add(int(json.loads(line)["meta"]["revision"]))
                except ValueError:
                    pass  # a line cut by the kill: ended on the next start
            self.assertTrue({r for r in w.revs if r <= saved} <= have,
                            f"saved {saved}, missing "
                            f"{sorted({r for r in w.revs if r <= saved} - have)[:10]}")
            t = self.agent("file:" + out)
        w.join(60)
        self.assertIsNone(w.error)
        want = set(w.revs)
        deadline = time.time() + 30
        while time.time() < deadline:
            with open(out, "rb") as f:
                lines = f.read().split(b"\n")
            got = set()
            for line in lines:
                try:
                    got.add(int(json.loads(line)["meta"]["revision"]))
                except ValueError:
                    pass
            if want <= got:
                break
            time.sleep(0.3)
        self.assertEqual(t.stop(), 0)
        self.agents.remove(t)
        with open(out, "rb") as f:
            data = f.read()
        self.assertTrue(data.endswith(b"\n"))
        lines = [l for l in data.split(b"\n") if l]
        bad = [l for l in lines if not l.startswith(b"{") or not l.endswith(b"}")]
        revs = set()
        for l in lines:
            try:
                revs.add(int(json.loads(l)["meta"]["revision"]))
            except ValueError:
                pass
        print(f"\netcd file crash: {KILLS} SIGKILLs, {len(want)} revisions, "
              f"{len(want - revs)} missing, {len(bad)} torn lines (each ended, never "
              f"appended to)", flush=True)
        self.assertEqual(sorted(want - revs), [])
        for l in bad:  # a torn line stands alone: the next record starts a new line
            self.assertNotIn(b"}{", l)


if __name__ == "__main__":
    unittest.main()
