#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""What tapio costs the node, side by side with the tools it replaces.

`make bench-overhead` (also part of `make bench`). Needs root.

Workloads (bench/overhead/storm.c): a loopback connect storm (N connections,
each connect + accept + close of both ends) and an exec storm (N fork + exec
/bin/true + wait). Each runs bare and under every tracer:

  tapio-agent   tapio agent --collectors kernel --output file:/dev/null
  tapio-trace   tapio trace -o json > /dev/null
  peer          tcplife (connect storm) / execsnoop (exec storm), libbpf-tools
  bpftrace      a bpftrace script on the same tracepoints, one line per event

in rounds whose order rotates (alternated), reporting medians: the
workload's time per operation and its slowdown against bare, the tracer's
CPU per event written (utime + stime from /proc/PID/stat over the storm and
its drain) and its context switches per event (voluntary + nonvoluntary of
every thread, /proc/PID/task/*/status). A tracer that wrote nothing is shown
as not attached, never as zero overhead. Peers need tracefs: it is mounted at
/sys/kernel/tracing when it is not.

Then the consumer's ceiling, apart from any workload: a BPF test program
(bench/overhead/flood.bpf.c, bpf_prog_test_run) submits records into a
running agent's ring buffer; the agent takes them through the queue to JSON
Lines in /dev/null. Reported: records per second of agent CPU (one core) and
per second of wall time, with the agent's own count of what it wrote.
The agent CPU is every thread's run time (schedstat) from after start-up
to the end of its drain: not the flood program (its own process), not the
start-up. The queue is 256M so that nothing is dropped: a smaller one
drops what the consumer cannot take (16M lost 39% in a round), and a rate
over records flooded rather than written would then look higher than it
is. The wall time runs from the flood's first record (loading its program
takes longer than the flood). On the shared 2-CPU VM it was developed on,
the same binary's rate moved by up to half from one hour to the next, while
CPU and memory hogs inside the guest did not move it: compare builds in
alternated rounds.

Then the same records paced (--flood-rate, 2 M/s by default) into an agent
with its default ring and queue: a steady stream it must keep up with. A
round keeps up when the ring refused nothing and the agent dropped nothing;
reported are the agent CPU per record and the share of one core it took
while the stream ran. The backlog above goes through memory (hundreds of MB
of queue); a stream that is kept up with stays in the caches.

Then the ring modes (bench_ring_modes): the shared ring against a ring per
CPU (--ringbuf-per-cpu), alternated: the ceiling with one flood producer
pinned to each CPU, and both storms under `tapio agent`.
"""
import argparse
import glob
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time

HZ = os.sysconf("SC_CLK_TCK")

BPFTRACE_TCP = """
tracepoint:sock:inet_sock_set_state /args->protocol == 6/ {
  printf("%d %s %d %d %d\\n", pid, comm, args->sport, args->dport, args->newstate);
}
"""
BPFTRACE_EXEC = """
tracepoint:sched:sched_process_fork { printf("fork %d %d\\n", args->parent_pid, args->child_pid); }
tracepoint:sched:sched_process_exec { printf("exec %d %s\\n", pid, str(args->filename)); }
tracepoint:sched:sched_process_exit { printf("exit %d %s\\n", pid, comm); }
"""


def cpu_s(pid):
    """CPU time of the process: the sum of its threads' run time in ns from
    /proc/PID/task/*/schedstat (what utime + stime of /proc/PID/stat count,
    without their 1/HZ granularity), or utime + stime when schedstat is
    missing."""
    total, seen = 0, False
    for st in glob.glob(f"/proc/{pid}/task/*/schedstat"):
        try:
            with open(st) as f:
                total += int(f.read().split()[0])
                seen = True
        except (OSError, ValueError, IndexError):
            pass  # a thread that just ended
    if seen:
        return total / 1e9
    with open(f"/proc/{pid}/stat") as f:
        rest = f.read().rsplit(")", 1)[1].split()
    return (int(rest[11]) + int(rest[12])) / HZ  # fields 14 and 15


def bpf_attachments(pid):
    """BPF links and perf events among pid's descriptors: > 0 once attached."""
    n = 0
    for fd in glob.glob(f"/proc/{pid}/fd/*"):
        try:
            target = os.readlink(fd)
        except OSError:
            continue
        if "bpf_link" in target or "perf_event" in target:
            n += 1
    return n


def ctx_switches(pid):
    n = 0
    for st in glob.glob(f"/proc/{pid}/task/*/status"):
        try:
            with open(st) as f:
                for line in f:
                    if line.startswith(("voluntary_ctxt_switches", "nonvoluntary_ctxt_switches")):
                        n += int(line.split()[1])
        except OSError:
            pass  # a thread that just ended
    return n


def mount_tracefs():
    if os.path.exists("/sys/kernel/tracing/events"):
        return True
    r = subprocess.run(["mount", "-t", "tracefs", "nodev", "/sys/kernel/tracing"],
                       capture_output=True, text=True)
    return r.returncode == 0 and os.path.exists("/sys/kernel/tracing/events")


class Tracer:
    """One tracer process: started, waited for until attached, stopped, and
    asked how many events it wrote."""

    def __init__(self, name, argv, out_path=None, ready=None, count=None, stdin=None):
        self.name, self.argv, self.out_path = name, argv, out_path
        self.ready, self.count_fn = ready, count
        self.err_path = tempfile.mktemp(prefix="tapio-ovh-err-")
        self.proc = None

    def start(self, timeout=20.0):
        out = open(self.out_path, "w") if self.out_path else subprocess.DEVNULL
        err = open(self.err_path, "w")
        self.proc = subprocess.Popen(self.argv, stdout=out, stderr=err, stdin=subprocess.DEVNULL)
        out != subprocess.DEVNULL and out.close()
        err.close()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                return False
            if self.ready(self):
                time.sleep(0.1)  # attach of the last programs, start-up events
                return True
            time.sleep(0.05)
        return False

    def stderr(self):
        try:
            with open(self.err_path) as f:
                return f.read()
        except OSError:
            return ""

    def output(self):
        try:
            with open(self.out_path) as f:
                return f.read()
        except (OSError, TypeError):
            return ""

    def stop_summary(self):
        """Stops a tapio process with SIGINT (up to 30 s) and returns the
        summary it printed ({} without one)."""
        self.proc.send_signal(signal.SIGINT)
        try:
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            pass
        s = summary_of(self.stderr()) or {}
        self.stop()
        return s

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        n = self.count_fn(self)
        for p in (self.err_path, self.out_path):
            if p:
                try:
                    os.unlink(p)
                except OSError:
                    pass
        return n


def summary_of(text):
    for line in reversed(text.splitlines()):
        if line.startswith('{"summary"'):
            return json.loads(line)["summary"]
    return None


def tapio_agent(tapio, extra=()):
    def count(t):
        s = summary_of(t.stderr())
        return s["kernel"]["events"] if s and "kernel" in s else 0
    return Tracer("tapio-agent",
                  [tapio, "agent", "--collectors", "kernel", "--output", "file:/dev/null",
                   "--metrics-addr", "", *extra],
                  ready=lambda t: "agent running" in t.stderr(), count=count)


def tapio_trace(tapio):
    def count(t):
        s = summary_of(t.stderr())
        return s["events"] if s else 0
    return Tracer("tapio-trace", [tapio, "trace", "-o", "json"],
                  ready=lambda t: "tapio trace: tracing" in t.stderr(), count=count)


def line_tracer(name, argv, header_lines):
    """A peer writing one line per event to a file (block-buffered, as tapio
    writes): attached once it holds BPF links or perf events and their number
    stays put for half a second; its events are its lines at exit."""
    state = {"n": 0, "since": 0.0}

    def ready(t):
        n = bpf_attachments(t.proc.pid)
        now = time.monotonic()
        if n != state["n"]:
            state["n"], state["since"] = n, now
        return n > 0 and now - state["since"] >= 0.5

    def count(t):
        return max(0, len(t.output().splitlines()) - header_lines)
    return Tracer(name, argv, out_path=tempfile.mktemp(prefix="tapio-ovh-out-"),
                  ready=ready, count=count)


def tracers_for(storm, args, have_tracefs):
    out = [("bare", None),
           ("tapio-agent", lambda: tapio_agent(args.tapio)),
           ("tapio-trace", lambda: tapio_trace(args.tapio))]
    peer = "tcplife" if storm == "connect" else "execsnoop"
    peer_bin = shutil.which(peer) or shutil.which(peer + "-bpfcc")
    if peer_bin and have_tracefs:
        # both print one header line
        out.append((peer, lambda: line_tracer(peer, [peer_bin], 1)))
    bt = shutil.which("bpftrace")
    if bt and have_tracefs:
        script = BPFTRACE_TCP if storm == "connect" else BPFTRACE_EXEC
        # its first line: "Attaching N probes..."
        out.append(("bpftrace", lambda: line_tracer("bpftrace", [bt, "-B", "full", "-e", script], 1)))
    return out


def run_storm(storm_bin, storm, n):
    r = subprocess.run([storm_bin, storm, str(n)], capture_output=True, text=True, check=True)
    return json.loads(r.stdout)["us_per_op"]


def one_run(args, storm, n, make, paired=False):
    """One storm, bare (make None) or under the tracer make() starts. With
    paired, a bare storm runs just before the tracer starts and another just
    after it stops: the storm's own speed changes over minutes on a VM (two
    modes, about 2x apart, on the development machine), and the ratio to
    the bare runs beside it is what the tracer costs."""
    before = run_storm(args.storm, storm, n) if paired and make else None
    r = one_traced(args, storm, n, make)
    if before is not None:
        r["bare_pair"] = (before, run_storm(args.storm, storm, n))
    return r


def one_traced(args, storm, n, make):
    t = make() if make else None
    if t and not t.start():
        err = t.stderr().strip().splitlines()[-3:]
        t.stop()
        return {"attached": False, "why": " | ".join(err)}
    pid = t.proc.pid if t else None
    c0 = cpu_s(pid) if pid else 0
    x0 = ctx_switches(pid) if pid else 0
    us = run_storm(args.storm, storm, n)
    if t:
        time.sleep(0.4)  # drain: more than the agent's 50 ms poll bound
        c1, x1 = cpu_s(pid), ctx_switches(pid)
        events = t.stop()
        if events == 0:
            return {"attached": False, "why": "wrote nothing", "us": us}
        return {"attached": True, "us": us, "events": events, "cpu_s": c1 - c0,
                "ctx": x1 - x0}
    return {"attached": True, "us": us}


def med(xs):
    return statistics.median(xs) if xs else float("nan")


def bench_storms(args):
    have_tracefs = mount_tracefs()
    if not have_tracefs:
        print("tracefs could not be mounted: tcplife, execsnoop and bpftrace are left out")
    print(f"load before: {open('/proc/loadavg').read().split()[:3]} (1, 5, 15 min)")
    for storm, n in (("connect", args.conns), ("exec", args.execs)):
        confs = tracers_for(storm, args, have_tracefs)
        res = {name: [] for name, _ in confs}
        for rnd in range(args.rounds):
            k = rnd % len(confs)
            order = confs[k:] + confs[:k]  # rotate: each tracer in every slot
            for name, make in order:
                res[name].append(one_run(args, storm, n, make, paired=True))
        bare = med([r["us"] for r in res["bare"]])
        print(f"\n{storm} storm: {n} ops, {args.rounds} rounds, medians; events: what the "
              f"tracer wrote (its lines for peers)")
        print(f"{'tracer':<12} {'us/op':>9} {'slowdown':>9} {'paired':>8} {'events':>9} "
              f"{'CPU us/event':>13} {'ctxsw/100ev':>12}")
        for name, _ in confs:
            rs = res[name]
            ok = [r for r in rs if r["attached"]]
            if len(ok) < len(rs):
                why = next(r["why"] for r in rs if not r["attached"])
                print(f"{name:<12} not attached in {len(rs) - len(ok)} of {len(rs)} rounds: {why}")
            if not ok:
                continue
            us = med([r["us"] for r in ok])
            slow = f"{(us / bare - 1) * 100:+.0f}%" if name != "bare" else "-"
            if name == "bare":
                print(f"{name:<12} {us:9.1f} {slow:>9} {'-':>8}")
                continue
            ev = med([r["events"] for r in ok])
            cpu = med([r["cpu_s"] / r["events"] * 1e6 for r in ok])
            ctx = med([r["ctx"] / r["events"] * 100 for r in ok])
            # paired: each round against the mean of the bare storms run
            # right before and after it; a pair whose two bare runs differ
            # by more than 30% saw the storm change speed and is counted
            pairs = [r for r in ok if "bare_pair" in r]
            ratios = [r["us"] / ((r["bare_pair"][0] + r["bare_pair"][1]) / 2) for r in pairs]
            shifted = sum(1 for r in pairs if max(r["bare_pair"]) > 1.3 * min(r["bare_pair"]))
            paired = f"{(med(ratios) - 1) * 100:+.0f}%" if ratios else "-"
            print(f"{name:<12} {us:9.1f} {slow:>9} {paired:>8} {ev:9.0f} {cpu:13.2f} {ctx:12.2f}"
                  + (f"  ({shifted} of {len(pairs)} pairs: the bare speed changed)" if shifted else ""))
    print(f"\nload after: {open('/proc/loadavg').read().split()[:3]}")


def settle(pid, until, what):
    """Waits until the agent is idle again: under 1% of a CPU over 100 ms
    (its timed polls go on), or until the monotonic time until. Returns the
    time of its last work."""
    last, steady = cpu_s(pid), time.monotonic()
    while True:
        time.sleep(0.1)
        c, now = cpu_s(pid), time.monotonic()
        if c - last < 0.001:
            return steady
        last, steady = c, now
        if now > until:
            print(f"{what}: the agent did not settle")
            return steady


def ns_by_thread(t0, t1, records):
    """Run time per record of each thread that ran over 1 ms between the
    task_cpu_ns() readings t0 and t1, busiest first: the consumer (main
    thread: queue -> JSON -> sink) and the ring buffer thread ("kernel":
    ring -> queue)."""
    return ", ".join(f"{n.split('/')[0]} {(v - t0.get(n, 0)) / records:.0f}"
                     for n, v in sorted(t1.items(), key=lambda kv: -kv[1] + t0.get(kv[0], 0))
                     if v - t0.get(n, 0) > 1e6)


def bench_flood(args):
    """The consumer's ceiling: a fixed number of records into the ring, then
    the time and agent CPU until the agent is idle again."""
    rates, walls = [], []
    for rnd in range(args.flood_rounds):
        t = tapio_agent(args.tapio, ("--queue-size", "256M"))
        if not t.start():
            print("flood: the agent did not start:", t.stderr()[-300:])
            t.stop()
            return
        pid = t.proc.pid
        c0, x0, t0 = cpu_s(pid), ctx_switches(pid), task_cpu_ns(pid)
        w0 = time.monotonic()
        r = subprocess.run([args.flood, str(pid), "60", "1024", str(args.flood_records)],
                           capture_output=True, text=True)
        if r.returncode:
            print("flood:", r.stderr.strip())
            t.stop()
            return
        fl = json.loads(r.stdout)
        w1 = settle(pid, w0 + 120, "flood")
        c1, x1, t1 = cpu_s(pid), ctx_switches(pid), task_cpu_ns(pid)
        threads = ns_by_thread(t0, t1, fl["written"])
        s = t.stop_summary()
        k = s["kernel"] if s else {}
        written = k.get("events", 0)
        lost = k.get("dropped", 0)
        # wall: from the first record in (after the flood program loaded,
        # which takes longer than the flood itself) to the agent's last work
        w0 = fl.get("start", w0)
        rate = fl["written"] / (c1 - c0) if c1 > c0 else float("nan")
        wall = fl["written"] / (w1 - w0)
        rates.append(rate)
        walls.append(wall)
        print(f"flood round {rnd + 1}: {fl['written']} records in "
              f"({fl['refused']} refused by the full ring), agent wrote {written} "
              f"(dropped {lost}), agent CPU {c1 - c0:.2f} s, wall {w1 - w0:.2f} s, "
              f"ctxsw {x1 - x0}: {rate / 1e6:.2f} M records/s per agent CPU second, "
              f"{wall / 1e6:.2f} M/s wall; ns per record by thread: {threads}")
        if written > fl["written"] * 1.01:
            print(f"  (the agent wrote {written - fl['written']} events besides the flood: other "
                  f"work on the machine; its CPU is in the rate)")
    print(f"flood median: {med(rates) / 1e6:.2f} M records/s of agent CPU (one core), "
          f"{med(walls) / 1e6:.2f} M/s wall, ring -> queue -> JSON Lines -> /dev/null")
    if args.flood_rate > 0:
        bench_flood_paced(args)


def bench_flood_paced(args):
    """The same records as a steady stream at --flood-rate, into an agent
    with its default ring and queue sizes: the flood above builds a backlog
    of hundreds of MB (every record goes through memory, not the caches);
    here the agent must keep up. A round keeps up when the ring refused
    nothing and the agent dropped nothing; its figures are the agent CPU per
    record and the share of one core it took while the stream ran."""
    res = []
    for rnd in range(args.flood_rounds):
        t = tapio_agent(args.tapio, ())
        if not t.start():
            print("paced flood: the agent did not start:", t.stderr()[-300:])
            t.stop()
            return
        pid = t.proc.pid
        c0, t0 = cpu_s(pid), task_cpu_ns(pid)
        r = subprocess.run([args.flood, str(pid), "60", "1024", str(args.flood_records), "-1",
                            str(args.flood_rate)], capture_output=True, text=True)
        if r.returncode:
            print("paced flood:", r.stderr.strip())
            t.stop()
            return
        fl = json.loads(r.stdout)
        settle(pid, time.monotonic() + 30, "paced flood")
        c1, t1 = cpu_s(pid), task_cpu_ns(pid)
        threads = ns_by_thread(t0, t1, fl["written"])
        s = t.stop_summary()
        k = s["kernel"] if s else {}
        dropped = k.get("dropped", 0)
        us = (c1 - c0) / fl["written"] * 1e6
        share = (c1 - c0) / fl["seconds"]
        kept = fl["refused"] == 0 and dropped == 0
        res.append({"us": us, "share": share, "kept": kept})
        print(f"paced flood round {rnd + 1}: {fl['written']} records at "
              f"{fl['written'] / fl['seconds'] / 1e6:.2f} M/s over {fl['seconds']:.2f} s "
              f"({fl['refused']} refused by the full ring), agent wrote {k.get('events', 0)} "
              f"(dropped {dropped}), agent CPU {c1 - c0:.2f} s: {us * 1000:.0f} ns per record, "
              f"{share:.2f} of a core; ns per record by thread: {threads}"
              + ("" if kept else "  (did not keep up)"))
    if res:
        kept = sum(r["kept"] for r in res)
        print(f"paced flood median: {args.flood_rate / 1e6:.2f} M records/s kept up with in {kept} "
              f"of {len(res)} rounds; agent CPU {med([r['us'] for r in res]) * 1000:.0f} ns per "
              f"record, {med([r['share'] for r in res]):.2f} of a core (default ring and queue)")



# ---- memory, idle CPU and the NATS sink (self-contained sections) ----

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                                "tests", "integration"))


