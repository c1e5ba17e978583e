#!/bin/sh
# Two libvirt domains on a shared dev_set, on a real Debian root (systemd,
# dbus, polkitd, libvirtd with systemd-machined, bookworm's QEMU):
# vfio-resetd installed by `make install` and enabled as a system service,
# two domains started through virsh each holding one igb function of the bus
# set 04:00.0/04:00.1 (two IOMMU groups), `vfio-resetctl explain` naming
# both QEMUs and their machine scopes, a plain reset refused with NotOwned
# naming both, and `reset --borrow --force` resetting the set while both
# domains live (the daemon's log names the adapter that stopped each QEMU):
# afterwards both are running and both QEMUs alive. A libvirt
# hook, installed before libvirtd starts (the `prepare` step), records the
# domains' lives; polkitd answers for a caller other than root. On vm1's
# destroy vfio-resetd's own hook scrubs the set while vm2 runs; and a
# stand-in guest's register shows what that scrub does to a device without
# a function reset of its own.
# vmtest-root: debian
set -u
# shellcheck source=/dev/null
. /usr/lib/vmtest/vmtest.sh

hook_log=/run/vmtest-hook.log

# vmtest-prepare.service, before libvirtd starts: libvirtd reads
# /etc/libvirt/hooks/qemu.d/ when it starts.
if [ "${1:-}" = prepare ]; then
	hooks_install "$hook_log"
	exit 0
fi

a=0000:04:00.0
b=0000:04:00.1
set_path=/org/vfioresetd1/devset/bus_0000_04

# Lines of a file or a command's output as INFO lines.
show() { sed "s|^|VMTEST INFO $1: |"; }

# 1. The service, as a user installs it.
installed=""
for f in /usr/lib/systemd/system/vfio-resetd.service /usr/share/dbus-1/system.d/org.vfioresetd1.conf \
	/usr/share/dbus-1/system-services/org.vfioresetd1.service /usr/share/polkit-1/actions/org.vfioresetd1.policy \
	"$(command -v vfio-resetd)" "$(command -v vfio-resetctl)"; do
	if [ -e "$f" ]; then installed="$installed $f"; else installed="$installed (no $f)"; fi
done
vmtest_info "installed:$installed"
service_start
rc=$service_rc
show "systemctl enable --now vfio-resetd" </run/enable.out
active=$(systemctl is-active vfio-resetd.service)
enabled=$(systemctl is-enabled vfio-resetd.service)
main_pid=$(systemctl show -p MainPID --value vfio-resetd.service)
owner=$(service_owner)
why=""
[ "$rc" -eq 0 ] || why="$why systemctl enable --now exited with status $rc;"
[ "$active" = active ] || why="$why is-active says '$active';"
[ "$enabled" = enabled ] || why="$why is-enabled says '$enabled';"
[ -n "$owner" ] && [ "$owner" = "$main_pid" ] ||
	why="$why busctl lists $VMTEST_NAME with pid '$owner', the unit's MainPID is '$main_pid';"
vmtest_result "vfio-resetd enabled and active, its MainPID $main_pid owns $VMTEST_NAME on the system bus" "$why"
if [ -n "$why" ]; then
	systemctl status --no-pager vfio-resetd.service 2>&1 | show status
	exit 0
fi

# 2. Two domains, one igb function each (managed='no': already on vfio-pci).
for d in vm1:$a vm2:$b; do
	name=${d%%:*} bdf=${d#*:}
	group=$(pci_group "$bdf")
	vmtest_info "virsh start $name ($bdf, group $group)"
	domain_start "$name" "$bdf"
	pid=$(qemu_pid "$name")
	user=$(stat -c %U "/proc/$pid" 2>/dev/null)
	unit=$(pid_unit "$pid")
	vmtest_result "domain $name runs, its QEMU (pid $pid, user $user, unit $unit) holds /dev/vfio/$group and $bdf" "$domain_why"
	[ -z "$domain_why" ] || exit 0
	eval "pid_$name=\$pid unit_$name=\$unit"
done
# shellcheck disable=SC2154 # set by the eval above
pid1=$pid_vm1 pid2=$pid_vm2 unit1=$unit_vm1 unit2=$unit_vm2

why=""
for h in "vm1 prepare begin -" "vm1 start begin -" "vm1 started begin -" "vm2 prepare begin -" "vm2 start begin -" "vm2 started begin -"; do
	grep -qxF "$h" "$hook_log" 2>/dev/null || why="$why no '$h';"
done
vmtest_result "the libvirt hook installed before libvirtd started saw both domains start" "$why"

# 3. The daemon's view: both QEMUs hold the set, with their machine scopes.
holders_listed() { holder_listed "$set_path" "$a" "$pid1" qemu-system-x86 && holder_listed "$set_path" "$b" "$pid2" qemu-system-x86; }
wait_for 20 holders_listed
vfio-resetctl explain 04:00.0 >/run/explain.out 2>&1
show "vfio-resetctl explain 04:00.0" </run/explain.out
why=""
for w in "pid $pid1" "pid $pid2" "$unit1" "$unit2"; do
	grep -qF "$w" /run/explain.out || why="$why no '$w';"
done
case $unit1$unit2 in machine-qemu*machine-qemu*) ;; *) why="$why the QEMUs are not in machine scopes ('$unit1', '$unit2');" ;; esac
vmtest_result "explain names both QEMUs (pids $pid1, $pid2) and their units" "$why"
# ... and, through the libvirt adapter, which domain each one is (HolderDomains)
why=""
for d in vm1 vm2; do
	grep -qF "libvirt domain $d " /run/explain.out || why="$why no 'libvirt domain $d';"
