#!/bin/sh
# PID 1 of the test VM (busybox sh): mount, load modules, bind every endpoint
# NIC to vfio-pci except VMTEST_NATIVE, run /scenario.sh, power off.
# No `set -e`: PID 1 exiting panics the kernel (panic=-1 and QEMU's
# -no-reboot then end the VM, but without a DONE line).
set -u
export PATH=/usr/sbin:/usr/bin:/sbin:/bin HOME=/root

mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
mkdir -p /dev/pts /dev/shm
mount -t devpts devpts /dev/pts
mount -t tmpfs tmpfs /run
mount -t tmpfs tmpfs /tmp

# shellcheck source=/dev/null
. /usr/lib/vmtest.sh

vmtest_info "init: kernel $(uname -r), scenario $VMTEST_SCENARIO, native: ${VMTEST_NATIVE:-none}"

is_native() {
	case " $VMTEST_NATIVE " in *" $1 "*) return 0 ;; esac
	return 1
}

# Endpoint NICs: class 0x02xxxx (bridges are 0x0604xx).
nics=""
for dev in /sys/bus/pci/devices/*; do
	case $(cat "$dev/class") in 0x02*) nics="$nics ${dev##*/}" ;; esac
done
# driver_override before the drivers load, so no native driver grabs them.
for bdf in $nics; do
	is_native "$bdf" || echo vfio-pci >"/sys/bus/pci/devices/$bdf/driver_override"
done

while read -r ko; do
	insmod "$ko" || vmtest_info "init: insmod $ko failed"
done <"/lib/modules/$VMTEST_KVER/load-order"

# shpchp (bound to the pcie-pci-bridge once ACPI leaves hotplug to the OS)
# makes that bridge's IOMMU group, and so the e1000s behind it, not viable.
for port in /sys/bus/pci/drivers/shpchp/0000:*; do
	[ -e "$port" ] || continue
	echo "${port##*/}" >/sys/bus/pci/drivers/shpchp/unbind
	vmtest_info "init: unbound shpchp from ${port##*/}"
done

for bdf in $nics; do
	dev=/sys/bus/pci/devices/$bdf
	if is_native "$bdf"; then
		[ -e "$dev/driver" ] || echo "$bdf" >/sys/bus/pci/drivers_probe
	elif [ "$(pci_driver "$bdf")" != vfio-pci ]; then
		[ -e "$dev/driver" ] && echo "$bdf" >"$dev/driver/unbind"
		echo "$bdf" >/sys/bus/pci/drivers_probe
	fi
done
for bdf in $nics; do
	vmtest_info "init: $bdf $(cat "/sys/bus/pci/devices/$bdf/vendor"):$(cat "/sys/bus/pci/devices/$bdf/device") driver=$(pci_driver "$bdf") group=$(pci_group "$bdf")"
done
for port in /sys/bus/pci_express/drivers/pciehp/*:pcie*; do
	[ -e "$port" ] && vmtest_info "init: pciehp on ${port##*/}"
done

vmtest_info "init: running scenario $VMTEST_SCENARIO"
vmtest_dmesg_mark
sh /scenario.sh
rc=$?
[ "$rc" -eq 0 ] || vmtest_fail "$VMTEST_SCENARIO" "scenario script exited with status $rc"
if grep -q '^FAIL' /run/vmtest.results 2>/dev/null; then
	echo "---- dmesg (a test failed) ----"
	dmesg
	echo "---- end of dmesg ----"
fi
echo "VMTEST DONE"
sync
poweroff -f