class AllCollectors:
    """What every collector needs, with nothing happening: the k8s fixture API
    server (tests/integration/k8s_fixture.py; bookmarks every 60 s, as a real
    API server sends them about once a minute), a real etcd (progress
    notifications at etcd's default, 10 min), an empty journal directory and
    empty CNI log, netns and state directories. args() gives the agent's
    flags for all five collectors."""

    def __init__(self):
        import etcd_fixture
        import k8s_fixture
        self.dir = tempfile.mkdtemp(prefix="tapio-ovh-rig-")
        self.k8s = k8s_fixture.Fixture(self.dir)
        self.k8s.bookmark_every = 60.0
        self.k8s.start()
        tok = os.path.join(self.dir, "token")
        with open(tok, "w") as f:
            f.write("tok-1\n")
        self.kc = self.k8s.kubeconfig(os.path.join(self.dir, "kubeconfig"), token_file=tok)
        self.etcd = etcd_fixture.Etcd(self.dir, progress_notify="10m").start()
        self.dirs = {k: os.path.join(self.dir, k) for k in ("journal", "cnilog", "netns", "cni", "state")}
        for d in self.dirs.values():
            os.makedirs(d)

    def args(self):
        d = self.dirs
        return ["--collectors", "kernel,k8s,systemd,cni,etcd",
                "--k8s-kubeconfig", self.kc, "--k8s-resources", "pods,services",
                "--etcd-endpoints", self.etcd.url, "--journal-dir", d["journal"],
                "--cni-log-dirs", d["cnilog"], "--netns-dir", d["netns"],
                "--cni-state-dir", d["cni"], "--state-dir", d["state"]]

    def close(self):
        self.etcd.stop()
        self.k8s.stop()
        shutil.rmtree(self.dir, True)


