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
# domains' lives; polkitd answers for a caller other than root.
# vmtest-root: debian
set -u
# shellcheck source=/dev/null
. /usr/lib/vmtest/vmtest.sh

hook_log=/run/vmtest-hook.log

# vmtest-prepare.service, before libvirtd starts: libvirtd reads
# /etc/libvirt/hooks/qemu.d/ when it starts.
if [ "${1:-}" = prepare ]; then
	mkdir -p /etc/libvirt/hooks/qemu.d
	cat >/etc/libvirt/hooks/qemu.d/vmtest-log <<EOF
#!/bin/sh
# Each call (as root, the domain XML on stdin): NAME OPERATION SUB-OPERATION EXTRA.
echo "\$*" >>$hook_log
EOF
	chmod 755 /etc/libvirt/hooks/qemu.d/vmtest-log
	# vfio-resetd's own hook, from where this tree installed it (the unit names the prefix)
	exec_start=$(sed -n 's/^ExecStart=//p' /etc/systemd/system/vfio-resetd.service \
		/lib/systemd/system/vfio-resetd.service /usr/lib/systemd/system/vfio-resetd.service 2>/dev/null | head -n 1)
	prefix=${exec_start%/sbin/vfio-resetd}
	ln -sf "$prefix/libexec/vfio-resetd-libvirt-hook" /etc/libvirt/hooks/qemu.d/vfio-resetd
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
systemctl enable --now vfio-resetd.service >/run/enable.out 2>&1
rc=$?
show "systemctl enable --now vfio-resetd" </run/enable.out
active=$(systemctl is-active vfio-resetd.service)
enabled=$(systemctl is-enabled vfio-resetd.service)
main_pid=$(systemctl show -p MainPID --value vfio-resetd.service)
# busctl lists an activatable name with pid "-" until someone owns it.
owner_pid() { busctl --system list --no-legend 2>/dev/null | awk -v n="$VMTEST_NAME" '$1 == n && $2 != "-" { print $2 }'; }
owned() { [ -n "$(owner_pid)" ]; }
wait_for 30 owned
owner=$(owner_pid)
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
domain_xml() {
	_bdf=$2
	cat <<EOF
<domain type='qemu'>
  <name>$1</name>
  <memory unit='MiB'>64</memory>
  <vcpu>1</vcpu>
  <os><type arch='x86_64'>hvm</type></os>
  <devices>
    <controller type='usb' model='none'/>
    <memballoon model='none'/>
    <hostdev mode='subsystem' type='pci' managed='no'>
      <source><address domain='0x${_bdf%%:*}' bus='0x$(echo "$_bdf" | cut -d: -f2)' slot='0x$(echo "$_bdf" | cut -d: -f3 | cut -d. -f1)' function='0x${_bdf##*.}'/></source>
    </hostdev>
  </devices>
</domain>
EOF
}
qemu_pid() { cat "/run/libvirt/qemu/$1.pid" 2>/dev/null; }
# What each fd of PID is open on, one a line.
fd_targets() {
	for _fd in "/proc/$1/fd/"*; do
		readlink "$_fd"
	done 2>/dev/null
}
# holds_group PID GROUP: its fds include /dev/vfio/GROUP and a vfio device.
holds_group() {
	fd_targets "$1" | grep -qx "/dev/vfio/$2" && fd_targets "$1" | grep -qxF 'anon_inode:[vfio-device]'
}
# The systemd unit a process is in: the innermost unit of its cgroup path
# (libvirt puts QEMU in .../machine-qemu\x2d1\x2dvm1.scope/libvirt/emulator).
pid_unit() { awk -F/ '/^0::/ { for (i = NF; i > 1; i--) if ($i ~ /\.(scope|service)$/) { print $i; exit } }' "/proc/$1/cgroup"; }
# Its state letter (R, S, T: stopped...): the root has no ps.
pid_state() { awk '$1 == "State:" { print $2 }' "/proc/$1/status" 2>/dev/null; }

