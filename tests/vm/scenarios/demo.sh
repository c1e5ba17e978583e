#!/bin/sh
# The demo, in the guest: every dev_set of a real kernel, who holds what, and
# why the igb set cannot be reset while a stray process holds one function;
# then, the stray process gone, vfio-resetd owning that igb set and resetting
# it while two programs use it: who was asked to pause, who acked when, the
# kernel reset, and a device register before and after.
# Lines for the person watching start with "DEMO " (run.sh --demo shows them).
# vmtest-native: 0000:03:00.1
set -u
# shellcheck source=/dev/null
. /usr/lib/vmtest.sh

need_programs vfio-resetd vfio-resetctl busctl bar-peer || exit 0
if ! bus_start || ! daemon_start; then
	vmtest_fail demo "vfio-resetd did not start"
	vmtest_stop
	exit 0
fi

say ""
say "== A real Linux $(uname -r) kernel under QEMU: an emulated IOMMU and NICs in shared"
say "   reset domains, bound to vfio-pci (03:00.1 is left on its igb driver)."
say ""
say "== Every vfio dev_set vfio-resetd sees, and who holds it:"
run vfio-resetctl list

held=0000:04:00.0
group=$(pci_group "$held")
sleep 1000 3<"/dev/vfio/$group" &
stray=$!
wait_for 10 sh -c "[ -e /proc/$stray/fd/3 ]"
say ""
say "== A stray process (pid $stray, 'sleep') opens /dev/vfio/$group, the group of igb $held,"
say "   as a VM using that function would:"
run vfio-resetctl list
say ""
say "== Why can't the igb pair on bus 04 be reset now?"
run vfio-resetctl explain 0000:04:00.1
say ""
say "== The kernel agrees: another process cannot even open the held group."
run hot-reset-info --time-hot-reset 0000:04:00.1 -n 1
say ""
say "== And the igb pair in slot 3, whose second function is on igb, not vfio-pci:"
run vfio-resetctl explain 03:00.0
say ""
say "== The same over D-Bus:"
run busctl --system get-property org.vfioresetd1 /org/vfioresetd1/devset/bus_0000_04 \
	org.vfioresetd1.DevSet Kind Devices Holders State

kill "$stray"
wait "$stray" 2>/dev/null
say ""
say "== The stray process is gone:"
run vfio-resetctl explain 0000:04:00.1
vmtest_pass demo

# Part 2: the same machine, the daemon now owning the igb pair and resetting
# it with its users' consent.
a=0000:04:00.0
b=0000:04:00.1
set_path=/org/vfioresetd1/devset/bus_0000_04
conf=/run/vfio-resetd.conf
manage_config "$conf" 5 "$a" "$b"
say ""
say "== Part 2: vfio-resetd owns the igb pair and resets it with its users' consent."
say "   It restarts with a config file that tells it to manage both functions:"
run cat "$conf"
daemon_stop
if ! daemon_start --debug --config "$conf"; then
	vmtest_fail demo-reset "vfio-resetd did not start with $conf"
	vmtest_stop
	exit 0
fi
wait_for 30 managed || vmtest_fail demo-reset "$set_path is not Managed"
say "\$ busctl get-property ... $set_path DevSet Managed State"
busctl --system get-property "$VMTEST_NAME" "$set_path" org.vfioresetd1.DevSet Managed State 2>&1 | sed 's/^/DEMO /'
say ""
say "== Two programs (think: two VMs) each take one function over D-Bus (TakeDevice hands"
say "   them a device fd and a container fd), map its BAR0 and write 0x5a5a5a00 into TDBAL"
say "   (BAR0 + 0x3800, a register a reset clears to 0). vm-b needs half a second to quiesce"
say "   when asked. Their own lines follow, stamped by the host as they happen:"
# shellcheck disable=SC2034 # peer_start reads it
VMTEST_PEER_PREFIX="DEMO    "
why=""
peer_start vm-a --take "$a" --ack || why="vm-a: $(cat /run/peer-vm-a.log);"
peer_start vm-b --take "$b" --ack-after 500 || why="$why vm-b: $(cat /run/peer-vm-b.log);"
if [ -n "$why" ]; then
	vmtest_fail demo-reset "$why"
	vmtest_stop
	exit 0
fi
say ""
say "== Reset the igb pair. vfio-resetd asks both programs to pause, waits for both, resets"
say "   the bus in the kernel, and tells them to resume:"
if vfio-resetctl --help 2>&1 | grep -q '^ *reset ADDRESS'; then
	run vfio-resetctl reset "$a"
