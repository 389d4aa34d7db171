"""The kernel gap record: the kernel source cannot resume, so an agent that
starts after an unclean stop (its state directory still holds the running
marker) emits one kernel.gap event naming the window it could not see, from
the last time the stopped run was known to be running to this start. After
a graceful stop there is no marker and no gap record."""
import os
import signal
import subprocess
import time
import unittest

from tapiotest import Tapio, clean_env, free_port, need_root, tmpdir

REFRESH_S = 5  # RUNNING_REFRESH_MS in user/cmd/agent.c


class GapTest(unittest.TestCase):
    def setUp(self):
        need_root(self)
        self.dir = tmpdir(self, "tapio-gap-")
        self.state = os.path.join(self.dir, "state")
        self.marker = os.path.join(self.state, "running")
        self.agents = []
        self.addCleanup(lambda: [a.stop() for a in self.agents])

    def agent(self, *extra, output="stdout"):
        t = Tapio("agent", "--collectors", "kernel", "--state-dir", self.state, "--output",
                  output, "--metrics-addr=", *extra, env=clean_env())
        self.agents.append(t)
        self.assertIsNotNone(t.wait_stderr("agent running", 20), "\n".join(t.stderr_lines))
        return t

    def gaps(self, t):
        return t.matching(lambda e: e.get("source") == "kernel" and e.get("type") == "kernel.gap")

    def wait_exec_seen(self, t):
        """Runs a process and waits for its process.exec: the kernel source is live."""
        p = subprocess.run(["/bin/sh", "-c", "echo $$; exec /bin/true"], stdout=subprocess.PIPE)
        pid = int(p.stdout)
        ev = t.wait_for(lambda e: e.get("type") == "process.exec" and
                        e.get("data", {}).get("pid") == pid, 15)
        self.assertIsNotNone(ev, "no process.exec from the kernel source")

    def test_gap_after_sigkill_not_after_sigterm(self):
        t0 = time.time_ns()
        t = self.agent()
        self.assertTrue(os.path.exists(self.marker))
        time.sleep(REFRESH_S + 1.5)  # one refresh: "alive" moves past the start
        killed = time.time_ns()
        t.proc.send_signal(signal.SIGKILL)
        t.stop()
        self.agents.remove(t)
        self.assertTrue(os.path.exists(self.marker), "the marker went with a SIGKILL")

        time.sleep(1)
        t1 = time.time_ns()
        t = self.agent()
        ev = t.wait_for(lambda e: e.get("type") == "kernel.gap", 10)
        self.assertIsNotNone(ev, "no kernel.gap after a SIGKILL:\n" + "\n".join(t.stderr_lines))
        d = ev["data"]
        self.assertEqual(d["reason"], "unclean stop")
        # From the last refresh of the killed run (within REFRESH_S before the
        # kill, after its start) to this start (after the kill).
        self.assertGreater(d["from_ns"], t0)
        self.assertLessEqual(d["from_ns"], killed)
        self.assertGreaterEqual(d["from_ns"], killed - (REFRESH_S + 1) * 10**9)
        self.assertGreater(d["to_ns"], killed + 10**9 - 10**8)
        self.assertGreaterEqual(d["to_ns"], t1)
        self.assertLess(d["to_ns"], time.time_ns())
        self.assertAlmostEqual(d["seconds"], (d["to_ns"] - d["from_ns"]) / 1e9, places=2)
        self.assertEqual(ev["meta"]["id"], "kernel-gap-%d-%d" % (d["from_ns"], d["to_ns"]))
        self.assertEqual(ev["meta"]["gap_from_ns"], str(d["from_ns"]))
        self.wait_exec_seen(t)
        self.assertEqual(len(self.gaps(t)), 1)
        self.assertIsNotNone(t.wait_stderr("did not stop cleanly", 2))

        # A graceful stop removes the marker: no gap record next time.
        self.assertEqual(t.stop(signal.SIGTERM), 0, "\n".join(t.stderr_lines[-10:]))
        self.agents.remove(t)
        self.assertFalse(os.path.exists(self.marker), "the marker is left after SIGTERM")
        t = self.agent()
        self.wait_exec_seen(t)
        time.sleep(0.5)
        self.assertEqual(self.gaps(t), [])
        self.assertIsNone(t.wait_stderr("did not stop cleanly", 0.1))
        self.assertEqual(t.stop(signal.SIGTERM), 0)
        self.agents.remove(t)

    def pending(self):
        """The window kept in the state dir until the sink has its event."""
        try:
            with open(os.path.join(self.state, "kernel.gap")) as f:
                lines = f.read().split("\n")
        except FileNotFoundError:
            return None
        self.assertEqual(lines[0], "tapio-gap 1")
        return int(lines[1].split()[1]), int(lines[2].split()[1])

    def kill(self, t):
        t.proc.send_signal(signal.SIGKILL)
        t.stop()
        self.agents.remove(t)

    def one_gap(self, t, log):
        """The start's kernel.gap event, with its stable id, and the log line
        that says where its window comes from."""
        ev = t.wait_for(lambda e: e.get("type") == "kernel.gap", 10)
        self.assertIsNotNone(ev, "no kernel.gap:\n" + "\n".join(t.stderr_lines))
        d = ev["data"]
        self.assertEqual(ev["meta"]["id"], "kernel-gap-%d-%d" % (d["from_ns"], d["to_ns"]))
        self.assertIsNotNone(t.wait_stderr(log, 2))
        return ev

    def reported(self, t):
        """The kernel source is live, the gap was emitted once, its window
        file is gone once the sink (stdout) has it, and a graceful stop."""
        self.wait_exec_seen(t)
        self.assertEqual(len(self.gaps(t)), 1)
        deadline = time.time() + 5
        while time.time() < deadline and self.pending() is not None:
            time.sleep(0.1)
        self.assertIsNone(self.pending())
        self.assertEqual(t.stop(signal.SIGTERM), 0)
        self.agents.remove(t)

    def test_gap_carried_forward_until_the_sink_has_it(self):
        """SIGKILL; a start whose sink is down (its kernel.gap never reaches
        it), SIGKILL again; a normal start reports one gap from the first
        crash's last refresh to this start."""
        t0 = time.time_ns()
        t = self.agent()
        time.sleep(REFRESH_S + 1.5)
        killed = time.time_ns()
        self.kill(t)

        # NATS down: nothing listens on that port, the gap stays in the queue.
        down = "nats://127.0.0.1:%d" % free_port()
        t = self.agent(output=down)
        self.assertIsNotNone(t.wait_stderr("did not stop cleanly", 2))
        first = self.pending()
        self.assertIsNotNone(first, "no kernel.gap window kept while the sink is down")
        self.assertGreater(first[0], t0)
        self.assertLessEqual(first[0], killed)
        self.assertGreaterEqual(first[0], killed - (REFRESH_S + 1) * 10**9)
        time.sleep(REFRESH_S + 1.5)  # this run's marker is refreshed past the first window
        killed2 = time.time_ns()
        self.kill(t)
        self.assertEqual(self.pending(), first, "the window changed without a start")

        time.sleep(0.5)
        t3 = time.time_ns()
        t = self.agent()
        d = self.one_gap(t, "never reached the sink: the gap starts there")["data"]
        self.assertEqual(d["from_ns"], first[0], "the gap does not start at the first crash")
        self.assertGreaterEqual(d["to_ns"], t3)
        self.assertGreater(d["to_ns"], killed2)
        self.reported(t)

    def test_unsent_gap_is_sent_again_after_a_graceful_stop(self):
        t = self.agent()
        time.sleep(0.5)
        self.kill(t)
        down = "nats://127.0.0.1:%d" % free_port()
        t = self.agent("--nats-ack-wait-ms", "300", output=down)
        kept = self.pending()
        self.assertIsNotNone(kept)
        self.assertEqual(t.stop(signal.SIGTERM), 0, "\n".join(t.stderr_lines[-10:]))
        self.agents.remove(t)
        self.assertFalse(os.path.exists(self.marker))
        self.assertEqual(self.pending(), kept, "an unsent gap was given up at a graceful stop")

        t = self.agent()
        ev = self.one_gap(t, "never reached the sink: sending it again")
        # the same window, so the same event id
        self.assertEqual((ev["data"]["from_ns"], ev["data"]["to_ns"]), kept)
        self.assertIsNone(t.wait_stderr("did not stop cleanly", 0.1))
        self.reported(t)
        # Reported: the next start after a graceful stop has no gap at all.
        t = self.agent()
        self.wait_exec_seen(t)
        self.assertEqual(self.gaps(t), [])


if __name__ == "__main__":
    unittest.main()