def agent_with(tapio, argv, output="file:/dev/null"):
    """tapio agent with argv (its --collectors among them)."""
    def count(t):
        s = summary_of(t.stderr())
        return sum(v.get("events", 0) for v in s.values() if isinstance(v, dict)) if s else 0
    return Tracer("tapio-agent", [tapio, "agent", *argv, "--output", output, "--metrics-addr", ""],
                  ready=lambda t: "agent running" in t.stderr(), count=count)


def task_wakeups(pid):
    """{thread name: voluntary + nonvoluntary context switches} of pid."""
    from tapiotest import thread_switches
    return thread_switches(pid, ("voluntary", "nonvoluntary"))


def task_cpu_ns(pid):
    """{thread name: run time in ns} of pid (/proc/PID/task/*/schedstat)."""
    out = {}
    for d in glob.glob(f"/proc/{pid}/task/*"):
        try:
            with open(d + "/comm") as f:
                name = f"{f.read().strip()}/{os.path.basename(d)}"
            with open(d + "/schedstat") as f:
                out[name] = int(f.read().split()[0])
        except (OSError, ValueError):
            pass
    return out


def bench_memory(args):
    """Resident memory after start-up, from /proc/PID/smaps mapping by mapping
    (tests/integration/smaps.py says how the arena and the ring are told
    apart): kernel collector only, then every collector."""
    import smaps
    print("memory: tapio agent RSS after start-up (MiB), /proc/PID/smaps; rest = total - arena - ring;"
          " anon and file: the rest's anonymous and file-backed parts")
    print(f"{'collectors':<12} {'total':>7} {'arena':>7} {'ring':>7} {'rest':>7} {'anon':>7} "
          f"{'file':>7}  largest of the rest")
    rig = None
    try:
        for label in ("kernel", "all"):
            if label == "all":
                rig = AllCollectors()
                argv = rig.args()
            else:
                argv = ["--collectors", "kernel"]
            rows = []
            for _ in range(args.mem_rounds):
                t = agent_with(args.tapio, argv)
                if not t.start():
                    print(f"memory ({label}): the agent did not start:", t.stderr()[-300:])
                    t.stop()
                    return
                time.sleep(args.mem_settle)
                rows.append(smaps.classify(t.proc.pid))
                t.stop()
            keys = ("total", "arena", "ring", "rest", "anon", "file")
            m = {k: med([r[k] for r in rows]) for k in keys}
            last = rows[-1]["by_name"]
            top = sorted(last.items(), key=lambda kv: -kv[1])[:4]
            tops = ", ".join(f"{os.path.basename(n)} {v / 1024:.0f}K" for n, v in top)
            print(f"{label:<12} " + " ".join(f"{smaps.mib(m[k]):7.2f}" for k in keys) + "  " + tops)
    finally:
        if rig:
            rig.close()


