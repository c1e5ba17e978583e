#!/bin/sh
# Restart without loss under the real systemd (252) of a Debian root:
# vfio-resetd installed by `make install`, started as a system service,
# managing the igb bus set 04:00.0/04:00.1 through its config file. Two
# peers hold a device each and map its BAR0: bar-peer on 04:00.1 (speaks
# the protocol, and takes its device again itself after a restart:
# --rejoin), and vfio-resetctl hold on 04:00.0 running holder --inherit
# (libvfio-resetd takes the device again on its own; holder maps the fd hold
# passes it and reads TDBAL every 10 ms).
#  1. `systemctl kill -s KILL`: systemd restarts it (NRestarts=1); the new
#     process takes both groups, containers and device fds back from the fd
#     store (its journal says so, opens no group, NFileDescriptorStore stays
#     6, and pid 1's copies are no holders); nothing was reset (TDBAL keeps
#     what the peers wrote); the peers are peers again, through the same
#     mappings; a reset then pauses and resumes both and clears both
#     registers.
#  2. `systemctl restart`: what systemd 252 does with the store then.
#  3. `systemctl stop` while a peer is slow to acknowledge a pause: every peer
#     resumed (daemon-stopping), the requester answered ShuttingDown, the
#     store emptied; a start after it cannot have the groups back while the
#     peers keep their device fds open.
# vmtest-root: debian
set -u
# shellcheck source=/dev/null
. /usr/lib/vmtest/vmtest.sh

[ "${1:-}" = prepare ] && exit 0

igb_bus_set
unit=$VMTEST_UNIT
holder_log=/run/holder-B.log
holder_has_line() { grep -Eq -- "$1" "$holder_log"; }
holder_lines() { grep -Ec -- "$1" "$holder_log"; }
# What is wrong with a daemon's start (its journal in FILE) that should have
# taken both groups, their containers and both devices back: nothing when right.
took_back_why() {
	grep -q 'The service manager passed 6 fds from the fd store' "$1" || printf ' no 6 fds passed;'
	for _g in "$group_a" "$group_b"; do
		grep -q "Took IOMMU group $_g and its container back from the fd store" "$1" ||
			printf ' group %s not taken back;' "$_g"
	done
	! grep -q 'Opened IOMMU group' "$1" || printf ' it opened a group: %s;' "$(grep 'Opened IOMMU group' "$1" | tr '\n' ' ')"
	! grep -Eq 'Refusing|not needed any more' "$1" || printf ' it refused stored fds: %s;' "$(grep -E 'Refusing|not needed' "$1" | tr '\n' ' ')"
}
# What a process holds of vfio, counted: "2 anon_inode:[vfio-device] 1 /dev/vfio/11 ...".
vfio_fds() { for f in "/proc/$1/fd/"*; do readlink "$f"; done 2>/dev/null | grep vfio | sort | uniq -c | tr -s ' \n' ' '; }

need_programs vfio-resetd vfio-resetctl bar-peer holder || exit 0
group_a=$(pci_group "$a") group_b=$(pci_group "$b")

# 0. The service, managing the set by its config file.
service_manage 60 "$a" "$b"
pid1=$(main_pid)
store=$(unit_prop NFileDescriptorStore)
why=$service_why
[ "$store" = 6 ] || why="$why NFileDescriptorStore=$store, not 6 (2 groups, 2 containers, 2 devices);"
vmtest_result "vfio-resetd (pid $pid1) manages $a (group $group_a) and $b (group $group_b) from $service_conf, 6 fds in its fd store" "$why"
if [ -n "$why" ]; then
	journalctl --no-pager -b -u "$unit" | show journal
	exit 0
fi
journal_of "$pid1" | grep -E 'Opened IOMMU group|fd store' | show "vfio-resetd $pid1"
vfio_fds "$pid1" >/run/fds1

