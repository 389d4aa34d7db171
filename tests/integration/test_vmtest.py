"""Tests of scripts/vmtest.sh itself: it fetches a real Debian kernel, boots it
under qemu with its initramfs, and must tell a passing guest from a failing,
hanging or panicking one (fixture guest scripts in tests/fixtures/vmtest/).
The tapio checks themselves run in `make vmtest`.

GuestEvaluate runs the guest script's checks (vmtest-guest.sh --evaluate) on
files a real guest run left (tests/fixtures/vmtest/evaluate/: the checks,
tapio probe's output, tapio trace's JSON lines and stderr from Debian's
6.1 cloud kernel), changed to show a missing event, a turned-off program and
a failed trace.

The kernel cache is build/vmtest/kernels (or VMTEST_KERNEL_CACHE), shared
with `make vmtest`.
"""
import os
import re
import shutil
import subprocess
import time
import unittest

from tapiotest import ROOT, skip_or_fail, tmpdir

SCRIPT = os.path.join(ROOT, "scripts", "vmtest.sh")
FIXTURES = os.path.join(ROOT, "tests", "fixtures", "vmtest")
KCACHE = os.environ.get("VMTEST_KERNEL_CACHE") or os.path.join(ROOT, "build", "vmtest", "kernels")
# A dynamically linked program from coreutils stands in for tapio: the guest
# runs it, which only works if its libraries and loader were staged.
STAND_IN = shutil.which("ls") or "/bin/ls"


def vmtest(*args, out, timeout=180, env=None):
    full_env = dict(os.environ)
    full_env.update({"VMTEST_OUT": out, "VMTEST_KERNEL_CACHE": KCACHE,
                     "VMTEST_RUNNER": "qemu", "VMTEST_SMP": "1", "VMTEST_MEM": "256"})
    full_env.pop("VMTEST_GUEST", None)
    full_env.pop("VMTEST_ARCH", None)  # make exports it; the tests say --arch where they mean it
    if env:
        full_env.update(env)
    t0 = time.time()
    p = subprocess.run([SCRIPT, *args], cwd=ROOT, env=full_env, stdout=subprocess.PIPE,
                       stderr=subprocess.PIPE, timeout=timeout)
    return p.returncode, p.stdout.decode(errors="replace"), p.stderr.decode(errors="replace"), time.time() - t0


GUEST = os.path.join(ROOT, "scripts", "vmtest-guest.sh")
EVAL_FIXTURE = os.path.join(FIXTURES, "evaluate")


