"""Kernel tracer fidelity: cases where an event could name the wrong task,
port or reason. Each test makes the real case on this kernel and checks the
fields that `tapio trace -o json` reports.

Needs root (skips unprivileged; fails under CI=true).
"""
import os
import shutil
import socket
import subprocess
import sys
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from tapiotest import Tapio, free_port, need_root, skip_or_fail, tmpdir  # noqa: E402
import kernel_fixture as kf  # noqa: E402


def trace(*args, env=None):
    t = Tapio("trace", "-o", "json", *args, env=env)
    kf.wait_attached(t)
    return t


def data(ev):
    return ev["data"]


LISTENER = ("import socket,sys\n"
            "s=socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)\n"
            "s.bind((sys.argv[1], int(sys.argv[2]))); s.listen(8); print('ready', flush=True)\n"
            "while True:\n"
            "    c,_=s.accept(); c.close()\n")


def start_listener(tc, host, port):
    p = subprocess.Popen([sys.executable, "-c", LISTENER, host, str(port)], stdout=subprocess.PIPE)
    tc.addCleanup(p.stdout.close)
    tc.addCleanup(p.wait)
    tc.addCleanup(p.kill)
    if p.stdout.readline().strip() != b"ready":
        tc.fail("listener on %s:%d did not start" % (host, port))
    return p


