#!/bin/sh
# Runs in a guest booted by scripts/gen-vmlinux.sh --arch (through
# scripts/vmtest.sh): prints the kernel's BTF, /sys/kernel/btf/vmlinux, on the
# console as base64 between BTF-BEGIN and BTF-END lines, with its size and
# SHA-256 for the host to check, then the vmtest result lines.
set -u
btf=/sys/kernel/btf/vmlinux
# Kernel messages would land in the middle of the dump.
busybox dmesg -n 1 2>/dev/null
echo "gen-vmlinux: kernel $(uname -r) ($(uname -m))"
if [ ! -r "$btf" ]; then
	echo "VMTEST-TABLE-BEGIN"
	echo "btf FAIL no $btf (CONFIG_DEBUG_INFO_BTF)"
	echo "VMTEST-TABLE-END"
	echo "VMTEST-RESULT: FAIL (no BTF)"
	exit 1
fi
size=$(busybox wc -c <"$btf")
sum=$(busybox sha256sum <"$btf" | busybox cut -d' ' -f1)
echo "BTF-SIZE: $size"
echo "BTF-SHA256: $sum"
echo "BTF-KERNEL: $(uname -r)"
echo "BTF-BEGIN"
busybox base64 "$btf"
echo "BTF-END"
echo "VMTEST-TABLE-BEGIN"
echo "btf PASS $size bytes from $(uname -r)"
echo "VMTEST-TABLE-END"
echo "VMTEST-RESULT: PASS"
