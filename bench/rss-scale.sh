#!/bin/bash
# The daemon's RSS with many peers spread over many sets (bench/rss-scale.c),
# on a generated fake sysfs (bench/gen-topology.sh: SETS bus sets of two
# functions) with the kernel test double. Prints the RSS after each step of
# joining peers, after a reset of one set, and the line fitted through
# the steps (bytes per peer).
# Usage: bench/rss-scale.sh [-n PEERS] [--steps STEPS] [SETS]   (default: 10000 peers, 4 steps, 64 sets)
# Needs a built tree (make, then make bench/rss-scale tests/vfio-resetd-fake).
set -eu

# shellcheck source=bench/bench-lib.sh
. "$(dirname "$0")/bench-lib.sh"
bench_parse "$0 [-n PEERS] [--steps STEPS] [SETS]" -n --steps -- "$@"
set -- ${bench_rest[@]+"${bench_rest[@]}"}
[ $# -gt 0 ] || set -- 64
bench_topologies
bash "$top/bench/gen-topology.sh" "$TOPOLOGY_DIR" sets "$1" 1 2 >/dev/null
umockdev-wrapper "$build/bench/rss-scale" -s "$1" ${bench_args[@]+"${bench_args[@]}"}
