#!/bin/bash
# What the arbiter costs per peer, on the fake lab sysfs with the kernel test
# double: a reset of one dev_set with N peers acking, against the bare
# messages of the same handshake (bench/peer-scale.c: a floor server in a
# process of its own exchanges exactly the messages of a reset with N peers).
# Prints one line per N with the medians and their ratio, and the daemon's
# CPU share of the reset.
# Usage: bench/peer-scale.sh [-r ROUNDS] [--daemon PATH] [N...]   (default N: 10 100 1000)
# Needs a built tree (make, then make bench/peer-scale tests/vfio-resetd-fake).
set -eu

top=$(cd "$(dirname "$0")/.." && pwd)
build=${BUILDDIR:-$top}
args=()
while [ $# -gt 0 ]; do
	case $1 in
	-r) args+=(-r "$2"); shift 2 ;;
	--daemon) args+=(--daemon "$2"); shift 2 ;;
	-*) echo "usage: $0 [-r ROUNDS] [--daemon PATH] [N...]" >&2; exit 2 ;;
	*) break ;;
	esac
done
[ $# -gt 0 ] || set -- 10 100 1000
export TOPOLOGY_DIR=$top/tests/topologies TESTS_DIR=$top/tests
export VRD_FAKE_DAEMON=${VRD_FAKE_DAEMON:-$build/tests/vfio-resetd-fake}
export DBUS_DAEMON=${DBUS_DAEMON:-$(command -v dbus-daemon)}
for n in "$@"; do
	umockdev-wrapper "$build/bench/peer-scale" -n "$n" "${args[@]}"
done
