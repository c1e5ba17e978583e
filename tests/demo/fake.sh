#!/bin/sh
# The demo on a fake topology (umockdev): the lab layout of tests/topologies,
# the real daemon on a private bus, a stray process holding one igb function,
# and what vfio-resetctl says about it. Run from the build tree: make demo-fake
set -eu
srcdir=${srcdir:-.}
builddir=${builddir:-.}
work=$(mktemp -d /tmp/vfio-resetd-demo.XXXXXX)
cleanup() {
	[ -n "${bus_pid:-}" ] && kill "$bus_pid" 2>/dev/null && wait "$bus_pid" 2>/dev/null
	rm -rf "$work"
}
trap cleanup EXIT INT TERM

sed "s|@SOCKET@|$work/bus|" "$srcdir/tests/private-bus.conf" > "$work/bus.conf"
dbus-daemon --nofork --config-file="$work/bus.conf" 2>/dev/null &
bus_pid=$!
export DBUS_SYSTEM_BUS_ADDRESS="unix:path=$work/bus"
i=0; while [ ! -S "$work/bus" ] && [ $i -lt 100 ]; do sleep 0.05; i=$((i + 1)); done

export VRD_DAEMON="$builddir/daemon/vfio-resetd" VRD_CTL="$builddir/client/vfio-resetctl"
export LAB_SYSFS="$srcdir/tests/topologies/lab.sysfs"
umockdev-run -d "$srcdir/tests/topologies/lab.umockdev" -- sh "$srcdir/tests/demo/fake-inner.sh"
