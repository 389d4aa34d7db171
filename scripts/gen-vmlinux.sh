#!/bin/sh
# Regenerates vmlinux/<arch>/vmlinux.h, the kernel type header the CO-RE
# programs in bpf/ compile against.
#
#   scripts/gen-vmlinux.sh                 # from /sys/kernel/btf/vmlinux, for `uname -m`
#   scripts/gen-vmlinux.sh BTF_FILE [ARCH] # from a BTF blob or a vmlinux ELF with .BTF
#
# The header is committed, so building never needs /sys/kernel/btf. CO-RE
# relocations adapt the programs to the running kernel's layout at load time;
# regenerate only to use types or fields that the committed header lacks.
set -eu

btf=${1:-/sys/kernel/btf/vmlinux}
arch=${2:-$(uname -m)}
bpftool=${BPFTOOL:-bpftool}
root=$(cd "$(dirname "$0")/.." && pwd)
out="$root/vmlinux/$arch/vmlinux.h"

if [ ! -r "$btf" ]; then
	echo "gen-vmlinux: cannot read BTF at $btf (give a BTF file or vmlinux as the first argument)" >&2
	exit 1
fi
command -v "$bpftool" >/dev/null 2>&1 || { echo "gen-vmlinux: $bpftool not found (apt-get install bpftool)" >&2; exit 1; }

mkdir -p "$(dirname "$out")"
tmp="$out.tmp.$$"
trap 'rm -f "$tmp"' EXIT
"$bpftool" btf dump file "$btf" format c >"$tmp"
mv "$tmp" "$out"
trap - EXIT
echo "gen-vmlinux: wrote $out ($(wc -l <"$out") lines) from $btf"
