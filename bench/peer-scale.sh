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

# shellcheck source=bench/bench-lib.sh
. "$(dirname "$0")/bench-lib.sh"
bench_parse "$0 [-r ROUNDS] [--daemon PATH] [N...]" -r --daemon -- "$@"
set -- ${bench_rest[@]+"${bench_rest[@]}"}
[ $# -gt 0 ] || set -- 10 100 1000
export TOPOLOGY_DIR=$top/tests/topologies
for n in "$@"; do
	umockdev-wrapper "$build/bench/peer-scale" -n "$n" ${bench_args[@]+"${bench_args[@]}"}
done
