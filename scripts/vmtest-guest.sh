#!/bin/sh
# Runs inside a vmtest guest (the busybox initramfs of scripts/vmtest.sh, or a
# virtme-ng guest): mounts what tapio needs, runs `tapio probe`, runs
# `tapio trace -o json` while it triggers each kind of kernel event, checks
# that each kind arrived, and prints a table and `VMTEST-RESULT: PASS|FAIL`.
#
#   vmtest-guest.sh                 the whole test (as root, in a VM)
#   vmtest-guest.sh --evaluate DIR  only the checks, on the files a run left
#                                   in DIR (checks, trace.json, trace.err,
#                                   probe.out, probe.rc, trace.rc)
#
# Environment: VMTEST_TAPIO (the binary, default /bin/tapio), VMTEST_WORK
# (scratch directory, default /tmp/vmtest), VMTEST_ALLOW_OFF (programs that
# may be turned off on this kernel, space-separated, or "all"),
# VMTEST_GUEST_TRACE_ARGS (more arguments for tapio trace, e.g.
# --ringbuf-per-cpu).
#
# When does a kernel pass? Every kind below must arrive, matched to its
# trigger (pid, port, cgroup path), and no program may be turned off. When
# tapio turns a program off (it names it on stderr), the table shows it with
# tapio probe's reason, and the kinds that only it produces as OFF. Listing
# the program in VMTEST_ALLOW_OFF accepts that; every kind whose program
# loaded must still arrive.
# shellcheck disable=SC2016 # the awk programs behind $BB are single-quoted on purpose
set -u
set -f # the check patterns below are split into words, never globbed

TAPIO=${VMTEST_TAPIO:-/bin/tapio}
WORK=${VMTEST_WORK:-/tmp/vmtest}
ALLOW_OFF=${VMTEST_ALLOW_OFF:-}
TRACE_ARGS=${VMTEST_GUEST_TRACE_ARGS:-}
PORT=47001     # a loopback TCP server listens here
RST_PORT=47002 # nothing listens here: connecting gets a reset
FORK_PORT=47003 # a server that accepts in one process and serves in a child
MAPERR_PORT=47004 # connects made while socket-local storage cannot be charged
TRACE_MAX=600  # `-d` for tapio trace; it is stopped with SIGTERM much sooner

# busybox applets even where the host's tools come first on PATH (virtme-ng).
if command -v busybox >/dev/null 2>&1; then BB=busybox; else BB=; fi

say() { echo "vmtest: [$(uptime_s)] $*"; }
section() { echo; echo "---- $* [$(uptime_s)]"; }
uptime_s() { $BB cut -d' ' -f1 /proc/uptime; }
is_mounted() { $BB awk -v d="$1" '$2 == d { f = 1 } END { exit !f }' /proc/mounts; }
fs_type() { $BB awk -v d="$1" '$2 == d { t = $3 } END { print t }' /proc/mounts; }
# sleep_ds N: sleeps N tenths of a second.
sleep_ds() { $BB usleep $(($1 * 100000)); }

# ---------------------------------------------------------------- setup

setup() {
	section "setup"
	is_mounted /proc || mount -t proc proc /proc
	is_mounted /sys || mount -t sysfs sysfs /sys
	is_mounted /sys/kernel/tracing || mount -t tracefs tracefs /sys/kernel/tracing ||
		say "cannot mount tracefs"
	is_mounted /sys/kernel/debug || mount -t debugfs debugfs /sys/kernel/debug ||
		say "cannot mount debugfs"
	# cgroup2: a pure cgroup2 /sys/fs/cgroup, else the hybrid layout's
	# unified/, else mount it.
	CG=
	case $(fs_type /sys/fs/cgroup) in
	cgroup2) CG=/sys/fs/cgroup ;;
	'') mount -t cgroup2 cgroup2 /sys/fs/cgroup && CG=/sys/fs/cgroup ;;
	*) if [ "$(fs_type /sys/fs/cgroup/unified)" = cgroup2 ]; then CG=/sys/fs/cgroup/unified; fi ;;
	esac
	[ -n "$CG" ] || say "no cgroup2 hierarchy"
	$BB ip link set lo up 2>/dev/null || $BB ifconfig lo 127.0.0.1 up
	# Kernel messages go to the log at the end, not into the table.
	$BB dmesg -n 1 2>/dev/null

	say "kernel $(uname -r) ($(uname -v))"
	say "cpus $($BB nproc), $($BB awk '/MemTotal/ { print $2 / 1024 " MiB" }' /proc/meminfo)"
	say "btf $(ls -l /sys/kernel/btf/vmlinux 2>&1)"
	say "cgroup2 ${CG:-none}: $(cat "$CG/cgroup.controllers" 2>/dev/null)"
}

