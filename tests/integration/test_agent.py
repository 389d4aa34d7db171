"""tapio agent: config handling, the JSON Lines stream, shutdown summary,
drop accounting under a storm with a tiny queue, and sink failures."""
import json
import os
import signal
import subprocess
import time
import unittest

from kernel_fixture import cgroup2_root, make_pod_cgroup
from tapiotest import TAPIO, Tapio, need_root, tmpdir

AGENT = ["agent", "--metrics-addr="]


def run_agent(*args, env=None, timeout=20):
    full = dict(os.environ)
    for k in list(full):
        if k.startswith("TAPIO_") and k not in ("TAPIO_BIN", "TAPIO_ROOT"):
            del full[k]
    if env:
        full.update(env)
    return subprocess.run([TAPIO] + AGENT + list(args), env=full, stdout=subprocess.PIPE,
                          stderr=subprocess.PIPE, timeout=timeout)


class Config(unittest.TestCase):
    def test_invalid_flag_value_exits_2_naming_the_key(self):
        p = run_agent("--queue-size", "3M")
        self.assertEqual(p.returncode, 2)
        self.assertIn(b"queue-size", p.stderr)
        self.assertEqual(len(p.stderr.strip().splitlines()), 1, p.stderr)

    def test_invalid_env_and_file(self):
        p = run_agent("--print-config", env={"TAPIO_OUTPUT": "ftp://x"})
        self.assertEqual(p.returncode, 2)
        self.assertIn(b"TAPIO_OUTPUT", p.stderr)
        d = tmpdir(self)
        f = os.path.join(d, "bad.yaml")
        with open(f, "w") as fh:
            fh.write("queue_size: 64K\nno_such_key: 1\n")
        p = run_agent("--config", f, "--print-config")
        self.assertEqual(p.returncode, 2)
        self.assertIn(b"no_such_key", p.stderr)
        self.assertIn(f.encode(), p.stderr)
        with open(f, "w") as fh:
            fh.write("queue_size: [64K\n")
        p = run_agent("--config", f)
        self.assertEqual(p.returncode, 2)
        self.assertIn(f.encode(), p.stderr)

    def test_precedence_in_print_config(self):
        d = tmpdir(self)
        f = os.path.join(d, "c.yaml")
        with open(f, "w") as fh:
            fh.write("queue_size: 1M\nstate_dir: /from/file\noutput: file:/from/file\n"
                     "etcd:\n  prefix: /nested/\n")
        p = run_agent("--config", f, "--queue-size", "4M", "--print-config",
                      env={"TAPIO_QUEUE_SIZE": "2M", "TAPIO_OUTPUT": "file:/from/env"})
        self.assertEqual(p.returncode, 0, p.stderr)
        cfg = dict(l.split(": ", 1) for l in p.stdout.decode().splitlines())
        self.assertEqual(cfg["queue_size"], str(4 << 20))
        self.assertEqual(cfg["output"], '"file:/from/env"')
        self.assertEqual(cfg["state_dir"], '"/from/file"')
        self.assertEqual(cfg["etcd_prefix"], '"/nested/"')
        self.assertEqual(cfg["config"], '"%s"' % f)

    def test_unknown_collector_and_help(self):
        p = run_agent("--collectors", "kernel,bogus")
        self.assertEqual(p.returncode, 2)
        self.assertIn(b"bogus", p.stderr)
        p = run_agent("--help")
        self.assertEqual(p.returncode, 0)
        self.assertIn(b"--queue-size", p.stdout)
        self.assertIn(b"TAPIO_QUEUE_SIZE", p.stdout)


def wait_running(tc, stream):
    """Reads the agent's stderr until it says it runs; returns the lines read."""
    lines = []
    while True:
        raw = stream.readline()
        if not raw:
            tc.fail("the agent ended before running: %r" % lines)
        line = raw.decode(errors="replace").rstrip("\n")
        lines.append(line)
        if "agent running" in line:
            return lines