# The peers.
why=""
peer_start A --take "$b" --ack --rejoin || why="$why bar-peer on $b: $(cat /run/peer-A.log);"
vfio-resetctl hold "$a" -- holder --inherit "$a" >"$holder_log" 2>&1 &
hold_pid=$!
wait_for 30 holder_has_line "^$a wrote TDBAL $written readback=$written\$" || why="$why holder: $(cat "$holder_log");"
holder_pid=$(sed -n "s/^$a ready pid=\([0-9]*\) .*/\1/p" "$holder_log")
peer_has A "^wrote $b reg=0x3800 value=$written readback=$written\$" || why="$why bar-peer did not write TDBAL;"
wait_for 10 set_peers_are 2 ||
	why="$why Peers: $(prop "$set_path" org.vfioresetd1.DevSet Peers | tr '\n' ' ');"
vmtest_result "two peers: bar-peer (pid $(peer_pid A)) on $b and hold with holder (pid $holder_pid) on $a, TDBAL=$written through BAR0" "$why"
[ -z "$why" ] || exit 0

# 1. Killed: systemd restarts it, and it takes everything back.
service_killed "$pid1" /run/journal2
pid2=$service_pid restarts=$service_restarts
store=$(unit_prop NFileDescriptorStore)
show "vfio-resetd $pid2" </run/journal2
why=$service_why
[ "$restarts" = 1 ] || why="$why NRestarts=$restarts;"
why="$why$(took_back_why /run/journal2)"
[ "$store" = 6 ] || why="$why NFileDescriptorStore=$store;"
managed || why="$why the set is not Managed;"
vmtest_result "systemctl kill -s KILL: systemd restarted it (NRestarts=$restarts, pid $pid2), which took groups $group_a and $group_b, their containers and both device fds back from the fd store and opened nothing" "$why"
holders=$(prop "$set_path" org.vfioresetd1.DevSet Holders | tr '\n' ' ')
vmtest_info "the first daemon held:$(cat /run/fds1); the new one holds:$(vfio_fds "$pid2")"
vmtest_result "pid 1's copies in the fd store are no holders (Holders: '$holders')" "$([ -z "$holders" ] || echo "Holders: $holders")"

# The peers: their mappings work, nothing was reset, they are peers again.
why=""
peer_wait A 20 "^rejoined $b paused=0 reg=0x3800 value=$written\$" ||
	why="$why bar-peer: $(peer_line A '^(rejoin|daemon)');"
wait_for 20 holder_has_line "vfio-resetd is back: took $a again" || why="$why hold did not take $a again: $(tail -n 3 "$holder_log" | tr '\n' ' ');"
! holder_has_line "^$a TDBAL " || why="$why holder saw TDBAL change: $(grep "^$a TDBAL " "$holder_log" | tr '\n' ' ');"
kill -USR2 "$holder_pid"
wait_for 10 holder_has_line "^$a rewrote TDBAL $written readback=$written\$" || why="$why holder cannot write through its mapping;"
wait_for 10 set_peers_are 2 ||
	why="$why Peers: $(prop "$set_path" org.vfioresetd1.DevSet Peers | tr '\n' ' ');"
vmtest_result "after the restart both peers took their devices again through their old mappings (TDBAL still $written: no reset), and are the set's peers" "$why"

# A reset: both paused and resumed, both registers cleared.
reset_request R "$a" --timeout-usec 30000000
rc=$?
id=$(sed -n 's/^pause \([0-9]*\) pause .*/\1/p' /run/peer-A.log | tail -n 1)
wait_for 10 peer_has A "^rewrote "
wait_for 10 holder_has_line "^$a TDBAL $written -> 0x00000000\$"
why=""
[ "$rc" -eq 0 ] || why="$why $(tr '\n' ' ' </run/peer-R.log);"
peer_has A "^acked ${id:-x}\$" || why="$why bar-peer did not ack;"
peer_has A "^resume ${id:-x} done\$" || why="$why bar-peer: no resume done;"
peer_has A "^value $b reg=0x3800 mmap=0x00000000 pread=0x00000000 reset=yes\$" || why="$why bar-peer's TDBAL not reset;"
holder_has_line "^$a continued n=1\$" || why="$why hold did not stop and continue holder;"
holder_has_line "^$a TDBAL $written -> 0x00000000\$" || why="$why holder's TDBAL not reset;"
journal_of "$pid2" | grep -q 'VFIO_DEVICE_PCI_HOT_RESET took' || why="$why no hot reset in the journal;"
vmtest_result "a reset after the restart paused and resumed both peers and reset the set (reset $id)" "$why"

