#!/bin/bash
# What vfio-resetd's reset handshake costs over the kernel's own reset: boots
# the VM of tests/vm/run.sh once (tests/vm/scenarios/reset-overhead.sh) and, on
# the igb bus set 0000:04:00.0/0000:04:00.1 (two IOMMU groups), in one
# ownership model, times
#   - the raw VFIO_DEVICE_PCI_HOT_RESET (tests/vm/hot-reset-info.c
#     --time-hot-reset: legacy, with the set's group fds; cdev, --cdev too:
#     both cdevs bound to one iommufd, an empty group list) while no daemon
#     holds the set, N times;
#   - then ResetDevice through vfio-resetd owning the set in the same model
#     ([Ownership] Model=; the scenario fails unless the daemon's log names
#     that model for every reset) with two peers (tests/vm/bar-peer.c,
#     one function each) acking every pause, N times, and before each of
#     those resets the bus floor of its messages (bench/floor-round.c, the
#     floor of bench/peer-scale with 2 peers, on the guest's dbus-daemon),
# and prints min/median of each and the ratio end-to-end / raw (goal: at most
# 1.05x), with where the difference goes: the bus floor, and the daemon.
# Usage: bench/vm-reset-overhead.sh [--cache DIR] [--kernel debian|7.3]
#          [--model legacy|cdev] [-n N] [--doc docs/PERFORMANCE.md]
#   --cache  as run.sh (default $VMTEST_CACHE, else ~/.cache/vfio-resetd-vm)
#   --kernel as run.sh (default $VMTEST_KERNEL, else debian)
#   --model  the ownership model (default legacy; cdev needs --kernel 7.3)
#   -n       resets per path (default 10)
#   --doc    also write the table into that file, between its markers:
#            <!-- vm-reset-overhead --> (debian, legacy),
#            <!-- vm-reset-overhead-k73 --> (7.3, legacy),
#            <!-- vm-reset-overhead-cdev --> (7.3, cdev); a section is added
#            if they are missing
# Needs a built daemon and floor (make daemon/vfio-resetd bench/bus-floor).
set -eu

top=$(cd "$(dirname "$0")/.." && pwd)
cache=${VMTEST_CACHE:-$HOME/.cache/vfio-resetd-vm}
kernel=${VMTEST_KERNEL:-debian}
n=10 doc="" model=legacy
usage="usage: $0 [--cache DIR] [--kernel debian|7.3] [--model legacy|cdev] [-n N] [--doc FILE]"
while [ $# -gt 0 ]; do
	case $1 in
	--cache) cache=$2; shift 2 ;;
	--kernel) kernel=$2; shift 2 ;;
	--model) model=$2; shift 2 ;;
	-n) n=$2; shift 2 ;;
	--doc) doc=$2; shift 2 ;;
	*) echo "$usage" >&2; exit 2 ;;
	esac
done
case $kernel/$model in
debian/legacy) marker=vm-reset-overhead ;;
7.3/legacy) marker=vm-reset-overhead-k73 ;;
7.3/cdev) marker=vm-reset-overhead-cdev ;;
debian/cdev) echo "vm-reset-overhead: --model cdev needs --kernel 7.3 (no Debian kernel has IOMMUFD)" >&2; exit 2 ;;
*) echo "$usage" >&2; exit 2 ;;
esac
daemon=$top/daemon/vfio-resetd floor=$top/bench/bus-floor
[ -x "$daemon" ] && [ -x "$floor" ] ||
	{ echo "vm-reset-overhead: build the daemon and the floor first (make daemon/vfio-resetd bench/bus-floor)" >&2; exit 2; }

log=$(mktemp)
table=$(mktemp)
trap 'rm -f "$log" "$table" "$table.new"' EXIT
rc=0
"$top/tests/vm/run.sh" --cache "$cache" --kernel "$kernel" --scenario "$top/tests/vm/scenarios/reset-overhead.sh" \
	--bin "$daemon" --bin "$floor" --env "VMTEST_BENCH_N=$n" --env "VMTEST_BENCH_MODEL=$model" --log "$log" || rc=$?