class Listeners(unittest.TestCase):
    def setUp(self):
        need_root(self)

    def test_two_listeners_on_one_port_at_two_addresses(self):
        port = free_port()
        with trace("-e", "tcp.accept,tcp.listen") as t:
            a = start_listener(self, "127.0.0.2", port)
            b = start_listener(self, "127.0.0.3", port)
            ca = socket.create_connection(("127.0.0.2", port))
            cb = socket.create_connection(("127.0.0.3", port))
            pa, pb = ca.getsockname()[1], cb.getsockname()[1]
            acc_a = t.wait_for(lambda e: e["type"] == "tcp.accept" and data(e)["dport"] == pa, 10)
            acc_b = t.wait_for(lambda e: e["type"] == "tcp.accept" and data(e)["dport"] == pb, 10)
            lis = [e for e in t.events if e["type"] == "tcp.listen" and data(e)["sport"] == port]
            t.stop()
            ca.close()
            cb.close()
        for ev, proc, host in ((acc_a, a, "127.0.0.2"), (acc_b, b, "127.0.0.3")):
            self.assertIsNotNone(ev, t.events)
            d = data(ev)
            self.assertEqual(d["saddr"], host)
            self.assertEqual(d["sport"], port)
            self.assertTrue(d["task_known"], d)
            self.assertTrue(d["owner_known"], d)
            self.assertEqual(d["pid"], proc.pid, d)
        # tcp.listen names each listener and its address.
        got = sorted((data(e)["saddr"], data(e)["pid"]) for e in lis)
        self.assertEqual(got, sorted([("127.0.0.2", a.pid), ("127.0.0.3", b.pid)]))
        for e in lis:
            self.assertEqual(data(e)["state"], "LISTEN")
            self.assertEqual(data(e)["family"], "ipv4")

    def test_a_failed_listen_after_both_bound(self):
        """Two sockets bound with SO_REUSEADDR; the first listens, the
        second's listen() fails in the kernel's port check (EADDRINUSE)
        after the socket entered LISTEN: the first keeps its accepts."""
        port = free_port()
        code = ("import socket,sys\n"
                "a=socket.socket(); a.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)\n"
                "b=socket.socket(); b.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)\n"
                "a.bind(('127.0.0.1', %d)); b.bind(('127.0.0.1', %d)); a.listen(4)\n"
                "try:\n"
                "    b.listen(4); print('listened', flush=True)\n"
                "except OSError as e:\n"
                "    print('refused', e.errno, flush=True)\n"
                "b.close()\n"
                "c,_=a.accept(); sys.stdin.read()\n" % (port, port))
        with trace("-e", "tcp.accept,tcp.listen") as t:
            p = subprocess.Popen([sys.executable, "-c", code], stdin=subprocess.PIPE,
                                 stdout=subprocess.PIPE)
            self.addCleanup(p.stdout.close)
            self.addCleanup(p.stdin.close)
            self.addCleanup(p.wait)
            self.addCleanup(p.kill)
            line = p.stdout.readline().decode()
            self.assertTrue(line.startswith("refused 98"), line)
            c = socket.create_connection(("127.0.0.1", port))
            cport = c.getsockname()[1]
            acc = t.wait_for(lambda e: e["type"] == "tcp.accept" and data(e)["dport"] == cport, 10)
            time.sleep(0.2)
            lis = [e for e in t.events if e["type"] == "tcp.listen" and data(e)["sport"] == port]
            t.stop()
            c.close()
        self.assertIsNotNone(acc, t.events)
        self.assertTrue(data(acc)["task_known"], data(acc))
        self.assertEqual(data(acc)["pid"], p.pid)
        self.assertEqual(len(lis), 1, lis)

    def test_dual_stack_listener_reports_ipv4_clients_as_ipv4(self):
        if not kf.ipv6_loopback():
            skip_or_fail(self, "no IPv6 loopback (::1) on this host")
        port = free_port()
        with trace("-e", "tcp.accept,tcp.connect,tcp.close,tcp.listen", "-p", os.getpid()) as t:
            srv = socket.socket(socket.AF_INET6)
            srv.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
            srv.bind(("::", port))
            srv.listen(1)
            c = socket.create_connection(("127.0.0.1", port))
            conn, _ = srv.accept()
            cport = c.getsockname()[1]
            conn.sendall(b"x" * 10)
            c.recv(10)
            conn.close()
            c.close()
            srv.close()
            acc = t.wait_for(lambda e: e["type"] == "tcp.accept" and data(e)["dport"] == cport, 10)
            close_s = t.wait_for(lambda e: e["type"] == "tcp.close" and data(e)["dport"] == cport, 10)
            lis = t.wait_for(lambda e: e["type"] == "tcp.listen" and data(e)["sport"] == port, 10)
            t.stop()
        for ev in (acc, close_s):
            self.assertIsNotNone(ev, t.events)
            d = data(ev)
            self.assertEqual(d["family"], "ipv4", d)
            self.assertEqual(d["saddr"], "127.0.0.1")
            self.assertEqual(d["daddr"], "127.0.0.1")
            self.assertEqual(d["pid"], os.getpid())
            self.assertTrue(d["owner_known"])
        self.assertEqual(data(close_s)["bytes_sent"], 10)
        self.assertIsNotNone(lis, t.events)
        self.assertEqual(data(lis)["family"], "ipv6")
        self.assertEqual(data(lis)["saddr"], "::")


