#!/usr/bin/env python3
"""Writes the seed records for fuzz_kernel_decode into tests/fuzz/corpus/kernel-decode/:
one record of each kind in bpf/events.h, as the ring buffer holds them (full
size) and as the queue holds them (the used part of exec args and cgroup
paths). Little-endian, the layout pinned by the _Static_asserts in bpf/events.h.
Run it again after an ABI change: scripts do not parse the header, so update
the struct formats below with it."""
import os
import socket
import struct

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "corpus", "kernel-decode")

EXEC, FORK, EXIT, CONNECT, ACCEPT, CLOSE, RETRANS, RESET, MKDIR, RMDIR, ATTACH, OOM, LISTEN = range(1, 14)
NO_TASK = 0x1
HDR_CGROUP_V1 = 0x2
EXEC_EXE_KNOWN, EXEC_EXE_TRUNCATED, EXEC_MEMFD = 0x2, 0x4, 0x8
TCP_RESET_RECEIVED, TCP_OWNER_KNOWN, TCP_START_SEEN = 0x1, 0x2, 0x4
CG = 0x2F7A  # a cgroup id
POD_CG = ("kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod3f1c2d4e_9a8b_4c7d_8e6f_"
          "5a4b3c2d1e0f.slice/cri-containerd-0123456789abcdef0123456789abcdef0123456789abcdef"
          "0123456789abcdef.scope")


def hdr(type_, pid=4242, tgid=4242, ppid=1, comm=b"nginx", flags=0, cgroup=CG, ts=91823371000):
    return struct.pack("<QQ10I16s", ts, cgroup, type_, 1, pid, tgid, ppid, 0, 0,
                       4026531836, 4026531841, flags, comm)


def exec_event(filename, argv, trim, exe=None, flags=0, hflags=0,
               caps=(0, 0x1fffeffffff, 0x1fffeffffff, 0)):
    args = b"".join(a + b"\0" for a in argv)[:1024]
    exe = filename if exe is None else exe
    flags |= EXEC_EXE_KNOWN
    rec = hdr(EXEC, comm=os.path.basename(filename)[:15], flags=hflags) + struct.pack(
        "<3IBBH4I4Q256s256s1024s", len(filename), len(args), len(argv), 0, 0, 0, 0, 0, flags,
        len(exe), *caps, filename, exe, args)
    return rec[:72 + 64 + 256 + 256 + len(args)] if trim else rec


def tcp(type_, family, saddr, daddr, sport, dport, old, new, flags=TCP_OWNER_KNOWN, reason=0,
        dur=0, sent=0, recv=0, hflags=0, acked=0, raw_recv=0, handshake=0, srtt=0, retrans=0,
        err=0):
    af = socket.AF_INET if family == 4 else socket.AF_INET6
    s = socket.inet_pton(af, saddr).ljust(16, b"\0")
    d = socket.inet_pton(af, daddr).ljust(16, b"\0")
    return hdr(type_, flags=hflags) + struct.pack(
        "<3Q3HBB2I16s16s3Q2IiI", dur, sent, recv, af, sport, dport, old, new, flags, reason, s, d,
        acked, raw_recv, handshake, srtt, retrans, err, 0)


def cgroup_event(type_, path, trim, task_pid=0, comm=b""):
    p = path.encode()
    rec = hdr(type_, comm=b"containerd-shim") + struct.pack(
        "<Q4I16sII512s", CG + 1, 5, 0, task_pid, task_pid, comm, 1, len(p), p)
    return rec[:72 + 48 + len(p)] if trim else rec