done
vmtest_result "explain names both libvirt domains" "$why"

# 4. A plain reset: NotOwned, naming both.
vfio-resetctl reset 04:00.0 >/run/reset-plain.out 2>&1
rc=$?
show "vfio-resetctl reset 04:00.0" </run/reset-plain.out
vfio-resetctl --json reset 04:00.0 >/run/reset-plain.json 2>&1
why=""
[ "$rc" -ne 0 ] || why="$why it succeeded;"
grep -q '"error": *"org.vfioresetd1.Error.NotOwned"' /run/reset-plain.json || why="$why not NotOwned: $(cat /run/reset-plain.json);"
for w in "pid $pid1" "pid $pid2"; do
	grep -qF "$w" /run/reset-plain.out || why="$why no '$w';"
done
vmtest_result "reset without Borrow fails NotOwned naming both QEMUs" "$why"

# 5. Polkit: a caller other than root is asked about and refused by the
# real polkitd (an inactive session: org.vfioresetd1.borrow says no).
setpriv --reuid=65534 --regid=65534 --clear-groups vfio-resetctl --json reset --borrow --force 04:00.0 \
	>/run/reset-nobody.json 2>&1
show "as nobody: vfio-resetctl --json reset --borrow --force 04:00.0" </run/reset-nobody.json
why=""
grep -q '"error": *"org.freedesktop.DBus.Error.AccessDenied"' /run/reset-nobody.json || why="$why not AccessDenied;"
! grep -q 'cannot ask polkit' /run/reset-nobody.json || why="$why polkit could not be asked;"
[ "$(systemctl is-active polkit.service)" = active ] || why="$why polkit.service is $(systemctl is-active polkit.service);"
vmtest_result "polkitd refuses a borrowed reset to uid 65534" "$why"

# 6. The borrowed reset, both domains running.
since=$(date '+%Y-%m-%d %H:%M:%S')
vmtest_info "vfio-resetctl reset --borrow --force 04:00.0 (domains: vm1 $(virsh domstate vm1), vm2 $(virsh domstate vm2))"
timeout 120 vfio-resetctl reset --borrow --force 04:00.0 >/run/reset-borrow.out 2>&1
rc=$?
show "vfio-resetctl reset --borrow --force 04:00.0" </run/reset-borrow.out
# On the guest's monotonic clock: when each holder froze and thawed.
journalctl --no-pager -o short-monotonic -u vfio-resetd.service --since "$since" >/run/borrow.journal
show vfio-resetd </run/borrow.journal
why=""
[ "$rc" -eq 0 ] || why="$why status $rc: $(tr '\n' ' ' </run/reset-borrow.out);"
grep -q '^done in ' /run/reset-borrow.out || why="$why no 'done in';"
grep -q 'VFIO_DEVICE_PCI_HOT_RESET took' /run/borrow.journal || why="$why the daemon's log has no hot reset;"
vmtest_result "reset --borrow --force 04:00.0 resets the set while both domains live" "$why"

# Which quiesce adapter stopped each QEMU and let it go, by the daemon's
# log: libvirt (virDomainSuspend/Resume, preferred where the daemon reaches
# libvirtd), systemd (FreezeUnit/ThawUnit of the machine scope, for a holder
# in a .scope unit while systemd is on the bus) or process (SIGSTOP/SIGCONT).
adapter_of() {
	_j=/run/borrow.journal
	if grep -qF "quiesce: libvirt domain $1 (" $_j; then
		grep -F "quiesce: libvirt domain $1 (" $_j | grep -q ' suspended' &&
			grep -F "quiesce: libvirt domain $1 (" $_j | grep -q ' resumed' && echo libvirt
	elif grep -qF "quiesce: unit $2 frozen" $_j; then
		grep -qF "quiesce: unit $2 thawed" $_j &&
			[ "$(systemctl show -p FreezerState --value "$2")" = running ] && echo systemd
	elif grep -q "Stopped pid $3 .*with SIGSTOP" $_j; then
		grep -q "Continued pid $3 .*with SIGCONT" $_j && echo process
	fi
}
a1=$(adapter_of vm1 "$unit1" "$pid1")
a2=$(adapter_of vm2 "$unit2" "$pid2")
why=""
[ -n "$a1" ] || why="$why no adapter both stopped and let go vm1 (pid $pid1, $unit1);"
[ -n "$a2" ] || why="$why no adapter both stopped and let go vm2 (pid $pid2, $unit2);"
vmtest_result "the ${a1:-?} adapter stopped vm1 and let it go, the ${a2:-?} adapter vm2" "$why"

