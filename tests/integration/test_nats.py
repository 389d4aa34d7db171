"""tapio agent -> NATS JetStream, end to end: a real `nats-server -js`, the
real kernel collector, events read back from the stream with their subjects
and Nats-Msg-Id headers; the server killed mid-run and restarted on the same
store: the agent buffers, reconnects, loses nothing, stores no id twice, and
/readyz follows the connection."""
import json
import os
import re
import signal
import subprocess
import time
import unittest
import urllib.error
import urllib.request

from tapiotest import Tapio, free_port, need_cmd, need_root, skip_or_fail, tmpdir, TAPIO
from nats_fixture import NATS_SERVER, JsReader, NatsServer

STREAM = "TAPIO_TEST"
ID_RE = re.compile(r"^node-t-(\d+)-(\d+)$")


def clean_env():
    env = {k: v for k, v in os.environ.items()
           if not k.startswith("TAPIO_") or k in ("TAPIO_BIN", "TAPIO_ROOT")}
    env.pop("NODE_NAME", None)
    return env


def http_get(port, path):
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=5) as r:
            return r.status, r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode()


def metric(text, name):
    """The value of the sample `name` (with its labels, as rendered), or None."""
    for line in text.splitlines():
        if not line.startswith("#") and " " in line:
            key, val = line.rsplit(" ", 1)
            if key == name:
                return float(val)
    return None


def wait(pred, timeout, step=0.1):
    deadline = time.time() + timeout
    while time.time() < deadline:
        v = pred()
        if v:
            return v
        time.sleep(step)
    return pred()


def exec_markers(tag, n):
    names = [f"tapio-nats-{tag}-{os.getpid()}-{i}" for i in range(n)]
    for m in names:
        subprocess.run(["/bin/true", m], check=True)
    return names


def marker_of(msg):
    ev = json.loads(msg["data"])
    args = ev.get("data", {}).get("args") or []
    for a in args:
        if a.startswith("tapio-nats-"):
            return a
    return None


