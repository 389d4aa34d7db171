#!/bin/bash
# CPU per event of `tapio agent --collectors kernel` under an exec storm:
# utime+stime of the agent (from /proc/PID/stat) over the storm, divided by
# the events the sink wrote (the exit summary). Needs root.
#   bench/otlp_cpu.sh OUTPUT [EXECS]     e.g. otlp://127.0.0.1:4318, file:/tmp/x.jsonl
# For OTLP, start a receiver first:
#   node tests/integration/otlp_receiver.js --port 4318 --out /dev/null &
set -euo pipefail
out=$1
n=${2:-4000}
tapio=${TAPIO_BIN:-build/tapio}
st=$(mktemp -d)
err=$st/stderr
"$tapio" agent --collectors kernel --output "$out" --state-dir "$st" --metrics-addr "" \
	--node-name bench >/dev/null 2>"$err" &
pid=$!
sleep 2
read -r u0 s0 < <(awk '{print $14, $15}' /proc/$pid/stat)
for ((i = 0; i < n; i++)); do /bin/true; done
sleep 1.5
read -r u1 s1 < <(awk '{print $14, $15}' /proc/$pid/stat)
kill -INT $pid
wait $pid
written=$(tail -1 "$err" | python3 -c 'import json,sys; print(json.load(sys.stdin)["summary"]["sink"]["written"])')
tck=$(getconf CLK_TCK)
python3 -c "t=(($u1+$s1)-($u0+$s0))/$tck; print(f'$out: {t:.2f} s CPU, {$written} events written, {t/$written*1e6:.1f} us/event')"
rm -rf "$st"
