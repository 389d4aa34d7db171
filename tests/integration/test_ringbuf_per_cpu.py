"""Per-CPU ring buffers (--ringbuf-per-cpu): the agent and `tapio trace`
with a ring per possible CPU. Processes pinned to each CPU (sched_setaffinity
before the exec, as taskset does) must arrive with every field, and with a
tiny ring per CPU and a stopped reader every exec is written or counted as a
kernel drop.

Needs root (skips unprivileged; fails under CI=true).
"""
import glob
import json
import os
import signal
import subprocess
import time
import unittest

import kernel_fixture as kf
from tapiotest import TAPIO, Tapio, need_root, skip_or_fail, tmpdir

AGENT = ["agent", "--metrics-addr="]
BPF_MAP_TYPE_RINGBUF = 27


def possible_cpus():
    """The possible CPUs' count, from /sys/devices/system/cpu/possible ("0-3,5")."""
    with open("/sys/devices/system/cpu/possible") as f:
        n = 0
        for part in f.read().strip().split(","):
            lo, _, hi = part.partition("-")
            n += int(hi or lo) - int(lo) + 1
    return n


def ring_maps(pid):
    """(id, max_entries) of each BPF ring buffer map among pid's descriptors."""
    rings = set()
    for path in glob.glob(f"/proc/{pid}/fdinfo/*"):
        try:
            with open(path) as f:
                info = dict(l.split(":", 1) for l in f.read().splitlines() if ":" in l)
        except OSError:
            continue
        if int(info.get("map_type", "-1")) == BPF_MAP_TYPE_RINGBUF:
            rings.add((int(info["map_id"]), int(info["max_entries"])))
    return sorted(rings)


def run_pinned(cpu, argv, **kw):
    """Runs argv pinned to one CPU from before its exec; returns the
    CompletedProcess and its pid."""
    p = subprocess.Popen(argv, preexec_fn=lambda: os.sched_setaffinity(0, {cpu}),
                         stdout=subprocess.DEVNULL, **kw)
    p.wait(20)
    return p


