#!/bin/sh
# Borrowed reset by a daemon that may not borrow, in the guest. vfio-resetd
# runs without CAP_SYS_PTRACE (util-linux setpriv drops it from the bounding
# and inheritable sets, so root's exec cannot get it back), and so do the two
# holders (tests/vm/holder.c) of the igb bus set 04:00.0/04:00.1. Why both:
#   - reading /proc/PID/fd (how the daemon finds holders) needs ptrace *read*
#     access (PTRACE_MODE_READ_FSCREDS): for root over root without
#     CAP_SYS_PTRACE, the commoncap rule lets it through only when the
#     target's permitted set is within the caller's, so the holders must lack
#     CAP_SYS_PTRACE too or the daemon could not even see them;
#   - pidfd_getfd(2) needs *attach* access (PTRACE_MODE_ATTACH_REALCREDS),
#     which that same rule would then allow as well: Yama's ptrace_scope 2
#     ("admin-only attach") refuses attach without CAP_SYS_PTRACE and leaves
#     read alone (security/yama/yama_lsm.c), so the scenario sets it.
# ResetDevice with Borrow and Force: a clear error naming pidfd_getfd, the
# holder's pid and the reason; no reset (both registers keep their pattern);
# every holder runs again afterwards (not stopped); the daemon's fds are back.
# First the premise, with tests/vm/borrow-reset.c under the same setpriv.
set -u
# shellcheck source=/dev/null
. /usr/lib/vmtest.sh

igb_bus_set
yama=/proc/sys/kernel/yama/ptrace_scope
cap_sys_ptrace=$((1 << 19))

# By its path: busybox sh runs its own applet of the name first.
setpriv=/usr/bin/setpriv
need_programs vfio-resetd busctl bar-peer holder || exit 0
if ! "$setpriv" --help 2>&1 | grep -q -- --bounding-set; then
	vmtest_skip "$VMTEST_SCENARIO" "setpriv cannot change the bounding set (busybox's; util-linux's is needed)"
	exit 0
fi
if [ ! -w "$yama" ]; then
	vmtest_skip "$VMTEST_SCENARIO" "no Yama ($yama): nothing would refuse pidfd_getfd to a root daemon over holders as unprivileged"
	exit 0
fi
scope0=$(cat "$yama")
echo 2 >"$yama"
vmtest_info "Yama ptrace_scope $scope0 -> $(cat "$yama")"
# has_ptrace PID: CAP_SYS_PTRACE in its permitted set.
has_ptrace() { [ $((0x$(sed -n 's/^CapPrm:[[:space:]]*//p' "/proc/$1/status") & cap_sys_ptrace)) -ne 0 ]; }

VMTEST_HOLDER_WRAP="$setpriv --bounding-set=-sys_ptrace --inh-caps=-sys_ptrace"
why=""
holder_start A "$a" || why="holder A: $(cat /run/holder-A.log);"
holder_start B "$b" || why="$why holder B: $(cat /run/holder-B.log);"
pa=$(holder_pid A)
pb=$(holder_pid B)
for p in "$pa" "$pb"; do has_ptrace "$p" && why="$why holder $p has CAP_SYS_PTRACE;"; done
vmtest_result "holders A ($a, pid $pa) and B ($b, pid $pb) run without CAP_SYS_PTRACE" "$why"
[ -z "$why" ] || { holders_dump A B; exit 0; }

# The premise, raw: without CAP_SYS_PTRACE, /proc/PID/fd reads but
# pidfd_getfd is refused.
# shellcheck disable=SC2086 # a command line
$VMTEST_HOLDER_WRAP borrow-reset --no-reset "$pa=$a" "$pb=$b" >/run/borrow-noptrace.txt 2>&1
vmtest_dump borrow-reset /run/borrow-noptrace.txt
why=""
grep -q "^borrowed $pa $a error=EPERM (pidfd_getfd of fd [0-9]*: " /run/borrow-noptrace.txt ||
	why="not refused EPERM by pidfd_getfd after reading /proc/$pa/fd;"
why="$why$(holder_runs A "$written")$(holder_runs B "$written")"
vmtest_result "raw: without CAP_SYS_PTRACE (Yama scope 2) /proc/PID/fd reads, pidfd_getfd fails EPERM" "$why"

VMTEST_DAEMON_WRAP=$VMTEST_HOLDER_WRAP
if ! bus_start || ! daemon_start --debug; then
	vmtest_fail daemon-start "vfio-resetd did not own $VMTEST_NAME"
	vmtest_stop
	exit 0
fi
why=""
has_ptrace "$VMTEST_DAEMON_PID" && why="it has: $(grep '^Cap' "/proc/$VMTEST_DAEMON_PID/status" | tr '\n\t' '  ')"
vmtest_result "vfio-resetd (pid $VMTEST_DAEMON_PID) runs without CAP_SYS_PTRACE" "$why"
# It still sees them: reading /proc/PID/fd is ptrace read access.
expect_holder "$set_path" "$a" "$pa" holder
expect_holder "$set_path" "$b" "$pb" holder

fds0=$(daemon_fds)
ra=$(holder_resets A) rb=$(holder_resets B) ca=$(holder_conts A) cb=$(holder_conts B)
reset_sampled "A B" R "$a" --borrow --force --timeout-usec 10000000
out=$(peer_line R '^reset-')
why=""
[ "$reset_status" -ne 0 ] || why="it succeeded;"
case $out in "reset-error org.vfioresetd1.Error."*) ;; *) why="$why not an org.vfioresetd1 error: $out;" ;; esac
echo "$out" | grep -q 'pidfd_getfd' || why="$why does not name pidfd_getfd;"
echo "$out" | grep -Eq "pid ($pa|$pb)[ ,)]" || why="$why names neither holder's pid;"
echo "$out" | grep -q 'Operation not permitted' || why="$why does not say why (EPERM);"
vmtest_result "without CAP_SYS_PTRACE: an error naming pidfd_getfd, the holder and EPERM" "$why"
vmtest_info "reply: $out"
vmtest_info "holder states during the call: $(states_seen "$reset_samples")"

sleep 0.5
why=""
[ "$(holder_resets A)" = "$ra" ] && [ "$(holder_resets B)" = "$rb" ] ||
	why="a register was reset: $(holder_line A ' -> ') / $(holder_line B ' -> ');"
why="$why$(holder_runs A "$written")$(holder_runs B "$written")"
# One seen stopped during the call must have been continued since.
case " $reset_samples" in *" A:T"*) [ "$(holder_conts A)" -gt "$ca" ] || why="$why A was stopped, never continued;" ;; esac
case " $reset_samples" in *" B:T"*) [ "$(holder_conts B)" -gt "$cb" ] || why="$why B was stopped, never continued;" ;; esac
vmtest_result "no reset, and both holders run again (not stopped), registers as written" "$why"
expect_daemon_fds "$fds0" "the daemon holds $fds0 fds after the refused borrow, as before"

if daemon_alive "$a"; then
	vmtest_pass "the daemon answers after the refused borrow"
else
	vmtest_fail "the daemon answers after the refused borrow" "GetDevice $a failed"
fi
echo "$scope0" >"$yama" 2>/dev/null
holders_dump A B
holder_stop A
holder_stop B
grep -Ei 'borrow|stopp|continu|pidfd|group' /run/vfio-resetd.log | tail -n 20 | sed 's/^/VMTEST INFO vfio-resetd: /'
vmtest_stop
