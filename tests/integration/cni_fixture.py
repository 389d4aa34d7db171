"""Fixtures for the CNI collector tests: a temporary tree of CNI directories,
an agent that follows it, libcni-style result files, host-local reservations
and real network namespaces made with `ip netns` in a private mount namespace
whose /run/netns is the test's directory."""
import base64
import json
import os
import subprocess
import time

import tapiotest


class Tree:
    """Log dirs L1 (plain CNI) and L2 (calico/cni), netns dir N, CNI state dir
    C (results/, networks/) and the agent's state dir S, all under one tmpdir."""

    def __init__(self, tc, make_results=True, make_netns=True):
        self.root = tapiotest.tmpdir(tc, "tapio-cni-")
        self.l1 = os.path.join(self.root, "log", "cni")
        self.l2 = os.path.join(self.root, "log", "calico", "cni")
        self.netns = os.path.join(self.root, "netns")
        self.cni = os.path.join(self.root, "cni")
        self.results = os.path.join(self.cni, "results")
        self.networks = os.path.join(self.cni, "networks")
        self.state = os.path.join(self.root, "state")
        for d in (self.l1, self.l2, self.cni):
            os.makedirs(d)
        if make_results:
            os.makedirs(self.results)
        if make_netns:
            os.makedirs(self.netns)

    def args(self):
        return ["agent", "--collectors", "cni", "--cni-log-dirs", f"{self.l1},{self.l2}",
                "--netns-dir", self.netns, "--cni-state-dir", self.cni,
                "--state-dir", self.state, "--output", "stdout"]

    def nats_agent(self, tc, url, stream, node, *extra, ready=True):
        """An agent of this tree writing to JetStream stream `stream` at url,
        acks awaited 1 s, with a clean environment; with ready, once the
        collector follows its logs."""
        args = self.args()
        args[args.index("--output") + 1] = url
        t = tapiotest.Tapio(*args, "--nats-stream", stream, "--nats-ack-wait-ms", "1000",
                            "--node-name", node, *extra, env=tapiotest.clean_env())
        if ready and not t.wait_stderr("cni: following", 10):
            t.stop()
            tc.fail("the cni collector did not start: " + "\n".join(t.stderr_lines))
        return t

    def start(self, tc, ready=True):
        t = tapiotest.Tapio(*self.args())
        tc.addCleanup(t.stop)
        if ready and not t.wait_stderr("cni: following", 10):
            t.stop()
            tc.fail("the cni collector did not start: " + "\n".join(t.stderr_lines))
        return t


def append(path, text):
    with open(path, "a") as f:
        f.write(text)


def line_id(st, off, line):
    """The event id of a log line (str or bytes, with or without its \\n) of the
    file with os.stat() st at offset off:
    cni-<dev>-<ino>-<offset>-<FNV-1a 64 of the line, 16 hex digits>"""
    if isinstance(line, str):
        line = line.encode()
    h = 0xcbf29ce484222325
    for b in line[:-1] if line.endswith(b"\n") else line:
        h = ((h ^ b) * 0x100000001b3) & 0xffffffffffffffff
    return "cni-%d-%d-%d-%016x" % (st.st_dev, st.st_ino, off, h)


def fnv64(b):
    h = 0xcbf29ce484222325
    for x in b:
        h = ((h ^ x) * 0x100000001b3) & 0xffffffffffffffff
    return h


def dir_id(kind, op, path, ino, mtime_ns, size):
    """The event id of a netns, result or IPAM event (kind "netns", "result",
    "ipam"; op "add" or "del"): the entry's inode, mtime and size at its ADD,
    and the hash of its path."""
    return "cni-%s-%s-%d-%d-%d-%016x" % (kind, op, ino, mtime_ns, size, fnv64(path.encode()))


def file_id(kind, op, path, st=None):
    """dir_id of the file at path as it is now (or as st says)."""
    st = st or os.stat(path)
    return dir_id(kind, op, path, st.st_ino, st.st_mtime_ns, st.st_size)


def no_id(meta):
    """meta without its "id" (which must be there)."""
    assert meta.get("id", "").startswith("cni-"), meta
    return {k: v for k, v in meta.items() if k != "id"}


def logs(t, path=None):
    return [e for e in t.events if e["type"] == "cni.log" and (path is None or e["meta"].get("file") == path)]


