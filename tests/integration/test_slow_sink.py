"""A backlogged sink: the agent writes into a FIFO (--output file:FIFO) that
this test reads at 320 KB/s, slower than the sources produce, so the queue
(1 MiB) is full and the collectors wait. Real etcd with 2 KB values and real
journal files (systemd-journal-remote).

- One SIGKILL while backlogged: every etcd revision and every journal entry
  is in the output (at least once: what was queued but not written is read
  again from the cursor).
- Ten clean SIGTERMs while backlogged (etcd): the queue is drained into the
  sink, and no revision is written twice across the restarts (the last
  revision before a stop is not repeated after it).

A FIFO cannot be repaired the way a file is (a line cut by a SIGKILL inside
a write is ended on the next open of a regular file, not of a FIFO): a line
that does not parse is read from its last record start."""
import json
import os
import signal
import threading
import time
import unittest

from crashtest import tally

import systemd_fixture as F
from tapiotest import Tapio, clean_env, need_cmd, need_root, skip_or_fail, tmpdir
from etcd_fixture import Etcd

RATE = 320 * 1024  # bytes per second
VALUE = 2048


class SlowReader(threading.Thread):
    """Reads a FIFO at `rate` bytes per second into memory. Holds the FIFO
    open for writing too, so it never sees an end between two agents."""

    def __init__(self, path, rate):
        super().__init__(daemon=True)
        os.mkfifo(path, 0o600)
        self.fd = os.open(path, os.O_RDWR | os.O_NONBLOCK)
        self.rate = rate
        self.buf = bytearray()
        self.lock = threading.Lock()
        self.done = threading.Event()

    def run(self):
        tick = 0.05
        per_tick = int(self.rate * tick)
        next_t = time.monotonic()
        while not self.done.is_set():
            got = 0
            while got < per_tick:
                try:
                    b = os.read(self.fd, per_tick - got)
                except BlockingIOError:
                    break
                if not b:
                    break
                got += len(b)
                with self.lock:
                    self.buf += b
            next_t += tick
            time.sleep(max(0.0, next_t - time.monotonic()))

    def events(self):
        """The complete JSON lines read so far (a torn line: its last record)."""
        with self.lock:
            data = bytes(self.buf)
        out = []
        for line in data.split(b"\n")[:-1]:
            try:
                out.append(json.loads(line))
            except ValueError:
                i = line.rfind(b'{"ts":')
                if i > 0:
                    try:
                        out.append(json.loads(line[i:]))
                    except ValueError:
                        pass
        return out

    def close(self):
        self.done.set()
        self.join(5)
        os.close(self.fd)


