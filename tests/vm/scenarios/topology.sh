#!/bin/sh
# Scenario 1 (topology), in the guest: the kernel's hot-reset sets, read with
# VFIO_DEVICE_GET_PCI_HOT_RESET_INFO before the daemon runs, must equal the
# daemon's dev_sets (members, and kind: single, bus or pciehp slot).
set -u
# shellcheck source=/dev/null
. /usr/lib/vmtest.sh

# What run.sh's layout gives (shared VM.md): address, dev_set kind, the
# kernel's set ("single": no hot reset, ENODEV), how many groups the set spans.
expected="
0000:00:02.0 single single 0
0000:01:01.0 bus 0000:01:01.0,0000:01:02.0 1
0000:01:02.0 bus 0000:01:01.0,0000:01:02.0 1
0000:02:00.0 slot 0000:02:00.0,0000:02:00.1 1
0000:02:00.1 slot 0000:02:00.0,0000:02:00.1 1
0000:03:00.0 slot 0000:03:00.0,0000:03:00.1 2
0000:03:00.1 slot 0000:03:00.0,0000:03:00.1 2
0000:04:00.0 bus 0000:04:00.0,0000:04:00.1 2
0000:04:00.1 bus 0000:04:00.0,0000:04:00.1 2
0000:07:00.0 slot 0000:07:00.0,0000:07:00.1 1
0000:07:00.1 slot 0000:07:00.0,0000:07:00.1 1
0000:08:00.0 bus 0000:08:00.0,0000:08:00.1 1
0000:08:00.1 bus 0000:08:00.0,0000:08:00.1 1
"
field() { sed -n "s/.* $1=\([^ ]*\).*/\1/p"; }

# 1. Every device of the layout is on vfio-pci.
why=""
echo "$expected" | while read -r bdf _; do
	[ -n "$bdf" ] || continue
	d=$(pci_driver "$bdf")
	[ "$d" = vfio-pci ] || echo "$bdf is on $d"
done >/run/layout.txt
[ -s /run/layout.txt ] && why="not on vfio-pci: $(tr '\n' ' ' </run/layout.txt)"
vmtest_result layout "$why"

# 2. The kernel's sets, before anything else holds a group.
# shellcheck disable=SC2046 # one address a word
hot-reset-info $(vfio_devices) >/run/kernel-sets.txt 2>&1
vmtest_dump hot-reset-info /run/kernel-sets.txt
echo "$expected" | while read -r bdf kind set ngroups; do
	[ -n "$bdf" ] || continue
	line=$(grep "^$bdf " /run/kernel-sets.txt)
	got_set=$(echo "$line" | field set)
	got_groups=$(echo "$line" | field groups | tr ',' '\n' | grep -c .)
	why=""
	if [ -z "$line" ]; then
		why="no line from hot-reset-info"
	elif [ "$got_set" != "$set" ]; then
		why="set $got_set, expected $set ($line)"
	elif [ "$set" = single ] && ! echo "$line" | grep -q 'errno=ENODEV'; then
		why="expected ENODEV: $line"
	elif [ "$got_groups" -ne "$ngroups" ]; then
		why="$got_groups groups, expected $ngroups ($line)"
	fi
	vmtest_result "kernel-set $bdf ($kind)" "$why"
done

for bdf in 0000:05:00.0 0000:07:00.0 0000:08:00.0; do
	g=$(pci_group "$bdf")
	members=""
	for m in "/sys/kernel/iommu_groups/$g/devices"/*; do members="$members ${m##*/}"; done
	vmtest_info "group $g ($bdf's):$members"
done

# The switch's sets reset: the slot through pciehp, the bus through the
# downstream port's secondary bus reset.
for bdf in 0000:07:00.0 0000:08:00.0; do
	why=""
	out=$(hot-reset-info --time-hot-reset "$bdf" -n 1 2>&1) || why="$out"
	echo "$out" | while IFS= read -r line; do vmtest_info "hot reset: $line"; done
	vmtest_result "kernel-reset $bdf" "$why"
done

# The kind as the kernel decides it (pci_probe_reset_slot): a slot set needs
# the function's slot to belong to a hotplug driver that can reset it, pciehp.
# Two views of that: the slot's own "module" link (/sys/bus/pci/slots/N), and
# pciehp's binding of the hotplug service device of the port above, whose name
# encodes the port type (pcie004 on a root port, pcie204 on a switch
# downstream port). Both must say "slot" for the slot sets and "bus" for the
# others.
link_name() { l=$(readlink "$1" 2>/dev/null) && echo "${l##*/}"; }
pciehp_ports=""
for s in /sys/bus/pci_express/drivers/pciehp/*:*; do
	[ -e "$s" ] || continue
	vmtest_info "pciehp binds ${s##*/}"
	port=$(dirname "$(readlink -f "$s")")
	pciehp_ports="$pciehp_ports ${port##*/}"
