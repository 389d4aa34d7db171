"""Hostile neighbours and hostile bytes, tried against the real agent:

- symlinks planted in the state directory (a temporary file pointing at a
  root-owned 0600 file; the etcd cursor pointing at a secret), and a state
  directory owned by someone else;
- a symlink planted in a CNI log directory while the agent is down;
- symlinked journal files and machine-id directories in a followed journal
  directory, before the start and while running;
- invalid UTF-8 and raw control bytes in a CNI result file, a Kubernetes
  label (served by the fixture API server) and an etcd value: every output
  line must be strict UTF-8 JSON;
- 200 idle and 200 slowloris connections on the metrics port while /healthz
  is probed (loopback only);
- a deeply nested kubeconfig, refused quickly."""
import json
import os
import socket
import stat
import threading
import time
import unittest
import urllib.request

import tapiotest
from tapiotest import TAPIO, Tapio, free_port, need_cmd, need_root, tmpdir
import cni_fixture
import systemd_fixture
import k8s_fixture
from etcd_fixture import Etcd

HOSTILE = b"\xff\xfe\x1b[31m\x00"


def strict_strings(tc, v, where):
    """Every string in a parsed JSON value must be encodable as strict UTF-8
    (json.loads lets lone surrogate escapes such as \\udcff through)."""
    if isinstance(v, str):
        try:
            v.encode("utf-8", errors="strict")
        except UnicodeEncodeError as e:
            tc.fail(f"{where}: a string that is not Unicode text: {v!r} ({e})")
        for ch in v:
            if ch in "\x1b":
                pass  # an escaped control character is fine once decoded
    elif isinstance(v, dict):
        for k, x in v.items():
            strict_strings(tc, k, where)
            strict_strings(tc, x, where)
    elif isinstance(v, list):
        for x in v:
            strict_strings(tc, x, where)


def check_lines(tc, raw):
    """raw: the bytes the agent wrote. Each line is strict UTF-8, has no raw
    control byte, and parses as a JSON object. Returns the parsed events."""
    tc.assertTrue(raw.endswith(b"\n") or not raw, raw[-200:])
    events = []
    for n, line in enumerate(raw.split(b"\n")[:-1], 1):
        try:
            text = line.decode("utf-8", errors="strict")
        except UnicodeDecodeError as e:
            tc.fail(f"line {n} is not UTF-8 ({e}): {line[:300]!r}")
        bad = [c for c in line if c < 0x20]
        tc.assertFalse(bad, f"line {n} has raw control bytes {bad[:5]}: {line[:300]!r}")
        try:
            ev = json.loads(text)
        except ValueError as e:
            tc.fail(f"line {n} is not JSON ({e}): {text[:300]!r}")
        tc.assertIsInstance(ev, dict)
        strict_strings(tc, ev, f"line {n}")
        events.append(ev)
    return events


class RawAgent:
    """build/tapio writing JSON Lines to a file, read back as bytes (the
    shared Tapio helper decodes stdout as UTF-8, which is what is tested)."""

    def __init__(self, tc, out_dir, *args):
        self.out = os.path.join(out_dir, "events.jsonl")
        self.t = Tapio(*args, "--output", "file:" + self.out)
        tc.addCleanup(self.t.stop)

    def raw(self):
        try:
            with open(self.out, "rb") as f:
                return f.read()
        except FileNotFoundError:
            return b""

    def wait_raw(self, needle, timeout=15.0):
        deadline = time.time() + timeout
        while time.time() < deadline:
            data = self.raw()
            if needle in data:
                return data
            if self.t.proc.poll() is not None:
                break
            time.sleep(0.1)
        return self.raw()


def write_file(path, data, mode=0o600):
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    os.write(fd, data)
    os.close(fd)


def read_file(path):
    with open(path, "rb") as f:
        return f.read()


