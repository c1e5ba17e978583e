#!/bin/sh
# A restart without loss in the cdev model, under the real systemd (252) of
# a Debian root on the 7.3 kernel: vfio-resetd installed by `make install`,
# started as a system service (with --debug by a drop-in, for the fd store's
# names in its journal), owning the igb bus set 04:00.0/04:00.1 by its config
# file with [Ownership] Model=cdev: one iommufd context, both cdevs bound to
# it, no group opened; the cdevs parked as cdev-pci_..dev-D, then as
# ...dev-D.ioas-N once a peer has an IOAS. Two bar-peers take one function
# each (an IOAS of its own each), write TDBAL through BAR0 and map a DMA
# buffer into their IOAS: A (--rejoin) takes its device again from a
# restarted daemon, B does not.
#  1. `systemctl kill -s KILL`: systemd restarts it; the new process takes
#     the context and both cdevs back ("came back attached to IOAS N"),
#     IommufdDevId and IommufdIoasId as they were, TDBAL as written (no
#     reset); A gets the same IOAS again, its DMA mapping still in it
#     (IOMMU_IOAS_UNMAP of its IOVA answers its length).
#  2. While B, a peer from before, holds its cdev without taking it again,
#     TakeDevice of its function from another process is Busy naming B's
#     pid; once B exited, the next taker (C2, --rejoin) gets a new IOAS, and
#     B's is destroyed (a map into its id: ENOENT).
#  3. `systemctl restart`: the same again (systemd 252 keeps the store while
#     the restart's job runs): A and C get their IOAS back, mappings kept.
# vmtest-root: debian
# vmtest-config: IOMMUFD VFIO_DEVICE_CDEV
set -u
# shellcheck source=/dev/null
. /usr/lib/vmtest/vmtest.sh

[ "${1:-}" = prepare ] && exit 0

igb_bus_set
need_programs vfio-resetd vfio-resetctl bar-peer || exit 0
dev_prop() { prop "$(device_path "$1")" org.vfioresetd1.Device "$2"; }
# stored_name ADDR DEVID [IOAS]: the cdev's name in the fd store.
stored_name() { echo "cdev-pci_$(echo "$1" | tr ':.' '__').dev-$2${3:+.ioas-$3}"; }
# ids_why ADDR DEVID IOAS: nothing when the daemon says ADDR has them.
ids_why() {
	_iw_dev=$(dev_prop "$1" IommufdDevId) _iw_ioas=$(dev_prop "$1" IommufdIoasId)
	[ "$_iw_dev" = "$2" ] || printf ' %s: IommufdDevId %s, was %s;' "$1" "$_iw_dev" "$2"
	[ "$_iw_ioas" = "$3" ] || printf ' %s: IommufdIoasId %s, was %s;' "$1" "$_iw_ioas" "$3"
}
# came_back_why JOURNAL ADDR DEVID IOAS: nothing when the daemon whose
# journal is in file JOURNAL took ADDR's cdev back attached to IOAS.
came_back_why() {
	grep -q "Took $(stored_name "$2" "$3" "$4") back from the fd store" "$1" ||
		printf ' %s not taken back as %s: %s;' "$2" "$(stored_name "$2" "$3" "$4")" \
			"$(grep "Took cdev-pci_$(echo "$2" | tr ':.' '__')" "$1" | tr '\n' ' ')"
	grep -q "$2 came back attached to IOAS $4, its peer's before the restart" "$1" ||
		printf ' no "%s came back attached to IOAS %s": %s;' "$2" "$4" "$(grep "$2 came back" "$1" | tr '\n' ' ')"
}
# took_back_why JOURNAL: nothing when that start took the context back and
# opened, bound and refused nothing.
took_back_why() {
	grep -q 'The service manager passed 3 fds from the fd store' "$1" ||
		printf ' not 3 fds passed: %s;' "$(grep 'fds from the fd store' "$1")"
	grep -q 'Took iommufd-bus_0000_04 back from the fd store' "$1" || printf ' the iommufd context not taken back;'
	! grep -Eq 'Opened IOMMU group|Opened /dev/iommu|^Bound ' "$1" ||
		printf ' it opened: %s;' "$(grep -E 'Opened IOMMU group|Opened /dev/iommu|^Bound ' "$1" | tr '\n' ' ')"
	! grep -Eq 'Refusing|not needed any more|which the iommufd context' "$1" ||
		printf ' it refused stored fds: %s;' "$(grep -E 'Refusing|not needed|which the iommufd' "$1" | tr '\n' ' ')"
}
# kept_why PEER ADDR IOAS N: nothing when PEER's Nth "ioas-kept" line says
# its IOAS is IOAS still, and the mapping it made there is.
kept_why() {
	_kw=$(grep "^ioas-kept $2 " "/run/peer-$1.log" | sed -n "${4}p")
	case $_kw in
	"ioas-kept $2 id=$3 now=$3 iova=0x"*" unmap=65536 remap=ok") ;;
	*) printf ' peer %s: %s;' "$1" "${_kw:-no ioas-kept line $4}" ;;
	esac
}

