#!/bin/sh
# What vfio-resetd's handshake costs on top of the kernel's reset
# (bench/vm-reset-overhead.sh boots this; it is not part of make check).
# On the igb bus set 04:00.0/04:00.1 (2 IOMMU groups), in one guest, in the
# ownership model VMTEST_BENCH_MODEL (legacy, the default: groups in a
# container; cdev: both cdevs bound to one iommufd, the 7.3 kernel only):
# 1. raw: VFIO_DEVICE_PCI_HOT_RESET by tests/vm/hot-reset-info.c, N times,
#    with no daemon holding the set (legacy: with the set's group fds; cdev:
#    with an empty group list, --time-hot-reset --cdev);
# 2. then the daemon owns the set in that model ([Ownership] Model=, and its
#    log must name the model of every reset, else the scenario fails), two
#    bar-peer processes take one function each and ack every pause at once,
#    and bar-peer's requester calls
#    ResetDevice N times, timing each call's round trip; before each call
#    (bar-peer --between), the bus floor of that reset: bus-floor
#    (bench/floor-round.c, the floor of bench/peer-scale) exchanges the same
#    messages with 2 peers of its own through the same dbus-daemon, once.
# Each batch is bracketed by `bench begin/end` lines (the host times them),
# results are `bench result` lines, and a per-phase breakdown of the daemon's
# resets (from the peers' and the requester's event times, one guest clock)
# is `bench phase` lines.
set -u
# shellcheck source=/dev/null
. /usr/lib/vmtest.sh

n=${VMTEST_BENCH_N:-10}
model=${VMTEST_BENCH_MODEL:-legacy}
a=0000:04:00.0
b=0000:04:00.1
set_path=/org/vfioresetd1/devset/bus_0000_04

need_programs vfio-resetd busctl bar-peer hot-reset-info || exit 0
case $model in
legacy)
	# hot-reset-info keeps every device fd it opened: timing $b first and
	# then $a times $a's batch with both functions open, as the daemon
	# holds them (a vfio-pci function nobody has open sits in runtime
	# D3hot, and the reset must wake it first: $b's batch shows that cost).
	set -- --time-hot-reset "$b" "$a" ;;
cdev)
	# Both cdevs bound to one iommufd and kept open, the reset through $a's
	# (the kernel wants every member of the set bound: two groups).
	set -- --time-hot-reset --cdev "$a" "$b" ;;
*)
	vmtest_fail "bench model" "VMTEST_BENCH_MODEL is '$model', not legacy or cdev"
	exit 0 ;;
esac
vmtest_info "bench model $model"

# 1. The raw ioctl, nobody else holding the set.
vmtest_info "bench begin raw $b $a"
out=$(hot-reset-info "$@" -n "$n" 2>&1)
rc=$?
vmtest_info "bench end raw $b $a"
echo "$out" | while IFS= read -r line; do vmtest_info "bench result raw $line"; done
if [ "$rc" -eq 0 ]; then vmtest_pass "raw hot reset ($model) $* x$n"; else vmtest_fail "raw hot reset ($model) x$n" "$out"; fi
vmtest_info "runtime PM: $b $(cat /sys/bus/pci/devices/$b/power/runtime_status 2>/dev/null), $a $(cat /sys/bus/pci/devices/$a/power/runtime_status 2>/dev/null)"

# 2. The same set through the daemon in the same model, two peers acking.
# --debug: the log line naming each reset's model (a few lines a reset, to
# a file).
VMTEST_OWNERSHIP=$model manage_config /run/vfio-resetd.conf 10 "$a" "$b"
if ! bus_start || ! daemon_start --debug --config /run/vfio-resetd.conf; then
	vmtest_fail daemon-start "vfio-resetd did not own $VMTEST_NAME"
	vmtest_stop
	exit 0
fi
why=""
wait_for 30 managed || why="$set_path is not Managed;"
# Quiet peers: the console is a slow serial line.
# shellcheck disable=SC2034 # peer_start reads it
VMTEST_PEER_PREFIX="bench-peer"
peer_start A --take "$a" --ack --no-broadcasts >/dev/null || why="$why peer A: $(cat /run/peer-A.log);"
peer_start B --take "$b" --ack --no-broadcasts >/dev/null || why="$why peer B: $(cat /run/peer-B.log);"
for d in "$a" "$b"; do
	o=$(prop "$(device_path "$d")" org.vfioresetd1.Device Ownership)
	[ "$o" = "$model" ] || why="$why $d is owned through model '$o', not $model;"