class FailedConnects(unittest.TestCase):
    def setUp(self):
        need_root(self)

    def test_refused_connect_has_its_port_and_ECONNREFUSED(self):
        closed = free_port()
        with trace("-e", "tcp.close", "-p", os.getpid()) as t:
            c = socket.socket()
            with self.assertRaises(ConnectionRefusedError):
                c.connect(("127.0.0.1", closed))
            cport = c.getsockname()[1]
            c.close()
            ev = t.wait_for(lambda e: data(e)["dport"] == closed, 10)
            t.stop()
        self.assertIsNotNone(ev, t.events)
        d = data(ev)
        self.assertNotEqual(cport, 0)
        self.assertEqual(d["sport"], cport)
        self.assertEqual(d["oldstate"], "SYN_SENT")
        self.assertEqual(d["error"], "ECONNREFUSED")
        self.assertEqual(d["errno"], 111)
        self.assertEqual(d["pid"], os.getpid())
        self.assertEqual(d["bytes_sent"], 0)
        self.assertEqual(d["bytes_received"], 0)

    def test_timed_out_connect_says_ETIMEDOUT(self):
        net = kf.VethNetns(self)
        port = 19000 + os.getpid() % 1000
        net.blackhole_return_path()
        with trace("-e", "tcp.close,tcp.connect", "-p", os.getpid()) as t:
            c = socket.socket()
            # One SYN retry: the connect gives up after about 3 s.
            c.setsockopt(socket.IPPROTO_TCP, socket.TCP_SYNCNT, 1)
            with self.assertRaises(OSError):
                c.connect((net.ns_ip, port))
            cport = c.getsockname()[1]
            c.close()
            ev = t.wait_for(lambda e: e["type"] == "tcp.close" and data(e)["dport"] == port, 10)
            t.stop()
        self.assertIsNotNone(ev, t.events)
        d = data(ev)
        self.assertEqual(d["sport"], cport)
        self.assertEqual(d["saddr"], net.host_ip)
        self.assertEqual(d["daddr"], net.ns_ip)
        self.assertEqual(d["oldstate"], "SYN_SENT")
        self.assertEqual(d["error"], "ETIMEDOUT")
        self.assertGreaterEqual(d["total_retrans"], 1)
        self.assertFalse([e for e in t.events if e["type"] == "tcp.connect"])


LEADER_LEAVES_FIRST = r"""
import ctypes, os, threading, time
libc = ctypes.CDLL(None)
def late():
    time.sleep(0.3)
    os._exit(5)
threading.Thread(target=late).start()
libc.pthread_exit(None)
"""

EXEC_FROM_THREAD = r"""
import os, threading, time
def run():
    os.execv("/bin/sh", ["sh", "-c", "exit 3"])
threading.Thread(target=run).start()
time.sleep(5)
"""


class Processes(unittest.TestCase):
    def setUp(self):
        need_root(self)

    def exits_of(self, t, pid):
        return [e for e in t.events if e["type"] == "process.exit" and data(e)["pid"] == pid]

    def test_leader_that_leaves_first_gives_one_exit_with_the_real_code(self):
        with trace("-e", "process.exit") as t:
            p = subprocess.Popen([sys.executable, "-c", LEADER_LEAVES_FIRST])
            self.assertEqual(p.wait(10), 5)
            ev = t.wait_for(lambda e: data(e)["pid"] == p.pid, 10)
            time.sleep(0.3)
            t.stop()
        self.assertIsNotNone(ev, t.events)
        exits = self.exits_of(t, p.pid)
        self.assertEqual(len(exits), 1, exits)
        d = data(exits[0])
        self.assertEqual(d["exit_code"], 5)
        self.assertNotEqual(d["tid"], p.pid, "the last thread is not the leader")
        self.assertGreater(d["duration_ns"], 250_000_000, "from the process's start")

    def test_exec_from_a_thread_gives_no_exit_until_the_end(self):
        with trace("-e", "process.exit,process.exec") as t:
            p = subprocess.Popen([sys.executable, "-c", EXEC_FROM_THREAD])
            self.assertEqual(p.wait(10), 3)
            ev = t.wait_for(lambda e: e["type"] == "process.exit" and data(e)["pid"] == p.pid, 10)
            time.sleep(0.3)
            t.stop()
        self.assertIsNotNone(ev, t.events)
        exits = self.exits_of(t, p.pid)
        self.assertEqual([data(e)["exit_code"] for e in exits], [3], exits)
        execs = [e for e in t.events if e["type"] == "process.exec" and data(e)["pid"] == p.pid
                 and data(e)["filename"] == "/bin/sh"]
        self.assertEqual(len(execs), 1, t.events)

    def test_setuid_exec_has_euid_and_egid(self):
        d = tmpdir(self)
        binary = os.path.join(d, "suid-true")
        shutil.copy("/bin/true", binary)
        os.chown(binary, 65534, 65534)
        os.chmod(binary, 0o6755)
        os.chmod(d, 0o755)
        with trace("-e", "process.exec") as t:
            subprocess.run([binary, "tapio-suid-marker"], check=True)
            ev = t.wait_for(lambda e: data(e)["filename"] == binary, 10)
            t.stop()
        self.assertIsNotNone(ev, t.events)
        x = data(ev)
        if x["euid"] == 0:
            self.fail("the setuid bit had no effect (nosuid mount?): %r" % x)
        self.assertEqual((x["uid"], x["gid"]), (os.getuid(), os.getgid()))
        self.assertEqual((x["euid"], x["egid"]), (65534, 65534))
        self.assertFalse(x["args_unread"])
        self.assertEqual(x["args"], [binary, "tapio-suid-marker"])

    def test_filename_of_exactly_255_bytes_is_not_truncated(self):
        d = tmpdir(self)
        names = {}
        for n in (255, 256, 300):
            parent = os.path.join(d, str(n))
            while n - len(parent) - 1 > 200:
                parent = os.path.join(parent, "y" * 100)
            os.makedirs(parent)
            link = os.path.join(parent, "x" * (n - len(parent) - 1))
            self.assertEqual(len(link), n)
            os.symlink("/bin/true", link)
            names[n] = link
        with trace("-e", "process.exec") as t:
            for n in (255, 256, 300):
                subprocess.run([names[n]], check=True)
            evs = {}
            for n in (255, 256, 300):
                prefix = names[n][:255]
                evs[n] = t.wait_for(lambda e, p=prefix: data(e)["filename"].startswith(p)
                                    and e not in evs.values(), 10)
            t.stop()
        self.assertEqual(data(evs[255])["filename"], names[255])
        self.assertFalse(data(evs[255])["filename_truncated"])
        for n in (256, 300):
            self.assertEqual(data(evs[n])["filename"], names[n][:255])
            self.assertTrue(data(evs[n])["filename_truncated"], n)


