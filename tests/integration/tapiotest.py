"""Shared helpers for tapio's integration tests (Python unittest).

- need_root(tc): the test needs root. Unprivileged it skips and says so;
  under CI=true (where the runner is root) a missing privilege is a failure.
- skip_or_fail(tc, why): skip locally, fail under CI.
- Tapio(args...): runs build/tapio with a reader thread that collects stdout
  JSON lines; wait_for(pred) waits for a matching event.
- free_port(), tmpdir().
"""
import json
import glob
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time
import unittest

ROOT = os.environ.get("TAPIO_ROOT") or os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
TAPIO = os.environ.get("TAPIO_BIN") or os.path.join(ROOT, "build", "tapio")
CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")


def skip_or_fail(tc, why):
    if CI:
        tc.fail("CI=true, so this cannot be skipped: " + why)
    raise unittest.SkipTest(why)


def need_root(tc):
    if os.geteuid() != 0:
        skip_or_fail(tc, "needs root (run the tests with sudo)")


def need_cmd(tc, cmd):
    if shutil.which(cmd) is None:
        skip_or_fail(tc, f"{cmd} is not installed (make deps installs it)")


def clean_env():
    """The environment for an agent under test: no TAPIO_* settings but the
    binary and the tree, and nothing that names a node or a cluster."""
    env = {k: v for k, v in os.environ.items()
           if not k.startswith("TAPIO_") or k in ("TAPIO_BIN", "TAPIO_ROOT")}
    for k in ("NODE_NAME", "KUBECONFIG", "KUBERNETES_SERVICE_HOST"):
        env.pop(k, None)
    return env


def thread_switches(pid, kinds=("voluntary",)):
    """{thread name/tid: context switches of the given kinds ("voluntary",
    "nonvoluntary")} of pid, from /proc/PID/task/*/status."""
    out = {}
    for st in glob.glob(f"/proc/{pid}/task/*/status"):
        try:
            with open(st) as f:
                kv = dict(line.split(":", 1) for line in f if ":" in line)
        except OSError:
            continue
        name = f"{kv['Name'].strip()}/{os.path.basename(os.path.dirname(st))}"
        out[name] = sum(int(kv[f"{k}_ctxt_switches"]) for k in kinds)
    return out


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def tmpdir(tc, prefix="tapio-test-"):
    d = tempfile.mkdtemp(prefix=prefix)
    tc.addCleanup(shutil.rmtree, d, True)
    return d


class Tapio:
    """A running build/tapio. Collects JSON lines from stdout (non-JSON lines
    are kept in .bad_lines) and stderr text."""

    def __init__(self, *args, env=None, stdin=subprocess.DEVNULL):
        self.args = [TAPIO] + [str(a) for a in args]
        full_env = dict(os.environ)
        if env:
            full_env.update(env)
        self.proc = subprocess.Popen(self.args, stdin=stdin, stdout=subprocess.PIPE,
                                     stderr=subprocess.PIPE, env=full_env)
        self.events = []
        self.bad_lines = []
        self.stderr_lines = []
        self._cv = threading.Condition()
        self._t_out = threading.Thread(target=self._read_out, daemon=True)
        self._t_err = threading.Thread(target=self._read_err, daemon=True)
        self._t_out.start()
        self._t_err.start()

    def _read_out(self):
        for raw in self.proc.stdout:
            line = raw.decode("utf-8", errors="strict").rstrip("\n")
            with self._cv:
                try:
                    self.events.append(json.loads(line))
                except ValueError:
                    self.bad_lines.append(line)
                self._cv.notify_all()

    def _read_err(self):
        for raw in self.proc.stderr:
            with self._cv:
                self.stderr_lines.append(raw.decode("utf-8", errors="replace").rstrip("\n"))
                self._cv.notify_all()

    def wait_for(self, pred, timeout=10.0):
        """Returns the first event for which pred(ev) is true, or None."""
        deadline = time.time() + timeout
        seen = 0
        with self._cv:
            while True:
                for ev in self.events[seen:]:
                    if pred(ev):
                        return ev
                seen = len(self.events)
                left = deadline - time.time()
                if left <= 0 or (self.proc.poll() is not None and seen == len(self.events)
                                 and not self._t_out.is_alive()):
                    return None
                self._cv.wait(min(left, 0.2))

    def wait_stderr(self, needle, timeout=10.0):
        deadline = time.time() + timeout
        with self._cv:
            while True:
                for l in self.stderr_lines:
                    if needle in l:
                        return l
                left = deadline - time.time()
                if left <= 0:
                    return None
                self._cv.wait(min(left, 0.2))

    def matching(self, pred):
        with self._cv:
            return [e for e in self.events if pred(e)]

    def stop(self, sig=signal.SIGINT, timeout=20.0):
        """Signals the process and waits; returns the exit code."""
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        try:
            rc = self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            rc = self.proc.wait()
        self._t_out.join(5)
        self._t_err.join(5)
        for f in (self.proc.stdout, self.proc.stderr):
            if f:
                f.close()
        return rc

    def summary(self):
        """The last stderr line that is a JSON object with a "summary" key."""
        for l in reversed(self.stderr_lines):
            try:
                obj = json.loads(l)
            except ValueError:
                continue
            if isinstance(obj, dict) and "summary" in obj:
                return obj["summary"]
        return None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.stop()
