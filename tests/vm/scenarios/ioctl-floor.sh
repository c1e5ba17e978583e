#!/bin/sh
# The raw kernel cost of each reset (bench/vm-ioctl-floor.sh boots this):
# VFIO_DEVICE_PCI_HOT_RESET per multi-device set and VFIO_DEVICE_RESET per
# device kind, timed by hot-reset-info with no daemon running. Each timing is
# bracketed by `bench begin/end` lines so the host can time it by its clock.
set -u
# shellcheck source=/dev/null
. /usr/lib/vmtest.sh

n=${VMTEST_BENCH_N:-10}

# time_op NAME MODE BDF [EXPECTED_ERRNO]
time_op() {
	vmtest_info "bench begin $1 $3"
	out=$(hot-reset-info "--time-$2" "$3" -n "$n" 2>&1)
	rc=$?
	vmtest_info "bench end $1 $3"
	echo "$out" | while IFS= read -r line; do vmtest_info "bench result $1 $line"; done
	if [ -n "${4:-}" ]; then
		case $out in
		*"errno=$4"*) vmtest_pass "$1 $3 fails $4" ;;
		*) vmtest_fail "$1 $3" "expected $4: $out" ;;
		esac
	elif [ "$rc" -eq 0 ]; then
		vmtest_pass "$1 $3"
	else
		vmtest_fail "$1 $3" "$out"
	fi
}

time_op hot-reset-bridge-bus hot-reset 0000:01:01.0
time_op hot-reset-slot-1group hot-reset 0000:02:00.0
time_op hot-reset-slot-2groups hot-reset 0000:03:00.0
time_op hot-reset-bus-2groups hot-reset 0000:04:00.0
time_op function-reset-e1000e-pm function-reset 0000:00:02.0
time_op function-reset-igb-flr function-reset 0000:03:00.0
time_op function-reset-igb-flr function-reset 0000:04:00.0
# The e1000 behind the bridge has no function reset: only its bus resets it.
time_op function-reset-e1000 function-reset 0000:01:01.0 EINVAL