for d in vm1:$a vm2:$b; do
	name=${d%%:*} bdf=${d#*:}
	group=$(pci_group "$bdf")
	domain_xml "$name" "$bdf" >"/run/$name.xml"
	vmtest_info "virsh start $name ($bdf, group $group)"
	why=""
	virsh -q define "/run/$name.xml" >"/run/$name.define" 2>&1 || why="$why define: $(cat "/run/$name.define");"
	[ -n "$why" ] || virsh -q start "$name" >"/run/$name.start" 2>&1 || why="$why start: $(cat "/run/$name.start");"
	pid=$(qemu_pid "$name")
	state=$(virsh domstate "$name" 2>&1)
	[ -n "$why" ] || [ "$state" = running ] || why="$why domstate '$state';"
	[ -n "$why" ] || wait_for 10 holds_group "$pid" "$group" ||
		why="$why QEMU pid '$pid' does not hold /dev/vfio/$group and a vfio device: $(fd_targets "$pid" | grep vfio | tr '\n' ' ');"
	user=$(stat -c %U "/proc/$pid" 2>/dev/null)
	unit=$(pid_unit "$pid")
	vmtest_result "domain $name runs, its QEMU (pid $pid, user $user, unit $unit) holds /dev/vfio/$group and $bdf" "$why"
	if [ -n "$why" ]; then
		tail -n 20 "/var/log/libvirt/qemu/$name.log" 2>/dev/null | show "$name.log"
		exit 0
	fi
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

why=""
for d in vm1:$pid1 vm2:$pid2; do
	name=${d%%:*} pid=${d#*:}
	state=$(virsh domstate "$name" 2>&1)
	[ "$state" = running ] || why="$why $name is '$state';"
	kill -0 "$pid" 2>/dev/null || why="$why QEMU $pid of $name is gone;"
	[ "$(qemu_pid "$name")" = "$pid" ] || why="$why $name's QEMU is now '$(qemu_pid "$name")';"
	st=$(pid_state "$pid")
	case $st in T | t) why="$why QEMU $pid is still stopped ($st);" ;; esac
done
vmtest_result "after the borrowed reset both domains are running and both QEMUs alive" "$why"
# What each QEMU said after its command line (-msg timestamp=on), if anything.
for n in vm1 vm2; do
	grep ' qemu-system-x86_64: ' "/var/log/libvirt/qemu/$n.log" 2>/dev/null | show "$n.log"
done

# 7. The domains end as libvirt ends them. On vm1's release, vfio-resetd's own
# hook asks for a scrub of its device's set, which vm2 still holds a sibling
# of: a borrowed reset (vm2 suspended through libvirt, vm1's group opened for
# it), vm2 running on after. The daemon keeps serving.
dones() { journalctl --no-pager -u vfio-resetd.service 2>/dev/null | grep -c 'of bus_0000_04: done after'; }
done_before=$(dones)
virsh -q destroy vm1 >/dev/null 2>&1
why=""
wait_for 60 sh -c "[ \$(journalctl --no-pager -u vfio-resetd.service | grep -c 'of bus_0000_04: done after') -gt $done_before ]" ||
	why="$why no reset of bus_0000_04 finished 'done' after vm1 was destroyed;"
journalctl --no-pager -t vfio-resetd-hook 2>/dev/null | grep -qF "vm1 released: asked vfio-resetd to scrub the dev_set of $a" ||
	why="$why the hook did not ask to scrub $a;"
[ "$(virsh domstate vm2 2>/dev/null)" = running ] || why="$why vm2 is '$(virsh domstate vm2 2>/dev/null)';"
kill -0 "$pid2" 2>/dev/null || why="$why vm2's QEMU $pid2 is gone;"
case $(pid_state "$pid2") in T | t) why="$why vm2's QEMU is stopped;" ;; esac
journalctl --no-pager -t vfio-resetd-hook 2>/dev/null | show vfio-resetd-hook
vmtest_result "vm1 destroyed: vfio-resetd's hook scrubbed the set while vm2 runs on" "$why"
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
