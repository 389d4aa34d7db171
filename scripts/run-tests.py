#!/usr/bin/env python3
"""Runs every tapio test and prints one closing line: 'N passed, N failed'.

Unit and component tests are Criterion binaries (build/tests/test_*, from
tests/unit/ and tests/component/), run twice: the plain build and the
ASan+UBSan build. Script tests (tests/scripts/test_*.py) check the build
scripts on trees they make; they always run. Integration tests are Python
unittest files (tests/integration/test_*.py) that drive build/tapio and real
servers; they need root. Under CI=true a skipped test counts as a failure.
"""
import argparse
import glob
import os
import re
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")


def run(cmd, timeout, env=None):
    t0 = time.time()
    try:
        p = subprocess.run(cmd, cwd=ROOT, env=env, stdout=subprocess.PIPE,
                           stderr=subprocess.STDOUT, timeout=timeout)
        out, rc = p.stdout.decode(errors="replace"), p.returncode
    except subprocess.TimeoutExpired as e:
        out = (e.stdout or b"").decode(errors="replace") + f"\nTIMEOUT after {timeout}s\n"
        rc = -1
    return rc, out, time.time() - t0


def criterion_counts(out):
    m = re.search(r"Synthesis: Tested: (\d+) \| Passing: (\d+) \| Failing: (\d+) \| Crashing: (\d+)", out)
    if not m:
        return None
    tested, passing, failing, crashing = map(int, m.groups())
    skipped = len(re.findall(r"\[SKIP\]", out))
    return passing, failing + crashing, skipped


def unittest_counts(out):
    m = re.search(r"^Ran (\d+) tests? in", out, re.M)
    if not m:
        return None
    ran = int(m.group(1))
    failures = errors = skipped = 0
    tail = out[m.end():]
    for key, val in re.findall(r"(failures|errors|skipped|expected failures|unexpected successes)=(\d+)", tail):
        if key == "failures":
            failures = int(val)
        elif key == "errors":
            errors = int(val)
        elif key == "skipped":
            skipped = int(val)
    return ran - failures - errors - skipped, failures + errors, skipped


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--build", default="build")
    ap.add_argument("--san-build", default=None)
    ap.add_argument("-k", dest="filter", default=None, help="only tests whose file name contains this")
    ap.add_argument("--no-integration", action="store_true")
    ap.add_argument("--timeout", type=int, default=900)
    args = ap.parse_args()

    jobs = []
    for build, suffix in ((args.build, ""), (args.san_build, "-san")):
        if not build:
            continue
        for b in sorted(glob.glob(os.path.join(ROOT, build, "tests", "test_*"))):
            if b.endswith(".d") or not os.access(b, os.X_OK):
                continue
            name = os.path.basename(b)
            kind = "component" if os.path.exists(
                os.path.join(ROOT, "tests", "component", name + ".c")) else "unit"
            jobs.append((kind + suffix, name, [b, "--jobs=1", "--verbose"], criterion_counts))
    for f in sorted(glob.glob(os.path.join(ROOT, "tests", "scripts", "test_*.py"))):
        rel = os.path.relpath(f, ROOT)
        jobs.append(("script", os.path.basename(f),
                     [sys.executable, "-m", "unittest", "-v", rel.replace("/", ".")[:-3]],
                     unittest_counts))
    if not args.no_integration:
        for f in sorted(glob.glob(os.path.join(ROOT, "tests", "integration", "test_*.py"))):
            rel = os.path.relpath(f, ROOT)
            jobs.append(("integration", os.path.basename(f),
                         [sys.executable, "-m", "unittest", "-v", rel.replace("/", ".")[:-3]],
                         unittest_counts))
    if args.filter:
        jobs = [j for j in jobs if args.filter in j[1]]

    env = dict(os.environ)
    env["TAPIO_BIN"] = os.path.join(ROOT, args.build, "tapio")
    env["TAPIO_ROOT"] = ROOT
    env.setdefault("ASAN_OPTIONS", "detect_leaks=1:abort_on_error=0")
    env.setdefault("UBSAN_OPTIONS", "print_stacktrace=1:halt_on_error=1")
    env["PYTHONPATH"] = os.path.join(ROOT, "tests", "integration") + os.pathsep + ROOT

    tot_pass = tot_fail = tot_skip = 0
    failed_jobs = []
    for tag, name, cmd, parse in jobs:
        rc, out, secs = run(cmd, args.timeout, env)
        counts = parse(out)
        if counts is None:
            counts = (0, 1, 0)
        p, f, s = counts
        if rc != 0 and f == 0:
            f = 1  # crashed or exited non-zero without saying why
        if CI and s:
            f += s
        tot_pass += p
        tot_fail += f
        tot_skip += s
        status = "ok" if f == 0 else "FAIL"
        print(f"{tag:13} {name:40} {status:4} {p} passed, {f} failed, {s} skipped ({secs:.1f}s)", flush=True)
        if f or s:
            # Show the whole output of a failing job, and the skip reasons.
            sys.stdout.write(out if f else "".join(l + "\n" for l in out.splitlines() if "skip" in l.lower()))
        if f:
            failed_jobs.append(f"{tag}/{name}")
    if CI and tot_skip:
        print(f"CI=true: {tot_skip} skipped tests count as failures")
    if failed_jobs:
        print("failed: " + ", ".join(failed_jobs))
    print(f"{tot_pass} passed, {tot_fail} failed, {tot_skip} skipped")
    return 1 if tot_fail or not jobs else 0


if __name__ == "__main__":
    sys.exit(main())
