#!/usr/bin/env bash
# Installs every Debian 12 package that tapio's build and tests need.
# Idempotent: when everything is there it only asks dpkg, and returns fast.
#
#   scripts/deps.sh [ARCH]    (ARCH, or DEPS_ARCH, which `make deps ARCH=...` sets)
#
# For an ARCH other than this machine's (aarch64 on x86-64) it also adds
# that Debian architecture to dpkg and installs the cross compiler and the
# :arm64 libraries that `make ARCH=aarch64` links against.
set -euo pipefail

ARCH=${1:-${DEPS_ARCH:-$(uname -m)}}

PKGS=(
	# build
	make gcc clang llvm libbpf-dev bpftool libelf-dev zlib1g-dev pkg-config
	# checks (make check: layers, format)
	clang-format
	# collectors, config, sinks, metrics
	libsystemd-dev libcurl4-openssl-dev libcjson-dev libyaml-dev libnats-dev libmicrohttpd-dev
	# tests
	libcriterion-dev python3 openssl iproute2 util-linux procps curl jq
	nats-server etcd-server etcd-client systemd-journal-remote nodejs
	# reference tools, for side-by-side comparison
	libbpf-tools bpftrace
	# VM smoke tests (x86-64 and arm64 guests)
	qemu-system-x86 qemu-system-arm busybox-static cpio binutils
)

# Cross builds: the toolchain, and the libraries of the target architecture
# (Multi-Arch: same, so they sit beside this machine's own). The arm64
# busybox for its VM tests is fetched by scripts/vmtest.sh: busybox-static of
# two architectures cannot be installed at once.
FOREIGN=
case $ARCH in
"$(uname -m)") ;;
aarch64 | arm64)
	FOREIGN=arm64
	PKGS+=(gcc-aarch64-linux-gnu)
	for p in libc6-dev libgcc-s1 libbpf-dev libelf-dev zlib1g-dev libsystemd-dev libcurl4-openssl-dev \
		libcjson-dev libyaml-dev libnats-dev libmicrohttpd-dev; do
		PKGS+=("$p:arm64")
	done
	;;
*) echo "deps: unsupported ARCH '$ARCH' (x86_64 or aarch64)" >&2; exit 1 ;;
esac

# A name without :ARCH is this machine's package (or an Architecture: all
# one); with a foreign architecture added, dpkg-query lists both instances.
native=$(dpkg --print-architecture)
missing=()
for p in "${PKGS[@]}"; do
	want=$native
	case $p in *:*) want=${p##*:} ;; esac
	dpkg-query -W -f='${db:Status-Status} ${Architecture}\n' "$p" 2>/dev/null |
		awk -v w="$want" '$1 == "installed" && ($2 == w || $2 == "all") { f = 1 } END { exit !f }' ||
		missing+=("$p")
done

# Test-only npm packages, into build/node (only when missing): the OTLP test
# receiver decodes with the OpenTelemetry project's generated protobuf code.
# 0.208.0 is a release that still ships the generated decoders and knows
# LogRecord.event_name.
node_deps() {
	local root dir
	root=$(cd "$(dirname "$0")/.." && pwd)
	dir="$root/build/node"
	[ -f "$dir/node_modules/@opentelemetry/otlp-transformer/build/src/generated/root.js" ] && return 0
	if ! command -v npm >/dev/null; then
		apt-get install -y -q --no-install-recommends npm
	fi
	mkdir -p "$dir"
	echo "deps: npm install @opentelemetry/otlp-transformer into $dir"
	npm install --no-audit --no-fund --prefix "$dir" @opentelemetry/otlp-transformer@0.208.0 >/dev/null
}

if [ ${#missing[@]} -eq 0 ]; then
	node_deps
	exit 0
fi
if [ "$(id -u)" -ne 0 ]; then
	echo "deps: missing packages: ${missing[*]}; run 'sudo make deps${FOREIGN:+ ARCH=$ARCH}'" >&2
	exit 1
fi
if [ -n "$FOREIGN" ] && ! dpkg --print-foreign-architectures | grep -qx "$FOREIGN"; then
	echo "deps: dpkg --add-architecture $FOREIGN"
	dpkg --add-architecture "$FOREIGN"
fi
echo "deps: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
# Another apt on this machine (a second build) holds the lock for a while.
LOCK=(-o DPkg::Lock::Timeout=300)
apt-get "${LOCK[@]}" update -q
apt-get "${LOCK[@]}" install -y -q --no-install-recommends "${missing[@]}"
node_deps