class StateDirTest(unittest.TestCase):
    def setUp(self):
        need_root(self)
        if not os.path.exists(TAPIO):
            tapiotest.skip_or_fail(self, "build/tapio is not built (run make)")

    def test_planted_temp_file_symlink_is_not_written_through(self):
        tr = cni_fixture.Tree(self)
        os.makedirs(tr.state, 0o700)
        victim = os.path.join(tr.root, "root-only")
        write_file(victim, b"root's own bytes\n", 0o600)
        for name in ("cni-offsets", "cni-dirs"):
            os.symlink(victim, os.path.join(tr.state, f".{name}.tmp"))
        log = os.path.join(tr.l1, "plugin.log")
        cni_fixture.append(log, "first\n")
        t = tr.start(self)
        cni_fixture.append(log, "second line\n")
        self.assertIsNotNone(t.wait_for(lambda e: e.get("type") == "cni.log"), t.stderr_lines)
        self.assertEqual(t.stop(), 0, "\n".join(t.stderr_lines))
        self.assertEqual(read_file(victim), b"root's own bytes\n", "written through the symlink")
        self.assertEqual(stat.S_IMODE(os.stat(victim).st_mode), 0o600)
        # the state was written anyway, as regular files in the state dir
        st = os.lstat(os.path.join(tr.state, "cni-offsets"))
        self.assertTrue(stat.S_ISREG(st.st_mode))
        self.assertIn(b"plugin.log", read_file(os.path.join(tr.state, "cni-offsets")))

    def test_state_dir_of_another_owner_or_world_writable_is_refused(self):
        d = tmpdir(self, "tapio-hostile-")
        for i, (uid, mode, why) in enumerate([(65534, 0o700, "owned by uid 65534"),
                                              (0, 0o777, "writable by group or others")]):
            sd = os.path.join(d, f"state{i}")
            os.mkdir(sd, mode)
            os.chmod(sd, mode)
            os.chown(sd, uid, uid)
            t = Tapio("agent", "--collectors", "cni", "--cni-log-dirs", d, "--state-dir", sd,
                      "--output", "stdout")
            rc = t.stop(timeout=10) if t.proc.wait(10) is None else t.stop()
            self.assertEqual(rc, 2, "\n".join(t.stderr_lines))
            err = "\n".join(t.stderr_lines)
            self.assertIn(sd, err)
            self.assertIn(why, err)
        # a fresh one is created 0700
        sd = os.path.join(d, "new", "state")
        t = Tapio("agent", "--collectors", "cni", "--cni-log-dirs", d, "--state-dir", sd,
                  "--output", "stdout")
        self.assertTrue(t.wait_stderr("cni: following", 10), t.stderr_lines)
        self.assertEqual(t.stop(), 0)
        self.assertEqual(stat.S_IMODE(os.stat(sd).st_mode), 0o700)

    def test_etcd_revision_symlink_to_a_secret_is_not_printed(self):
        d = tmpdir(self, "tapio-hostile-")
        sd = os.path.join(d, "state")
        os.mkdir(sd, 0o700)
        secret = os.path.join(d, "secret")
        write_file(secret, b"TOPSECRET-0123456789-abcdefghij-KLMNOPQRSTUV\n")
        rev = os.path.join(sd, "etcd.revision")
        for plant in ("symlink", "copy"):
            if os.path.lexists(rev):
                os.unlink(rev)
            if plant == "symlink":
                os.symlink(secret, rev)
            else:
                write_file(rev, read_file(secret))
            t = Tapio("agent", "--collectors", "etcd", "--etcd-endpoints", "http://127.0.0.1:1",
                      "--state-dir", sd, "--output", "stdout")
            if plant == "symlink":
                # refused: the agent cannot start the collector and exits
                t.proc.wait(10)
                t.stop()
                self.assertNotEqual(t.proc.returncode, 0, "\n".join(t.stderr_lines))
            else:
                # garbage: reported by name, the revision unknown (read from
                # the oldest etcd keeps); the agent keeps running
                self.assertTrue(t.wait_stderr("etcd.revision", 10), t.stderr_lines)
                self.assertEqual(t.stop(), 0, "\n".join(t.stderr_lines))
            err = "\n".join(t.stderr_lines)
            self.assertNotIn("TOPSECRET", err, f"{plant}: the file's content was printed")
            self.assertIn("etcd.revision", err, f"{plant}: the file is not named")
            if plant == "symlink":
                self.assertIn("symbolic link", err.lower().replace("levels of symbolic links",
                                                                   "symbolic link"))


