#!/bin/sh
# Holders behind a private /dev, in the guest: a process holds igb 04:00.0's
# group the way libvirt's QEMU does, from a mount namespace of its own with a
# tmpfs on /dev and its own node of /dev/vfio/N made with mknod (another
# inode on another filesystem, the same device number).
# - Its fd is checked to be that: same st_rdev as the guest's node, other st_dev.
# - The dev_set's Holders names its pid and command, HolderDetails its uid 0
#   and no unit (no cgroup hierarchy is mounted in the guest, so
#   sd_pid_get_unit(3) has none to tell), `vfio-resetctl explain` names it,
#   and ResetDevice fails NotOwned naming it and what would allow the reset.
# - The daemon, root with every capability, could inspect every process:
#   UninspectedProcesses is empty (kernel threads are not reported).
set -u
# shellcheck source=/dev/null
. /usr/lib/vmtest.sh

held=0000:04:00.0
group=$(pci_group "$held")
node=/dev/vfio/$group

need_programs vfio-resetd vfio-resetctl busctl bar-peer unshare mknod || exit 0

# What identifies the group: its char device number, in sysfs and on the node.
sys_dev=$(cat "/sys/class/vfio/$group/dev" 2>&1)
node_dev=$(stat -c '%t:%T' "$node" 2>&1)
vmtest_info "group $group: /sys/class/vfio/$group/dev=$sys_dev, $node is char $node_dev (hex)"
major=$(echo "$sys_dev" | cut -d: -f1)
minor=$(echo "$sys_dev" | cut -d: -f2)
why=""
[ "$(printf '%x:%x' "$major" "$minor" 2>/dev/null)" = "$node_dev" ] || why="sysfs says $sys_dev, $node is $node_dev;"
vmtest_result "group $group's device number in sysfs and on $node" "$why"

if ! bus_start || ! daemon_start; then
	vmtest_fail daemon-start "vfio-resetd did not own $VMTEST_NAME"
	vmtest_stop
	exit 0
fi

# The holder: its own mount namespace (propagation private, so the tmpfs
# stays there), a tmpfs /dev, the node made anew, the group opened through it.
unshare --mount --propagation private sh -c "mount -t tmpfs tmpfs /dev && mkdir /dev/vfio &&
	mknod $node c $major $minor && exec sleep 1000 3<>$node" &
holder=$!
holder_ready() { [ "$(cat "/proc/$holder/comm" 2>/dev/null)" = sleep ] && [ -e "/proc/$holder/fd/3" ]; }
wait_for 10 holder_ready || vmtest_fail holder "pid $holder did not open its own $node"
theirs=$(stat -L -c '%d %i %t:%T' "/proc/$holder/fd/3" 2>&1)
ours=$(stat -L -c '%d %i %t:%T' "$node" 2>&1)
vmtest_info "pid $holder (sleep) holds group $group: its fd is st_dev st_ino rdev $theirs, ours $ours"
why=""
[ "${theirs##* }" = "${ours##* }" ] || why="$why other device numbers;"
[ "${theirs%% *}" != "${ours%% *}" ] || why="$why the same filesystem: not a private /dev;"
vmtest_result "holder's node: same device number, another filesystem" "$why"

devset=$(prop "$(device_path "$held")" org.vfioresetd1.Device DevSet 2>&1)
expect_holder "$devset" "$held" "$holder" sleep
expect_holder_details "$devset" "$held" "$holder" 0 sleep ""

unseen=$(prop "$devset" org.vfioresetd1.DevSet UninspectedProcesses 2>&1)
vmtest_result "no process is out of the daemon's sight" "${unseen:+UninspectedProcesses: $(echo "$unseen" | tr '\n' ' ')}"

vfio-resetctl explain "$held" >/run/explain.txt 2>&1
vmtest_dump "explain $held" /run/explain.txt
why=""
grep -qF "is held open by pid $holder (sleep, uid 0)" /run/explain.txt ||
	why="$why no 'held open by pid $holder (sleep, uid 0)';"
grep -q "^No:" /run/explain.txt || why="$why does not say No;"
vmtest_result "explain $held names the holder" "$why"

reset_request R "$held"
out=$(peer_line R '^reset-')
why=""
echo "$out" | grep -q "org.vfioresetd1.Error.NotOwned" || why="$why not NotOwned;"
echo "$out" | grep -qF "$held is held by pid $holder (sleep, uid 0); a reset needs every group of the set" ||
	why="$why does not name pid $holder (sleep, uid 0) and what would allow the reset;"
vmtest_result "ResetDevice $held: NotOwned naming pid $holder" "${why:+$why $out}"

kill "$holder"
wait "$holder" 2>/dev/null
vmtest_stop