# Execs the file by a descriptor: /bin/true by its fd, or a copy of it in a
# memfd; prints what /proc shows for the fd, then its pid, before exec.
FEXECVE = r"""
import os, sys
if sys.argv[1] == "memfd":
    fd = os.memfd_create("tapio-payload", 0)
    with open("/bin/true", "rb") as f:
        os.write(fd, f.read())
else:
    fd = os.open(sys.argv[1], os.O_RDONLY)
print(os.readlink("/proc/self/fd/%d" % fd), fd, flush=True)
os.execve(fd, ["true", sys.argv[2]], {})
"""

# Drops one capability from the bounding set, then execs.
DROP_CAP = r"""
import ctypes, os, sys
PR_CAPBSET_DROP = 24
libc = ctypes.CDLL(None, use_errno=True)
if libc.prctl(PR_CAPBSET_DROP, int(sys.argv[1]), 0, 0, 0) != 0:
    sys.exit("prctl: %s" % os.strerror(ctypes.get_errno()))
os.execv("/bin/true", ["/bin/true", sys.argv[2]])
"""

CAP_NET_RAW = 13


def own_caps():
    """This process's capability sets from /proc/self/status, as ints."""
    caps = {}
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("Cap"):
                k, v = line.split(":")
                caps[k] = int(v, 16)
    return caps


def caps_of(x):
    return {k: int(x["cap_" + k], 16) for k in ("inheritable", "permitted", "effective", "ambient")}


