# What the scripts of the fake-sysfs benches share (sourced by bash): where
# the tree and its build are, their options, the test harness's environment.
# shellcheck shell=bash
top=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
build=${BUILDDIR:-$top}
export TESTS_DIR=$top/tests
export VRD_FAKE_DAEMON=${VRD_FAKE_DAEMON:-$build/tests/vfio-resetd-fake}
export DBUS_DAEMON=${DBUS_DAEMON:-$(command -v dbus-daemon)}

# bench_parse USAGE OPTION... -- ARG...: each ARG that is one of the
# OPTIONs goes with its value into bench_args (for the bench program), the
# others into bench_rest; anything else starting with - prints USAGE, exit 2.
bench_args=() bench_rest=()
bench_parse() {
	local usage=$1 opts=() o known
	shift
	while [ "$1" != -- ]; do opts+=("$1"); shift; done
	shift
	while [ $# -gt 0 ]; do
		case $1 in
		-*)
			known=0
			for o in "${opts[@]}"; do [ "$1" = "$o" ] && known=1; done
			[ "$known" = 1 ] && [ $# -ge 2 ] || { echo "usage: $usage" >&2; exit 2; }
			bench_args+=("$1" "$2")
			shift 2 ;;
		*) bench_rest+=("$1"); shift ;;
		esac
	done
}

# bench_topologies: a folder of its own for generated topologies, as
# TOPOLOGY_DIR, removed at exit.
bench_topologies() {
	TOPOLOGY_DIR=$(mktemp -d)
	export TOPOLOGY_DIR
	trap 'rm -rf "$TOPOLOGY_DIR"' EXIT
}
