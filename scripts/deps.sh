#!/usr/bin/env bash
# Installs every Debian 12 package that tapio's build and tests need.
# Idempotent: when everything is there it only asks dpkg, and returns fast.
set -euo pipefail

PKGS=(
	# build
	make gcc clang llvm libbpf-dev bpftool libelf-dev zlib1g-dev pkg-config
	# checks (make check: layers, format)
	clang-format
	# collectors, config, sinks, metrics
	libsystemd-dev libcurl4-openssl-dev libcjson-dev libyaml-dev libnats-dev libmicrohttpd-dev
	# tests
	libcriterion-dev python3 openssl iproute2 util-linux procps curl jq
	nats-server etcd-server etcd-client systemd-journal-remote
	# reference tools, for side-by-side comparison
	libbpf-tools bpftrace
	# VM smoke tests
	qemu-system-x86 busybox-static cpio
)

missing=()
for p in "${PKGS[@]}"; do
	st=$(dpkg-query -W -f='${db:Status-Status}' "$p" 2>/dev/null || true)
	[ "$st" = installed ] || missing+=("$p")
done

if [ ${#missing[@]} -eq 0 ]; then
	exit 0
fi
if [ "$(id -u)" -ne 0 ]; then
	echo "deps: missing packages: ${missing[*]}; run 'sudo make deps'" >&2
	exit 1
fi
echo "deps: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
apt-get update -q
apt-get install -y -q --no-install-recommends "${missing[@]}"
