#!/bin/bash
# The daemon's start-up on a large fake host against a bare libudev
# enumeration of the same devices (bench/startup-scale.c), on a generated
# fake sysfs (bench/gen-topology.sh: N/256 root ports, each with 32
# 8-function devices). Prints one line per N with the medians and their ratio.
# Usage: bench/startup-scale.sh [-r ROUNDS] [N...]   (N a multiple of 256; default 1024 4096)
# Needs a built tree (make, then make bench/startup-scale tests/vfio-resetd-fake).
set -eu

top=$(cd "$(dirname "$0")/.." && pwd)
build=${BUILDDIR:-$top}
args=()
while [ $# -gt 0 ]; do
	case $1 in
	-r) args+=(-r "$2"); shift 2 ;;
	-*) echo "usage: $0 [-r ROUNDS] [N...]" >&2; exit 2 ;;
	*) break ;;
	esac
done
[ $# -gt 0 ] || set -- 1024 4096
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
export TOPOLOGY_DIR=$work TESTS_DIR=$top/tests
export VRD_FAKE_DAEMON=${VRD_FAKE_DAEMON:-$build/tests/vfio-resetd-fake}
export DBUS_DAEMON=${DBUS_DAEMON:-$(command -v dbus-daemon)}
for n in "$@"; do
	[ $((n % 256)) -eq 0 ] && [ "$n" -ge 256 ] || { echo "$0: $n is not a multiple of 256" >&2; exit 2; }
	bash "$top/bench/gen-topology.sh" --no-nodes "$work" scale $((n / 256)) 32 8 >/dev/null
	umockdev-wrapper "$build/bench/startup-scale" "${args[@]}"
done
