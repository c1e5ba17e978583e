#!/bin/sh
# Scenario 2 (diagnosis), in the guest: the daemon names who blocks a reset.
# - A process outside the daemon holds igb 04:00.0's group open: the dev_set's
#   Holders names its pid and command, and `vfio-resetctl explain` says the
#   set cannot be reset and names that process.
# - It runs as uid 1000 in the cgroup of a unit (cgroup2 mounted and the
#   cgroup made here: no systemd in the guest): HolderDetails and explain name
#   its uid and unit, as sd_pid_get_unit(3) reads them on the real kernel.
# - igb 03:00.1 stays on its native driver (line below) while 03:00.0 is on
#   vfio-pci: explain for 03:00.0 names the sibling and its driver.
# vmtest-native: 0000:03:00.1
set -u
# shellcheck source=/dev/null
. /usr/lib/vmtest.sh

held=0000:04:00.0
vfio_sibling=0000:03:00.0
native=0000:03:00.1

why=""
[ "$(pci_driver "$held")" = vfio-pci ] || why="$why $held is on $(pci_driver "$held");"
[ "$(pci_driver "$vfio_sibling")" = vfio-pci ] || why="$why $vfio_sibling is on $(pci_driver "$vfio_sibling");"
[ "$(pci_driver "$native")" = igb ] || why="$why $native is on $(pci_driver "$native"), not igb;"
vmtest_result layout "$why"

# The kernel still counts the native sibling in the set.
hot-reset-info "$vfio_sibling" >/run/kernel-sets.txt 2>&1
vmtest_dump hot-reset-info /run/kernel-sets.txt
why=""
grep -q "set=.*$native" /run/kernel-sets.txt || why=$(cat /run/kernel-sets.txt)
vmtest_result "kernel-set $vfio_sibling includes $native" "$why"

need_programs vfio-resetd vfio-resetctl busctl su || exit 0
holder_uid=1000
unit=vrd-holder.service
unit_cgroup=/sys/fs/cgroup/vrd-test.slice/$unit
grep -q '^vrdholder:' /etc/passwd || echo "vrdholder:x:$holder_uid:$holder_uid::/:/bin/sh" >>/etc/passwd
chmod 755 /     # the initramfs root is mktemp's 0700: uid 1000 could not reach /bin/sh
why=""
mount -t cgroup2 cgroup2 /sys/fs/cgroup 2>/run/cgroup.err || why="mount cgroup2: $(cat /run/cgroup.err);"
[ -n "$why" ] || mkdir -p "$unit_cgroup" 2>/run/cgroup.err || why="mkdir $unit_cgroup: $(cat /run/cgroup.err);"
vmtest_result "a cgroup2 hierarchy with $unit" "$why"
if ! bus_start || ! daemon_start; then
	vmtest_fail daemon-start "vfio-resetd did not own $VMTEST_NAME"
	vmtest_stop
	exit 0
fi

# 1. An outside holder, not root: the shell opens the group as root, su(1)
# runs sleep with it as vrdholder.
group=$(pci_group "$held")
su -s /bin/sh vrdholder -c 'exec sleep 1000' 3<"/dev/vfio/$group" &
holder=$!
# The shell opens fd 3 before it execs sleep.
holder_ready() { [ "$(cat "/proc/$holder/comm" 2>/dev/null)" = sleep ] && [ -e "/proc/$holder/fd/3" ]; }
wait_for 10 holder_ready || vmtest_fail holder "sleep (pid $holder) did not open /dev/vfio/$group"
echo "$holder" >"$unit_cgroup/cgroup.procs" 2>/run/cgroup.err ||
	vmtest_fail cgroup "pid $holder into $unit_cgroup: $(cat /run/cgroup.err)"
vmtest_info "pid $holder (sleep, uid $(awk '/^Uid:/ { print $2 }' "/proc/$holder/status"), cgroup" \
	"$(grep '^0::' "/proc/$holder/cgroup")) holds /dev/vfio/$group of $held"

devset=$(prop "$(device_path "$held")" org.vfioresetd1.Device DevSet 2>&1)
holders() { dev_set_holders "$devset"; }
expect_holder "$devset" "$held" "$holder" sleep
expect_holder_details "$devset" "$held" "$holder" "$holder_uid" sleep "$unit"

vfio-resetctl explain "$held" >/run/explain.txt 2>&1
vmtest_dump "explain $held" /run/explain.txt
why=""
grep -qw "$holder" /run/explain.txt || why="$why no pid $holder;"
grep -qw sleep /run/explain.txt || why="$why no 'sleep';"
grep -qF "held open by pid $holder (sleep, uid $holder_uid, unit $unit)" /run/explain.txt ||
	why="$why no 'held open by pid $holder (sleep, uid $holder_uid, unit $unit)';"
grep -Eiq "cannot|can't|can not" /run/explain.txt || why="$why does not say it cannot be reset;"
vmtest_result "explain $held names the holder" "$why"

# The holder goes away: so does its entry.
kill "$holder"
wait "$holder" 2>/dev/null
holder_gone() { ! holders | grep -q "	$holder	"; }
if wait_for 20 holder_gone; then
	vmtest_pass "holders forgets pid $holder"
else
	vmtest_fail "holders forgets pid $holder" "$devset Holders: $(holders 2>&1 | tr '\t\n' ' ;')"
fi

# 2. A sibling on a native driver.
vfio-resetctl explain "$vfio_sibling" >/run/explain-sibling.txt 2>&1
vmtest_dump "explain $vfio_sibling" /run/explain-sibling.txt
why=""
grep -q "$native" /run/explain-sibling.txt || why="$why no $native;"
grep -qw igb /run/explain-sibling.txt || why="$why no driver igb;"
vmtest_result "explain $vfio_sibling names $native on igb" "$why"

vmtest_stop
