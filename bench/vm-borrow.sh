#!/bin/bash
# What vfio-resetd's borrowed reset costs over doing it by hand: boots the VM
# of tests/vm/run.sh once (tests/vm/scenarios/borrow-overhead.sh) and, on the
# igb bus set 0000:04:00.0/0000:04:00.1 (two IOMMU groups) held by two
# tests/vm/holder.c processes that know nothing of the daemon, times
#   - the raw borrowed reset (tests/vm/borrow-reset.c: SIGSTOP both,
#     pidfd_getfd their group fds, a device fd from each, the hot reset, IDs
#     read back, close, SIGCONT), N times;
#   - then ResetDevice with Borrow and Force through vfio-resetd, N times,
# and prints min/median of each and the ratio daemon / raw.
# Usage: bench/vm-borrow.sh [--cache DIR] [-n N] [--doc docs/PERFORMANCE.md]
#   --cache  as run.sh (default $VMTEST_CACHE, else ~/.cache/vfio-resetd-vm)
#   -n       resets per path (default 10)
#   --doc    also write the table into that file, between its
#            <!-- vm-borrow --> markers (a section is added if missing)
# Needs a built daemon (make daemon/vfio-resetd) that has Borrow.
set -eu

top=$(cd "$(dirname "$0")/.." && pwd)
cache=${VMTEST_CACHE:-$HOME/.cache/vfio-resetd-vm}
n=10 doc=""
while [ $# -gt 0 ]; do
	case $1 in
	--cache) cache=$2; shift 2 ;;
	-n) n=$2; shift 2 ;;
	--doc) doc=$2; shift 2 ;;
	*) echo "usage: $0 [--cache DIR] [-n N] [--doc FILE]" >&2; exit 2 ;;
	esac
done
daemon=$top/daemon/vfio-resetd
[ -x "$daemon" ] || { echo "vm-borrow: build the daemon first (make daemon/vfio-resetd)" >&2; exit 2; }

log=$(mktemp)
table=$(mktemp)
trap 'rm -f "$log" "$table" "$table.new"' EXIT
rc=0
"$top/tests/vm/run.sh" --cache "$cache" --scenario "$top/tests/vm/scenarios/borrow-overhead.sh" \
	--bin "$daemon" --env "VMTEST_BENCH_N=$n" --log "$log" || rc=$?
[ "$rc" -eq 0 ] || { echo "vm-borrow: the VM run failed (status $rc); log: see above" >&2; exit "$rc"; }

kver=$(cat "$cache/kernel/version")
qver=$("$cache/qemu/usr/bin/qemu-system-x86_64" --version | sed -n '1s/.*version \([^ ]*\).*/\1/p')

