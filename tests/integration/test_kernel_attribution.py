"""Kernel tracer attribution: which memcg limit an OOM hit, which cgroup a
cgroup event concerns, who owns a socket at close, and what is shed when the
ring buffer fills. Each test makes the real case on this kernel and checks
the fields that `tapio trace -o json` reports.

Needs root (skips unprivileged; fails under CI=true).
"""
import os
import signal
import socket
import subprocess
import sys
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from tapiotest import need_root  # noqa: E402
import kernel_fixture as kf  # noqa: E402
from test_kernel_fidelity import data, trace  # noqa: E402

HOG = ("a = []\n"
       "while True:\n"
       "    a.append(bytearray(b'\\x01') * (1 << 20))\n")


def _write(path, text):
    with open(path, "w") as f:
        f.write(text)


def hierarchy_id(controller):
    """The v1 hierarchy id of a controller (/proc/cgroups), 0 on cgroup2."""
    with open("/proc/cgroups") as f:
        for line in f:
            parts = line.split()
            if parts and parts[0] == controller:
                return int(parts[1])
    return 0


class ParentLimit:
    """parent/child memory cgroups: the limit on the parent only. The v1
    memory hierarchy where it is mounted (hybrid hosts), else cgroup2."""

    def __init__(self, tc, limit):
        self.v2 = kf.Cgroup2(tc)
        v1root = kf.cgroup_v1_memory_root()
        name = "tapio-oomp-%d" % os.getpid()
        if v1root:
            self.root, self.hid = v1root, hierarchy_id("memory")
            self.parent = os.path.join(v1root, name)
            os.mkdir(self.parent)
            tc.addCleanup(kf._rmdir, self.parent)
            _write(os.path.join(self.parent, "memory.limit_in_bytes"), str(limit))
            for f, v in (("memory.memsw.limit_in_bytes", limit), ("memory.swappiness", 0)):
                try:
                    _write(os.path.join(self.parent, f), str(v))
                except OSError:
                    pass
            self.child = os.path.join(self.parent, "child")
            os.mkdir(self.child)
            tc.addCleanup(kf._rmdir, self.child)
            with open(os.path.join(self.child, "memory.limit_in_bytes")) as f:
                own = int(f.read())
            tc.assertGreater(own, limit, "the child must have no limit of its own")
        else:
            self.root, self.hid = self.v2.root, 0
            _write(os.path.join(self.v2.root, "cgroup.subtree_control"), "+memory")
            self.parent = os.path.join(self.v2.root, name)
            os.mkdir(self.parent)
            tc.addCleanup(kf._rmdir, self.parent)
            _write(os.path.join(self.parent, "memory.max"), str(limit))
            try:
                _write(os.path.join(self.parent, "memory.swap.max"), "0")
            except OSError:
                pass
            _write(os.path.join(self.parent, "cgroup.subtree_control"), "+memory")
            self.child = os.path.join(self.parent, "child")
            os.mkdir(self.child)
            tc.addCleanup(kf._rmdir, self.child)
            with open(os.path.join(self.child, "memory.max")) as f:
                tc.assertEqual(f.read().strip(), "max")

    def rel(self, path):
        return path[len(self.root):]

    def run_hog(self):
        moves = 'echo $$ > "%s/cgroup.procs"' % self.child
        if self.hid:
            moves = 'echo $$ > "%s/cgroup.procs" && ' % self.v2.path + moves
        return subprocess.Popen(["/bin/sh", "-c", moves + ' && exec "$@"', "sh",
                                 sys.executable, "-c", HOG])


class Oom(unittest.TestCase):
    def setUp(self):
        need_root(self)

    def test_oom_under_a_parent_limit_names_the_parent(self):
        limit = 48 << 20
        m = ParentLimit(self, limit)
        with trace("-e", "oom") as t:
            victim = m.run_hog()
            rc = victim.wait(60)
            self.assertEqual(rc, -signal.SIGKILL, "the hog was not OOM-killed")
            ev = t.wait_for(lambda e: e["type"] == "oom.kill" and data(e)["victim_pid"] == victim.pid, 10)
            t.stop()
        self.assertIsNotNone(ev, t.stderr_lines)
        d = data(ev)
        self.assertEqual(d["constraint"], "memcg", d)
        # The victim's own memcg: the child, in the memory hierarchy.
        self.assertEqual(d["memcg_hierarchy_id"], m.hid)
        self.assertEqual(d["memcg_path"], m.rel(m.child))
        self.assertEqual(d["memcg_id"], os.stat(m.child).st_ino)
        self.assertEqual(d["memcg_level"], m.rel(m.child).count("/"))
        self.assertFalse(d["memcg_path_truncated"])
        # The limit that was hit: the parent's.
        self.assertEqual(d["limit_memcg_path"], m.rel(m.parent))
        self.assertEqual(d["limit_memcg_id"], os.stat(m.parent).st_ino)
        self.assertEqual(d["limit_memcg_level"], m.rel(m.parent).count("/"))
        self.assertEqual(d["limit"], "memory")
        self.assertEqual(d["limit_bytes"], limit)
        self.assertLessEqual(d["usage_bytes"], limit)
        self.assertGreaterEqual(d["usage_bytes"], limit - 72 * os.sysconf("SC_PAGE_SIZE"))
        self.assertEqual(d["pid"], victim.pid)


