"""The systemd journal collector against journal files written by the real
systemd-journal-remote (tests/integration/systemd_fixture.py).

Each test runs `tapio agent --collectors systemd --journal-dir DIR ...
--output stdout` and asserts the events that arrive, field by field."""
import base64
import json
import os
import shutil
import signal
import subprocess
import sys
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import systemd_fixture as F  # noqa: E402
import tapiotest  # noqa: E402
from tapiotest import Tapio  # noqa: E402

DEFAULT_UNITS = {"kubelet.service", "containerd.service", "crio.service", "docker.service"}


def is_journal(ev):
    return ev.get("source") == "systemd" and ev.get("type") == "systemd.journal"


def messages(t):
    return [e["data"].get("MESSAGE") for e in t.matching(is_journal)]


def text(v):
    """A field value as the collector gives it: a string, or {"base64": ...}."""
    if isinstance(v, dict):
        return base64.b64decode(v["base64"])
    return v.encode()


def counter(t, name):
    """A systemd collector counter from the shutdown summary on stderr."""
    s = t.summary()
    if s is None:
        raise AssertionError("no summary line on stderr:\n" + "\n".join(t.stderr_lines))
    node = s.get("systemd") if isinstance(s, dict) else None
    if node is None and isinstance(s, dict):
        for key in ("collectors", "sources"):
            sub = s.get(key)
            if isinstance(sub, dict) and "systemd" in sub:
                node = sub["systemd"]
            elif isinstance(sub, list):
                for item in sub:
                    if item.get("name") == "systemd" or item.get("source") == "systemd":
                        node = item
    if node is None:
        raise AssertionError("no systemd entry in the summary: %r" % (s,))
    if name in node:
        return node[name]
    for sub in node.values():
        if isinstance(sub, dict) and name in sub:
            return sub[name]
    raise AssertionError("no %s counter in the summary: %r" % (name, node))