# 2. systemctl restart: the store stays while the restart's job runs
#    (systemd.service(5): closed "when the service is fully stopped and no
#    job is queued or being executed for it").
systemctl restart "$unit"
pid3=$(wait_new_daemon "$pid2")
wait_for 30 managed
journal_of "$pid3" >/run/journal3
show "vfio-resetd $pid3" </run/journal3
why=$(took_back_why /run/journal3)
managed || why="$why not Managed: $(grep 'Cannot take' /run/journal3 | tr '\n' ' ');"
peer_wait A 20 "^rejoined $b paused=0 reg=0x3800 value=0x" || why="$why bar-peer did not take $b again;"
wait_for 20 sh -c "[ \$(grep -c 'vfio-resetd is back: took $a again' $holder_log) -ge 2 ]" || why="$why hold did not take $a again;"
vmtest_result "systemctl restart (pid $pid3) keeps the fd store on systemd $(systemctl --version | sed -n '1s/systemd \([0-9]*\).*/\1/p'): groups, containers and devices taken back, peers back" "$why"

# 3. systemctl stop while a peer is slow to acknowledge: the daemon ends the
#    pause with daemon-stopping and answers the requester before it exits.
peer_stop A
peer_start A2 --take "$b" --ack-after 60000 --rejoin
reset_request_bg R2 "$a" --timeout-usec 120000000
peer_wait A2 30 '^pause [0-9]+ pause '
id=$(sed -n 's/^pause \([0-9]*\) pause .*/\1/p' /run/peer-A2.log | tail -n 1)
wait_for 10 sh -c "[ \"\$(awk '\$1 == \"State:\" { print \$2 }' /proc/$holder_pid/status)\" = T ]"
holder_state_before=$(awk '$1 == "State:" { print $2 }' "/proc/$holder_pid/status")
systemctl stop "$unit"
result=$(unit_prop Result)
store=$(unit_prop NFileDescriptorStore)
wait_for 10 peer_has R2 '^reset-error '
wait_for 10 holder_has_line "^$a continued n=2\$"
why=""
[ "$holder_state_before" = T ] || why="$why holder was '$holder_state_before' during the pause, not stopped;"
peer_has A2 "^resume ${id:-x} daemon-stopping\$" || why="$why bar-peer: $(peer_line A2 '^resume');"
grep -q "reset ${id:-x} of $set_path ended: daemon-stopping" "$holder_log" || why="$why hold: no daemon-stopping;"
holder_has_line "^$a continued n=2\$" || why="$why holder still stopped;"
peer_has R2 '^reset-error org.vfioresetd1.Error.ShuttingDown ' || why="$why requester: $(tr '\n' ' ' </run/peer-R2.log);"
[ "$result" = success ] || why="$why Result=$result;"
[ "$store" = 0 ] || why="$why NFileDescriptorStore=$store after the stop;"
vmtest_result "systemctl stop mid-quiesce (reset $id): every peer resumed (daemon-stopping), the requester answered ShuttingDown, Result=$result, the store emptied" "$why"

# What a stop costs: the groups stay open through the peers' device fds
# (vfio: a device fd holds its group's file), so a new start cannot have them.
systemctl start "$unit"
pid4=$(wait_new_daemon 0)
sleep 2
journal_of "$pid4" >/run/journal4
show "vfio-resetd $pid4" </run/journal4
why=""
grep -q "Cannot take ownership of $a (IOMMU group $group_a): another process holds the group" /run/journal4 ||
	why="$why no EBUSY for $a;"
managed && why="$why the set is Managed;"
vmtest_result "after the stop the groups stay with the peers' device fds: a new start (pid $pid4) cannot take them (EBUSY) and manages nothing" "$why"

kill "$holder_pid" 2>/dev/null
wait "$hold_pid" 2>/dev/null
peer_stop A2
systemctl stop "$unit"
kernel_why=$(kernel_log_why)
vmtest_result "the kernel logged nothing alarming" "$kernel_why"