# ---------------------------------------------------------------- triggers

# Each trigger adds a check: KIND TYPE PATTERN... The kind passes when a
# JSON line of TYPE matches every extended regex PATTERN.
want() { echo "$*" >>"$WORK/checks"; }
# field NAME VALUE: a regex for a numeric JSON field.
field() { echo "\"$1\":$2[,}]"; }

trigger_process() {
	# exec and exit code: a shell with a marker argument that exits 7.
	sh -c 'exit 7' vmtest-exec-marker &
	xpid=$!
	wait "$xpid"
	say "exec+exit: pid $xpid exited $?"
	# The exec's capability sets are the shell's (root: the bounding set);
	# on kernels before 6.3 they are read through the u32[2] layout. The
	# guest is pure cgroup2: the header's cgroup stays the cgroup2 one.
	capeff=$($BB awk '/^CapEff:/ { print $2 }' /proc/self/status)
	want process.exec process.exec '"vmtest-exec-marker"' "$(field tgid "$xpid")" \
		"\"cap_effective\":\"$capeff\"" '"exe":"/[^"]+","exe_truncated":false,"memfd":false' \
		'"cgroup_hierarchy":"v2"'
	want process.exit process.exit "$(field tgid "$xpid")" "$(field exit_code 7)"
	# fork: a subshell.
	(:) &
	fpid=$!
	wait "$fpid"
	say "fork: child pid $fpid"
	want process.fork process.fork "$(field 'child_(pid|tgid)' "$fpid")"
}

trigger_tcp() {
	# connect, accept and close on loopback.
	$BB nc -l -p "$PORT" </dev/null >"$WORK/nc.srv" 2>&1 &
	npid=$!
	i=0
	while ! $BB netstat -ltn 2>/dev/null | grep -q ":$PORT " && [ "$i" -lt 50 ]; do
		sleep_ds 1
		i=$((i + 1))
	done
	echo vmtest-hello | $BB timeout 10 $BB nc 127.0.0.1 "$PORT" >"$WORK/nc.cli" 2>&1
	say "tcp: client exited $?, server got '$(cat "$WORK/nc.srv")'"
	wait "$npid"
	want tcp.connect tcp.connect "$(field dport $PORT)"
	want tcp.accept tcp.accept "$(field sport $PORT)"
	want tcp.close tcp.close "$(field '(sport|dport)' $PORT)"
	# reset: a connect to a port where nothing listens.
	$BB timeout 10 $BB nc 127.0.0.1 "$RST_PORT" </dev/null >"$WORK/nc.rst" 2>&1
	say "tcp reset: client exited $? ($(cat "$WORK/nc.rst"))"
	want tcp.reset tcp.reset "$(field '(sport|dport)' $RST_PORT)"
	# prefork: `nc -ll -e` accepts in the listening process and serves
	# each connection in a forked child, which closes it: tcp.accept names
	# the listener, the server side's tcp.close the child.
	$BB nc -ll -p "$FORK_PORT" -e sh -c 'echo $$ >"$0"; read -r l' "$WORK/fork.child" \
		</dev/null >/dev/null 2>&1 &
	lpid=$!
	wait_listen "$FORK_PORT"
	echo vmtest-prefork | $BB timeout 10 $BB nc 127.0.0.1 "$FORK_PORT" >/dev/null 2>&1
	cpid=$(cat "$WORK/fork.child" 2>/dev/null)
	kill "$lpid" 2>/dev/null
	wait "$lpid" 2>/dev/null
	say "prefork: listener pid $lpid, child pid ${cpid:-none}"
	want tcp.prefork.accept tcp.accept "$(field sport $FORK_PORT)" "$(field pid "$lpid")"
	want tcp.prefork.close tcp.close "$(field sport $FORK_PORT)" "$(field pid "${cpid:-none}")" \
		'"owner_known":true'
	# map errors: with net.core.optmem_max at 0 no socket-local storage can
	# be charged to a socket, so each new socket's owner entry fails and is
	# counted (kernel_map_errors{map="socks"}; trace's summary on stderr).
	# Only where the owners live in socket-local storage (tapio probe).
	if grep -q '^socket owners: socket-local storage' "$WORK/probe.out"; then
		optmem=$(cat /proc/sys/net/core/optmem_max)
		echo 0 >/proc/sys/net/core/optmem_max
		$BB nc -l -p "$MAPERR_PORT" </dev/null >/dev/null 2>&1 &
		mpid=$!
		wait_listen "$MAPERR_PORT"
		echo x | $BB timeout 10 $BB nc 127.0.0.1 "$MAPERR_PORT" >/dev/null 2>&1
		wait "$mpid"
		echo "$optmem" >/proc/sys/net/core/optmem_max
		say "map errors: a connect with optmem_max 0 (was $optmem)"
		want map.errors summary '"map_errors":[{]"socks":[1-9]'
	fi
}