class ExecCredentialsAndFiles(unittest.TestCase):
    """process.exec's capability sets and what was run (exe, memfd)."""

    def setUp(self):
        need_root(self)

    def exec_of(self, t, pid, args):
        return t.wait_for(lambda e: e["type"] == "process.exec" and data(e)["pid"] == pid
                          and data(e)["args"] == args, 10)

    def run_traced(self, argv, args):
        """Runs argv; returns the exec (of its pid) whose argv is args, and
        what argv printed."""
        with trace("-e", "process.exec") as t:
            p = subprocess.Popen(argv, stdout=subprocess.PIPE, text=True)
            out, _ = p.communicate(timeout=10)
            self.assertEqual(p.returncode, 0, out)
            ev = self.exec_of(t, p.pid, args)
            t.stop()
        self.assertIsNotNone(ev, [data(e) for e in t.events if data(e)["pid"] == p.pid])
        return data(ev), out

    def test_root_exec_has_the_full_capability_sets(self):
        argv = ["/bin/true", "tapio-caps-root"]
        x, _ = self.run_traced(argv, argv)
        mine = own_caps()
        self.assertEqual((x["uid"], x["euid"]), (0, 0))
        caps = caps_of(x)
        # root without file capabilities: permitted = effective = the
        # bounding set; inheritable is kept; ambient is cleared for root.
        self.assertEqual(caps["permitted"], mine["CapBnd"], x)
        self.assertEqual(caps["effective"], mine["CapBnd"], x)
        self.assertEqual(caps["inheritable"], mine["CapInh"], x)
        self.assertEqual(caps["ambient"], 0, x)
        self.assertRegex(x["cap_effective"], "^[0-9a-f]{16}$")

    def test_a_capability_dropped_from_the_bounding_set_is_absent(self):
        mine = own_caps()
        self.assertTrue(mine["CapBnd"] & (1 << CAP_NET_RAW), "CAP_NET_RAW not in this bounding set")
        x, _ = self.run_traced([sys.executable, "-c", DROP_CAP, str(CAP_NET_RAW),
                                "tapio-caps-drop"], ["/bin/true", "tapio-caps-drop"])
        caps = caps_of(x)
        want = mine["CapBnd"] & ~(1 << CAP_NET_RAW)
        self.assertEqual(caps["effective"], want, x)
        self.assertEqual(caps["permitted"], want, x)
        self.assertFalse(caps["effective"] & (1 << CAP_NET_RAW))

    def test_non_root_exec_has_no_effective_capabilities(self):
        x, _ = self.run_traced(["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups",
                                "/bin/true", "tapio-caps-nobody"], ["/bin/true", "tapio-caps-nobody"])
        self.assertEqual((x["uid"], x["euid"]), (65534, 65534))
        caps = caps_of(x)
        self.assertEqual(caps["effective"], 0, x)
        self.assertEqual(caps["permitted"], 0, x)
        self.assertEqual(caps["ambient"], 0, x)

    def test_fexecve_names_the_file_that_was_run(self):
        x, out = self.run_traced([sys.executable, "-c", FEXECVE, "/bin/true", "tapio-fexecve"],
                                 ["true", "tapio-fexecve"])
        link, fd = out.strip().rsplit(" ", 1)
        self.assertEqual(x["filename"], "/dev/fd/%s" % fd)
        self.assertEqual(x["exe"], os.path.realpath("/bin/true"))
        self.assertEqual(x["exe"], link)
        self.assertFalse(x["memfd"])
        self.assertFalse(x["exe_truncated"])

    def test_memfd_exec_is_flagged_and_named_as_proc_shows_it(self):
        x, out = self.run_traced([sys.executable, "-c", FEXECVE, "memfd", "tapio-memfd"],
                                 ["true", "tapio-memfd"])
        link, fd = out.strip().rsplit(" ", 1)
        self.assertEqual(link, "/memfd:tapio-payload (deleted)")
        self.assertEqual(x["filename"], "/dev/fd/%s" % fd)
        self.assertEqual(x["exe"], link)
        self.assertTrue(x["memfd"])
        self.assertFalse(x["exe_truncated"])

    def test_exe_of_a_plain_exec_is_the_resolved_path(self):
        # /bin/sh is a symlink (to dash on Debian): exe is where it leads.
        argv = ["/bin/sh", "-c", "true", "tapio-exe-sh"]
        x, _ = self.run_traced(argv, argv)
        self.assertEqual(x["filename"], "/bin/sh")
        self.assertEqual(x["exe"], os.path.realpath("/bin/sh"))
        self.assertFalse(x["memfd"])

    def test_exe_too_long_or_too_deep_keeps_its_last_components_and_is_flagged(self):
        d = tmpdir(self)
        os.chmod(d, 0o755)
        cases = {}
        long_dir = os.path.join(d, "l" * 120, "m" * 120)
        deep_dir = os.path.join(d, *(["d"] * 40))
        for name, parent in (("long", long_dir), ("deep", deep_dir)):
            os.makedirs(parent)
            path = os.path.join(parent, "tapio-true-" + name)
            shutil.copy("/bin/true", path)
            cases[name] = os.path.realpath(path)
        self.assertGreater(len(cases["long"]), 255)
        for name, path in cases.items():
            marker = "tapio-exe-" + name
            x, _ = self.run_traced([path, marker], [path, marker])
            self.assertTrue(x["exe_truncated"], x)
            self.assertTrue(x["exe"].startswith("/"), x)
            self.assertTrue(path.endswith(x["exe"]), (path, x["exe"]))
            self.assertTrue(x["exe"].endswith("/tapio-true-" + name), x)
            self.assertLess(len(x["exe"]), len(path))


