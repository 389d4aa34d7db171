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
	nats-server etcd-server etcd-client systemd-journal-remote nodejs
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
	echo "deps: missing packages: ${missing[*]}; run 'sudo make deps'" >&2
	exit 1
fi
echo "deps: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
apt-get update -q
apt-get install -y -q --no-install-recommends "${missing[@]}"
node_deps
