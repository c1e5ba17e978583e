#!/bin/sh
# /init of the initramfs that boots the Debian root (busybox sh): loads what
# mounting /dev/vda takes (virtio-blk, ext4) and vfio-pci, binds every
# endpoint NIC but VMTEST_NATIVE to vfio-pci before the root's udev loads
# their drivers (the natives get theirs from it), copies this run's files
# into the root (the boot's copy-on-write overlay: the cached image stays as
# it was built), then switch_root to systemd.
# In the root: the project as `make install` laid it out and
# /usr/lib/vmtest/run (guest-root-run.sh), both in /vmtest-root (run.sh's
# payload), the scenario and guest-lib.sh beside it, and two units:
# vmtest-prepare.service (before libvirtd and vfio-resetd: the scenario's
# `prepare` step) and vmtest-scenario.service (after multi-user.target and
# libvirtd: the scenario, then power off).
set -u
export PATH=/usr/sbin:/usr/bin:/sbin:/bin

mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev

# shellcheck source=/dev/null
. /usr/lib/vmtest.sh

# Nothing can run the scenario: say so, and end the VM.
give_up() {
	vmtest_fail "$VMTEST_SCENARIO" "initramfs: $*"
	echo "VMTEST DONE"
	poweroff -f
}

vmtest_info "init: kernel $(uname -r), scenario $VMTEST_SCENARIO on the Debian root, native: ${VMTEST_NATIVE:-none}"
vmtest_nics_override
vmtest_load_modules
# Here rather than in a unit of the root: alone on the guest's CPUs it takes
# a second, among the root's starting units ten times that.
vmtest_nics_bind
mkdir -p /newroot
tries=0
until mount -t ext4 -o rw /dev/vda /newroot 2>/dev/null; do
	tries=$((tries + 1))
	[ "$tries" -lt 50 ] || give_up "cannot mount /dev/vda"
	sleep 0.1
done

root=/newroot
cp -a /vmtest-root/. "$root/" || give_up "cannot copy the installed files into the root"
mkdir -p "$root/usr/lib/vmtest"
cp /usr/lib/vmtest.sh /scenario.sh "$root/usr/lib/vmtest/"
cp /etc/vmtest.conf "$root/etc/vmtest.conf"
units=$root/etc/systemd/system
cat >"$units/vmtest-prepare.service" <<'EOF'
[Unit]
Description=vmtest: the scenario's prepare step
After=systemd-udevd.service local-fs.target
Before=libvirtd.service vfio-resetd.service multi-user.target

[Service]
Type=oneshot
RemainAfterExit=yes
ExecStart=/usr/lib/vmtest/run prepare
StandardOutput=tty
StandardError=inherit
TTYPath=/dev/ttyS0
EOF
cat >"$units/vmtest-scenario.service" <<'EOF'
[Unit]
Description=vmtest: the scenario, then power off
After=multi-user.target libvirtd.service vmtest-prepare.service

[Service]
Type=idle
ExecStart=/usr/lib/vmtest/run scenario
StandardOutput=tty
StandardError=inherit
TTYPath=/dev/ttyS0
TimeoutStartSec=infinity
EOF
mkdir -p "$units/multi-user.target.wants"
ln -sf ../vmtest-prepare.service "$units/multi-user.target.wants/vmtest-prepare.service"
ln -sf ../vmtest-scenario.service "$units/multi-user.target.wants/vmtest-scenario.service"
# The installed library (a prefix of /usr/local or another) in ld.so's cache.
chroot "$root" /sbin/ldconfig || give_up "ldconfig in the root failed"

umount /proc /sys
mount --move /dev "$root/dev" || umount /dev
exec switch_root "$root" /sbin/init
