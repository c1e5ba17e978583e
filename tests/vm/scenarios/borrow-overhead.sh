#!/bin/sh
# What the daemon's borrowed reset costs over the raw one (bench/vm-borrow.sh
# boots this; it is not part of make check). Two holders (tests/vm/holder.c)
# hold one function each of the igb bus set 04:00.0/04:00.1; in one guest:
# 1. raw: tests/vm/borrow-reset.c, N times: SIGSTOP both, pidfd_getfd their
#    group fds, a device fd from each, the hot reset, IDs read back, close,
#    SIGCONT;
# 2. then ResetDevice with Borrow and Force through vfio-resetd, N times
#    (bar-peer's requester, each call's round trip timed).
# Each batch is bracketed by `bench begin/end` lines (the host times them);
# results are `bench result` lines; last, what one lookup of the holders
# costs the daemon.
set -u
# shellcheck source=/dev/null
. /usr/lib/vmtest.sh

n=${VMTEST_BENCH_N:-10}
igb_bus_set

need_programs vfio-resetd busctl bar-peer holder borrow-reset || exit 0
why=""
holder_start A "$a" --quiet || why="holder A: $(cat /run/holder-A.log);"
holder_start B "$b" --quiet || why="$why holder B: $(cat /run/holder-B.log);"
vmtest_result "holders A ($a) and B ($b) hold the set" "$why"
[ -z "$why" ] || exit 0
pa=$(holder_pid A)
pb=$(holder_pid B)

# 1. Raw.
vmtest_info "bench begin raw $a $b"
borrow-reset -n "$n" "$pa=$a" "$pb=$b" >/run/raw.txt 2>&1
rc=$?
vmtest_info "bench end raw $a $b"
vmtest_info "bench result raw $(grep '^summary ' /run/raw.txt)"
if [ "$rc" -eq 0 ]; then
	vmtest_pass "raw borrowed reset x$n"
else
	vmtest_fail "raw borrowed reset x$n" "$(grep -E 'failed|error' /run/raw.txt | head -n 3)"
fi

# 2. Through the daemon.
if ! bus_start || ! daemon_start; then
	vmtest_fail daemon-start "vfio-resetd did not own $VMTEST_NAME"
	vmtest_stop
	exit 0
fi
ca=$(holder_conts A) cb=$(holder_conts B)
# shellcheck disable=SC2034 # reset_request reads it
VMTEST_PEER_PREFIX="bench-peer"
vmtest_info "bench begin daemon $a"
reset_request R "$a" --borrow --force --count "$n" --timeout-usec 10000000 >/dev/null
rc=$?
vmtest_info "bench end daemon $a"
vmtest_info "bench result daemon $(peer_line R '^reset-summary ')"
daemon_kernel_times | sed 's/^/VMTEST INFO bench result daemon-kernel /'
# What looking up the holders costs (the daemon scans /proc/*/fd when a
# borrowed reset comes in, before its clock starts): ten ResetDevice calls
# refused NotOwned (no Borrow: a scan each, then the refusal) against ten
# refused InvalidArgs (a QuiesceTimeoutUSec out of range: no scan), timed by
# the requester.
walls() { sed -n "s/^reset-error $2 .* wall_usec=\([0-9]*\)$/\1/p" "/run/peer-$1.log" | sort -n |
	awk '{ v[NR] = $1 } END { if (NR) printf "%.1f", (NR % 2 ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2) / 1000 }'; }
reset_request S1 "$a" --count 10 >/dev/null
reset_request S2 "$a" --count 10 --timeout-usec 7200000000 >/dev/null
vmtest_info "bench result holders-scan notowned_median_ms=$(walls S1 org.vfioresetd1.Error.NotOwned)" \
	"invalidargs_median_ms=$(walls S2 org.freedesktop.DBus.Error.InvalidArgs) processes=$(ls -d /proc/[0-9]* | wc -l)"
why=""
[ "$rc" -eq 0 ] || why="$(grep '^reset-error' /run/peer-R.log | head -n 3);"
# At least once each (back-to-back stops may discard a pending SIGCONT).
[ "$(holder_conts A)" -gt "$ca" ] && [ "$(holder_conts B)" -gt "$cb" ] || why="$why a holder was never continued;"
sleep 0.3
why="$why$(holder_runs A 0x00000000)$(holder_runs B 0x00000000)"
vmtest_result "daemon borrowed reset $a x$n, the holders run on" "$why"

holder_stop A
holder_stop B
vmtest_stop
