#!/usr/bin/env python3
"""Checks that every #include "..." in user/ and collectors/ goes the allowed way.

The layers and what each may include (besides itself) are in LAYERS below; that
table is the one place the direction is written down (docs cite it). Includes
name their folder: "util/strbuf.h", "core/event.h", "collectors/k8s/k8s.h",
"bpf/events.h" (with -Iuser -I.). The check reports, one line each,

    file:line: <layer> may not include <target>

for an include against the direction, and a line for an include that names no
folder ("strbuf.h"), climbs out of one ("../x.h"), or names a folder that is
no layer. Exceptions: bpf/ headers include each other bare (they are built
with -Ibpf), and the generated "tapio.skel.h" is bare, but only user/kernel
may include it.

With --tests, tests/ and bench/ are checked too: they may include any layer,
and "tests/lib/..." for the shared test helpers, but not bare names.

Usage: scripts/check-layers.py [--root DIR] [--tests]
Exit 0 if clean, 1 with the list otherwise.
"""
import argparse
import os
import re
import sys

# layer -> layers it may include besides itself. A DAG: util at the bottom,
# cmd at the top, user/main.c only above cmd.
#
#   util        (nothing)
#   core        util
#   kernel      core, util, bpf
#   http        core, util
#   enrich      core, util
#   sink        core, util (a source decodes its own structs: core/event.h)
#   metrics     sink, core, util
#   pipeline    sink, core, util
#   collectors  http, enrich, kernel, core, util (and, within collectors,
#               only its own folder or the top-level collectors/*.h table)
#   cmd         everything
#   main        cmd, util (user/main.c)
LAYERS = {
    "util": set(),
    "core": {"util"},
    "kernel": {"core", "util", "bpf"},
    "http": {"core", "util"},
    "enrich": {"core", "util"},
    "sink": {"core", "util"},
    "metrics": {"sink", "core", "util"},
    "pipeline": {"sink", "core", "util"},
    "collectors": {"http", "enrich", "kernel", "core", "util"},
    "cmd": {"util", "core", "kernel", "http", "enrich", "sink", "metrics", "pipeline", "collectors", "bpf"},
    "main": {"cmd", "util"},
}
# Folders an include may name that are not layers of user/ code themselves.
TARGETS = set(LAYERS) - {"main"} | {"bpf"}
# The generated BPF skeleton (build/tapio.skel.h): only these may include it.
SKELETON = "tapio.skel.h"
SKELETON_LAYERS = {"kernel"}

INCLUDE = re.compile(r'^\s*#\s*include\s*"([^"]+)"')


def layer_of(rel):
    """The layer of a file (path relative to the root), or None."""
    parts = rel.split("/")
    if parts[0] == "user":
        if rel == "user/main.c":
            return "main"
        if len(parts) >= 3 and parts[1] in LAYERS and parts[1] != "main":
            return parts[1]
        return None
    if parts[0] == "collectors":
        return "collectors"
    if parts[0] in ("tests", "bench"):
        return "tests"
    return None


def target_of(inc):
    """The layer an include names: "core/event.h" -> core, or None."""
    if "/" not in inc:
        return None
    return inc.split("/", 1)[0]


def check_collectors(rel, inc):
    """collectors/<name>/x may include collectors/<name>/... and collectors/*.h;
    collectors/*.c|h at the top may include collectors/*.h and any collector's
    header (it is the table)."""
    parts = rel.split("/")
    iparts = inc.split("/")
    if len(iparts) == 2:  # collectors/table.h
        return True
    if len(parts) == 2:  # the table itself
        return True
    return iparts[1] == parts[1]


def check_file(root, rel, tests):
    out = []
    layer = layer_of(rel)
    path = os.path.join(root, rel)
    with open(path, encoding="utf-8", errors="replace") as f:
        lines = f.read().splitlines()
    for n, line in enumerate(lines, 1):
        m = INCLUDE.match(line)
        if not m:
            continue
        inc = m.group(1)
        where = f"{rel}:{n}"
        if layer is None:
            out.append(f"{where}: file is in no layer folder (user/<layer>/, collectors/<name>/)")
            break
        if inc == SKELETON:
            if layer not in SKELETON_LAYERS:
                out.append(f"{where}: {layer} may not include {inc} (only "
                           f"{', '.join(sorted(SKELETON_LAYERS))} may)")
            continue
        if inc.startswith("../") or "/../" in inc or inc.startswith("./"):
            out.append(f'{where}: include "{inc}" climbs folders: name it from the top '
                       f'("core/x.h", "tests/lib/x.h")')
            continue
        tgt = target_of(inc)
        if tgt is None:
            out.append(f'{where}: include "{inc}" names no folder (write "<layer>/{inc}")')
            continue
        if layer == "tests":
            if tgt not in TARGETS and not inc.startswith("tests/lib/"):
                out.append(f'{where}: include "{inc}" names no layer (and is not tests/lib/)')
            continue
        if tgt not in TARGETS:
            out.append(f'{where}: include "{inc}" names no layer (known: '
                       f'{", ".join(sorted(TARGETS))})')
            continue
        if tgt == layer:
            if layer == "collectors" and not check_collectors(rel, inc):
                out.append(f"{where}: collectors/{rel.split('/')[1]} may not include {inc} "
                           f"(another collector's file)")
            continue
        if tgt not in LAYERS[layer]:
            out.append(f"{where}: {layer} may not include {inc}")
    return out


def walk(root, tops):
    for top in tops:
        base = os.path.join(root, top)
        if not os.path.isdir(base):
            continue
        for d, dirs, files in os.walk(base):
            dirs.sort()
            for fn in sorted(files):
                if fn.endswith((".c", ".h")):
                    yield os.path.relpath(os.path.join(d, fn), root)


def main(argv=None):
    ap = argparse.ArgumentParser(description="include direction check")
    ap.add_argument("--root", default=os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    ap.add_argument("--tests", action="store_true", help="check tests/ and bench/ too")
    args = ap.parse_args(argv)

    tops = ["user", "collectors"] + (["tests", "bench"] if args.tests else [])
    problems = []
    nfiles = 0
    for rel in walk(args.root, tops):
        nfiles += 1
        problems += check_file(args.root, rel, args.tests)
    for p in problems:
        print(p)
    if problems:
        print(f"check-layers: {len(problems)} include(s) against the layer table "
              f"(scripts/check-layers.py) in {nfiles} files", file=sys.stderr)
        return 1
    print(f"check-layers: {nfiles} files, includes follow the layer table")
    return 0


if __name__ == "__main__":
    sys.exit(main())
