"""tapio agent -> OTLP/HTTP logs, end to end: the real kernel collector (and
the cni collector for a collector event) to a receiver that decodes each
request with the OpenTelemetry project's generated protobuf code
(otlp_receiver.js, @opentelemetry/otlp-transformer), not with tapio's.
Every field of each record; retries on 503 with Retry-After (nothing lost,
nothing twice); a 400 (failed, the server's message logged); partial
success; a receiver that is down at start; a slow receiver (the queue
buffers, bounded, and drops are counted)."""
import base64
import json
import os
import shutil
import signal
import socket
import subprocess
import time
import unittest
import urllib.request

import k8s_fixture
import tapiotest
from kernel_fixture import MemoryCgroup, VethNetns, cgroup2_root, make_pod_cgroup
from tapiotest import Tapio, clean_env, free_port, need_root, skip_or_fail, tmpdir

ROOT = os.environ.get("TAPIO_ROOT", ".")
RECEIVER = os.path.join(os.path.dirname(os.path.abspath(__file__)), "otlp_receiver.js")
NODE_MODULES = os.path.abspath(os.path.join(ROOT, "build", "node", "node_modules"))
TRANSFORMER = os.path.join(NODE_MODULES, "@opentelemetry", "otlp-transformer", "build", "src",
                           "generated", "root.js")
CALICO_LINE = ('2024-05-10 12:34:56.789 [INFO][12345] plugin.go 326: Calico CNI ADD '
               'args=&skel.CmdArgs{ContainerID:"4f2a9c", Netns:"/var/run/netns/cni-5e1d", '
               'IfName:"eth0", Args:"IgnoreUnknown=1;K8S_POD_NAMESPACE=shop;K8S_POD_NAME=web-0;'
               'K8S_POD_INFRA_CONTAINER_ID=4f2a9c"}')


def wait(pred, timeout, step=0.1):
    deadline = time.time() + timeout
    while time.time() < deadline:
        v = pred()
        if v:
            return v
        time.sleep(step)
    return pred()


def connected(mport):
    """tapio_sink_connected{sink="otlp"} from /metrics, or None."""
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{mport}/metrics", timeout=5) as r:
            text = r.read().decode()
    except OSError:
        return None
    for line in text.splitlines():
        if line.startswith('tapio_sink_connected{sink="otlp"}'):
            return int(float(line.rsplit(" ", 1)[1]))
    return None


def anyvalue(v):
    """An OTLP AnyValue (as protobufjs' toObject gives it) as a Python value."""
    if v is None or v == {}:
        return None
    if "stringValue" in v:
        return v["stringValue"]
    if "boolValue" in v:
        return v["boolValue"]
    if "intValue" in v:
        return int(v["intValue"])
    if "doubleValue" in v:
        return v["doubleValue"]
    if "bytesValue" in v:
        return base64.b64decode(v["bytesValue"])
    if "arrayValue" in v:
        return [anyvalue(x) for x in v["arrayValue"].get("values", [])]
    if "kvlistValue" in v:
        return {kv["key"]: anyvalue(kv.get("value")) for kv in v["kvlistValue"].get("values", [])}
    raise AssertionError(f"unknown AnyValue {v}")


def attrs(lst):
    out = {}
    for kv in lst or []:
        assert kv["key"] not in out, f"attribute {kv['key']} twice"
        out[kv["key"]] = anyvalue(kv.get("value"))
    return out


class Receiver:
    def __init__(self, tc, *args, port=None):
        self.port = port or free_port()
        self.out = os.path.join(tmpdir(tc, "tapio-otlp-"), "requests.jsonl")
        self.args = list(args)
        self.proc = None

    def start(self):
        self.proc = subprocess.Popen(["node", RECEIVER, "--port", str(self.port), "--out", self.out]
                                     + self.args, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                     env=dict(os.environ, TAPIO_NODE_DIR=NODE_MODULES))
        line = self.proc.stdout.readline().decode()
        if not line.startswith("listening"):
            raise RuntimeError("receiver did not start: " + line + self.proc.stderr.read().decode())

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            self.proc.wait(10)
        for f in (self.proc.stdout, self.proc.stderr) if self.proc else ():
            f.close()

    def requests(self):
        if not os.path.exists(self.out):
            return []
        with open(self.out) as f:
            return [json.loads(l) for l in f if l.strip()]

    def records(self):
        """(resource attributes, scope, record) of every record in a 200 answer."""
        out = []
        for r in self.requests():
            if r["status"] != 200:
                continue
            for rl in r["request"].get("resourceLogs", []):
                res = attrs(rl.get("resource", {}).get("attributes"))
                for sl in rl.get("scopeLogs", []):
                    for lr in sl.get("logRecords", []):
                        out.append((res, sl.get("scope", {}), lr))
        return out

    def markers(self, prefix):
        got = []
        for _, _, lr in self.records():
            if lr.get("eventName") != "process.exec":
                continue
            body = anyvalue(lr.get("body"))
            for a in body.get("args") or []:
                if isinstance(a, str) and a.startswith(prefix):
                    got.append(a)
        return got


