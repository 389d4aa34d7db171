"""Nothing lost across a crash, for the systemd journal source: journal files
written by the real systemd-journal-remote while the agent follows them into
a real `nats-server -js`, the agent SIGKILLed at random points, once while
NATS is down and the agent's small queue is full of what JetStream never
acknowledged. The stored cursor moves only on the PubAck and every event's
Nats-Msg-Id is the entry's journal cursor, so the stream holds every entry
exactly once, none missing. An empty systemd.cursor (a crash between create
and write) is reported by name and read from the head of the journal, not
silently from "now"."""
import json
import os
import random
import shutil
import subprocess
import threading
import time
import unittest

from crashtest import CrashTest, tally

import systemd_fixture as F
from nats_fixture import NATS_SERVER, JsReader, NatsServer
from tapiotest import Tapio, clean_env, free_port, need_root, skip_or_fail, tmpdir

STREAM = "TAPIO_CRASH_JOURNAL"
KILLS = 10
TOTAL = 900
BATCH = 6


class Writer(threading.Thread):
    """Appends entries "crash <i>" (i from first) to the live journal file in
    batches, one systemd-journal-remote run per batch."""

    def __init__(self, path, first, n, pause):
        super().__init__(daemon=True)
        self.path, self.first, self.n, self.pause = path, first, n, pause
        self.written = []
        self.error = None

    def run(self):
        try:
            i = self.first
            end = self.first + self.n
            while i < end:
                k = min(BATCH, end - i)
                F.write_journal(self.path, b"".join(
                    F.unit_entry("kubelet.service", "crash %d" % j, j) for j in range(i, i + k)))
                self.written += range(i, i + k)
                i += k
                time.sleep(self.pause)
        except Exception as e:  # reported by the test
            self.error = e


def message_no(ev):
    m = ev.get("data", {}).get("MESSAGE", "")
    return int(m.split()[1]) if isinstance(m, str) and m.startswith("crash ") else None


