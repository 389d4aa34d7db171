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

from tapiotest import Tapio, need_root, tmpdir

REFRESH_S = 5  # RUNNING_REFRESH_MS in user/cmd/agent.c


def clean_env():
    env = {k: v for k, v in os.environ.items()
           if not k.startswith("TAPIO_") or k in ("TAPIO_BIN", "TAPIO_ROOT")}
    env.pop("NODE_NAME", None)
    return env


class GapTest(unittest.TestCase):
    def setUp(self):
        need_root(self)
        self.dir = tmpdir(self, "tapio-gap-")
        self.state = os.path.join(self.dir, "state")
        self.marker = os.path.join(self.state, "running")
        self.agents = []
        self.addCleanup(lambda: [a.stop() for a in self.agents])

    def agent(self):
        t = Tapio("agent", "--collectors", "kernel", "--state-dir", self.state, "--output",
                  "stdout", "--metrics-addr=", env=clean_env())
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


if __name__ == "__main__":
    unittest.main()
