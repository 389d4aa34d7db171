"""The header's cgroup on v1/hybrid hosts (needs root, and a host with the
memory controller on a v1 hierarchy, as this one: v1 controllers under
/sys/fs/cgroup/<controller>, cgroup2 at /sys/fs/cgroup/unified).

Containers there live in the v1 hierarchies and their cgroup2 cgroup is
often the root, which says nothing. A process put in a v1 memory cgroup
only (its cgroup2 cgroup the root) must get that v1 cgroup's id, flagged
`cgroup_hierarchy: v1:memory`, and the agent must resolve that id in the v1
memory mount (pod uid and container id from the kubelet-shaped path). A
process in a cgroup2 cgroup keeps the cgroup2 id.
"""
import os
import subprocess
import time
import unittest

import tapiotest
from kernel_fixture import cgroup2_root, make_dirs, wait_attached
from tapiotest import Tapio


def v1_memory_mount():
    """The v1 memory hierarchy's mount point, or None."""
    with open("/proc/self/cgroup") as f:
        if not any(line.split(":")[1].split(",").count("memory") for line in f
                   if line.count(":") >= 2 and not line.startswith("0:")):
            return None
    with open("/proc/self/mountinfo") as f:
        for line in f:
            head, sep, tail = line.partition(" - ")
            if sep and tail.split()[0] == "cgroup" and "memory" in tail.split()[2].split(","):
                return head.split()[4]
    return None


class HybridCgroups(unittest.TestCase):
    def setUp(self):
        tapiotest.need_root(self)
        self.v1 = v1_memory_mount()
        if self.v1 is None:
            tapiotest.skip_or_fail(self, "no v1 memory hierarchy (a pure cgroup2 host)")
        self.v2 = cgroup2_root()
        self.assertIsNotNone(self.v2, "no cgroup2 mount")
        self.uid = "7c0ffee0-1234-4abc-8def-%012d" % os.getpid()
        self.cid = "%064x" % (0xC0FFEE + os.getpid())
        # The cgroupfs driver's layout (kubepods/<qos>/pod<uid>/<id>), in v1.
        self.v1_dir = make_dirs(self, self.v1, ["kubepods", "besteffort", "pod" + self.uid,
                                                self.cid])

    def exec_in(self, v1_dir, v2_dir, marker):
        """A shell that moves itself into v1_dir (memory) and v2_dir, then
        execs /bin/echo marker."""
        subprocess.run(["/bin/sh", "-c", 'echo $$ > "%s/cgroup.procs" && '
                        'echo $$ > "%s/cgroup.procs" && exec /bin/echo %s'
                        % (v1_dir, v2_dir, marker)], stdout=subprocess.DEVNULL, check=True)

    def exec_event(self, t, marker):
        ev = t.wait_for(lambda e: e.get("type") == "process.exec"
                        and e["data"].get("filename") == "/bin/echo"
                        and e["data"].get("args") == ["/bin/echo", marker], 15)
        self.assertIsNotNone(ev, "the exec of %s did not arrive; stderr:\n%s"
                             % (marker, "\n".join(t.stderr_lines[-20:])))
        return ev

    def test_v2_root_task_gets_its_v1_memory_cgroup(self):
        marker = "tapio-v1-%d" % os.getpid()
        with Tapio("trace", "-o", "json", "-e", "process.exec") as t:
            wait_attached(t)
            self.exec_in(self.v1_dir, self.v2, marker)
            ev = self.exec_event(t, marker)
            t.stop()
        d = ev["data"]
        self.assertEqual(d["cgroup_id"], os.stat(self.v1_dir).st_ino, d)
        self.assertEqual(d["cgroup_hierarchy"], "v1:memory", d)
        self.assertEqual(ev["meta"]["cgroup_hierarchy"], "v1:memory", ev["meta"])
        self.assertEqual(int(ev["meta"]["cgroup_id"]), os.stat(self.v1_dir).st_ino)

    def test_task_in_a_v2_cgroup_keeps_its_v2_id(self):
        v2_dir = make_dirs(self, self.v2, ["tapio-v1test-%d" % os.getpid()])
        marker = "tapio-v2-%d" % os.getpid()
        with Tapio("trace", "-o", "json", "-e", "process.exec") as t:
            wait_attached(t)
            self.exec_in(self.v1_dir, v2_dir, marker)
            ev = self.exec_event(t, marker)
            t.stop()
        d = ev["data"]
        self.assertEqual(d["cgroup_id"], os.stat(v2_dir).st_ino, d)
        self.assertEqual(d["cgroup_hierarchy"], "v2", d)
        self.assertNotIn("cgroup_hierarchy", ev["meta"])

    def test_agent_resolves_a_v1_id_in_the_v1_memory_mount(self):
        marker = "tapio-v1-agent-%d" % os.getpid()
        state = tapiotest.tmpdir(self)
        with Tapio("agent", "--metrics-addr=", "--collectors", "kernel",
                   "--events", "process.exec", "--state-dir", state, "--output", "stdout") as t:
            # Ready once the agent's own exec traffic shows up: keep
            # exec'ing markers until one arrives.
            ready = None
            for i in range(50):
                m = "%s-warm-%d" % (marker, i)
                subprocess.run(["/bin/echo", m], stdout=subprocess.DEVNULL, check=True)
                ready = t.wait_for(lambda e, m=m: e.get("type") == "process.exec"
                                   and e["data"].get("args") == ["/bin/echo", m], 0.3)
                if ready:
                    break
            self.assertIsNotNone(ready, "\n".join(t.stderr_lines[-20:]))
            # The first event of a cgroup the pod cache has not seen is
            # sent at once, marked pending; the resolver then reads its
            # path in the v1 memory mount, and later events carry the pod.
            self.exec_in(self.v1_dir, self.v2, marker)
            first = self.exec_event(t, marker)
            time.sleep(0.5)
            self.exec_in(self.v1_dir, self.v2, marker + "-again")
            ev = self.exec_event(t, marker + "-again")
        meta = first["meta"]
        self.assertEqual(meta.get("cgroup_hierarchy"), "v1:memory", meta)
        self.assertEqual(int(meta["cgroup_id"]), os.stat(self.v1_dir).st_ino, meta)
        self.assertEqual(meta.get("pod_meta"), "pending", meta)
        meta = ev["meta"]
        self.assertEqual(meta.get("cgroup_hierarchy"), "v1:memory", meta)
        self.assertEqual(int(meta["cgroup_id"]), os.stat(self.v1_dir).st_ino, meta)
        self.assertEqual(meta.get("pod_uid"), self.uid, meta)
        self.assertEqual(meta.get("container_id"), self.cid, meta)


if __name__ == "__main__":
    unittest.main()
