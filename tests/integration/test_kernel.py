"""Kernel tracer: load the real BPF programs into this kernel, trigger each
kind of event, and check the fields that arrive through `tapio trace -o json`.

Needs root (skips unprivileged; fails under CI=true).
"""
import json
import os
import signal
import socket
import subprocess
import sys
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from tapiotest import TAPIO, Tapio, free_port, need_root, skip_or_fail, tmpdir  # noqa: E402
import kernel_fixture as kf  # noqa: E402


def trace(*args):
    """A running `tapio trace -o json ARGS`, once its programs are attached."""
    t = Tapio("trace", "-o", "json", *args)
    # The first events arrive once the programs are attached; give it a
    # moment and fail early if it died.
    kf.wait_attached(t)
    return t


def data(ev):
    return ev["data"]


class Process(unittest.TestCase):
    def setUp(self):
        need_root(self)

    def test_exec_with_known_args(self):
        marker = "tapio-exec-%d" % os.getpid()
        odd = "tab\tquote\"back\\slash\x01"
        with trace("-e", "process.exec") as t:
            p = subprocess.run(["/bin/echo", marker, "two words", odd], stdout=subprocess.DEVNULL)
            self.assertEqual(p.returncode, 0)
            ev = t.wait_for(lambda e: e["type"] == "process.exec" and marker in data(e)["args"], 10)
            rc = t.stop()
        self.assertEqual(rc, 0, t.stderr_lines)
        self.assertIsNotNone(ev, "no process.exec for /bin/echo")
        d = data(ev)
        self.assertEqual(ev["source"], "kernel")
        self.assertEqual(d["filename"], "/bin/echo")
        self.assertEqual(d["args"], ["/bin/echo", marker, "two words", odd])
        self.assertEqual(d["argc"], 4)
        self.assertFalse(d["args_truncated"])
        self.assertEqual(d["comm"], "echo")
        self.assertEqual(d["ppid"], os.getpid())
        self.assertEqual(d["pid"], d["tgid"])
        self.assertEqual(d["uid"], 0)
        self.assertEqual(d["gid"], 0)
        self.assertEqual((d["cgroup_id"], d["cgroup_hierarchy"]), kf.own_header_cgroup())
        self.assertEqual(ev["meta"]["cgroup_id"], str(d["cgroup_id"]))
        self.assertEqual(d["pidns"], os.stat("/proc/self/ns/pid").st_ino)
        self.assertEqual(d["mntns"], os.stat("/proc/self/ns/mnt").st_ino)
        self.assertIn(d["cpu"], range(os.cpu_count()))
        kf.assert_recent(self, ev)

    def test_exec_truncated_argv(self):
        marker = "tapio-trunc-%d" % os.getpid()
        args = ["/bin/true", marker] + ["x" * 99 for _ in range(20)]  # ~2 KiB of argv
        with trace("-e", "process.exec") as t:
            subprocess.run(args, check=True)
            ev = t.wait_for(lambda e: e["type"] == "process.exec" and marker in data(e)["args"], 10)
            t.stop()
        self.assertIsNotNone(ev)
        d = data(ev)
        self.assertTrue(d["args_truncated"])
        self.assertEqual(d["argc"], len(args))
        # 1024 bytes of "arg\0arg\0...": the strings it holds, the last one cut.
        self.assertEqual(sum(len(a) + 1 for a in d["args"]) - 1, 1024)
        self.assertEqual(d["args"][:2], ["/bin/true", marker])
        self.assertEqual(d["args"][-1], "x" * len(d["args"][-1]))
        self.assertLess(len(d["args"][-1]), 99)

    def test_exit_code_and_sigkill(self):
        with trace("-e", "process.exit") as t:
            t0 = time.time()
            p = subprocess.Popen(["/bin/sh", "-c", "sleep 0.3; exit 7"])
            p.wait()
            took = time.time() - t0
            q = subprocess.Popen(["/bin/sleep", "30"])
            time.sleep(0.2)
            q.kill()
            q.wait()
            ev7 = t.wait_for(lambda e: e["type"] == "process.exit" and data(e)["pid"] == p.pid, 10)
            ev9 = t.wait_for(lambda e: e["type"] == "process.exit" and data(e)["pid"] == q.pid, 10)
            t.stop()
        self.assertIsNotNone(ev7)
        self.assertIsNotNone(ev9)
        d = data(ev7)
        self.assertEqual(d["exit_code"], 7)
        self.assertEqual(d["signal"], 0)
        self.assertEqual(d["comm"], "sh")
        self.assertEqual(d["ppid"], os.getpid())
        self.assertGreater(d["duration_ns"], 250_000_000)
        self.assertLess(d["duration_ns"], (took + 0.5) * 1e9)
        d = data(ev9)
        self.assertEqual(d["signal"], 9)
        self.assertEqual(d["exit_code"], 0)
        self.assertEqual(d["comm"], "sleep")
        self.assertGreater(d["duration_ns"], 150_000_000)

    def test_fork(self):
        with trace("-e", "process.fork", "-p", os.getpid()) as t:
            child = os.fork()
            if child == 0:
                os._exit(3)
            os.waitpid(child, 0)
            ev = t.wait_for(lambda e: e["type"] == "process.fork" and data(e)["child_pid"] == child, 10)
            t.stop()
        self.assertIsNotNone(ev)
        d = data(ev)
        self.assertEqual(d["child_tgid"], child)
        self.assertEqual(d["parent_tgid"], os.getpid())
        self.assertEqual(d["parent_pid"], os.getpid())  # forked from the main thread
        self.assertEqual(d["pid"], os.getpid())
        self.assertEqual(d["comm"], kf.own_comm())


    THREADS = ("import threading, time\n"
               "t = threading.Thread(target=time.sleep, args=(0.2,)); t.start(); t.join()\n")

    def _thread_events(self, *extra):
        with trace("-e", "process.fork,process.exit", *extra) as t:
            p = subprocess.run([sys.executable, "-c", self.THREADS])
            self.assertEqual(p.returncode, 0)
            lead = t.wait_for(lambda e: e["type"] == "process.exit" and data(e)["comm"] == "python3"
                              and data(e)["ppid"] == os.getpid() and data(e)["tid"] == data(e)["tgid"], 10)
            t.stop()
        self.assertIsNotNone(lead, t.stderr_lines)
        pid = data(lead)["tgid"]
        return pid, [e for e in t.events if data(e).get("tgid") == pid or data(e).get("child_tgid") == pid]

    def test_threads_only_with_all_threads(self):
        pid, evs = self._thread_events()
        self.assertFalse([e for e in evs if e["type"] == "process.fork" and data(e)["child_tgid"] == pid
                          and data(e)["child_pid"] != pid], evs)
        self.assertEqual([data(e)["tid"] for e in evs if e["type"] == "process.exit"], [pid])

        pid, evs = self._thread_events("--all-threads")
        forks = [e for e in evs if e["type"] == "process.fork" and data(e)["parent_tgid"] == pid]
        self.assertEqual(len(forks), 1, evs)
        tid = data(forks[0])["child_pid"]
        self.assertNotEqual(tid, pid)
        self.assertEqual(data(forks[0])["child_tgid"], pid)
        exits = sorted(data(e)["tid"] for e in evs if e["type"] == "process.exit")
        self.assertEqual(exits, sorted([pid, tid]))


