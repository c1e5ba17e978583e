#!/bin/sh
# Borrowed reset through the daemon, in the guest: ResetDevice on a set held
# by programs that never heard of vfio-resetd. Two holders (tests/vm/holder.c,
# no D-Bus, like QEMU) each hold one function of the igb bus set
# 04:00.0/04:00.1 (groups 11 and 12); the daemon manages nothing.
# 1. Without Borrow: NotOwned naming both holders' pids.
# 2. Borrow without Force: NotOwned saying Force would allow it; neither
#    holder was stopped (states sampled during the call, no SIGCONT seen).
# 3. Borrow and Force: done; both holders saw TDBAL go to 0 and were stopped
#    and continued once, both run (not stopped) after; the daemon holds as
#    many fds after as before (it closed what it borrowed).
# 4. Holder B exits, A still holds 04:00.0: Borrow and Force resets the set
#    (the daemon opens the freed group 12 itself), A sees its register reset
#    and runs on; the daemon's fds are back to their count.
set -u
# shellcheck source=/dev/null
. /usr/lib/vmtest.sh

igb_bus_set

need_programs vfio-resetd busctl bar-peer holder || exit 0

why=""
holder_start A "$a" || why="holder A: $(cat /run/holder-A.log);"
holder_start B "$b" || why="$why holder B: $(cat /run/holder-B.log);"
vmtest_result "holders A ($a) and B ($b) hold their groups and wrote TDBAL=$written" "$why"
[ -z "$why" ] || { holders_dump A B; exit 0; }
pa=$(holder_pid A)
pb=$(holder_pid B)
vmtest_info "holder A is pid $pa, holder B pid $pb"
if ! bus_start || ! daemon_start --debug; then
	vmtest_fail daemon-start "vfio-resetd did not own $VMTEST_NAME"
	vmtest_stop
	exit 0
fi
expect_holder "$set_path" "$a" "$pa" holder
expect_holder "$set_path" "$b" "$pb" holder

# 1. Without Borrow.
reset_request R1 "$a" --force
out=$(peer_line R1 '^reset-')
why=""
case $out in "reset-error org.vfioresetd1.Error.NotOwned "*) ;; *) why="not NotOwned: $out;" ;; esac
for p in "$pa" "$pb"; do
	echo "$out" | grep -q "pid $p (holder" || why="$why does not name pid $p;"
done
vmtest_result "without Borrow: NotOwned naming pids $pa and $pb" "$why"
vmtest_info "reply: $out"

# 2. Borrow without Force: refused, nobody stopped.
ca=$(holder_conts A) cb=$(holder_conts B)
reset_sampled "A B" R2 "$a" --borrow
samples=$reset_samples
# And for half a second after it: a stop may come late.
sleep 0.5 &
samples="$samples $(holders_sample $! A B)"
out=$(peer_line R2 '^reset-')
why=""
[ "$reset_status" -ne 0 ] || why="it succeeded;"
case $out in "reset-error org.vfioresetd1.Error.NotOwned "*) ;; *) why="$why not NotOwned: $out;" ;; esac
echo "$out" | grep -q 'Force' || why="$why the message does not say Force would allow it;"
case $samples in *:T* | *:t*) why="$why a holder was seen stopped: $(states_seen "$samples");" ;; esac
[ "$(holder_conts A)" = "$ca" ] && [ "$(holder_conts B)" = "$cb" ] || why="$why a holder got SIGCONT (it had been stopped);"
why="$why$(holder_runs A)$(holder_runs B)"
vmtest_result "Borrow without Force: NotOwned saying Force would allow it, neither holder stopped" "$why"
vmtest_info "reply: $out"
vmtest_info "holder states during the call and 0.5 s after: $(states_seen "$samples")"

# 3. Borrow and Force.
fds0=$(daemon_fds)
ca=$(holder_conts A) cb=$(holder_conts B) ra=$(holder_resets A) rb=$(holder_resets B)
reset_sampled "A B" R3 "$a" --borrow --force --timeout-usec 10000000
vmtest_result "Borrow and Force: ResetDevice $a done" "$(reset_done_why R3 "$set_path")"
vmtest_info "reply: $(peer_line R3 '^reset-')"
vmtest_info "holder states during the call: $(states_seen "$reset_samples")"

why="$(holder_saw_reset A "$ra" "$ca")$(holder_saw_reset B "$rb" "$cb")"
sleep 0.3
why="$why$(holder_runs A 0x00000000)$(holder_runs B 0x00000000)$(holder_rewrites A)$(holder_rewrites B)"
vmtest_result "both holders saw the reset, were stopped and continued, and run on" "$why"
expect_daemon_fds "$fds0" "the daemon holds $fds0 fds after the borrowed reset, as before"

# 4. Holder B exits; A still holds 04:00.0.
holder_stop B
fds0=$(daemon_fds)
ca=$(holder_conts A) ra=$(holder_resets A)
reset_request R4 "$a" --borrow --force --timeout-usec 10000000
why="$(reset_done_why R4 "$set_path")$(holder_saw_reset A "$ra" "$ca")"
sleep 0.3
why="$why$(holder_runs A 0x00000000)"
vmtest_result "holder B gone: Borrow and Force resets the set, holder A sees it and runs on" "$why"
vmtest_info "reply: $(peer_line R4 '^reset-')"
expect_daemon_fds "$fds0" "the daemon closed the group it opened for the reset ($fds0 fds)"

why=""
daemon_alive "$a" || why="the daemon does not answer;"
kill -0 "$pa" 2>/dev/null || why="$why holder A died;"
why="$why$(kernel_log_why)"
vmtest_result "the daemon, holder A and the kernel survive" "$why"

holders_dump A B
holder_stop A
daemon_show_resets
grep -Ei 'borrow|stopp|continu|pidfd|group' /run/vfio-resetd.log | tail -n 30 | sed 's/^/VMTEST INFO vfio-resetd: /'
vmtest_stop