done
vmtest_result "daemon owns $a $b ($model), two peers took one function each" "$why"
[ -z "$why" ] || { vmtest_stop; exit 0; }

vmtest_info "bench begin daemon $a"
: >/run/floor.log
between=""
# The second after it lets dbus-daemon and the daemon (which hears every
# NameOwnerChanged) finish with the floor's three connections leaving: under
# -smp 1 that work would otherwise run inside the next reset.
! command -v bus-floor >/dev/null 2>&1 || between="bus-floor -n 2 -r 1 >>/run/floor.log 2>&1; sleep 1"
reset_request R "$a" --count "$n" --timeout-usec 10000000 ${between:+--between "$between"} >/dev/null
rc=$?
vmtest_info "bench end daemon $a"
vmtest_info "bench result daemon $(peer_line R '^reset-summary ')"
# The floors, one before each reset (guest CLOCK_MONOTONIC).
grep -v '^floor-round ' /run/floor.log | head -n 3 | sed 's/^/VMTEST INFO bench floor-error /'
sed -n 's/^floor-round usec=//p' /run/floor.log | sort -n | awk '
	{ v[++k] = $1 }
	END { if (k) printf "VMTEST INFO bench result floor n=%d min_us=%d median_us=%d\n", k, v[1], k % 2 ? v[(k + 1) / 2] : (v[k / 2] + v[k / 2 + 1]) / 2 }'
# The kernel's share, as the daemon timed it.
daemon_kernel_times | sed 's/^/VMTEST INFO bench result daemon-kernel /'

# Phases of each reset, from the event times (guest CLOCK_MONOTONIC):
# the call -> the last Pause received -> the last ack sent -> the reply.
awk '
	FILENAME ~ /peer-R/ && $2 == "reset-call" { call[++nc] = $1 }
	FILENAME ~ /peer-R/ && $2 == "reset-reply" { reply[++nr] = $1 }
	FILENAME !~ /peer-R/ && $2 == "pause" && $4 == "pause" { p = $3; if ($1 > pause[p]) pause[p] = $1 }
	FILENAME !~ /peer-R/ && $2 == "acked" { p = $3; if ($1 > ack[p]) ack[p] = $1 }
	function med(arr, m,   i, j, t) {
		for (i = 1; i <= m; i++) for (j = i + 1; j <= m; j++) if (arr[j] < arr[i]) { t = arr[i]; arr[i] = arr[j]; arr[j] = t }
		return m % 2 ? arr[(m + 1) / 2] : (arr[m / 2] + arr[m / 2 + 1]) / 2
	}
	END {
		k = 0
		for (id = 1; id <= nc; id++) if ((id in pause) && (id in ack) && (id in reply)) {
			k++
			a1[k] = (pause[id] - call[id]) * 1000; a2[k] = (ack[id] - pause[id]) * 1000
			a3[k] = (reply[id] - ack[id]) * 1000
		}
		if (k) printf "VMTEST INFO bench phase n=%d call_to_last_pause_ms=%.1f last_pause_to_last_ack_ms=%.1f last_ack_to_reply_ms=%.1f\n",
			k, med(a1, k), med(a2, k), med(a3, k)
	}' /run/peer-R.times /run/peer-A.times /run/peer-B.times

why=""
[ "$rc" -eq 0 ] || why="$(grep '^reset-error' /run/peer-R.log | head -n 3);"
for p in A:$a B:$b; do
	[ "$(peer_count "${p%%:*}" "^acked ")" -eq "$n" ] || why="$why ${p%%:*} acked $(peer_count "${p%%:*}" "^acked ") times;"
	[ "$(peer_count "${p%%:*}" "^value ${p#*:} reg=0x3800 mmap=0x00000000 pread=0x00000000 reset=yes\$")" -eq "$n" ] ||
		why="$why ${p%%:*}: TDBAL not reset every time;"
done
# Which model each reset used, in the daemon's own words (arbiter.c).
if [ "$model" = cdev ]; then said="hot reset with an empty group list \(cdev\)"; else said="hot reset with [0-9]+ group fds \(legacy\)"; fi
k=$(grep -Ec "Reset [0-9]+ of bus_0000_04: $said" /run/vfio-resetd.log)
[ "$k" -eq "$n" ] || why="$why the daemon's log says '$said' for $k of $n resets: $(grep -E 'Reset [0-9]+ of bus_0000_04: hot reset with' /run/vfio-resetd.log | head -n 2);"
vmtest_result "daemon reset $a x$n with 2 peers acking, each reset $model" "$why"

peer_stop A
peer_stop B
vmtest_stop