class Filters(unittest.TestCase):
    def setUp(self):
        need_root(self)

    def test_pid_filter_keeps_others_out(self):
        with trace("-e", "process.fork,process.exec", "-p", os.getpid()) as t:
            other = subprocess.run(["/bin/sh", "-c", "/bin/true; /bin/true"])  # forks + execs elsewhere
            self.assertEqual(other.returncode, 0)
            child = os.fork()
            if child == 0:
                os._exit(0)
            os.waitpid(child, 0)
            ev = t.wait_for(lambda e: data(e).get("child_pid") == child, 10)
            time.sleep(0.3)
            t.stop()
        self.assertIsNotNone(ev)
        self.assertTrue(t.events)
        for e in t.events:
            self.assertEqual(data(e)["tgid"], os.getpid(), e)

    def test_cgroup_filter_keeps_others_out(self):
        cg = kf.Cgroup2(self)
        inside = "tapio-in-%d" % os.getpid()
        outside = "tapio-out-%d" % os.getpid()
        with trace("-e", "process.exec", "--cgroup", cg.path) as t:
            subprocess.run(["/bin/echo", outside], stdout=subprocess.DEVNULL, check=True)
            cg.run(["/bin/echo", inside])
            ev = t.wait_for(lambda e: inside in data(e)["args"], 10)
            time.sleep(0.3)
            t.stop()
        self.assertIsNotNone(ev, t.stderr_lines)
        self.assertEqual(data(ev)["cgroup_id"], cg.id)
        for e in t.events:
            self.assertNotIn(outside, data(e)["args"])
            self.assertEqual(data(e)["cgroup_id"], cg.id)

    def test_comm_filter(self):
        with trace("-e", "process.exec", "-c", "true") as t:
            subprocess.run(["/bin/echo", "x"], stdout=subprocess.DEVNULL, check=True)
            subprocess.run(["/bin/true"], check=True)
            ev = t.wait_for(lambda e: data(e)["comm"] == "true", 10)
            time.sleep(0.3)
            t.stop()
        self.assertIsNotNone(ev)
        self.assertTrue(all(data(e)["comm"] == "true" for e in t.events))

    def test_containers_only_drops_host_tasks(self):
        marker_host = "tapio-host-%d" % os.getpid()
        marker_ct = "tapio-ct-%d" % os.getpid()
        with trace("-e", "process.exec", "--containers") as t:
            subprocess.run(["/bin/echo", marker_host], stdout=subprocess.DEVNULL, check=True)
            # A new pid namespace, as a container runtime makes.
            subprocess.run(["unshare", "--pid", "--fork", "--mount-proc", "/bin/echo", marker_ct],
                           stdout=subprocess.DEVNULL, check=True)
            ev = t.wait_for(lambda e: marker_ct in data(e)["args"], 10)
            time.sleep(0.3)
            t.stop()
        self.assertIsNotNone(ev, t.stderr_lines)
        self.assertNotEqual(data(ev)["pidns"], os.stat("/proc/self/ns/pid").st_ino)
        for e in t.events:
            self.assertNotIn(marker_host, data(e)["args"])