class JournalCrashTest(CrashTest, unittest.TestCase):
    STREAM = STREAM

    def setUp(self):
        need_root(self)
        if not F.have_journal_remote():
            skip_or_fail(self, "systemd-journal-remote is not installed (make deps installs it)")
        if not os.access(NATS_SERVER, os.X_OK):
            skip_or_fail(self, "nats-server is not installed (make deps installs it)")
        self.dir = tmpdir(self, "tapio-crash-journal-")
        self.jdir = os.path.join(self.dir, "journal")
        os.makedirs(self.jdir)
        self.live = os.path.join(self.jdir, "system.journal")
        self.state = os.path.join(self.dir, "state")
        self.curfile = os.path.join(self.state, "systemd.cursor")
        self.agents = []
        self.addCleanup(lambda: [a.stop() for a in self.agents])

    def agent(self, output, *extra):
        t = Tapio("agent", "--collectors", "systemd", "--journal-dir", self.jdir,
                  "--journal-units", "kubelet.service", "--journal-since", "head",
                  "--state-dir", self.state, "--output", output, "--nats-stream", STREAM,
                  "--queue-size", "64K", "--nats-ack-wait-ms", "1000",
                  "--node-name", "node-j", *extra, env=clean_env())
        self.agents.append(t)
        return t

    def test_sigkills_with_nats_lose_nothing_and_store_nothing_twice(self):
        srv = NatsServer(free_port())
        self.addCleanup(srv.close)
        srv.start()
        F.write_journal(self.live, b"".join(
            F.unit_entry("kubelet.service", "crash %d" % j, j) for j in range(1, 11)))
        t = self.agent(srv.url)
        deadline = time.time() + 15
        while not os.path.exists(self.curfile):
            if time.time() > deadline or t.proc.poll() is not None:
                self.fail("the agent did not start reading:\n" + "\n".join(t.stderr_lines))
            time.sleep(0.05)
        w = Writer(self.live, 11, TOTAL - 10, 0.01)
        w.start()
        rnd = random.Random(12)
        for k in range(KILLS):
            time.sleep(rnd.uniform(0.15, 0.6))
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
        w.join(120)
        self.assertIsNone(w.error)
        want = set(range(1, TOTAL + 1))
        self.assertEqual(set(w.written) | set(range(1, 11)), want)
        deadline = time.time() + 60
        while True:
            msgs = self.stored(srv)
            got = [message_no(json.loads(m["data"])) for m in msgs]
            if want <= set(got) or time.time() > deadline:
                break
            time.sleep(0.5)
        rc = t.stop()
        self.assertEqual(rc, 0, "\n".join(t.stderr_lines[-20:]))
        self.agents.remove(t)
        msgs = self.stored(srv)
        nos = [message_no(json.loads(m["data"])) for m in msgs]
        missing, twice = tally(want, nos)
        print(f"\njournal crash: {KILLS} SIGKILLs, {len(want)} entries written, "
              f"{len(msgs)} stored, {len(missing)} missing, {len(twice)} stored twice",
              flush=True)
        self.assertEqual(missing, [], "entries missing from the stream")
        self.assertEqual(sorted(twice), [], "entries stored twice")
        for m in msgs:
            ev = json.loads(m["data"])
            self.assertEqual(m["headers"]["Nats-Msg-Id"], ev["meta"]["id"])
            self.assertEqual(ev["meta"]["id"], ev["meta"]["cursor"])
        # The stored cursor is that of an entry JetStream has.
        with open(self.curfile) as f:
            cur = f.read().strip()
        self.assertIn(cur, {json.loads(m["data"])["meta"]["cursor"] for m in msgs})

    def test_empty_cursor_file_reads_from_the_head(self):
        F.write_journal(self.live, b"".join(
            F.unit_entry("kubelet.service", "crash %d" % j, j) for j in range(1, 6)))
        os.makedirs(self.state)
        open(self.curfile, "w").close()  # created, never written: a crash or a full disk
        t = Tapio("agent", "--collectors", "systemd", "--journal-dir", self.jdir,
                  "--journal-units", "kubelet.service", "--state-dir", self.state,
                  "--output", "stdout", env=clean_env())  # --journal-since defaults to now
        self.agents.append(t)
        t.wait_for(lambda e: message_no(e) == 5, timeout=15)
        got = [message_no(e) for e in t.matching(lambda e: message_no(e) is not None)]
        self.assertEqual(t.stop(), 0)
        self.agents.remove(t)
        self.assertEqual(got, [1, 2, 3, 4, 5], "\n".join(t.stderr_lines))
        err = "\n".join(t.stderr_lines)
        self.assertIn(self.curfile, err)
        self.assertIn("empty or cut short", err)
        with open(self.curfile) as f:
            self.assertTrue(f.read().endswith("\n"))

    def test_file_sync_policy(self):
        """--file-sync: none never fdatasyncs the output, batch does once per
        write of the buffer, always once per event (counted with strace on
        the agent, all events in the file each time)."""
        if not shutil.which("strace"):
            skip_or_fail(self, "strace is not installed (make deps installs it)")
        n = 40
        F.write_journal(self.live, F.unit_entry("kubelet.service", "before", 1))
        syncs = {}
        for k, policy in enumerate(("none", "batch", "always")):
            out = os.path.join(self.dir, "events-%s.jsonl" % policy)
            trace = os.path.join(self.dir, "strace-%s" % policy)
            state = os.path.join(self.dir, "state-" + policy)
            first = 100 * (k + 1)
            want = set(range(first, first + n))
            t = Tapio("agent", "--collectors", "systemd", "--journal-dir", self.jdir,
                      "--journal-units", "kubelet.service", "--journal-since", "now",
                      "--state-dir", state, "--output", "file:" + out,
                      "--file-sync", policy, "--metrics-addr", "", env=clean_env())
            self.agents.append(t)
            deadline = time.time() + 15
            while not os.path.exists(os.path.join(state, "systemd.cursor")):
                self.assertLess(time.time(), deadline, "\n".join(t.stderr_lines))
                time.sleep(0.05)
            # follow the running agent (every thread), then write the entries
            st = subprocess.Popen(["strace", "-f", "-qq", "-e", "trace=fdatasync",
                                   "-o", trace, "-p", str(t.proc.pid)],
                                  stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            time.sleep(1)
            F.write_journal(self.live, b"".join(
                F.unit_entry("kubelet.service", "crash %d" % j, j) for j in sorted(want)))
            deadline = time.time() + 20
            got = set()
            while time.time() < deadline:
                with open(out, "rb") as f:
                    got = {message_no(json.loads(l)) for l in f.read().split(b"\n") if l}
                if got >= want:
                    break
                time.sleep(0.2)
            self.assertEqual(t.stop(), 0)
            self.agents.remove(t)
            st.wait(10)
            self.assertGreaterEqual(got, want, policy)
            with open(trace) as f:
                syncs[policy] = sum(1 for l in f if "fdatasync(" in l)
        print(f"\nfile-sync: fdatasync calls for {n} events: {syncs}", flush=True)
        self.assertEqual(syncs["none"], 0)
        self.assertGreaterEqual(syncs["batch"], 1)
        self.assertLess(syncs["batch"], n)
        self.assertGreaterEqual(syncs["always"], n)


if __name__ == "__main__":
    unittest.main()
