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
# pci_device PARENT BDF VENDOR DEVICE CLASS DRIVER UP [EXTRA]: one umockdev
# entry, in IOMMU group $group; UP leads from it to /sys ("../../.." under
# the host bridge, one more level behind a port).
pci_device() {
	cat <<EOF
P: /devices/pci0000:00/$1$2
E: SUBSYSTEM=pci
E: PCI_SLOT_NAME=$2
E: PCI_ID=${3^^}:${4^^}
A: vendor=0x$3
A: device=0x$4
A: class=$5
${8:+$8
}L: driver=$7/bus/pci/drivers/$6
L: iommu_group=$7/kernel/iommu_groups/$group

EOF
}
group=1 nodes=()
{
	for ((p = 1; p <= ports; p++)); do
		# root ports on bus 0 at device (p-1)/8 + 1, function (p-1)%8; bus p behind each
		port=$(printf '0000:00:%02x.%x' $(((p - 1) / 8 + 1)) $(((p - 1) % 8)))
		pci_device "" "$port" 1b36 000c 0x060400 pcieport ../../..
		group=$((group + 1))
		for ((s = 0; s < slots; s++)); do
			for ((f = 0; f < functions; f++)); do
				bdf=$(printf '0000:%02x:%02x.%x' "$p" "$s" "$f")
				pci_device "$port/" "$bdf" 8086 10c9 0x020000 vfio-pci ../../../.. "A: reset_method=flr"
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
