"""Tests of scripts/vmtest.sh itself: it fetches a real Debian kernel, boots it
under qemu with its initramfs, and must tell a passing guest from a failing,
hanging or panicking one (fixture guest scripts in tests/fixtures/vmtest/).
The tapio checks themselves run in `make vmtest`.

The kernel cache is build/vmtest/kernels, shared with `make vmtest`.
"""
import os
import re
import shutil
import subprocess
import time
import unittest

from tapiotest import ROOT, need_cmd, skip_or_fail, tmpdir

SCRIPT = os.path.join(ROOT, "scripts", "vmtest.sh")
FIXTURES = os.path.join(ROOT, "tests", "fixtures", "vmtest")
KCACHE = os.path.join(ROOT, "build", "vmtest", "kernels")
# A dynamically linked program from coreutils stands in for tapio: the guest
# runs it, which only works if its libraries and loader were staged.
STAND_IN = shutil.which("ls") or "/bin/ls"


def vmtest(*args, out, timeout=180, env=None):
    full_env = dict(os.environ)
    full_env.update({"VMTEST_OUT": out, "VMTEST_KERNEL_CACHE": KCACHE,
                     "VMTEST_RUNNER": "qemu", "VMTEST_SMP": "1", "VMTEST_MEM": "256"})
    full_env.pop("VMTEST_GUEST", None)
    if env:
        full_env.update(env)
    t0 = time.time()
    p = subprocess.run([SCRIPT, *args], cwd=ROOT, env=full_env, stdout=subprocess.PIPE,
                       stderr=subprocess.PIPE, timeout=timeout)
    return p.returncode, p.stdout.decode(errors="replace"), p.stderr.decode(errors="replace"), time.time() - t0


