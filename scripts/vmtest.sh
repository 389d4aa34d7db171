#!/usr/bin/env bash
# Boots other kernels and checks that tapio's BPF programs load and report there.
#
#   scripts/vmtest.sh [options] [KERNEL...]
#
# A KERNEL is a path to a kernel image (bzImage, vmlinuz, arm64 Image), a
# Debian package name (linux-image-6.1.0-56-cloud-amd64), or an alias naming
# the current Debian kernel of a flavour: debian-cloud, debian-amd64,
# debian-rt for this machine's release, debian11-cloud, debian13-amd64, ...
# for Debian 11 to 13 (debian11:linux-image-5.10.0-32-cloud-amd64 names a
# package of one). Packages are fetched with `apt-get download` and cached
# under build/vmtest/kernels. Default: debian-cloud debian-amd64 (x86_64),
# debian-cloud (aarch64).
#
# --arch aarch64 (VMTEST_ARCH; `make vmtest ARCH=aarch64` sets it) boots arm64
# kernels under qemu-system-aarch64 (machine virt) with an arm64 busybox and
# the arm64 tapio's libraries; on an x86-64 machine that is TCG.
#
# With virtme-ng (`vng`) on PATH each kernel runs as `vng --run KERNEL --exec
# CMD`; otherwise qemu-system-x86_64 boots it (KVM when it works, else TCG) with
# an initramfs of busybox, build/tapio with its shared libraries, and
# scripts/vmtest-guest.sh. The guest prints a PASS/FAIL table and a line
# `VMTEST-RESULT: PASS|FAIL`; this script reads it from the console log, saved
# as build/vmtest/<kernel>.log, and exits non-zero if any kernel did not pass.
# docs/vmtest.md has the details.
set -Eeuo pipefail
trap 'echo "vmtest: line $LINENO: \"$BASH_COMMAND\" failed" >&2' ERR

