#!/bin/sh
# Regenerates vmlinux/<arch>/vmlinux.h, the kernel type header the CO-RE
# programs in bpf/ compile against.
#
#   scripts/gen-vmlinux.sh                   # from /sys/kernel/btf/vmlinux, for `uname -m`
#   scripts/gen-vmlinux.sh BTF_FILE [ARCH]   # from a BTF blob or a vmlinux ELF with .BTF
#   scripts/gen-vmlinux.sh --arch ARCH [KERNEL]
#                                            # boot KERNEL under qemu, read its BTF
#
# With --arch the kernel is booted by scripts/vmtest.sh (so KERNEL is any of
# its kernel forms: an image path, a Debian package, an alias; default
# debian13-cloud, Debian 13's cloud kernel for ARCH). The guest,
# scripts/gen-vmlinux-guest.sh, prints /sys/kernel/btf/vmlinux in base64 on
# the console with its SHA-256; the blob is checked, kept as
# build/gen-vmlinux/<arch>.btf, and dumped. This is how the aarch64 header
# is made on an x86-64 machine: an arm64 Image is no ELF file, so bpftool
# cannot read its .BTF, but the booted kernel serves it.
#
# The header is committed, so building never needs /sys/kernel/btf. CO-RE
# relocations adapt the programs to the running kernel's layout at load time;
# regenerate only to use types or fields that the committed header lacks.
# Take the newest kernel: the programs are written against its types, with
# ___old flavours for the older layouts.
set -eu

bpftool=${BPFTOOL:-bpftool}
root=$(cd "$(dirname "$0")/.." && pwd)

die() { echo "gen-vmlinux: $*" >&2; exit 1; }
command -v "$bpftool" >/dev/null 2>&1 || die "$bpftool not found (apt-get install bpftool)"

if [ "${1:-}" = --arch ]; then
	[ $# -ge 2 ] || die "usage: $0 --arch ARCH [KERNEL]"
	arch=$2
	kernel=${3:-debian13-cloud}
	case $arch in x86_64 | aarch64) ;; *) die "arch '$arch': use x86_64 or aarch64" ;; esac
	out=${GEN_VMLINUX_OUT:-$root/build/gen-vmlinux}
	rm -rf "${out:?}/boot"
	mkdir -p "$out/boot"
	# The kernel cache is the one `make vmtest` uses.
	VMTEST_OUT=$out/boot VMTEST_KERNEL_CACHE=${VMTEST_KERNEL_CACHE:-$root/build/vmtest/kernels} \
		VMTEST_RUNNER=qemu "$root/scripts/vmtest.sh" --arch "$arch" --tapio none \
		--guest "$root/scripts/gen-vmlinux-guest.sh" --timeout "${GEN_VMLINUX_TIMEOUT:-600}" \
		--mem 1024 --smp 1 "$kernel" >&2 || die "booting $kernel failed; see $out/boot/"
	log=$(find "$out/boot" -maxdepth 1 -name '*.log' ! -name 'kvmprobe.log' | sed -n 1p)
	[ -n "$log" ] || die "no console log in $out/boot"
	btf=$out/$arch.btf
	tr -d '\r' <"$log" | awk '/^BTF-END$/ { on = 0 } on { print } /^BTF-BEGIN$/ { on = 1 }' |
		base64 -d >"$btf.tmp" || die "the BTF in $log is not valid base64"
	want=$(tr -d '\r' <"$log" | sed -n 's/^BTF-SHA256: //p' | sed -n 1p)
	got=$(sha256sum <"$btf.tmp" | cut -d' ' -f1)
	if [ -z "$want" ] || [ "$want" != "$got" ]; then
		die "the BTF read from $log has SHA-256 $got, the guest said '${want:-nothing}'"
	fi
	mv "$btf.tmp" "$btf"
	from="$(tr -d '\r' <"$log" | sed -n 's/^BTF-KERNEL: //p' | sed -n 1p) ($kernel)"
else
	btf=${1:-/sys/kernel/btf/vmlinux}
	arch=${2:-$(uname -m)}
	[ -r "$btf" ] || die "cannot read BTF at $btf (give a BTF file or vmlinux as the first argument, or --arch ARCH)"
	from=$btf
fi

out_h="$root/vmlinux/$arch/vmlinux.h"
mkdir -p "$(dirname "$out_h")"
tmp="$out_h.tmp.$$"
trap 'rm -f "$tmp"' EXIT
"$bpftool" btf dump file "$btf" format c >"$tmp"
mv "$tmp" "$out_h"
trap - EXIT
echo "gen-vmlinux: wrote $out_h ($(wc -l <"$out_h") lines) from $from"