class CgroupEvents(unittest.TestCase):
    """Cgroup events are judged and described by the cgroup they concern:
    here a host process (this test) makes, fills and removes them."""

    def setUp(self):
        need_root(self)

    def test_cgroup_made_in_a_filtered_subtree_by_a_host_process(self):
        top = kf.Cgroup2(self)
        other = kf.Cgroup2(self)
        child = os.path.join(top.path, "child")
        with trace("-e", "cgroup", "--cgroup", top.path) as t:
            os.mkdir(child)
            os.mkdir(os.path.join(other.path, "elsewhere"))
            sleeper = subprocess.Popen(["/bin/sleep", "30"])
            _write(os.path.join(child, "cgroup.procs"), str(sleeper.pid))
            cid = os.stat(child).st_ino
            sleeper.kill()
            sleeper.wait()
            time.sleep(0.1)
            kf._rmdir(child)
            os.rmdir(os.path.join(other.path, "elsewhere"))
            ours = lambda typ: (lambda e: e["type"] == typ and data(e)["id"] == cid)
            mk = t.wait_for(ours("cgroup.mkdir"), 10)
            at = t.wait_for(ours("cgroup.attach"), 10)
            rm = t.wait_for(ours("cgroup.rmdir"), 10)
            time.sleep(0.3)
            t.stop()
        for ev in (mk, at, rm):
            self.assertIsNotNone(ev, [(e["type"], data(e)["path"]) for e in t.events])
            d = data(ev)
            self.assertEqual(d["path"], top.rel + "/child")
            self.assertFalse(d["path_truncated"])
            self.assertEqual(d["pid"], os.getpid())          # the writer: a host process
            self.assertEqual(ev["meta"]["cgroup_id"], str(cid))  # described by the cgroup
        self.assertEqual(data(at)["task_pid"], sleeper.pid)
        for e in t.events:
            self.assertNotIn("elsewhere", data(e)["path"], e)

    def test_containers_keeps_container_cgroups_made_by_the_host(self):
        root = kf.cgroup2_root()
        pod = os.path.join(root, "kubepods-tapio-%d.slice" % os.getpid())
        plain = kf.Cgroup2(self)
        with trace("-e", "cgroup.mkdir,cgroup.rmdir", "--containers") as t:
            os.mkdir(pod)
            self.addCleanup(kf._rmdir, pod)
            os.mkdir(os.path.join(plain.path, "host-only"))
            os.rmdir(os.path.join(plain.path, "host-only"))
            os.rmdir(pod)
            rm = t.wait_for(lambda e: e["type"] == "cgroup.rmdir" and data(e)["path"] == pod[len(root):], 10)
            time.sleep(0.3)
            t.stop()
        self.assertIsNotNone(rm, t.events)
        mk = [e for e in t.events if e["type"] == "cgroup.mkdir" and data(e)["path"] == pod[len(root):]]
        self.assertEqual(len(mk), 1, t.events)
        for e in t.events:
            self.assertNotIn("host-only", data(e)["path"], e)


FLOOD = ("import socket,sys\n"
         "port, n = int(sys.argv[1]), int(sys.argv[2])\n"
         "for _ in range(n):\n"
         "    s = socket.socket()\n"
         "    try:\n"
         "        s.connect(('127.0.0.1', port))\n"
         "    except ConnectionRefusedError:\n"
         "        pass\n"
         "    s.close()\n")


class Headroom(unittest.TestCase):
    def setUp(self):
        need_root(self)

    def test_rst_flood_beside_an_exec_loop_loses_no_exec(self):
        """A stopped reader, a 1 MiB ring: 10000 refused connects (each a
        tcp.reset received) and 200 execs at once. Resets fill half the ring
        and are then shed (counted); every exec still gets through."""
        cg = kf.Cgroup2(self)
        port = kf.free_port_family(socket.AF_INET, "127.0.0.1")
        n_rst, n_exec = 10000, 200
        t = trace("-e", "process.exec,tcp.reset", "--cgroup", cg.path, "--ringbuf-size", str(1 << 20))
        try:
            os.kill(t.proc.pid, signal.SIGSTOP)
            script = ('echo $$ > "%s/cgroup.procs" && { "%s" -c "$1" %d %d & '
                      'i=0; while [ $i -lt %d ]; do /bin/true; i=$((i+1)); done; wait; }'
                      % (cg.path, sys.executable, port, n_rst, n_exec))
            subprocess.run(["/bin/sh", "-c", script, "sh", FLOOD], check=True)
        finally:
            os.kill(t.proc.pid, signal.SIGCONT)
        time.sleep(1.0)
        rc = t.stop()
        self.assertEqual(rc, 0, t.stderr_lines)
        s = t.summary()
        self.assertIsNotNone(s, t.stderr_lines)
        ex, rst = s["types"]["process.exec"], s["types"]["tcp.reset"]
        # The shell's exec of the python flood, then n_exec of /bin/true.
        self.assertEqual(ex["events"], n_exec + 1, s)
        self.assertEqual(ex["dropped_kernel"], 0, s)
        self.assertEqual(ex["shed_kernel"], 0, s)
        self.assertGreater(rst["shed_kernel"], 0, s)
        self.assertEqual(rst["dropped_kernel"], rst["shed_kernel"], s)  # none for a full ring
        self.assertEqual(rst["events"] + rst["dropped_kernel"] + rst["dropped_queue"], n_rst, s)
        self.assertLess(rst["events"] * 192, (1 << 20) // 2 + 192 * 8, s)  # half the ring