ROOT=$(cd "$(dirname "$0")/.." && pwd)
BUILD=${BUILD:-build}
case $BUILD in /*) ;; *) BUILD=$ROOT/$BUILD ;; esac
OUT=${VMTEST_OUT:-$BUILD/vmtest}
KCACHE=${VMTEST_KERNEL_CACHE:-$OUT/kernels}
TAPIO=${VMTEST_TAPIO:-$BUILD/tapio}
GUEST=${VMTEST_GUEST:-$ROOT/scripts/vmtest-guest.sh}
TIMEOUT=${VMTEST_TIMEOUT:-240}
MEM=${VMTEST_MEM:-1024}
SMP=${VMTEST_SMP:-2}
ACCEL=${VMTEST_ACCEL:-auto}
RUNNER=${VMTEST_RUNNER:-auto}
JOBS=${VMTEST_JOBS:-1}
VMTEST_ALLOW_OFF=${VMTEST_ALLOW_OFF:-}
APPEND=${VMTEST_APPEND:-}
QEMU=${QEMU:-}
BUSYBOX=${BUSYBOX:-}
HOST_ARCH=$(uname -m)
ARCH=${VMTEST_ARCH:-$HOST_ARCH}

usage() {
	cat <<EOF
usage: $0 [options] [KERNEL...]

KERNEL: a kernel image path, a Debian package linux-image-*, or an alias:
debian-cloud, debian-amd64, debian-rt (this machine's Debian release), or
debianNN-cloud, debianNN-amd64, debianNN-rt with NN 11, 12 or 13, or
debianNN:linux-image-... for a package of that release.
FLAVOUR amd64 is arm64 for --arch aarch64.
Default: debian-cloud debian-amd64 (x86_64), debian-cloud (aarch64).

options (and the environment variable that sets the same):
  --arch x86_64|aarch64  the kernels' and tapio's machine (VMTEST_ARCH, $ARCH)
  -t, --timeout SEC   per-kernel time limit, boot to power-off (VMTEST_TIMEOUT, $TIMEOUT)
  -j, --jobs N        kernels booted at once (VMTEST_JOBS, $JOBS)
  --accel auto|kvm|tcg                         (VMTEST_ACCEL, $ACCEL)
  --runner auto|qemu|vng                       (VMTEST_RUNNER, $RUNNER)
  --guest FILE        script to run in the guest (VMTEST_GUEST)
  --tapio FILE        tapio binary to test (VMTEST_TAPIO, build/tapio)
  --mem MB, --smp N   guest size (VMTEST_MEM $MEM, VMTEST_SMP $SMP)
  --append ARGS       extra kernel command line (VMTEST_APPEND)
  --fetch-only        only fetch and cache the kernels, print their paths
  -h, --help
EOF
}

die() { echo "vmtest: $*" >&2; exit 2; }
info() { echo "vmtest: $*" >&2; }

FETCH_ONLY=0
KERNELS=()
while [ $# -gt 0 ]; do
	case $1 in
	-t | --timeout) TIMEOUT=$2; shift 2 ;;
	-j | --jobs) JOBS=$2; shift 2 ;;
	--arch) ARCH=$2; shift 2 ;;
	--accel) ACCEL=$2; shift 2 ;;
	--runner) RUNNER=$2; shift 2 ;;
	--guest) GUEST=$2; shift 2 ;;
	--tapio) TAPIO=$2; shift 2 ;;
	--mem) MEM=$2; shift 2 ;;
	--smp) SMP=$2; shift 2 ;;
	--append) APPEND=$2; shift 2 ;;
	--allow-off) VMTEST_ALLOW_OFF=$2; shift 2 ;;
	--fetch-only) FETCH_ONLY=1; shift ;;
	-h | --help) usage; exit 0 ;;
	--) shift; KERNELS+=("$@"); break ;;
	-*) usage >&2; die "unknown option '$1'" ;;
	*) KERNELS+=("$1"); shift ;;
	esac
done
# Per machine: Debian's name for it, the qemu and its machine, the console,
# the ELF e_machine of its binaries, the multiarch library directory.
case $ARCH in
x86_64 | amd64)
	ARCH=x86_64 DEB_ARCH=amd64 QEMU_DEFAULT=qemu-system-x86_64 QEMU_PKG=qemu-system-x86
	MACHINE=() CONSOLE=ttyS0 TCG_CPU=max ELF_MACHINE=62 TRIPLET=x86_64-linux-gnu
	DEFAULT_KERNELS=(debian-cloud debian-amd64)
	;;
aarch64 | arm64)
	# pauth-impdef: the pointer authentication of -cpu max, but with
	# qemu's cheap hash instead of QARMA, which is slow under TCG.
	ARCH=aarch64 DEB_ARCH=arm64 QEMU_DEFAULT=qemu-system-aarch64 QEMU_PKG=qemu-system-arm
	MACHINE=(-M "virt,gic-version=max") CONSOLE=ttyAMA0 TCG_CPU=max,pauth-impdef=on ELF_MACHINE=183
	TRIPLET=aarch64-linux-gnu DEFAULT_KERNELS=(debian-cloud)
	;;
*) die "arch '$ARCH': use x86_64 or aarch64" ;;
esac
FOREIGN=0
[ "$ARCH" = "$HOST_ARCH" ] || FOREIGN=1
QEMU=${QEMU:-$QEMU_DEFAULT}
[ ${#KERNELS[@]} -gt 0 ] || KERNELS=("${DEFAULT_KERNELS[@]}")
case $TIMEOUT in '' | *[!0-9]*) die "timeout '$TIMEOUT' is not a number of seconds" ;; esac
case $JOBS in '' | *[!0-9]* | 0) die "jobs '$JOBS' is not a positive number" ;; esac
case $ACCEL in auto | kvm | tcg) ;; *) die "accel '$ACCEL': use auto, kvm or tcg" ;; esac
case $RUNNER in auto | qemu | vng) ;; *) die "runner '$RUNNER': use auto, qemu or vng" ;; esac
# virtme-ng runs this machine's root filesystem in the guest: same arch only.
[ "$FOREIGN" = 0 ] || [ "$RUNNER" != vng ] || die "runner vng cannot boot $ARCH kernels on $HOST_ARCH; use --runner qemu"
if [ "$RUNNER" = auto ]; then
	if [ "$FOREIGN" = 0 ] && command -v vng >/dev/null 2>&1; then RUNNER=vng; else RUNNER=qemu; fi
fi
mkdir -p "$OUT" "$KCACHE"

# ---------------------------------------------------------------- kernels

# Debian releases that aliases may name, and their suites.
suite_of() {
	case $1 in
	11) echo bullseye ;;
	12) echo bookworm ;;
	13) echo trixie ;;
	*) return 1 ;;
	esac
}

# The Debian mirror that this machine's apt uses (VMTEST_DEBIAN_MIRROR
# overrides it): the first URI of a source for the debian archive itself.
debian_mirror() {
	if [ -n "${VMTEST_DEBIAN_MIRROR:-}" ]; then echo "$VMTEST_DEBIAN_MIRROR"; return; fi
	cat /etc/apt/sources.list.d/*.sources 2>/dev/null |
		awk '$1 == "URIs:" { for (i = 2; i <= NF; i++) if ($i ~ /\/debian\/?$/ && !n++) print $i }'
	[ ! -r /etc/apt/sources.list ] ||
		awk '$1 == "deb" && $2 ~ /\/debian\/?$/ && !n++ { print $2 }' /etc/apt/sources.list
}

# APT holds the options for apt-get/apt-cache: empty for this machine's own
# configuration, or a private list directory for another Debian release.
APT=()
APT_UPDATED=
apt_update() {
	case " $APT_UPDATED " in *" ${APT[*]:-system} "*) return 0 ;; esac
	APT_UPDATED="$APT_UPDATED ${APT[*]:-system}"
	[ "$(id -u)" = 0 ] || [ ${#APT[@]} -gt 0 ] || return 0
	info "apt-get update${APT_SUITE:+ ($APT_SUITE)}"
	apt-get "${APT[@]}" -q update >&2 || true
}

# This machine's Debian release (bookworm on Debian 12).
this_suite() {
	local c
	# shellcheck source=/dev/null
	c=$(. /etc/os-release 2>/dev/null && echo "${VERSION_CODENAME:-}")
	echo "${c:-bookworm}"
}

# use_suite SUITE: private apt lists under $KCACHE/.apt/SUITE, refreshed
# weekly, so that a kernel of another Debian release can be fetched without
# touching this machine's apt configuration. For another machine's packages
# (--arch aarch64 on x86-64) the lists are that architecture's only, in
# $KCACHE/.apt/SUITE-ARCH: this machine's dpkg need not know the architecture.
use_suite() {
	local suite=$1 dir=$KCACHE/.apt/$1 mirror
	[ "$FOREIGN" = 0 ] || dir=$dir-$DEB_ARCH
	mirror=$(debian_mirror | sed -n 1p)
	[ -n "$mirror" ] || die "cannot find this machine's Debian mirror in /etc/apt; set VMTEST_DEBIAN_MIRROR"
	mkdir -p "$dir/sources" "$dir/lists/partial" "$dir/cache/archives/partial"
	# The release and its security updates, where kernels get new ABIs.
	printf 'Types: deb\nURIs: %s\nSuites: %s\nComponents: main\nSigned-By: %s\n\n' \
		"$mirror" "$suite" /usr/share/keyrings/debian-archive-keyring.gpg \
		"${mirror%/}-security" "$suite-security" /usr/share/keyrings/debian-archive-keyring.gpg \
		>"$dir/sources/debian.sources"
	APT=(-o "Dir::Etc::SourceList=/dev/null" -o "Dir::Etc::SourceParts=$dir/sources"
		-o "Dir::State::Lists=$dir/lists" -o "Dir::Cache=$dir/cache")
	if [ "$FOREIGN" = 1 ]; then
		APT+=(-o "APT::Architecture=$DEB_ARCH" -o "APT::Architectures=$DEB_ARCH")
	fi
	APT_SUITE=$suite
	if [ -z "$(find "$dir/lists" -maxdepth 1 -name '*_Packages*' -mtime -7 2>/dev/null)" ]; then
		apt_update
	fi
}

# Prints the versioned package that a Debian meta-package depends on, e.g.
# linux-image-cloud-amd64 -> linux-image-6.1.0-56-cloud-amd64.
meta_target() {
	apt-cache "${APT[@]}" depends "$1" 2>/dev/null |
		awk '$1 == "Depends:" && $2 ~ /^linux-image-[0-9]/ && !n++ { sub(/:.*/, "", $2); print $2 }'
}

