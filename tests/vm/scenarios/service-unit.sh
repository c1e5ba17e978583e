#!/bin/sh
# The unit as installed, on a real Debian root (systemd 252 as PID 1, dbus,
# polkitd): its sandbox scores at most 1.5 in `systemd-analyze security`, and
# the daemon works inside it. It owns the 03 slot set (two IOMMU groups, from
# [Manage] in the configuration) and resets it for root through busctl; in
# its own network namespace it hears the kernel's uevents and sees what
# udevd's rules made of them once udevd's queue runs empty (a udev tag opts
# the 02 set in, live); polkitd refuses a reset to uid 65534 until a rule in
# /etc/polkit-1/rules.d grants it org.vfioresetd1.reset; and a stuck event
# loop (SIGSTOP) makes systemd's watchdog restart it.
# vmtest-root: debian
set -u
# shellcheck source=/dev/null
. /usr/lib/vmtest/vmtest.sh

[ "${1:-}" = prepare ] && exit 0

unit=vfio-resetd.service
a=0000:03:00.0
b=0000:03:00.1
set03=/org/vfioresetd1/devset/slot_0000_03_3
set02=/org/vfioresetd1/devset/slot_0000_02_1
# The daemon serves, under the unit's MainPID.
serving() { [ -n "$(service_owner)" ] && [ "$(service_owner)" = "$(main_pid)" ]; }
reset_call() { busctl --system call "$VMTEST_NAME" /org/vfioresetd1 org.vfioresetd1.Manager ResetDevice 'sa{sv}' "$1" 0; }
as_nobody() { setpriv --reuid=65534 --regid=65534 --clear-groups "$@"; }

# 1. Installed and enabled as a user would, owning the 03 set.
mkdir -p /etc/vfio-resetd
manage_config /etc/vfio-resetd/vfio-resetd.conf 5 "$a" "$b"
systemctl enable --now "$unit" >/run/enable.out 2>&1
rc=$?
show "systemctl enable --now $unit" </run/enable.out
wait_for 30 serving
why=""
[ "$rc" -eq 0 ] || why="$why systemctl enable --now exited with status $rc;"
serving || why="$why the bus name's owner is '$(service_owner)', MainPID '$(main_pid)';"
vmtest_result "vfio-resetd enabled and active, MainPID $(main_pid) on the bus" "$why"
if [ -n "$why" ]; then
	systemctl status --no-pager "$unit" 2>&1 | show status
	exit 0
fi

# 2. The live unit's sandbox, as systemd-analyze security scores it.
systemd-analyze security --no-pager "$unit" >/run/security.out 2>&1
grep -F '✗' /run/security.out | show "open"
level=$(sed -n "s/^.*Overall exposure level for $unit: \([0-9][0-9.]*\) .*$/\1/p" /run/security.out)
why=""
[ -n "$level" ] || why="no exposure level: $(tail -n 3 /run/security.out | tr '\n' ' ')"
[ -z "$level" ] || awk -v l="$level" 'BEGIN { exit !(l + 0 <= 1.5) }' || why="exposure $level is above 1.5"
vmtest_result "systemd-analyze security $unit: exposure ${level:-?} (at most 1.5)" "$why"
pid=$(main_pid)
why=""
[ "$(readlink "/proc/$pid/ns/net")" != "$(readlink /proc/1/ns/net)" ] || why="$why it shares PID 1's network namespace;"
grep -q '^CapBnd:[[:space:]]*0*80026$' "/proc/$pid/status" ||
	why="$why its bounding set is $(sed -n 's/^CapBnd:[[:space:]]*//p' "/proc/$pid/status"), not CAP_SYS_PTRACE, CAP_DAC_*, CAP_KILL;"
vmtest_result "the daemon runs in a network namespace of its own with four capabilities" "$why"

# 3. Root resets the owned set through busctl: groups and containers opened
# through the private /dev and the device ACL, the hot reset in the kernel.
managed03() { [ "$(prop "$set03" org.vfioresetd1.DevSet Managed)" = true ]; }
wait_for 20 managed03
reset_call "$a" >/run/reset-root.out 2>&1
rc=$?
show "busctl call ResetDevice $a (root)" </run/reset-root.out
why=""
managed03 || why="$why slot_0000_03_3 is not managed;"
[ "$rc" -eq 0 ] || why="$why status $rc;"
grep -q "^ost \"$set03\" \"done\" [0-9]*$" /run/reset-root.out || why="$why no 'done';"
vmtest_result "root resets $set03 through busctl" "$why"

# 4. The kernel's uevents reach the daemon in its network namespace (udevd's
# would not), and it scans again when udevd's queue runs empty: a tag added
# by a udev rule, after the kernel's event, opts the 02 set in.
managed02() { [ "$(prop "$set02" org.vfioresetd1.DevSet Managed)" = true ]; }
why=""
! managed02 || why="$why slot_0000_02_1 is managed before the rule;"
echo 'SUBSYSTEM=="pci", KERNEL=="0000:02:00.[01]", TAG+="vfio-resetd"' >/etc/udev/rules.d/70-vfio-resetd.rules
udevadm control --reload
udevadm trigger --subsystem-match=pci --action=change
wait_for 30 managed02 || why="$why slot_0000_02_1 is not managed 30 s after the tag;"
journalctl --no-pager -u "$unit" | grep -q "Following kernel uevents for PCI devices, and udevd's queue for its rules' tags" ||
	why="$why the daemon does not say it follows the kernel's uevents and udevd's queue;"