def summary_of(stderr_lines):
    for l in reversed(stderr_lines):
        try:
            obj = json.loads(l)
        except ValueError:
            continue
        if isinstance(obj, dict) and "summary" in obj:
            return obj["summary"]
    return None


class KernelStream(unittest.TestCase):
    def setUp(self):
        need_root(self)

    def test_streams_json_lines_and_summarises_on_sigint(self):
        state = tmpdir(self)
        with Tapio(*AGENT, "--collectors", "kernel", "--events", "process.exec",
                   "--state-dir", state) as t:
            self.assertIsNotNone(t.wait_stderr("agent running", 15), t.stderr_lines)
            marker = "tapio-agent-%d" % os.getpid()
            subprocess.run(["/bin/echo", marker], stdout=subprocess.DEVNULL, check=True)
            ev = t.wait_for(lambda e: e.get("type") == "process.exec"
                            and marker in json.dumps(e.get("data")), 10)
            self.assertIsNotNone(ev, "exec of /bin/echo did not arrive")
            self.assertEqual(ev["source"], "kernel")
            self.assertIn("cgroup_id", ev["meta"])
            self.assertRegex(ev["ts"], r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{9}Z$")
            rc = t.stop(signal.SIGINT)
        self.assertEqual(rc, 0, t.stderr_lines)
        s = t.summary()
        self.assertIsNotNone(s, t.stderr_lines)
        k = s["kernel"]
        self.assertEqual(k["events"], len(t.events))
        self.assertEqual(k["events"] + k["dropped"] - k["dropped_kernel"] + k["failed"], k["produced"])
        self.assertEqual(t.bad_lines, [])

    def test_storm_with_tiny_queue_counts_every_drop(self):
        """With a 64K queue and a stalled reader, the execs written plus the
        events dropped equal the events the kernel collector produced."""
        d = tmpdir(self)
        fifo = os.path.join(d, "out")
        os.mkfifo(fifo)
        state = tmpdir(self)
        env = dict(os.environ)
        p = subprocess.Popen([TAPIO] + AGENT + ["--collectors", "kernel", "--events", "process.exec",
                                                "--queue-size", "64K", "--state-dir", state,
                                                "--output", "file:" + fifo],
                             stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env)
        reader = open(fifo, "rb")  # opened, but not read until the storm is over
        head = wait_running(self, p.stderr)
        n = 3000
        storm = subprocess.run(["/bin/sh", "-c", "i=0; while [ $i -lt %d ]; do /bin/true tapio-storm; i=$((i+1)); done" % n])
        self.assertEqual(storm.returncode, 0)
        time.sleep(0.5)
        p.send_signal(signal.SIGINT)
        data = reader.read()  # drains the pipe while the agent drains its queue
        reader.close()
        err = head + p.stderr.read().decode(errors="replace").splitlines()
        rc = p.wait(30)
        self.assertEqual(rc, 0, err)
        lines = [json.loads(l) for l in data.decode().splitlines()]
        s = summary_of(err)
        self.assertIsNotNone(s, err)
        k = s["kernel"]
        ours = sum(1 for e in lines if "tapio-storm" in json.dumps(e["data"]))
        self.assertEqual(k["events"], len(lines), "summary events != lines written")
        self.assertGreater(k["queue_refused"], 0, "a 64K queue with a stalled reader should drop")
        self.assertEqual(k["queue_refused"], k["dropped"] - k["dropped_kernel"])
        self.assertEqual(k["events"] + k["dropped"] - k["dropped_kernel"] + k["failed"] + k["unsent"],
                         k["produced"], "written + dropped != produced: %r" % k)
        # Each of our n execs is either written or counted as dropped.
        self.assertGreaterEqual(ours + k["dropped"], n, k)
        self.assertGreater(ours, 0)


class SinkFailure(unittest.TestCase):
    def setUp(self):
        need_root(self)

    def test_full_disk_counts_every_event_as_failed(self):
        """Writes to /dev/full fail with ENOSPC: nothing is counted as written,
        and every event the collector produced is accounted for."""
        state = tmpdir(self)
        p = subprocess.Popen([TAPIO] + AGENT + ["--collectors", "kernel", "--events", "process.exec",
                                                "--state-dir", state, "--output", "file:/dev/full"],
                             stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        head = wait_running(self, p.stderr)
        for _ in range(20):
            subprocess.run(["/bin/true"])
        time.sleep(0.5)
        p.send_signal(signal.SIGTERM)
        err = head + p.stderr.read().decode(errors="replace").splitlines()
        self.assertEqual(p.wait(20), 0, err)
        s = summary_of(err)
        self.assertIsNotNone(s, err)
        k = s["kernel"]
        self.assertEqual(k["events"], 0, s)
        self.assertEqual(s["sink"]["written"], 0, s)
        self.assertGreaterEqual(k["failed"], 20, s)
        self.assertEqual(k["events"] + k["dropped"] - k["dropped_kernel"] + k["failed"] + k["unsent"],
                         k["produced"], s)
        self.assertTrue(any("No space left on device" in l for l in err), err)

    def test_closed_stdout_is_reported_not_fatal(self):
        state = tmpdir(self)
        p = subprocess.Popen([TAPIO] + AGENT + ["--collectors", "kernel", "--events", "process.exec",
                                                "--state-dir", state],
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        head = wait_running(self, p.stderr)
        p.stdout.close()  # the reader goes away: writes get EPIPE
        for _ in range(20):
            subprocess.run(["/bin/true"])
        time.sleep(0.5)
        p.send_signal(signal.SIGTERM)
        err = head + p.stderr.read().decode(errors="replace").splitlines()
        self.assertEqual(p.wait(20), 0, err)
        s = summary_of(err)
        self.assertIsNotNone(s, err)
        self.assertGreater(s["sink"]["failed"], 0, s)
        self.assertTrue(any("Broken pipe" in l for l in err), err)



class PodMetadata(unittest.TestCase):
    def setUp(self):
        need_root(self)

    def test_kubelet_shaped_cgroup_gives_container_and_pod(self):
        root = cgroup2_root()
        self.assertIsNotNone(root, "no cgroup2 mount")
        uid = "4f6d2a1e-9b3c-4d5e-8f70-a1b2c3d4e5f6"
        cid = "%064x" % (0xC0FFEE + os.getpid())
        path = make_pod_cgroup(self, root, "besteffort", uid, cid)
        state = tmpdir(self)
        with Tapio(*AGENT, "--collectors", "kernel", "--events", "process.exec",
                   "--state-dir", state) as t:
            self.assertIsNotNone(t.wait_stderr("agent running", 15), t.stderr_lines)
            marker = "tapio-pod-%d" % os.getpid()

            def exec_marker(m):
                # The shell moves itself into the pod's cgroup, then execs the marker.
                subprocess.run(["/bin/sh", "-c", 'echo $$ > "%s/cgroup.procs" && exec /bin/echo %s'
                                % (path, m)], stdout=subprocess.DEVNULL, check=True)
                ev = t.wait_for(lambda e: e.get("type") == "process.exec"
                                and e["data"].get("filename") == "/bin/echo"
                                and m in e["data"].get("args", []), 10)
                self.assertIsNotNone(ev, "exec in the pod cgroup did not arrive")
                return ev
            # the cgroup's first event: pending (resolved off the event thread)
            ev = exec_marker(marker + "-first")
            self.assertEqual(ev["meta"], {"cgroup_id": str(os.stat(path).st_ino),
                                          "pod_meta": "pending"})
            for i in range(20):  # the resolver answers at once; the bound is for a loaded machine
                ev = exec_marker("%s-%d" % (marker, i))
                if ev["meta"].get("pod_meta") != "pending":
                    break
            self.assertNotIn("pod_meta", ev["meta"])
            self.assertEqual(ev["meta"].get("container_id"), cid, ev["meta"])
            self.assertEqual(ev["meta"].get("pod_uid"), uid, ev["meta"])
            self.assertEqual(int(ev["meta"]["cgroup_id"]), os.stat(path).st_ino)


if __name__ == "__main__":
    unittest.main()