# 0. The service, owning the set through cdev; the cdevs' names in the store.
mkdir -p "/etc/systemd/system/$VMTEST_UNIT.d"
exec_start=$(systemctl cat "$VMTEST_UNIT" | sed -n 's/^ExecStart=\(..*\)$/\1/p' | tail -n 1)
printf '[Service]\nExecStart=\nExecStart=%s --debug\n' "$exec_start" >"/etc/systemd/system/$VMTEST_UNIT.d/zz-vmtest-debug.conf"
systemctl daemon-reload
VMTEST_OWNERSHIP=cdev service_manage 60 "$a" "$b"
pid1=$(main_pid)
journal_of "$pid1" >/run/journal1
why=$service_why
for d in "$a" "$b"; do
	o=$(dev_prop "$d" Ownership)
	[ "$o" = cdev ] || why="$why $d is owned by model '$o', not cdev;"
done
devid_a=$(dev_prop "$a" IommufdDevId) devid_b=$(dev_prop "$b" IommufdDevId)
[ "${devid_a:-0}" -gt 0 ] && [ "${devid_b:-0}" -gt 0 ] && [ "$devid_a" != "$devid_b" ] ||
	why="$why dev ids '$devid_a' and '$devid_b';"
! grep -q 'Opened IOMMU group' /run/journal1 || why="$why it opened a group: $(grep 'Opened IOMMU group' /run/journal1 | tr '\n' ' ');"
for d in "$a:$devid_a" "$b:$devid_b"; do
	n=$(stored_name "${d%:*}" "${d##*:}")
	grep -q "Parked $n (fd [0-9]*) in the fd store" /run/journal1 ||
		why="$why no 'Parked $n': $(grep 'Parked cdev' /run/journal1 | tr '\n' ' ');"
done
store=$(unit_prop NFileDescriptorStore)
[ "$store" = 3 ] || why="$why NFileDescriptorStore=$store, not 3 (the context, 2 cdevs);"
vmtest_result "vfio-resetd (pid $pid1) owns $a and $b through cdev (dev ids $devid_a, $devid_b) from $service_conf (Model=cdev), no group opened, parked as $(stored_name "$a" "$devid_a") and $(stored_name "$b" "$devid_b")" "$why"
grep -E 'Opened|Bound|fd store' /run/journal1 | show "vfio-resetd $pid1"
if [ -n "$why" ]; then
	journalctl --no-pager -b -u "$VMTEST_UNIT" | show journal
	exit 0
fi

# The peers: one function each, TDBAL written through BAR0, a DMA buffer
# mapped into each one's IOAS.
why=""
peer_start A --take "$a" --ack --rejoin || why="$why peer A: $(cat /run/peer-A.log);"
peer_start B --take "$b" --ack || why="$why peer B: $(cat /run/peer-B.log);"
pid_b=$(peer_pid B)
ioas_a=$(dev_prop "$a" IommufdIoasId) ioas_b=$(dev_prop "$b" IommufdIoasId)
# took_why PEER ADDR IOAS: nothing when PEER wrote TDBAL of ADDR and mapped
# a buffer into IOAS.
took_why() {
	peer_has "$1" "^wrote $2 reg=0x3800 value=$written readback=$written\$" ||
		printf ' peer %s could not write TDBAL of %s: %s;' "$1" "$2" "$(peer_line "$1" 'wrote|error')"
	peer_has "$1" "^ioas $2 id=$3 map=ok iova=0x" || printf ' peer %s could not map into IOAS %s: %s;' "$1" "$3" \
		"$(peer_line "$1" '^ioas')"
}
why="$why$(took_why A "$a" "$ioas_a")$(took_why B "$b" "$ioas_b")"
[ "${ioas_a:-0}" -gt 0 ] && [ "${ioas_b:-0}" -gt 0 ] && [ "$ioas_a" != "$ioas_b" ] ||
	why="$why IommufdIoasId '$ioas_a' and '$ioas_b': not two IOAS;"