vmtest_result "a udev tag opts slot_0000_02_1 in, live: the kernel's uevents, then udevd's queue" "$why"

# 5. polkitd refuses uid 65534 (no rule, no session) ...
as_nobody busctl --system call "$VMTEST_NAME" /org/vfioresetd1 org.vfioresetd1.Manager ResetDevice 'sa{sv}' "$a" 0 \
	>/run/reset-nobody.out 2>&1
rc=$?
as_nobody vfio-resetctl --json reset "$a" >/run/reset-nobody.json 2>&1
show "as uid 65534: busctl call ResetDevice $a" </run/reset-nobody.out
show "as uid 65534: vfio-resetctl --json reset $a" </run/reset-nobody.json
why=""
[ "$rc" -ne 0 ] || why="$why busctl succeeded;"
# busctl says "Access denied" for org.freedesktop.DBus.Error.AccessDenied, whatever its message;
# vfio-resetctl --json shows both, the message the daemon's
grep -qx 'Call failed: Access denied' /run/reset-nobody.out || why="$why busctl's error is not AccessDenied;"
grep -q '"error": *"org.freedesktop.DBus.Error.AccessDenied"' /run/reset-nobody.json || why="$why not AccessDenied;"
grep -q '"message": *"Access to org.vfioresetd1.reset denied for :[0-9.]* (uid 65534)"' /run/reset-nobody.json ||
	why="$why not the daemon's denial after asking polkit;"
! grep -q 'cannot ask polkit' /run/reset-nobody.out /run/reset-nobody.json || why="$why polkit could not be asked;"
vmtest_result "polkitd refuses a reset to uid 65534: org.freedesktop.DBus.Error.AccessDenied" "$why"

# ... and allows it once a rule grants org.vfioresetd1.reset (polkitd reads
# rules.d again when it changes).
cat >/etc/polkit-1/rules.d/60-vmtest-vfio-resetd.rules <<'EOF'
polkit.addRule(function(action, subject) {
        if (action.id == "org.vfioresetd1.reset" && subject.user == "nobody")
                return polkit.Result.YES;
});
EOF
allowed() { as_nobody busctl --system call "$VMTEST_NAME" /org/vfioresetd1 org.vfioresetd1.Manager ResetDevice 'sa{sv}' "$a" 0 >/run/reset-nobody.out 2>&1; }
why=""
wait_for 30 allowed || why="$why still refused 30 s after the rule: $(cat /run/reset-nobody.out);"
show "as uid 65534, with the rule: busctl call ResetDevice $a" </run/reset-nobody.out
grep -q "^ost \"$set03\" \"done\" [0-9]*$" /run/reset-nobody.out || why="$why no 'done';"
vmtest_result "with a polkit rule for it, uid 65534 resets $set03" "$why"

# 6. The watchdog: a stuck event loop (SIGSTOP, no test code in the daemon)
# stops the keep-alives; after WatchdogSec (20 s here, by a drop-in of the
# guest's: under TCG the daemon takes 5-10 s to start, which a watchdog of
# 5 s cut short) systemd aborts it and Restart=on-failure brings it back.
mkdir -p "/etc/systemd/system/$unit.d"
printf '[Service]\nWatchdogSec=20s\n' >"/etc/systemd/system/$unit.d/vmtest-watchdog.conf"
systemctl daemon-reload
systemctl restart "$unit"
wait_for 30 serving
restarts=$(systemctl show -p NRestarts --value "$unit")
old=$(main_pid)
since=$(date '+%Y-%m-%d %H:%M:%S')
systemctl kill -s SIGSTOP "$unit"
restarted() { [ "$(systemctl show -p NRestarts --value "$unit")" -gt "$restarts" ] && serving && [ "$(main_pid)" != "$old" ]; }
why=""
wait_for 120 restarted || why="$why no restart within 120 s (NRestarts $(systemctl show -p NRestarts --value "$unit"), MainPID $(main_pid), was $old);"
journalctl --no-pager -u "$unit" --since "$since" >/run/watchdog.journal
show journal </run/watchdog.journal
grep -q 'Watchdog timeout' /run/watchdog.journal || why="$why the journal has no 'Watchdog timeout';"
grep -q "Failed with result 'watchdog'" /run/watchdog.journal || why="$why the journal has no result 'watchdog';"
[ "$(systemctl show -p WatchdogUSec --value "$unit")" = 20s ] || why="$why WatchdogUSec is $(systemctl show -p WatchdogUSec --value "$unit");"
vmtest_result "SIGSTOP: systemd's watchdog fires and restarts the daemon (pid $old -> $(main_pid), NRestarts $restarts -> $(systemctl show -p NRestarts --value "$unit"))" "$why"
why=""
wait_for 20 managed03 || why="$why slot_0000_03_3 is not managed again;"
reset_call "$a" >/run/reset-again.out 2>&1 || why="$why the reset failed: $(cat /run/reset-again.out);"
grep -q "\"done\"" /run/reset-again.out || why="$why no 'done';"
vmtest_result "the restarted daemon owns and resets $set03 again" "$why"
rm -f "/etc/systemd/system/$unit.d/vmtest-watchdog.conf"
systemctl daemon-reload
