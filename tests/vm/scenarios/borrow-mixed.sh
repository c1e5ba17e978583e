#!/bin/sh
# Borrowed reset of a set held half by a peer, half by a stranger, in the
# guest. The daemon manages igb 04:00.0 (config [Manage]) and a protocol peer
# (bar-peer, TakeDevice, acks every pause) takes it; a holder
# (tests/vm/holder.c, no D-Bus) holds 04:00.1, the other function of the
# same bus set (groups 11 and 12).
# 1. Without Borrow: NotOwned naming the holder's pid.
# 2. Borrow and Force: done; the peer got Pause (its register still held what
#    it wrote when it acked), Resume "done" and reads TDBAL 0; the holder was
#    stopped and continued once, saw its TDBAL go to 0 and runs on; the
#    daemon's fd count is back where it was.
set -u
# shellcheck source=/dev/null
. /usr/lib/vmtest.sh

igb_bus_set

need_programs vfio-resetd busctl bar-peer holder || exit 0
managed_daemon_start "$a" || exit 0
why=""
device_managed() { [ "$(prop "$(device_path "$a")" org.vfioresetd1.Device Managed)" = true ]; }
wait_for 30 device_managed || why="$a is not Managed;"
peer_start P --take "$a" --ack || why="$why peer P: $(cat /run/peer-P.log);"
holder_start H "$b" || why="$why holder H: $(cat /run/holder-H.log);"
vmtest_result "peer P took $a from the daemon, holder H holds $b" "$why"
if [ -n "$why" ]; then
	holders_dump H
	vmtest_stop
	exit 0
fi
ph=$(holder_pid H)
vmtest_info "peer P is $(peer_unique P) (pid $(peer_pid P)), holder H is pid $ph"
expect_holder "$set_path" "$b" "$ph" holder

# 1. Without Borrow.
reset_request R1 "$a" --force
out=$(peer_line R1 '^reset-')
why=""
case $out in "reset-error org.vfioresetd1.Error.NotOwned "*) ;; *) why="not NotOwned: $out;" ;; esac
echo "$out" | grep -q "pid $ph (holder" || why="$why does not name pid $ph;"
echo "$out" | grep -q "pid $(peer_pid P) " && why="$why names the peer, which the daemon gave the device;"
peer_has P '^pause ' && why="$why the peer was paused: $(peer_line P '^pause ');"
vmtest_result "without Borrow: NotOwned naming the holder (pid $ph), not the peer, and no pause" "$why"
vmtest_info "reply: $out"

# 2. Borrow and Force.
fds0=$(daemon_fds)
ch=$(holder_conts H) rh=$(holder_resets H)
reset_sampled H R2 "$a" --borrow --force --timeout-usec 10000000
vmtest_result "Borrow and Force: ResetDevice $a done" "$(reset_done_why R2 "$set_path")"
vmtest_info "reply: $(peer_line R2 '^reset-')"
vmtest_info "holder states during the call: $(states_seen "$reset_samples")"

id=$(sed -n 's/^pause \([0-9]*\) pause .*/\1/p' /run/peer-P.log | tail -n 1)
wait_for 10 peer_has P "^rewrote "
why=""
[ -n "$id" ] || why="no pause;"
peer_has P "^pause $id pause $a\$" || why="$why no 'pause $id pause $a';"
peer_has P "^before-ack $a reg=0x3800 value=$written\$" || why="$why TDBAL was not $written when it acked;"
peer_has P "^acked $id\$" || why="$why did not ack;"
peer_has P "^resume $id done\$" || why="$why no 'resume $id done';"
peer_has P "^value $a reg=0x3800 mmap=0x00000000 pread=0x00000000 reset=yes\$" ||
	why="$why TDBAL not 0 after the reset: $(peer_line P '^value ');"
kill -0 "$(peer_pid P)" 2>/dev/null || why="$why the peer died;"
vmtest_result "peer P was paused, acked, resumed and saw its register reset" "$why"

why="$(holder_saw_reset H "$rh" "$ch")"
sleep 0.3
why="$why$(holder_runs H 0x00000000)$(holder_rewrites H)"
vmtest_result "holder H was stopped and continued, saw its register reset, and runs on" "$why"
expect_daemon_fds "$fds0" "the daemon holds $fds0 fds after the borrowed reset, as before"

why=""
daemon_alive "$a" || why="the daemon does not answer;"
why="$why$(kernel_log_why)"
vmtest_result "the daemon and the kernel survive" "$why"

holders_dump H
holder_stop H
peer_stop P
daemon_show_resets
vmtest_stop
