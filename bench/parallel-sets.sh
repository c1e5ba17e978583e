#!/bin/bash
# Independent dev_sets reset together against one alone, on a generated fake
# sysfs (bench/gen-topology.sh: SETS bus sets of two functions) with the
# kernel test double taking MS per reset (bench/parallel-sets.c). Prints one
# line per SETS with the medians and their ratio.
# Usage: bench/parallel-sets.sh [-r ROUNDS] [--kernel-ms MS] [SETS...]   (default SETS: 16 64)
# Needs a built tree (make, then make bench/parallel-sets tests/vfio-resetd-fake).
set -eu

top=$(cd "$(dirname "$0")/.." && pwd)
build=${BUILDDIR:-$top}
args=()
while [ $# -gt 0 ]; do
	case $1 in
	-r) args+=(-r "$2"); shift 2 ;;
	--kernel-ms) args+=(--kernel-ms "$2"); shift 2 ;;
	-*) echo "usage: $0 [-r ROUNDS] [--kernel-ms MS] [SETS...]" >&2; exit 2 ;;
	*) break ;;
	esac
done
[ $# -gt 0 ] || set -- 16 64
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
export TOPOLOGY_DIR=$work TESTS_DIR=$top/tests
export VRD_FAKE_DAEMON=${VRD_FAKE_DAEMON:-$build/tests/vfio-resetd-fake}
export DBUS_DAEMON=${DBUS_DAEMON:-$(command -v dbus-daemon)}
for n in "$@"; do
	bash "$top/bench/gen-topology.sh" "$work" sets "$n" 1 2 >/dev/null
	umockdev-wrapper "$build/bench/parallel-sets" -s "$n" "${args[@]}"
done