else
	run busctl --system --timeout=60 call "$VMTEST_NAME" /org/vfioresetd1 org.vfioresetd1.Manager \
		ResetDevice 'sa{sv}' "$a" 0
fi
wait_for 10 peer_has vm-a '^rewrote ' && wait_for 10 peer_has vm-b '^rewrote '
wait_for 5 peer_has vm-a '^finished '

# The story, from the peers' own clocks (the guest's) and the daemon's log.
id=$(sed -n 's/^pause \([0-9]*\) pause .*/\1/p' /run/peer-vm-a.log | head -n 1)
t_pa=$(peer_time vm-a "^pause $id pause")
t_pb=$(peer_time vm-b "^pause $id pause")
t_aa=$(peer_time vm-a "^acked $id")
t_ab=$(peer_time vm-b "^acked $id")
t_ra=$(peer_time vm-a "^resume $id")
t_rb=$(peer_time vm-b "^resume $id")
kernel=$(daemon_line "Reset $id of bus_0000_04: VFIO_DEVICE_[A-Z_]* took" | sed 's/.*: \(VFIO_[A-Z_]*\) took \([0-9.]*\) ms.*/\1 took \2 ms/')
total=$(peer_line vm-a "^finished $id " | sed -n 's/.* \([a-z-]*\) duration_usec=\([0-9]*\)$/\1 after \2 us/p')
# val PEER EVENT ADDR FIELD: FIELD's value in PEER's last EVENT line for ADDR.
val() { peer_line "$1" "^$2 $3 " | sed -n "s/.* $4=\(0x[0-9a-f]*\).*/\1/p"; }
say ""
say "== What happened, in order (times on the guest's clock, from the first Pause):"
t0=$t_pa
[ -n "$t_pb" ] && [ -n "$t0" ] && awk -v a="$t_pb" -v b="$t0" 'BEGIN { exit !(a < b) }' && t0=$t_pb
say "   1. vfio-resetd asked both programs to pause (reset $id):"
say "        vm-a, bus name $(peer_unique vm-a), pid $(peer_pid vm-a), holding $a: at +$(ms_between "$t0" "$t_pa") ms"
say "        vm-b, bus name $(peer_unique vm-b), pid $(peer_pid vm-b), holding $b: at +$(ms_between "$t0" "$t_pb") ms"
say "   2. vm-a acknowledged (PauseComplete) at +$(ms_between "$t0" "$t_aa") ms;"
say "      vm-b acknowledged at +$(ms_between "$t0" "$t_ab") ms, and only then did the reset go on."
say "   3. The kernel reset: ${kernel:-not in the log}."
say "   4. Both were told to resume: vm-a at +$(ms_between "$t0" "$t_ra") ms, vm-b at +$(ms_between "$t0" "$t_rb") ms."
say "      The whole reset, request to answer: ${total:-?} (vfio-resetd's ResetFinished)."
say "   5. TDBAL before and after, read through the same mapping:"
for p in vm-a:$a vm-b:$b; do
	say "        ${p#*:}: $(val "${p%%:*}" wrote "${p#*:}" readback) before, $(val "${p%%:*}" value "${p#*:}" mmap) after the reset;" \
		"written again: $(val "${p%%:*}" rewrote "${p#*:}" readback)"
done
say "      Both programs kept their fds and mappings across the reset and went on using them."
say ""
say "== The final state of the set:"
run busctl --system get-property "$VMTEST_NAME" "$set_path" org.vfioresetd1.DevSet State ResetCount LastResult LastResetUSec Peers
say ""
say "== vfio-resetd's own log of the reset:"
grep -E "Reset $id of|dev_set bus_0000_04: " /run/vfio-resetd.log | sed 's/^/DEMO   /'

why=""
for p in vm-a:$a vm-b:$b; do
	n=${p%%:*} addr=${p#*:}
	peer_has "$n" "^acked $id\$" || why="$why $n did not ack;"
	peer_has "$n" "^resume $id done\$" || why="$why $n: no 'resume $id done';"
	peer_has "$n" "^value $addr reg=0x3800 mmap=0x00000000 pread=0x00000000 reset=yes\$" || why="$why $n: TDBAL not reset;"
done
[ -n "$kernel" ] || why="$why no kernel reset in the daemon log;"
vmtest_result demo-reset "$why"
peer_stop vm-a
peer_stop vm-b
vmtest_stop