PREFORK = r"""
import os, socket, sys
s = socket.socket(); s.bind(("127.0.0.1", 0)); s.listen(8)
print(s.getsockname()[1], flush=True)
child = os.fork()
if child == 0:
    c, _ = s.accept()
    if sys.argv[1] == "server-first":
        c.recv(5)
    else:
        while c.recv(4096):
            pass
    c.close()
    os._exit(0)
print(child, flush=True)
os.waitpid(child, 0)
"""


class Prefork(unittest.TestCase):
    """A parent listens, a forked child accepts and closes: the server
    side's tcp.close names the child, the task that held the socket."""

    def setUp(self):
        need_root(self)

    def run_case(self, mode, env=None):
        with trace("-e", "tcp.accept,tcp.close", env=env) as t:
            p = subprocess.Popen([sys.executable, "-c", PREFORK, mode], stdout=subprocess.PIPE)
            self.addCleanup(p.stdout.close)
            self.addCleanup(p.wait)
            self.addCleanup(p.kill)
            port = int(p.stdout.readline())
            child = int(p.stdout.readline())
            c = socket.create_connection(("127.0.0.1", port))
            cport = c.getsockname()[1]
            c.sendall(b"hello")
            if mode == "server-first":
                self.assertEqual(c.recv(10), b"")  # the child's FIN
            c.close()
            self.assertEqual(p.wait(10), 0)
            srv = lambda e: data(e)["sport"] == port and data(e)["dport"] == cport  # noqa: E731
            close = t.wait_for(lambda e: e["type"] == "tcp.close" and srv(e), 10)
            acc = t.wait_for(lambda e: e["type"] == "tcp.accept" and srv(e), 10)
            t.stop()
        self.assertIsNotNone(close, t.events)
        self.assertIsNotNone(acc, t.events)
        d = data(close)
        self.assertEqual(d["pid"], child, d)
        self.assertEqual(d["tgid"], child, d)
        self.assertEqual(d["ppid"], p.pid, d)
        self.assertTrue(d["task_known"], d)
        self.assertTrue(d["owner_known"], d)
        self.assertEqual(d["oldstate"], "FIN_WAIT2" if mode == "server-first" else "LAST_ACK", d)
        self.assertEqual(d["bytes_received"], 5, d)
        self.assertEqual(d["bytes_sent"], 0, d)
        self.assertTrue(d["start_seen"], d)
        # The accept itself still names the listener: the parent.
        self.assertEqual(data(acc)["pid"], p.pid, data(acc))

    def test_child_closes_first(self):
        self.run_case("server-first")

    def test_client_closes_first(self):
        self.run_case("client-first")

    def test_child_closes_first_with_the_socks_hash(self):
        """The fallback for kernels whose tracing programs have no
        socket-local storage (forced here) re-owns the same way."""
        self.run_case("server-first", env={"TAPIO_TEST_SOCKS_HASH": "1"})


