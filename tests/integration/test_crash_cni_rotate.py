"""CNI log files rotated or rewritten while the agent is down, after a
SIGKILL, into a real `nats-server -js`: the lines written before the rotation
that the sink never had are only in the rotated copy (`cni.log.1`), and the
truncated file holds new lines at the old offsets, sharing their first 64+
bytes with the old ones. The agent reads the copy from the saved offset to
its end and the live file from 0 (with other event ids), so the stream holds
every line exactly once; a truncation it cannot resolve is reported by name
and counted (`resume_ambiguous`)."""
import json
import os
import shutil
import time
import unittest
import urllib.request

from crashtest import CrashTest, tally

import cni_fixture as C
from nats_fixture import NATS_SERVER, NatsServer
from tapiotest import Tapio, clean_env, free_port, need_root, skip_or_fail

STREAM = "TAPIO_CRASH_CNI_ROT"
# the first 86 bytes the same in every line
LINE = "2024-05-01T10:00:00.000Z [INFO][4242] plugin.go 123: Calico CNI ADD shared-prefix rot %05d\n"


def line_no(ev):
    d = ev.get("data")
    if isinstance(d, str) and " rot " in d:
        return int(d.rsplit(" ", 1)[1])
    return None


def write(path, first, n, pause=0.0):
    for i in range(first, first + n):
        C.append(path, LINE % i)
        if pause:
            time.sleep(pause)