class CniSymlinkTest(unittest.TestCase):
    def setUp(self):
        need_root(self)
        if not os.path.exists(TAPIO):
            tapiotest.skip_or_fail(self, "build/tapio is not built (run make)")

    def test_log_symlink_planted_while_down_is_not_followed(self):
        tr = cni_fixture.Tree(self)
        secret = os.path.join(tr.root, "shadow")
        write_file(secret, b"root:SECRET-HASH:19000:0:99999:7:::\n" * 3, 0o600)
        cni_fixture.append(os.path.join(tr.l1, "real.log"), "before\n")
        t = tr.start(self)
        self.assertEqual(t.stop(), 0, "\n".join(t.stderr_lines))
        # while the agent is down: a symlinked file, and a symlinked subdir
        # of the log dirs' parent where the calico dir is expected
        os.symlink(secret, os.path.join(tr.l1, "evil.log"))
        os.symlink(secret, os.path.join(tr.l2, "evil2.log"))
        port = free_port()
        tr.args = lambda orig=tr.args: orig() + ["--metrics-addr", f"127.0.0.1:{port}"]
        t = tr.start(self)
        cni_fixture.append(os.path.join(tr.l1, "real.log"), "after\n")
        self.assertIsNotNone(t.wait_for(lambda e: e.get("type") == "cni.log"
                                        and "after" in json.dumps(e)), t.stderr_lines)
        # one more symlink while running
        os.symlink(secret, os.path.join(tr.l1, "evil3.log"))
        cni_fixture.append(os.path.join(tr.l1, "real.log"), "later\n")
        self.assertIsNotNone(t.wait_for(lambda e: "later" in json.dumps(e)))
        cni_fixture.settle(t)
        leaked = [e for e in t.events if "SECRET-HASH" in json.dumps(e)]
        self.assertFalse(leaked, "a symlinked file was read")
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as r:
            metrics = r.read().decode()
        refused = [l for l in metrics.splitlines() if "symlinks_refused" in l and l[0] != "#"]
        self.assertEqual(len(refused), 1, metrics)
        self.assertEqual(refused[0].split()[-1], "3", refused)
        self.assertEqual(t.stop(), 0)
        err = "\n".join(t.stderr_lines)
        for name in ("evil.log", "evil2.log", "evil3.log"):
            self.assertEqual(err.count(name + ": a symlink, not followed"), 1, err)

    def test_symlinked_log_dir_is_not_followed(self):
        tr = cni_fixture.Tree(self)
        hidden = os.path.join(tr.root, "hidden")
        os.makedirs(hidden)
        write_file(os.path.join(hidden, "x.log"), b"SECRET-LINE\n", 0o600)
        os.rmdir(tr.l2)
        os.symlink(hidden, tr.l2)
        t = tr.start(self)
        write_file(os.path.join(hidden, "x.log"), b"SECRET-LINE\nSECRET-MORE\n", 0o600)
        cni_fixture.append(os.path.join(tr.l1, "real.log"), "line\n")
        self.assertIsNotNone(t.wait_for(lambda e: "line" in json.dumps(e)))
        cni_fixture.settle(t)
        self.assertFalse([e for e in t.events if "SECRET" in json.dumps(e)])
        self.assertEqual(t.stop(), 0)
        self.assertIn(tr.l2 + ": a symlink, not followed", "\n".join(t.stderr_lines))


