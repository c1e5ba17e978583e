#!/bin/sh
# A dma-buf importer and the reset handshake, on a kernel with IOMMUFD, VFIO
# cdevs and vfio-pci dma-buf export (7.3 built here: run.sh --kernel 7.3).
# The importer is iommufd (IOMMU_IOAS_MAP_FILE of the vfio-pci dma-buf) and
# what uses the mapping is a QEMU edu device's DMA, reading an igb's
# registers peer to peer through the IOMMU (tests/vm/dmabuf-importer.c).
#
# 1. The kernel alone (no daemon), on the igb 03:00.0 and the edu 00:0a.0,
#    both cdevs in one iommufd: export, map, read; memory decoding off
#    revokes (the read faults, a new MAP_FILE fails ENODEV); on again
#    un-revokes but leaves the old mapping dead (faults) while a new one
#    works; VFIO_DEVICE_RESET revokes the same way, and a new mapping reads
#    TDBAL at its reset value 0.
# 2. With the daemon, on the igb bus set 04:00.0/04:00.1: a peer takes
#    04:00.0 and exports its BAR0 as a dma-buf; importer A (edu 00:0a.0)
#    and importer B (edu 00:0b.0, --ignore-pause) each map it into their
#    own iommufd and Watch the set. A reset with Force: A gets Pause,
#    unmaps, acks; B keeps reading through its mapping, which works until
#    the kernel's hot reset revokes it and faults after; A gets Resume,
#    maps again (which the kernel refuses while revoked) and reads TDBAL 0;
#    B's stale mapping still faults after Resume, and a new one works.
# Only on a kernel with IOMMUFD, VFIO device cdevs and vfio-pci dma-buf
# export (run.sh --kernel 7.3); on another, run.sh skips it without booting.
# vmtest-config: IOMMUFD VFIO_DEVICE_CDEV VFIO_PCI_DMABUF
# vmtest-qemu-args: -device edu,addr=0a.0 -device edu,addr=0b.0
set -u
# shellcheck source=/dev/null
. /usr/lib/vmtest.sh

edu_a=0000:00:0a.0
edu_b=0000:00:0b.0
alone=0000:03:00.0
a=0000:04:00.0
b=0000:04:00.1
set_path=/org/vfioresetd1/devset/bus_0000_04
sock=/run/dmabuf.sock

if [ ! -c /dev/iommu ]; then
	vmtest_skip "$VMTEST_SCENARIO" "kernel $(uname -r) has no /dev/iommu (IOMMUFD): run.sh --kernel 7.3"
	exit 0
fi
need_programs vfio-resetd dmabuf-importer bar-peer || exit 0

# The edu devices are no NICs: bind them to vfio-pci here.
for e in $edu_a $edu_b; do
	echo vfio-pci >"/sys/bus/pci/devices/$e/driver_override"
	[ -e "/sys/bus/pci/devices/$e/driver" ] || echo "$e" >/sys/bus/pci/drivers_probe
	vmtest_info "$e $(cat "/sys/bus/pci/devices/$e/vendor"):$(cat "/sys/bus/pci/devices/$e/device") driver=$(pci_driver "$e") group=$(pci_group "$e") cdev=$(ls "/sys/bus/pci/devices/$e/vfio-dev" 2>/dev/null)"
done

# imp NAME ARGS...: dmabuf-importer in the background, lines as peer_start's.
imp_start() {
	_is=$1
	shift
	: >"/run/peer-$_is.log"
	: >"/run/peer-$_is.times"
	dmabuf-importer --log "/run/peer-$_is.log" --times "/run/peer-$_is.times" \
		--prefix "VMTEST INFO peer $_is:" "$@" &
	echo $! >"/run/peer-$_is.pid"
}
# t NAME ERE: the guest clock of NAME's first line matching ERE, or "".
t() { peer_time "$1" "$2"; }
# before T0 T1: T0 < T1 (both set).
before() { [ -n "$1" ] && [ -n "$2" ] && awk -v a="$1" -v b="$2" 'BEGIN { exit !(a < b) }'; }
dmar_faults() { vmtest_dmesg | grep -c "Request device \[$1\]"; }

