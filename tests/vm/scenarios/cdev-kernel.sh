#!/bin/sh
# cdev-kernel, in the guest: the kernel has the cdev + iommufd model of VFIO
# besides groups and containers, as the cdev model of the daemon needs it.
# /dev/iommu, one /dev/vfio/devices/vfioN per vfio-pci device, the native
# type1 container still at /dev/vfio/vfio, and what
# VFIO_DEVICE_GET_PCI_HOT_RESET_INFO says through a cdev
# (include/uapi/linux/vfio.h): devids and flag DEV_ID; a function of the set
# not bound to the caller's iommufd is NOT_OWNED and a hot reset with no
# group fds fails EINVAL; once every function is bound, DEV_ID_OWNED is set
# and that hot reset works.
# Only on a kernel with IOMMUFD and VFIO device cdevs (run.sh --kernel 7.3);
# on another, run.sh skips it without booting.
# vmtest-config: IOMMUFD VFIO_DEVICE_CDEV
set -u
# shellcheck source=/dev/null
. /usr/lib/vmtest.sh

field() { sed -n "s/.* $1=\([^ ]*\).*/\1/p"; }

# 1. /dev/iommu: the iommufd misc device (drivers/iommu/iommufd/main.c).
why=""
if [ ! -c /dev/iommu ]; then
	why="no /dev/iommu character device"
else
	# stat prints major and minor in hex, sysfs in decimal.
	num=$(printf '%d:%d' "0x$(stat -c %t /dev/iommu)" "0x$(stat -c %T /dev/iommu)")
	[ "$(cat /sys/class/misc/iommu/dev 2>/dev/null)" = "$num" ] ||
		why="/dev/iommu ($num) is not the misc device iommu ($(cat /sys/class/misc/iommu/dev 2>&1))"
fi
vmtest_info "cdev: /dev/iommu is $(ls -l /dev/iommu 2>&1)"
vmtest_result dev-iommu "$why"

# 2. One device cdev per vfio-pci device: /sys/bus/pci/devices/BDF/vfio-dev/
# names it, /dev/vfio/devices/ has it, and no two devices share one.
: >/run/cdevs.txt
for bdf in $(vfio_devices); do
	n=none
	for c in "/sys/bus/pci/devices/$bdf/vfio-dev"/vfio*; do
		[ -e "$c" ] && n=${c##*/}
	done
	echo "$bdf $n" >>/run/cdevs.txt
done
vmtest_dump cdevs /run/cdevs.txt
why=""
n_vfio=$(grep -c . /run/cdevs.txt)
n_cdev=$(find /dev/vfio/devices -maxdepth 1 -name 'vfio[0-9]*' 2>/dev/null | grep -c .)
n_unique=$(awk '{ print $2 }' /run/cdevs.txt | grep -v '^none$' | sort -u | grep -c .)
missing=$(awk '$2 == "none" { print $1 }' /run/cdevs.txt | tr '\n' ' ')
if [ "$n_vfio" -eq 0 ]; then
	why="no device on vfio-pci"
elif [ -n "$missing" ]; then
	why="no vfio-dev in sysfs for $missing"
elif [ "$n_unique" -ne "$n_vfio" ] || [ "$n_cdev" -ne "$n_vfio" ]; then
	why="$n_vfio devices on vfio-pci, $n_unique distinct cdevs in sysfs, $n_cdev in /dev/vfio/devices"
else
	while read -r bdf n; do
		[ -c "/dev/vfio/devices/$n" ] || why="$why$bdf: no /dev/vfio/devices/$n; "
	done </run/cdevs.txt
fi
vmtest_result "cdev per vfio-pci device ($n_vfio)" "$why"

# 3. Groups and the type1 container are still there: /dev/vfio/vfio is the
# native container (IOMMUFD_VFIO_CONTAINER off), and the group path sees
# the igb slot set with its two groups.
hot-reset-info 0000:03:00.0 >/run/legacy.txt 2>&1
vmtest_dump legacy /run/legacy.txt
why=""
if [ ! -c /dev/vfio/vfio ]; then
	why="no /dev/vfio/vfio"
elif [ "$(field set </run/legacy.txt)" != 0000:03:00.0,0000:03:00.1 ]; then
	why="group path: $(cat /run/legacy.txt)"
elif [ "$(field groups </run/legacy.txt | tr ',' '\n' | grep -c .)" -ne 2 ]; then
	why="group path: expected two groups: $(cat /run/legacy.txt)"
fi
vmtest_result "groups and container" "$why"

# 4. The igb slot set (two groups) through cdevs bound to one iommufd: first
# 03:00.0 alone, then 03:00.1 with it.
hot-reset-info --cdev 0000:03:00.0 0000:03:00.1 >/run/cdev-info.txt 2>&1
vmtest_dump cdev-info /run/cdev-info.txt
info1=$(grep '^info 0000:03:00.0 bound=1 ' /run/cdev-info.txt)
info2=$(grep '^info 0000:03:00.0 bound=2 ' /run/cdev-info.txt)
devid0=$(grep '^bind 0000:03:00.0 ' /run/cdev-info.txt | field devid)
devid1=$(grep '^bind 0000:03:00.1 ' /run/cdev-info.txt | field devid)
why=""
if [ -z "$devid0" ] || [ -z "$devid1" ]; then
	why="VFIO_DEVICE_BIND_IOMMUFD failed: $(grep '^bind' /run/cdev-info.txt | tr '\n' ' ')"
fi
vmtest_result "bind to iommufd" "$why"

why=""
if [ "$(echo "$info1" | field flags)" != "0x1,DEV_ID" ]; then
	why="flags: $info1"
elif [ "$(echo "$info1" | field set)" != "0000:03:00.0:$devid0,0000:03:00.1:NOT_OWNED" ]; then
	why="set: $info1"
elif ! grep -q '^reset 0000:03:00.0 bound=1 errno=EINVAL$' /run/cdev-info.txt; then
	why="hot reset with no group fds: $(grep '^reset 0000:03:00.0 bound=1' /run/cdev-info.txt), expected EINVAL"
fi
vmtest_result "one of two bound: DEV_ID, the other NOT_OWNED, reset EINVAL" "$why"

why=""
if [ "$(echo "$info2" | field flags)" != "0x3,DEV_ID,DEV_ID_OWNED" ]; then
	why="flags: $info2"
elif [ "$(echo "$info2" | field set)" != "0000:03:00.0:$devid0,0000:03:00.1:$devid1" ]; then
	why="set: $info2"
elif ! grep -q '^reset 0000:03:00.0 bound=2 ok$' /run/cdev-info.txt; then
	why="hot reset with no group fds: $(grep '^reset 0000:03:00.0 bound=2' /run/cdev-info.txt)"
fi
vmtest_result "both bound: DEV_ID_OWNED, reset with no group fds" "$why"
