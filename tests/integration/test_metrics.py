"""The agent's /metrics, /healthz and /readyz over real HTTP: the exposition
is parsed (format rules included) and its numbers checked against the events
the agent actually wrote; the probes answer; a bad address is refused."""
import json
import os
import re
import signal
import socket
import subprocess
import time
import unittest
import urllib.error
import urllib.request

from tapiotest import TAPIO, Tapio, clean_env, free_port, need_cmd, need_root, tmpdir
from etcd_fixture import ETCD, Etcd

SAMPLE_RE = re.compile(r'^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{(?:[a-zA-Z_][a-zA-Z0-9_]*="(?:[^"\\]|\\.)*",?)*\})? '
                       r'(-?[0-9.eE+]+|NaN|\+Inf|-Inf)$')


def http_get(port, path):
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=5) as r:
            return r.status, r.headers.get("Content-Type"), r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.headers.get("Content-Type"), e.read().decode()


def parse_exposition(tc, text):
    """Checks the Prometheus text format and returns {sample key: value}:
    HELP then TYPE once per family, before its samples; a family's samples
    together; counters end in _total; every line well formed."""
    samples, families, types = {}, [], {}
    cur = None
    tc.assertTrue(text.endswith("\n"))
    for line in text.splitlines():
        if line.startswith("# HELP "):
            name = line.split()[2]
            tc.assertNotIn(name, families, f"family {name} twice")
            tc.assertGreater(len(line.split(" ", 3)), 3, f"HELP without text: {line}")
            families.append(name)
            cur = name
            continue
        if line.startswith("# TYPE "):
            _, _, name, typ = line.split()
            tc.assertEqual(name, cur, f"TYPE {name} not right after its HELP")
            tc.assertIn(typ, ("counter", "gauge"))
            types[name] = typ
            continue
        m = SAMPLE_RE.match(line)
        tc.assertIsNotNone(m, f"malformed sample line: {line!r}")
        tc.assertEqual(m.group(1), cur, f"sample {line} outside its family {cur}")
        if types[cur] == "counter":
            tc.assertTrue(cur.endswith("_total"), cur)
        key = m.group(1) + (m.group(2) or "")
        tc.assertNotIn(key, samples, f"sample {key} twice")
        samples[key] = float(m.group(3))
    return samples


def marked(agent, tag):
    """Exec events whose argv carries tag."""
    return len(agent.matching(lambda e: any(tag in a for a in (e.get("data") or {}).get("args", []))))


def wait(pred, timeout, step=0.1):
    deadline = time.time() + timeout
    while time.time() < deadline:
        v = pred()
        if v:
            return v
        time.sleep(step)
    return pred()


def port_open(port):
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return True
    except OSError:
        return False