# --- 1. the kernel's rules, no daemon ----------------------------------------
vmtest_dmesg_mark
imp_start S --standalone --export "$alone" --dma "$edu_a"
wait "$(peer_pid S)"
rc=$?
# expect TEST ERE: S said a line matching ERE.
expect() {
	if peer_has S "$2"; then
		vmtest_pass "standalone: $1"
	else
		vmtest_fail "standalone: $1" "no line matching '$2'; $(peer_line S "${3:-^step|^map-file|^error}")"
	fi
}
[ "$rc" -eq 0 ] || vmtest_fail "standalone: dmabuf-importer ran to its end" "status $rc: $(peer_line S '^error')"
expect "VFIO_DEVICE_FEATURE_DMA_BUF of BAR0 gives a vfio_pci_core dma-buf of 16 KiB" \
	"^exported $alone fd=[0-9]+ exp_name=vfio_pci_core size=16384\$" "^exported|^error"
expect "the dma-buf cannot be mmap()ed (no mmap in 7.3's vfio_pci_dmabuf_ops)" '^dmabuf-mmap EINVAL$' '^dmabuf-mmap'
expect "IOMMU_IOAS_MAP_FILE takes the dma-buf" '^map-file 0x1000000 ok$'
expect "the edu reads the igb's TDBAL through the mapping, peer to peer" \
	'^step mapped status=0x[0-9a-f]{8} tdbal=0x5a5a5a00 dma=ok$'
expect "memory decoding off: the read through the mapping faults" '^step memory-off .* dma=fault$'
expect "memory decoding off: a new IOMMU_IOAS_MAP_FILE fails ENODEV (revoked)" '^map-file 0x2000000 error=ENODEV$'
expect "memory decoding on again: the old mapping stays dead (iommufd does not map it back)" \
	'^step memory-on-old-mapping .* dma=fault$'
expect "memory decoding on again: a new mapping works" '^step memory-on-new-mapping status=0x[0-9a-f]{8} tdbal=0x5a5a5a00 dma=ok$'
expect "unmap and map again: the read works" '^step remapped status=0x[0-9a-f]{8} tdbal=0x5a5a5a00 dma=ok$'
expect "VFIO_DEVICE_RESET through the cdev" '^reset VFIO_DEVICE_RESET ok '
expect "after the reset the old mapping faults" '^step after-reset-old-mapping .* dma=fault$'
expect "after the reset a new mapping reads TDBAL at its reset value" \
	'^step after-reset-remapped status=0x[0-9a-f]{8} tdbal=0x00000000 dma=ok$'
n=$(dmar_faults "$edu_a")
if [ "$n" -ge 1 ]; then
	vmtest_pass "standalone: the IOMMU logged DMA faults of the edu ${edu_a#0000:} ($n lines)"
else
	vmtest_fail "standalone: the IOMMU logged DMA faults of the edu ${edu_a#0000:}" "none in dmesg"
fi
vmtest_dmesg | grep -m 3 "DMAR" | sed 's/^/VMTEST INFO dmesg: /'

# --- 2. the handshake with the daemon ----------------------------------------
managed_daemon_start "$a" "$b" || exit 0
if ! wait_for 30 managed; then
	vmtest_fail managed "$set_path is not Managed"
	vmtest_stop
	exit 0
fi
# Which ownership model the daemon took the set in (legacy or cdev): the
# exporter's device fd is the daemon's either way.
vmtest_info "$a Ownership=$(prop "$(device_path "$a")" org.vfioresetd1.Device Ownership 2>&1)"
vmtest_dmesg_mark
imp_start E --export "$a" --serve "$sock"
why=""
peer_wait E 30 "^serving $sock\$" || why="exporter: $(peer_line E '^error|^took|^exported');"
if [ -z "$why" ]; then
	imp_start A --import "$sock" --watch "$a" --dma "$edu_a"
	imp_start B --import "$sock" --watch "$a" --dma "$edu_b" --ignore-pause --sample 50
	peer_wait A 60 '^ready ' || why="$why importer A: $(peer_line A '^error|^map');"
	peer_wait B 60 '^ready ' || why="$why importer B: $(peer_line B '^error|^map');"