why="$(domain_alive vm1 "$pid1")$(domain_alive vm2 "$pid2")"
vmtest_result "after the borrowed reset both domains are running and both QEMUs alive" "$why"
# What each QEMU said after its command line (-msg timestamp=on), if anything.
for n in vm1 vm2; do
	grep ' qemu-system-x86_64: ' "/var/log/libvirt/qemu/$n.log" 2>/dev/null | show "$n.log"
done

# 7. The domains end as libvirt ends them. On vm1's release, vfio-resetd's own
# hook asks for a scrub of its device's set, which vm2 still holds a sibling
# of: a borrowed reset (vm2 suspended through libvirt, vm1's group opened for
# it), vm2 running on after. The daemon keeps serving.
done_before=$(journal_dones bus_0000_04)
virsh -q destroy vm1 >/dev/null 2>&1
why=""
journal_done_wait bus_0000_04 "$done_before" || why="$why no reset of bus_0000_04 finished 'done' after vm1 was destroyed;"
journalctl --no-pager -t vfio-resetd-hook 2>/dev/null | grep -qF "vm1 released: asked vfio-resetd to scrub the dev_set of $a" ||
	why="$why the hook did not ask to scrub $a;"
why="$why$(domain_alive vm2 "$pid2")"
journalctl --no-pager -t vfio-resetd-hook 2>/dev/null | show vfio-resetd-hook
vmtest_result "vm1 destroyed: vfio-resetd's hook scrubbed the set while vm2 runs on" "$why"
# 8. What the scrub does to the device. A stand-in for a guest (holder: it
# opens 04:00.0 as QEMU does and writes TDBAL, BAR0 + 0x3800) stops, and the
# next user of the function reads what it left. igb has a function reset
# (FLR) that vfio-pci runs itself whenever a function is opened or let go, so
# the function resets are switched off first, as for a GPU without one:
# only a reset of the whole set can clean it then. Without the hook the next
# user finds the register as the stand-in left it; after the hook, run as
# libvirt runs it, it finds 0, and vm2 runs on.
why=""
function_resets_off "$a" || why="$why $a's function resets are not off: '$(cat "/sys/bus/pci/devices/$a/reset_method")';"
wrote=$(stand_in "$a")
left=$(next_user "$a")
vmtest_info "the stand-in on $a: $wrote; the next user, with no scrub between, reads TDBAL $left"
[ "$wrote" = "wrote 0x5a5a5a00, read back 0x5a5a5a00" ] || why="$why the stand-in: '$wrote' $(cat /run/stand-in.out);"
[ "$left" = 0x5a5a5a00 ] || why="$why the next user reads '$left', not the stand-in's 0x5a5a5a00;"
vmtest_result "without the hook, the next user of $a finds the stopped user's TDBAL" "$why"

wrote=$(stand_in "$a")
domain_xml stand-in "$a" >/run/stand-in.xml
done_before=$(journal_dones bus_0000_04)
t0=$(date +%s%N)
/etc/libvirt/hooks/qemu.d/vfio-resetd stand-in release end - </run/stand-in.xml >/run/hook.out 2>&1
rc=$?
hook_ms=$((($(date +%s%N) - t0) / 1000000))
journal_done_wait bus_0000_04 "$done_before"
left=$(next_user "$a")
vmtest_info "the stand-in: $wrote; the hook (stand-in release end -) exited $rc in $hook_ms ms; the next user reads TDBAL $left"
why=""
[ "$rc" -eq 0 ] || why="$why the hook exited $rc: $(cat /run/hook.out);"
[ "$hook_ms" -lt 5000 ] || why="$why the hook took $hook_ms ms;"
[ "$(journal_dones bus_0000_04)" -gt "$done_before" ] || why="$why no reset of bus_0000_04 finished 'done';"
[ "$left" = 0x00000000 ] || why="$why the next user reads '$left';"
why="$why$(domain_alive vm2 "$pid2")"
vmtest_result "the hook, run as libvirt runs it, scrubs $a: the next user reads TDBAL 0, vm2 runs on" "$why"
function_resets_default "$a"

virsh -q destroy vm2 >/dev/null 2>&1
why=""
for h in "vm1 stopped end -" "vm1 release end -" "vm2 stopped end -" "vm2 release end -"; do
	wait_for 10 grep -qxF "$h" "$hook_log" || why="$why no '$h';"
done
vmtest_result "the libvirt hook saw both domains stop and be released" "$why"
show hook <"$hook_log"
if busctl --system call "$VMTEST_NAME" /org/vfioresetd1 org.vfioresetd1.Manager GetDevice s "$a" >/dev/null 2>&1 &&
	[ "$(systemctl is-active vfio-resetd.service)" = active ]; then
	vmtest_pass "vfio-resetd answers after the borrowed reset"
else
	vmtest_fail "vfio-resetd answers after the borrowed reset" "$(systemctl is-active vfio-resetd.service)"
fi
systemctl stop vfio-resetd.service
result=$(systemctl show -p Result --value vfio-resetd.service)
vmtest_result "systemctl stop vfio-resetd: Result=$result" "$([ "$result" = success ] || echo "Result=$result")"
