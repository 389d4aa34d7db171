#!/bin/sh
# Runs inside a vmtest guest (the busybox initramfs of scripts/vmtest.sh, or a
# virtme-ng guest): mounts what tapio needs, runs `tapio probe`, runs
# `tapio trace -o json` while it triggers each kind of kernel event, checks
# that each kind arrived, and prints a table and `VMTEST-RESULT: PASS|FAIL`.
#
# Environment: VMTEST_TAPIO (the binary, default /bin/tapio), VMTEST_WORK
# (scratch directory, default /tmp/vmtest), VMTEST_ALLOW_OFF (names of
# programs that may be turned off on this kernel without failing, or "all").
#
# Rule: a kernel passes when every kind below arrived. A kind whose BPF
# program was turned off (tapio names it on stderr) is reported as OFF with
# the program's name, and fails the kernel unless VMTEST_ALLOW_OFF lists that
# program; the other kinds must arrive in any case.
set -u
set -f # the check patterns below are split into words, never globbed

TAPIO=${VMTEST_TAPIO:-/bin/tapio}
WORK=${VMTEST_WORK:-/tmp/vmtest}
ALLOW_OFF=${VMTEST_ALLOW_OFF:-}
PORT=47001     # a loopback TCP server listens here
RST_PORT=47002 # nothing listens here: connecting gets a reset
TRACE_MAX=600  # `-d` for tapio trace; it is stopped with SIGTERM much sooner

say() { echo "vmtest: $*"; }
section() { echo; echo "---- $*"; }
# busybox applets even where the host's tools come first on PATH (virtme-ng).
if command -v busybox >/dev/null 2>&1; then BB=busybox; else BB=; fi

rm -rf "$WORK"
mkdir -p "$WORK"

# ---------------------------------------------------------------- setup

is_mounted() { $BB awk -v d="$1" '$2 == d { f = 1 } END { exit !f }' /proc/mounts; }
fs_type() { $BB awk -v d="$1" '$2 == d { t = $3 } END { print t }' /proc/mounts; }

section "setup"
is_mounted /proc || mount -t proc proc /proc
is_mounted /sys || mount -t sysfs sysfs /sys
is_mounted /sys/kernel/tracing || mount -t tracefs tracefs /sys/kernel/tracing ||
	say "cannot mount tracefs"
is_mounted /sys/kernel/debug || mount -t debugfs debugfs /sys/kernel/debug ||
	say "cannot mount debugfs"
# cgroup2: a pure cgroup2 /sys/fs/cgroup, else the hybrid layout's unified/,
# else mount it.
CG=
case $(fs_type /sys/fs/cgroup) in
cgroup2) CG=/sys/fs/cgroup ;;
'') mount -t cgroup2 cgroup2 /sys/fs/cgroup && CG=/sys/fs/cgroup ;;
*) if [ "$(fs_type /sys/fs/cgroup/unified)" = cgroup2 ]; then CG=/sys/fs/cgroup/unified; fi ;;
esac
[ -n "$CG" ] || say "no cgroup2 hierarchy"
$BB ip link set lo up 2>/dev/null || $BB ifconfig lo 127.0.0.1 up
# Kernel messages go to the log at the end, not into the middle of the table.
$BB dmesg -n 1 2>/dev/null

say "kernel $(uname -r) ($(uname -v))"
say "cpus $($BB nproc), $($BB awk '/MemTotal/ { print $2 / 1024 " MiB" }' /proc/meminfo)"
say "btf $(ls -l /sys/kernel/btf/vmlinux 2>&1)"
say "cgroup2 ${CG:-none}: $(cat "$CG/cgroup.controllers" 2>/dev/null)"

if [ "$TAPIO" = none ] || [ ! -x "$TAPIO" ]; then
	say "tapio binary '$TAPIO' not found"
	echo "VMTEST-RESULT: FAIL (no tapio binary)"
	exit 1
fi

section "tapio version"
"$TAPIO" version 2>&1
section "tapio probe"
"$TAPIO" probe 2>&1
PROBE_RC=$?
say "tapio probe exited $PROBE_RC"

# ---------------------------------------------------------------- trace

section "tapio trace"
OUTF=$WORK/trace.json
ERRF=$WORK/trace.err
T_START=$($BB cut -d' ' -f1 /proc/uptime)
"$TAPIO" trace -o json -d "$TRACE_MAX" >"$OUTF" 2>"$ERRF" &
TPID=$!

