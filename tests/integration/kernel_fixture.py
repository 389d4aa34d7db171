"""Fixtures for the kernel tracer tests: cgroups (v2, and a memory cgroup on
v1 or v2), a veth pair into a test network namespace, small helpers."""
import calendar
import os
import socket
import subprocess
import sys
import time

_seq = [0]


def wait_attached(t, timeout=20.0):
    """Waits for `tapio trace` to say its programs are attached."""
    line = t.wait_stderr("tapio trace: tracing", timeout)
    if line is None:
        t.stop()
        raise AssertionError("tapio trace did not start: %r" % t.stderr_lines)
    return line


def cgroup2_root():
    with open("/proc/self/mountinfo") as f:
        for line in f:
            parts = line.split(" - ")
            if len(parts) == 2 and parts[1].split()[0] == "cgroup2":
                return parts[0].split()[4]
    return None


def make_pod_cgroup(tc, root, qos, uid, cid):
    """Makes a kubelet-shaped (systemd driver, containerd) cgroup2 path for a
    pod uid and container id below root; removed when the test ends."""
    return make_dirs(tc, root, ["kubepods.slice", "kubepods-%s.slice" % qos,
                                "kubepods-%s-pod%s.slice" % (qos, uid.replace("-", "_")),
                                "cri-containerd-%s.scope" % cid])


def make_dirs(tc, root, parts):
    """Makes root/parts[0]/parts[1]/... (those missing), removed when the
    test ends; returns the deepest."""
    path, made = root, []
    for d in parts:
        path = os.path.join(path, d)
        if not os.path.isdir(path):
            os.mkdir(path)
            made.append(path)

    def cleanup():
        for m in reversed(made):
            try:
                os.rmdir(m)
            except OSError:
                pass
    tc.addCleanup(cleanup)
    return path


def cgroup_v1_memory_root():
    with open("/proc/self/mountinfo") as f:
        for line in f:
            parts = line.split(" - ")
            if len(parts) != 2:
                continue
            fs = parts[1].split()
            if fs[0] == "cgroup" and "memory" in fs[2].split(","):
                return parts[0].split()[4]
    return None


def own_cgroup2_id(pid="self"):
    with open("/proc/%s/cgroup" % pid) as f:
        for line in f:
            if line.startswith("0::"):
                return os.stat(cgroup2_root() + line[3:].strip()).st_ino
    raise AssertionError("no cgroup2 entry in /proc/%s/cgroup" % pid)


def own_header_cgroup(pid="self"):
    """(cgroup_id, cgroup_hierarchy) that kernel events give a task: its
    cgroup2 cgroup; on a v1/hybrid host, when that is the root and its v1
    memory cgroup is not, the v1 memory cgroup."""
    v2 = None
    v1 = None
    with open("/proc/%s/cgroup" % pid) as f:
        for line in f:
            hid, ctrls, path = line.rstrip("\n").split(":", 2)
            if hid == "0":
                v2 = path
            elif "memory" in ctrls.split(","):
                v1 = path
    if v2 == "/" and v1 not in (None, "/") and cgroup_v1_memory_root():
        return os.stat(cgroup_v1_memory_root() + v1).st_ino, "v1:memory"
    return own_cgroup2_id(pid), "v2"


def kernel_btf_has(name):
    """True when the running kernel's BTF names a type `name`."""
    with open("/sys/kernel/btf/vmlinux", "rb") as f:
        return b"\0" + name.encode() + b"\0" in f.read()


def own_comm():
    with open("/proc/self/comm") as f:
        return f.read().strip()


def assert_recent(tc, ev, within=120):
    ts = ev["ts"]
    secs = calendar.timegm(time.strptime(ts[:19], "%Y-%m-%dT%H:%M:%S"))
    tc.assertLess(abs(secs - time.time()), within, ts)


def free_port_family(family, host):
    s = socket.socket(family, socket.SOCK_STREAM)
    s.bind((host, 0))
    port = s.getsockname()[1]
    s.close()
    return port


def ipv6_loopback():
    try:
        s = socket.socket(socket.AF_INET6, socket.SOCK_STREAM)
        s.bind(("::1", 0))
        s.close()
        return True
    except OSError:
        return False


def _write(path, text):
    with open(path, "w") as f:
        f.write(text)


def _rmdir(path, tries=50):
    for _ in range(tries):
        try:
            os.rmdir(path)
            return
        except FileNotFoundError:
            return
        except OSError:
            time.sleep(0.1)