class JournalSymlinkTest(unittest.TestCase):
    """Symlinked journal files and machine-id directories in a followed
    journal directory, planted before the start and while running: never
    read (libsystemd would open them itself), counted and named once."""

    def setUp(self):
        need_root(self)
        if not systemd_fixture.have_journal_remote():
            tapiotest.skip_or_fail(self, "systemd-journal-remote is not installed (make deps installs it)")
        if not os.path.exists(TAPIO):
            tapiotest.skip_or_fail(self, "build/tapio is not built (run make)")

    @staticmethod
    def entries(path, prefix, first, n):
        F = systemd_fixture
        F.write_journal(path, b"".join(F.unit_entry("kubelet.service", "%s %d" % (prefix, i), i)
                                       for i in range(first, first + n)))

    def test_symlinked_journal_is_not_read(self):
        root = tmpdir(self, "tapio-jsym-")
        jdir, hidden = os.path.join(root, "journal"), os.path.join(root, "hidden")
        mid = "0123456789abcdef0123456789abcdef"
        os.makedirs(jdir)
        os.makedirs(os.path.join(hidden, mid))
        # journals another tenant wrote, outside the followed directory
        self.entries(os.path.join(hidden, "secret.journal"), "SECRET-JOURNAL", 1, 3)
        self.entries(os.path.join(hidden, mid, "system.journal"), "SECRET-MID", 1, 3)
        self.entries(os.path.join(hidden, "secret2.journal"), "SECRET-LATER", 1, 3)
        self.entries(os.path.join(jdir, "system.journal"), "real", 1, 2)
        # planted before the start: a file, and a machine-id directory
        os.symlink(os.path.join(hidden, "secret.journal"), os.path.join(jdir, "evil.journal"))
        os.symlink(os.path.join(hidden, mid), os.path.join(jdir, mid))
        port = free_port()
        t = Tapio("agent", "--collectors", "systemd", "--journal-dir", jdir, "--journal-since",
                  "head", "--state-dir", os.path.join(root, "state"), "--output", "stdout",
                  "--metrics-addr", f"127.0.0.1:{port}")
        self.addCleanup(t.stop)

        def msg(e):
            return json.dumps(e.get("data", e))

        self.assertIsNotNone(t.wait_for(lambda e: "real 2" in msg(e), timeout=20),
                             "\n".join(t.stderr_lines))
        # planted while running, then a new file (the journal is opened
        # again with the new set) and an append
        os.symlink(os.path.join(hidden, "secret2.journal"), os.path.join(jdir, "evil2.journal"))
        self.entries(os.path.join(jdir, "user-1000.journal"), "newfile", 10, 1)
        self.assertIsNotNone(t.wait_for(lambda e: "newfile 10" in msg(e), timeout=20),
                             "\n".join(t.stderr_lines))
        self.entries(os.path.join(jdir, "system.journal"), "real", 11, 1)
        self.assertIsNotNone(t.wait_for(lambda e: "real 11" in msg(e), timeout=20),
                             "\n".join(t.stderr_lines))
        t.wait_for(lambda e: False, timeout=3)  # past a periodic re-scan (2 s)
        leaked = [e for e in t.events if "SECRET" in json.dumps(e)]
        self.assertFalse(leaked, "a symlinked journal was read")
        got = [m for e in t.events for m in ["real 1", "real 2", "real 11", "newfile 10"]
               if '"%s"' % m in msg(e)]
        self.assertEqual(sorted(got), sorted(["newfile 10", "real 1", "real 2", "real 11"]), "each once")
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as r:
            metrics = r.read().decode()
        refused = [l for l in metrics.splitlines() if "symlinks_refused" in l and l[0] != "#"]
        self.assertEqual(len(refused), 1, metrics)
        self.assertEqual(refused[0].split()[-1], "3", refused)
        self.assertEqual(t.stop(), 0)
        err = "\n".join(t.stderr_lines)
        for name in ("evil.journal", "evil2.journal", mid):
            self.assertEqual(err.count(os.path.join(jdir, name) + ": a symlink, not followed"), 1, err)