class PerCpuRings(unittest.TestCase):
    def setUp(self):
        need_root(self)
        self.cpus = sorted(os.sched_getaffinity(0))
        if len(self.cpus) < 2:
            skip_or_fail(self, "needs two CPUs to pin processes to")

    def test_agent_takes_every_cpu_ring_with_every_field(self):
        state = tmpdir(self)
        ncpu = possible_cpus()
        with Tapio(*AGENT, "--collectors", "kernel", "--events", "process.exec,process.exit",
                   "--ringbuf-per-cpu", "--ringbuf-size", "1M", "--state-dir", state) as t:
            self.assertIsNotNone(t.wait_stderr("agent running", 15), t.stderr_lines)
            # The per-CPU rings are the agent's: one per possible CPU of
            # 1 MiB / CPUs each (a power of two), and the shared one of a page.
            rings = ring_maps(t.proc.pid)
            each = 4096
            while each * 2 <= (1 << 20) // ncpu:
                each *= 2
            self.assertEqual(sorted(m for _, m in rings),
                             sorted([os.sysconf("SC_PAGESIZE")] + [each] * ncpu), rings)
            procs = {}
            for cpu in self.cpus:
                marker = "tapio-ring-cpu%d-%d" % (cpu, os.getpid())
                p = run_pinned(cpu, ["/bin/sh", "-c", "exit %d" % (cpu + 3), marker])
                self.assertEqual(p.returncode, cpu + 3)
                procs[cpu] = (p.pid, marker)
            got = {}
            for cpu, (pid, marker) in procs.items():
                ex = t.wait_for(lambda e: e.get("type") == "process.exec"
                                and e["data"]["pid"] == pid, 10)
                xt = t.wait_for(lambda e: e.get("type") == "process.exit"
                                and e["data"]["pid"] == pid, 10)
                got[cpu] = (ex, xt)
            rc = t.stop(signal.SIGINT)
        self.assertEqual(rc, 0, t.stderr_lines)
        for cpu, (pid, marker) in procs.items():
            ex, xt = got[cpu]
            self.assertIsNotNone(ex, "no process.exec from CPU %d" % cpu)
            self.assertIsNotNone(xt, "no process.exit from CPU %d" % cpu)
            for ev in (ex, xt):
                d = ev["data"]
                self.assertEqual(ev["source"], "kernel")
                self.assertRegex(ev["ts"], r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{9}Z$")
                kf.assert_recent(self, ev)
                self.assertEqual(d["cpu"], cpu)
                self.assertEqual(d["pid"], pid)
                self.assertEqual(d["tid"], pid)
                self.assertEqual(d["tgid"], pid)
                self.assertEqual(d["ppid"], os.getpid())
                self.assertEqual(d["uid"], 0)
                self.assertEqual(d["gid"], 0)
                self.assertEqual(d["comm"], "sh")
                self.assertEqual((d["cgroup_id"], d["cgroup_hierarchy"]), kf.own_header_cgroup())
                self.assertEqual(ev["meta"]["cgroup_id"], str(d["cgroup_id"]))
                self.assertEqual(d["pidns"], os.stat("/proc/self/ns/pid").st_ino)
                self.assertEqual(d["mntns"], os.stat("/proc/self/ns/mnt").st_ino)
                self.assertGreater(d["boot_ns"], 0)
                self.assertTrue(d["task_known"])
            d = ex["data"]
            self.assertEqual(d["filename"], "/bin/sh")
            self.assertFalse(d["filename_truncated"])
            self.assertEqual(d["args"], ["/bin/sh", "-c", "exit %d" % (cpu + 3), marker])
            self.assertEqual(d["argc"], 4)
            self.assertFalse(d["args_truncated"])
            self.assertEqual((d["euid"], d["egid"]), (0, 0))
            d = xt["data"]
            self.assertEqual(d["exit_code"], cpu + 3)
            self.assertEqual(d["signal"], 0)
            self.assertFalse(d["core_dumped"])
            self.assertEqual(d["status"], (cpu + 3) << 8)
            self.assertGreater(d["duration_ns"], 0)
            self.assertLess(d["duration_ns"], 20 * 10**9)
        s = t.summary()
        self.assertIsNotNone(s, t.stderr_lines)
        k = s["kernel"]
        self.assertEqual(k["events"], len(t.events))
        self.assertEqual(t.bad_lines, [])

    def test_full_cpu_rings_drops_are_counted(self):
        """A page per CPU and a stopped reader: on every CPU, each exec in
        the cgroup is written or counted as a kernel drop."""
        cg = kf.Cgroup2(self)
        n = 150
        page = os.sysconf("SC_PAGESIZE")
        t = Tapio("trace", "-o", "json", "-e", "process.exec", "--cgroup", cg.path,
                  "--ringbuf-per-cpu", "--ringbuf-size", str(page))
        kf.wait_attached(t)
        self.assertEqual(sorted(m for _, m in ring_maps(t.proc.pid)),
                         [page] * (possible_cpus() + 1))
        loop = "i=0; while [ $i -lt %d ]; do /bin/true; i=$((i+1)); done" % n
        try:
            os.kill(t.proc.pid, signal.SIGSTOP)
            for cpu in self.cpus[:2]:
                pid = os.fork()
                if pid == 0:  # the child joins the cgroup, pins itself, runs the loop
                    try:
                        with open(os.path.join(cg.path, "cgroup.procs"), "w") as f:
                            f.write(str(os.getpid()))
                        os.sched_setaffinity(0, {cpu})
                        os.execv("/bin/sh", ["/bin/sh", "-c", loop])
                    finally:
                        os._exit(127)
                _, st = os.waitpid(pid, 0)
                self.assertEqual(os.waitstatus_to_exitcode(st), 0)
        finally:
            os.kill(t.proc.pid, signal.SIGCONT)
        time.sleep(0.5)
        rc = t.stop()
        self.assertEqual(rc, 0, t.stderr_lines)
        s = t.summary()
        self.assertIsNotNone(s, t.stderr_lines)
        ex = s["types"]["process.exec"]
        self.assertEqual(ex["events"], len(t.events))
        self.assertGreater(ex["dropped_kernel"], 0, s)
        # Per CPU: the shell's exec into the loop, then n execs of /bin/true.
        self.assertEqual(ex["events"] + ex["dropped_kernel"] + ex["dropped_queue"], 2 * (n + 1), s)
        cpus = set()
        for e in t.events:
            self.assertEqual(e["data"]["cgroup_id"], cg.id)
            cpus.add(e["data"]["cpu"])
        # Each CPU's ring held what fit before the reader stopped taking it.
        self.assertEqual(cpus, set(self.cpus[:2]), s)


if __name__ == "__main__":
    unittest.main()