# wait_listen PORT: until something listens on PORT (5 s at most).
wait_listen() {
	i=0
	while ! $BB netstat -ltn 2>/dev/null | grep -q ":$1 " && [ "$i" -lt 50 ]; do
		sleep_ds 1
		i=$((i + 1))
	done
}

trigger_cgroup_oom() {
	want cgroup.mkdir cgroup.mkdir '"path":"[^"]*/vmtest-cg"'
	want cgroup.rmdir cgroup.rmdir '"path":"[^"]*/vmtest-cg"'
	want cgroup.attach cgroup.attach '"path":"[^"]*/vmtest-oom/child"'
	if [ -z "$CG" ]; then
		want oom.kill oom.kill no-cgroup2
		return
	fi
	mkdir "$CG/vmtest-cg" && rmdir "$CG/vmtest-cg"
	say "cgroup: mkdir+rmdir $CG/vmtest-cg: $?"
	# OOM kill: dd reads 64 MiB from /dev/zero into one buffer, in
	# vmtest-oom/child, whose parent's memory.max is 16M (the child has no
	# limit of its own).
	opid=none
	echo +memory >"$CG/cgroup.subtree_control" 2>/dev/null
	if mkdir "$CG/vmtest-oom" && echo 16M >"$CG/vmtest-oom/memory.max" &&
		echo +memory >"$CG/vmtest-oom/cgroup.subtree_control" && mkdir "$CG/vmtest-oom/child"; then
		echo 0 >"$CG/vmtest-oom/memory.swap.max" 2>/dev/null
		sh -c 'echo $$ >"$1/cgroup.procs" && exec dd if=/dev/zero of=/dev/null bs=64M count=1' \
			sh "$CG/vmtest-oom/child" 2>"$WORK/oom.err" &
		opid=$!
		wait "$opid"
		say "oom: pid $opid exited $? ($(grep -s '^oom_kill ' "$CG/vmtest-oom/memory.events"))"
		i=0
		while ! { rmdir "$CG/vmtest-oom/child" && rmdir "$CG/vmtest-oom"; } 2>/dev/null &&
			[ "$i" -lt 50 ]; do
			sleep_ds 1
			i=$((i + 1))
		done
	else
		say "oom: cannot set up a memory-limited cgroup"
	fi
	want oom.kill oom.kill "$(field victim_pid "$opid")"
	# The limit that was hit: the parent's memory.max (16M), on cgroup2;
	# read from the oom_control where tapio's fentry/fexit pair loads
	# (tapio probe) and attaches (tapio trace says so on stderr when it
	# does not: arm64 6.1 loads the pair but cannot attach it), else found
	# by the heuristic.
	src=heuristic
	if grep -qE '^ *tapio_oom_enter .* loads ' "$WORK/probe.out" &&
		grep -qE '^ *tapio_oom_exit .* loads ' "$WORK/probe.out" &&
		! grep -q 'limit_source heuristic' "$WORK/trace.err"; then
		src=oom_control
	fi
	want oom.limit oom.kill "$(field victim_pid "$opid")" '"constraint":"memcg"' \
		"\"limit_source\":\"$src\"" '"memcg_path":"[^"]*/vmtest-oom/child"' \
		'"limit_memcg_path":"[^"]*/vmtest-oom"' "$(field limit_bytes 16777216)" \
		"$(field memcg_hierarchy_id 0)"
}

# ---------------------------------------------------------------- checks