wait_for 10 set_peers_are 2 || why="$why Peers: $(prop "$set_path" org.vfioresetd1.DevSet Peers | tr '\n' ' ');"
journal_of "$pid1" >/run/journal1
# renamed_why ADDR DEVID IOAS: nothing when the journal (/run/journal1) shows
# ADDR's cdev dropped under its name without an IOAS and parked with IOAS.
renamed_why() {
	grep -q "Dropped $(stored_name "$1" "$2") from the fd store" /run/journal1 ||
		printf ' %s not dropped;' "$(stored_name "$1" "$2")"
	grep -q "Parked $(stored_name "$1" "$2" "$3") (fd [0-9]*) in the fd store" /run/journal1 ||
		printf ' no "Parked %s": %s;' "$(stored_name "$1" "$2" "$3")" "$(grep 'Parked cdev' /run/journal1 | tr '\n' ' ')"
}
why="$why$(renamed_why "$a" "$devid_a" "$ioas_a")$(renamed_why "$b" "$devid_b" "$ioas_b")"
store=$(unit_prop NFileDescriptorStore)
[ "$store" = 3 ] || why="$why NFileDescriptorStore=$store after the renames, not 3;"
vmtest_result "two peers: A (pid $(peer_pid A)) on $a in IOAS $ioas_a, B (pid $pid_b) on $b in IOAS $ioas_b, TDBAL=$written through BAR0, a DMA buffer mapped into each IOAS, the cdevs parked again as $(stored_name "$a" "$devid_a" "$ioas_a") and $(stored_name "$b" "$devid_b" "$ioas_b")" "$why"
[ -z "$why" ] || exit 0

# 1. Killed: systemd restarts it, it takes the cdevs back with their IOAS.
service_killed "$pid1" /run/journal2
pid2=$service_pid restarts=$service_restarts
store=$(unit_prop NFileDescriptorStore)
why=$service_why
[ "$restarts" = 1 ] || why="$why NRestarts=$restarts;"
why="$why$(took_back_why /run/journal2)"
why="$why$(came_back_why /run/journal2 "$a" "$devid_a" "$ioas_a")$(came_back_why /run/journal2 "$b" "$devid_b" "$ioas_b")"
why="$why$(ids_why "$a" "$devid_a" "$ioas_a")$(ids_why "$b" "$devid_b" "$ioas_b")"
[ "$store" = 3 ] || why="$why NFileDescriptorStore=$store;"
managed || why="$why the set is not Managed;"
vmtest_result "systemctl kill -s KILL: systemd restarted it (NRestarts=$restarts, pid $pid2), which took the context and both cdevs back attached to IOAS $ioas_a and $ioas_b, dev ids and IOAS ids as they were" "$why"
grep -E 'fd store|came back|still holds|Opened|Bound' /run/journal2 | show "vfio-resetd $pid2"

why=""
peer_wait A 20 "^rejoined $a paused=0 reg=0x3800 value=$written\$" || why="$why peer A: $(peer_line A '^(rejoin|daemon)');"
wait_for 10 peer_has A "^ioas-kept $a "
why="$why$(kept_why A "$a" "$ioas_a" 1)"
peer_wait B 20 "^held $b reg=0x3800 value=$written\$" || why="$why peer B: $(peer_line B '^(held|daemon)');"
why="$why$(ids_why "$a" "$devid_a" "$ioas_a")"
vmtest_result "A took $a again and got IOAS $ioas_a back with its DMA mapping (IOMMU_IOAS_UNMAP of its IOVA: 65536); TDBAL still $written on both (no reset)" "$why"

# 2. B holds its cdev and has not taken it again: its group is its own.
why=""
grep -q "IOMMU group $(pci_group "$b"): pid $pid_b (bar-peer.*) still holds its device's cdev" /run/journal2 ||
	why="$why the journal does not name B (pid $pid_b) as the holder of $b's cdev: $(grep 'still holds' /run/journal2 | tr '\n' ' ');"