class HostileBytesTest(unittest.TestCase):
    def setUp(self):
        need_root(self)
        if not os.path.exists(TAPIO):
            tapiotest.skip_or_fail(self, "build/tapio is not built (run make)")

    def test_cni_result_with_invalid_utf8_and_escape(self):
        tr = cni_fixture.Tree(self)
        a = RawAgent(self, tr.root, *[x for x in tr.args() if x not in ("--output", "stdout")])
        self.assertTrue(a.t.wait_stderr("cni: following", 10), a.t.stderr_lines)
        obj = cni_fixture.libcni_cache("net-x", "c0ffee09", "eth0", "POD@", "ns", "/run/netns/x",
                                       ["bridge"])
        data = json.dumps(obj).encode().replace(b"POD@", b"pod" + HOSTILE[:-1] + b"!")
        path = os.path.join(tr.results, "net-x-c0ffee09-eth0")
        write_file(path, data)
        # and one that is not JSON at all, with the same bytes
        path2 = os.path.join(tr.results, "net-y-c0ffee10-eth0")
        write_file(path2, b"{broken " + HOSTILE + b"\n")
        raw = a.wait_raw(b"net-y-c0ffee10-eth0")
        raw = a.wait_raw(b"net-x-c0ffee09-eth0")
        self.assertEqual(a.t.stop(), 0, a.t.stderr_lines)
        evs = [e for e in check_lines(self, a.raw()) if e["type"] == "cni.result"]
        x = [e for e in evs if e["meta"]["file"] == path]
        y = [e for e in evs if e["meta"]["file"] == path2]
        self.assertTrue(x and y, raw[-2000:])
        # the invalid bytes became U+FFFD, ESC stays ESC (escaped on the wire)
        args = dict(x[0]["data"]["cniArgs"])
        self.assertEqual(args["K8S_POD_NAME"], "pod\ufffd\ufffd\x1b[31m!")
        self.assertEqual(y[0]["data"], "{broken \ufffd\ufffd\x1b[31m\x00\n")

    def test_k8s_label_with_invalid_utf8_and_escape(self):
        need_cmd(self, "openssl")
        d = tmpdir(self, "tapio-hostile-k8s-")

        # The fixture speaks JSON made by Python, which is valid; a hostile
        # server (or proxy) sends raw bytes: substitute them on the wire. A raw
        # ESC makes the body invalid JSON (skipped and counted as malformed),
        # so ESC travels escaped, as \u001b, and must come out as text.
        class Raw(k8s_fixture.Handler):
            def _chunk(self, data):
                if isinstance(data, str):
                    data = data.encode()
                super()._chunk(data.replace(b"@HOSTILE@", b"\xff\xfe"))

            def _send_json(self, code, obj, extra=None):
                body = json.dumps(obj, separators=(",", ":")).encode().replace(b"@HOSTILE@",
                                                                                 b"\xff\xfe")
                self.send_response(code)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                for k, v in (extra or {}).items():
                    self.send_header(k, v)
                self.end_headers()
                self.wfile.write(body)

        fx = k8s_fixture.Fixture(d)
        fx.httpd.RequestHandlerClass = Raw
        fx.start()
        self.addCleanup(fx.stop)
        tok = os.path.join(d, "token")
        with open(tok, "w") as f:
            f.write("tok-1\n")
        kc = fx.kubeconfig(os.path.join(d, "kubeconfig"), token_file=tok)
        o = fx.store.create("services", "listed")
        fx.store.update("services", o["metadata"]["uid"], lambda ob: ob["metadata"]["labels"].update(
            {"app": "a@HOSTILE@\x1b[31mb"}))
        a = RawAgent(self, d, "agent", "--collectors", "k8s", "--k8s-kubeconfig", kc,
                     "--state-dir", os.path.join(d, "state"))
        self.assertIn(b"listed", a.wait_raw(b"listed"), a.t.stderr_lines)
        o = fx.store.create("services", "watched")
        fx.store.update("services", o["metadata"]["uid"], lambda ob: ob["metadata"]["labels"].update(
            {"app": "c@HOSTILE@\x1b[31md"}))
        self.assertIn(b"watched", a.wait_raw(b"watched"), a.t.stderr_lines)
        self.assertEqual(a.t.stop(), 0, a.t.stderr_lines)
        evs = {e["meta"]["name"]: e for e in check_lines(self, a.raw())
               if e.get("source") == "k8s" and e["meta"].get("resource") == "services"}
        self.assertIn("listed", evs)
        self.assertIn("watched", evs)
        labels = evs["listed"]["data"]["metadata"]["labels"]
        self.assertEqual(labels["app"], "a\ufffd\ufffd\x1b[31mb")
        self.assertEqual(evs["watched"]["data"]["metadata"]["labels"]["app"],
                         "c\ufffd\ufffd\x1b[31md")

    def test_etcd_value_with_invalid_utf8_and_escape(self):
        need_cmd(self, "etcd")
        d = tmpdir(self, "tapio-hostile-etcd-")
        etcd = Etcd(d).start()
        self.addCleanup(etcd.stop)
        sd = os.path.join(d, "state")
        a = RawAgent(self, d, "agent", "--collectors", "etcd", "--etcd-endpoints", etcd.url,
                     "--state-dir", sd)
        deadline = time.time() + 15
        while not os.path.exists(os.path.join(sd, "etcd.revision")) and time.time() < deadline:
            time.sleep(0.05)
        etcd.put(b"/registry/configmaps/default/k" + HOSTILE, b'{"v":"' + HOSTILE + b'"}')
        etcd.put(b"/registry/configmaps/default/plain", HOSTILE + b"text")
        a.wait_raw(b"plain")
        time.sleep(0.5)
        self.assertEqual(a.t.stop(), 0, a.t.stderr_lines)
        evs = [e for e in check_lines(self, a.raw()) if e.get("type") == "etcd.watch"]
        self.assertEqual(len(evs), 2, a.raw()[-2000:])