class VmtestScript(unittest.TestCase):
    kernel = None

    @classmethod
    def setUpClass(cls):
        for cmd in ("qemu-system-x86_64", "cpio", "apt-get", "dpkg-deb"):
            if shutil.which(cmd) is None:
                cls.missing = f"{cmd} is not installed (make deps installs it)"
                return
        if not os.path.exists("/bin/busybox"):
            cls.missing = "busybox-static is not installed (make deps installs it)"
            return
        cls.missing = None
        # Fetch (or reuse) the current Debian 12 cloud kernel.
        p = subprocess.run([SCRIPT, "--fetch-only", "--runner", "qemu", "debian-cloud"], cwd=ROOT,
                           env=dict(os.environ, VMTEST_KERNEL_CACHE=KCACHE),
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=300)
        if p.returncode != 0:
            cls.missing = "cannot fetch the Debian cloud kernel: " + p.stderr.decode(errors="replace")
            return
        cls.kernel = p.stdout.decode().strip().splitlines()[-1]
        cls.package = open(os.path.join(os.path.dirname(cls.kernel), "package")).read().strip()

    def setUp(self):
        if self.missing:
            skip_or_fail(self, self.missing)
        self.out = tmpdir(self, "tapio-vmtest-")

    def guest(self, name):
        return os.path.join(FIXTURES, name)

    def summary(self, stdout, name):
        m = re.search(r"^" + re.escape(name) + r"\s+(PASS|FAIL)\s+([0-9.]+)\s+(.*)$", stdout, re.M)
        self.assertIsNotNone(m, "no summary line for " + name + " in:\n" + stdout)
        return m.group(1), float(m.group(2)), m.group(3)

    def test_fetch_resolves_the_alias_to_the_package_and_caches_the_image(self):
        self.assertRegex(self.package, r"^linux-image-6\.1\.0-\d+-cloud-amd64$")
        self.assertTrue(os.path.getsize(self.kernel) > 1 << 20, self.kernel)
        with open(self.kernel, "rb") as f:
            head = f.read(0x210)
        self.assertEqual(head[0x202:0x206], b"HdrS", "not an x86 bzImage")
        # A second fetch reuses the cache: same path, no download.
        rc, stdout, stderr, _ = vmtest("--fetch-only", self.package, out=self.out)
        self.assertEqual(rc, 0, stderr)
        self.assertEqual(stdout.strip(), self.kernel)
        self.assertNotIn("fetching", stderr)

    def test_passing_guest_runs_the_staged_binary_on_the_kernel(self):
        expect = subprocess.run([STAND_IN, "--version"], stdout=subprocess.PIPE).stdout.decode().splitlines()[0]
        rc, stdout, stderr, _ = vmtest("--tapio", STAND_IN, "--guest", self.guest("guest-pass.sh"),
                                       self.kernel, out=self.out, env={"VMTEST_GUEST_EXPECT": expect})
        log = os.path.join(self.out, "vmlinuz.log")
        text = open(log, errors="replace").read().replace("\r", "")
        self.assertEqual(rc, 0, stdout + stderr + text)
        version = self.package[len("linux-image-"):]
        self.assertIn("guest-kernel: " + version + "\n", text)
        self.assertIn("guest-init-pid: init\n", text)
        self.assertIn("guest-tapio: " + expect + "\n", text)
        self.assertIn("\nVMTEST-RESULT: PASS\n", text)
        self.assertIn("VMTEST-EXIT: 0", text)
        status, secs, detail = self.summary(stdout, "vmlinuz")
        self.assertEqual(status, "PASS")
        self.assertRegex(detail, r"^(kvm|tcg)$")
        self.assertIn("staged-binary PASS", stdout)  # the guest's table is shown
        self.assertIn("1 kernel(s), 0 failed", stdout)

    def test_failing_guest_fails_the_run_with_its_reason(self):
        rc, stdout, stderr, _ = vmtest("--guest", self.guest("guest-fail.sh"), "--tapio", STAND_IN,
                                       self.kernel, out=self.out)
        self.assertEqual(rc, 1, stdout + stderr)
        status, _, detail = self.summary(stdout, "vmlinuz")
        self.assertEqual(status, "FAIL")
        self.assertTrue(detail.endswith("FAIL (oom.kill)"), detail)
        self.assertIn("oom.kill FAIL no oom.kill event", stdout)
        self.assertIn("1 kernel(s), 1 failed", stdout)

    def test_hanging_guest_is_stopped_by_the_timeout(self):
        rc, stdout, stderr, secs = vmtest("-t", "25", "--guest", self.guest("guest-hang.sh"),
                                          "--tapio", STAND_IN, self.kernel, out=self.out)
        self.assertEqual(rc, 1, stdout + stderr)
        status, vm_secs, detail = self.summary(stdout, "vmlinuz")
        self.assertEqual(status, "FAIL")
        self.assertTrue(detail.endswith("timed out after 25s"), detail)
        self.assertGreaterEqual(vm_secs, 25)
        self.assertLess(secs, 60)
        text = open(os.path.join(self.out, "vmlinuz.log"), errors="replace").read()
        self.assertIn("guest-hang: sleeping", text)  # the log up to the kill is kept
        self.assertEqual(subprocess.run(["pgrep", "-f", self.out], stdout=subprocess.PIPE).stdout, b"",
                         "qemu still running after the timeout")

    def test_panicking_guest_is_reported_as_a_panic(self):
        rc, stdout, stderr, secs = vmtest("--guest", self.guest("guest-panic.sh"), "--tapio", STAND_IN,
                                          self.kernel, out=self.out)
        self.assertEqual(rc, 1, stdout + stderr)
        status, _, detail = self.summary(stdout, "vmlinuz")
        self.assertEqual(status, "FAIL")
        self.assertIn("kernel panic: Kernel panic - not syncing: sysrq triggered crash", detail)
        self.assertLess(secs, 60)  # panic=-1 and -no-reboot end qemu at once

    def test_unknown_kernel_is_a_usage_error(self):
        missing = os.path.join(self.out, "no-such-bzImage")
        rc, stdout, stderr, _ = vmtest(missing, out=self.out)
        self.assertEqual(rc, 2)
        self.assertIn(f"kernel '{missing}': no such file, package or alias", stderr)
        rc, _, stderr, _ = vmtest("--accel", "warp", self.kernel, out=self.out)
        self.assertEqual(rc, 2)
        self.assertIn("accel 'warp'", stderr)


if __name__ == "__main__":
    unittest.main()