def bench_idle(args):
    """The agent with every collector on and nothing happening: CPU and
    wake-ups per thread over args.idle_s seconds (from
    /proc/PID/task/*/schedstat and status), after a settling time. The kernel
    source still sees the machine's own background events: they are counted
    (the agent's summary) and shown. On a machine that others load (builds,
    storms) those events dominate; so each round also runs the agent with
    --containers, whose programs filter the host's own processes out in the
    kernel: every collector on, and no events (the host runs no containers).
    The two modes alternate round by round; the medians are per mode."""
    rig = AllCollectors()
    modes = {"all": [], "containers": ["--containers"]}
    want = [m for m in args.idle_modes.split(",") if m in modes] or ["all"]
    try:
        rows = {m: [] for m in want}
        for rnd in range(args.idle_rounds):
            for mode in (want if rnd % 2 == 0 else want[::-1]):
                t = agent_with(args.tapio, rig.args() + modes[mode])
                if not t.start():
                    print("idle: the agent did not start:", t.stderr()[-300:])
                    t.stop()
                    return
                time.sleep(args.idle_settle)
                pid = t.proc.pid
                w0, c0, x0 = time.monotonic(), task_cpu_ns(pid), task_wakeups(pid)
                time.sleep(args.idle_s)
                w1, c1, x1 = time.monotonic(), task_cpu_ns(pid), task_wakeups(pid)
                s = t.stop_summary()
                cpu = sum(c1.get(k, 0) - c0.get(k, 0) for k in c1) / 1e9
                pct = cpu / (w1 - w0) * 100
                kev = s.get("kernel", {}).get("events", 0)
                per = {n: x1[n] - x0.get(n, 0) for n in x1}
                rows[mode].append(pct)
                wake = ", ".join(f"{n.split('/')[0]} {v} ({(c1.get(n, 0) - c0.get(n, 0)) / 1e6:.1f} ms)"
                                 for n, v in sorted(per.items(), key=lambda kv: -kv[1]) if v)
                print(f"idle round {rnd + 1} ({mode}): {pct:.3f}% CPU over {w1 - w0:.1f} s "
                      f"({cpu * 1e3:.1f} ms); kernel events over the whole run {kev}; "
                      f"wake-ups (CPU) per thread: {wake or 'none'}")
        la = os.getloadavg()
        for mode in want:
            print(f"idle median ({mode}): {med(rows[mode]):.3f}% CPU, every collector on"
                  + (", the host's processes filtered in the kernel" if mode == "containers" else ""))
        print(f"load average at the end: {la[0]:.2f} {la[1]:.2f} {la[2]:.2f}")
    finally:
        rig.close()


