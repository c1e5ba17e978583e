#!/bin/sh
# The demo's second half, on the Debian root (systemd, polkitd, libvirtd,
# QEMU): two libvirt guests each hold one function of the igb set on bus 04,
# so neither QEMU can reset its own function ("not owned"); vfio-resetd,
# installed by `make install` and enabled as a service, names both guests,
# resets the set while both stay alive, and when one guest stops, its hook
# scrubs the freed function while the other runs on. A stand-in for a guest
# then shows what the scrub does to a register.
# Lines for the person watching start with "DEMO " (run.sh --demo shows them).
# vmtest-root: debian
set -u
# shellcheck source=/dev/null
. /usr/lib/vmtest/vmtest.sh

if [ "${1:-}" = prepare ]; then
	hooks_install /run/vmtest-hook.log
	exit 0
fi

a=0000:04:00.0
b=0000:04:00.1
set=bus_0000_04
# journal_since TIME: the daemon's and the hook's lines since TIME, trimmed.
journal_since() {
	journalctl --no-pager -o short --since "$1" _SYSTEMD_UNIT=vfio-resetd.service + \
		SYSLOG_IDENTIFIER=vfio-resetd-hook 2>/dev/null | sed -n 's/^[A-Z][a-z]* [0-9 ]* [0-9:]* [^ ]* /DEMO   /p'
}

say ""
say "== Part 3: two libvirt guests on one reset domain, on a Debian system (systemd,"
say "   polkitd, libvirtd, QEMU $(qemu-system-x86_64 --version | sed -n 's/.*version \([0-9.]*\).*/\1/p;q'))" \
	"on the same kernel. vfio-resetd is installed by 'make install' and enabled as any service:"
service_start
run systemctl is-active vfio-resetd.service
if [ "$service_rc" -ne 0 ] || ! service_owned; then
	vmtest_fail demo-libvirt "vfio-resetd did not start: $(cat /run/enable.out)"
	exit 0
fi

say ""
say "== The two functions on bus 04 get no function reset here (their reset_method emptied"
say "   in sysfs), like the two functions of many GPUs: only a reset of the whole bus"
say "   cleans them, and that needs both IOMMU groups in one caller's hands."
why=""
for f in $a $b; do function_resets_off "$f" || why="$why $f: reset_method '$(cat "/sys/bus/pci/devices/$f/reset_method")';"; done
say ""
say "== Two guests, vm1 and vm2, each get one function as <hostdev managed='no'>:"
for d in vm1:$a vm2:$b; do
	say "\$ virsh start ${d%%:*}    (holding ${d#*:}, IOMMU group $(pci_group "${d#*:}"))"
	domain_start "${d%%:*}" "${d#*:}" || why="$why ${d%%:*}: $domain_why"
done
pid1=$(qemu_pid vm1) pid2=$(qemu_pid vm2)
run virsh list
if [ -n "$why" ]; then
	vmtest_fail demo-libvirt "$why"
	exit 0
fi
say ""
say "== Neither QEMU can reset its own function now: the bus reset takes both IOMMU groups"
say "   in one process, and each QEMU has one (for a device without a PM reset either, QEMU"
say "   logs \"Cannot reset device ..., depends on group N which is not owned\")."
say ""
say "== vfio-resetd says who blocks the set:"
holders_named() { vfio-resetctl explain "$a" 2>/dev/null | grep -q "libvirt domain vm2"; }
wait_for 20 holders_named
run vfio-resetctl explain "$a"

say ""
say "== vfio-resetd resets it anyway: it suspends both guests through libvirt, borrows their"
say "   group fds (pidfd_getfd), resets the bus, closes its copies and resumes them:"
since=$(date '+%Y-%m-%d %H:%M:%S')
done_before=$(journal_dones $set)
run vfio-resetctl reset --borrow "$a"
journal_done_wait $set "$done_before"
say "   vfio-resetd's journal of it:"
journal_since "$since"
run virsh list
why="$(domain_alive vm1 "$pid1")$(domain_alive vm2 "$pid2")"
journalctl --no-pager -u vfio-resetd.service --since "$since" | grep -q "of $set: done after" ||
	why="$why no reset of $set ended done;"
vmtest_result demo-libvirt-borrow "$why"

say ""
say "== vm1 stops. libvirt runs vfio-resetd's hook (/etc/libvirt/hooks/qemu.d/vfio-resetd,"
say "   'vm1 release end -'), which asks the daemon to scrub vm1's function: a borrowed"
say "   reset of the set, vm2 suspended for it and running on after."
since=$(date '+%Y-%m-%d %H:%M:%S')
done_before=$(journal_dones $set)
run virsh destroy vm1
journal_done_wait $set "$done_before"
journal_since "$since"
run virsh list
why="$(domain_alive vm2 "$pid2")"
[ "$(journal_dones $set)" -gt "$done_before" ] || why="$why no scrub of $set ended done;"
vmtest_result demo-libvirt-hook "$why"

say ""
say "== What the scrub does: a program stands in for a guest on $a. It opens it as QEMU"
say "   does, writes 0x5a5a5a00 into TDBAL (BAR0 + 0x3800) and quits, and the next user reads it."
wrote=$(stand_in "$a")
left=$(next_user "$a")
say "   Without the hook: the stand-in $wrote; the next user reads $left (the old guest's data)."
wrote=$(stand_in "$a")
domain_xml stand-in "$a" >/run/stand-in.xml
done_before=$(journal_dones $set)
say "\$ /etc/libvirt/hooks/qemu.d/vfio-resetd stand-in release end - </run/stand-in.xml"
/etc/libvirt/hooks/qemu.d/vfio-resetd stand-in release end - </run/stand-in.xml 2>&1 | sed 's/^/DEMO /'
journal_done_wait $set "$done_before"
clean=$(next_user "$a")
say "   With the hook: the stand-in $wrote; the next user reads $clean. vm2: $(virsh domstate vm2)."
why="$(domain_alive vm2 "$pid2")"
[ "$left" = 0x5a5a5a00 ] || why="$why without the hook the next user read '$left';"
[ "$clean" = 0x00000000 ] || why="$why after the hook the next user read '$clean';"
vmtest_result demo-libvirt-scrub "$why"
virsh -q destroy vm2 >/dev/null 2>&1
for f in $a $b; do function_resets_default "$f"; done