class Tcp(unittest.TestCase):
    def setUp(self):
        need_root(self)

    def _conversation(self, family, host):
        port = kf.free_port_family(family, host)
        with trace("-e", "tcp.connect,tcp.accept,tcp.close", "-p", os.getpid()) as t:
            srv = socket.socket(family, socket.SOCK_STREAM)
            srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            srv.bind((host, port))
            srv.listen(1)
            cli = socket.create_connection((host, port))
            conn, _ = srv.accept()
            cport = cli.getsockname()[1]
            cli.sendall(b"a" * 1000)
            got = b""
            while len(got) < 1000:
                got += conn.recv(4096)
            conn.sendall(b"b" * 500)
            got = b""
            while len(got) < 500:
                got += cli.recv(4096)
            time.sleep(0.1)
            cli.close()
            conn.close()
            srv.close()

            def is_ev(typ, sport, dport):
                return lambda e: (e["type"] == typ and data(e)["sport"] == sport
                                  and data(e)["dport"] == dport)
            connect = t.wait_for(is_ev("tcp.connect", cport, port), 10)
            accept = t.wait_for(is_ev("tcp.accept", port, cport), 10)
            close_c = t.wait_for(is_ev("tcp.close", cport, port), 10)
            close_s = t.wait_for(is_ev("tcp.close", port, cport), 10)
            rc = t.stop()
        self.assertEqual(rc, 0)
        fam = "ipv4" if family == socket.AF_INET else "ipv6"
        for ev in (connect, accept, close_c, close_s):
            self.assertIsNotNone(ev, [e["type"] for e in t.events])
            d = data(ev)
            self.assertEqual(d["family"], fam)
            self.assertEqual(d["saddr"], host)
            self.assertEqual(d["daddr"], host)
            # The socket owner: this process connected and listened.
            self.assertEqual(d["pid"], os.getpid())
            self.assertTrue(d["owner_known"])
            self.assertEqual(d["comm"], kf.own_comm())
        self.assertEqual(data(connect)["oldstate"], "SYN_SENT")
        self.assertEqual(data(connect)["state"], "ESTABLISHED")
        self.assertEqual(data(accept)["oldstate"], "SYN_RECV")
        self.assertEqual(data(close_c)["state"], "CLOSE")
        # Payload bytes, exactly; the kernel's own counters (tcp_info's
        # tcpi_bytes_acked and tcpi_bytes_received) count sequence space:
        # the peer's FIN is one byte received; our acked FIN is one byte
        # sent, and so is the SYN on the connecting side.
        self.assertEqual(data(close_c)["bytes_sent"], 1000)
        self.assertEqual(data(close_c)["bytes_received"], 500)
        self.assertEqual(data(close_s)["bytes_sent"], 500)
        self.assertEqual(data(close_s)["bytes_received"], 1000)
        self.assertEqual(data(close_c)["tcpi_bytes_acked"], 1000 + 2)
        self.assertEqual(data(close_c)["tcpi_bytes_received"], 500 + 1)
        self.assertEqual(data(close_s)["tcpi_bytes_acked"], 500 + 1)
        self.assertEqual(data(close_s)["tcpi_bytes_received"], 1000 + 1)
        for c in (close_c, close_s):
            self.assertEqual(data(c)["errno"], 0)
            self.assertNotIn("error", data(c))
            self.assertGreater(data(c)["srtt_us"], 0)
            self.assertLess(data(c)["srtt_us"], 100_000)
            self.assertEqual(data(c)["total_retrans"], 0)
        for h in (connect, accept):
            self.assertGreater(data(h)["handshake_ns"], 0)
            self.assertLess(data(h)["handshake_ns"], 1_000_000_000)
        for c in (close_c, close_s):
            self.assertTrue(data(c)["start_seen"])
            self.assertGreater(data(c)["duration_ns"], 100_000_000)
            self.assertLess(data(c)["duration_ns"], 10_000_000_000)

    def test_connect_accept_close_ipv4(self):
        self._conversation(socket.AF_INET, "127.0.0.1")

    def test_connect_accept_close_ipv6(self):
        if not socket.has_ipv6 or not kf.ipv6_loopback():
            skip_or_fail(self, "no IPv6 loopback (::1) on this host")
        self._conversation(socket.AF_INET6, "::1")

    def test_sockets_older_than_tapio_keep_their_owner(self):
        """A listener and a connection that exist before tapio starts: the
        start-up seeding names their process on tcp.accept and tcp.close."""
        port = free_port()
        srv = socket.socket()
        srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        srv.bind(("127.0.0.1", port))
        srv.listen(4)
        old_cli = socket.create_connection(("127.0.0.1", port))
        old_conn, _ = srv.accept()
        old_port = old_cli.getsockname()[1]
        with trace("-e", "tcp.accept,tcp.close", "-p", os.getpid()) as t:
            cli = socket.create_connection(("127.0.0.1", port))
            conn, _ = srv.accept()
            new_port = cli.getsockname()[1]
            old_cli.sendall(b"z" * 10)
            time.sleep(0.1)
            for s in (cli, conn, old_cli, old_conn, srv):
                s.close()
            acc = t.wait_for(lambda e: e["type"] == "tcp.accept" and data(e)["dport"] == new_port, 10)
            close_old = t.wait_for(lambda e: e["type"] == "tcp.close" and data(e)["sport"] == old_port, 10)
            t.stop()
        self.assertIsNotNone(acc, t.events)
        self.assertEqual(data(acc)["pid"], os.getpid())
        self.assertTrue(data(acc)["owner_known"])
        self.assertEqual(data(acc)["sport"], port)
        self.assertIsNotNone(close_old, t.events)
        d = data(close_old)
        self.assertEqual(d["pid"], os.getpid())
        self.assertTrue(d["owner_known"])
        self.assertFalse(d["start_seen"], "the connection is older than tapio")
        self.assertEqual(d["duration_ns"], 0)
        self.assertEqual(d["dport"], port)
        # The counters are the socket's own, from before tapio too.
        self.assertGreaterEqual(d["bytes_sent"], 10)
        self.assertLessEqual(d["bytes_sent"], 10 + 2)

    def test_reset_to_closed_port_and_linger0(self):
        closed = free_port()
        with trace("-e", "tcp.reset") as t:
            c = socket.socket()
            with self.assertRaises(ConnectionRefusedError):
                c.connect(("127.0.0.1", closed))
            cport = c.getsockname()[1]
            c.close()
            # An abortive close: SO_LINGER {on, 0} sends an RST.
            port = free_port()
            srv = socket.socket()
            srv.bind(("127.0.0.1", port))
            srv.listen(1)
            cli = socket.create_connection(("127.0.0.1", port))
            conn, _ = srv.accept()
            lport = cli.getsockname()[1]
            cli.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
            cli.close()
            time.sleep(0.1)
            conn.close()
            srv.close()
            recv_refused = t.wait_for(lambda e: data(e)["direction"] == "received"
                                      and data(e)["dport"] == closed, 10)
            sent_refused = t.wait_for(lambda e: data(e)["direction"] == "sent"
                                      and data(e)["sport"] == closed, 10)
            sent_linger = t.wait_for(lambda e: data(e)["direction"] == "sent"
                                     and data(e)["sport"] == lport and data(e)["dport"] == port, 10)
            recv_linger = t.wait_for(lambda e: data(e)["direction"] == "received"
                                     and data(e)["sport"] == port and data(e)["dport"] == lport, 10)
            t.stop()
        self.assertIsNotNone(recv_refused, t.events)
        d = data(recv_refused)
        self.assertEqual(d["sport"], cport)
        self.assertEqual(d["pid"], os.getpid())
        self.assertEqual(d["state"], "SYN_SENT")
        # The RST answering a SYN to a closed port has no socket and no task.
        # Kernels report it only since tcp_send_reset became its own trace
        # event ("trace: tcp: fully support trace_tcp_send_reset").
        if kf.kernel_btf_has("trace_event_raw_tcp_send_reset"):
            self.assertIsNotNone(sent_refused, t.events)
            d = data(sent_refused)
            self.assertEqual((d["saddr"], d["daddr"], d["dport"]), ("127.0.0.1", "127.0.0.1", cport))
            self.assertFalse(d["task_known"])
        else:
            self.assertIsNone(sent_refused)
        self.assertIsNotNone(sent_linger, t.events)
        d = data(sent_linger)
        self.assertEqual(d["pid"], os.getpid())
        self.assertTrue(d["owner_known"])
        self.assertIsNotNone(recv_linger, t.events)
        self.assertEqual(data(recv_linger)["pid"], os.getpid())

    def test_retransmit(self):
        net = kf.VethNetns(self)
        port = 18000 + os.getpid() % 1000
        server = net.listen(port)
        with trace("-e", "tcp.retransmit", "-p", os.getpid()) as t:
            cli = socket.create_connection((net.ns_ip, port), timeout=5)
            cport = cli.getsockname()[1]
            cli.sendall(b"x" * 100)
            time.sleep(0.2)
            # The namespace can no longer answer: our data goes unacknowledged.
            net.blackhole_return_path()
            cli.sendall(b"y" * 100)
            ev = t.wait_for(lambda e: e["type"] == "tcp.retransmit" and data(e)["sport"] == cport, 15)
            t.stop()
            cli.close()
        server.kill()
        self.assertIsNotNone(ev, t.stderr_lines)
        d = data(ev)
        self.assertEqual(d["saddr"], net.host_ip)
        self.assertEqual(d["daddr"], net.ns_ip)
        self.assertEqual(d["dport"], port)
        self.assertEqual(d["state"], "ESTABLISHED")
        self.assertEqual(d["pid"], os.getpid())