[ "$rc" -eq 0 ] || { echo "vm-reset-overhead: the VM run failed (status $rc); log: see above" >&2; exit "$rc"; }

kdir=$cache/kernel
[ "$kernel" = debian ] || kdir=$("$top/tests/vm/build-kernel.sh")
kver=$(cat "$kdir/version")
qver=$("$cache/qemu/usr/bin/qemu-system-x86_64" --version | sed -n '1s/.*version \([^ ]*\).*/\1/p')

awk -v n="$n" -v model="$model" '
	function field(name,   i) { for (i = 1; i <= NF; i++) if (index($i, name "=") == 1) return substr($i, length(name) + 2); return "" }
	{ s = $0; sub(/^\[ */, "", s); t = s + 0; sub(/^[^]]*\] /, "", s); $0 = s }
	/^VMTEST INFO bench begin / { begin[$5] = t }
	/^VMTEST INFO bench end / { host[$5] = t - begin[$5] }
	/^VMTEST INFO bench result raw hot-reset / {
		# First batch: the other function unopened; second: both open.
		k = ++nraw; rawdev[k] = $7; rawmin[k] = field("min_us") / 1000; rawmed[k] = field("median_us") / 1000
	}
	/^VMTEST INFO bench result daemon reset-summary / {
		wmin = field("wall_min_us") / 1000; wmed = field("wall_median_us") / 1000
		dmin = field("daemon_min_us") / 1000; dmed = field("daemon_median_us") / 1000; ok = field("ok")
	}
	/^VMTEST INFO bench result daemon-kernel / { kmin = field("min_ms"); kmed = field("median_ms") }
	/^VMTEST INFO bench result floor / { fn = field("n"); fmin = field("min_us") / 1000; fmed = field("median_us") / 1000 }
	/^VMTEST INFO bench phase / {
		p1 = field("call_to_last_pause_ms"); p2 = field("last_pause_to_last_ack_ms"); p3 = field("last_ack_to_reply_ms")
	}
	END {
		# legacy: two batches, the last with both functions open; cdev: one, both bound.
		if (nraw < (model == "cdev" ? 1 : 2) || wmed == "" || fmed == "") { print "vm-reset-overhead: results missing from the log" > "/dev/stderr"; exit 1 }
		raw = rawmed[nraw]
		print "| path (bus set 04:00.0 + 04:00.1, 2 groups, " model " model) | n | min / median (ms) | median / raw |"
		print "|---|---|---|---|"
		if (model == "cdev")
			printf "| raw `VFIO_DEVICE_PCI_HOT_RESET` with an empty group list, both cdevs bound to one iommufd (hot-reset-info --cdev, no daemon) | %d | %.1f / %.1f | 1.00x |\n", n, rawmin[nraw], raw
		else
			printf "| raw `VFIO_DEVICE_PCI_HOT_RESET`, both functions open (hot-reset-info, no daemon) | %d | %.1f / %.1f | 1.00x |\n", n, rawmin[nraw], raw
		printf "| `ResetDevice` end to end, 2 peers acking (the requester'"'"'s round trip) | %d | %.1f / %.1f | **%.2fx** |\n", ok, wmin, wmed, wmed / raw
		printf "| `ResetDevice` as the daemon times it (`duration_usec`) | %d | %.1f / %.1f | %.2fx |\n", ok, dmin, dmed, dmed / raw
		printf "| the kernel reset inside it (daemon log, `VFIO_DEVICE_PCI_HOT_RESET took`) | %d | %.1f / %.1f | %.2fx |\n", ok, kmin, kmed, kmed / raw
		printf "| the bus floor: the same messages with 2 peers, bare sd-bus (bus-floor, before each reset) | %d | %.1f / %.1f | %.2fx |\n", fn, fmin, fmed, fmed / raw
		if (nraw >= 2)
			printf "| raw, the other function never opened (runtime D3hot, woken by each reset) | %d | %.1f / %.1f | %.2fx |\n", n, rawmin[1], rawmed[1], rawmed[1] / raw
		print ""
		printf "- End to end / raw, medians: **%.2fx** (goal: at most 1.05x): %s.\n", wmed / raw, wmed / raw <= 1.05 ? "met" : "not met under TCG"
		printf "- Added per reset, medians: %.1f ms end to end, of which %.1f ms from the call to the last peer holding its Pause, %.1f ms from there to the last PauseComplete, and %.1f ms from that to the reply around a %.1f ms kernel reset.\n", wmed - raw, p1, p2, p3, kmed
		printf "- The bus and the daemon, medians: of the %.1f ms added end to end over the raw ioctl, %.1f ms (%.0f%%) is the bus floor of the messages a reset needs (the call, 2 `Pause`, 2 `PauseComplete` and their replies, 2 `Resume`, the reply), run before each reset through the same dbus-daemon; the other %.1f ms (%.0f%%) is the daemon: its own work and its other signals. Over the kernel reset inside the same resets (%.1f ms added, unaffected by the load drifting between the raw batch and these), the floor is %.0f%%.\n", wmed - raw, fmed, 100 * fmed / (wmed - raw), wmed - raw - fmed, 100 * (wmed - raw - fmed) / (wmed - raw), wmed - kmed, 100 * fmed / (wmed - kmed)
		printf "- Host clock, whole batches: raw %.2f s for %d x %d resets (opening included), daemon %.2f s for %d (each floor included).\n", host["raw"], nraw, n, host["daemon"], n
	}
