"""Nothing lost across a crash, for CNI log lines: a CNI log file appended
to while the agent follows it into a real `nats-server -js`, the agent
SIGKILLed at random points, once while NATS is down and the agent's small
queue is full of what JetStream never acknowledged, and while it is down once
rotated by copytruncate and once by rename. The saved offsets move
only on the PubAck and every line's Nats-Msg-Id is cni-<dev>-<ino>-<offset>-<hash>,
so the stream holds every line exactly once, none missing."""
import json
import os
import random
import shutil
import threading
import time
import unittest

from crashtest import CrashTest, tally

import cni_fixture as C
from nats_fixture import NATS_SERVER, JsReader, NatsServer
from tapiotest import Tapio, clean_env, free_port, need_root, skip_or_fail

STREAM = "TAPIO_CRASH_CNI"
KILLS = 10
TOTAL = 900


class Writer(threading.Thread):
    """Appends lines "crash <i> ContainerID=..." one at a time."""

    def __init__(self, path, first, n, pause):
        super().__init__(daemon=True)
        self.path, self.first, self.n, self.pause = path, first, n, pause
        self.written = []
        self.error = None
        self.lock = threading.Lock()  # held by a rotation: logrotate's own window

    def run(self):
        try:
            for i in range(self.first, self.first + self.n):
                with self.lock:
                    C.append(self.path, "crash %d ContainerID=c%03d plugin=bridge\n" % (i, i % 7))
                self.written.append(i)
                time.sleep(self.pause)
        except Exception as e:  # reported by the test
            self.error = e


def line_no(ev):
    d = ev.get("data")
    if isinstance(d, str) and d.startswith("crash "):
        return int(d.split()[1])
    return None


class CniCrashTest(CrashTest, unittest.TestCase):
    STREAM = STREAM

    def setUp(self):
        need_root(self)
        if not os.access(NATS_SERVER, os.X_OK):
            skip_or_fail(self, "nats-server is not installed (make deps installs it)")
        self.tree = C.Tree(self)
        self.log = os.path.join(self.tree.l1, "cni.log")
        self.offsets = os.path.join(self.tree.state, "cni-offsets")
        self.agents = []
        self.addCleanup(lambda: [a.stop() for a in self.agents])

    def agent(self, output, ready=False):
        t = self.tree.nats_agent(self, output, STREAM, "node-n", "--queue-size", "64K",
                                 ready=ready)
        self.agents.append(t)
        return t

    def test_sigkills_with_nats_lose_nothing_and_store_nothing_twice(self):
        srv = NatsServer(free_port())
        self.addCleanup(srv.close)
        srv.start()
        C.append(self.log, "")  # exists at the first start: read from its end (empty)
        t = self.agent(srv.url, ready=True)
        w = Writer(self.log, 1, TOTAL, 0.004)
        w.start()
        rnd = random.Random(12)
        for k in range(KILLS):
            time.sleep(rnd.uniform(0.15, 0.5))
            if k == 4:
                # NATS down: the agent's queue fills with what JetStream
                # never acknowledged; then the agent dies too.
                srv.kill()
                time.sleep(1.5)
                self.kill(t)
                srv.start()
            elif k == 2:
                self.kill(t)
                with w.lock:  # copytruncate while the agent is down
                    shutil.copyfile(self.log, self.log + ".1")
                    os.truncate(self.log, 0)
            elif k == 7:
                self.kill(t)
                with w.lock:  # rename rotation while the agent is down
                    os.rename(self.log + ".1", self.log + ".2")
                    os.rename(self.log, self.log + ".1")
                    C.append(self.log, "")
            else:
                self.kill(t)
            t = self.agent(srv.url)
            if k == 2:
                after_copy = t
        w.join(60)
        self.assertIsNone(w.error)
        want = set(range(1, TOTAL + 1))
        self.assertEqual(set(w.written), want)
        deadline = time.time() + 60
        while True:
            msgs = self.stored(srv)
            got = [line_no(json.loads(m["data"])) for m in msgs]
            if want <= set(got) or time.time() > deadline:
                break
            time.sleep(0.5)
        rc = t.stop()
        self.assertEqual(rc, 0, "\n".join(t.stderr_lines[-20:]))
        self.agents.remove(t)
        msgs = self.stored(srv)
        nos = [line_no(json.loads(m["data"])) for m in msgs]
        missing, twice = tally(want, nos)
        print(f"\ncni crash: {KILLS} SIGKILLs, {len(want)} lines written, "
              f"{len(msgs)} stored, {len(missing)} missing, {len(twice)} stored twice",
              flush=True)
        self.assertEqual(missing, [], "lines missing from the stream")
        self.assertEqual(sorted(twice), [], "lines stored twice")
        # every line is in one of the files, and has one id
        in_files = []
        for name in ("cni.log.2", "cni.log.1", "cni.log"):
            with open(os.path.join(self.tree.l1, name), "rb") as f:
                in_files += [int(line.split()[1]) for line in f]
        self.assertEqual(sorted(in_files), sorted(want))
        ids = {}
        for m in msgs:
            ev = json.loads(m["data"])
            self.assertEqual(m["headers"]["Nats-Msg-Id"], ev["meta"]["id"])
            self.assertRegex(ev["meta"]["id"], r"^cni-\d+-\d+-\d+-[0-9a-f]{16}$")
            ids.setdefault(ev["meta"]["id"], set()).add(line_no(ev))
        self.assertEqual([i for i, n in ids.items() if len(n) > 1], [], "one id, two lines")
        # the start after the copytruncate read the copy from the saved offset
        self.assertTrue(any("rotated while stopped; reading " + self.log + ".1" in l
                            for l in after_copy.stderr_lines), after_copy.stderr_lines)

if __name__ == "__main__":
    unittest.main()