# Ready when the first event arrives: keep exec'ing until one does.
i=0
while [ ! -s "$OUTF" ] && kill -0 "$TPID" 2>/dev/null && [ "$i" -lt 600 ]; do
	sh -c : vmtest-ready
	$BB usleep 100000
	i=$((i + 1))
done
T_READY=$($BB cut -d' ' -f1 /proc/uptime)
if ! kill -0 "$TPID" 2>/dev/null; then
	wait "$TPID"
	say "tapio trace ended early with status $?"
	cat "$ERRF"
elif [ ! -s "$OUTF" ]; then
	say "no event after 60s; triggering anyway"
fi
say "trace ready after $($BB awk -v a="$T_START" -v b="$T_READY" 'BEGIN { printf "%.1f", b - a }')s"

# Each trigger records what identifies its events in $WORK/expect.

# exec, exit code, fork: a shell that exits 7, with a marker argument.
sh -c 'exit 7' vmtest-exec-marker &
XPID=$!
wait "$XPID"
say "exec+exit: pid $XPID exited $?"
(:) &
FPID=$!
wait "$FPID"
say "fork: child pid $FPID"

# TCP connect, accept and close on loopback, then a reset from a closed port.
$BB nc -l -p "$PORT" </dev/null >"$WORK/nc.srv" 2>&1 &
NPID=$!
i=0
while ! $BB netstat -ltn 2>/dev/null | grep -q ":$PORT "; do
	[ "$i" -lt 100 ] || break
	$BB usleep 50000
	i=$((i + 1))
done
echo vmtest-hello | $BB timeout 10 $BB nc 127.0.0.1 "$PORT" >"$WORK/nc.cli" 2>&1
say "tcp: client exited $?, server got '$(cat "$WORK/nc.srv")'"
wait "$NPID"
$BB timeout 10 $BB nc 127.0.0.1 "$RST_PORT" </dev/null >"$WORK/nc.rst" 2>&1
say "tcp reset: client exited $? ($(cat "$WORK/nc.rst"))"

# cgroup mkdir and rmdir, and an OOM kill in a cgroup with memory.max 16M.
OPID=
if [ -n "$CG" ]; then
	mkdir "$CG/vmtest-cg" && rmdir "$CG/vmtest-cg"
	say "cgroup: mkdir+rmdir $CG/vmtest-cg: $?"
	echo +memory >"$CG/cgroup.subtree_control" 2>/dev/null
	if mkdir "$CG/vmtest-oom" && echo 16M >"$CG/vmtest-oom/memory.max"; then
		echo 0 >"$CG/vmtest-oom/memory.swap.max" 2>/dev/null
		# dd reads 64 MiB from /dev/zero into one buffer: the cgroup's OOM
		# killer kills it.
		sh -c 'echo $$ >"$1/cgroup.procs" && exec dd if=/dev/zero of=/dev/null bs=64M count=1' \
			sh "$CG/vmtest-oom" 2>"$WORK/oom.err" &
		OPID=$!
		wait "$OPID"
		say "oom: pid $OPID exited $? ($(grep -s '^oom_kill ' "$CG/vmtest-oom/memory.events"))"
		i=0
		while ! rmdir "$CG/vmtest-oom" 2>/dev/null && [ "$i" -lt 50 ]; do
			$BB usleep 100000
			i=$((i + 1))
		done
	else
		say "oom: cannot set up a memory-limited cgroup"
	fi
fi

# ---------------------------------------------------------------- checks

# KIND TYPE PATTERN...: the kind passes when a line of TYPE matches every
# extended regex PATTERN.
CHECKS="$WORK/checks"
: >"$CHECKS"
want() { echo "$*" >>"$CHECKS"; }
# field NAME VALUE: a regex for a numeric JSON field.
field() { echo "\"$1\":$2[,}]"; }
want process.exec process.exec '"vmtest-exec-marker"' "$(field tgid "$XPID")"
want process.exit process.exit "$(field tgid "$XPID")" "$(field exit_code 7)"
want process.fork process.fork "$(field 'child_(pid|tgid)' "$FPID")"
want tcp.connect tcp.connect "$(field dport $PORT)"
want tcp.accept tcp.accept "$(field sport $PORT)"
want tcp.close tcp.close "$(field '(sport|dport)' $PORT)"
want tcp.reset tcp.reset "$(field '(sport|dport)' $RST_PORT)"
want cgroup.mkdir cgroup.mkdir '"path":"[^"]*/vmtest-cg"'
want cgroup.rmdir cgroup.rmdir '"path":"[^"]*/vmtest-cg"'
want cgroup.attach cgroup.attach '"path":"[^"]*/vmtest-oom"'
want oom.kill oom.kill "$(field victim_pid "${OPID:-none}")"