def bench_nats(args):
    """The connect storm with the agent writing to a real nats-server
    JetStream stream: agent CPU per event written and acknowledged (its
    summary's PubAck count), alternated with the file sink as a reference."""
    import nats_fixture
    from tapiotest import free_port
    srv = nats_fixture.NatsServer(free_port())
    srv.start()
    res = {"file": [], "nats": []}
    try:
        for rnd in range(args.nats_rounds):
            for sink in (("file", "nats") if rnd % 2 == 0 else ("nats", "file")):
                state = tempfile.mkdtemp(prefix="tapio-ovh-state-")
                out = srv.url if sink == "nats" else "file:/dev/null"
                t = agent_with(args.tapio, ["--collectors", "kernel", "--state-dir", state], output=out)
                if not t.start():
                    print(f"nats ({sink}): the agent did not start:", t.stderr()[-300:])
                    t.stop()
                    return
                pid = t.proc.pid
                c0 = cpu_s(pid)
                run_storm(args.storm, "connect", args.conns)
                time.sleep(0.4)
                c1 = cpu_s(pid)
                # the acks of the last batch: wait until the agent is idle
                while True:
                    time.sleep(0.2)
                    c = cpu_s(pid)
                    if c - c1 < 0.002:
                        break
                    c1 = c
                s = t.stop_summary()
                shutil.rmtree(state, True)
                written = s.get("kernel", {}).get("events", 0)
                acked = s.get("sink", {}).get("acked", written) if sink == "nats" else written
                if not acked:
                    print(f"nats ({sink}): nothing written: {t.stderr()[-300:]}")
                    continue
                res[sink].append({"us": (c1 - c0) / acked * 1e6, "written": written, "acked": acked})
        for sink, rs in res.items():
            if rs:
                print(f"nats bench, {sink:<5}: agent CPU {med([r['us'] for r in rs]):.2f} us per event "
                      f"written{' and acknowledged' if sink == 'nats' else ''} (median of {len(rs)}; "
                      f"events {med([r['written'] for r in rs]):.0f}, acked {med([r['acked'] for r in rs]):.0f})")
    finally:
        srv.close()

