#!/bin/sh
# cdev-reset, in the guest: the daemon owns the two-group igb set
# 04:00.0/04:00.1 (bus_0000_04, root port with hotplug=off) through the cdev
# model: one iommufd context (/dev/iommu) for the set, both cdevs
# (/dev/vfio/devices/vfioN) bound to it, no group opened. Two bar-peer
# processes take one function each (each gets the context as its iommu fd and
# an IOAS of its own, IommufdIoasId), map BAR0 and write TDBAL (reset value
# 0). ResetDevice: both pause and ack, the daemon checks the hot-reset info
# (DEV_ID_OWNED) and resets with an empty group list, both resume, read TDBAL
# back as 0 through the same mapping and fd, and write it again. Then the
# daemon's view of a set it does not own, held through cdevs (the igb slot
# pair 03:00.x): its members are what the kernel's hot-reset info through a
# cdev lists, Holders and HolderCdevs name the two holders, and explain says
# why borrowing cannot join them.
# vmtest-config: IOMMUFD VFIO_DEVICE_CDEV
set -u
# shellcheck source=/dev/null
. /usr/lib/vmtest.sh

igb_bus_set
need_programs vfio-resetd vfio-resetctl busctl bar-peer hot-reset-info || exit 0
field() { sed -n "s/.* $1=\([^ ]*\).*/\1/p"; }

# 0. The kernel's own answer for the slot pair 03:00.x before anyone holds
# it: bound to one iommufd here, its set as the cdev's hot-reset info lists it.
hot-reset-info --cdev 0000:03:00.0 0000:03:00.1 >/run/cdev-info.txt 2>&1
vmtest_dump cdev-info /run/cdev-info.txt
kernel_set03=$(grep '^info 0000:03:00.0 bound=2 ' /run/cdev-info.txt | field set | tr ',' '\n' | cut -d: -f1-3 |
	sort | tr '\n' ' ')

# The default model: auto picks cdev on this kernel.
VMTEST_OWNERSHIP=auto managed_daemon_start "$a" "$b" || exit 0
if ! wait_for 30 managed; then
	vmtest_fail managed "$set_path is not Managed: $(prop "$set_path" org.vfioresetd1.DevSet Managed 2>&1)"
	vmtest_stop
	exit 0
fi

# 1. Owned through cdev: Ownership, dev ids, the binds in the log, no group opened.
why=""
for d in "$a" "$b"; do
	o=$(prop "$(device_path "$d")" org.vfioresetd1.Device Ownership)
	[ "$o" = cdev ] || why="$why $d is owned by model '$o', not cdev;"
	daemon_has "Bound $d \(/dev/vfio/devices/vfio[0-9]+\) to the iommufd context of bus_0000_04" ||
		why="$why no 'Bound $d' in the daemon log;"
	daemon_has "Opened IOMMU group $(pci_group "$d") " && why="$why the daemon opened group $(pci_group "$d");"
done
devid_a=$(prop "$(device_path "$a")" org.vfioresetd1.Device IommufdDevId)
devid_b=$(prop "$(device_path "$b")" org.vfioresetd1.Device IommufdDevId)
[ "${devid_a:-0}" -gt 0 ] && [ "${devid_b:-0}" -gt 0 ] && [ "$devid_a" != "$devid_b" ] ||
	why="$why dev ids '$devid_a' and '$devid_b';"
daemon_has "Opened /dev/iommu for dev_set bus_0000_04" || why="$why no 'Opened /dev/iommu' in the daemon log;"
vmtest_result "the daemon owns $a and $b through one iommufd context (dev ids $devid_a, $devid_b)" "$why"

# 2. Two peers, one function each, a register written through BAR0; an IOAS
# each, a buffer mapped into it (IOMMU_IOAS_MAP on the iommu fd). B also tries
# A's IOAS through the same context fd: the isolation the docs call weaker.
why=""
peer_start A --take "$a" --ack || why="peer A: $(cat /run/peer-A.log);"
ioas_a=$(prop "$(device_path "$a")" org.vfioresetd1.Device IommufdIoasId)
peer_start B --take "$b" --ack-after 500 --map-into "${ioas_a:-0}" || why="$why peer B: $(cat /run/peer-B.log);"
for p in A:$a B:$b; do
	peer_has "${p%%:*}" "^wrote ${p#*:} reg=0x3800 value=$written readback=$written\$" ||
		why="$why peer ${p%%:*} could not write TDBAL of ${p#*:}: $(peer_line "${p%%:*}" 'wrote|error');"
done
vmtest_result "two peers took $a and $b through their cdevs and wrote TDBAL=$written through BAR0" "$why"
if [ -n "$why" ]; then
	vmtest_stop
	exit 0
fi
ioas_b=$(prop "$(device_path "$b")" org.vfioresetd1.Device IommufdIoasId)
why=""
[ "${ioas_a:-0}" -gt 0 ] && [ "${ioas_b:-0}" -gt 0 ] && [ "$ioas_a" != "$ioas_b" ] ||
	why="IommufdIoasId '$ioas_a' and '$ioas_b': not two IOAS;"
