# SPDX-License-Identifier: Apache-2.0
"""An idle agent sleeps until something arrives. With every collector on
(the k8s fixture API server with its lease, a real etcd, empty journal and
CNI directories, the kernel source with --containers so that the host's own
processes are filtered out in the kernel) and nothing happening, each
thread's voluntary context switches (/proc/PID/task/*/status) over a few
seconds are counted: what is left is the lease renewal and the running
marker's refresh. The agent still answers /metrics, and a SIGTERM ends it at
once although no thread wakes on a timer."""
import json
import os
import shutil
import signal
import time
import unittest
import urllib.request

import cni_fixture
import etcd_fixture
import k8s_fixture
import nats_fixture
from tapiotest import Tapio, clean_env, free_port, thread_switches, need_cmd, need_root, skip_or_fail, tmpdir

WINDOW_S = 6.0


def kernel_events(t):
    return len(t.matching(lambda e: e.get("source") == "kernel"))


class IdleAgent(unittest.TestCase):
    def setUp(self):
        need_root(self)
        need_cmd(self, etcd_fixture.ETCD)
        self.dir = tmpdir(self)
        self.k8s = k8s_fixture.Fixture(self.dir)
        self.k8s.bookmark_every = 60.0  # a real API server: about once a minute
        self.k8s.start()
        self.addCleanup(self.k8s.stop)
        tok = os.path.join(self.dir, "token")
        with open(tok, "w") as f:
            f.write("tok-1\n")
        self.kc = self.k8s.kubeconfig(os.path.join(self.dir, "kubeconfig"), token_file=tok)
        self.etcd = etcd_fixture.Etcd(self.dir, progress_notify="10m").start()
        self.addCleanup(self.etcd.stop)
        self.dirs = {k: os.path.join(self.dir, k) for k in ("journal", "cnilog", "netns", "cni", "state")}
        for d in self.dirs.values():
            os.makedirs(d)

    def agent(self, mport):
        d = self.dirs
        t = Tapio("agent", "--collectors", "kernel,k8s,systemd,cni,etcd", "--containers",
                  "--k8s-kubeconfig", self.kc, "--k8s-resources", "pods,services",
                  "--etcd-endpoints", self.etcd.url, "--journal-dir", d["journal"],
                  "--cni-log-dirs", d["cnilog"], "--netns-dir", d["netns"],
                  "--cni-state-dir", d["cni"], "--state-dir", d["state"],
                  "--output", "stdout", "--metrics-addr", f"127.0.0.1:{mport}")
        self.addCleanup(t.stop)
        self.assertIsNotNone(t.wait_stderr("agent running", 20), t.stderr_lines)
        return t

    def test_idle_threads_sleep_and_a_stop_still_ends_it_at_once(self):
        mport = free_port()
        t = self.agent(mport)
        # the watches have listed and are waiting; the lease is held
        deadline = time.time() + 20
        while time.time() < deadline:
            with urllib.request.urlopen(f"http://127.0.0.1:{mport}/metrics", timeout=5) as r:
                text = r.read().decode()
            if "tapio_k8s_leader{collector=\"k8s\"} 1" in text:
                break
            time.sleep(0.2)
        self.assertIn("tapio_k8s_leader{collector=\"k8s\"} 1", text)
        time.sleep(2.0)  # the lease's first cursor write, the watches' first bookmarks
        pid = t.proc.pid
        k0, x0 = kernel_events(t), thread_switches(pid)
        time.sleep(WINDOW_S)
        k1, x1 = kernel_events(t), thread_switches(pid)
        per = {n: x1[n] - x0.get(n, 0) for n in x1}
        by_name = {}
        for n, v in per.items():
            by_name.setdefault(n.split("/")[0], []).append(v)
        print("\nvoluntary switches over %.0f s: %s; kernel events %d" % (
            WINDOW_S, json.dumps(dict(sorted(per.items()))), k1 - k0))
        # Each thread sleeps until its source has something, a stop, or a
        # backstop of 5 s (kernel) to 60 s; the old timed polls made 5 to 30
        # switches in this window (200 ms, 250 ms, 500 ms, 1 s).
        for name in ("k8s-pods", "k8s-services", "etcd", "cni", "systemd", "podmeta",
                     "MHD-single"):
            for v in by_name.get(name, []):
                self.assertLessEqual(v, 1, f"{name}: {per}")
        # the kernel thread: a backstop poll, and at most two per event batch
        for v in by_name["kernel"]:
            self.assertLessEqual(v, 2 + 2 * (k1 - k0), per)
        # the lease renews every 10 s: one request, a few switches
        for v in by_name["k8s-lease"]:
            self.assertLessEqual(v, 8, per)
        # "tapio": the pipeline (a switch per event batch), the running
        # marker (a refresh every 5 s) and the metrics front end (none)
        self.assertLessEqual(sum(by_name["tapio"]), 3 + 2 * (k1 - k0), per)

        # still answering, and a stop is seen at once
        with urllib.request.urlopen(f"http://127.0.0.1:{mport}/healthz", timeout=5) as r:
            self.assertEqual(r.status, 200)
        t0 = time.monotonic()
        rc = t.stop(signal.SIGTERM)
        took = time.monotonic() - t0
        self.assertEqual(rc, 0, t.stderr_lines)
        self.assertLess(took, 3.0, "the stop took %.1f s" % took)
        self.assertIsNotNone(t.summary(), t.stderr_lines)