' "$log" >"$table"

opts="-n $n"
[ "$marker" = vm-reset-overhead ] || opts="--kernel $kernel --model $model $opts"
header="Measured $(date -u +%Y-%m-%d) by \`bench/vm-reset-overhead.sh $opts\`: kernel $kver, QEMU $qver (TCG, -smp 1), $n resets per path, one boot."
echo "$header"
echo
cat "$table"

[ -n "$doc" ] || exit 0
[ -f "$doc" ] || printf '# Performance\n' >"$doc"
if [ "$marker" != vm-reset-overhead ] && ! grep -q "^<!-- $marker -->\$" "$doc"; then
	printf '\n## What the handshake adds to a reset, kernel %s, %s model (VM, TCG)\n\n<!-- %s -->\n<!-- /%s -->\n' \
		"$kernel" "$model" "$marker" "$marker" >>"$doc"
elif ! grep -q '^<!-- vm-reset-overhead -->$' "$doc"; then
	cat >>"$doc" <<'EOF'

## What the handshake adds to a reset (VM, TCG)

`bench/vm-reset-overhead.sh` boots the test VM once and resets the igb bus
set 04:00.0/04:00.1 (two IOMMU groups) two ways: first the raw
`VFIO_DEVICE_PCI_HOT_RESET` by `tests/vm/hot-reset-info.c` while no daemon
holds the set, then `ResetDevice` through vfio-resetd while two peers
(`tests/vm/bar-peer.c`, one function each, BAR0 mapped) take a `Pause`, answer
`PauseComplete` at once and get `Resume`. The end-to-end time is the
requester's round trip on the guest's clock; the phases come from the peers'
and the requester's event times on that same clock.

The raw reset is timed with both functions open, as the daemon holds them: a
vfio-pci function nobody has open sits in runtime D3hot, and every reset must
wake it first (the last row shows what that costs). Under TCG every D-Bus
message costs emulated CPU time, so the milliseconds the handshake adds here
(about ten bus messages and four process wake-ups per reset) are far more
than on hardware, where they are tens of microseconds each.

<!-- vm-reset-overhead -->
<!-- /vm-reset-overhead -->
EOF
fi
{
	echo "$header"
	echo
	cat "$table"
} >"$table.new"
awk -v f="$table.new" -v m="$marker" '
	$0 == "<!-- " m " -->" { print; while ((getline l < f) > 0) print l; skip = 1; next }
	$0 == "<!-- /" m " -->" { skip = 0 }
	!skip
' "$doc" >"$doc.tmp"
mv "$doc.tmp" "$doc"
echo "vm-reset-overhead: wrote $doc"