class Cgroup(unittest.TestCase):
    def setUp(self):
        need_root(self)

    def test_mkdir_attach_rmdir_on_cgroup2(self):
        with trace("-e", "cgroup") as t:
            cg = kf.Cgroup2(self, cleanup=False)
            sleeper = subprocess.Popen(["/bin/sleep", "30"])
            cg.attach(sleeper.pid)
            sleeper.kill()
            sleeper.wait()
            time.sleep(0.1)
            cg.remove()
            ours = lambda typ: (lambda e: e["type"] == typ and data(e)["id"] == cg.id)
            mk = t.wait_for(ours("cgroup.mkdir"), 10)
            at = t.wait_for(ours("cgroup.attach"), 10)
            rm = t.wait_for(ours("cgroup.rmdir"), 10)
            t.stop()
        for ev in (mk, at, rm):
            self.assertIsNotNone(ev, [e["type"] for e in t.events])
            d = data(ev)
            self.assertEqual(d["path"], cg.rel)
            self.assertEqual(d["level"], cg.rel.count("/"))
            self.assertEqual(d["hierarchy_id"], 0)
        self.assertEqual(data(mk)["pid"], os.getpid())
        self.assertEqual(data(rm)["pid"], os.getpid())
        self.assertEqual(data(at)["pid"], os.getpid())  # the writer of cgroup.procs
        self.assertEqual(data(at)["task_pid"], sleeper.pid)
        self.assertEqual(data(at)["task_comm"], "sleep")
        self.assertTrue(data(at)["threadgroup"])