class MetricsFloodTest(unittest.TestCase):
    N_IDLE = 200
    N_SLOW = 200

    def setUp(self):
        if not os.path.exists(TAPIO):
            tapiotest.skip_or_fail(self, "build/tapio is not built (run make)")

    def probe(self, port):
        """One GET /healthz; True when a 200 came back within 1 s."""
        t0 = time.monotonic()
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1.0) as s:
                s.settimeout(max(0.01, 1.0 - (time.monotonic() - t0)))
                s.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
                got = b""
                while b"\r\n" not in got:
                    left = 1.0 - (time.monotonic() - t0)
                    if left <= 0:
                        return False
                    s.settimeout(left)
                    chunk = s.recv(256)
                    if not chunk:
                        break
                    got += chunk
                return got.startswith(b"HTTP/1.1 200") and time.monotonic() - t0 <= 1.0
        except OSError:
            return False

    def test_healthz_answers_under_idle_and_slowloris_clients(self):
        port = free_port()
        d = tmpdir(self, "tapio-hostile-m-")
        t = Tapio("agent", "--collectors", "cni", "--cni-log-dirs", d,
                  "--state-dir", os.path.join(d, "state"), "--metrics-addr", f"127.0.0.1:{port}",
                  "--output", "stdout")
        self.addCleanup(t.stop)
        deadline = time.time() + 10
        while not self.probe(port):
            self.assertLess(time.time(), deadline, "\n".join(t.stderr_lines))
            time.sleep(0.1)
        socks, stop = [], threading.Event()
        self.addCleanup(lambda: [s.close() for s in socks])
        for i in range(self.N_IDLE):  # connect and say nothing
            socks.append(socket.create_connection(("127.0.0.1", port), timeout=2))
        slow = []
        for i in range(self.N_SLOW):  # a request head, one byte at a time
            s = socket.create_connection(("127.0.0.1", port), timeout=2)
            socks.append(s)
            slow.append(s)
        head = b"GET /metrics HTTP/1.1\r\nHost: x\r\nX-Slow: " + b"a" * 10000

        def drip():
            i = 0
            while not stop.wait(0.5) and i < len(head):  # bounded: 0.5 s a byte
                for s in slow:
                    try:
                        s.send(head[i:i + 1])
                    except OSError:
                        pass
                i += 1

        th = threading.Thread(target=drip, daemon=True)
        th.start()
        self.addCleanup(stop.set)
        time.sleep(0.5)
        ok, n = 0, 60
        for i in range(n):
            ok += self.probe(port)
            time.sleep(0.1)
            # idle clients that got dropped come back, as an attacker's would
            for j, s in enumerate(socks[:self.N_IDLE]):
                if i % 10 == 0:
                    try:
                        s.setblocking(False)
                        if s.recv(1) == b"":
                            raise OSError
                    except BlockingIOError:
                        pass
                    except OSError:
                        s.close()
                        try:
                            socks[j] = socket.create_connection(("127.0.0.1", port), timeout=2)
                        except OSError:
                            pass
        stop.set()
        th.join(5)
        self.assertGreaterEqual(ok / n, 0.99, f"/healthz answered {ok} of {n} probes in 1 s")
        # the endpoint still serves /metrics to a client that asks properly
        with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
            s.sendall(b"GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            got = b""
            while True:
                c = s.recv(65536)
                if not c:
                    break
                got += c
        self.assertTrue(got.startswith(b"HTTP/1.1 200"), got[:200])
        self.assertIn(b"tapio_build_info", got)
        self.assertEqual(t.stop(), 0, "\n".join(t.stderr_lines))


class KubeconfigTest(unittest.TestCase):
    def setUp(self):
        if not os.path.exists(TAPIO):
            tapiotest.skip_or_fail(self, "build/tapio is not built (run make)")

    def test_deep_kubeconfig_refused_fast(self):
        d = tmpdir(self, "tapio-hostile-kc-")
        kc = os.path.join(d, "kubeconfig")
        with open(kc, "w") as f:
            f.write("[" * 100000 + "]" * 100000)
        t0 = time.monotonic()
        t = Tapio("agent", "--collectors", "k8s", "--k8s-kubeconfig", kc,
                  "--state-dir", os.path.join(d, "state"), "--output", "stdout")
        try:
            t.proc.wait(5)
        except Exception:
            pass
        took = time.monotonic() - t0
        rc = t.stop()
        err = "\n".join(t.stderr_lines)
        self.assertNotEqual(rc, 0, err)
        self.assertIn("nested deeper than", err)
        self.assertIn(kc, err)
        self.assertLess(took, 1.0, f"refused after {took:.2f} s")


if __name__ == "__main__":
    unittest.main()