# match TYPE PATTERN...: prints the first matching line of type TYPE.
match() {
	t=$1
	shift
	grep -F "\"type\":\"$t\"" "$OUTF" >"$WORK/m" 2>/dev/null
	for p in "$@"; do
		grep -E -e "$p" "$WORK/m" >"$WORK/m2"
		mv "$WORK/m2" "$WORK/m"
	done
	head -n 1 "$WORK/m"
}

all_arrived() {
	while read -r kind type pats; do
		# shellcheck disable=SC2086
		[ -n "$(match "$type" $pats)" ] || return 1
	done <"$CHECKS"
	return 0
}

# Give the last events up to 10 s to come through, then stop the trace.
i=0
while [ "$i" -lt 100 ] && kill -0 "$TPID" 2>/dev/null && ! all_arrived; do
	$BB usleep 100000
	i=$((i + 1))
done
kill -TERM "$TPID" 2>/dev/null
i=0
while kill -0 "$TPID" 2>/dev/null && [ "$i" -lt 100 ]; do
	$BB usleep 100000
	i=$((i + 1))
done
if kill -0 "$TPID" 2>/dev/null; then
	say "tapio trace did not stop within 10s of SIGTERM"
	kill -KILL "$TPID"
fi
wait "$TPID"
TRACE_RC=$?
say "tapio trace exited $TRACE_RC, $(wc -l <"$OUTF") events"
section "tapio trace stderr"
cat "$ERRF"

# Programs that tapio turned off, one name a line, from its stderr.
OFF=$WORK/off
grep -iE 'turned off|not loaded|cannot load|could not load|failed to load' "$ERRF" >"$OFF"

section "events by type"
$BB sed -n 's/.*"type":"\([a-z.]*\)".*/\1/p' "$OUTF" | sort | uniq -c

section "first event of each checked kind"
FAILED=
OFFLIST=
echo "VMTEST-TABLE-BEGIN"
printf '%-14s %-6s %s\n' KIND RESULT DETAIL
while read -r kind type pats; do
	# shellcheck disable=SC2086
	line=$(match "$type" $pats)
	n=$(grep -cF "\"type\":\"$type\"" "$OUTF")
	if [ -n "$line" ]; then
		printf '%-14s %-6s %s\n' "$kind" PASS "$n event(s)"
		continue
	fi
	# Which turned-off program explains it: a stderr line naming the kind's
	# domain (process, tcp, cgroup, oom) or the type.
	dom=${type%%.*}
	prog=$(grep -iE "$type|$dom|$(echo "$type" | tr . _)" "$OFF" | head -n 1)
	if [ -n "$prog" ]; then
		printf '%-14s %-6s %s\n' "$kind" OFF "program turned off: $prog"
		OFFLIST="$OFFLIST $kind"
		case " $ALLOW_OFF " in
		*" all "*) continue ;;
		esac
		allowed=
		for a in $ALLOW_OFF; do
			case $prog in *"$a"*) allowed=1 ;; esac
		done
		[ -n "$allowed" ] && continue
	elif [ "$n" -gt 0 ]; then
		printf '%-14s %-6s %s\n' "$kind" FAIL "$n $type event(s), none from the trigger (want: $pats)"
	else
		printf '%-14s %-6s %s\n' "$kind" FAIL "no $type event"
	fi
	FAILED="$FAILED $kind"
done <"$CHECKS"
if [ "$PROBE_RC" != 0 ]; then
	printf '%-14s %-6s %s\n' probe FAIL "tapio probe exited $PROBE_RC"
	FAILED="$FAILED probe"
fi
if [ "$TRACE_RC" != 0 ]; then
	printf '%-14s %-6s %s\n' trace FAIL "tapio trace exited $TRACE_RC"
	FAILED="$FAILED trace"
fi
echo "VMTEST-TABLE-END"

while read -r kind type pats; do
	# shellcheck disable=SC2086
	line=$(match "$type" $pats)
	[ -z "$line" ] || echo "$line"
done <"$CHECKS"

section "kernel log (bpf, oom, warnings)"
$BB dmesg | grep -iE 'bpf|oom|killed process|warning|bug|error' | tail -n 40

echo
if [ -z "$FAILED" ]; then
	echo "VMTEST-RESULT: PASS${OFFLIST:+ (turned off and allowed:$OFFLIST)}"
	exit 0
fi
echo "VMTEST-RESULT: FAIL (${FAILED# })"
exit 1