class IdleStop(unittest.TestCase):
    """No collector makes events and no thread polls: only the signal's kick
    of the queue wakes the pipeline."""

    def setUp(self):
        need_root(self)

    def test_sigint_and_sigterm_end_an_eventless_agent_at_once(self):
        for sig in (signal.SIGINT, signal.SIGTERM):
            d = tmpdir(self)
            for k in ("cnilog", "netns", "cni", "state"):
                os.makedirs(os.path.join(d, k))
            t = Tapio("agent", "--collectors", "cni", "--cni-log-dirs", os.path.join(d, "cnilog"),
                      "--netns-dir", os.path.join(d, "netns"), "--cni-state-dir",
                      os.path.join(d, "cni"), "--state-dir", os.path.join(d, "state"),
                      "--output", "stdout", "--metrics-addr", "")
            self.addCleanup(t.stop)
            self.assertIsNotNone(t.wait_stderr("agent running", 15), t.stderr_lines)
            time.sleep(1.0)  # asleep by now
            t0 = time.monotonic()
            rc = t.stop(sig)
            took = time.monotonic() - t0
            self.assertEqual(rc, 0, t.stderr_lines)
            self.assertLess(took, 2.0, "%s: the stop took %.1f s" % (sig.name, took))
            s = t.summary()
            self.assertIsNotNone(s, t.stderr_lines)
            self.assertEqual(s["cni"]["events"], 0)
            shutil.rmtree(d, True)


class IdleNats(unittest.TestCase):
    """With the NATS sink and every event acknowledged, nothing is due: the
    pipeline waits for its next record (no 200 ms polls) and the sink's
    reader for the server (no 100 ms slices), and a record still wakes both."""

    def setUp(self):
        need_root(self)
        if not os.access(nats_fixture.NATS_SERVER, os.X_OK):
            skip_or_fail(self, "nats-server is not installed (make deps installs it)")

    def test_an_acked_nats_sink_lets_the_agent_sleep(self):
        srv = nats_fixture.NatsServer(free_port())
        self.addCleanup(srv.close)
        srv.start()
        d = tmpdir(self)
        for k in ("cnilog", "netns", "cni", "state"):
            os.makedirs(os.path.join(d, k))
        log = os.path.join(d, "cnilog", "cni.log")
        cni_fixture.append(log, "")
        t = Tapio("agent", "--collectors", "cni", "--cni-log-dirs", os.path.join(d, "cnilog"),
                  "--netns-dir", os.path.join(d, "netns"), "--cni-state-dir",
                  os.path.join(d, "cni"), "--state-dir", os.path.join(d, "state"),
                  "--output", srv.url, "--nats-stream", "TAPIO_IDLE", "--metrics-addr", "",
                  env=clean_env())
        self.addCleanup(t.stop)
        self.assertIsNotNone(t.wait_stderr("cni: following", 15), t.stderr_lines)
        cni_fixture.append(log, "idle one ContainerID=c1 plugin=bridge\n")
        time.sleep(1.5)  # published, acknowledged, and a 200 ms poll that saw it
        pid = t.proc.pid
        x0 = thread_switches(pid)
        time.sleep(4.0)
        x1 = thread_switches(pid)
        per = {n: x1[n] - x0.get(n, 0) for n in x1}
        print("\nvoluntary switches over 4 s with NATS: %s" % json.dumps(dict(sorted(per.items()))))
        # The pipeline (the main thread): no poll; its 200 ms polls made 20
        # here, and the sink reader's 100 ms slices 40. What is left: the
        # NATS reader (a PING every 10 s), the running marker (a refresh
        # every 5 s) and libnats's threads of the stream-management
        # connection.
        self.assertLessEqual(per[f"tapio/{pid}"], 1, per)
        self.assertLessEqual(sum(per.values()), 10, per)
        cni_fixture.append(log, "idle two ContainerID=c2 plugin=bridge\n")
        deadline, stored = time.time() + 5, []
        while time.time() < deadline and len(stored) < 2:
            time.sleep(0.2)
            r = nats_fixture.JsReader(srv.port)
            try:
                _, stored = r.read_all("TAPIO_IDLE")
            finally:
                r.close()
        self.assertEqual(len(stored), 2, "the second record did not reach the stream")
        self.assertEqual(t.stop(signal.SIGTERM), 0, t.stderr_lines)
        s = t.summary()
        self.assertIsNotNone(s, t.stderr_lines)
        self.assertEqual(s["cni"]["events"], 2, s)
        self.assertEqual(s["sink"]["acked"], 2, s)


if __name__ == "__main__":
    unittest.main()