class AgentMetrics(unittest.TestCase):
    def setUp(self):
        need_root(self)

    def test_metrics_match_what_was_written(self):
        d = tmpdir(self)
        mport = free_port()
        agent = Tapio("agent", "--collectors", "kernel", "--events", "process.exec",
                      "--output", "stdout", "--queue-size", "1M", "--state-dir", d,
                      "--metrics-addr", f"127.0.0.1:{mport}", env=clean_env())
        self.addCleanup(agent.stop)
        self.assertTrue(wait(lambda: port_open(mport), 20), "\n".join(agent.stderr_lines))

        code, _, body = http_get(mport, "/healthz")
        self.assertEqual((code, body), (200, "ok\n"), "kernel collector attached: alive")
        code, _, body = http_get(mport, "/readyz")
        self.assertEqual((code, body), (200, "ok\n"))

        tag = f"tapio-metrics-{os.getpid()}"
        for i in range(30):
            subprocess.run(["/bin/true", f"{tag}-{i}"], check=True)
        self.assertTrue(wait(lambda: marked(agent, tag) == 30, 20),
                        f"only {marked(agent, tag)} of 30 marker events written")
        # Lines the agent has written so far (a lower bound for what it counted).
        written_before = len(agent.matching(lambda e: True))

        code, ctype, text = http_get(mport, "/metrics")
        self.assertEqual(code, 200)
        self.assertEqual(ctype, "text/plain; version=0.0.4; charset=utf-8")
        s = parse_exposition(self, text)

        (build,) = [k for k in s if k.startswith("tapio_build_info{")]
        self.assertRegex(build, r'version="[^"]+"')
        self.assertEqual(s[build], 1)
        # Events per source: at least what is already in the file (more may
        # be in flight), never fewer than the sink wrote.
        ev = s['tapio_events_total{source="kernel"}']
        self.assertGreaterEqual(ev, written_before)
        self.assertGreaterEqual(s['tapio_sink_written_total{sink="stream"}'], written_before)
        self.assertLessEqual(s['tapio_sink_written_total{sink="stream"}'], ev)
        self.assertGreaterEqual(s['tapio_collector_events_total{collector="kernel"}'], written_before)
        for src in ("k8s", "systemd", "cni", "etcd"):
            self.assertEqual(s[f'tapio_events_total{{source="{src}"}}'], 0)
        for reason in ("full", "timeout", "oversize", "closed"):
            self.assertIn(f'tapio_queue_dropped_total{{source="kernel",reason="{reason}"}}', s)
        self.assertEqual(s["tapio_queue_capacity_bytes"], 1 << 20)
        self.assertGreaterEqual(s["tapio_queue_used_bytes"], 0)
        self.assertLessEqual(s["tapio_queue_used_bytes"], 1 << 20)
        self.assertEqual(s['tapio_collector_healthy{collector="kernel"}'], 1)
        for t in ("process.exec", "process.fork", "tcp.connect", "oom.kill"):
            self.assertIn(f'tapio_kernel_drops_total{{collector="kernel",type="{t}"}}', s)
            self.assertIn(f'tapio_kernel_shed_total{{collector="kernel",type="{t}"}}', s)
        # Each attached program's recursion_misses (bpf_prog_info), next to the drops.
        for p in ("tapio_exec",):
            self.assertEqual(s[f'tapio_kernel_recursion_misses_total{{collector="kernel",prog="{p}"}}'], 0)
        for f in ("dropped", "parse_errors", "oversize", "reconnects", "errors"):
            self.assertIn(f'tapio_collector_{f}_total{{collector="kernel"}}', s)
        self.assertEqual(s['tapio_sink_connected{sink="stream"}'], 1)
        self.assertEqual(s['tapio_sink_failed_total{sink="stream"}'], 0)
        # The pod metadata cache and its resolver thread: the marker execs'
        # cgroup was looked up (a miss first), nothing was refused.
        for f in ("hits", "misses", "resolves", "evictions", "queue_full", "resolve_errors"):
            self.assertIn(f"tapio_podmeta_{f}_total", s)
        self.assertGreaterEqual(s["tapio_podmeta_misses_total"], 1)
        self.assertEqual(s["tapio_podmeta_queue_full_total"], 0)
        self.assertGreaterEqual(s["tapio_podmeta_resolve_pending"], 0)
        self.assertEqual(s["tapio_podmeta_pod_entries"], 0)  # no k8s collector feeds pods

        # Counters only grow, and follow new events.
        for i in range(10):
            subprocess.run(["/bin/true", f"{tag}-second-{i}"], check=True)
        self.assertTrue(wait(lambda: marked(agent, f"{tag}-second") == 10, 20))
        s2 = parse_exposition(self, http_get(mport, "/metrics")[2])
        self.assertGreaterEqual(s2['tapio_events_total{source="kernel"}'], ev + 10)
        for k, v in s.items():
            if k.split("{")[0].endswith("_total"):
                self.assertGreaterEqual(s2[k], v, k)

        self.assertEqual(http_get(mport, "/nothing")[0], 404)
        self.assertEqual(agent.stop(signal.SIGTERM), 0)
        summary = agent.summary()
        total = len(agent.matching(lambda e: True))
        self.assertEqual(agent.bad_lines, [])
        self.assertEqual(summary["sink"]["written"], total)
        self.assertGreaterEqual(total, s2['tapio_sink_written_total{sink="stream"}'])
        self.assertEqual(summary["kernel"]["committed"], total + summary["sink"]["unsent"])

    def test_readyz_follows_a_collectors_source(self):
        """A real etcd behind the etcd collector: /readyz is 200 while the
        watch runs, 503 naming the collector while etcd is down, 200 again
        after it is back; the healthy gauge and reconnects follow, and
        /healthz (no kernel collector here) stays 200."""
        if not os.access(ETCD, os.X_OK):
            need_cmd(self, "etcd")
        d = tmpdir(self)
        etcd = Etcd(d)
        self.addCleanup(etcd.stop)
        etcd.start()
        mport = free_port()
        agent = Tapio("agent", "--collectors", "etcd", "--etcd-endpoints", etcd.url,
                      "--etcd-prefix", "/registry/", "--output", "stdout", "--state-dir", d,
                      "--metrics-addr", f"127.0.0.1:{mport}", env=clean_env())
        self.addCleanup(agent.stop)
        self.assertTrue(wait(lambda: port_open(mport) and http_get(mport, "/readyz")[0] == 200, 20),
                        "\n".join(agent.stderr_lines))
        rev = etcd.put("/registry/pods/default/p1", "v1")
        self.assertIsNotNone(agent.wait_for(lambda e: e.get("source") == "etcd", 20))
        s = parse_exposition(self, http_get(mport, "/metrics")[2])
        self.assertEqual(s['tapio_collector_healthy{collector="etcd"}'], 1)
        self.assertGreaterEqual(s['tapio_events_total{source="etcd"}'], 1)
        self.assertGreaterEqual(rev, 2)

        etcd.stop()
        self.assertTrue(wait(lambda: http_get(mport, "/readyz")[0] == 503, 20),
                        "readyz stayed 200 with etcd down")
        code, _, body = http_get(mport, "/readyz")
        self.assertIn("collector etcd: unhealthy", body)
        self.assertEqual(http_get(mport, "/healthz")[0], 200)
        s = parse_exposition(self, http_get(mport, "/metrics")[2])
        self.assertEqual(s['tapio_collector_healthy{collector="etcd"}'], 0)

        etcd.start()
        self.assertTrue(wait(lambda: http_get(mport, "/readyz")[0] == 200, 30),
                        "readyz did not come back with etcd: " + http_get(mport, "/readyz")[2])
        s = parse_exposition(self, http_get(mport, "/metrics")[2])
        self.assertEqual(s['tapio_collector_healthy{collector="etcd"}'], 1)
        self.assertGreaterEqual(s['tapio_collector_reconnects_total{collector="etcd"}'], 1)
        self.assertEqual(agent.stop(signal.SIGTERM), 0)

    def test_bad_metrics_addr_is_reported(self):
        d = tmpdir(self)
        # The port is taken: the agent says so and keeps shipping events.
        s = socket.socket()
        s.bind(("127.0.0.1", 0))
        s.listen(1)
        self.addCleanup(s.close)
        port = s.getsockname()[1]
        agent = Tapio("agent", "--collectors", "kernel", "--events", "process.exec",
                      "--output", "stdout", "--state-dir", d,
                      "--metrics-addr", f"127.0.0.1:{port}", env=clean_env())
        self.addCleanup(agent.stop)
        line = agent.wait_stderr("metrics_addr", 20)
        self.assertIsNotNone(line, "\n".join(agent.stderr_lines))
        self.assertIn(f"127.0.0.1:{port}", line)
        self.assertIn("cannot listen", line)
        tag = f"tapio-metrics-busy-{os.getpid()}"
        subprocess.run(["/bin/true", tag], check=True)
        self.assertIsNotNone(agent.wait_for(lambda e: tag in json.dumps(e), 20))
        self.assertEqual(agent.stop(), 0)


if __name__ == "__main__":
    unittest.main()
