#!/bin/sh
# The demo, in the guest: every dev_set of a real kernel, who holds what, and
# why the igb set cannot be reset while a stray process holds one function.
# Lines for the person watching start with "DEMO " (run.sh --demo shows them).
# vmtest-native: 0000:03:00.1
set -u
# shellcheck source=/dev/null
. /usr/lib/vmtest.sh

say() { echo "DEMO $*"; }
run() {
	say "\$ $*"
	"$@" 2>&1 | sed 's/^/DEMO /'
}

need_programs vfio-resetd vfio-resetctl busctl || exit 0
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
vmtest_stop