# match TYPE PATTERN...: prints the first line of type TYPE that matches
# every pattern.
# TYPE summary: the summary line tapio trace writes to stderr at the end.
match() {
	t=$1
	shift
	if [ "$t" = summary ]; then
		grep -F '{"summary":' "$WORK/trace.err" >"$WORK/m" 2>/dev/null
	else
		grep -F "\"type\":\"$t\"" "$WORK/trace.json" >"$WORK/m" 2>/dev/null
	fi
	for p in "$@"; do
		grep -E -e "$p" "$WORK/m" >"$WORK/m2"
		mv "$WORK/m2" "$WORK/m"
	done
	head -n 1 "$WORK/m"
}

# all_arrived: true once every check has matched. The ones still waiting
# are kept in $WORK/pending, so a kind that never comes costs one match per
# call, not all of them.
all_arrived() {
	[ -f "$WORK/pending" ] || grep -v '^[^ ]* summary ' "$WORK/checks" >"$WORK/pending"
	: >"$WORK/pending.new"
	while read -r kind type pats; do
		# shellcheck disable=SC2086
		[ -n "$(match "$type" $pats)" ] || printf "%s %s %s\n" "$kind" "$type" "$pats" >>"$WORK/pending.new"
	done <"$WORK/pending"
	mv "$WORK/pending.new" "$WORK/pending"
	[ ! -s "$WORK/pending" ]
}

# prog_types PROG: the event types tapio probe lists for PROG.
prog_types() { $BB awk -v p="$1" '$1 == p { t = $4; sub(/:$/, "", t); print t }' "$WORK/probe.out"; }
# prog_why PROG: why tapio probe says PROG cannot load.
prog_why() { $BB sed -n "s/^ *$1 .*FAILS *[^ ]*: //p" "$WORK/probe.out"; }
allowed() {
	for a in $ALLOW_OFF; do
		if [ "$a" = all ] || [ "$a" = "$1" ]; then return 0; fi
	done
	return 1
}
row() { printf '%-14s %-6s %s\n' "$1" "$2" "$3"; }

# Prints the table and the result line from the files in $WORK; returns 0
# when the kernel passes.
evaluate() {
	probe_rc=$(cat "$WORK/probe.rc" 2>/dev/null || echo missing)
	trace_rc=$(cat "$WORK/trace.rc" 2>/dev/null || echo missing)
	# tapio trace names the programs it turned off on stderr:
	# "tapio trace: turned off, cannot load on this kernel: a,b (...)".
	offprogs=$($BB sed -n 's/^tapio trace: turned off, cannot load on this kernel: \([^ ]*\).*/\1/p' \
		"$WORK/trace.err" 2>/dev/null | tr , ' ')
	failed=
	offkinds=
	rm -f "$WORK/first"
	echo "VMTEST-TABLE-BEGIN"
	row KIND RESULT DETAIL
	while read -r kind type pats; do
		# shellcheck disable=SC2086
		line=$(match "$type" $pats)
		n=$(grep -cF "\"type\":\"$type\"" "$WORK/trace.json" 2>/dev/null)
		if [ -n "$line" ]; then
			echo "$line" >>"$WORK/first"
			row "$kind" PASS "${n:-0} event(s)"
			continue
		fi
		# The turned-off programs that produce this kind; all allowed?
		progs=
		ok=1
		for p in $offprogs; do
			case ",$(prog_types "$p")," in
			*",$type,"*)
				progs="$progs $p"
				allowed "$p" || ok=
				;;
			esac
		done
		if [ -n "$progs" ] && [ -n "$ok" ]; then
			row "$kind" OFF "not traced: turned off (allowed):$progs"
			offkinds="$offkinds $kind"
			continue
		fi
		if [ "${n:-0}" -gt 0 ]; then
			detail="$n $type event(s), none from the trigger (want: $pats)"
		else
			detail="no $type event"
		fi
		row "$kind" FAIL "$detail${progs:+; turned off:$progs}"
		failed="$failed $kind"
	done <"$WORK/checks"
	for p in $offprogs; do
		r=FAIL
		if allowed "$p"; then r=OFF; else failed="$failed $p"; fi
		row program "$r" "$p ($(prog_types "$p")) turned off: $(prog_why "$p")"
	done
	if [ "$probe_rc" != 0 ]; then
		# probe fails when a program cannot load: allowed if they all are.
		r=FAIL
		if [ -n "$offprogs" ]; then
			r=OFF
			for p in $offprogs; do allowed "$p" || r=FAIL; done
		fi
		row probe "$r" "tapio probe exited $probe_rc"
		[ "$r" = OFF ] || failed="$failed probe"
	fi
	if [ "$trace_rc" != 0 ]; then
		row trace FAIL "tapio trace exited $trace_rc"
		failed="$failed trace"
	fi
	echo "VMTEST-TABLE-END"

	section "first event of each checked kind"
	cat "$WORK/first" 2>/dev/null

	echo
	if [ -z "$failed" ]; then
		echo "VMTEST-RESULT: PASS${offkinds:+ (turned off and allowed:$offkinds)}"
		return 0
	fi
	echo "VMTEST-RESULT: FAIL (${failed# })"
	return 1
}