SEEDS = {
    "exec-full": exec_event(b"/usr/sbin/nginx", [b"nginx", b"-g", b"daemon off;"], False),
    "exec-used": exec_event(b"/bin/sh", [b"sh", b"-c", b"echo hi > /tmp/x"], True,
                            exe=b"/usr/bin/dash"),
    "exec-memfd": exec_event(b"/dev/fd/3", [b"payload"], True, exe=b"/memfd:x (deleted)",
                             flags=EXEC_MEMFD, hflags=HDR_CGROUP_V1, caps=(0, 0, 0, 0)),
    "fork": hdr(FORK, comm=b"bash") + struct.pack("<4I", 100, 100, 101, 101),
    "exit-signal": hdr(EXIT) + struct.pack("<QII", 5_000_000_000, 9 | 0x80, 0),
    "exit-code": hdr(EXIT, comm=b"job") + struct.pack("<QII", 1234, 3 << 8, 0),
    "tcp-connect-v4": tcp(CONNECT, 4, "10.244.1.7", "10.96.0.10", 41234, 53, 7, 2),
    "tcp-accept-v6": tcp(ACCEPT, 6, "fd00::7", "fd00::1:2", 8080, 50312, 3, 1),
    "tcp-close": tcp(CLOSE, 4, "10.244.1.7", "93.184.216.34", 41236, 443, 1, 7,
                     flags=TCP_OWNER_KNOWN | TCP_START_SEEN, dur=2_500_000_000, sent=4096,
                     recv=1 << 20, acked=4098, raw_recv=(1 << 20) + 1, srtt=850, retrans=2),
    "tcp-close-refused": tcp(CLOSE, 4, "10.244.1.7", "10.96.0.1", 41240, 443, 2, 7, err=111),
    "tcp-connect-handshake": tcp(CONNECT, 6, "fd00::7", "fd00::1:2", 41250, 443, 2, 1,
                                 handshake=1_200_000),
    "tcp-listen": tcp(LISTEN, 6, "::", "::", 8080, 0, 7, 10),
    "tcp-retransmit": tcp(RETRANS, 4, "10.244.1.7", "10.244.2.9", 5432, 60000, 1, 1),
    "tcp-reset-sent-notask": tcp(RESET, 4, "10.244.1.7", "10.244.3.3", 9999, 40000, 0, 7,
                                 flags=0, reason=2, hflags=NO_TASK),
    "tcp-reset-received": tcp(RESET, 6, "::1", "::1", 6443, 51515, 1, 7,
                              flags=TCP_OWNER_KNOWN | TCP_RESET_RECEIVED),
    "cgroup-mkdir-full": cgroup_event(MKDIR, POD_CG, False),
    "cgroup-rmdir-used": cgroup_event(RMDIR, POD_CG, True),
    "cgroup-attach": cgroup_event(ATTACH, POD_CG, True, task_pid=4242, comm=b"nginx"),
    "oom-kill": hdr(OOM, comm=b"stress") + struct.pack(
        "<5Q4iII16s", 1048576, 524288, 1024, 0, CG + 2, 4242, 4300, 4300, 995, 0x23, 0, b"java")
    + struct.pack("<4Q4I256s256s", CG, CG - 1, 50331648, 50327552, 0, 5, 4, 0,
                  POD_CG.encode(), POD_CG.rsplit("/", 1)[0].encode()),
    "oom-kill-global": hdr(OOM, comm=b"stress") + struct.pack(
        "<5Q4iII16s", 1048576, 524288, 1024, 0, CG + 2, 4242, 4300, 4300, 0, 0x21, 0, b"java")
    + struct.pack("<4Q4I256s256s", CG, 0, 0, 0, 4, 3, 0, 0, b"/kubepods", b""),
}


def main():
    os.makedirs(OUT, exist_ok=True)
    for name, rec in SEEDS.items():
        with open(os.path.join(OUT, name), "wb") as f:
            f.write(rec)
    sizes = {n: len(r) for n, r in SEEDS.items()}
    assert sizes["fork"] == 88 and sizes["exit-code"] == 88 and sizes["tcp-close"] == 184
    assert sizes["exec-full"] == 72 + 64 + 256 + 256 + 1024
    assert sizes["cgroup-mkdir-full"] == 632 and sizes["oom-kill"] == 152 + 48 + 512


if __name__ == "__main__":
    main()
