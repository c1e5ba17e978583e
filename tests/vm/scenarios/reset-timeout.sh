#!/bin/sh
# Reset scenario (b), in the guest: a peer that never acknowledges a pause.
# The daemon manages the igb pair 04:00.0/04:00.1. Peer A takes 04:00.0 and
# acks; peer S takes 04:00.1, never acks, and keeps reading its BAR0 register
# from a second thread the whole time (--busy).
# 1. ResetDevice with a 2 s quiesce deadline fails QuiesceTimeout, naming S
#    (unique name and pid) and not A; no kernel reset happens (both registers
#    still hold what the peers wrote); both get Resume "quiesce-timeout".
# 2. The same with Force: S gets Pause "force" at the deadline, the kernel
#    reset goes through (both registers back at 0), and S, which never
#    stopped touching its BAR, reads and writes it again after Resume; S, the
#    daemon and the guest all live on.
set -u
# shellcheck source=/dev/null
. /usr/lib/vmtest.sh

a=0000:04:00.0
s=0000:04:00.1
written=0x5a5a5a00
set_path=/org/vfioresetd1/devset/bus_0000_04

need_programs vfio-resetd busctl bar-peer || exit 0
managed_daemon_start "$a" "$s" || exit 0
why=""
wait_for 30 managed || why="$set_path is not Managed;"
peer_start A --take "$a" --ack || why="$why peer A: $(cat /run/peer-A.log);"
peer_start S --take "$s" --silent --busy 5 || why="$why peer S: $(cat /run/peer-S.log);"
vmtest_result "peers A (acks) and S (silent, busy on its BAR) took $a and $s" "$why"
if [ -n "$why" ]; then
	vmtest_stop
	exit 0
fi
s_name=$(peer_unique S)
s_pid=$(peer_pid S)
a_name=$(peer_unique A)
vmtest_info "peer A is $a_name (pid $(peer_pid A)), silent peer S is $s_name (pid $s_pid)"

# 1. Without Force: QuiesceTimeout naming S.
reset_request R1 "$a" --timeout-usec 2000000
rc=$?
out=$(peer_line R1 '^reset-')
id1=$(sed -n 's/^pause \([0-9]*\) pause .*/\1/p' /run/peer-S.log | tail -n 1)
[ -n "$id1" ] || id1=none
why=""
[ "$rc" -ne 0 ] || why="$why it succeeded;"
case $out in
"reset-error org.vfioresetd1.Error.QuiesceTimeout "*) ;;
*) why="$why not QuiesceTimeout: $out;" ;;
esac
echo "$out" | grep -q "$s_name (pid $s_pid, bar-peer)" || why="$why does not name '$s_name (pid $s_pid, bar-peer)';"
echo "$out" | grep -q "${a_name}[ ,)]" && why="$why names peer A $a_name, which acked;"
wall=$(echo "$out" | sed -n 's/.*wall_usec=\([0-9]*\)$/\1/p')
if [ -z "$wall" ] || [ "$wall" -lt 2000000 ] || [ "$wall" -gt 8000000 ]; then
	why="$why answered after ${wall:-?} us, not at the 2 s deadline;"
fi
vmtest_result "without Force: QuiesceTimeout names $s_name (pid $s_pid) after 2 s" "$why"
vmtest_info "reply: $out"

