#!/bin/sh
# Scenario 3 (live), in the guest: unbinding a member from vfio-pci and
# binding it back shows on the bus as InterfacesRemoved then InterfacesAdded
# for its object, and its dev_set's Devices follows.
set -u
# shellcheck source=/dev/null
. /usr/lib/vmtest.sh

member=0000:04:00.1
other=0000:04:00.0
path=$(device_path "$member")

need_programs vfio-resetd busctl || exit 0
if ! bus_start || ! daemon_start; then
	vmtest_fail daemon-start "vfio-resetd did not own $VMTEST_NAME"
	vmtest_stop
	exit 0
fi

devset=$(prop "$(device_path "$other")" org.vfioresetd1.Device DevSet 2>&1)
members() { prop "$devset" org.vfioresetd1.DevSet Devices | while read -r p; do path_address "$p"; done | sort | tr '\n' ' '; }
members_are() { [ "$(members)" = "$1" ]; }

busctl --system --json=short monitor "$VMTEST_NAME" >/run/monitor.txt 2>/run/monitor.err &
monitor=$!
# The monitor is live once it has seen a call to the daemon.
monitor_live() {
	busctl --system get-property "$VMTEST_NAME" "$devset" org.vfioresetd1.DevSet Id >/dev/null
	grep -q '"member":"Get"' /run/monitor.txt
}
wait_for 20 monitor_live || vmtest_fail monitor "busctl monitor saw nothing: $(cat /run/monitor.err)"

before="$other $member "
if members_are "$before"; then
	vmtest_pass "devset before: $before"
else
	vmtest_fail "devset before" "$devset Devices: $(members)"
fi

# signal_line MEMBER: the monitor line number of MEMBER for $path, if any.
signal_line() { grep -n "\"member\":\"$1\".*\"$path\"" /run/monitor.txt | head -n 1 | cut -d: -f1; }
seen() { [ -n "$(signal_line "$1")" ]; }

echo "$member" >/sys/bus/pci/drivers/vfio-pci/unbind
vmtest_info "unbound $member from vfio-pci"
if wait_for 20 seen InterfacesRemoved; then
	vmtest_pass "InterfacesRemoved $path"
else
	vmtest_fail "InterfacesRemoved $path" "not seen on the bus"
fi
if wait_for 20 members_are "$other "; then
	vmtest_pass "devset without $member"
else
	vmtest_fail "devset without $member" "$devset Devices: $(members)"
fi

# driver_override is still vfio-pci, so a probe binds it back there.
echo "$member" >/sys/bus/pci/drivers_probe
vmtest_info "bound $member back: driver $(pci_driver "$member")"
if wait_for 20 seen InterfacesAdded; then
	removed=$(signal_line InterfacesRemoved)
	added=$(signal_line InterfacesAdded)
	if [ -n "$removed" ] && [ "$removed" -lt "$added" ]; then
		vmtest_pass "InterfacesAdded $path after InterfacesRemoved"
	else
		vmtest_fail "InterfacesAdded $path after InterfacesRemoved" "Removed at line ${removed:-none}, Added at line $added"
	fi
else
	vmtest_fail "InterfacesAdded $path" "not seen on the bus"
fi
if wait_for 20 members_are "$before"; then
	vmtest_pass "devset with $member again"
else
	vmtest_fail "devset with $member again" "$devset Devices: $(members)"
fi

kill "$monitor" 2>/dev/null
if grep -q '^FAIL' /run/vmtest.results; then
	grep '"member":"Interfaces\|"member":"PropertiesChanged' /run/monitor.txt | cut -c1-400 >/run/monitor-signals.txt
	vmtest_dump monitor /run/monitor-signals.txt
fi
vmtest_stop
