#!/bin/sh
# Reset scenario (a), in the guest: the full handshake on a real kernel.
# The daemon manages the igb pair 04:00.0/04:00.1 (a bus set spanning IOMMU
# groups 11 and 12, root port with hotplug=off). Two bar-peer processes take
# one function each, map BAR0 and write TDBAL (reset value 0). A ResetDevice
# through busctl: both get Pause naming their own function, both ack (one a
# second late, and the reset must wait for it), the kernel's hot reset runs,
# both get Resume "done", read TDBAL back as 0 through the same mapping and the
# same device fd, and write it again. A second reset (through bar-peer's
# requester) goes the same way. Durations: ResetDevice's duration_usec, the
# ResetFinished broadcast and the kernel's own time, all in the log.
set -u
# shellcheck source=/dev/null
. /usr/lib/vmtest.sh

a=0000:04:00.0
b=0000:04:00.1
written=0x5a5a5a00
set_path=/org/vfioresetd1/devset/bus_0000_04

need_programs vfio-resetd busctl bar-peer || exit 0
managed_daemon_start "$a" "$b" || exit 0
if ! wait_for 30 managed; then
	vmtest_fail managed "$set_path is not Managed: $(prop "$set_path" org.vfioresetd1.DevSet Managed 2>&1)"
	vmtest_stop
	exit 0
fi

# 1. Two peers, one function each, a register written through BAR0.
why=""
peer_start A --take "$a" --ack || why="peer A: $(cat /run/peer-A.log);"
# B acks a second late: the kernel reset must wait for it.
peer_start B --take "$b" --ack-after 1000 || why="$why peer B: $(cat /run/peer-B.log);"
for p in A:$a B:$b; do
	peer_has "${p%%:*}" "^wrote ${p#*:} reg=0x3800 value=$written readback=$written\$" ||
		why="$why peer ${p%%:*} could not write TDBAL of ${p#*:}: $(peer_line "${p%%:*}" 'wrote|error');"
done
vmtest_result "two peers took $a and $b and wrote TDBAL=$written through BAR0" "$why"
if [ -n "$why" ]; then
	vmtest_stop
	exit 0
fi
peers=$(prop "$set_path" org.vfioresetd1.DevSet Peers | sort | tr '\n' ' ')
want=$(printf '%s\n%s\n' "$(peer_unique A)" "$(peer_unique B)" | sort | tr '\n' ' ')
if [ "$peers" = "$want" ]; then
	vmtest_pass "DevSet.Peers lists both peers"
else
	vmtest_fail "DevSet.Peers lists both peers" "Peers '$peers', expected '$want'"
fi

# 2. ResetDevice through busctl.
vmtest_info "busctl call ResetDevice $a (no options)"
busctl --system --timeout=120 call "$VMTEST_NAME" /org/vfioresetd1 org.vfioresetd1.Manager \
	ResetDevice 'sa{sv}' "$a" 0 >/run/reset1.out 2>&1
rc=$?
vmtest_dump "ResetDevice reply" /run/reset1.out
reply=$(cat /run/reset1.out)
duration=$(echo "$reply" | sed -n 's/^ost "[^"]*" "done" \([0-9]*\)$/\1/p')
if [ "$rc" -eq 0 ] && [ -n "$duration" ] && echo "$reply" | grep -q "^ost \"$set_path\" \"done\" "; then
	vmtest_pass "ResetDevice $a answered done"
else
	vmtest_fail "ResetDevice $a answered done" "status $rc: $reply"
fi
id=$(sed -n 's/^pause \([0-9]*\) pause .*/\1/p' /run/peer-A.log | tail -n 1)
[ -n "$id" ] || id=none
wait_for 10 peer_has A "^rewrote " && wait_for 10 peer_has B "^rewrote "
check_peer A "$a" "$id"
check_peer B "$b" "$id"

# The daemon's own account: it waited for both, ran the hot reset, came back.
why=""
daemon_has "Reset $id of bus_0000_04: quiescing 2 peers" || why="$why no 'quiescing 2 peers';"
daemon_has "Reset $id of bus_0000_04: .* paused \(2 of 2\)" || why="$why no '(2 of 2)' ack;"
kernel=$(daemon_line "Reset $id of bus_0000_04: VFIO_DEVICE_PCI_HOT_RESET took" | sed 's/.* took \([0-9.]*\) ms.*/\1/')
[ -n "$kernel" ] || why="$why no 'VFIO_DEVICE_PCI_HOT_RESET took';"
daemon_has "Reset $id of bus_0000_04: done after" || why="$why no 'done after';"
vmtest_result "daemon log: quiesced 2 peers, hot reset, done (reset $id)" "$why"

finished=$(peer_line A "^finished $id $set_path done ")
fin_us=$(echo "$finished" | sed -n 's/.*duration_usec=\([0-9]*\)$/\1/p')
if [ -n "$fin_us" ] && [ "$fin_us" = "$duration" ]; then
	vmtest_pass "ResetFinished($id, done) carries ResetDevice's duration"
else
	vmtest_fail "ResetFinished($id, done) carries ResetDevice's duration" "reply '$duration', signal '$finished'"
fi
vmtest_info "durations: ResetDevice duration_usec=${duration:-?} ResetFinished duration_usec=${fin_us:-?}" \
	"kernel hot reset ${kernel:-?} ms (guest clock); peer B acked 1000 ms late"
count=$(prop "$set_path" org.vfioresetd1.DevSet ResetCount)
last=$(prop "$set_path" org.vfioresetd1.DevSet LastResult)
state=$(prop "$set_path" org.vfioresetd1.DevSet State)
if [ "$count" = 1 ] && [ "$last" = "done" ] && [ "$state" = idle ]; then
	vmtest_pass "DevSet ResetCount=1 LastResult=done State=idle"
else
	vmtest_fail "DevSet after the reset" "ResetCount=$count LastResult=$last State=$state"
fi

# 3. Again, with both peers now acking at once, through the requester: the
# peers' rewritten registers go back to 0 a second time.
reset_request R "$b" --timeout-usec 10000000
rc=$?
id2=$(sed -n 's/^pause \([0-9]*\) pause .*/\1/p' /run/peer-B.log | tail -n 1)
wait_for 10 sh -c "[ \$(grep -c '^rewrote ' /run/peer-A.log) -ge 2 ] && [ \$(grep -c '^rewrote ' /run/peer-B.log) -ge 2 ]"
why=""
[ "$rc" -eq 0 ] || why="$why $(cat /run/peer-R.log);"
[ "$id2" != "$id" ] || why="$why no second pause;"
for p in A:$a B:$b; do
	[ "$(peer_count "${p%%:*}" "^value ${p#*:} reg=0x3800 mmap=0x00000000 pread=0x00000000 reset=yes\$")" -eq 2 ] ||
		why="$why peer ${p%%:*}: TDBAL not reset twice;"
	peer_has "${p%%:*}" "^resume $id2 done\$" || why="$why peer ${p%%:*}: no 'resume $id2 done';"
done
vmtest_result "a second reset (ResetDevice $b) resets both registers again" "$why"
vmtest_info "second reset: $(peer_line R '^reset-')"

if daemon_alive "$a"; then
	vmtest_pass "daemon answers after the resets"
else
	vmtest_fail "daemon answers after the resets" "GetDevice $a failed"
fi
peer_stop A
peer_stop B
daemon_show_resets
vmtest_stop