# alias_package FLAVOUR: the current package of that flavour (cloud-amd64,
# amd64, rt-amd64, cloud-arm64, ...). Offline, the newest cached package of
# that flavour.
alias_package() {
	local meta=linux-image-$1 pkg
	pkg=$(meta_target "$meta")
	if [ -z "$pkg" ]; then
		apt_update
		pkg=$(meta_target "$meta")
	fi
	if [ -z "$pkg" ]; then
		pkg=$(find "$KCACHE" -mindepth 1 -maxdepth 1 -type d -name "linux-image-*-$1" \
			-printf '%f\n' 2>/dev/null | sort -V | sed -n '$p')
		[ -z "$pkg" ] || info "apt-cache cannot resolve $meta${APT_SUITE:+ ($APT_SUITE)}; using cached $pkg"
	fi
	[ -n "$pkg" ] || die "cannot resolve $meta${APT_SUITE:+ in $APT_SUITE}: apt-cache knows no linux-image for it"
	echo "$pkg"
}

# Fetches a Debian kernel package into $KCACHE/<pkg>/ once: vmlinuz and config
# for qemu; with vng also the whole package tree (root/, with its modules).
fetch_package() {
	local pkg=$1 dir=$KCACHE/$1 tmp deb img
	if [ -s "$dir/vmlinuz" ] && { [ "$RUNNER" != vng ] || [ -d "$dir/root/lib/modules" ]; }; then
		return 0
	fi
	tmp=$(mktemp -d "$KCACHE/.fetch.XXXXXX")
	info "fetching $pkg"
	if ! (cd "$tmp" && apt-get "${APT[@]}" download -q -o APT::Sandbox::User=root "$pkg" >&2); then
		apt_update
		(cd "$tmp" && apt-get "${APT[@]}" download -q -o APT::Sandbox::User=root "$pkg" >&2) ||
			{ rm -rf "$tmp"; die "apt-get download $pkg failed"; }
	fi
	deb=$(find "$tmp" -maxdepth 1 -name '*.deb' | sed -n 1p)
	mkdir -p "$tmp/root"
	if [ "$RUNNER" = vng ]; then
		dpkg-deb -x "$deb" "$tmp/root"
	else
		dpkg-deb --fsys-tarfile "$deb" | tar -x -C "$tmp/root" --wildcards './boot/*'
	fi
	img=$(find "$tmp/root/boot" -name 'vmlinuz-*' 2>/dev/null | sed -n 1p)
	[ -n "$img" ] || { rm -rf "$tmp"; die "$pkg has no /boot/vmlinuz-*"; }
	rm -rf "$dir"
	mkdir -p "$dir"
	cp "$img" "$dir/vmlinuz"
	cp "$tmp"/root/boot/config-* "$dir/config" 2>/dev/null || true
	echo "$pkg" >"$dir/package"
	if [ "$RUNNER" = vng ]; then mv "$tmp/root" "$dir/root"; fi
	rm -rf "$tmp"
}