NS_CONNECTS = r"""
import socket, sys
n = int(sys.argv[1])
s = socket.socket(); s.bind(("127.0.0.1", 0)); s.listen(64)
for _ in range(n):
    c = socket.create_connection(s.getsockname())
    a, _ = s.accept()
    c.close(); a.close()
print(s.getsockname()[1], flush=True)
"""


class SocketStorage(unittest.TestCase):
    """Socket owners live in socket-local storage; an entry that cannot be
    made is counted in kernel_map_errors{map="socks"}. A socket's storage is
    charged to its option memory, so a network namespace with
    net.core.optmem_max at 0 is a full map for every socket in it."""

    def setUp(self):
        need_root(self)

    def test_a_full_socks_map_is_counted(self):
        from test_metrics import http_get, parse_exposition, clean_env
        ns = "tapio-optmem-%d" % os.getpid()
        subprocess.run(["ip", "netns", "add", ns], check=True)
        self.addCleanup(subprocess.run, ["ip", "netns", "del", ns])
        nsexec = ["ip", "netns", "exec", ns]
        subprocess.run(nsexec + ["ip", "link", "set", "lo", "up"], check=True)
        subprocess.run(nsexec + ["sysctl", "-q", "-w", "net.core.optmem_max=0"], check=True)
        d = tmpdir(self)
        mport = free_port()
        agent = Tapio("agent", "--collectors", "kernel", "--events", "tcp.connect,tcp.close",
                      "--output", "stdout", "--queue-size", "1M", "--state-dir", d,
                      "--metrics-addr", "127.0.0.1:%d" % mport,
                      env=dict(clean_env(), TAPIO_TEST_SOCKS_HASH="0"))
        self.addCleanup(agent.stop)
        for _ in range(200):
            try:
                if http_get(mport, "/readyz")[0] == 200:
                    break
            except OSError:
                pass
            time.sleep(0.1)
        else:
            self.fail("the agent did not get ready: %r" % agent.stderr_lines)
        key = 'tapio_kernel_map_errors_total{collector="kernel",map="socks"}'

        def errors():
            for _ in range(100):
                try:
                    return parse_exposition(self, http_get(mport, "/metrics")[2])[key]
                except OSError:
                    time.sleep(0.1)
            self.fail("no /metrics")

        before = errors()
        n = 20
        out = subprocess.run(nsexec + [sys.executable, "-c", NS_CONNECTS, str(n)], check=True,
                             stdout=subprocess.PIPE).stdout
        port = int(out)
        evs = []
        deadline = time.time() + 10
        while time.time() < deadline and len(evs) < 2 * n:
            evs = agent.matching(lambda e: e["type"] in ("tcp.connect", "tcp.close")
                                 and port in (e["data"]["sport"], e["data"]["dport"]))
            time.sleep(0.1)
        after = errors()
        # Each socket fails at its start: the connecting one and the
        # accepted child (others on the host may add theirs).
        self.assertGreaterEqual(after - before, 2 * n, (before, after))
        # The events still come, without an owner: no entry, no task.
        conn = [e for e in evs if e["type"] == "tcp.connect"]
        self.assertEqual(len(conn), n, evs)
        for e in conn:
            self.assertEqual(e["data"]["dport"], port)
            self.assertFalse(e["data"]["owner_known"], e)
            self.assertFalse(e["data"]["task_known"], e)
        # The same connects in this namespace make no errors.
        mid = errors()
        subprocess.run([sys.executable, "-c", NS_CONNECTS, str(n)], check=True,
                       stdout=subprocess.PIPE)
        time.sleep(0.5)
        self.assertEqual(errors(), mid)


if __name__ == "__main__":
    unittest.main()
