#!/bin/bash
# The daemon's instructions per reset with N peers, counted by callgrind
# (bench/reset-instructions.c: callgrind_control(1) --zero after a warm-up
# reset, R resets, --dump), on the fake lab sysfs with the kernel test
# double. Prints one line per N with the instructions per reset and the top
# 5 functions by their own cost (callgrind_annotate(1)). Instruction counts
# do not depend on the machine's load: a change of a few percent is a
# change of the code, not noise.
# The dumps stay in bench/callgrind-out/ (ignored by git) for
# callgrind_annotate, one folder per N.
# Usage: bench/reset-instructions.sh [-r RESETS] [N...]   (default N: 1 10 100)
# Needs a built tree (make, then make bench/reset-instructions tests/vfio-resetd-fake) and valgrind.
set -eu

# shellcheck source=bench/bench-lib.sh
. "$(dirname "$0")/bench-lib.sh"
bench_parse "$0 [-r RESETS] [N...]" -r -- "$@"
set -- ${bench_rest[@]+"${bench_rest[@]}"}
[ $# -gt 0 ] || set -- 1 10 100
VALGRIND=$(command -v valgrind) || { echo "$0: needs valgrind" >&2; exit 1; }
command -v callgrind_control >/dev/null || { echo "$0: needs callgrind_control (valgrind)" >&2; exit 1; }
export VALGRIND
export TOPOLOGY_DIR=$top/tests/topologies
for n in "$@"; do
	out=$top/bench/callgrind-out/peers-$n
	rm -rf "$out"
	mkdir -p "$out"
	# into a file, not $(...): a dbus-daemon left by a failed run would hold the pipe open
	umockdev-wrapper "$build/bench/reset-instructions" -o "$out" -n "$n" ${bench_args[@]+"${bench_args[@]}"} \
		>"$out/result" || { cat "$out/result" >&2; exit 1; }
	line=$(tail -1 "$out/result")
	echo "${line% dump=*}"
	resets=$(sed -n 's/.* resets=\([0-9]*\) .*/\1/p' <<<"$line")
	# The functions' own instructions, the most first ("Ir (share) file:function
	# [object]"). The frames that were on a stack at --zero (main, the loop,
	# the threads' start) are listed with all that ran below them: left out.
	callgrind_annotate --auto=no --threshold=100 "${line##* dump=}" |
		awk -v r="$resets" '/^ *[0-9,]+ \(/ && !/PROGRAM TOTALS|manager_run|vfio_resetd_main|:main |__libc_start|below main|clone|start_thread|ld-linux/ && n < 5 {
			ir = $1; gsub(",", "", ir); $1 = ""; sub(/^ +/, "")
			printf "  %9d per reset  %s\n", ir / r, $0; n++ }'
done
