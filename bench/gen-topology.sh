#!/bin/bash
# A fake sysfs of any size for the benches, in the format of
# tests/topologies/ (NAME.umockdev, NAME.sysfs; tests/testbed.h reads them):
# PORTS PCIe root ports without hotplug (so each bus is one bus dev_set, as
# vfio-pci makes it when the slot cannot be reset: see VM layout 04:00),
# each with SLOTS devices of FUNCTIONS functions (igb, vfio-pci, an IOMMU
# group per function, as the 82576's ACS quirk gives, and its /dev/vfio/N).
# Prints the number of vfio devices.
# --no-nodes leaves out the /dev/vfio/N nodes (umockdev makes a pty of each,
# and a host has 4096 ptys at most by default).
# Usage: bench/gen-topology.sh [--no-nodes] DIR NAME PORTS SLOTS FUNCTIONS
set -eu
with_nodes=1
[ "${1:-}" != --no-nodes ] || { with_nodes=0; shift; }
[ $# -eq 5 ] || { echo "usage: $0 [--no-nodes] DIR NAME PORTS SLOTS FUNCTIONS" >&2; exit 2; }
dir=$1 name=$2 ports=$3 slots=$4 functions=$5
[ "$ports" -ge 1 ] && [ "$ports" -le 255 ] && [ "$slots" -ge 1 ] && [ "$slots" -le 32 ] &&
	[ "$functions" -ge 1 ] && [ "$functions" -le 8 ] ||
	{ echo "$0: 1-255 ports, 1-32 slots, 1-8 functions" >&2; exit 2; }
mkdir -p "$dir"
group=1 nodes=()
{
	for ((p = 1; p <= ports; p++)); do
		# root ports on bus 0 at device (p-1)/8 + 1, function (p-1)%8; bus p behind each
		port=$(printf '0000:00:%02x.%x' $(((p - 1) / 8 + 1)) $(((p - 1) % 8)))
		cat <<EOF
P: /devices/pci0000:00/$port
E: SUBSYSTEM=pci
E: PCI_SLOT_NAME=$port
E: PCI_ID=1B36:000C
A: vendor=0x1b36
A: device=0x000c
A: class=0x060400
L: driver=../../../bus/pci/drivers/pcieport
L: iommu_group=../../../kernel/iommu_groups/$group

EOF
		group=$((group + 1))
		for ((s = 0; s < slots; s++)); do
			for ((f = 0; f < functions; f++)); do
				bdf=$(printf '0000:%02x:%02x.%x' "$p" "$s" "$f")
				cat <<EOF
P: /devices/pci0000:00/$port/$bdf
E: SUBSYSTEM=pci
E: PCI_SLOT_NAME=$bdf
E: PCI_ID=8086:10C9
A: vendor=0x8086
A: device=0x10c9
A: class=0x020000
A: reset_method=flr
L: driver=../../../../bus/pci/drivers/vfio-pci
L: iommu_group=../../../../kernel/iommu_groups/$group

EOF
				[ "$with_nodes" -eq 0 ] || nodes+=("$group")
				group=$((group + 1))
			done
		done
	done
	# each function's group node, /dev/vfio/N (a pty under umockdev)
	for g in ${nodes[@]+"${nodes[@]}"}; do
		cat <<EOF
P: /devices/virtual/vfio/$g
N: vfio/$g
E: SUBSYSTEM=vfio
E: DEVNAME=/dev/vfio/$g
E: MAJOR=243
E: MINOR=$g
A: dev=243:$g

EOF
	done
} >"$dir/$name.umockdev"
echo "module/vfio_pci_core/holders/vfio_pci=" >"$dir/$name.sysfs"
echo $((ports * slots * functions))