class SystemdJournalTest(unittest.TestCase):
    def setUp(self):
        tapiotest.need_root(self)
        if not F.have_journal_remote():
            tapiotest.skip_or_fail(self, "systemd-journal-remote is not installed (make deps installs it)")
        if not os.path.exists(tapiotest.TAPIO):
            self.fail("build/tapio is missing: run make")
        self.dir = tapiotest.tmpdir(self, "tapio-journal-")
        self.jdir = os.path.join(self.dir, "journal")
        self.state = os.path.join(self.dir, "state")
        os.makedirs(self.jdir)

    def agent(self, *extra, since="head", jdir=None):
        args = ["agent", "--collectors", "systemd", "--journal-dir", jdir or self.jdir,
                "--state-dir", self.state, "--output", "stdout"]
        if since is not None:
            args += ["--journal-since", since]
        t = Tapio(*(args + list(extra)))
        self.addCleanup(t.stop)
        return t

    def wait_messages(self, t, want, timeout=15):
        """Waits until the events' messages are exactly want (a list)."""
        deadline = time.time() + timeout
        while time.time() < deadline:
            got = messages(t)
            if len(got) >= len(want):
                break
            t.wait_for(lambda e: False, timeout=0.2)
        got = messages(t)
        self.assertEqual(got, want, "stderr:\n" + "\n".join(t.stderr_lines))

    def seq_entries(self, path, first, n, unit="kubelet.service", prefix="line"):
        data = b"".join(F.unit_entry(unit, "%s %d" % (prefix, i), i) for i in range(first, first + n))
        F.write_journal(path, data)
        return ["%s %d" % (prefix, i) for i in range(first, first + n)]

    # ---- units and fields ----

    def test_units_filter_and_every_field(self):
        path = F.write_journal(os.path.join(self.jdir, "system.journal"), F.fixture_bytes("units.export"))
        t = self.agent()  # default units
        self.wait_messages(t, [
            "I1127 00:00:01.000000 1 server.go:415] Kubelet version v1.31.2",
            'time="2025-11-26" level=info msg="loading plugin"\nsecond line',
            {"base64": base64.b64encode(b"garbled \xff\xfe output").decode()},
            "kubelet.service: Main process exited, code=exited, status=1/FAILURE",
            "msg with tags",
            'päivää 🌲 "quoted" \\ back\ttab',
        ])
        evs = t.matching(is_journal)
        # cross-check the cursors against journalctl's reading of the same file
        cursors = [l.split("=", 1)[1] for l in F.journal_entries(path).decode(errors="replace").splitlines()
                   if l.startswith("__CURSOR=")]
        self.assertEqual(len(cursors), 8)
        want_idx = [0, 2, 3, 4, 6, 7]  # sshd (1) and cron (5) are not watched
        for ev, i in zip(evs, want_idx):
            seq = i + 1
            d, m = ev["data"], ev["meta"]
            self.assertEqual(m["cursor"], cursors[i])
            self.assertEqual(d["__CURSOR"], cursors[i])
            self.assertEqual(d["__REALTIME_TIMESTAMP"], str(F.realtime_us(seq)))
            self.assertEqual(d["__MONOTONIC_TIMESTAMP"], str(F.monotonic_us(seq)))
            self.assertEqual(d["_BOOT_ID"], F.BOOT_ID)
            # ts is the entry's realtime timestamp
            rt = F.realtime_us(seq)
            want_ts = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(rt // 1000000)) + ".%06d000Z" % (rt % 1000000)
            self.assertEqual(ev["ts"], want_ts)
            self.assertEqual(m["hostname"], d["_HOSTNAME"])
            self.assertEqual(m["priority"], d["PRIORITY"])
            self.assertIn(m["unit"], DEFAULT_UNITS)
        kubelet, containerd, garbled, pid1, docker, crio = evs
        self.assertEqual(kubelet["meta"], {"unit": "kubelet.service", "hostname": "node-a", "priority": "6",
                                           "cursor": cursors[0], "id": cursors[0]})
        self.assertEqual({k: v for k, v in kubelet["data"].items() if not k.startswith("__")}, {
            "_BOOT_ID": F.BOOT_ID, "_HOSTNAME": "node-a", "_SYSTEMD_UNIT": "kubelet.service", "_PID": "4242",
            "_COMM": "kubelet", "SYSLOG_IDENTIFIER": "kubelet", "PRIORITY": "6", "_TRANSPORT": "stdout",
            "MESSAGE": "I1127 00:00:01.000000 1 server.go:415] Kubelet version v1.31.2"})
        self.assertEqual(containerd["meta"]["unit"], "containerd.service")
        self.assertEqual(containerd["meta"]["priority"], "5")
        # binary fields: base64 objects that decode to the exact bytes
        self.assertEqual(text(garbled["data"]["MESSAGE"]), b"garbled \xff\xfe output")
        self.assertEqual(garbled["data"]["BLOB"], {"base64": base64.b64encode(b"\x00\x01\x02\xfftail").decode()})
        self.assertEqual(garbled["meta"]["priority"], "3")
        # systemd's own message about the unit (UNIT=, _PID=1) carries the unit in meta
        self.assertEqual(pid1["meta"]["unit"], "kubelet.service")
        self.assertEqual(pid1["data"]["_SYSTEMD_UNIT"], "init.scope")
        self.assertEqual(pid1["data"]["UNIT"], "kubelet.service")
        self.assertEqual(pid1["data"]["_PID"], "1")
        # a repeated field is a list in entry order
        self.assertEqual(docker["data"]["TAG"], ["a", "b"])
        self.assertEqual(docker["meta"]["unit"], "docker.service")
        self.assertEqual(crio["meta"], {"unit": "crio.service", "hostname": "node-b", "priority": "7",
                                        "cursor": cursors[7], "id": cursors[7]})
        for ev in evs:
            self.assertNotIn(ev["data"].get("_SYSTEMD_UNIT"), ("sshd.service", "cron.service"))
        self.assertEqual(t.stop(), 0)
        self.assertEqual(counter(t, "events"), 6)

    def test_custom_units(self):
        F.write_journal(os.path.join(self.jdir, "system.journal"), F.fixture_bytes("units.export"))
        t = self.agent("--journal-units", "sshd.service, containerd.service")
        self.wait_messages(t, ["Accepted publickey for root from 10.0.0.9",
                               'time="2025-11-26" level=info msg="loading plugin"\nsecond line'])
        self.assertEqual([e["meta"]["unit"] for e in t.matching(is_journal)], ["sshd.service", "containerd.service"])
        time.sleep(1)
        self.assertEqual(len(t.matching(is_journal)), 2)

    def test_empty_units_reads_everything(self):
        F.write_journal(os.path.join(self.jdir, "system.journal"), F.fixture_bytes("units.export"))
        t = self.agent("--journal-units", "")
        t.wait_for(lambda e: e["data"].get("_SYSTEMD_UNIT") == "crio.service", timeout=10)
        units = [e["meta"].get("unit") for e in t.matching(is_journal)]
        self.assertEqual(units, ["kubelet.service", "sshd.service", "containerd.service", "kubelet.service",
                                 "init.scope", "cron.service", "docker.service", "crio.service"])

    # ---- following ----

    def test_follow_append_and_rotation(self):
        live = os.path.join(self.jdir, "system.journal")
        want = self.seq_entries(live, 1, 3)
        t = self.agent()
        self.wait_messages(t, want)
        # appended to the open file while it follows (plus a non-matching line)
        want += self.seq_entries(live, 4, 2)
        F.write_journal(live, F.unit_entry("sshd.service", "not watched", 6))
        want += self.seq_entries(live, 7, 1)
        self.wait_messages(t, want)
        # rotation: the live file is archived under journald's name, a new one starts
        os.rename(live, F.archive_name(self.jdir))
        want += self.seq_entries(live, 8, 3)
        self.wait_messages(t, want)
        # a second rotation, then more appends to the new file
        os.rename(live, F.archive_name(self.jdir))
        want += self.seq_entries(live, 11, 2)
        want += self.seq_entries(live, 13, 2)
        self.wait_messages(t, want)
        time.sleep(1)
        self.assertEqual(messages(t), want)  # nothing twice
        self.assertEqual(t.stop(), 0)
        self.assertEqual(counter(t, "events"), len(want))

    def test_since_now_skips_old_entries(self):
        live = os.path.join(self.jdir, "system.journal")
        self.seq_entries(live, 1, 3, prefix="old")
        t = self.agent(since="now")
        # "now" takes the last entry as read and stores its cursor at once
        cursor_file = os.path.join(self.state, "systemd.cursor")
        deadline = time.time() + 15
        while not os.path.exists(cursor_file) and time.time() < deadline:
            time.sleep(0.05)
        self.assertTrue(os.path.exists(cursor_file), "\n".join(t.stderr_lines))
        time.sleep(0.5)
        self.assertEqual(messages(t), [])
        want = self.seq_entries(live, 4, 2, prefix="new")
        self.wait_messages(t, want)

    # ---- resume ----

    def test_restart_resumes_after_cursor(self):
        live = os.path.join(self.jdir, "system.journal")
        first = self.seq_entries(live, 1, 4)
        t = self.agent()
        self.wait_messages(t, first)
        self.assertEqual(t.stop(), 0)
        cursor_file = os.path.join(self.state, "systemd.cursor")
        with open(cursor_file) as f:
            self.assertEqual(f.read().strip(), t.matching(is_journal)[-1]["meta"]["cursor"])
        # entries written while the agent is down, then rotated, then more
        more = self.seq_entries(live, 5, 3)
        os.rename(live, F.archive_name(self.jdir))
        more += self.seq_entries(live, 8, 2)
        # --journal-since head only applies to a first start: the cursor wins
        t2 = self.agent()
        self.wait_messages(t2, more)
        time.sleep(1)
        self.assertEqual(messages(t2), more)
        self.assertEqual(t2.stop(), 0)
        # a third start with nothing new emits nothing
        t3 = self.agent()
        time.sleep(2)
        self.assertEqual(messages(t3), [])
        self.assertEqual(t3.stop(), 0)
        self.assertEqual(counter(t3, "events"), 0)

    def test_since_cursor(self):
        live = os.path.join(self.jdir, "system.journal")
        want = self.seq_entries(live, 1, 5)
        t = self.agent()
        self.wait_messages(t, want)
        third = t.matching(is_journal)[2]["meta"]["cursor"]
        t.stop()
        shutil.rmtree(self.state)
        t2 = self.agent(since=third)
        self.wait_messages(t2, want[3:])

    def test_full_queue_loses_nothing(self):
        # a sink that does not read (stdout is a pipe nobody drains for a
        # while) fills a small queue; the collector waits and retries, and
        # every entry arrives once, in order
        live = os.path.join(self.jdir, "system.journal")
        n = 1500
        F.write_journal(live, b"".join(F.unit_entry("kubelet.service", "fill %d %s" % (i, "y" * 300), i)
                                       for i in range(1, n + 1)))
        p = subprocess.Popen([tapiotest.TAPIO, "agent", "--collectors", "systemd", "--journal-dir", self.jdir,
                              "--journal-since", "head", "--state-dir", self.state, "--output", "stdout",
                              "--queue-size", "64K", "--queue-wait-ms", "50"],
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        self.addCleanup(lambda: p.poll() is None and p.kill())
        time.sleep(3)  # the pipe (64 KiB) and the queue (64 KiB) fill up
        lines = []
        deadline = time.time() + 30
        while len(lines) < n and time.time() < deadline:
            line = p.stdout.readline()
            if not line:
                break
            lines.append(json.loads(line))
        p.send_signal(signal.SIGINT)
        rest, err = p.communicate(timeout=20)
        lines += [json.loads(l) for l in rest.splitlines()]
        got = [int(e["data"]["MESSAGE"].split()[1]) for e in lines]
        self.assertEqual(got, list(range(1, n + 1)), err.decode(errors="replace")[-2000:])
        self.assertEqual(p.returncode, 0)
        self.assertIn("queue full, retrying entry", err.decode())

    # ---- bad input ----

    def test_corrupt_files_counted_and_good_file_read(self):
        good = os.path.join(self.dir, "src.journal")
        want = self.seq_entries(good, 1, 3)
        live = os.path.join(self.jdir, "system.journal")
        shutil.copyfile(good, live)
        trunc = os.path.join(self.jdir, "system@truncated.journal")
        bad_header = os.path.join(self.jdir, "system@header.journal")
        F.corrupt_copy_truncated(good, trunc)
        F.corrupt_copy_header(good, bad_header)
        t = self.agent()
        self.wait_messages(t, want)
        self.assertIsNotNone(t.wait_stderr(trunc), "\n".join(t.stderr_lines))
        self.assertIsNotNone(t.wait_stderr(bad_header), "\n".join(t.stderr_lines))
        # a corrupt file that appears while it follows is found too
        # (made aside and renamed in, as a whole file appears)
        late = os.path.join(self.jdir, "system@late.journal")
        F.corrupt_copy_truncated(good, os.path.join(self.dir, "late.tmp"), keep=200)
        os.rename(os.path.join(self.dir, "late.tmp"), late)
        self.assertIsNotNone(t.wait_stderr(late, timeout=15), "\n".join(t.stderr_lines))
        # still reading the good file
        want += self.seq_entries(live, 4, 2)
        self.wait_messages(t, want)
        self.assertEqual(t.stop(), 0)
        self.assertEqual(counter(t, "parse_errors"), 3)
        self.assertEqual(counter(t, "events"), 5)

    def test_corrupt_objects_inside_a_file(self):
        # the header is fine, objects halfway through are garbage: libsystemd
        # drops the file at that point without an error; the collector's
        # walk of the file finds and counts it
        src = os.path.join(self.dir, "src.journal")
        corrupt = self.seq_entries(src, 1, 50)
        bad = os.path.join(self.jdir, "system@mid.journal")
        F.corrupt_copy_middle(src, bad)
        live = os.path.join(self.jdir, "system.journal")
        good = self.seq_entries(live, 100, 3, unit="containerd.service", prefix="good")
        t = self.agent()
        line = t.wait_stderr(bad, timeout=15)
        self.assertIsNotNone(line, "\n".join(t.stderr_lines))
        self.assertIn("corrupt", line)
        self.assertIn("of 50 entries", line)
        good += self.seq_entries(live, 103, 2, unit="containerd.service", prefix="good")
        t.wait_for(lambda e: e["data"].get("MESSAGE") == "good 104", timeout=10)
        got = messages(t)
        self.assertEqual([m for m in got if m.startswith("good")], good)
        readable = [m for m in got if m.startswith("line")]
        self.assertGreater(len(readable), 0)
        self.assertLess(len(readable), 50)
        self.assertEqual(readable, corrupt[:len(readable)])
        self.assertEqual(t.stop(), 0)
        self.assertEqual(counter(t, "parse_errors"), 1)

    def test_oversized_entry_skipped_and_counted(self):
        live = os.path.join(self.jdir, "system.journal")
        F.write_journal(live, F.unit_entry("kubelet.service", "small 1", 1) +
                        F.unit_entry("kubelet.service", "x" * 200000, 2) +
                        F.unit_entry("kubelet.service", "small 3", 3))
        t = self.agent("--max-event-size", "65536")
        self.wait_messages(t, ["small 1", "small 3"])
        self.assertEqual(t.stop(), 0)
        self.assertEqual(counter(t, "oversize"), 1)
        self.assertIsNotNone(t.wait_stderr("max_event_size", timeout=1))

    # ---- layouts ----

    def test_machine_id_directory(self):
        # a host journal mounted into a container: the files live under the
        # host's machine id, which is not this machine's /etc/machine-id
        host_id = "0f1e2d3c4b5a69788796a5b4c3d2e1f0"
        with open("/etc/machine-id") as f:
            self.assertNotEqual(f.read().strip(), host_id)
        sub = os.path.join(self.jdir, host_id)
        want = self.seq_entries(os.path.join(sub, "system.journal"), 1, 2)
        t = self.agent()
        self.wait_messages(t, want)
        want += self.seq_entries(os.path.join(sub, "system.journal"), 3, 1)
        self.wait_messages(t, want)

    def test_local_journal_of_another_machine_id(self):
        # the default (no --journal-dir) reads /var/log/journal/<id>/ for any
        # id, as it must when a host journal is mounted into a container
        mid = os.urandom(16).hex()
        sub = os.path.join("/var/log/journal", mid)
        self.addCleanup(shutil.rmtree, sub, True)
        unit = "tapio-test-%s.service" % mid[:8]
        want = self.seq_entries(os.path.join(sub, "system.journal"), 1, 2, unit=unit, prefix="local")
        args = ["agent", "--collectors", "systemd", "--journal-units", unit, "--journal-since", "head",
                "--state-dir", self.state, "--output", "stdout"]
        t = Tapio(*args)
        self.addCleanup(t.stop)
        self.wait_messages(t, want)
        self.assertEqual([e["meta"]["unit"] for e in t.matching(is_journal)], [unit, unit])

    def test_os_root_directory(self):
        # --journal-dir pointing at a mounted host root (/host): its
        # var/log/journal/<machine-id>/ and run/log/journal/<machine-id>/
        root = os.path.join(self.dir, "host")
        mid = "11112222333344445555666677778888"
        want = self.seq_entries(os.path.join(root, "var/log/journal", mid, "system.journal"), 1, 2)
        want += self.seq_entries(os.path.join(root, "run/log/journal", mid, "system.journal"), 3, 1,
                                 prefix="volatile")
        t = self.agent(jdir=root)
        self.wait_messages(t, want)

    def test_missing_directory_unhealthy_then_recovers(self):
        missing = os.path.join(self.dir, "later")
        t = self.agent(jdir=missing)
        self.assertIsNotNone(t.wait_stderr(missing, timeout=10), "\n".join(t.stderr_lines))
        want = self.seq_entries(os.path.join(missing, "system.journal"), 1, 2)
        self.wait_messages(t, want, timeout=40)
        self.assertEqual(t.stop(), 0)
        self.assertGreaterEqual(counter(t, "errors"), 1)

    def test_bad_since_is_a_config_error(self):
        t = self.agent(since="yesterday-ish")
        try:
            rc = t.proc.wait(10)
        finally:
            t.stop()
        self.assertEqual(rc, 2)
        self.assertIsNotNone(t.wait_stderr("--journal-since", timeout=1), "\n".join(t.stderr_lines))


if __name__ == "__main__":
    unittest.main()
