#!/bin/bash
# The daemon's start-up on a large fake host against a bare libudev
# enumeration of the same devices (bench/startup-scale.c), on a generated
# fake sysfs (bench/gen-topology.sh: N/256 root ports, each with 32
# 8-function devices). Prints one line per N with the medians and their ratio.
# Usage: bench/startup-scale.sh [-r ROUNDS] [N...]   (N a multiple of 256; default 1024 4096)
# Needs a built tree (make, then make bench/startup-scale tests/vfio-resetd-fake).
set -eu

# shellcheck source=bench/bench-lib.sh
. "$(dirname "$0")/bench-lib.sh"
bench_parse "$0 [-r ROUNDS] [N...]" -r -- "$@"
set -- ${bench_rest[@]+"${bench_rest[@]}"}
[ $# -gt 0 ] || set -- 1024 4096
bench_topologies
for n in "$@"; do
	[ $((n % 256)) -eq 0 ] && [ "$n" -ge 256 ] || { echo "$0: $n is not a multiple of 256" >&2; exit 2; }
	bash "$top/bench/gen-topology.sh" --no-nodes "$TOPOLOGY_DIR" scale $((n / 256)) 32 8 >/dev/null
	umockdev-wrapper "$build/bench/startup-scale" ${bench_args[@]+"${bench_args[@]}"}
done