class Oom(unittest.TestCase):
    def setUp(self):
        need_root(self)

    def test_oom_kill_names_the_victim_and_its_cgroup(self):
        mem = kf.MemoryCgroup(self, limit=48 << 20)
        with trace("-e", "oom,process.exit") as t:
            victim = mem.run_hog()
            rc = victim.wait(60)
            self.assertEqual(rc, -signal.SIGKILL, "the hog was not OOM-killed")
            ev = t.wait_for(lambda e: e["type"] == "oom.kill" and data(e)["victim_pid"] == victim.pid, 10)
            ex = t.wait_for(lambda e: e["type"] == "process.exit" and data(e)["pid"] == victim.pid, 10)
            t.stop()
        self.assertIsNotNone(ev, t.stderr_lines)
        d = data(ev)
        self.assertTrue(d["victim_task_known"])
        self.assertEqual(d["pid"], victim.pid)
        self.assertEqual(d["victim_comm"], "python3")
        # The victim's own cgroup, not the allocating task's (here the same
        # task, but the id must be the victim's cgroup2 directory).
        self.assertEqual(d["cgroup_id"], mem.cgroup2_id)
        self.assertEqual(ev["meta"]["cgroup_id"], str(mem.cgroup2_id))
        self.assertGreater(d["total_vm"], 0)
        self.assertGreater(d["anon_rss"], 16 << 10)   # kB: most of the limit
        self.assertLess(d["anon_rss"], 64 << 10)
        self.assertEqual(d["oom_score_adj"], 0)
        self.assertEqual(d["trigger_tgid"], victim.pid)
        self.assertIsNotNone(ex)
        self.assertEqual(data(ex)["signal"], 9)


