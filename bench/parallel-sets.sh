#!/bin/bash
# Independent dev_sets reset together against one alone, on a generated fake
# sysfs (bench/gen-topology.sh: SETS bus sets of two functions) with the
# kernel test double taking MS per reset (bench/parallel-sets.c). Prints one
# line per SETS with the medians and their ratio.
# Usage: bench/parallel-sets.sh [-r ROUNDS] [--kernel-ms MS] [SETS...]   (default SETS: 16 64)
# Needs a built tree (make, then make bench/parallel-sets tests/vfio-resetd-fake).
set -eu

# shellcheck source=bench/bench-lib.sh
. "$(dirname "$0")/bench-lib.sh"
bench_parse "$0 [-r ROUNDS] [--kernel-ms MS] [SETS...]" -r --kernel-ms -- "$@"
set -- ${bench_rest[@]+"${bench_rest[@]}"}
[ $# -gt 0 ] || set -- 16 64
bench_topologies
for n in "$@"; do
	bash "$top/bench/gen-topology.sh" "$TOPOLOGY_DIR" sets "$n" 1 2 >/dev/null
	umockdev-wrapper "$build/bench/parallel-sets" -s "$n" ${bench_args[@]+"${bench_args[@]}"}
done
