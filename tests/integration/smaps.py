"""The resident memory of a running tapio, mapping by mapping, from
/proc/PID/smaps, split into what is sized by configuration and the rest.

- arena: the event queue, a memfd mapping named "tapio-queue" (smaps shows
  "/memfd:tapio-queue (deleted)"; user/core/queue.c names it so).
- ring: the BPF ring buffer's mappings. Every BPF map mapping is
  "anon_inode:bpf-map"; the ring's are told apart by size, from the
  process's own map descriptors (/proc/PID/fdinfo: map_type 27 is
  BPF_MAP_TYPE_RINGBUF, max_entries its data size): libbpf maps the data
  pages twice after one producer page (2 * max_entries + one page). Its
  consumer page (one page, like a small map's) and the other map mappings
  (the skeleton's .bss, .data, .rodata) stay in the rest.
- rest: everything else: heap, malloc arenas, stacks, the binary's and the
  shared libraries' file-backed pages (they are RSS too), their relocated
  data.

Used by tests/integration/test_memory.py and bench/overhead.py."""
import glob
import os

PAGE = os.sysconf("SC_PAGE_SIZE")
RINGBUF = 27  # BPF_MAP_TYPE_RINGBUF


def ring_sizes(pid):
    """max_entries of every ring buffer map among pid's descriptors."""
    sizes = set()
    for info in glob.glob(f"/proc/{pid}/fdinfo/*"):
        try:
            with open(info) as f:
                kv = dict(line.split(":", 1) for line in f if ":" in line)
        except OSError:
            continue
        if kv.get("map_type", "").strip() == str(RINGBUF):
            sizes.add(int(kv["max_entries"]))
    return sizes


def mappings(pid):
    """Each mapping of pid: dict(name, size, rss, anon) in bytes."""
    out, cur = [], None
    with open(f"/proc/{pid}/smaps") as f:
        for line in f:
            head = line.split(None, 5)
            if "-" in head[0] and not head[0].endswith(":"):
                lo, hi = (int(x, 16) for x in head[0].split("-"))
                name = head[5].strip() if len(head) > 5 else ""
                cur = {"name": name or "[anon]", "size": hi - lo, "rss": 0, "anon": 0}
                out.append(cur)
            elif head[0] == "Rss:":
                cur["rss"] = int(head[1]) * 1024
            elif head[0] == "Anonymous:":
                cur["anon"] = int(head[1]) * 1024
    return out


def classify(pid):
    """{"total", "arena", "ring", "rest", "anon", "file", "by_name"}: bytes;
    anon is the rest's anonymous part (heap, stacks, relocated data), file
    its file-backed part; by_name the rest's RSS per mapping name."""
    rings = ring_sizes(pid)
    ring_spans = {2 * r + PAGE for r in rings}
    res = {"total": 0, "arena": 0, "ring": 0, "rest": 0, "anon": 0, "file": 0, "by_name": {}}
    for m in mappings(pid):
        res["total"] += m["rss"]
        if m["name"].startswith("/memfd:tapio-queue"):
            res["arena"] += m["rss"]
        elif m["name"] == "anon_inode:bpf-map" and m["size"] in ring_spans:
            res["ring"] += m["rss"]
        else:
            res["rest"] += m["rss"]
            res["anon"] += m["anon"]
            if m["name"].startswith("/") or m["name"] == "anon_inode:bpf-map":
                res["file"] += m["rss"] - m["anon"]
            res["by_name"][m["name"]] = res["by_name"].get(m["name"], 0) + m["rss"]
    return res


def mib(n):
    return n / (1 << 20)