peer_start C --take "$b" --ack --rejoin && why="$why C took $b;"
peer_has C "^error org.vfioresetd1.Error.Busy .*still held by pid $pid_b .*its peer before vfio-resetd restarted" ||
	why="$why C's TakeDevice: $(peer_line C '^(error|took)');"
peer_stop C
why="$why$(ids_why "$b" "$devid_b" "$ioas_b")"
vmtest_result "while B (pid $pid_b) holds $b's cdev untaken, another process's TakeDevice of $b is Busy naming pid $pid_b" "$why"

why=""
peer_stop B
peer_start C2 --take "$b" --ack --rejoin --map-into "$ioas_b" || why="$why C2: $(peer_line C2 '^(error|took)');"
ioas_c=$(dev_prop "$b" IommufdIoasId)
[ "${ioas_c:-0}" -gt 0 ] && [ "$ioas_c" != "$ioas_b" ] && [ "$ioas_c" != "$ioas_a" ] ||
	why="$why IommufdIoasId of $b is '$ioas_c' (B's was $ioas_b, A's $ioas_a);"
peer_has C2 "^ioas $b id=$ioas_c map=ok iova=0x" || why="$why C2 could not map into its IOAS: $(peer_line C2 '^ioas');"
peer_has C2 "^wrote $b reg=0x3800 value=$written readback=$written\$" || why="$why C2 could not write TDBAL;"
# B's IOAS is gone, its mapping with it: a map into its id finds nothing.
peer_has C2 "^ioas-other $b id=$ioas_b map=errno=ENOENT\$" ||
	why="$why B's IOAS $ioas_b not destroyed: $(peer_line C2 '^ioas-other');"
why="$why$(ids_why "$a" "$devid_a" "$ioas_a")"
journal_of "$pid2" >/run/journal2
grep -q "Parked $(stored_name "$b" "$devid_b" "$ioas_c") (fd" /run/journal2 ||
	why="$why no 'Parked $(stored_name "$b" "$devid_b" "$ioas_c")';"
vmtest_result "once B exited, the next taker of $b (C2, pid $(peer_pid C2)) got a new IOAS ($ioas_c, not $ioas_b, which is destroyed), A kept $ioas_a" "$why"

# 3. systemctl restart: the store stays while the restart's job runs.
systemctl restart "$VMTEST_UNIT"
pid3=$(wait_new_daemon "$pid2")
wait_for 30 managed
journal_of "$pid3" >/run/journal3
why="$(took_back_why /run/journal3)"
why="$why$(came_back_why /run/journal3 "$a" "$devid_a" "$ioas_a")$(came_back_why /run/journal3 "$b" "$devid_b" "$ioas_c")"
peer_wait A 20 "^rejoined $a paused=0 reg=0x3800 value=$written\$" && wait_for 10 sh -c "[ \$(grep -c '^ioas-kept $a ' /run/peer-A.log) -ge 2 ]" ||
	why="$why A did not take $a again;"
why="$why$(kept_why A "$a" "$ioas_a" 2)"
peer_wait C2 20 "^rejoined $b paused=0 reg=0x3800 value=$written\$" && wait_for 10 peer_has C2 "^ioas-kept $b " ||
	why="$why C2 did not take $b again: $(peer_line C2 '^(rejoin|daemon)');"
why="$why$(kept_why C2 "$b" "$ioas_c" 1)"
why="$why$(ids_why "$a" "$devid_a" "$ioas_a")$(ids_why "$b" "$devid_b" "$ioas_c")"
managed || why="$why not Managed;"
vmtest_result "systemctl restart (pid $pid3) keeps the store on systemd $(systemctl --version | sed -n '1s/systemd \([0-9]*\).*/\1/p'): both cdevs back in IOAS $ioas_a and $ioas_c with the peers' DMA mappings, TDBAL still $written" "$why"
grep -E 'fd store|came back|still holds|Opened|Bound' /run/journal3 | show "vfio-resetd $pid3"

peer_stop A
peer_stop C2
systemctl stop "$VMTEST_UNIT"
vmtest_result "the kernel logged nothing alarming" "$(kernel_log_why)"
