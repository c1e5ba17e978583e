#!/bin/bash
# Holders on a host with many processes (bench/holders-scale.c): N real
# processes, K of them holding a group open, and the daemon's Holders
# against a bare walk of every /proc/PID/fd with fstatat(2). Prints one line
# per N with the medians, their ratio and each per process.
# Usage: bench/holders-scale.sh [-r ROUNDS] [-k HOLDERS] [N...]   (default N: 2000)
# Needs a built tree (make, then make bench/holders-scale tests/vfio-resetd-fake).
set -eu

# shellcheck source=bench/bench-lib.sh
. "$(dirname "$0")/bench-lib.sh"
bench_parse "$0 [-r ROUNDS] [-k HOLDERS] [N...]" -r -k -- "$@"
set -- ${bench_rest[@]+"${bench_rest[@]}"}
[ $# -gt 0 ] || set -- 2000
export TOPOLOGY_DIR=$top/tests/topologies
for n in "$@"; do
	umockdev-wrapper "$build/bench/holders-scale" -n "$n" ${bench_args[@]+"${bench_args[@]}"}
done