RING_MODES = (("shared", ()), ("per-cpu", ("--ringbuf-per-cpu",)))


def ring_mode_flood(args, extra, cpus):
    """One ceiling round: an agent with extra arguments, one flood per CPU
    (pinned, the records split among them), then the agent CPU and wall time
    until it is idle again. Returns a dict, or None with the reason printed."""
    t = tapio_agent(args.tapio, ("--queue-size", "256M", *extra))
    if not t.start():
        print("ring modes: the agent did not start:", t.stderr()[-300:])
        t.stop()
        return None
    pid = t.proc.pid
    c0, x0 = cpu_s(pid), ctx_switches(pid)
    w0 = time.monotonic()
    each = args.flood_records // len(cpus)
    floods = [subprocess.Popen([args.flood, str(pid), "60", "1024", str(each), str(c)],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
              for c in cpus]
    outs = [f.communicate() for f in floods]
    bad = [err for f, (_, err) in zip(floods, outs) if f.returncode]
    last, steady = cpu_s(pid), time.monotonic()
    while not bad:
        time.sleep(0.1)
        c, now = cpu_s(pid), time.monotonic()
        if c - last < 0.001 or now - w0 > 120:
            break
        last, steady = c, now
    c1, x1 = cpu_s(pid), ctx_switches(pid)
    s = t.stop_summary()
    if bad:
        print("ring modes: flood:", bad[0].strip())
        return None
    fl = [json.loads(o) for o, _ in outs]
    w0 = min(f.get("start", w0) for f in fl)  # the first record in, not the loads
    k = s["kernel"] if s else {}
    written = sum(f["written"] for f in fl)
    return {"written": written, "refused": sum(f["refused"] for f in fl),
            "per_cpu": all(f["per_cpu"] for f in fl), "agent_wrote": k.get("events", 0),
            "dropped": k.get("dropped", 0), "cpu_s": c1 - c0, "wall_s": steady - w0,
            "ctx": x1 - x0, "rate": written / (c1 - c0) if c1 > c0 else float("nan")}


def bench_ring_modes(args):
    """The shared ring against per-CPU rings, in alternated rounds: the
    consumer's ceiling with a flood producer on each CPU, and the storms
    under the agent. On a 2-CPU machine this shows what per-CPU rings cost
    the consumer, not the producer-side collapse of one shared ring at
    tens of CPUs."""
    cpus = sorted(os.sched_getaffinity(0))
    print(f"ring modes: {len(cpus)} CPUs, load before: "
          f"{open('/proc/loadavg').read().split()[:3]}")
    floods = {name: [] for name, _ in RING_MODES}
    for rnd in range(args.flood_rounds):
        order = RING_MODES if rnd % 2 == 0 else RING_MODES[::-1]
        for name, extra in order:
            r = ring_mode_flood(args, extra, cpus)
            if r is None:
                return
            if r["per_cpu"] != (name == "per-cpu"):
                print(f"ring modes: the {name} flood found the other kind of ring")
                return
            floods[name].append(r)
            print(f"ring modes {name} flood round {rnd + 1}: {r['written']} records in from "
                  f"{len(cpus)} producers ({r['refused']} refused by a full ring), agent wrote "
                  f"{r['agent_wrote']} (dropped {r['dropped']}), agent CPU {r['cpu_s']:.2f} s, "
                  f"wall {r['wall_s']:.2f} s, ctxsw {r['ctx']}: "
                  f"{r['rate'] / 1e6:.2f} M records/s per agent CPU second")
    for name, _ in RING_MODES:
        rs = floods[name]
        print(f"ring modes {name} flood median: {med([r['rate'] for r in rs]) / 1e6:.2f} M "
              f"records/s of agent CPU, "
              f"{med([r['written'] / r['wall_s'] for r in rs]) / 1e6:.2f} M/s wall")
    for storm, n in (("connect", args.conns), ("exec", args.execs)):
        confs = [("bare", None)] + [
            (f"agent-{name}", (lambda extra: lambda: tapio_agent(args.tapio, extra))(extra))
            for name, extra in RING_MODES]
        res = {name: [] for name, _ in confs}
        for rnd in range(args.rounds):
            k = rnd % len(confs)
            for name, make in confs[k:] + confs[:k]:
                res[name].append(one_run(args, storm, n, make))
        bare = med([r["us"] for r in res["bare"]])
        print(f"\nring modes, {storm} storm: {n} ops, {args.rounds} rounds, medians")
        print(f"{'tracer':<14} {'us/op':>9} {'slowdown':>9} {'events':>9} "
              f"{'CPU us/event':>13} {'ctxsw/100ev':>12}")
        print(f"{'bare':<14} {bare:9.1f} {'-':>9}")
        for name, _ in confs[1:]:
            ok = [r for r in res[name] if r["attached"]]
            if len(ok) < len(res[name]):
                print(f"{name:<14} not attached in {len(res[name]) - len(ok)} rounds")
            if not ok:
                continue
            us = med([r["us"] for r in ok])
            print(f"{name:<14} {us:9.1f} {(us / bare - 1) * 100:+8.0f}% "
                  f"{med([r['events'] for r in ok]):9.0f} "
                  f"{med([r['cpu_s'] / r['events'] * 1e6 for r in ok]):13.2f} "
                  f"{med([r['ctx'] / r['events'] * 100 for r in ok]):12.2f}")
    print(f"\nring modes, load after: {open('/proc/loadavg').read().split()[:3]}")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--build", default="build")
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--conns", type=int, default=20000)
    ap.add_argument("--execs", type=int, default=2000)
    ap.add_argument("--flood-records", type=int, default=1000000)
    ap.add_argument("--flood-rounds", type=int, default=3)
    ap.add_argument("--flood-rate", type=float, default=2e6,
                    help="records a second of the paced flood (0: none)")
    ap.add_argument("--mem-rounds", type=int, default=3)
    ap.add_argument("--mem-settle", type=float, default=3.0)
    ap.add_argument("--idle-rounds", type=int, default=3)
    ap.add_argument("--idle-s", type=float, default=20.0)
    ap.add_argument("--idle-settle", type=float, default=5.0)
    ap.add_argument("--idle-modes", default="all,containers",
                    help="idle: comma list of all (every kernel event) and containers "
                         "(--containers: no events from the host's own processes)")
    ap.add_argument("--nats-rounds", type=int, default=4)
    ap.add_argument("--only", choices=("storms", "flood", "memory", "idle", "nats", "ringmodes"))
    args = ap.parse_args()
    if os.geteuid() != 0:
        print("bench-overhead: needs root (BPF, tracefs)", file=sys.stderr)
        return 1
    args.tapio = os.path.join(args.build, "tapio")
    args.storm = os.path.join(args.build, "bench-overhead", "storm")
    args.flood = os.path.join(args.build, "bench-overhead", "flood")
    if args.only in (None, "storms"):
        bench_storms(args)
    if args.only in (None, "flood"):
        print()
        bench_flood(args)
    for name, fn in (("memory", bench_memory), ("idle", bench_idle), ("nats", bench_nats)):
        if args.only in (None, name):
            print()
            fn(args)
    if args.only in (None, "ringmodes"):
        print()
        bench_ring_modes(args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