fi
for p in A B; do
	peer_has "$p" '^read 1 status=0x[0-9a-f]{8} tdbal=0x5a5a5a00 dma=ok mapped=yes at=[0-9.]+ \(first\)$' ||
		why="$why importer $p did not read TDBAL=0x5a5a5a00 through its mapping: $(peer_line "$p" '^read|^error');"
done
vmtest_result "a peer exports 04:00.0's BAR0; two Watch peers map the dma-buf and read through it" "$why"
if [ -n "$why" ]; then
	vmtest_stop
	exit 0
fi
peers=" $(prop "$set_path" org.vfioresetd1.DevSet Peers | tr '\n' ' ') "
case $peers in
*" $(peer_unique A) "*) case $peers in
	*" $(peer_unique B) "*) vmtest_pass "DevSet.Peers lists both importers" ;;
	*) vmtest_fail "DevSet.Peers lists both importers" "Peers '$peers' lack B $(peer_unique B)" ;;
	esac ;;
*) vmtest_fail "DevSet.Peers lists both importers" "Peers '$peers' lack A $(peer_unique A)" ;;
esac

# B ignores the pause: Force, and a short deadline.
reset_request R "$a" --force --timeout-usec 3000000
rc=$?
wait_for 20 peer_has A '\(after-resume\)$'
wait_for 20 peer_has B '\(after-resume, mapped again\)$'
id=$(sed -n 's/^pause \([0-9]*\) pause$/\1/p' "/run/peer-A.log" | tail -n 1)
if [ "$rc" -eq 0 ] && [ -n "$id" ]; then
	vmtest_pass "ResetDevice $a with Force answered done (reset $id)"
else
	vmtest_fail "ResetDevice $a with Force answered done" "status $rc: $(peer_line R '^reset-')"
fi
: "${id:=none}"

# A: the handshake, in order.
why=""
t_pause=$(t A "pause $id pause$")
t_unmap=$(t A "unmapped 0x1000000$")
t_ack=$(t A "acked $id$")
t_resume=$(t A "resume $id done$")
t_map=$(grep -E "^[0-9.]+ mapped 0x1000000$" /run/peer-A.times | tail -n 1 | cut -d' ' -f1)
before "$t_pause" "$t_unmap" || why="$why no pause before unmapping ($t_pause, $t_unmap);"
before "$t_unmap" "$t_ack" || why="$why did not unmap before acking ($t_unmap, $t_ack);"
before "$t_ack" "$t_resume" || why="$why no Resume after the ack ($t_ack, $t_resume);"
before "$t_resume" "$t_map" || why="$why did not map again after Resume ($t_resume, $t_map);"
peer_has A '^map-error' && why="$why MAP_FILE failed: $(peer_line A '^map-error');"
peer_has A '^read 2 status=0x[0-9a-f]{8} tdbal=0x00000000 dma=ok mapped=yes at=[0-9.]+ \(after-resume\)$' ||
	why="$why did not read TDBAL 0 through the new mapping: $(peer_line A '^read');"
vmtest_result "importer A: Pause, unmap, ack, (reset), Resume, map again, TDBAL reads its reset value" "$why"
vmtest_info "importer A (guest clock): pause $t_pause unmapped $t_unmap acked $t_ack resume $t_resume mapped $t_map"