class Cgroup2:
    """A fresh directory below the cgroup2 mount."""

    def __init__(self, tc, cleanup=True):
        root = cgroup2_root()
        if root is None:
            tc.fail("no cgroup2 file system is mounted")
        _seq[0] += 1
        self.root = root
        self.rel = "/tapio-test-%d-%d" % (os.getpid(), _seq[0])
        self.path = root + self.rel
        os.mkdir(self.path)
        self.id = os.stat(self.path).st_ino
        if cleanup:
            tc.addCleanup(self.remove)

    def attach(self, pid):
        _write(os.path.join(self.path, "cgroup.procs"), str(pid))

    def run(self, argv):
        """Runs argv inside the cgroup and waits for it."""
        script = 'echo $$ > "%s/cgroup.procs" && exec "$@"' % self.path
        subprocess.run(["/bin/sh", "-c", script, "sh"] + argv, stdout=subprocess.DEVNULL, check=True)

    def remove(self):
        _rmdir(self.path)


class MemoryCgroup:
    """A memory cgroup with a small limit: cgroup v1 memory where that
    controller is mounted (hybrid hosts), else cgroup2 memory.max. The task
    also goes into its own cgroup2 directory, whose id oom.kill must carry."""

    HOG = ("a = []\n"
           "while True:\n"
           "    a.append(bytearray(b'\\x01') * (1 << 20))\n")

    def __init__(self, tc, limit):
        self.v2 = Cgroup2(tc)
        self.v1 = None
        v1root = cgroup_v1_memory_root()
        if v1root:
            self.v1 = os.path.join(v1root, "tapio-oom-%d" % os.getpid())
            os.makedirs(self.v1, exist_ok=True)
            tc.addCleanup(_rmdir, self.v1)
            _write(os.path.join(self.v1, "memory.limit_in_bytes"), str(limit))
            try:
                _write(os.path.join(self.v1, "memory.memsw.limit_in_bytes"), str(limit))
            except OSError:
                pass  # no swap accounting
            try:
                _write(os.path.join(self.v1, "memory.swappiness"), "0")
            except OSError:
                pass
        else:
            ctl = os.path.join(self.v2.root, "cgroup.controllers")
            with open(ctl) as f:
                if "memory" not in f.read().split():
                    tc.fail("no memory controller: neither cgroup v1 memory nor cgroup2 memory")
            _write(os.path.join(self.v2.root, "cgroup.subtree_control"), "+memory")
            _write(os.path.join(self.v2.path, "memory.max"), str(limit))
            try:
                _write(os.path.join(self.v2.path, "memory.swap.max"), "0")
            except OSError:
                pass
        self.cgroup2_id = self.v2.id

    def run_hog(self):
        moves = 'echo $$ > "%s/cgroup.procs"' % self.v2.path
        if self.v1:
            moves += ' && echo $$ > "%s/cgroup.procs"' % self.v1
        return subprocess.Popen(["/bin/sh", "-c", moves + ' && exec "$@"', "sh",
                                 sys.executable, "-c", self.HOG])


class VethNetns:
    """A network namespace reached through a veth pair:
    host_ip (here) <-> ns_ip (there)."""

    def __init__(self, tc):
        n = os.getpid() % 200 + 20
        self.ns = "tapio-rt-%d" % os.getpid()
        self.host_if = "tprt%dh" % os.getpid()
        self.ns_if = "tprt%dn" % os.getpid()
        self.host_ip = "10.213.%d.1" % n
        self.ns_ip = "10.213.%d.2" % n
        self.tc = tc
        tc.addCleanup(self.close)
        self._ip("netns", "add", self.ns)
        self._ip("link", "add", self.host_if, "type", "veth", "peer", "name", self.ns_if)
        self._ip("link", "set", self.ns_if, "netns", self.ns)
        self._ip("addr", "add", self.host_ip + "/30", "dev", self.host_if)
        self._ip("link", "set", self.host_if, "up")
        self._nsip("addr", "add", self.ns_ip + "/30", "dev", self.ns_if)
        self._nsip("link", "set", self.ns_if, "up")
        self._nsip("link", "set", "lo", "up")
        self.procs = []

    def _ip(self, *args):
        subprocess.run(["ip"] + list(args), check=True)

    def _nsip(self, *args):
        subprocess.run(["ip", "netns", "exec", self.ns, "ip"] + list(args), check=True)

    def listen(self, port):
        """A server in the namespace that reads and discards."""
        code = ("import socket,sys\n"
                "s=socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)\n"
                "s.bind(('%s', %d)); s.listen(4); print('ready', flush=True)\n"
                "c,_=s.accept()\n"
                "while c.recv(65536): pass\n" % (self.ns_ip, port))
        p = subprocess.Popen(["ip", "netns", "exec", self.ns, sys.executable, "-c", code],
                             stdout=subprocess.PIPE)
        self.procs.append(p)
        line = p.stdout.readline()
        if line.strip() != b"ready":
            raise AssertionError("the server in %s did not start" % self.ns)
        return p

    def blackhole_return_path(self):
        self._nsip("route", "add", "blackhole", self.host_ip + "/32")

    def close(self):
        for p in self.procs:
            if p.poll() is None:
                p.kill()
            p.wait()
        subprocess.run(["ip", "netns", "del", self.ns], stderr=subprocess.DEVNULL)
        subprocess.run(["ip", "link", "del", self.host_if], stderr=subprocess.DEVNULL)