done
slot_links=0
for s in /sys/bus/pci/slots/*; do
	vmtest_info "slot ${s##*/}: address $(cat "$s/address"), module $(link_name "$s/module")"
	[ ! -L "$s/module" ] || slot_links=$((slot_links + 1))
done
# A slot's "module" link is made when its hotplug driver registers it, to
# the driver's /sys/module entry if there is one then (fs_add_slot,
# drivers/pci/hotplug/pci_hotplug_core.c). For built-in pciehp, 6.1 has made
# that entry already (param_sysfs_init, a subsys_initcall); 7.3 makes it only
# at late_initcall (param_sysfs_builtin_init, kernel/params.c), after
# pciehp's slots: no slot has the link. Then pciehp's binding alone tells.
[ "$slot_links" -gt 0 ] || vmtest_info "no slot has a module link: the kind is read from pciehp's binding alone"
slot_module() {
	for s in /sys/bus/pci/slots/*; do
		[ "$(cat "$s/address" 2>/dev/null)" = "${1%.*}" ] || continue
		link_name "$s/module"
		return
	done
}
echo "$expected" | while read -r bdf kind _; do
	case $kind in "" | single) continue ;; esac
	port=$(basename "$(dirname "$(readlink -f "/sys/bus/pci/devices/$bdf")")")
	module=$(slot_module "$bdf")
	case " $pciehp_ports " in *" $port "*) bound=pciehp ;; *) bound=none ;; esac
	why=""
	[ "$slot_links" -gt 0 ] || [ -n "$module" ] || [ "$bound" != pciehp ] || module=pciehp
	case $kind:$module:$bound in
	slot:pciehp:pciehp | bus:[!p]*:none | bus::none) ;;
	*) why="slot module '${module}', port $port's hotplug service: $bound" ;;
	esac
	vmtest_result "kernel-kind $bdf ($kind)" "$why"
done

# 3. The daemon's view.
need_programs vfio-resetd busctl || exit 0
if ! bus_start; then
	vmtest_fail daemon-start "dbus-daemon did not come up"
	exit 0
fi
if ! daemon_start; then
	vmtest_fail daemon-start "vfio-resetd did not own $VMTEST_NAME"
	vmtest_stop
	exit 0
fi
vmtest_pass daemon-start

echo "$expected" | while read -r bdf kind set _; do
	[ -n "$bdf" ] || continue
	path=$(device_path "$bdf")
	[ "$set" = single ] && set=$bdf
	why=""
	if ! devset=$(prop "$path" org.vfioresetd1.Device DevSet 2>/run/err.txt); then
		vmtest_fail "daemon-devset $bdf" "no DevSet on $path: $(cat /run/err.txt)"
		continue
	fi
	got_kind=$(prop "$devset" org.vfioresetd1.DevSet Kind 2>&1)
	got_id=$(prop "$devset" org.vfioresetd1.DevSet Id 2>&1)
	got_set=$(prop "$devset" org.vfioresetd1.DevSet Devices 2>&1 |
		while read -r p; do path_address "$p"; done | sort | tr '\n' ',')
	got_set=${got_set%,}
	got_group=$(prop "$path" org.vfioresetd1.Device IommuGroup 2>&1)
	[ "$got_set" = "$set" ] || why="$why Devices $got_set, kernel says $set;"
	[ "$got_kind" = "$kind" ] || why="$why Kind $got_kind, expected $kind;"
	bus_id=$(echo "$bdf" | sed 's/^\([0-9a-f]*\):\([0-9a-f]*\):.*/\1_\2/')
	case $kind:$got_id in
	single:"dev_$(echo "$bdf" | tr ':.' '__')" | bus:"bus_$bus_id" | slot:"slot_${bus_id}_"?*) ;;
	*) why="$why Id $got_id does not fit a $kind set of $bdf;" ;;
	esac
	[ "$got_group" = "$(pci_group "$bdf")" ] || why="$why IommuGroup $got_group, sysfs says $(pci_group "$bdf");"
	[ -z "$why" ] || why="$devset:$why"
	vmtest_result "daemon-devset $bdf ($kind)" "$why"
done

vmtest_stop
