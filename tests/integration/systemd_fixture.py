"""Journal fixtures for the systemd collector tests.

Journal files are written by the real systemd-journal-remote from the Journal
Export Format (https://systemd.io/JOURNAL_EXPORT_FORMATS/):

- an entry is a run of fields, ended by an empty line;
- a text field is "NAME=value\\n";
- a binary field (a value with a newline or bytes that are not text) is
  "NAME\\n", a 64-bit little-endian length, the raw bytes, then "\\n";
- __CURSOR, __REALTIME_TIMESTAMP and __MONOTONIC_TIMESTAMP address the entry;
  journal-remote takes the timestamps and _BOOT_ID from them and makes its own
  cursor.
"""
import os
import shutil
import struct
import subprocess

JOURNAL_REMOTE = os.environ.get("JOURNAL_REMOTE", "/lib/systemd/systemd-journal-remote")
FIXTURES = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "fixtures", "systemd")

BOOT_ID = "5f0c1a4e2b7d4e10a9c3d2b1e0f9a8b7"
BASE_REALTIME_US = 1764200000000000  # 2025-11-26T23:33:20Z
BASE_MONOTONIC_US = 5000000


def have_journal_remote():
    return os.access(JOURNAL_REMOTE, os.X_OK)


def _is_text(v):
    return b"\n" not in v and all(c >= 0x20 or c == 0x09 for c in v)


def export_entry(fields, seq, boot_id=BOOT_ID):
    """One entry in the export format. fields is a list of (name, value)
    pairs, value str or bytes; seq gives increasing timestamps."""
    rt = BASE_REALTIME_US + seq * 1000
    mono = BASE_MONOTONIC_US + seq * 1000
    out = bytearray()
    out += b"__CURSOR=s=00000000000000000000000000000000;i=%x\n" % seq
    out += b"__REALTIME_TIMESTAMP=%d\n" % rt
    out += b"__MONOTONIC_TIMESTAMP=%d\n" % mono
    out += b"_BOOT_ID=%s\n" % boot_id.encode()
    for name, value in fields:
        v = value.encode() if isinstance(value, str) else bytes(value)
        n = name.encode()
        if _is_text(v):
            out += n + b"=" + v + b"\n"
        else:
            out += n + b"\n" + struct.pack("<Q", len(v)) + v + b"\n"
    out += b"\n"
    return bytes(out)


def realtime_us(seq):
    return BASE_REALTIME_US + seq * 1000


def monotonic_us(seq):
    return BASE_MONOTONIC_US + seq * 1000


def unit_entry(unit, message, seq, host="node-a", priority="6", pid="4242", extra=()):
    """A line that a service wrote: the fields journald adds for it."""
    fields = [
        ("_HOSTNAME", host),
        ("_SYSTEMD_UNIT", unit),
        ("_PID", pid),
        ("_COMM", unit.split(".")[0]),
        ("SYSLOG_IDENTIFIER", unit.split(".")[0]),
        ("PRIORITY", priority),
        ("_TRANSPORT", "stdout"),
        ("MESSAGE", message),
    ]
    fields += list(extra)
    return export_entry(fields, seq)


def write_journal(path, export_bytes):
    """Runs systemd-journal-remote to write (or append to) the journal file
    at path. Raises on failure."""
    os.makedirs(os.path.dirname(path), exist_ok=True)
    p = subprocess.run([JOURNAL_REMOTE, "-o", path, "-"], input=export_bytes,
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=30)
    if p.returncode != 0:
        raise RuntimeError("systemd-journal-remote failed: %s" % p.stderr.decode(errors="replace"))
    return path


def fixture_bytes(name):
    with open(os.path.join(FIXTURES, name), "rb") as f:
        return f.read()


def journal_entries(path):
    """The entries of a journal file as journalctl reads them (a cross-check
    that the file holds what the test wrote)."""
    p = subprocess.run(["journalctl", "--file", path, "-o", "export", "--no-pager"],
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=30)
    return p.stdout


def archive_name(directory, base="system"):
    """A rotated file name as journald gives it (base@seqnumid-seqnum-realtime.journal)."""
    n = len([f for f in os.listdir(directory) if f.startswith(base + "@")])
    return os.path.join(directory, "%s@%032x-%016x-%016x.journal" % (base, 0xABC, n + 1, BASE_REALTIME_US))


def corrupt_copy_truncated(src, dst, keep=4096):
    """A copy cut short inside its object area."""
    shutil.copyfile(src, dst)
    with open(dst, "r+b") as f:
        f.truncate(keep)


def corrupt_copy_header(src, dst):
    """A copy whose header signature and size fields are overwritten."""
    shutil.copyfile(src, dst)
    with open(dst, "r+b") as f:
        f.write(b"XXXXXXXX")
        f.seek(88)
        f.write(b"\xff" * 16)


def corrupt_copy_middle(src, dst, nbytes=3000):
    """A copy with its object area overwritten halfway between the hash
    tables and the last object: the header stays valid, later entries break.
    Offsets from the header (JOURNAL_FILE_FORMAT): data hash table at 104/112,
    field hash table at 120/128, tail object at 136."""
    shutil.copyfile(src, dst)
    with open(dst, "r+b") as f:
        hdr = f.read(144)
        dh_off, dh_size, fh_off, fh_size, tail = struct.unpack("<QQQQQ", hdr[104:144])
        start = max(dh_off + dh_size, fh_off + fh_size)
        f.seek(start + (tail - start) // 2)
        f.write(b"\xff" * nbytes)
