#!/bin/bash
# The raw kernel floor of every reset the daemon coordinates: boots the VM of
# tests/vm/run.sh, times VFIO_DEVICE_PCI_HOT_RESET of each multi-device set and
# VFIO_DEVICE_RESET of each device kind with tests/vm/hot-reset-info.c, and
# prints min/median per operation and ratios between them.
# Usage: bench/vm-ioctl-floor.sh [--cache DIR] [-n N] [--doc docs/PERFORMANCE.md]
#   --cache  as run.sh (default $VMTEST_CACHE, else ~/.cache/vfio-resetd-vm)
#   -n       resets per operation (default 10)
#   --doc    also write the table into that file, between its
#            <!-- vm-ioctl-floor --> markers (the file is created if missing)
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

log=$(mktemp)
table=$(mktemp)
trap 'rm -f "$log" "$table"' EXIT
rc=0
"$top/tests/vm/run.sh" --cache "$cache" --scenario "$top/tests/vm/scenarios/ioctl-floor.sh" \
	--env "VMTEST_BENCH_N=$n" --log "$log" || rc=$?
[ "$rc" -eq 0 ] || { echo "vm-ioctl-floor: the VM run failed (status $rc)" >&2; exit "$rc"; }

kver=$(cat "$cache/kernel/version")
qver=$("$cache/qemu/usr/bin/qemu-system-x86_64" --version | sed -n '1s/.*version \([^ ]*\).*/\1/p')

# From the stamped log: the guest's own min/median, and the host's clock
# from `bench begin` to `bench end` divided by n (includes starting the checker).
awk -v n="$n" '
	{ s = $0; sub(/^\[ */, "", s); t = s + 0; sub(/^[^]]*\] /, "", s); $0 = s }
	/^VMTEST INFO bench begin / { begin[$5 " " $6] = t }
	/^VMTEST INFO bench end / { host[$5 " " $6] = (t - begin[$5 " " $6]) * 1000 / n }
	/^VMTEST INFO bench result / && / n=/ {
		key = $5 " " $7; min = mid = ""; err = ""
		for (i = 8; i <= NF; i++) {
			if ($i ~ /^min_us=/) min = substr($i, 8) / 1000
			if ($i ~ /^median_us=/) mid = substr($i, 11) / 1000
			if ($i ~ /^errno=/) err = substr($i, 7)
		}
		order[++count] = key; mins[key] = min; meds[key] = mid; errs[key] = err
	}
	END {
		what["hot-reset-bridge-bus"] = "hot reset, bus behind pcie-pci-bridge (2 x e1000, 1 group)"
		what["hot-reset-slot-1group"] = "hot reset, pciehp slot (2 x e1000e, 1 group)"
		what["hot-reset-slot-2groups"] = "hot reset, pciehp slot (2 x igb, 2 groups)"
		what["hot-reset-bus-2groups"] = "hot reset, root-port bus, hotplug=off (2 x igb, 2 groups)"
		what["function-reset-e1000e-pm"] = "`VFIO_DEVICE_RESET` e1000e on the root bus (PM reset)"
		what["function-reset-igb-flr"] = "`VFIO_DEVICE_RESET` igb (FLR)"
		what["function-reset-e1000"] = "`VFIO_DEVICE_RESET` e1000 behind the bridge"
		base = meds[order[1]]
		print "| operation | device | min / median (ms) | host clock, mean (ms) | median / bridge-bus hot reset |"
		print "|---|---|---|---|---|"
		for (i = 1; i <= count; i++) {
			k = order[i]; split(k, p, " ")
			if (meds[k] == "") {
				printf "| %s | %s | fails %s | | |\n", what[p[1]], p[2], errs[k]
				continue
			}
			printf "| %s | %s | %.1f / %.1f | %.1f | %.1fx |\n", what[p[1]], p[2], mins[k], meds[k], host[k], meds[k] / base
			med[p[1] " " p[2]] = meds[k]
		}
		print ""
		r("pciehp slot, 2 groups / 1 group", med["hot-reset-slot-2groups 0000:03:00.0"], med["hot-reset-slot-1group 0000:02:00.0"])
		r("root-port bus / pciehp slot (both 2 x igb, 2 groups)", med["hot-reset-bus-2groups 0000:04:00.0"], med["hot-reset-slot-2groups 0000:03:00.0"])
		r("igb: slot hot reset / FLR", med["hot-reset-slot-2groups 0000:03:00.0"], med["function-reset-igb-flr 0000:03:00.0"])
		r("igb FLR / e1000e PM reset", med["function-reset-igb-flr 0000:03:00.0"], med["function-reset-e1000e-pm 0000:00:02.0"])
	}
	function r(label, a, b) { if (a != "" && b != "") printf "- %s: %.2f\n", label, a / b }
' "$log" >"$table"

header="Measured $(date -u +%Y-%m-%d) by \`bench/vm-ioctl-floor.sh -n $n\`: kernel $kver, QEMU $qver (TCG, -smp 1), $n resets per operation."
echo "$header"
echo
cat "$table"

[ -n "$doc" ] || exit 0
if [ ! -f "$doc" ]; then
	cat >"$doc" <<'EOF'
# Performance

## Kernel floor of each reset (VM, TCG)

These are the raw kernel costs of the resets vfio-resetd coordinates,
measured inside the test VM of `tests/vm/run.sh` (shared VM.md's layout) by
`tests/vm/hot-reset-info.c` with no daemon running: `VFIO_DEVICE_PCI_HOT_RESET`
with every group of the set open, and `VFIO_DEVICE_RESET`. Whatever the daemon
adds (quiescing peers, bus round trips) comes on top of these floors.

The guest's clock times each ioctl; the host's clock, from the stamped serial
console, times each batch as a check that the guest clock is not off (it
includes starting the checker and opening the groups, so it reads higher). The machine is
shared and QEMU runs under TCG, so absolute times are noisy and far from
hardware: compare the ratios, not the milliseconds. Run
`bench/vm-ioctl-floor.sh --doc docs/PERFORMANCE.md` to refresh the table.

<!-- vm-ioctl-floor -->
<!-- /vm-ioctl-floor -->
EOF
fi
grep -q '^<!-- vm-ioctl-floor -->$' "$doc" ||
	printf '\n<!-- vm-ioctl-floor -->\n<!-- /vm-ioctl-floor -->\n' >>"$doc"
{
	echo "$header"
	echo
	cat "$table"
} >"$table.new"
awk -v f="$table.new" '
	/^<!-- vm-ioctl-floor -->$/ { print; while ((getline l < f) > 0) print l; skip = 1; next }
	/^<!-- \/vm-ioctl-floor -->$/ { skip = 0 }
	!skip
' "$doc" >"$doc.tmp"
mv "$doc.tmp" "$doc"
rm -f "$table.new"
echo "vm-ioctl-floor: wrote $doc"