awk -v n="$n" '
	function field(name,   i) { for (i = 1; i <= NF; i++) if (index($i, name "=") == 1) return substr($i, length(name) + 2); return "" }
	function ms(name) { return field(name) / 1000 }
	{ s = $0; sub(/^\[ */, "", s); t = s + 0; sub(/^[^]]*\] /, "", s); $0 = s }
	/^VMTEST INFO bench begin / { begin[$5] = t }
	/^VMTEST INFO bench end / { host[$5] = t - begin[$5] }
	/^VMTEST INFO bench result raw summary / {
		rok = field("ok"); rmin = ms("total_min_us"); rmed = ms("total_median_us")
		imin = ms("ioctl_min_us"); imed = ms("ioctl_median_us")
		stop = ms("stop_median_us"); borrow = ms("borrow_median_us"); after = ms("after_median_us")
	}
	/^VMTEST INFO bench result daemon reset-summary / {
		ok = field("ok"); wmin = ms("wall_min_us"); wmed = ms("wall_median_us")
		dmin = ms("daemon_min_us"); dmed = ms("daemon_median_us")
	}
	/^VMTEST INFO bench result daemon-kernel / { kn = field("n"); kmin = field("min_ms"); kmed = field("median_ms") }
	/^VMTEST INFO bench result holders-scan / { hscan = field("notowned_median_ms"); hkind = field("invalidargs_median_ms"); nproc = field("processes") }
	END {
		if (rmed == "" || wmed == "") { print "vm-borrow: results missing from the log" > "/dev/stderr"; exit 1 }
		print "| path (bus set 04:00.0 + 04:00.1, 2 groups, 2 holders) | n | min / median (ms) | median / raw |"
		print "|---|---|---|---|"
		printf "| raw borrowed reset, SIGSTOP to SIGCONT (borrow-reset.c, no daemon) | %d | %.1f / %.1f | 1.00x |\n", rok, rmin, rmed
		printf "| the hot reset ioctl inside it | %d | %.1f / %.1f | %.2fx |\n", rok, imin, imed, imed / rmed
		printf "| `ResetDevice` Borrow + Force end to end (the requester'"'"'s round trip) | %d | %.1f / %.1f | **%.2fx** |\n", ok, wmin, wmed, wmed / rmed
		printf "| `ResetDevice` as the daemon times it (`duration_usec`) | %d | %.1f / %.1f | %.2fx |\n", ok, dmin, dmed, dmed / rmed
		if (kmed != "")
			printf "| the kernel reset inside it (daemon log, `VFIO_DEVICE_PCI_HOT_RESET took`) | %d | %.1f / %.1f | %.2fx |\n", kn, kmin, kmed, kmed / rmed
		print ""
		printf "- Daemon / raw, medians: **%.2fx**; the daemon adds %.1f ms per borrowed reset end to end.\n", wmed / rmed, wmed - rmed
		printf "- The raw reset, medians: %.1f ms to stop both holders, %.1f ms to borrow the group fds and open the device fds, %.1f ms in the ioctl, %.1f ms to read the IDs back and close.\n", stop, borrow, imed, after
		printf "- Outside `duration_usec`, medians: %.1f ms of the round trip. The daemon looks up the holders (a scan of /proc/*/fd) when the call comes in, before the reset'"'"'s clock starts: a `ResetDevice` refused `NotOwned`, which is one such scan, took %.1f ms here against %.1f ms for one refused `InvalidArgs` before any scan (%d processes).\n", wmed - dmed, hscan, hkind, nproc
		printf "- Host clock, whole batches: raw %.2f s for %d, daemon %.2f s for %d.\n", host["raw"], n, host["daemon"], n
	}
' "$log" >"$table"

header="Measured $(date -u +%Y-%m-%d) by \`bench/vm-borrow.sh -n $n\`: kernel $kver, QEMU $qver (TCG, -smp 1), $n resets per path, one boot, guest clock."
echo "$header"
echo
cat "$table"

[ -n "$doc" ] || exit 0
[ -f "$doc" ] || printf '# Performance\n' >"$doc"
if ! grep -q '^<!-- vm-borrow -->$' "$doc"; then
	cat >>"$doc" <<'EOF'

## What the daemon adds to a borrowed reset (VM, TCG)

`bench/vm-borrow.sh` boots the test VM once. Two `tests/vm/holder.c`
processes, which know nothing of the daemon (as QEMU or a DPDK app), hold one
function each of the igb bus set 04:00.0/04:00.1 (two IOMMU groups) with BAR0
mapped. The set is reset two ways: first by hand with
`tests/vm/borrow-reset.c` (SIGSTOP both, `pidfd_getfd` their group fds,
`VFIO_GROUP_GET_DEVICE_FD` on each borrowed group fd, the hot reset, the IDs
read back, everything closed, SIGCONT), then by `ResetDevice` with `Borrow`
and `Force` through vfio-resetd, which does the same itself. Both are timed
on the guest's clock (CLOCK_MONOTONIC under TCG, not the host's).

<!-- vm-borrow -->
<!-- /vm-borrow -->
EOF
fi
{
	echo "$header"
	echo
	cat "$table"
} >"$table.new"
awk -v f="$table.new" '
	/^<!-- vm-borrow -->$/ { print; while ((getline l < f) > 0) print l; skip = 1; next }
	/^<!-- \/vm-borrow -->$/ { skip = 0 }
	!skip
' "$doc" >"$doc.tmp"
mv "$doc.tmp" "$doc"
echo "vm-borrow: wrote $doc"