# B: what the kernel did to the mapping nobody dropped. Its samples worked
# until A had acked and after (the pause came before the revoke), the last
# working one came before A's Resume and the next one failed (the hot reset
# in between revoked the dma-buf), and a read through it after Resume fails
# too (the kernel does not map it back).
why=""
# B's reads as "AT ok|fault", AT the guest clock of its peer-to-peer reads:
# its samples and the read through the stale mapping right after Resume.
# Whether a sample falls between the revoke and Resume (about 200 ms here)
# is luck; the stale read comes after both, so the timeline always has its
# failing read.
sed -n 's/^read [0-9]* .* dma=\([a-z]*\) mapped=yes at=\([0-9.]*\) (\(sample\|after-resume, stale mapping\))$/\2 \1/p' \
	/run/peer-B.log >/run/b.samples
t_fault=$(awk '$2 == "fault" { print $1; exit }' /run/b.samples)
t_ok_after_ack=$(awk -v t="$t_ack" '$2 == "ok" && $1 > t { print $1; exit }' /run/b.samples)
t_lastok=$(awk -v t="$t_fault" '$2 == "ok" && $1 < t { x = $1 } END { print x }' /run/b.samples)
early=$(awk -v t="$t_ack" '$2 == "fault" && $1 < t' /run/b.samples | wc -l)
peer_has B "^ignored $id\$" || why="$why did not get the pause ($id);"
[ "$early" -eq 0 ] || why="$why $early failed reads before A acked;"
before "$t_ack" "$t_ok_after_ack" || why="$why no working read after A acked (the mapping died before the reset?);"
before "$t_lastok" "$t_fault" || why="$why no failing read after the working ones ($t_lastok, $t_fault);"
before "$t_lastok" "$t_resume" || why="$why the last working read was not before A's Resume ($t_lastok, $t_resume);"
peer_has B '^read [0-9]+ status=0x00000000 tdbal=0x00000000 dma=fault mapped=yes at=[0-9.]+ \(after-resume, stale mapping\)$' ||
	why="$why the stale mapping did not fault after Resume: $(peer_line B 'stale');"
peer_has B '^read [0-9]+ status=0x[0-9a-f]{8} tdbal=0x00000000 dma=ok mapped=yes at=[0-9.]+ \(after-resume, mapped again\)$' ||
	why="$why a new mapping did not read TDBAL 0: $(peer_line B 'mapped again');"
vmtest_result "importer B (ignores Pause): its mapping works after the pause, dies in the reset, stays dead after Resume" "$why"
vmtest_info "importer B (guest clock): A acked $t_ack, B's first working read after it $t_ok_after_ack, its last working read $t_lastok, first failing read $t_fault; A's resume $t_resume"
nb=$(dmar_faults "$edu_b")
na=$(dmar_faults "$edu_a")
if [ "$nb" -ge 1 ] && [ "$na" -eq 0 ]; then
	vmtest_pass "the IOMMU logged DMA faults of B's edu ($nb lines), none of A's"
else
	vmtest_fail "the IOMMU logged DMA faults of B's edu, none of A's" "B's: $nb, A's: $na"
fi

# A second reset, B gone: A alone, the buffer usable again after it.
peer_stop B
reset_request R2 "$a" --timeout-usec 10000000
rc=$?
# shellcheck disable=SC2016 # expanded by the inner sh
wait_for 20 sh -c '[ $(grep -c "(after-resume)$" /run/peer-A.log) -ge 2 ]'
why=""
[ "$rc" -eq 0 ] || why="status $rc: $(peer_line R2 '^reset-');"
[ "$(peer_count A '^unmapped 0x1000000$')" -eq 2 ] || why="$why A did not unmap twice;"
[ "$(peer_count A 'tdbal=0x00000000 dma=ok mapped=yes at=[0-9.]+ \(after-resume\)$')" -eq 2 ] || why="$why A did not read through a new mapping twice;"
vmtest_result "a second reset without Force: A unmaps, acks, maps again and reads" "$why"
daemon_has "Reset $id of bus_0000_04: VFIO_DEVICE_PCI_HOT_RESET took" &&
	vmtest_info "$(daemon_line "Reset $id of bus_0000_04: VFIO_DEVICE_PCI_HOT_RESET took")"

for p in A E; do peer_stop "$p"; done
daemon_show_resets
vmtest_stop