peer_has A "^ioas $a id=$ioas_a map=ok " || why="$why A could not map into its IOAS: $(peer_line A '^ioas');"
peer_has B "^ioas $b id=$ioas_b map=ok " || why="$why B could not map into its IOAS: $(peer_line B '^ioas');"
vmtest_result "each peer has an IOAS of its own and maps DMA into it ($ioas_a, $ioas_b)" "$why"
# Measured, not asserted either way: what the shared context lets B do to A's IOAS.
vmtest_info "isolation: peer B mapping into peer A's IOAS $ioas_a through the set's iommufd: $(peer_line B '^ioas-other')"

# 3. ResetDevice: the handshake, the empty group list, the registers back at 0.
vmtest_info "busctl call ResetDevice $a (no options)"
busctl --system --timeout=120 call "$VMTEST_NAME" /org/vfioresetd1 org.vfioresetd1.Manager \
	ResetDevice 'sa{sv}' "$a" 0 >/run/reset1.out 2>&1
rc=$?
vmtest_dump "ResetDevice reply" /run/reset1.out
if [ "$rc" -eq 0 ] && grep -q "^ost \"$set_path\" \"done\" " /run/reset1.out; then
	vmtest_pass "ResetDevice $a answered done"
else
	vmtest_fail "ResetDevice $a answered done" "status $rc: $(cat /run/reset1.out)"
fi
id=$(sed -n 's/^pause \([0-9]*\) pause .*/\1/p' /run/peer-A.log | tail -n 1)
[ -n "$id" ] || id=none
wait_for 10 peer_has A "^rewrote " && wait_for 10 peer_has B "^rewrote "
check_peer A "$a" "$id"
check_peer B "$b" "$id"
why=""
daemon_has "Reset $id of bus_0000_04: hot reset with an empty group list \(cdev\)" ||
	why="$why no 'hot reset with an empty group list';"
kernel=$(daemon_line "Reset $id of bus_0000_04: VFIO_DEVICE_PCI_HOT_RESET took" | sed 's/.* took \([0-9.]*\) ms.*/\1/')
[ -n "$kernel" ] || why="$why no 'VFIO_DEVICE_PCI_HOT_RESET took';"
[ "$(prop "$(device_path "$a")" org.vfioresetd1.Device IommufdIoasId)" = "$ioas_a" ] ||
	why="$why $a left its IOAS in the reset;"
vmtest_result "daemon: the empty-list hot reset of the iommufd context (reset $id, ${kernel:-?} ms)" "$why"

# 4. A set the daemon does not own, held through cdevs by two programs that
# never heard of it (each opens its own cdev file): the daemon's set is the
# kernel's, the holders are named as cdev holders, explain says what works.
why=""
daemon_set03=$(prop "$(busctl --system call "$VMTEST_NAME" /org/vfioresetd1 org.vfioresetd1.Manager GetDevSet s \
	0000:03:00.0 | cut -d'"' -f2)" org.vfioresetd1.DevSet Devices | while read -r p; do path_address "$p"; done |
	sort | tr '\n' ' ')
[ -n "$kernel_set03" ] && [ "$daemon_set03" = "$kernel_set03" ] ||
	why="the daemon's set of 0000:03:00.0 is '$daemon_set03', the kernel's (hot-reset info via cdev) '$kernel_set03'"
vmtest_result "the slot pair's dev_set is the kernel's ($kernel_set03)" "$why"
c0=$(basename /sys/bus/pci/devices/0000:03:00.0/vfio-dev/vfio*)
c1=$(basename /sys/bus/pci/devices/0000:03:00.1/vfio-dev/vfio*)
sh -c "exec sleep 600 3</dev/vfio/devices/$c0" &
h0=$!
sh -c "exec sleep 600 3</dev/vfio/devices/$c1" &
h1=$!
sleep 1
set03=$(busctl --system call "$VMTEST_NAME" /org/vfioresetd1 org.vfioresetd1.Manager GetDevSet s 0000:03:00.0 |
	cut -d'"' -f2)
why=""
holder_listed "$set03" 0000:03:00.0 "$h0" sleep || why="$why Holders lacks pid $h0: $(dev_set_holders "$set03");"
holder_listed "$set03" 0000:03:00.1 "$h1" sleep || why="$why Holders lacks pid $h1;"
cdevs=$(prop "$set03" org.vfioresetd1.DevSet HolderCdevs | paste - - | sort | tr '\n' ' ')
[ "$cdevs" = "$(printf '0000:03:00.0\t%s\n0000:03:00.1\t%s\n' "$h0" "$h1" | sort | tr '\n' ' ')" ] ||
	why="$why HolderCdevs '$cdevs';"
vmtest_result "Holders and HolderCdevs name the two cdev holders of $set03" "$why"
vfio-resetctl explain 0000:03:00.0 >/run/explain.txt 2>&1
vmtest_dump explain /run/explain.txt
why=""
grep -q "0000:03:00.0 is held open through its cdev" /run/explain.txt || why="$why no cdev holder line;"
grep -q "borrowing cannot help" /run/explain.txt || why="$why does not say borrowing cannot help;"
grep -q "release their members" /run/explain.txt || why="$why does not say what works;"
vmtest_result "explain: two cdev holders cannot be joined by borrowing, and what works" "$why"
kill "$h0" "$h1" 2>/dev/null

peer_stop A
peer_stop B
daemon_show_resets
vmtest_stop