# ---------------------------------------------------------------- main

if [ "${1:-}" = --evaluate ]; then
	WORK=${2:?usage: vmtest-guest.sh --evaluate DIR}
	evaluate
	exit
fi

rm -rf "$WORK"
mkdir -p "$WORK"
: >"$WORK/checks"
setup
if [ -z "$BB" ]; then
	say "busybox not found"
	echo "VMTEST-RESULT: FAIL (no busybox)"
	exit 1
fi
if [ "$TAPIO" = none ] || [ ! -x "$TAPIO" ]; then
	say "tapio binary '$TAPIO' not found"
	echo "VMTEST-RESULT: FAIL (no tapio binary)"
	exit 1
fi

section "tapio version"
"$TAPIO" version 2>&1
section "tapio probe"
"$TAPIO" probe >"$WORK/probe.out" 2>&1
echo $? >"$WORK/probe.rc"
cat "$WORK/probe.out"
say "tapio probe exited $(cat "$WORK/probe.rc")"

section "tapio trace"
t_start=$(uptime_s)
# shellcheck disable=SC2086 # TRACE_ARGS is a list of words
"$TAPIO" trace -o json -d "$TRACE_MAX" $TRACE_ARGS >"$WORK/trace.json" 2>"$WORK/trace.err" &
tpid=$!
# Ready when the first event arrives: keep exec'ing, up to 60 s.
i=0
while [ ! -s "$WORK/trace.json" ] && kill -0 "$tpid" 2>/dev/null && [ "$i" -lt 600 ]; do
	sh -c : vmtest-ready
	sleep_ds 1
	i=$((i + 1))
done
say "trace ready after $($BB awk -v a="$t_start" -v b="$(uptime_s)" 'BEGIN { printf "%.1f", b - a }')s"
if ! kill -0 "$tpid" 2>/dev/null; then
	wait "$tpid"
	echo $? >"$WORK/trace.rc"
	say "tapio trace ended early with status $(cat "$WORK/trace.rc")"
	cat "$WORK/trace.err"
elif [ ! -s "$WORK/trace.json" ]; then
	say "no event after 60 s; triggering anyway"
fi

trigger_process
trigger_tcp
trigger_cgroup_oom

# Give the last events up to 10 s to come through, then stop the trace.
if [ ! -f "$WORK/trace.rc" ]; then
	i=0
	while [ "$i" -lt 100 ] && kill -0 "$tpid" 2>/dev/null && ! all_arrived; do
		sleep_ds 1
		i=$((i + 1))
	done
	kill -TERM "$tpid" 2>/dev/null
	i=0
	while kill -0 "$tpid" 2>/dev/null && [ "$i" -lt 100 ]; do
		sleep_ds 1
		i=$((i + 1))
	done
	if kill -0 "$tpid" 2>/dev/null; then
		say "tapio trace did not stop within 10 s of SIGTERM"
		kill -KILL "$tpid"
	fi
	wait "$tpid"
	echo $? >"$WORK/trace.rc"
fi
say "tapio trace exited $(cat "$WORK/trace.rc"), $(wc -l <"$WORK/trace.json") events"
section "tapio trace stderr"
cat "$WORK/trace.err"
section "events by type"
$BB sed -n 's/.*"type":"\([a-z.]*\)".*/\1/p' "$WORK/trace.json" | sort | uniq -c
section "kernel log (bpf, oom, warnings)"
$BB dmesg | grep -iE 'bpf|oom|killed process|warning|bug|error' | tail -n 40
section "checks (kind, type, patterns)"
cat "$WORK/checks"
section "result"
evaluate