class SlowSinkTest(unittest.TestCase):
    def setUp(self):
        need_root(self)
        self.dir = tmpdir(self, "tapio-slow-")
        self.state = os.path.join(self.dir, "state")
        self.fifo = os.path.join(self.dir, "out.fifo")
        self.reader = SlowReader(self.fifo, RATE)
        self.reader.start()
        self.addCleanup(self.reader.close)
        self.agents = []
        self.addCleanup(lambda: [a.stop() for a in self.agents])

    def start(self, *args, cursor):
        t = Tapio("agent", *args, "--state-dir", self.state, "--output", "file:" + self.fifo,
                  "--queue-size", "1M", "--metrics-addr=", env=clean_env())
        self.agents.append(t)
        deadline = time.time() + 15
        while not os.path.exists(cursor):
            if time.time() > deadline or t.proc.poll() is not None:
                self.fail("the agent did not start reading:\n" + "\n".join(t.stderr_lines))
            time.sleep(0.05)
        return t

    def end(self, t, sig=None):
        if sig is None:
            t.proc.kill()
            t.stop()
        else:
            self.assertEqual(t.stop(sig, timeout=60), 0, "\n".join(t.stderr_lines[-20:]))
        self.agents.remove(t)

    def wait_all(self, want, key, timeout=90):
        deadline = time.time() + timeout
        while time.time() < deadline:
            if want <= {key(e) for e in self.reader.events()}:
                return
            time.sleep(0.5)

    # ---- etcd ----

    def etcd_setup(self):
        need_cmd(self, "etcd")
        self.etcd = Etcd(self.dir).start()
        self.addCleanup(self.etcd.stop)
        self.revfile = os.path.join(self.state, "etcd.revision")

    def etcd_agent(self):
        return self.start("--collectors", "etcd", "--etcd-endpoints", self.etcd.url,
                          "--etcd-prefix", "/registry/slow/", cursor=self.revfile)

    def put_many(self, first, n, revs, size=VALUE, threads=4):
        """Puts keys first..first+n-1 with values of size bytes from several
        threads (one put at a time is about as slow as the reader)."""
        lock = threading.Lock()

        def one(part):
            for i in range(first + part, first + n, threads):
                rev = self.etcd.put(f"/registry/slow/k{i % 211}", (f"v{i}-" + "x" * size)[:size])
                with lock:
                    revs.append(rev)
        ws = [threading.Thread(target=one, args=(p,), daemon=True) for p in range(threads)]
        for w in ws:
            w.start()
        for w in ws:
            w.join(120)

    @staticmethod
    def etcd_rev(e):
        return int(e["meta"]["revision"]) if e.get("source") == "etcd" else None

    def test_etcd_one_sigkill_backlogged_loses_nothing(self):
        self.etcd_setup()
        t = self.etcd_agent()
        revs = []
        # 8 KB values: about 30 events a second reach the reader, while
        # etcd takes about 120 puts a second here.
        w = threading.Thread(target=self.put_many, args=(0, 800, revs, 8192), daemon=True)
        w.start()
        time.sleep(4)  # the reader is far behind: the queue is full
        backlog = len(revs) - len(self.reader.events())
        self.end(t)
        t = self.etcd_agent()
        w.join(120)
        want = set(revs)
        self.assertEqual(len(want), 800)
        self.wait_all(want, self.etcd_rev)
        self.end(t, signal.SIGTERM)
        got = [self.etcd_rev(e) for e in self.reader.events() if e.get("source") == "etcd"]
        missing, twice = tally(want, got)
        print(f"\nslow sink, etcd, one SIGKILL ({backlog} revisions behind at the kill): "
              f"{len(want)} revisions written, {len(got)} read, {len(missing)} missing, "
              f"{len(twice)} twice", flush=True)
        self.assertGreater(backlog, 200, "the sink was not backlogged at the kill")
        self.assertEqual(missing, [])

    def test_etcd_sigterms_backlogged_repeat_nothing(self):
        self.etcd_setup()
        revs = []
        backlogs = []
        for k in range(10):
            t = self.etcd_agent()
            self.put_many(k * 150, 150, revs)
            backlogs.append(len(revs) - len(self.reader.events()))
            self.end(t, signal.SIGTERM)  # drains the queue into the slow sink, then stops
        want = set(revs)
        self.assertEqual(len(want), 1500)
        self.wait_all(want, self.etcd_rev)  # the last stop's lines still in the FIFO
        got = [self.etcd_rev(e) for e in self.reader.events() if e.get("source") == "etcd"]
        missing, twice = tally(want, got)
        print(f"\nslow sink, etcd, 10 SIGTERMs (revisions behind at each stop: {backlogs}): "
              f"{len(want)} revisions written, {len(got)} read, {len(missing)} missing, "
              f"{len(twice)} twice", flush=True)
        self.assertGreater(min(backlogs), 20, "the sink was not backlogged at every stop")
        self.assertEqual(twice, [], "revisions repeated after a clean stop")
        self.assertEqual(missing, [])
        with open(self.revfile) as f:
            self.assertEqual(int(f.read()), max(want))

    # ---- journal ----

    def test_journal_one_sigkill_backlogged_loses_nothing(self):
        if not F.have_journal_remote():
            skip_or_fail(self, "systemd-journal-remote is not installed (make deps installs it)")
        jdir = os.path.join(self.dir, "journal")
        os.makedirs(jdir)
        live = os.path.join(jdir, "system.journal")
        cursor = os.path.join(self.state, "systemd.cursor")
        pad = "y" * VALUE

        def entries(a, b):
            return b"".join(F.unit_entry("kubelet.service", "slow %d %s" % (j, pad), j)
                            for j in range(a, b))

        def no(e):
            m = e.get("data", {}).get("MESSAGE", "") if e.get("source") == "systemd" else ""
            return int(m.split()[1]) if isinstance(m, str) and m.startswith("slow ") else None

        total, batch = 2000, 50
        F.write_journal(live, entries(1, 11))
        args = ("--collectors", "systemd", "--journal-dir", jdir, "--journal-units",
                "kubelet.service", "--journal-since", "head")
        t = self.start(*args, cursor=cursor)
        written = list(range(1, 11))

        def writer():
            for i in range(11, total + 1, batch):
                F.write_journal(live, entries(i, min(i + batch, total + 1)))
                written.extend(range(i, min(i + batch, total + 1)))
        w = threading.Thread(target=writer, daemon=True)
        w.start()
        time.sleep(4)
        backlog = len(written) - len(self.reader.events())
        self.end(t)
        t = self.start(*args, cursor=cursor)
        w.join(120)
        want = set(range(1, total + 1))
        self.assertEqual(set(written), want)
        self.wait_all(want, no)
        self.end(t, signal.SIGTERM)
        got = [no(e) for e in self.reader.events() if no(e) is not None]
        missing, twice = tally(want, got)
        print(f"\nslow sink, journal, one SIGKILL ({backlog} entries behind at the kill): "
              f"{len(want)} entries written, {len(got)} read, {len(missing)} missing, "
              f"{len(twice)} twice", flush=True)
        self.assertGreater(backlog, 200, "the sink was not backlogged at the kill")
        self.assertEqual(missing, [])


if __name__ == "__main__":
    unittest.main()