class NatsEndToEnd(unittest.TestCase):
    def setUp(self):
        need_root(self)
        if not os.access(NATS_SERVER, os.X_OK):
            skip_or_fail(self, "nats-server is not installed (make deps installs it)")
        self.srv = NatsServer(free_port())
        self.addCleanup(self.srv.close)
        self.srv.start()

    def read_stream(self):
        r = JsReader(self.srv.port)
        try:
            return r.read_all(STREAM)
        finally:
            r.close()

    def markers_in_stream(self):
        try:
            _, msgs = self.read_stream()
        except (OSError, RuntimeError, KeyError):
            return set()
        return {marker_of(m) for m in msgs} - {None}

    def test_ships_survives_a_restart_and_dedups(self):
        mport = free_port()
        agent = Tapio("agent", "--collectors", "kernel", "--events", "process.exec",
                      "--output", self.srv.url, "--state-dir", tmpdir(self),
                      "--metrics-addr", f"127.0.0.1:{mport}", "--node-name", "node-t",
                      "--nats-stream", STREAM, "--nats-max-age", "3600",
                      "--nats-ack-wait-ms", "10000", env=clean_env())
        self.addCleanup(agent.stop)
        ok = wait(lambda: agent.proc.poll() is None and
                  http_get(mport, "/readyz")[0] == 200 if _port_open(mport) else False, 20)
        self.assertTrue(ok, "agent never became ready: " + "\n".join(agent.stderr_lines))

        before = exec_markers("before", 20)
        got = wait(lambda: set(before) <= self.markers_in_stream(), 20, 0.3)
        self.assertTrue(got, "events before the outage did not reach the stream")

        # Outage: the sink disconnects, /readyz says why, events queue up.
        self.srv.kill()
        down = wait(lambda: http_get(mport, "/readyz")[0] == 503, 10)
        self.assertTrue(down, "readyz stayed 200 with NATS down")
        code, body = http_get(mport, "/readyz")
        self.assertIn("sink nats: not connected", body)
        self.assertEqual(http_get(mport, "/healthz")[0], 200, "liveness must not follow NATS")
        during = exec_markers("during", 20)
        retried = wait(lambda: (metric(http_get(mport, "/metrics")[1],
                                       'tapio_sink_retries_total{sink="nats"}') or 0) > 0, 10)
        self.assertTrue(retried, "no write was held back while NATS was down")
        _, text = http_get(mport, "/metrics")
        self.assertEqual(metric(text, 'tapio_sink_connected{sink="nats"}'), 0)
        time.sleep(1)

        self.srv.start()
        self.assertTrue(wait(lambda: http_get(mport, "/readyz")[0] == 200, 20),
                        "readyz did not come back after the restart")
        after = exec_markers("after", 20)
        want = set(before) | set(during) | set(after)
        got = wait(lambda: want <= self.markers_in_stream(), 30, 0.5)
        self.assertTrue(got, f"missing from the stream: {sorted(want - self.markers_in_stream())[:5]}")
        _, text = http_get(mport, "/metrics")
        self.assertGreaterEqual(metric(text, 'tapio_sink_nats_reconnects_total{sink="nats"}'), 1)
        self.assertEqual(metric(text, 'tapio_sink_connected{sink="nats"}'), 1)

        rc = agent.stop(signal.SIGTERM)
        self.assertEqual(rc, 0, "\n".join(agent.stderr_lines))
        summary = agent.summary()
        self.assertIsNotNone(summary, "\n".join(agent.stderr_lines))
        sink = summary["sink"]

        info, msgs = self.read_stream()
        self.assertEqual(info["config"]["subjects"], ["tapio.events.>"])
        self.assertEqual(info["config"]["retention"], "limits")
        self.assertEqual(info["config"]["max_age"], 3600 * 10**9)
        ids, starts, seqs = [], set(), []
        seen_markers = []
        for m in msgs:
            self.assertEqual(m["subject"], "tapio.events.kernel.process.exec")
            mid = m["headers"].get("Nats-Msg-Id")
            self.assertIsNotNone(mid, f"message {m['seq']} without Nats-Msg-Id")
            mm = ID_RE.match(mid)
            self.assertIsNotNone(mm, mid)
            starts.add(mm.group(1))
            seqs.append(int(mm.group(2)))
            ids.append(mid)
            ev = json.loads(m["data"])
            self.assertEqual(ev["source"], "kernel")
            self.assertEqual(ev["type"], "process.exec")
            self.assertEqual(m["data"].count(b"\n"), 0)
            mk = marker_of(m)
            if mk:
                seen_markers.append(mk)
        # Dedup: no id stored twice. Nothing lost: the ids are the publish
        # sequence 1..N without a gap, and each acked event is there once.
        self.assertEqual(len(ids), len(set(ids)), "an id is stored twice")
        self.assertEqual(len(starts), 1)
        self.assertEqual(sorted(seqs), list(range(1, len(seqs) + 1)), "a gap in the published ids")
        self.assertEqual(sorted(seen_markers), sorted(want), "each marker exactly once")
        self.assertEqual(sink["failed"], 0, summary)
        self.assertEqual(sink["unsent"], 0, summary)
        self.assertEqual(sink["acked"], len(msgs), summary)
        self.assertEqual(sink["written"], len(msgs), summary)
        k = summary["kernel"]
        # Drops, if any, are counted: what was produced is committed or dropped.
        self.assertEqual(k["produced"], k["committed"] + k["dropped"], summary)
        self.assertEqual(k["committed"], sink["written"] + sink["unsent"] + sink["failed"], summary)

    def test_server_down_at_start(self):
        """The agent starts while NATS is down, is not ready, buffers, and
        ships once NATS comes up."""
        self.srv.kill()
        mport = free_port()
        agent = Tapio("agent", "--collectors", "kernel", "--events", "process.exec",
                      "--output", self.srv.url, "--state-dir", tmpdir(self),
                      "--metrics-addr", f"127.0.0.1:{mport}", "--node-name", "node-t",
                      "--nats-stream", STREAM, env=clean_env())
        self.addCleanup(agent.stop)
        self.assertTrue(wait(lambda: _port_open(mport), 20), "\n".join(agent.stderr_lines))
        self.assertIsNone(agent.proc.poll())
        code, body = http_get(mport, "/readyz")
        self.assertEqual(code, 503)
        self.assertIn("sink nats: not connected", body)
        early = exec_markers("early", 10)
        time.sleep(0.5)
        self.srv.start()
        self.assertTrue(wait(lambda: http_get(mport, "/readyz")[0] == 200, 20))
        self.assertTrue(wait(lambda: set(early) <= self.markers_in_stream(), 30, 0.5),
                        "events queued while NATS was down did not arrive")
        self.assertEqual(agent.stop(signal.SIGTERM), 0)
        self.assertEqual(agent.summary()["sink"]["failed"], 0)

    def test_example_config_ships_to_jetstream(self):
        """`tapio agent --config deploy/config/agent.yaml --output nats://...`
        (the DaemonSet's config) ships events to its stream. Only what a
        test needs of its own is overridden: the state dir and the metrics
        address. The collectors are those whose source exists here."""
        root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
        cfg = os.path.join(root, "deploy", "config", "agent.yaml")
        mport = free_port()
        agent = Tapio("agent", "--config", cfg, "--output", self.srv.url,
                      "--state-dir", tmpdir(self), "--metrics-addr", f"127.0.0.1:{mport}",
                      env=clean_env())
        self.addCleanup(agent.stop)
        self.assertTrue(wait(lambda: _port_open(mport) and http_get(mport, "/readyz")[0] == 200, 20),
                        "\n".join(agent.stderr_lines))
        marks = exec_markers("example", 5)

        def stored():
            try:
                r = JsReader(self.srv.port)
                try:
                    _, msgs = r.read_all("TAPIO_EVENTS")
                finally:
                    r.close()
            except (OSError, RuntimeError, KeyError):
                return None
            return msgs if set(marks) <= {marker_of(m) for m in msgs} else None

        msgs = wait(stored, 20, 0.3)
        self.assertTrue(msgs, "events did not reach the TAPIO_EVENTS stream")
        self.assertTrue(all(m["subject"].startswith("tapio.events.kernel.") for m in msgs))
        self.assertTrue(all("Nats-Msg-Id" in m["headers"] for m in msgs))
        self.assertEqual(agent.stop(signal.SIGTERM), 0)

    def test_shutdown_with_nats_down_counts_what_was_not_sent(self):
        """SIGTERM while NATS is down: the agent retries for nats_ack_wait_ms,
        then exits 0 and its summary accounts for every committed event:
        written, failed or unsent (left in the queue). Nothing vanishes."""
        mport = free_port()
        agent = Tapio("agent", "--collectors", "kernel", "--events", "process.exec",
                      "--output", self.srv.url, "--state-dir", tmpdir(self),
                      "--metrics-addr", f"127.0.0.1:{mport}", "--node-name", "node-t",
                      "--nats-stream", STREAM, "--nats-ack-wait-ms", "1500", env=clean_env())
        self.addCleanup(agent.stop)
        self.assertTrue(wait(lambda: _port_open(mport) and http_get(mport, "/readyz")[0] == 200, 20),
                        "\n".join(agent.stderr_lines))
        first = exec_markers("sent", 5)
        self.assertTrue(wait(lambda: set(first) <= self.markers_in_stream(), 20, 0.3))
        self.srv.kill()
        self.assertTrue(wait(lambda: http_get(mport, "/readyz")[0] == 503, 10))
        exec_markers("stranded", 10)
        time.sleep(0.5)
        t0 = time.time()
        rc = agent.stop(signal.SIGTERM)
        took = time.time() - t0
        self.assertEqual(rc, 0, "\n".join(agent.stderr_lines))
        self.assertLess(took, 15, "shutdown is bounded by nats_ack_wait_ms")
        summary = agent.summary()
        sink, k = summary["sink"], summary["kernel"]
        self.assertGreaterEqual(sink["unsent"] + sink["failed"], 10, summary)
        # Every committed event was acknowledged by JetStream (counted as
        # written for its source), failed (refused, left unacked or lost:
        # not written for its source) or left in the queue.
        self.assertEqual(k["committed"], k["events"] + k["failed"] + sink["unsent"], summary)
        self.assertEqual(sink["acked"], k["events"], summary)
        self.assertEqual(sink["failed"], k["failed"], summary)
        self.assertGreaterEqual(sink["written"], sink["acked"], summary)

    def test_bad_url_exits_2(self):
        p = subprocess.run([TAPIO, "agent", "--collectors", "kernel", "--metrics-addr=",
                            "--output", "nats://127.0.0.1", "--state-dir", tmpdir(self)],
                           env=clean_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                           timeout=20)
        self.assertEqual(p.returncode, 2)
        self.assertIn(b"missing :PORT", p.stderr)
        self.assertEqual(len(p.stderr.strip().splitlines()), 1, p.stderr)


def _port_open(port):
    import socket
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return True
    except OSError:
        return False


if __name__ == "__main__":
    unittest.main()