class GuestEvaluate(unittest.TestCase):
    def setUp(self):
        if not os.path.exists("/bin/busybox"):
            skip_or_fail(self, "busybox-static is not installed (make deps installs it)")
        self.dir = os.path.join(tmpdir(self, "tapio-vmeval-"), "work")
        shutil.copytree(EVAL_FIXTURE, self.dir)

    def edit(self, name, fn):
        path = os.path.join(self.dir, name)
        with open(path) as f:
            text = f.read()
        with open(path, "w") as f:
            f.write(fn(text))

    def drop_type(self, t):
        self.edit("trace.json", lambda s: "".join(l for l in s.splitlines(True) if f'"type":"{t}"' not in l))

    def turn_off(self, prog, why="BPF program load failed: Invalid argument"):
        self.edit("probe.out", lambda s: re.sub(r"^(  " + prog + r" +\S+ +)loads( +\S+)$",
                                                 lambda m: m.group(1) + "FAILS" + m.group(2) + ": " + why,
                                                 s, flags=re.M))
        self.edit("trace.err", lambda s: f"tapio trace: turned off, cannot load on this kernel: {prog} "
                                         "(tapio probe explains)\n" + s)
        self.edit("probe.rc", lambda s: "1\n")

    def evaluate(self, allow=""):
        p = subprocess.run(["/bin/busybox", "sh", GUEST, "--evaluate", self.dir],
                           env={"PATH": os.environ.get("PATH", ""), "VMTEST_ALLOW_OFF": allow},
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=60)
        out = p.stdout.decode()
        table = out.split("VMTEST-TABLE-BEGIN\n")[1].split("VMTEST-TABLE-END")[0]
        rows = {}
        for line in table.splitlines()[1:]:
            kind, result, detail = line.split(None, 2)
            rows.setdefault(kind, []).append((result, detail))
        result = re.search(r"^VMTEST-RESULT: (.*)$", out, re.M).group(1)
        return p.returncode, rows, result, out

    KINDS = ["process.exec", "process.exit", "process.fork", "tcp.connect", "tcp.accept", "tcp.close",
             "tcp.reset", "cgroup.mkdir", "cgroup.rmdir", "cgroup.attach", "oom.kill"]

    def test_a_real_run_passes_with_every_kind(self):
        rc, rows, result, out = self.evaluate()
        self.assertEqual(rc, 0, out)
        self.assertEqual(result, "PASS")
        self.assertEqual(sorted(rows), sorted(self.KINDS))
        for k in self.KINDS:
            self.assertEqual(rows[k][0], ("PASS", "1 event(s)"), k)
        # The matched lines are printed for the log.
        self.assertIn('"args":["sh","-c","exit 7","vmtest-exec-marker"]', out)

    def test_a_summary_check_reads_the_trace_summary(self):
        """map.errors is checked on the summary line tapio trace writes to
        stderr, not on the events."""
        self.edit("checks", lambda s: s + "map.errors summary \"map_errors\":[{]\"socks\":[1-9]\n")
        self.edit("trace.err", lambda s: s.replace('"disabled":""}}', '"disabled":"","map_errors":{"socks":3}}}'))
        rc, rows, result, out = self.evaluate()
        self.assertEqual(rc, 0, out)
        self.assertEqual(rows["map.errors"][0][0], "PASS", out)
        self.edit("trace.err", lambda s: s.replace('"socks":3', '"socks":0'))
        rc, rows, result, out = self.evaluate()
        self.assertEqual(rc, 1, out)
        self.assertEqual(rows["map.errors"][0][0], "FAIL", out)
        self.assertEqual(result, "FAIL (map.errors)")

    def test_a_missing_kind_fails(self):
        self.drop_type("tcp.reset")
        rc, rows, result, out = self.evaluate()
        self.assertEqual(rc, 1, out)
        self.assertEqual(rows["tcp.reset"], [("FAIL", "no tcp.reset event")])
        self.assertEqual(result, "FAIL (tcp.reset)")

    def test_an_event_not_from_the_trigger_does_not_count(self):
        # The exit event is there, but with another exit code.
        self.edit("trace.json", lambda s: s.replace('"exit_code":7,', '"exit_code":0,'))
        rc, rows, result, out = self.evaluate()
        self.assertEqual(rc, 1, out)
        self.assertEqual(rows["process.exit"][0][0], "FAIL")
        self.assertIn("1 process.exit event(s), none from the trigger", rows["process.exit"][0][1])
        self.assertEqual(rows["process.exec"][0][0], "PASS")
        self.assertEqual(result, "FAIL (process.exit)")

    def test_a_turned_off_program_fails_the_kernel_and_is_named(self):
        self.turn_off("tapio_mark_victim")
        self.drop_type("oom.kill")
        rc, rows, result, out = self.evaluate()
        self.assertEqual(rc, 1, out)
        self.assertEqual(rows["oom.kill"], [("FAIL", "no oom.kill event; turned off: tapio_mark_victim")])
        self.assertEqual(rows["program"], [("FAIL", "tapio_mark_victim (oom.kill) turned off: "
                                                    "BPF program load failed: Invalid argument")])
        self.assertEqual(rows["probe"], [("FAIL", "tapio probe exited 1")])
        self.assertEqual(result, "FAIL (oom.kill tapio_mark_victim probe)")
        for k in self.KINDS[:-1]:
            self.assertEqual(rows[k][0][0], "PASS", k)

    def test_an_allowed_turned_off_program_passes_if_the_rest_arrived(self):
        self.turn_off("tapio_mark_victim")
        self.drop_type("oom.kill")
        rc, rows, result, out = self.evaluate(allow="tapio_exec tapio_mark_victim")
        self.assertEqual(rc, 0, out)
        self.assertEqual(rows["oom.kill"], [("OFF", "not traced: turned off (allowed): tapio_mark_victim")])
        self.assertEqual(rows["program"][0][0], "OFF")
        self.assertEqual(rows["probe"], [("OFF", "tapio probe exited 1")])
        self.assertEqual(result, "PASS (turned off and allowed: oom.kill)")

    def test_allowing_one_program_does_not_excuse_another_kind(self):
        self.turn_off("tapio_mark_victim")
        self.drop_type("oom.kill")
        self.drop_type("cgroup.mkdir")  # its program loaded: this must fail
        rc, rows, result, out = self.evaluate(allow="all")
        self.assertEqual(rc, 1, out)
        self.assertEqual(rows["oom.kill"][0][0], "OFF")
        self.assertEqual(rows["cgroup.mkdir"], [("FAIL", "no cgroup.mkdir event")])
        self.assertEqual(result, "FAIL (cgroup.mkdir)")

    def test_a_failed_trace_fails_even_with_every_event(self):
        self.edit("trace.rc", lambda s: "1\n")
        rc, rows, result, out = self.evaluate()
        self.assertEqual(rc, 1, out)
        self.assertEqual(rows["trace"], [("FAIL", "tapio trace exited 1")])
        self.assertEqual(result, "FAIL (trace)")


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
        p = subprocess.run([SCRIPT, "--fetch-only", "--runner", "qemu", "--arch", "x86_64", "debian-cloud"],
                           cwd=ROOT, env=dict(os.environ, VMTEST_KERNEL_CACHE=KCACHE),
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=300)
        if p.returncode != 0:
            cls.missing = "cannot fetch the Debian cloud kernel: " + p.stderr.decode(errors="replace")
            return
        cls.kernel = p.stdout.decode().strip().splitlines()[-1]
        with open(os.path.join(os.path.dirname(cls.kernel), "package")) as f:
            cls.package = f.read().strip()

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

    def test_another_release_is_fetched_through_private_apt_lists(self):
        rc, stdout, stderr, _ = vmtest("--fetch-only", "debian11-cloud", out=self.out, timeout=300)
        self.assertEqual(rc, 0, stderr)
        image = stdout.strip()
        pkg = os.path.basename(os.path.dirname(image))
        self.assertRegex(pkg, r"^linux-image-5\.10\.0-\d+-cloud-amd64$")
        with open(image, "rb") as f:
            self.assertEqual(f.read(0x206)[0x202:], b"HdrS")
        lists = os.path.join(KCACHE, ".apt", "bullseye", "lists")
        self.assertTrue(any(re.search(r"_dists_bullseye_main_binary-amd64_Packages", n) for n in os.listdir(lists)),
                        os.listdir(lists))
        # This machine's own apt configuration does not know that release.
        p = subprocess.run(["apt-cache", "policy", pkg], stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        self.assertNotIn("Candidate: 5.10", p.stdout.decode())

    def test_passing_guest_runs_the_staged_binary_on_the_kernel(self):
        expect = subprocess.run([STAND_IN, "--version"], stdout=subprocess.PIPE).stdout.decode().splitlines()[0]
        rc, stdout, stderr, _ = vmtest("--tapio", STAND_IN, "--guest", self.guest("guest-pass.sh"),
                                       self.kernel, out=self.out, env={"VMTEST_GUEST_EXPECT": expect})
        log = os.path.join(self.out, "vmlinuz.log")
        with open(log, errors="replace") as f:
            text = f.read().replace("\r", "")
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

    def test_a_pass_with_allowed_turned_off_programs_passes_and_says_so(self):
        rc, stdout, stderr, _ = vmtest("--guest", self.guest("guest-pass-off.sh"), "--tapio", STAND_IN,
                                       self.kernel, out=self.out)
        self.assertEqual(rc, 0, stdout + stderr)
        status, _, detail = self.summary(stdout, "vmlinuz")
        self.assertEqual(status, "PASS")
        self.assertRegex(detail, r"^(kvm|tcg): \(turned off and allowed: oom\.kill\)$")

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
        with open(os.path.join(self.out, "vmlinuz.log"), errors="replace") as f:
            text = f.read()
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

    def test_with_vng_on_path_each_kernel_runs_under_vng(self):
        # virtme-ng is not packaged for Debian 12, so a recording `vng` stands
        # in: this checks the command line vmtest.sh gives it, that the
        # package tree (with the modules vng loads) is unpacked for it, and
        # that the result is read from vng's output.
        bindir = tmpdir(self, "tapio-fakevng-")
        argfile = os.path.join(bindir, "args")
        with open(os.path.join(bindir, "vng"), "w") as f:
            f.write("#!/bin/sh\nprintf '%s\\0' \"$@\" >" + argfile + "\n"
                    "echo 'VMTEST-TABLE-BEGIN'; echo 'process.exec PASS 1 event(s)'; echo 'VMTEST-TABLE-END'\n"
                    "echo 'VMTEST-RESULT: PASS'\n")
        os.chmod(os.path.join(bindir, "vng"), 0o755)
        rc, stdout, stderr, _ = vmtest("--tapio", STAND_IN, self.package, out=self.out, timeout=300,
                                       env={"PATH": bindir + os.pathsep + os.environ["PATH"],
                                            "VMTEST_RUNNER": "auto", "VMTEST_ACCEL": "tcg",
                                            "VMTEST_ALLOW_OFF": "tapio_oom_signal"})
        self.assertEqual(rc, 0, stdout + stderr)
        self.assertIn("runner vng, accel tcg", stderr)
        with open(argfile, "rb") as f:
            args = f.read().decode().split("\0")[:-1]
        run = args[args.index("--run") + 1]
        version = self.package[len("linux-image-"):]
        self.assertEqual(run, os.path.join(KCACHE, self.package, "root", "boot", "vmlinuz-" + version))
        self.assertTrue(os.path.isdir(os.path.join(KCACHE, self.package, "root", "lib", "modules", version)))
        self.assertIn("--disable-kvm", args)
        self.assertEqual(args[args.index("--user") + 1], "root")
        self.assertEqual(args[args.index("--memory") + 1], "256M")
        self.assertEqual(args[args.index("--cpus") + 1], "1")
        cmd = args[args.index("--exec") + 1]
        self.assertEqual(cmd, f"VMTEST_ALLOW_OFF='tapio_oom_signal' VMTEST_TAPIO='{STAND_IN}' "
                              f"sh '{os.path.join(ROOT, 'scripts', 'vmtest-guest.sh')}'; echo VMTEST-EXIT: $?")
        status, _, _ = self.summary(stdout, version)
        self.assertEqual(status, "PASS")
        self.assertIn("process.exec PASS 1 event(s)", stdout)

    def test_jobs_boot_kernels_at_once(self):
        # Two guests that never report, two at a time: both are stopped by the
        # 20 s timeout, so the run takes about 20 s, not 40 s as one by one.
        # TCG: no KVM probe boot (up to 20 s where /dev/kvm does not work).
        rc, stdout, stderr, secs = vmtest("-j", "2", "-t", "20", "--accel", "tcg",
                                          "--guest", self.guest("guest-hang.sh"),
                                          "--tapio", STAND_IN, self.kernel, self.kernel, out=self.out)
        self.assertEqual(rc, 1, stdout + stderr)
        for name in ("vmlinuz", "vmlinuz-2"):
            status, vm_secs, detail = self.summary(stdout, name)
            self.assertEqual(status, "FAIL")
            self.assertTrue(detail.endswith("timed out after 20s"), detail)
            self.assertGreaterEqual(vm_secs, 20)
        self.assertIn("2 kernel(s), 2 failed", stdout)
        self.assertLess(secs, 38, "the two guests did not run at once")

    def test_bad_jobs_and_arch_are_usage_errors(self):
        for args, msg in ((["-j", "0"], "jobs '0' is not a positive number"),
                          (["--arch", "sparc64"], "arch 'sparc64': use x86_64 or aarch64"),
                          (["--arch", "aarch64", "debian-amd64"], "kernel 'debian-amd64' is not for aarch64"),
                          (["--arch", "aarch64", self.kernel],
                           f"kernel '{self.kernel}' is an x86_64 image, not aarch64"),
                          (["--arch", "aarch64", "--runner", "vng", self.kernel],
                           "runner vng cannot boot aarch64 kernels")):
            rc, _, stderr, _ = vmtest(*args, out=self.out)
            self.assertEqual(rc, 2, (args, stderr))
            self.assertIn(msg, stderr, args)

    def test_unknown_kernel_is_a_usage_error(self):
        missing = os.path.join(self.out, "no-such-bzImage")
        rc, stdout, stderr, _ = vmtest(missing, out=self.out)
        self.assertEqual(rc, 2)
        self.assertIn(f"kernel '{missing}': no such file, package or alias", stderr)
        rc, _, stderr, _ = vmtest("--accel", "warp", self.kernel, out=self.out)
        self.assertEqual(rc, 2)
        self.assertIn("accel 'warp'", stderr)


class Aarch64Vmtest(unittest.TestCase):
    """--arch aarch64 on this machine: Debian's arm64 cloud kernel under
    qemu-system-aarch64 (TCG on x86-64) with Debian's arm64 busybox, both
    fetched by the script. The arm64 tapio itself runs in
    `make vmtest ARCH=aarch64`, which .ci/run does."""

    @classmethod
    def setUpClass(cls):
        cls.missing = None
        for cmd in ("qemu-system-aarch64", "cpio", "apt-get", "dpkg-deb", "readelf"):
            if shutil.which(cmd) is None:
                cls.missing = f"{cmd} is not installed (make deps installs it)"
                return
        p = subprocess.run([SCRIPT, "--fetch-only", "--arch", "aarch64", "debian-cloud"], cwd=ROOT,
                           env=dict(os.environ, VMTEST_KERNEL_CACHE=KCACHE),
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=300)
        if p.returncode != 0:
            cls.missing = "cannot fetch the Debian arm64 cloud kernel: " + p.stderr.decode(errors="replace")
            return
        cls.kernel = p.stdout.decode().strip().splitlines()[-1]
        with open(os.path.join(os.path.dirname(cls.kernel), "package")) as f:
            cls.package = f.read().strip()

    def setUp(self):
        if self.missing:
            skip_or_fail(self, self.missing)
        self.out = tmpdir(self, "tapio-vmtest-a64-")

    def test_the_alias_is_the_arm64_cloud_kernel_from_arm64_lists(self):
        self.assertRegex(self.package, r"^linux-image-6\.1\.0-\d+-cloud-arm64$")
        with open(self.kernel, "rb") as f:
            head = f.read(64)
        self.assertEqual(head[0x38:0x3c], b"ARM\x64", "not an arm64 Image")
        lists = os.listdir(os.path.join(KCACHE, ".apt", "bookworm-arm64", "lists"))
        self.assertTrue(any("_binary-arm64_Packages" in n for n in lists), lists)
        self.assertFalse(any("_binary-amd64_Packages" in n for n in lists), lists)

    def test_an_arm64_guest_boots_with_an_arm64_busybox(self):
        rc, stdout, stderr, _ = vmtest("--arch", "aarch64", "--tapio", "none", "--guest",
                                       os.path.join(FIXTURES, "guest-arch.sh"), self.kernel, out=self.out,
                                       timeout=240, env={"VMTEST_GUEST_ARCH": "aarch64"})
        with open(os.path.join(self.out, "vmlinuz.log"), errors="replace") as f:
            text = f.read().replace("\r", "")
        self.assertEqual(rc, 0, stdout + stderr + text)
        self.assertIn("aarch64, runner qemu, accel tcg", stderr)
        self.assertIn("guest-kernel: " + self.package[len("linux-image-"):] + "\n", text)
        self.assertIn("guest-arch: aarch64\n", text)
        self.assertIn("guest-arch PASS", stdout)
        busybox = os.path.join(KCACHE, "busybox-static-arm64", "busybox")
        with open(busybox, "rb") as f:
            elf = f.read(20)
        self.assertEqual(elf[:4], b"\x7fELF")
        self.assertEqual(int.from_bytes(elf[18:20], "little"), 183)  # EM_AARCH64

    def test_a_binary_of_another_machine_is_refused(self):
        rc, _, stderr, _ = vmtest("--arch", "aarch64", "--tapio", STAND_IN, self.kernel, out=self.out)
        self.assertEqual(rc, 2, stderr)
        self.assertIn(f"{STAND_IN} is not an aarch64 binary (ELF machine 62)", stderr)


if __name__ == "__main__":
    unittest.main()