class Drops(unittest.TestCase):
    def setUp(self):
        need_root(self)

    def test_full_ring_buffer_drops_are_counted_per_type(self):
        """A one-page ring buffer and a stopped reader: every exec in the
        cgroup is either written or counted as a kernel drop."""
        cg = kf.Cgroup2(self)
        n = 300
        t = trace("-e", "process.exec", "--cgroup", cg.path, "--ringbuf-size", "4096")
        try:
            os.kill(t.proc.pid, signal.SIGSTOP)
            cg.run(["/bin/sh", "-c", "i=0; while [ $i -lt %d ]; do /bin/true; i=$((i+1)); done" % n])
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
        # The shell's own exec into the loop, then n execs of /bin/true.
        self.assertEqual(ex["events"] + ex["dropped_kernel"] + ex["dropped_queue"], n + 1, s)
        self.assertEqual(s["dropped_kernel"], ex["dropped_kernel"])
        for e in t.events:
            self.assertEqual(data(e)["cgroup_id"], cg.id)


class Cli(unittest.TestCase):
    def setUp(self):
        need_root(self)

    def test_count_ends_with_totals(self):
        t = Tapio("trace", "-o", "json", "-e", "process.exec", "-n", "3")
        kf.wait_attached(t)
        for _ in range(6):
            subprocess.run(["/bin/true"])
        rc = t.proc.wait(20)
        t.stop()
        self.assertEqual(rc, 0, t.stderr_lines)
        self.assertEqual(len(t.events), 3)
        s = t.summary()
        self.assertIsNotNone(s, t.stderr_lines)
        self.assertEqual(s["types"]["process.exec"]["events"], 3)
        self.assertEqual(s["events"], 3)
        self.assertIn("dropped_kernel", s["types"]["process.exec"])
        self.assertTrue(any(l.startswith("process.exec") for l in t.stderr_lines), t.stderr_lines)

    def test_duration_ends_with_exit_0(self):
        t0 = time.time()
        t = Tapio("trace", "-o", "json", "-e", "process.exit", "-d", "2")
        rc = t.proc.wait(20)
        t.stop()
        self.assertEqual(rc, 0, t.stderr_lines)
        self.assertGreaterEqual(time.time() - t0, 1.9)
        self.assertIsNotNone(t.summary(), t.stderr_lines)

    def test_sigterm_ends_with_exit_0(self):
        t = trace("-e", "process")
        rc = t.stop(signal.SIGTERM)
        self.assertEqual(rc, 0, t.stderr_lines)
        self.assertIsNotNone(t.summary())

    def test_text_output(self):
        marker = "tapio-text-%d" % os.getpid()
        p = subprocess.Popen([TAPIO, "trace", "-o", "text", "-e", "process.exec,process.exit", "-d", "3"],
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        first = p.stderr.readline()  # printed once the programs are attached
        self.assertIn(b"tapio trace: tracing", first)
        e = subprocess.Popen(["/bin/sh", "-c", "exit 5", marker])
        e.wait()
        out, err = p.communicate(20)
        self.assertEqual(p.returncode, 0, err)
        lines = out.decode().splitlines()
        self.assertRegex(lines[0], r"^TIME\s+TYPE\s+PID\s+COMM\s+DETAILS")
        execs = [l for l in lines if "process.exec" in l and marker in l]
        self.assertEqual(len(execs), 1, lines)
        self.assertRegex(execs[0], r"^\d\d:\d\d:\d\d\.\d{3} process\.exec\s+%d sh\s+/bin/sh -c exit 5 %s$"
                         % (e.pid, marker))
        exits = [l for l in lines if "process.exit" in l and " %d " % e.pid in l]
        self.assertEqual(len(exits), 1, lines)
        self.assertRegex(exits[0], r"code=5 lifetime=[\d.]+m?s$")

    def test_bad_event_name_is_a_usage_error(self):
        p = subprocess.run([TAPIO, "trace", "-e", "process,bogus"], capture_output=True)
        self.assertEqual(p.returncode, 2)
        self.assertIn(b"bogus", p.stderr)

    def test_unprivileged_fails_with_one_line(self):
        p = subprocess.run(["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups",
                            "--inh-caps=-all", "--bounding-set=-all", TAPIO, "trace", "-d", "1"],
                           capture_output=True)
        self.assertNotEqual(p.returncode, 0)
        lines = p.stderr.decode().strip().splitlines()
        self.assertEqual(len(lines), 1, lines)
        self.assertIn("not allowed to load BPF programs", lines[0])
        self.assertEqual(p.stdout, b"")

    def test_a_program_that_cannot_load_is_turned_off_and_named(self):
        """The fallback path: tapio_fork is pointed at a tracepoint this
        kernel lacks (the test hook TAPIO_TEST_BREAK_PROG); it is named on
        the first stderr line and in the summary, and the rest still run."""
        env = {"TAPIO_TEST_BREAK_PROG": "tapio_fork"}
        marker = "tapio-fallback-%d" % os.getpid()
        t = Tapio("trace", "-o", "json", "-e", "process", env=env)
        kf.wait_attached(t)
        subprocess.run(["/bin/echo", marker], stdout=subprocess.DEVNULL, check=True)
        ev = t.wait_for(lambda e: e["type"] == "process.exec" and marker in data(e)["args"], 10)
        ex = t.wait_for(lambda e: e["type"] == "process.exit" and data(e)["pid"] == data(ev)["pid"], 10)
        rc = t.stop()
        self.assertEqual(rc, 0, t.stderr_lines)
        self.assertIsNotNone(ev)
        self.assertIsNotNone(ex)
        self.assertFalse([e for e in t.events if e["type"] == "process.fork"])
        self.assertRegex(t.stderr_lines[0], r"^tapio trace: turned off.*: tapio_fork ")
        self.assertEqual(t.summary()["disabled"], "tapio_fork")

        p = subprocess.run([TAPIO, "probe"], capture_output=True, env=dict(os.environ, **env))
        out = p.stdout.decode()
        self.assertEqual(p.returncode, 1, out)
        self.assertRegex(out, r"(?m)^  tapio_fork\s+sched_process_fork\s+FAILS\s+process\.fork: .*sched_process_fork")
        self.assertRegex(out, r"(?m)^  tapio_exec\s+sched_process_exec\s+loads")
        self.assertIn("1 program(s) cannot load", out)

    def test_probe_reports_every_program(self):
        p = subprocess.run([TAPIO, "probe"], capture_output=True)
        out = p.stdout.decode()
        self.assertEqual(p.returncode, 0, out + p.stderr.decode())
        self.assertRegex(out, r"(?m)^kernel: Linux %s" % os.uname().release.replace(".", r"\."))
        self.assertIn("btf: yes", out)
        self.assertIn("ringbuf: yes", out)
        self.assertIn("+CAP_SYS_ADMIN", out)
        for tp in ("sched_process_exec", "inet_sock_set_state", "tcp_retransmit_skb", "cgroup_mkdir",
                   "mark_victim"):
            self.assertRegex(out, r"(?m)^  %s\s+present$" % tp)
        self.assertRegex(out, r"(?m)^  tapio_exec\s+sched_process_exec\s+loads\s+process\.exec$")
        self.assertIn("result: every program loads", out)


if __name__ == "__main__":
    unittest.main()
