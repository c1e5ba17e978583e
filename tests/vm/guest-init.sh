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

vmtest_nics_override
vmtest_load_modules
vmtest_nics_bind
vmtest_run_scenario /scenario.sh
poweroff -f