wait_for 10 peer_has S "^resume $id1 " && wait_for 10 peer_has A "^resume $id1 "
why=""
for p in A:$a S:$s; do
	n=${p%%:*} addr=${p#*:}
	peer_has "$n" "^resume $id1 quiesce-timeout\$" || why="$why $n: no 'resume $id1 quiesce-timeout';"
	peer_has "$n" "^value $addr reg=0x3800 mmap=$written pread=$written reset=no\$" ||
		why="$why $n: TDBAL changed although no reset ran: $(peer_line "$n" '^value ');"
done
peer_has A "^acked $id1\$" || why="$why A did not ack;"
peer_has S "^acked " && why="$why S acked although --silent;"
daemon_has "Reset $id1 of bus_0000_04: VFIO_DEVICE_PCI_HOT_RESET took" && why="$why the kernel reset ran;"
daemon_has "Reset $id1 of bus_0000_04: quiesce-timeout after" || why="$why no 'quiesce-timeout after' in the daemon log;"
[ "$(prop "$set_path" org.vfioresetd1.DevSet ResetCount)" = 0 ] || why="$why ResetCount is not 0;"
[ "$(prop "$set_path" org.vfioresetd1.DevSet LastResult)" = quiesce-timeout ] ||
	why="$why LastResult is $(prop "$set_path" org.vfioresetd1.DevSet LastResult);"
vmtest_result "abandoned reset $id1: no kernel reset, registers intact, both resumed quiesce-timeout" "$why"
busy1=$(peer_line S "^busy $s " | sed 's/.*reads=\([0-9]*\).*/\1/')

# 2. With Force: the reset goes through past S.
reset_request R2 "$a" --timeout-usec 2000000 --force
rc=$?
out=$(peer_line R2 '^reset-')
id2=$(sed -n 's/^pause \([0-9]*\) pause .*/\1/p' /run/peer-S.log | tail -n 1)
[ -n "$id2" ] || id2=none
why=""
[ "$rc" -eq 0 ] || why="$why failed: $out;"
case $out in "reset-reply $set_path done "*) ;; *) why="$why reply: $out;" ;; esac
peer_has S "^pause $id2 force" || why="$why S got no Pause 'force';"
peer_has A "^pause $id2 force" && why="$why A, which acked, got Pause 'force';"
daemon_has "Reset $id2 of bus_0000_04: forcing past silent peers $s_name \(pid $s_pid, bar-peer\)" ||
	why="$why no 'forcing past silent peers $s_name' in the daemon log;"
daemon_has "Reset $id2 of bus_0000_04: VFIO_DEVICE_PCI_HOT_RESET took" || why="$why the kernel reset did not run;"
vmtest_result "with Force: reset $id2 done past the silent peer" "$why"
vmtest_info "reply: $out"

wait_for 10 peer_has S "^rewrote .*" && wait_for 10 sh -c "[ \$(grep -c '^rewrote ' /run/peer-S.log) -ge 2 ]"
why=""
for p in A:$a S:$s; do
	n=${p%%:*} addr=${p#*:}
	peer_has "$n" "^resume $id2 done\$" || why="$why $n: no 'resume $id2 done';"
	[ "$(peer_count "$n" "^value $addr reg=0x3800 mmap=0x00000000 pread=0x00000000 reset=yes\$")" -eq 1 ] ||
		why="$why $n: TDBAL not reset: $(peer_line "$n" '^value ');"
	[ "$(peer_count "$n" "^rewrote $addr reg=0x3800 value=$written readback=$written\$")" -ge 2 ] ||
		why="$why $n: cannot write TDBAL after the forced reset;"
done
busy2=$(peer_line S "^busy $s " | sed 's/.*reads=\([0-9]*\).*/\1/')
[ -n "$busy1" ] && [ -n "$busy2" ] && [ "$busy2" -gt "$busy1" ] ||
	why="$why S's busy thread did not go on reading its BAR (reads $busy1 then $busy2);"
vmtest_result "after the forced reset both registers read 0 and the peers write them again" "$why"
vmtest_info "S read its BAR0 register $busy1 times before the forced reset and $busy2 times by its Resume"

# The silent peer touched its BAR throughout: nothing may have died.
sleep 1
why=""
kill -0 "$s_pid" 2>/dev/null || why="$why peer S died;"
kill -0 "$(peer_pid A)" 2>/dev/null || why="$why peer A died;"
daemon_alive "$a" || why="$why the daemon does not answer;"
oops='BUG:|Oops|general protection|segfault|Call Trace|hung_task'
vmtest_dmesg | grep -Eq "$oops" && why="$why dmesg: $(vmtest_dmesg | grep -E "$oops" | head -n 3);"
vmtest_result "peer S, peer A, the daemon and the kernel survive the forced reset" "$why"

peer_stop A
peer_stop S
daemon_show_resets
vmtest_stop
