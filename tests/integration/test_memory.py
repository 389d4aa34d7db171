"""The agent's resident memory, apart from what configuration sizes: `tapio
agent --collectors kernel`, after start-up and after it has carried real
events (execs and loopback connections), keeps at most 16 MiB resident
besides the event-queue arena and the BPF ring buffer
(tests/integration/smaps.py tells those apart, mapping by mapping). The
arena and the ring are checked to be found at their configured sizes, so a
change that hides them from the split fails here instead of passing."""
import os
import socket
import subprocess
import time
import unittest

import smaps
import tapiotest
from tapiotest import Tapio

MIB = 1 << 20
REST_MAX = 16 * MIB


def workload(n):
    """n execs of /bin/true and n loopback connections."""
    for _ in range(n):
        subprocess.run(["/bin/true"], check=True)
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(64)
    for _ in range(n):
        c = socket.create_connection(srv.getsockname())
        a, _ = srv.accept()
        c.close()
        a.close()
    srv.close()


class TestMemory(unittest.TestCase):
    def setUp(self):
        tapiotest.need_root(self)
        if not os.path.exists(tapiotest.TAPIO):
            tapiotest.skip_or_fail(self, "build/tapio is not built (run make)")

    def agent(self, queue, ring):
        t = Tapio("agent", "--collectors", "kernel", "--output", "file:/dev/null",
                  "--metrics-addr", "", "--queue-size", queue, "--ringbuf-size", ring)
        self.addCleanup(t.stop)
        if not t.wait_stderr("agent running", 30):
            self.fail("the agent did not start: " + "\n".join(t.stderr_lines[-5:]))
        return t

    def check(self, t, queue_b, ring_b, when):
        m = smaps.classify(t.proc.pid)
        largest = sorted(m["by_name"].items(), key=lambda kv: -kv[1])[:6]
        info = (f"{when}: total {smaps.mib(m['total']):.2f} MiB, arena {smaps.mib(m['arena']):.2f}, "
                f"ring {smaps.mib(m['ring']):.2f}, rest {smaps.mib(m['rest']):.2f} "
                f"(anon {smaps.mib(m['anon']):.2f}, file {smaps.mib(m['file']):.2f}); largest: "
                + ", ".join(f"{n} {v // 1024} KiB" for n, v in largest))
        # the arena is populated at start: all of it is resident
        self.assertEqual(m["arena"], queue_b, info)
        # the ring's data pages are mapped twice; at least its producer page
        # is resident, and never more than both views and that page
        self.assertGreater(m["ring"], 0, info)
        self.assertLessEqual(m["ring"], 2 * ring_b + smaps.PAGE, info)
        self.assertLessEqual(m["rest"], REST_MAX, info)
        self.assertEqual(m["total"], m["arena"] + m["ring"] + m["rest"], info)
        return m

    def test_rest_bound_kernel_collector(self):
        t = self.agent("16M", "8M")
        time.sleep(1.0)
        self.check(t, 16 * MIB, 8 * MIB, "after start-up")
        workload(300)
        time.sleep(0.5)
        self.check(t, 16 * MIB, 8 * MIB, "after 300 execs and 300 connections")

    def test_bigger_arena_and_ring_stay_out_of_the_rest(self):
        t = self.agent("64M", "32M")
        time.sleep(1.0)
        # what the sizes add is found and excluded: the rest keeps its bound
        self.check(t, 64 * MIB, 32 * MIB, "64M queue, 32M ring")


if __name__ == "__main__":
    unittest.main()