def settle(t, n_before=None, quiet=0.7, timeout=10.0):
    """Waits until no new event has arrived for `quiet` seconds."""
    deadline = time.time() + timeout
    last = len(t.events)
    stamp = time.time()
    while time.time() < deadline:
        time.sleep(0.1)
        n = len(t.events)
        if n != last:
            last, stamp = n, time.time()
        elif time.time() - stamp >= quiet:
            return
    return


def wait_count(t, pred, n, timeout=10.0):
    """Waits until at least n events match; returns them."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        got = t.matching(pred)
        if len(got) >= n:
            return got
        time.sleep(0.05)
    return t.matching(pred)


def libcni_cache(network, cid, ifname, pod, namespace, netns, plugins):
    """A result cache file as libcni writes it (cachedInfo, kind cniCacheV1)."""
    conflist = {"cniVersion": "1.0.0", "name": network, "plugins": [{"type": p} for p in plugins]}
    return {
        "kind": "cniCacheV1",
        "containerId": cid,
        "config": base64.b64encode(json.dumps(conflist).encode()).decode(),
        "ifName": ifname,
        "networkName": network,
        "netns": netns,
        "cniArgs": [["IgnoreUnknown", "1"], ["K8S_POD_NAMESPACE", namespace],
                    ["K8S_POD_NAME", pod], ["K8S_POD_INFRA_CONTAINER_ID", cid],
                    ["K8S_POD_UID", "0f0f0f0f-1111-2222-3333-444455556666"]],
        "result": {"cniVersion": "1.0.0",
                   "interfaces": [{"name": ifname, "sandbox": netns}],
                   "ips": [{"address": "10.244.1.7/24", "interface": 0}]},
    }


def write_result(results_dir, network, cid, ifname, obj):
    """libcni's cacheAdd: os.WriteFile (create or truncate, write, close)."""
    path = os.path.join(results_dir, f"{network}-{cid}-{ifname}")
    data = json.dumps(obj).encode()
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    os.write(fd, data)
    os.close(fd)
    return path, data


def write_result_atomic(results_dir, network, cid, ifname, obj):
    """An atomic writer: write a temporary file in the same dir, then rename."""
    path = os.path.join(results_dir, f"{network}-{cid}-{ifname}")
    tmp = os.path.join(results_dir, f".{network}-{cid}-{ifname}.tmp")
    data = json.dumps(obj).encode()
    with open(tmp, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    os.rename(tmp, path)
    return path, data


def reserve_ip(net_dir, ip, cid, ifname):
    """host-local's disk store Reserve: O_RDWR|O_EXCL|O_CREAT, write, close."""
    path = os.path.join(net_dir, ip)
    fd = os.open(path, os.O_RDWR | os.O_EXCL | os.O_CREAT, 0o600)
    os.write(fd, f"{cid}\n{ifname}".encode())
    os.close(fd)
    return path


class NetnsShell:
    """A shell in a private mount namespace where /run/netns is `netns_dir`,
    so `ip netns add/del` work on the test's directory and not the host's.
    run() sends one command and returns its exit code."""

    def __init__(self, netns_dir):
        script = ("set -e; mount --make-rprivate / ; mount -t tmpfs tapio-test /run; "
                  "mkdir -p /run/netns; mount --bind %s /run/netns; echo READY; "
                  "while read -r cmd; do set +e; sh -c \"$cmd\" >&2; echo \"RC $?\"; done" % netns_dir)
        self.p = subprocess.Popen(["unshare", "--mount", "sh", "-c", script], stdin=subprocess.PIPE,
                                  stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        line = self.p.stdout.readline().strip()
        if line != "READY":
            err = self.p.stderr.read()
            self.close()
            raise RuntimeError("private mount namespace setup failed: %r %s" % (line, err))

    def run(self, cmd):
        self.p.stdin.write(cmd + "\n")
        self.p.stdin.flush()
        line = self.p.stdout.readline().strip()
        if not line.startswith("RC "):
            raise RuntimeError("shell ended: %r" % line)
        return int(line[3:])

    def close(self):
        if self.p.poll() is None:
            try:
                self.p.stdin.close()
            except OSError:
                pass
            try:
                self.p.wait(5)
            except subprocess.TimeoutExpired:
                self.p.kill()
                self.p.wait()
        for f in (self.p.stdin, self.p.stdout, self.p.stderr):
            try:
                f.close()
            except OSError:
                pass
