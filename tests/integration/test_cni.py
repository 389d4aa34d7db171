"""Integration tests of the CNI collector: `tapio agent --collectors cni` on
real files, real inotify and real network namespaces (root)."""
import json
import os
import shutil
import signal
import time
import unittest
import uuid

import tapiotest
from cni_fixture import (NetnsShell, Tree, append, file_id, libcni_cache, line_id, logs, no_id,
                         reserve_ip, settle, wait_count, write_result, write_result_atomic)

CALICO_LINE = ('2024-05-10 12:34:56.789 [INFO][12345] plugin.go 326: Calico CNI ADD '
               'args=&skel.CmdArgs{ContainerID:"4f2a9c", Netns:"/var/run/netns/cni-5e1d", IfName:"eth0", '
               'Args:"IgnoreUnknown=1;K8S_POD_NAMESPACE=shop;K8S_POD_NAME=web-0;K8S_POD_INFRA_CONTAINER_ID=4f2a9c"}')
PLAIN_LINE = ('time="2024-05-10T12:34:57Z" level=info msg="cmdDel done" CNI_COMMAND=DEL '
              'CNI_CONTAINERID=77ee CNI_NETNS=/proc/4242/ns/net plugin=bridge')


class CniTest(unittest.TestCase):
    def setUp(self):
        tapiotest.need_root(self)
        if not os.path.exists(tapiotest.TAPIO):
            tapiotest.skip_or_fail(self, "build/tapio is not built (make)")

    def lines_of(self, t, path):
        return [e["data"] for e in logs(t, path)]

    # ---- log files ----

    def test_log_lines_with_metadata_first_start_at_end(self):
        tr = Tree(self)
        old = os.path.join(tr.l1, "cni.log")
        append(old, "before the first start\n")
        t = tr.start(self)
        append(old, PLAIN_LINE + "\n")
        calico = os.path.join(tr.l2, "cni.log")
        append(calico, CALICO_LINE + "\n")
        ev = t.wait_for(lambda e: e["type"] == "cni.log" and e["meta"].get("file") == calico)
        self.assertIsNotNone(ev, t.stderr_lines)
        self.assertEqual(ev["source"], "cni")
        self.assertEqual(ev["data"], CALICO_LINE)
        self.assertEqual(ev["meta"], {"operation": "ADD", "plugin": "calico", "pod": "web-0",
                                      "namespace": "shop", "container_id": "4f2a9c",
                                      "netns": "/var/run/netns/cni-5e1d", "file": calico,
                                      "id": line_id(os.stat(calico), 0, CALICO_LINE)})
        ev = t.wait_for(lambda e: e["type"] == "cni.log" and e["meta"].get("file") == old)
        self.assertIsNotNone(ev)
        self.assertEqual(ev["data"], PLAIN_LINE)
        self.assertEqual(ev["meta"], {"operation": "DEL", "plugin": "bridge", "container_id": "77ee",
                                      "netns": "/proc/4242/ns/net", "file": old,
                                      "id": line_id(os.stat(old), len("before the first start\n"),
                                                    PLAIN_LINE)})
        settle(t)
        # the first start begins at the end: the older line is not emitted
        self.assertEqual(self.lines_of(t, old), [PLAIN_LINE])
        self.assertIsNotNone(ts_ok(ev["ts"]))

    def test_partial_line_waits_for_newline(self):
        tr = Tree(self)
        t = tr.start(self)
        p = os.path.join(tr.l1, "new.log")
        append(p, "first line\nsecond ha")
        self.assertIsNotNone(t.wait_for(lambda e: e.get("data") == "first line"))
        time.sleep(1.0)
        self.assertEqual(self.lines_of(t, p), ["first line"])
        append(p, "lf of a line\n")
        self.assertIsNotNone(t.wait_for(lambda e: e.get("data") == "second half of a line"))
        settle(t)
        self.assertEqual(self.lines_of(t, p), ["first line", "second half of a line"])

    def test_rename_rotation_loses_and_repeats_nothing(self):
        tr = Tree(self)
        t = tr.start(self)
        p = os.path.join(tr.l1, "cni.log")
        w = open(p, "a", buffering=1)
        for i in range(1, 6):
            w.write(f"line {i}\n")
        self.assertIsNotNone(t.wait_for(lambda e: e.get("data") == "line 5"))
        # logrotate "create": rename, the writer still has the old file open
        os.rename(p, p + ".1")
        w.write("line 6\nline 7\n")
        w2 = open(p, "a", buffering=1)
        w2.write("line 8\nline 9\n")
        w2.close()
        # an older rotation gets compressed: never tailed
        with open(p + ".2.gz", "wb") as z:
            z.write(b"\x1f\x8b\x08\x00binary\n")
        self.assertIsNotNone(t.wait_for(lambda e: e.get("data") == "line 9"))
        # the old file is still followed under its new name
        w.write("line 10\n")
        w.close()
        ev = t.wait_for(lambda e: e.get("data") == "line 10")
        self.assertIsNotNone(ev)
        self.assertEqual(ev["meta"]["file"], p + ".1")
        settle(t)
        got = [e["data"] for e in logs(t)]
        self.assertEqual(sorted(got, key=lambda s: int(s.split()[1])), [f"line {i}" for i in range(1, 11)])
        # lines 6 and 7 carry the name the file had when they were read
        for e in logs(t):
            n = int(e["data"].split()[1])
            want = {p} if n <= 5 else {p, p + ".1"} if n <= 7 else {p} if n <= 9 else {p + ".1"}
            self.assertIn(e["meta"]["file"], want, e)
        self.assertEqual(self.lines_of(t, p)[-2:], ["line 8", "line 9"])

    def test_copytruncate_loses_and_repeats_nothing(self):
        tr = Tree(self)
        t = tr.start(self)
        p = os.path.join(tr.l2, "cni.log")
        fd = os.open(p, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
        for i in range(1, 6):
            os.write(fd, f"copytruncate line {i:02d} with some padding\n".encode())
        self.assertIsNotNone(t.wait_for(lambda e: e.get("data", "").startswith("copytruncate line 05")))
        # logrotate copytruncate: copy to cni.log.1, truncate in place
        shutil.copyfile(p, p + ".1")
        os.truncate(p, 0)
        for i in range(6, 8):
            os.write(fd, f"copytruncate line {i:02d}\n".encode())
        os.close(fd)
        self.assertIsNotNone(t.wait_for(lambda e: e.get("data") == "copytruncate line 07"))
        settle(t)
        got = [e["data"][:20] for e in logs(t)]
        self.assertEqual(got, [f"copytruncate line {i:02d}" for i in range(1, 8)])
        self.assertEqual(self.lines_of(t, p + ".1"), [])

    def test_overlong_line_skipped_and_counted(self):
        tr = Tree(self)
        t = tr.start(self)
        p = os.path.join(tr.l1, "big.log")
        append(p, "before\n" + "x" * 70000 + "\n" + "after ContainerID=abc\n")
        ev = t.wait_for(lambda e: e.get("data") == "after ContainerID=abc")
        self.assertIsNotNone(ev)
        self.assertEqual(ev["meta"]["container_id"], "abc")
        settle(t)
        self.assertEqual(self.lines_of(t, p), ["before", "after ContainerID=abc"])
        self.assertIsNotNone(t.wait_stderr("skipped a line longer than 65536 bytes at offset 7"))
        self.assertEqual(t.stop(), 0)
        self.assertEqual(t.summary()["cni"]["oversize"], 1)

    def test_hostile_bytes_in_a_line(self):
        tr = Tree(self)
        t = tr.start(self)
        p = os.path.join(tr.l1, "bin.log")
        with open(p, "ab") as f:
            f.write(b"bad \xff\xfe utf8 \x00 nul \x1b[31m ContainerID=\"a\xffb\" Pod=ok\r\n")
            f.write(b"clean line\n")
        ev = t.wait_for(lambda e: e.get("data") == "clean line")
        self.assertIsNotNone(ev, t.stderr_lines)
        bad = [e for e in logs(t, p) if e["data"] != "clean line"]
        self.assertEqual(len(bad), 1)
        self.assertTrue(bad[0]["data"].startswith("bad "), bad[0])
        self.assertIn("\x00 nul \x1b[31m", bad[0]["data"])
        self.assertTrue(bad[0]["data"].endswith("Pod=ok\r"))  # raw: only the \n is taken off
        # the container ID with a non-ASCII byte is left out; the pod is kept
        st = os.stat(p)  # the id: device, inode and offset of the line, and its hash
        raw = b"bad \xff\xfe utf8 \x00 nul \x1b[31m ContainerID=\"a\xffb\" Pod=ok\r"
        self.assertEqual(bad[0]["meta"], {"pod": "ok", "file": p, "id": line_id(st, 0, raw)})

    def test_deleted_and_recreated_log_dirs(self):
        tr = Tree(self)
        t = tr.start(self)
        p = os.path.join(tr.l2, "cni.log")
        append(p, "before delete\n")
        self.assertIsNotNone(t.wait_for(lambda e: e.get("data") == "before delete"))
        # remove log/calico entirely (the parent too), then recreate it
        shutil.rmtree(os.path.dirname(tr.l2))
        time.sleep(0.3)
        os.makedirs(tr.l2)
        append(p, "after recreate\n")
        self.assertIsNotNone(t.wait_for(lambda e: e.get("data") == "after recreate"), t.stderr_lines)
        # and the plain dir: delete, recreate with a file already in it
        shutil.rmtree(tr.l1)
        time.sleep(0.3)
        os.makedirs(tr.l1)
        append(os.path.join(tr.l1, "x.log"), "in the new dir\n")
        self.assertIsNotNone(t.wait_for(lambda e: e.get("data") == "in the new dir"), t.stderr_lines)
        append(os.path.join(tr.l1, "x.log"), "later\n")
        self.assertIsNotNone(t.wait_for(lambda e: e.get("data") == "later"))
        settle(t)
        self.assertEqual([e["data"] for e in logs(t)],
                         ["before delete", "after recreate", "in the new dir", "later"])

    def test_restart_resumes_from_offsets(self):
        tr = Tree(self)
        p = os.path.join(tr.l1, "cni.log")
        q = os.path.join(tr.l2, "cni.log")
        t = tr.start(self)
        append(p, "r1\nr2\n")
        append(q, "q1\n")
        self.assertIsNotNone(t.wait_for(lambda e: e.get("data") == "r2"))
        self.assertIsNotNone(t.wait_for(lambda e: e.get("data") == "q1"))
        append(p, "r3\npartial-")
        settle(t)
        self.assertEqual(t.stop(), 0)
        self.assertEqual([e["data"] for e in logs(t)], ["r1", "r2", "q1", "r3"])
        # while stopped: complete the partial line, add lines, rotate q
        append(p, "done\nr4\n")
        append(q, "q2\n")
        os.rename(q, q + ".1")
        append(q, "q3\n")
        append(os.path.join(tr.l1, "other.log"), "o1\n")  # a new file while stopped
        t2 = tr.start(self)
        self.assertIsNotNone(t2.wait_for(lambda e: e.get("data") == "q3"))
        settle(t2)
        got = sorted((e["meta"]["file"], e["data"]) for e in logs(t2))
        self.assertEqual(got, sorted([(p, "partial-done"), (p, "r4"), (q + ".1", "q2"), (q, "q3"),
                                      (os.path.join(tr.l1, "other.log"), "o1")]))
        append(p, "r5\n")
        self.assertIsNotNone(t2.wait_for(lambda e: e.get("data") == "r5"))
        self.assertEqual(t2.stop(), 0)
        with open(os.path.join(tr.state, "cni-offsets")) as f:
            saved = f.read()
        self.assertTrue(saved.startswith("tapio-cni-offsets 2\n"), saved)
        self.assertIn(" " + p + "\n", saved)
        entry = [l for l in saved.splitlines() if l.endswith(" " + p)][0].split()
        self.assertEqual(int(entry[1]), os.stat(p).st_ino)
        self.assertEqual(int(entry[2]), os.path.getsize(p))

    def test_restart_reports_directory_changes_made_while_stopped(self):
        tr = Tree(self)
        net = os.path.join(tr.networks, "keepnet")
        gonenet = os.path.join(tr.networks, "gonenet")
        os.makedirs(net)
        os.makedirs(gonenet)
        t = tr.start(self)
        ns_a = os.path.join(tr.netns, "ns-a")
        ns_keep = os.path.join(tr.netns, "ns-keep")
        open(ns_a, "w").close()
        open(ns_keep, "w").close()
        r1, _ = write_result(tr.results, "net", "r1", "eth0",
                             libcni_cache("net", "r1", "eth0", "pod-r1", "ns1", "/var/run/netns/ns-a", ["bridge"]))
        rkeep, _ = write_result(tr.results, "net", "rk", "eth0",
                                libcni_cache("net", "rk", "eth0", "pod-rk", "ns1", "/x", ["bridge"]))
        ip_keep = reserve_ip(net, "10.5.0.2", "rk", "eth0")
        ip_gone = reserve_ip(gonenet, "10.6.0.2", "r1", "eth0")
        wait_count(t, lambda e: e["type"] != "cni.log", 6)
        settle(t)
        self.assertEqual(len(t.matching(lambda e: e["type"] != "cni.log")), 6)
        self.assertEqual(t.stop(), 0)
        # while stopped
        os.unlink(ns_a)
        open(os.path.join(tr.netns, "ns-b"), "w").close()
        os.unlink(r1)
        r2, obj2 = write_result(tr.results, "net", "r2", "eth0",
                                libcni_cache("net", "r2", "eth0", "pod-r2", "ns2", "/var/run/netns/ns-b", ["bridge"]))
        shutil.rmtree(gonenet)
        t2 = tr.start(self)
        want = 5
        got = wait_count(t2, lambda e: e["type"] != "cni.log", want)
        settle(t2)
        got = t2.matching(lambda e: e["type"] != "cni.log")
        summary = sorted((e["type"], e["meta"]["operation"], e["meta"]["file"]) for e in got)
        self.assertEqual(summary, sorted([
            ("cni.netns", "DEL", ns_a), ("cni.netns", "ADD", os.path.join(tr.netns, "ns-b")),
            ("cni.result", "DEL", r1), ("cni.result", "ADD", r2), ("cni.ipam", "DEL", ip_gone)]))
        by = {(e["type"], e["meta"]["operation"]): e for e in got}
        # a DEL after a restart still carries what the file said before
        self.assertEqual(by[("cni.result", "DEL")]["meta"]["pod"], "pod-r1")
        self.assertEqual(no_id(by[("cni.ipam", "DEL")]["meta"]),
                         {"operation": "DEL", "container_id": "r1", "network": "gonenet", "ifname": "eth0",
                          "ip": "10.6.0.2", "file": ip_gone})
        self.assertEqual(by[("cni.result", "ADD")]["data"], json.loads(obj2))
        self.assertTrue(os.path.exists(ip_keep) and os.path.exists(rkeep) and os.path.exists(ns_keep))

    # ---- network namespaces ----

    def test_real_ip_netns_add_and_del(self):
        tapiotest.need_cmd(self, "ip")
        tapiotest.need_cmd(self, "unshare")
        tr = Tree(self)
        t = tr.start(self)
        sh = NetnsShell(tr.netns)
        self.addCleanup(sh.close)
        name = "tapio-cni-" + uuid.uuid4().hex[:8]
        path = os.path.join(tr.netns, name)
        self.assertEqual(sh.run(f"ip netns add {name}"), 0)
        # it is a real namespace: a loopback device inside it
        self.assertEqual(sh.run(f"ip netns exec {name} ip link show lo"), 0)
        ev = t.wait_for(lambda e: e["type"] == "cni.netns" and e["meta"].get("netns") == name)
        self.assertIsNotNone(ev, t.stderr_lines)
        self.assertEqual(no_id(ev["meta"]), {"operation": "ADD", "netns": name, "file": path})
        self.assertEqual(ev["data"], {"name": name, "path": path})
        self.assertEqual(sh.run(f"ip netns del {name}"), 0)
        ev = t.wait_for(lambda e: e["type"] == "cni.netns" and e["meta"].get("operation") == "DEL")
        self.assertIsNotNone(ev)
        self.assertEqual(no_id(ev["meta"]), {"operation": "DEL", "netns": name, "file": path})
        self.assertEqual(ev["data"], {"name": name, "path": path})
        settle(t)
        self.assertEqual(len(t.matching(lambda e: e["type"] == "cni.netns")), 2)

    def test_netns_dir_created_later(self):
        tr = Tree(self, make_netns=False)
        t = tr.start(self)
        os.makedirs(tr.netns)
        open(os.path.join(tr.netns, "ns-a"), "w").close()
        ev = t.wait_for(lambda e: e["type"] == "cni.netns")
        self.assertIsNotNone(ev, t.stderr_lines)
        self.assertEqual(ev["meta"]["netns"], "ns-a")
        self.assertEqual(ev["meta"]["operation"], "ADD")

    # ---- result cache ----

    def test_result_cache_written_like_libcni(self):
        tr = Tree(self, make_results=False)  # libcni creates results/ on first use
        t = tr.start(self)
        os.makedirs(tr.results, 0o700)
        obj = libcni_cache("k8s-pod-network", "c0ffee01", "eth0", "nginx-1", "default",
                           "/var/run/netns/cni-aa", ["calico", "portmap"])
        path, _ = write_result(tr.results, "k8s-pod-network", "c0ffee01", "eth0", obj)
        ev = t.wait_for(lambda e: e["type"] == "cni.result")
        self.assertIsNotNone(ev, t.stderr_lines)
        self.assertEqual(ev["data"], obj)
        self.assertEqual(ev["meta"], {"operation": "ADD", "plugin": "calico,portmap", "pod": "nginx-1",
                                      "namespace": "default", "container_id": "c0ffee01",
                                      "netns": "/var/run/netns/cni-aa", "network": "k8s-pod-network",
                                      "ifname": "eth0", "file": path,
                                      "id": file_id("result", "add", path)})
        # the atomic writer: only the final name is reported, once
        obj2 = libcni_cache("net2", "beef02", "net1", "db-0", "data", "/var/run/netns/cni-bb", ["macvlan"])
        path2, _ = write_result_atomic(tr.results, "net2", "beef02", "net1", obj2)
        ev = t.wait_for(lambda e: e["type"] == "cni.result" and e["meta"]["file"] == path2)
        self.assertIsNotNone(ev)
        self.assertEqual(ev["data"], obj2)
        self.assertEqual(ev["meta"]["pod"], "db-0")
        self.assertEqual(ev["meta"]["plugin"], "macvlan")
        # not JSON: emitted as text, counted as a parse error
        bad = os.path.join(tr.results, "net3-dead03-eth0")
        with open(bad, "w") as f:
            f.write("{not json")
        ev = t.wait_for(lambda e: e["type"] == "cni.result" and e["meta"]["file"] == bad)
        self.assertIsNotNone(ev)
        self.assertEqual(ev["data"], "{not json")
        self.assertEqual(no_id(ev["meta"]), {"operation": "ADD", "container_id": "dead03",
                                             "network": "net3", "ifname": "eth0", "file": bad})
        os.unlink(path)
        ev = t.wait_for(lambda e: e["type"] == "cni.result" and e["meta"]["operation"] == "DEL")
        self.assertIsNotNone(ev)
        self.assertEqual(no_id(ev["meta"]), {"operation": "DEL", "plugin": "calico,portmap", "pod": "nginx-1",
                                      "namespace": "default", "container_id": "c0ffee01",
                                      "netns": "/var/run/netns/cni-aa", "network": "k8s-pod-network",
                                      "ifname": "eth0", "file": path})
        self.assertEqual(ev["data"], {"name": os.path.basename(path), "path": path})
        settle(t)
        self.assertEqual(len(t.matching(lambda e: e["type"] == "cni.result")), 4)
        self.assertEqual(t.stop(), 0)
        self.assertEqual(t.summary()["cni"]["parse_errors"], 1)

    # ---- host-local IPAM ----

    def test_host_local_reservations(self):
        tr = Tree(self)
        t = tr.start(self)
        net = os.path.join(tr.networks, "mynet")
        os.makedirs(net)
        p = reserve_ip(net, "10.22.0.5", "aabbcc", "eth0")
        with open(os.path.join(net, "last_reserved_ip.0"), "w") as f:
            f.write("10.22.0.5")
        open(os.path.join(net, "lock"), "w").close()
        ev = t.wait_for(lambda e: e["type"] == "cni.ipam")
        self.assertIsNotNone(ev, t.stderr_lines)
        self.assertEqual(ev["data"], "aabbcc\neth0")
        self.assertEqual(ev["meta"], {"operation": "ADD", "container_id": "aabbcc", "network": "mynet",
                                      "ifname": "eth0", "ip": "10.22.0.5", "file": p,
                                      "id": file_id("ipam", "add", p)})
        p6 = reserve_ip(net, "fd00::7", "ddeeff", "eth1")
        self.assertIsNotNone(t.wait_for(lambda e: e["type"] == "cni.ipam" and e["meta"]["ip"] == "fd00::7"))
        st = os.stat(p)
        os.unlink(p)
        ev = t.wait_for(lambda e: e["type"] == "cni.ipam" and e["meta"]["operation"] == "DEL")
        self.assertIsNotNone(ev)
        # the DEL's id: the reservation as it was at its ADD
        self.assertEqual(ev["meta"], {"operation": "DEL", "container_id": "aabbcc", "network": "mynet",
                                      "ifname": "eth0", "ip": "10.22.0.5", "file": p,
                                      "id": file_id("ipam", "del", p, st)})
        settle(t)
        self.assertEqual(len(t.matching(lambda e: e["type"] == "cni.ipam")), 3)
        self.assertTrue(os.path.exists(p6))

    # ---- inotify overflow ----

    def test_inotify_overflow_rescan_loses_nothing(self):
        tr = Tree(self)
        net = os.path.join(tr.networks, "ovnet")
        os.makedirs(net)
        gone_result, _ = write_result(tr.results, "ov", "old0", "eth0",
                                      libcni_cache("ov", "old0", "eth0", "p0", "n0", "/x", ["bridge"]))
        gone_ns = os.path.join(tr.netns, "old-ns")
        open(gone_ns, "w").close()
        log = os.path.join(tr.l1, "cni.log")
        append(log, "")
        limit_path = "/proc/sys/fs/inotify/max_queued_events"
        with open(limit_path) as f:
            limit = int(f.read())
        restore = None
        if limit > 16384:
            restore = limit
            with open(limit_path, "w") as f:
                f.write("16384")
            limit = 16384
        try:
            t = tr.start(self)  # the limit is taken when the inotify fd is made
        finally:
            if restore is not None:
                with open(limit_path, "w") as f:
                    f.write(str(restore))
        append(log, "warm-up\n")
        self.assertIsNotNone(t.wait_for(lambda e: e.get("data") == "warm-up"))
        os.kill(t.proc.pid, signal.SIGSTOP)
        try:
            # more events than the queue holds: create/close/delete of a
            # compressed file, which the collector ignores
            junk = os.path.join(tr.l1, "junk.gz")
            for _ in range(limit // 3 + 200):
                open(junk, "w").close()
                os.unlink(junk)
            # the changes that only a rescan can find now
            for i in range(50):
                append(log, f"during overflow {i}\n")
            new_result, _ = write_result(tr.results, "ov", "new1", "eth0",
                                         libcni_cache("ov", "new1", "eth0", "p1", "n1", "/y", ["bridge"]))
            os.unlink(gone_result)
            open(os.path.join(tr.netns, "new-ns"), "w").close()
            os.unlink(gone_ns)
            ipam = reserve_ip(net, "10.9.0.2", "new1", "eth0")
        finally:
            os.kill(t.proc.pid, signal.SIGCONT)
        self.assertIsNotNone(t.wait_stderr("inotify queue overflowed", 10), t.stderr_lines)
        got = wait_count(t, lambda e: str(e.get("data")).startswith("during overflow"), 50)
        self.assertEqual([e["data"] for e in got], [f"during overflow {i}" for i in range(50)])
        ev = t.wait_for(lambda e: e["type"] == "cni.result" and e["meta"]["operation"] == "ADD")
        self.assertIsNotNone(ev)
        self.assertEqual(ev["meta"]["file"], new_result)
        self.assertEqual(ev["meta"]["pod"], "p1")
        ev = t.wait_for(lambda e: e["type"] == "cni.result" and e["meta"]["operation"] == "DEL")
        self.assertIsNotNone(ev)
        self.assertEqual(ev["meta"]["file"], gone_result)
        self.assertEqual(ev["meta"]["pod"], "p0")  # remembered from the file seen at start
        self.assertIsNotNone(t.wait_for(lambda e: e["type"] == "cni.netns" and no_id(e["meta"]) ==
                                        {"operation": "ADD", "netns": "new-ns",
                                         "file": os.path.join(tr.netns, "new-ns")}))
        self.assertIsNotNone(t.wait_for(lambda e: e["type"] == "cni.netns" and no_id(e["meta"]) ==
                                        {"operation": "DEL", "netns": "old-ns", "file": gone_ns}))
        ev = t.wait_for(lambda e: e["type"] == "cni.ipam")
        self.assertIsNotNone(ev)
        self.assertEqual(ev["meta"], {"operation": "ADD", "container_id": "new1", "network": "ovnet",
                                      "ifname": "eth0", "ip": "10.9.0.2", "file": ipam,
                                      "id": file_id("ipam", "add", ipam)})
        settle(t)
        self.assertEqual(len(logs(t)), 51)
        self.assertEqual(len(t.matching(lambda e: e["type"] != "cni.log")), 5)

    def test_bad_config_is_rejected(self):
        tr = Tree(self)
        t = tapiotest.Tapio("agent", "--collectors", "cni", "--cni-log-dirs", "relative/dir",
                            "--netns-dir", tr.netns, "--cni-state-dir", tr.cni, "--state-dir", tr.state,
                            "--output", "stdout")
        rc = t.proc.wait(10)
        t.stop()
        self.assertNotEqual(rc, 0)
        self.assertTrue(any("--cni-log-dirs" in l and "relative/dir" in l for l in t.stderr_lines),
                        t.stderr_lines)


def ts_ok(ts):
    return ts if isinstance(ts, str) and ts.endswith("Z") and "T" in ts else None


if __name__ == "__main__":
    unittest.main()