# check_image SPEC FILE: a kernel image for another machine than --arch is a
# usage error (an x86 bzImage has "HdrS" at 0x202, an arm64 Image "ARMd" at
# 0x38). Other formats (compressed, ELF) are left to qemu.
check_image() {
	local what
	what=$(od -An -c -j 514 -N 4 "$2" 2>/dev/null | tr -d ' ')
	[ "$what" != HdrS ] || what=x86_64
	if [ "$what" != x86_64 ]; then
		what=$(od -An -c -j 56 -N 4 "$2" 2>/dev/null | tr -d ' ')
		[ "$what" = ARMd ] && what=aarch64
	fi
	case $what in
	x86_64 | aarch64) [ "$what" = "$ARCH" ] || die "kernel '$1' is an $what image, not $ARCH (--arch)" ;;
	esac
}

# resolve SPEC: sets KIMG (image path), KNAME (a name for logs) and KVNG (the
# image path to give vng: inside the package tree, so that vng finds modules).
#   debian-FLAVOUR      this machine's Debian release (apt as configured)
#   debianNN-FLAVOUR    Debian 11, 12 or 13 (private apt lists)
#   linux-image-*       a package of this machine's release
#   debianNN:linux-image-*  a package of Debian 11, 12 or 13
# FLAVOUR: cloud, rt, or the generic one, amd64 or arm64 (as --arch).
# Packages of another machine than this one come from private apt lists of
# that architecture (use_suite), also for this machine's release.
resolve() {
	local spec=$1 pkg='' rel flavour suite
	APT=() APT_SUITE=
	case $spec in
	debian-cloud | debian-amd64 | debian-arm64 | debian-rt | debian[0-9][0-9]-cloud | \
		debian[0-9][0-9]-amd64 | debian[0-9][0-9]-arm64 | debian[0-9][0-9]-rt)
		rel=${spec%%-*}
		rel=${rel#debian}
		flavour=${spec#*-}
		case $flavour in
		amd64 | arm64) [ "$flavour" = "$DEB_ARCH" ] || die "kernel '$spec' is not for $ARCH (use debian${rel}-$DEB_ARCH)" ;;
		*) flavour=$flavour-$DEB_ARCH ;;
		esac
		if [ -n "$rel" ]; then
			suite=$(suite_of "$rel") || die "kernel '$spec': Debian $rel is not one of 11, 12, 13"
			use_suite "$suite"
		elif [ "$FOREIGN" = 1 ]; then
			use_suite "$(this_suite)"
		fi
		pkg=$(alias_package "$flavour")
		;;
	debian[0-9][0-9]:linux-image-*)
		rel=${spec%%:*}
		rel=${rel#debian}
		suite=$(suite_of "$rel") || die "kernel '$spec': Debian $rel is not one of 11, 12, 13"
		use_suite "$suite"
		pkg=${spec#*:}
		;;
	linux-image-*)
		if [ ! -f "$spec" ]; then
			pkg=$spec
			[ "$FOREIGN" = 0 ] || use_suite "$(this_suite)"
		fi
		;;
	esac
	if [ -z "$pkg" ]; then
		[ -f "$spec" ] || die "kernel '$spec': no such file, package or alias"
		KIMG=$(cd "$(dirname "$spec")" && pwd)/$(basename "$spec")
		check_image "$spec" "$KIMG"
		KNAME=$(basename "$spec")
		KVNG=$KIMG
		return 0
	fi
	fetch_package "$pkg"
	check_image "$spec" "$KCACHE/$pkg/vmlinuz"
	KIMG=$KCACHE/$pkg/vmlinuz
	KNAME=${pkg#linux-image-}
	KVNG=$KIMG
	if [ "$RUNNER" = vng ]; then
		KVNG=$(find "$KCACHE/$pkg/root/boot" -name 'vmlinuz-*' | sed -n 1p)
	fi
}

# ---------------------------------------------------------------- initramfs

# Copies a file into the staging tree at the same path, following symlinks.
stage_file() {
	local src=$1 dst=$2${3:-$1}
	mkdir -p "$(dirname "$dst")"
	cp -L "$src" "$dst"
}

# elf_machine FILE: the ELF e_machine (62 x86-64, 183 aarch64), empty if FILE
# is not a little-endian ELF file.
elf_machine() {
	[ "$(od -An -c -N 4 "$1" 2>/dev/null | tr -d ' ')" = '177ELF' ] || return 0
	od -An -t u2 -j 18 -N 2 "$1" | tr -d ' '
}

# is_static FILE: no program interpreter. ldd only knows this machine's
# binaries; readelf (binutils) reads any ELF.
is_static() {
	if command -v readelf >/dev/null 2>&1; then
		if readelf -lW "$1" 2>/dev/null | grep -q 'Requesting program interpreter'; then return 1; fi
		return 0
	else
		# "not a dynamic executable", or "statically linked" for a static PIE.
		{ ldd "$1" 2>&1 || true; } | grep -E 'not a dynamic executable|statically linked' >/dev/null
	fi
}

# The busybox for the guest: this machine's /bin/busybox (busybox-static) for
# its own arch, else Debian's busybox-static of that arch, fetched once into
# $KCACHE/busybox-static-ARCH/.
guest_busybox() {
	if [ -n "$BUSYBOX" ]; then return 0; fi
	if [ "$FOREIGN" = 0 ]; then BUSYBOX=/bin/busybox; return 0; fi
	local dir=$KCACHE/busybox-static-$DEB_ARCH tmp deb
	BUSYBOX=$dir/busybox
	[ -s "$BUSYBOX" ] && return 0
	APT=() APT_SUITE=
	use_suite "$(this_suite)"
	tmp=$(mktemp -d "$KCACHE/.fetch.XXXXXX")
	info "fetching busybox-static ($DEB_ARCH)"
	if ! (cd "$tmp" && apt-get "${APT[@]}" download -q -o APT::Sandbox::User=root busybox-static >&2); then
		apt_update
		(cd "$tmp" && apt-get "${APT[@]}" download -q -o APT::Sandbox::User=root busybox-static >&2) ||
			{ rm -rf "$tmp"; die "apt-get download busybox-static ($DEB_ARCH) failed"; }
	fi
	deb=$(find "$tmp" -maxdepth 1 -name '*.deb' | sed -n 1p)
	mkdir -p "$tmp/root" "$dir"
	dpkg-deb -x "$deb" "$tmp/root"
	cp "$tmp/root/bin/busybox" "$BUSYBOX.tmp" && mv "$BUSYBOX.tmp" "$BUSYBOX"
	rm -rf "$tmp"
}

# foreign_libs FILE: the shared objects that FILE, a binary of another
# machine, needs (readelf's NEEDED, recursively) as "PATH-ON-HOST PATH-IN-GUEST"
# lines, found in the multiarch directories of its libraries (libbpf-dev:arm64
# and the others install them there) or the cross toolchain's; and its
# program interpreter. ldd cannot run such a binary.
foreign_libs() {
	local todo=("$1") seen=' ' f lib d found interp
	interp=$(readelf -lW "$1" | sed -n 's/.*Requesting program interpreter: \(.*\)]$/\1/p')
	if [ -n "$interp" ]; then
		found=
		for d in "$interp" "/usr/$TRIPLET/lib/$(basename "$interp")"; do
			if [ -e "$d" ]; then found=$d; break; fi
		done
		[ -n "$found" ] || die "$1 needs $interp: install libc6:$DEB_ARCH (make deps ARCH=$ARCH)"
		echo "$found $interp"
	fi
	while [ ${#todo[@]} -gt 0 ]; do
		f=${todo[0]}
		todo=("${todo[@]:1}")
		for lib in $(readelf -dW "$f" | sed -n 's/.*(NEEDED).*\[\(.*\)\]$/\1/p'); do
			case $seen in *" $lib "*) continue ;; esac
			seen="$seen$lib "
			found=
			for d in "/lib/$TRIPLET" "/usr/lib/$TRIPLET" "/usr/$TRIPLET/lib"; do
				if [ -e "$d/$lib" ]; then found=$d/$lib; break; fi
			done
			[ -n "$found" ] || die "$1 needs $lib, not found in /lib/$TRIPLET, /usr/lib/$TRIPLET or /usr/$TRIPLET/lib (make deps ARCH=$ARCH)"
			echo "$found /lib/$TRIPLET/$lib"
			todo+=("$found")
		done
	done
}

# Prints NAME='VALUE' for VMTEST_ALLOW_OFF and each VMTEST_GUEST_* variable,
# which are passed on to the guest script.
guest_env_lines() {
	local v q
	for v in VMTEST_ALLOW_OFF $(compgen -e VMTEST_GUEST_ || true); do
		[ -n "${!v:-}" ] || continue
		q=${!v}
		printf "%s='%s'\n" "$v" "${q//\'/\'\\\'\'}"
	done
}

# Builds $OUT/initramfs.cpio: busybox, /init, the guest script, tapio and the
# shared objects it needs (ldd), including the dynamic loader.
build_initramfs() {
	local st=$OUT/initramfs
	rm -rf "$st"
	mkdir -p "$st"/{bin,sbin,usr/bin,usr/sbin,proc,sys,dev,tmp,run,etc,root}
	[ -x "$BUSYBOX" ] || die "$BUSYBOX not found: install busybox-static (make deps)"
	[ "$(elf_machine "$BUSYBOX")" = "$ELF_MACHINE" ] || die "$BUSYBOX is not an $ARCH binary"
	is_static "$BUSYBOX" || die "$BUSYBOX is not statically linked: install busybox-static"
	cp "$BUSYBOX" "$st/bin/busybox"
	cp "$GUEST" "$st/vmtest-guest.sh"
	if [ "$TAPIO" != none ]; then
		[ -x "$TAPIO" ] || die "$TAPIO not found: run 'make' first"
		local m lib dst
		m=$(elf_machine "$TAPIO")
		[ -z "$m" ] || [ "$m" = "$ELF_MACHINE" ] ||
			die "$TAPIO is not an $ARCH binary (ELF machine $m); build one with 'make ARCH=$ARCH BUILD=...' and give it with --tapio"
		cp "$TAPIO" "$st/bin/tapio"
		if [ "$FOREIGN" = 0 ]; then
			# ldd prints "name => /path (addr)" and the loader as "/path (addr)".
			while read -r lib; do
				stage_file "$lib" "$st"
			done < <({ ldd "$TAPIO" 2>/dev/null || true; } | awk '$2 == "=>" && $3 ~ /^\// { print $3 } $1 ~ /^\// { print $1 }')
			# glibc loads libgcc_s at run time to unwind a thread that exits.
			lib=$(ldconfig -p 2>/dev/null | awk '$1 == "libgcc_s.so.1" && $NF ~ /^\// && !n++ { print $NF }')
		else
			command -v readelf >/dev/null 2>&1 || die "readelf not found: install binutils"
			local libs
			libs=$(foreign_libs "$TAPIO") || exit 2
			while read -r lib dst; do
				stage_file "$lib" "$st" "$dst"
			done <<<"$libs"
			lib=
			for dst in "/lib/$TRIPLET" "/usr/lib/$TRIPLET" "/usr/$TRIPLET/lib"; do
				if [ -e "$dst/libgcc_s.so.1" ]; then lib=$dst/libgcc_s.so.1; break; fi
			done
			[ -z "$lib" ] || { stage_file "$lib" "$st" "/lib/$TRIPLET/libgcc_s.so.1"; lib=; }
		fi
		if [ -n "$lib" ] && [ -f "$lib" ]; then stage_file "$lib" "$st"; fi
	fi
	{
		echo "VMTEST_TAPIO=/bin/tapio"
		[ "$TAPIO" != none ] || echo "VMTEST_TAPIO=none"
		guest_env_lines
	} >"$st/vmtest.env"
	cat >"$st/init" <<'EOF'
#!/bin/busybox sh
# PID 1 of the vmtest initramfs: install the applets, mount the basics, run
# the guest script, print its exit code, and power off.
/bin/busybox --install -s
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev 2>/dev/null
mount -t tmpfs tmpfs /tmp
mount -t tmpfs tmpfs /run
export PATH=/bin:/sbin:/usr/bin:/usr/sbin HOME=/root
set -a
. /vmtest.env
set +a
sh /vmtest-guest.sh
echo "VMTEST-EXIT: $?"
sync
poweroff -f
reboot -f
EOF
	chmod 755 "$st/init" "$st/vmtest-guest.sh"
	(cd "$st" && find . -print | LC_ALL=C sort | cpio -o -H newc -R 0:0 --quiet) >"$OUT/initramfs.cpio"
	info "initramfs $(du -h "$OUT/initramfs.cpio" | cut -f1) ($(find "$st" -type f | wc -l) files)"
}

# ---------------------------------------------------------------- running

KVM_OK=
# Whether KVM really runs a guest here: /dev/kvm can exist and still fail at
# vCPU setup (nested virtualisation without the features qemu asks for), so
# boot the first kernel with a probe initramfs for a few seconds.
kvm_works() {
	if [ -n "$KVM_OK" ]; then [ "$KVM_OK" = 1 ]; return; fi
	KVM_OK=0
	[ "$FOREIGN" = 0 ] && [ -r /dev/kvm ] && [ -w /dev/kvm ] || return 1
	local st=$OUT/kvmprobe log=$OUT/kvmprobe.log
	rm -rf "$st" && mkdir -p "$st/bin"
	cp "$BUSYBOX" "$st/bin/busybox"
	printf '#!/bin/busybox sh\n/bin/busybox echo VMTEST-KVM-OK\n/bin/busybox poweroff -f\n' >"$st/init"
	chmod 755 "$st/init"
	(cd "$st" && find . | cpio -o -H newc -R 0:0 --quiet) >"$OUT/kvmprobe.cpio"
	# In a subshell, so that bash's report of a crashed qemu goes to the file.
	(timeout -k 2 20 "$QEMU" "${MACHINE[@]}" -accel kvm -cpu host -m 256 -smp 1 -nographic -no-reboot \
		-kernel "$1" -initrd "$OUT/kvmprobe.cpio" -append "console=$CONSOLE panic=-1 quiet" \
		-serial "file:$log" -monitor none </dev/null; exit $?) >"$OUT/kvmprobe.err" 2>&1 || true
	if grep -q VMTEST-KVM-OK "$log" 2>/dev/null; then KVM_OK=1; fi
	[ "$KVM_OK" = 1 ]
}

# Sets ACCEL_ARGS for one boot.
pick_accel() {
	local accel=$ACCEL
	if [ "$accel" = auto ]; then
		if kvm_works "$1"; then accel=kvm; else accel=tcg; fi
	fi
	if [ "$accel" = kvm ]; then
		ACCEL_ARGS=(-accel kvm -cpu host)
		VNG_ACCEL=()
	else
		ACCEL_ARGS=(-accel tcg -cpu "$TCG_CPU")
		VNG_ACCEL=(--disable-kvm)
	fi
	ACCEL_USED=$accel
}

# run_kernel NAME IMG VNG_IMG: boots one kernel, writes $OUT/NAME.log and
# $OUT/NAME.result ("PASS|FAIL seconds accel reason").
run_kernel() {
	local name=$1 img=$2 vimg=$3 log=$OUT/$1.log res=$OUT/$1.result
	local t0 t1 rc=0 status reason
	rm -f "$log" "$res"
	t0=$(date +%s.%N)
	if [ "$RUNNER" = vng ]; then
		# virtme-ng shares this machine's root filesystem (copy-on-write) and
		# runs CMD as root in the guest; loading BPF programs needs root.
		(timeout -k 5 "$TIMEOUT" vng --run "$vimg" "${VNG_ACCEL[@]}" --user root \
			--memory "${MEM}M" --cpus "$SMP" --cwd "$ROOT" ${APPEND:+--append "$APPEND"} \
			--exec "$(guest_env_lines | tr '\n' ' ')VMTEST_TAPIO='$TAPIO' sh '$GUEST'; echo VMTEST-EXIT: \$?" \
			</dev/null &
			echo $! >"$OUT/$name.pid"
			wait $!) >"$log" 2>&1 || rc=$?
		rm -f "$OUT/$name.pid"
	else
		(timeout -k 5 "$TIMEOUT" "$QEMU" "${MACHINE[@]}" "${ACCEL_ARGS[@]}" -m "$MEM" -smp "$SMP" \
			-nographic -no-reboot -nodefaults -serial "file:$log" -monitor none \
			-kernel "$img" -initrd "$OUT/initramfs.cpio" \
			-append "console=$CONSOLE panic=-1 oops=panic rdinit=/init $APPEND" \
			</dev/null &
			echo $! >"$OUT/$name.pid"
			wait $!) >"$OUT/$name.qemu.err" 2>&1 || rc=$?
		rm -f "$OUT/$name.pid"
	fi
	t1=$(date +%s.%N)
	local secs
	secs=$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.1f", b - a }')
	local marker
	marker=$(tr -d '\r' <"$log" 2>/dev/null | grep -a '^VMTEST-RESULT: ' | tail -n 1 || true)
	reason=
	case $marker in
	"VMTEST-RESULT: PASS" | "VMTEST-RESULT: PASS "*)
		status=PASS
		reason=${marker#VMTEST-RESULT: PASS}
		reason=${reason# }
		;;
	*)
		status=FAIL
		if [ -n "$marker" ]; then
			reason=${marker#VMTEST-RESULT: }
		elif [ "$rc" = 124 ] || [ "$rc" = 137 ]; then
			reason="timed out after ${TIMEOUT}s"
		elif grep -aq 'Kernel panic' "$log" 2>/dev/null; then
			reason="kernel panic: $(tr -d '\r' <"$log" | grep -a -m1 'Kernel panic' | sed 's/^\[[ 0-9.]*\] //')"
		elif [ "$rc" != 0 ]; then
			reason="$RUNNER exited $rc: $(tail -n 1 "$OUT/$name.qemu.err" 2>/dev/null || true)"
		else
			reason="no VMTEST-RESULT line on the console"
		fi
		;;
	esac
	echo "$status $secs $ACCEL_USED $reason" >"$res"
}

# Prints the guest's result table from a log, without the kernel's lines.
show_table() {
	tr -d '\r' <"$1" | awk '/^VMTEST-TABLE-BEGIN/ { on = 1; next } /^VMTEST-TABLE-END/ { on = 0 } on'
}

# ---------------------------------------------------------------- main

[ -f "$GUEST" ] || die "guest script $GUEST not found"
command -v "$QEMU" >/dev/null || [ "$RUNNER" = vng ] ||
	die "$QEMU not found: install $QEMU_PKG (make deps)"

NAMES=() IMGS=() VIMGS=()
for spec in "${KERNELS[@]}"; do
	resolve "$spec"
	# The same kernel twice gets a second log, not the first one's.
	n=1 base=$KNAME
	while [[ " ${NAMES[*]} " == *" $KNAME "* ]]; do
		n=$((n + 1))
		KNAME=$base-$n
	done
	NAMES+=("$KNAME") IMGS+=("$KIMG") VIMGS+=("$KVNG")
	if [ "$FETCH_ONLY" = 1 ]; then echo "$KIMG"; fi
done
[ "$FETCH_ONLY" = 0 ] || exit 0

guest_busybox
if [ "$RUNNER" = vng ]; then
	[ -x "$TAPIO" ] || die "$TAPIO not found: run 'make' first"
	case $TAPIO in /*) ;; *) TAPIO=$(pwd)/$TAPIO ;; esac
else
	build_initramfs
fi
pick_accel "${IMGS[0]}"
info "$ARCH, runner $RUNNER, accel $ACCEL_USED, ${SMP} cpu, ${MEM} MiB, timeout ${TIMEOUT}s, ${#NAMES[@]} kernel(s)"

# On SIGINT/SIGTERM stop the guests: `timeout` passes the signal to qemu.
stop_guests() {
	local f
	for f in "$OUT"/*.pid; do
		[ -f "$f" ] && kill -TERM "$(cat "$f")" 2>/dev/null
	done
	wait
	echo "vmtest: interrupted" >&2
	exit 130
}
trap stop_guests INT TERM
rm -f "$OUT"/*.pid

T0=$(date +%s)
running=0
for i in "${!NAMES[@]}"; do
	info "booting ${NAMES[$i]} ($(basename "${IMGS[$i]}")) -> ${OUT#"$ROOT"/}/${NAMES[$i]}.log"
	run_kernel "${NAMES[$i]}" "${IMGS[$i]}" "${VIMGS[$i]}" &
	running=$((running + 1))
	if [ "$running" -ge "$JOBS" ]; then
		wait -n || true
		running=$((running - 1))
	fi
done
wait || true
T1=$(date +%s)

failed=0
echo
for i in "${!NAMES[@]}"; do
	name=${NAMES[$i]}
	echo "== $name"
	show_table "$OUT/$name.log"
done
echo
printf '%-28s %-6s %8s  %s\n' KERNEL RESULT SECONDS DETAIL
for i in "${!NAMES[@]}"; do
	name=${NAMES[$i]}
	read -r status secs accel reason <"$OUT/$name.result" || { status=FAIL secs='?' accel='?' reason="no result"; }
	[ "$status" = PASS ] || failed=$((failed + 1))
	printf '%-28s %-6s %8s  %s\n' "$name" "$status" "$secs" "$accel${reason:+: $reason}"
done
echo "vmtest: ${#NAMES[@]} kernel(s), $failed failed, $((T1 - T0))s; logs in ${OUT#"$ROOT"/}/"
if [ "$failed" != 0 ]; then exit 1; fi