def exec_markers(tag, n):
    names = [f"tapio-otlp-{tag}-{os.getpid()}-{i}" for i in range(n)]
    for m in names:
        subprocess.run(["/bin/true", m], check=True)
    return names


class OtlpTest(unittest.TestCase):
    def setUp(self):
        need_root(self)
        if not shutil.which("node"):
            skip_or_fail(self, "node is not installed (make deps installs it)")
        if not os.path.exists(TRANSFORMER):
            skip_or_fail(self, "@opentelemetry/otlp-transformer is not installed (make deps)")

    def receiver(self, *args, start=True, port=None):
        r = Receiver(self, *args, port=port)
        self.addCleanup(r.stop)
        if start:
            r.start()
        return r

    def agent(self, rcv, *extra, collectors="kernel", scheme="otlp", metrics="", state=None):
        a = Tapio("agent", "--collectors", collectors, "--output",
                  f"{scheme}://127.0.0.1:{rcv.port}", "--state-dir", state or tmpdir(self),
                  "--metrics-addr", metrics, "--node-name", "node-t",
                  "--otlp-batch-ms", "100", *extra, env=clean_env())
        self.addCleanup(a.stop)
        self.assertTrue(a.wait_stderr("agent running", 20), "\n".join(a.stderr_lines))
        return a

    def finish(self, a):
        rc = a.stop(signal.SIGTERM, timeout=40)
        self.assertEqual(rc, 0, "\n".join(a.stderr_lines))
        s = a.summary()
        self.assertIsNotNone(s, "\n".join(a.stderr_lines))
        return s

    def check_accounting(self, s, src="kernel"):
        k, sink = s[src], s["sink"]
        self.assertEqual(k["committed"], k["events"] + k["failed"] + k["unsent"], s)
        self.assertEqual(sink["output"], "otlp")
        if "produced" in k:
            self.assertEqual(k["produced"], k["committed"] + k["dropped"], s)

    def test_every_field_kernel_types_and_a_collector_event(self):
        rcv = self.receiver()
        root = tmpdir(self, "tapio-otlp-cni-")
        logdir = os.path.join(root, "log")
        os.makedirs(logdir)
        os.makedirs(os.path.join(root, "netns"))
        os.makedirs(os.path.join(root, "cni", "results"))
        t0 = time.time_ns()
        a = self.agent(rcv, "--cni-log-dirs", logdir, "--netns-dir", os.path.join(root, "netns"),
                       "--cni-state-dir", os.path.join(root, "cni"), collectors="kernel,cni")
        self.assertTrue(a.wait_stderr("cni: following", 10), "\n".join(a.stderr_lines))
        marks = exec_markers("fields", 3)
        # tcp: a connection to a listener here (connect, accept, close)
        ls = socket.socket()
        ls.bind(("127.0.0.1", 0))
        ls.listen(1)
        c = socket.create_connection(ls.getsockname())
        s2, _ = ls.accept()
        c.close()
        s2.close()
        ls.close()
        # tcp.reset: a connection refused on loopback
        with self.assertRaises(ConnectionRefusedError):
            socket.create_connection(("127.0.0.1", free_port()), timeout=2)
        # cgroup.mkdir, cgroup.attach, cgroup.rmdir
        cg = os.path.join(cgroup2_root(), "tapio-otlp-%d" % os.getpid())
        os.mkdir(cg)
        try:
            subprocess.run(["/bin/sh", "-c", 'echo $$ > "%s/cgroup.procs" && exec /bin/true' % cg],
                           check=True)
        finally:
            os.rmdir(cg)
        with open(os.path.join(logdir, "cni.log"), "a") as f:
            f.write(CALICO_LINE + "\n")
        self.assertTrue(wait(lambda: set(marks) <= set(rcv.markers("tapio-otlp-fields")) and
                             any(lr.get("eventName") == "cni.log" for _, _, lr in rcv.records()),
                             20, 0.3), rcv.requests()[-1:])
        s = self.finish(a)
        t1 = time.time_ns()
        self.check_accounting(s)
        self.assertEqual(s["sink"]["failed"], 0, s)

        reqs = rcv.requests()
        self.assertTrue(reqs)
        for r in reqs:
            self.assertEqual(r["path"], "/v1/logs")
            self.assertEqual(r["method"], "POST")
            self.assertEqual(r["content_type"], "application/x-protobuf")
            self.assertEqual(r["content_encoding"], "gzip")
            self.assertNotIn("decode_error", r)
        recs = rcv.records()
        self.assertEqual(len(recs), s["sink"]["written"], s)
        types = {}
        for res, scope, lr in recs:
            self.assertEqual(res["service.name"], "tapio")
            self.assertTrue(res["service.version"])
            self.assertEqual(res["host.name"], socket.gethostname())
            self.assertEqual(res["k8s.node.name"], "node-t")
            self.assertEqual(scope["name"], "tapio")
            at = attrs(lr.get("attributes"))
            ts, obs = int(lr["timeUnixNano"]), int(lr["observedTimeUnixNano"])
            self.assertLessEqual(ts, obs + 1000, lr)
            self.assertTrue(t0 - 5 * 10**9 < obs < t1, lr)
            self.assertEqual(lr["eventName"], at["tapio.type"])
            types.setdefault(lr["eventName"], []).append((at, lr))
            body = anyvalue(lr.get("body"))
            if at["tapio.source"] == "kernel":
                self.assertIsInstance(body, dict, lr)
                self.assertIn("process.pid", at, lr)
                self.assertEqual(body.get("pid"), at["process.pid"], lr)
                self.assertEqual(body.get("comm"), at["process.executable.name"], lr)
                self.assertIn("tapio.cgroup_id", at, lr)
                self.assertTrue(abs(ts - obs) < 5 * 10**9, lr)
        for t in ("process.exec", "process.fork", "process.exit", "tcp.connect", "tcp.accept",
                  "tcp.close", "tcp.reset", "cgroup.mkdir", "cgroup.attach", "cgroup.rmdir"):
            self.assertIn(t, types, sorted(types))
        # exec: the marker's record in full
        ex = [(at, lr) for at, lr in types["process.exec"]
              if marks[0] in (anyvalue(lr["body"]).get("args") or [])]
        self.assertEqual(len(ex), 1)
        at, lr = ex[0]
        body = anyvalue(lr["body"])
        self.assertEqual(body["args"], ["/bin/true", marks[0]])
        self.assertEqual(body["argc"], 2)
        self.assertEqual(body["comm"], "true")
        self.assertEqual(at["process.executable.path"], body["filename"])
        self.assertTrue(body["filename"].endswith("/true"))
        self.assertIs(body["args_truncated"], False)
        self.assertEqual(at["tapio.source"], "kernel")
        # tcp.connect to the listener
        port = None
        for at, lr in types["tcp.connect"]:
            b = anyvalue(lr["body"])
            if b.get("daddr") == "127.0.0.1":
                port = b.get("dport")
        self.assertIsNotNone(port, types["tcp.connect"][:2])
        # cgroup events name the cgroup made here
        mk = [anyvalue(lr["body"]) for _, lr in types["cgroup.mkdir"]]
        self.assertTrue(any(os.path.basename(cg) in json.dumps(b) for b in mk), mk[:3])
        # the collector event: text body, meta under semantic names
        cni = types["cni.log"]
        self.assertEqual(len(cni), 1)
        at, lr = cni[0]
        self.assertEqual(at["tapio.source"], "cni")
        self.assertEqual(anyvalue(lr["body"]), CALICO_LINE)
        self.assertEqual(at["k8s.pod.name"], "web-0")
        self.assertEqual(at["k8s.namespace.name"], "shop")
        self.assertEqual(at["container.id"], "4f2a9c")
        self.assertEqual(at["tapio.file"], os.path.join(logdir, "cni.log"))
        self.assertNotIn("process.pid", at)

    def test_retransmit_oom_listen_and_gap(self):
        """The kernel types the first test does not make: tcp.listen, a
        tcp.retransmit (a veth netns whose return path is blackholed), an
        oom.kill (a memory cgroup with a small limit), and kernel.gap (an
        agent SIGKILLed, then started again on its state directory)."""
        rcv = self.receiver()
        state = os.path.join(tmpdir(self, "tapio-otlp-gap-"), "state")
        # only the types made here: the agent must not trace its own exports
        # (each POST is a loopback connection), which would feed itself
        only = ("--events", "tcp.listen,tcp.retransmit,oom.kill")
        a = self.agent(rcv, *only, state=state)
        killed = time.time_ns()
        a.proc.send_signal(signal.SIGKILL)
        a.stop()
        self.assertTrue(os.path.exists(os.path.join(state, "running")))
        t0 = time.time_ns()
        a = self.agent(rcv, *only, state=state)
        # tcp.listen
        ls = socket.socket()
        ls.bind(("127.0.0.1", 0))
        ls.listen(1)
        lport = ls.getsockname()[1]
        ls.close()
        # tcp.retransmit: data to a namespace that can no longer answer
        net = VethNetns(self)
        port = 18000 + os.getpid() % 1000
        server = net.listen(port)
        cli = socket.create_connection((net.ns_ip, port), timeout=5)
        cport = cli.getsockname()[1]
        cli.sendall(b"x" * 100)
        time.sleep(0.2)
        net.blackhole_return_path()
        cli.sendall(b"y" * 100)
        # oom.kill
        limit = 48 << 20
        mem = MemoryCgroup(self, limit)
        victim = mem.run_hog()
        self.assertEqual(victim.wait(60), -signal.SIGKILL, "the hog was not OOM-killed")

        def of(typ, pred):
            return [(attrs(lr.get("attributes")), lr, anyvalue(lr.get("body")))
                    for _, _, lr in rcv.records()
                    if lr.get("eventName") == typ and pred(anyvalue(lr.get("body")))]

        want = {
            "tcp.listen": lambda b: b.get("sport") == lport and b.get("pid") == os.getpid(),
            "tcp.retransmit": lambda b: b.get("sport") == cport and b.get("dport") == port,
            "oom.kill": lambda b: b.get("victim_pid") == victim.pid,
            "kernel.gap": lambda b: isinstance(b, dict) and b.get("to_ns", 0) >= t0,
        }
        got = wait(lambda: all(of(t, p) for t, p in want.items()), 30, 0.3)
        cli.close()
        server.kill()
        self.assertTrue(got, {t: len(of(t, p)) for t, p in want.items()})
        s = self.finish(a)
        k = s["kernel"]
        self.assertEqual(k["committed"], k["events"] + k["failed"] + k["unsent"], s)
        self.assertEqual(k["produced"], k["committed"] + k["dropped"], s)
        self.assertEqual(s["sink"]["output"], "otlp")
        self.assertEqual(s["sink"]["failed"], 0, s)
        for r in rcv.requests():
            self.assertNotIn("decode_error", r)
        found = {t: of(t, p) for t, p in want.items()}
        for t, recs in found.items():
            # each retransmission of the lost segment is an event of its own
            if t == "tcp.retransmit":
                self.assertGreaterEqual(len(recs), 1, (t, recs))
            else:
                self.assertEqual(len(recs), 1, (t, recs))
            at, lr, body = recs[0]
            self.assertEqual(at["tapio.type"], t, lr)
            self.assertEqual(at["tapio.source"], "kernel", lr)
            self.assertIsInstance(body, dict, lr)
            if t != "kernel.gap":
                self.assertEqual(body["pid"], at["process.pid"], lr)
                self.assertEqual(body["comm"], at["process.executable.name"], lr)
                self.assertEqual(str(body["cgroup_id"]), at["tapio.cgroup_id"], lr)

        at, lr, b = found["tcp.listen"][0]
        self.assertEqual(b["saddr"], "127.0.0.1")
        self.assertEqual(b["state"], "LISTEN")
        self.assertEqual(b["family"], "ipv4")
        self.assertEqual(at["process.pid"], os.getpid())

        at, lr, b = found["tcp.retransmit"][0]
        self.assertEqual(b["saddr"], net.host_ip)
        self.assertEqual(b["daddr"], net.ns_ip)
        self.assertEqual(b["sport"], cport)
        self.assertEqual(b["dport"], port)
        self.assertEqual(b["state"], "ESTABLISHED")
        self.assertEqual(b["pid"], os.getpid())

        at, lr, b = found["oom.kill"][0]
        self.assertTrue(b["victim_task_known"], b)
        self.assertEqual(b["pid"], victim.pid)
        self.assertEqual(b["victim_comm"], "python3")
        self.assertEqual(b["cgroup_id"], mem.cgroup2_id)
        self.assertEqual(at["tapio.cgroup_id"], str(mem.cgroup2_id))
        self.assertEqual(b["trigger_tgid"], victim.pid)
        self.assertGreater(b["total_vm"], 0)
        self.assertGreater(b["anon_rss"], 16 << 10)
        self.assertLess(b["anon_rss"], 64 << 10)
        self.assertEqual(b["oom_score_adj"], 0)
        self.assertEqual(b["constraint"], "memcg", b)
        limited = mem.v1 or mem.v2.path
        self.assertTrue(b["limit_memcg_path"].endswith("/" + os.path.basename(limited)), b)
        self.assertEqual(b["limit_memcg_id"], os.stat(limited).st_ino)
        self.assertIn(b["limit"], ("memory", "memsw"))
        self.assertEqual(b["limit_bytes"], limit)
        self.assertLessEqual(b["usage_bytes"], limit)
        self.assertGreater(b["usage_bytes"], limit // 2)
        self.assertIsInstance(b["limit_memcg_path_truncated"], bool)

        at, lr, b = found["kernel.gap"][0]
        self.assertEqual(b["reason"], "unclean stop")
        self.assertLessEqual(b["from_ns"], killed)
        self.assertGreaterEqual(b["to_ns"], t0)
        self.assertAlmostEqual(b["seconds"], (b["to_ns"] - b["from_ns"]) / 1e9, places=2)
        self.assertIsInstance(b["seconds"], float)
        self.assertEqual(int(lr["timeUnixNano"]), b["to_ns"])
        self.assertEqual(at["tapio.gap_from_ns"], str(b["from_ns"]))
        self.assertEqual(at["tapio.gap_to_ns"], str(b["to_ns"]))
        self.assertEqual(at["tapio.id"], "kernel-gap-%d-%d" % (b["from_ns"], b["to_ns"]))
        self.assertNotIn("process.pid", at)

    def test_cursor_moves_on_the_receivers_200(self):
        """CNI log lines through OTLP: the offsets move once the receiver
        accepted them, so a restart on the same state sends nothing twice
        and the next lines once."""
        rcv = self.receiver()
        root = tmpdir(self, "tapio-otlp-ack-")
        logdir, state = os.path.join(root, "log"), os.path.join(root, "state")
        for d in (logdir, os.path.join(root, "netns"), os.path.join(root, "cni")):
            os.makedirs(d)
        args = ["--collectors", "cni", "--output", f"otlp://127.0.0.1:{rcv.port}",
                "--state-dir", state, "--metrics-addr", "", "--otlp-batch-ms", "100",
                "--cni-log-dirs", logdir, "--netns-dir", os.path.join(root, "netns"),
                "--cni-state-dir", os.path.join(root, "cni")]
        log = os.path.join(logdir, "plugin.log")

        def lines_seen():
            out = []
            for _, _, lr in rcv.records():
                if lr.get("eventName") == "cni.log":
                    out.append(anyvalue(lr["body"]))
            return out

        for rnd, (first, n) in enumerate([(0, 30), (30, 20)]):
            a = Tapio("agent", *args, env=clean_env())
            self.addCleanup(a.stop)
            self.assertTrue(a.wait_stderr("cni: following", 20), "\n".join(a.stderr_lines))
            with open(log, "a") as f:
                for i in range(first, first + n):
                    f.write(f"ack-line {i}\n")
            self.assertTrue(wait(lambda: len(lines_seen()) >= first + n, 20),
                            f"round {rnd}: {len(lines_seen())} lines")
            self.finish(a)
        seen = [l for l in lines_seen() if isinstance(l, str) and l.startswith("ack-line")]
        self.assertEqual(sorted(seen, key=lambda l: int(l.split()[1])),
                         [f"ack-line {i}" for i in range(50)], "each line exactly once")

    def test_pod_and_container_attributes(self):
        """kernel + k8s (the fixture API server) -> OTLP: an exec in a pod's
        container cgroup carries the pod and container under their
        semantic-convention names."""
        tapiotest.need_cmd(self, "openssl")
        d = tmpdir(self, "tapio-otlp-k8s-")
        fx = k8s_fixture.Fixture(d).start()
        self.addCleanup(fx.stop)
        kc = fx.kubeconfig(os.path.join(d, "kubeconfig"), token="tok-1")
        cid = "%064x" % (0xC0FFEE + os.getpid())
        img_id = "registry.example/pay@sha256:" + "12" * 32
        pod = fx.store.create("pods", "pay-1", namespace="money",
                              spec={"nodeName": "node-t", "containers": [{"name": "pay"}]},
                              status={"containerStatuses": [
                                  {"name": "pay", "containerID": "containerd://" + cid,
                                   "image": "registry.example:5000/shop/pay:7",
                                   "imageID": img_id}]})
        uid = pod["metadata"]["uid"]
        path = make_pod_cgroup(self, cgroup2_root(), "burstable", uid, cid)
        rcv = self.receiver()
        a = self.agent(rcv, "--events", "process.exec", "--k8s-kubeconfig", kc,
                       "--k8s-resources", "pods", "--pod-labels", "app",
                       collectors="kernel,k8s")

        def pod_seen():
            return any(lr.get("eventName") == "k8s.watch" and
                       attrs(lr.get("attributes")).get("tapio.uid") == uid
                       for _, _, lr in rcv.records())
        self.assertTrue(wait(pod_seen, 20, 0.3), "\n".join(a.stderr_lines))
        def exec_marker(m):
            subprocess.run(["/bin/sh", "-c", 'echo $$ > "%s/cgroup.procs" && exec /bin/true %s'
                            % (path, m)], check=True)
            self.assertTrue(wait(lambda: m in rcv.markers("tapio-otlp-pod"), 20, 0.3))
            rec = [lr for _, _, lr in rcv.records() if lr.get("eventName") == "process.exec"
                   and m in (anyvalue(lr["body"]).get("args") or [])]
            self.assertEqual(len(rec), 1)
            return attrs(rec[0]["attributes"])

        # the cgroup's first event: resolved off the event thread, so pending
        marker = "tapio-otlp-pod-%d" % os.getpid()
        at = exec_marker(marker + "-first")
        self.assertEqual(at.get("tapio.pod_meta"), "pending", at)
        self.assertNotIn("k8s.pod.uid", at)
        for i in range(20):  # the resolver answers at once; the bound is for a loaded machine
            at = exec_marker("%s-%d" % (marker, i))
            if at.get("tapio.pod_meta") != "pending":
                break
        s = self.finish(a)
        self.check_accounting(s)
        self.assertNotIn("tapio.pod_meta", at)
        self.assertEqual(at["k8s.pod.name"], "pay-1")
        self.assertEqual(at["k8s.namespace.name"], "money")
        self.assertEqual(at["k8s.pod.uid"], uid)
        self.assertEqual(at["container.id"], cid)
        self.assertEqual(at["k8s.container.name"], "pay")
        # the reference split: repository (its registry port kept), tag
        self.assertEqual(at["container.image.name"], "registry.example:5000/shop/pay")
        self.assertEqual(at["container.image.tags"], ["7"])
        self.assertNotIn("container.image.repo_digests", at)
        self.assertNotIn("tapio.image", at)
        self.assertEqual(at["container.image.id"], img_id)
        self.assertEqual(at["k8s.pod.label.app"], "pay-1")
        # the k8s event itself: JSON body as a kvlist, meta mapped
        k = [lr for _, _, lr in rcv.records() if lr.get("eventName") == "k8s.watch"
             and attrs(lr["attributes"]).get("tapio.uid") == uid][0]
        kat = attrs(k["attributes"])
        self.assertEqual(kat["tapio.source"], "k8s")
        self.assertEqual(kat["k8s.namespace.name"], "money")
        self.assertEqual(kat["tapio.name"], "pay-1")
        self.assertEqual(kat["tapio.resource"], "pods")
        self.assertEqual(kat["tapio.type"], "k8s.watch")
        self.assertIn(kat["tapio.meta.type"], ("ADDED", "MODIFIED"))
        body = anyvalue(k["body"])
        self.assertEqual(body["metadata"]["uid"], uid)
        self.assertEqual(body["status"]["containerStatuses"][0]["imageID"], img_id)

    def test_503_with_retry_after_loses_nothing_and_sends_nothing_twice(self):
        rcv = self.receiver("--fail", "2", "--fail-status", "503", "--retry-after", "1")
        a = self.agent(rcv, "--events", "process.exec", "--otlp-max-inflight", "1")
        marks = exec_markers("retry", 20)
        self.assertTrue(wait(lambda: set(marks) <= set(rcv.markers("tapio-otlp-retry")), 20, 0.3),
                        rcv.requests()[-3:])
        more = exec_markers("retry2", 10)
        self.assertTrue(wait(lambda: set(more) <= set(rcv.markers("tapio-otlp-retry2")), 20, 0.3))
        s = self.finish(a)
        reqs = rcv.requests()
        self.assertEqual([r["status"] for r in reqs[:3]], [503, 503, 200])
        # The retry waited for Retry-After (1 s) each time: the first 200
        # came at least 2 s after the first request.
        self.assertGreaterEqual(s["sink"]["counters"]["retried"], 2, s)
        got = rcv.markers("tapio-otlp-retry")
        self.assertEqual(sorted(got), sorted(marks + more), "each marker exactly once")
        self.assertEqual(s["sink"]["failed"], 0, s)
        self.assertEqual(s["sink"]["written"], len(rcv.records()), s)
        self.check_accounting(s)

    def test_retry_after_is_honoured(self):
        rcv = self.receiver("--fail", "1", "--fail-status", "429", "--retry-after", "2")
        a = self.agent(rcv, "--events", "process.exec", "--otlp-max-inflight", "1")
        start = time.time()
        marks = exec_markers("ra", 3)
        self.assertTrue(wait(lambda: set(marks) <= set(rcv.markers("tapio-otlp-ra")), 20, 0.2))
        took = time.time() - start
        self.assertGreaterEqual(took, 1.9, "sent again before Retry-After")
        s = self.finish(a)
        self.assertEqual(s["sink"]["failed"], 0, s)
        self.assertGreaterEqual(s["sink"]["counters"]["retried"], 1, s)

    def test_400_fails_and_logs_the_servers_message(self):
        rcv = self.receiver("--always", "400", "--message", "tapio-test: field 12 unknown")
        a = self.agent(rcv, "--events", "process.exec")
        exec_markers("bad", 5)
        self.assertTrue(wait(lambda: len(rcv.requests()) >= 1, 10))
        line = a.wait_stderr("HTTP 400", 10)
        self.assertIsNotNone(line, "\n".join(a.stderr_lines))
        self.assertIn("tapio-test: field 12 unknown", line)
        s = self.finish(a)
        sink = s["sink"]
        self.assertGreaterEqual(sink["failed"], 5, s)
        self.assertEqual(sink["written"], 0, s)
        self.assertGreaterEqual(sink["counters"]["http_errors"], 1, s)
        self.assertEqual(sink["counters"]["retried"], 0, "a 400 is not retried")
        self.assertEqual(len(rcv.requests()), sink["counters"]["requests"], s)
        # rate-limited: one message per 10 s however many requests failed
        self.assertLessEqual(sum("HTTP 400" in l for l in a.stderr_lines), 2)
        self.check_accounting(s)

    def test_partial_success_is_counted(self):
        rcv = self.receiver("--reject", "2")
        a = self.agent(rcv, "--events", "process.exec", "--otlp-batch-ms", "5000")
        exec_markers("part", 6)
        time.sleep(0.5)
        s = self.finish(a)  # one batch at the stop
        sink = s["sink"]
        n = len(rcv.records())
        self.assertEqual(sink["counters"]["requests"], len(rcv.requests()), s)
        self.assertEqual(sink["counters"]["rejected"], 2 * len(rcv.requests()), s)
        self.assertEqual(sink["failed"], 2 * len(rcv.requests()), s)
        self.assertEqual(sink["written"], n - sink["failed"], s)
        self.assertTrue(any("rejected 2 of" in l and "some were rejected" in l
                            for l in a.stderr_lines), a.stderr_lines)
        self.check_accounting(s)

    def test_receiver_down_at_start(self):
        rcv = self.receiver(start=False)
        mport = free_port()
        a = self.agent(rcv, "--events", "process.exec", metrics=f"127.0.0.1:{mport}")
        early = exec_markers("early", 10)
        self.assertTrue(a.wait_stderr("retrying", 10), "\n".join(a.stderr_lines))
        self.assertTrue(wait(lambda: connected(mport) == 0, 10), "connected while down")
        time.sleep(1)
        rcv.start()
        late = exec_markers("late", 10)
        want = set(early + late)
        self.assertTrue(wait(lambda: want <= set(rcv.markers("tapio-otlp-")), 30, 0.3))
        self.assertTrue(wait(lambda: connected(mport) == 1, 10), "not connected once up")
        s = self.finish(a)
        self.assertEqual(sorted(rcv.markers("tapio-otlp-")), sorted(want))
        self.assertEqual(s["sink"]["failed"], 0, s)
        self.assertGreaterEqual(s["sink"]["counters"]["retried"], 1, s)
        self.check_accounting(s)

    def test_bad_output_and_options_exit_2(self):
        for args, want in (
                (["--output", "otlp://nohost"], "needs HOST:PORT"),
                (["--output", "otlp://h:99999"], "port out of range"),
                (["--output", "otlpx://h:1"], "is not stdout"),
                (["--output", "otlps://h:1", "--otlp-cert", "/x"], "go together"),
                (["--output", "otlp://h:1", "--otlp-max-inflight", "0"], "otlp-max-inflight"),
                (["--output", "otlp://h:1", "--otlp-batch-size", "1K"], "otlp-batch-size")):
            r = subprocess.run([tapiotest.TAPIO, "agent", "--collectors", "kernel",
                                "--metrics-addr", "", "--state-dir", tmpdir(self)] + args,
                               capture_output=True, text=True, timeout=30, env=clean_env())
            self.assertEqual(r.returncode, 2, (args, r.stderr))
            self.assertIn(want, r.stderr, args)

    def test_otlps_with_a_ca_and_a_client_certificate(self):
        tapiotest.need_cmd(self, "openssl")
        d = tmpdir(self, "tapio-otlp-pki-")
        ca, crt, key = k8s_fixture.make_pki(d)
        ccrt, ckey = k8s_fixture.make_client_cert(d, cn="tapio-node-t")
        rcv = self.receiver("--tls-cert", crt, "--tls-key", key, "--client-ca", ca)
        a = self.agent(rcv, "--events", "process.exec", "--otlp-ca", ca, "--otlp-cert", ccrt,
                       "--otlp-key", ckey, scheme="otlps")
        marks = exec_markers("tls", 5)
        self.assertTrue(wait(lambda: set(marks) <= set(rcv.markers("tapio-otlp-tls")), 20, 0.3),
                        "\n".join(a.stderr_lines))
        s = self.finish(a)
        self.assertEqual(s["sink"]["failed"], 0, s)
        self.assertTrue(all(r["client_cn"] == "tapio-node-t" for r in rcv.requests()))

    def test_otlps_refuses_an_unknown_server(self):
        tapiotest.need_cmd(self, "openssl")
        d = tmpdir(self, "tapio-otlp-pki-")
        ca, crt, key = k8s_fixture.make_pki(d)
        other, _, _ = k8s_fixture.make_pki(d, name="other")
        rcv = self.receiver("--tls-cert", crt, "--tls-key", key)
        a = self.agent(rcv, "--events", "process.exec", "--otlp-ca", other, scheme="otlps")
        exec_markers("tlsbad", 3)
        line = a.wait_stderr("retrying", 15)
        self.assertIsNotNone(line, "\n".join(a.stderr_lines))
        self.assertIn("certificate", line.lower() + " ".join(a.stderr_lines).lower())
        self.assertEqual(rcv.records(), [], "sent to a server whose certificate is not trusted")
        a.stop(signal.SIGTERM, timeout=40)

    def test_slow_receiver_buffers_bounded_and_counts_drops(self):
        rcv = self.receiver("--delay-ms", "1500")
        a = self.agent(rcv, "--events", "process.exec", "--queue-size", "64K",
                       "--otlp-max-inflight", "1", "--otlp-batch-size", "4K",
                       "--otlp-timeout-ms", "20000")
        marks = exec_markers("slow", 400)
        time.sleep(1)
        s = self.finish(a)
        k, sink = s["kernel"], s["sink"]
        self.assertGreater(k["queue_refused"], 0, f"nothing dropped: {s}")
        self.assertGreater(sink["retries"] if "retries" in sink else 1, 0)
        got = rcv.markers("tapio-otlp-slow")
        self.assertEqual(len(got), len(set(got)), "a marker twice")
        self.assertLess(len(got), len(marks))
        self.assertEqual(sink["written"], len(rcv.records()), s)
        self.check_accounting(s)


if __name__ == "__main__":
    unittest.main()