class CniRotateCrashTest(CrashTest, unittest.TestCase):
    STREAM = STREAM

    def setUp(self):
        need_root(self)
        if not os.access(NATS_SERVER, os.X_OK):
            skip_or_fail(self, "nats-server is not installed (make deps installs it)")
        self.tree = C.Tree(self)
        self.log = os.path.join(self.tree.l1, "cni.log")
        self.agents = []
        self.addCleanup(lambda: [a.stop() for a in self.agents])
        self.srv = NatsServer(free_port())
        self.addCleanup(self.srv.close)
        self.srv.start()
        self.metrics_port = free_port()

    def agent(self):
        t = self.tree.nats_agent(self, self.srv.url, STREAM, "node-r", "--queue-size", "64K",
                                 "--metrics-addr", f"127.0.0.1:{self.metrics_port}")
        self.agents.append(t)
        return t

    def counter(self, name):
        with urllib.request.urlopen(f"http://127.0.0.1:{self.metrics_port}/metrics",
                                    timeout=5) as r:
            metrics = r.read().decode()
        got = [l for l in metrics.splitlines() if l[:1] != "#" and name in l]
        self.assertEqual(len(got), 1, metrics)
        return int(float(got[0].split()[-1]))

    def run_case(self, rotate, want):
        """Writes lines 1..200 while the agent follows the log, SIGKILLs it
        mid-way, writes 201..300 while it is down, calls rotate(), starts it
        again and waits for `want` in the stream. Returns the agent (running)
        and the stored messages."""
        C.append(self.log, "")  # exists at the first start: read from its end (empty)
        t = self.agent()
        write(self.log, 1, 120, 0.002)
        deadline = time.time() + 20
        while (len(self.stored(self.srv)) < 120 and time.time() < deadline):
            time.sleep(0.2)
        time.sleep(1.3)  # the offsets are saved past line 120
        write(self.log, 121, 80)
        time.sleep(0.05)
        self.kill(t)  # lines near the end may be read, not acknowledged
        write(self.log, 201, 100)  # only in the file the rotation keeps
        rotate()
        t = self.agent()
        deadline = time.time() + 30
        while True:
            msgs = self.stored(self.srv)
            got = {line_no(json.loads(m["data"])) for m in msgs}
            if want <= got or time.time() > deadline:
                break
            time.sleep(0.3)
        time.sleep(1)  # anything stored twice arrives by now
        return t, self.stored(self.srv)

    def check(self, name, want, msgs):
        nos = [line_no(json.loads(m["data"])) for m in msgs]
        missing, twice = tally(want, nos)
        print(f"\ncni {name}: {len(want)} lines written, {len(msgs)} stored, "
              f"{len(missing)} missing, {len(twice)} stored twice", flush=True)
        self.assertEqual(missing, [], "lines missing from the stream")
        self.assertEqual(twice, [], "lines stored twice")
        for m in msgs:
            self.assertEqual(m["headers"]["Nats-Msg-Id"], json.loads(m["data"])["meta"]["id"])

    def test_copytruncate_while_stopped_loses_nothing(self):
        def rotate():
            shutil.copyfile(self.log, self.log + ".1")  # cp f f.1; truncate f
            os.truncate(self.log, 0)
            write(self.log, 1001, 50)  # shorter than the saved offset
        want = set(range(1, 301)) | set(range(1001, 1051))
        t, msgs = self.run_case(rotate, want)
        self.check("copytruncate while stopped", want, msgs)
        self.assertTrue(any("rotated while stopped; reading " + self.log + ".1" in l
                            for l in t.stderr_lines), t.stderr_lines)
        self.assertEqual(self.counter("rotated_resumed"), 1)
        self.assertEqual(self.counter("resume_ambiguous"), 0)
        # the copy's lines carry the ids of the original file, the new ones others
        st = os.stat(self.log)
        ids = {line_no(json.loads(m["data"])): m["headers"]["Nats-Msg-Id"] for m in msgs}
        off300 = sum(len(LINE % i) for i in range(1, 300))
        self.assertEqual(ids[300], C.line_id(st, off300, LINE % 300))
        self.assertEqual(ids[1001], C.line_id(st, 0, LINE % 1001))
        # a clean restart resumes both where they are: nothing again
        self.assertEqual(t.stop(), 0)
        self.agents.remove(t)
        write(self.log, 1051, 10)
        t = self.agent()
        want |= set(range(1051, 1061))
        deadline = time.time() + 20
        while len(self.stored(self.srv)) < len(want) and time.time() < deadline:
            time.sleep(0.2)
        time.sleep(1)
        self.check("copytruncate, then a restart", want, self.stored(self.srv))
        self.assertFalse(any("rotated while stopped" in l for l in t.stderr_lines))

    def test_copytruncate_rewritten_past_the_offset_loses_nothing(self):
        # the new lines share their first 64+ bytes with the old ones and
        # reach past the saved offset: the head alone cannot tell them apart
        def rotate():
            shutil.copyfile(self.log, self.log + ".1")
            os.truncate(self.log, 0)
            write(self.log, 1001, 400)
        want = set(range(1, 301)) | set(range(1001, 1401))
        t, msgs = self.run_case(rotate, want)
        self.check("copytruncate rewritten past the offset", want, msgs)
        self.assertEqual(self.counter("rotated_resumed"), 1)

    def test_dateext_copytruncate_while_stopped_loses_nothing(self):
        def rotate():
            shutil.copyfile(self.log, self.log + "-20240501")
            os.truncate(self.log, 0)
            write(self.log, 1001, 50)
        want = set(range(1, 301)) | set(range(1001, 1051))
        t, msgs = self.run_case(rotate, want)
        self.check("copytruncate (dateext) while stopped", want, msgs)

    def test_rename_while_stopped_loses_nothing(self):
        def rotate():
            os.rename(self.log, self.log + ".1")  # mv f f.1; a new f
            write(self.log, 1001, 50)
        want = set(range(1, 301)) | set(range(1001, 1051))
        t, msgs = self.run_case(rotate, want)
        self.check("rename while stopped", want, msgs)
        self.assertEqual(self.counter("resume_ambiguous"), 0)

    def test_copytruncate_while_running_with_a_backlog_loses_nothing(self):
        # NATS down: the queue fills and reading stops; what was not read
        # when the file is truncated is only in the copy
        C.append(self.log, "")
        t = self.agent()
        self.srv.kill()
        write(self.log, 1, 1500)
        time.sleep(1)
        shutil.copyfile(self.log, self.log + ".1")
        os.truncate(self.log, 0)
        write(self.log, 2001, 50)
        self.assertIsNotNone(t.wait_stderr("copytruncate; reading " + self.log + ".1", 10),
                             t.stderr_lines)
        self.srv.start()
        want = set(range(1, 1501)) | set(range(2001, 2051))
        deadline = time.time() + 60
        while time.time() < deadline:
            msgs = self.stored(self.srv)
            if want <= {line_no(json.loads(m["data"])) for m in msgs}:
                break
            time.sleep(0.5)
        time.sleep(1)
        self.check("copytruncate while running, NATS down", want, self.stored(self.srv))
        self.assertEqual(self.counter("rotated_resumed"), 1)

    def test_a_copy_without_a_truncate_is_not_a_rotation(self):
        # `cp f f.1` as a backup while stopped: the live file still holds
        # what was read, so it resumes where it was and the copy is not read
        def rotate():
            shutil.copyfile(self.log, self.log + ".1")
            write(self.log, 1001, 50)
        want = set(range(1, 301)) | set(range(1001, 1051))
        t, msgs = self.run_case(rotate, want)
        self.check("a backup copy while stopped", want, msgs)
        self.assertEqual(self.counter("rotated_resumed"), 0)
        self.assertEqual(self.counter("resume_ambiguous"), 0)

    def test_truncate_without_a_copy_is_reported_and_counted(self):
        # truncated and rewritten shorter with no rotated copy: the lines
        # after the saved offset are gone; said by name, counted, and the new
        # lines read from 0
        def rotate():
            os.truncate(self.log, 0)
            write(self.log, 1001, 50)
        new = set(range(1001, 1051))
        t, msgs = self.run_case(rotate, new)
        nos = [line_no(json.loads(m["data"])) for m in msgs]
        missing, twice = tally(new, nos)
        self.assertEqual((missing, twice), ([], []))
        self.assertEqual(self.counter("resume_ambiguous"), 1)
        self.assertTrue(any(self.log + ": cannot tell whether the saved offset" in l
                            and "shorter and no rotated copy" in l
                            for l in t.stderr_lines), t.stderr_lines)


if __name__ == "__main__":
    unittest.main()
