#!/bin/sh
# Reset scenario (c), in the guest: peers and devices that vanish mid-reset.
# The daemon manages the igb pair 04:00.0/04:00.1 and, as a bystander,
# 00:02.0.
# 1. Peer A (acks) takes 04:00.0, peer K (silent) 04:00.1. A ResetDevice with
#    a 30 s deadline waits for K; K is SIGKILLed: the daemon stops waiting at
#    once, the kernel reset runs (A's register back at 0), the request
#    answers "done" long before the deadline.
# 2. Peer G (silent) takes 04:00.1 and a reset waits for it; then 04:00.1 is
#    unbound from vfio-pci (in the background: the kernel waits until every
#    fd of the device is closed). The kernel's device-request eventfd tells the
#    daemon (since Linux 6.6 the removal uevent of the vfio device may come
#    first), which sends G Pause "gone"; G closes its fds; the reset in flight
#    ends with DeviceGone; the unbind finishes; 04:00.1 leaves the bus
#    objects; the daemon keeps serving (GetDevice on other devices, a later
#    reset request is answered).
set -u
# shellcheck source=/dev/null
. /usr/lib/vmtest.sh

a=0000:04:00.0
b=0000:04:00.1
other=0000:00:02.0
set_path=/org/vfioresetd1/devset/bus_0000_04

need_programs vfio-resetd busctl bar-peer || exit 0
managed_daemon_start "$a" "$b" "$other" || exit 0
why=""
wait_for 30 managed || why="$set_path is not Managed;"
peer_start A --take "$a" --ack || why="$why peer A: $(cat /run/peer-A.log);"
peer_start K --take "$b" --silent || why="$why peer K: $(cat /run/peer-K.log);"
vmtest_result "peer A (acks) took $a, peer K (silent) took $b" "$why"
if [ -n "$why" ]; then
	vmtest_stop
	exit 0
fi
k_pid=$(peer_pid K)
k_name=$(peer_unique K)

# 1. K is killed while the reset waits for it.
reset_request_bg R1 "$a" --timeout-usec 30000000
r1=$(peer_pid R1)
if ! peer_wait K 20 '^pause [0-9]+ pause '; then
	vmtest_fail "SIGKILL mid-quiesce" "K got no pause: $(cat /run/peer-K.log)"
fi
id1=$(sed -n 's/^pause \([0-9]*\) pause .*/\1/p' /run/peer-K.log | tail -n 1)
# Hold the kill until the daemon has A's ack: then only K is missing.
wait_for 10 daemon_has "Reset $id1 of bus_0000_04: .* paused \(1 of 2\)"
vmtest_info "SIGKILL peer K (pid $k_pid, $k_name) while reset $id1 waits for it"
kill -9 "$k_pid"
t0=$(cut -d' ' -f1 /proc/uptime)
wait_for 25 peer_has R1 '^reset-'
t1=$(cut -d' ' -f1 /proc/uptime)
wait "$r1" 2>/dev/null
wait "$k_pid" 2>/dev/null
out=$(peer_line R1 '^reset-')
why=""
case $out in "reset-reply $set_path done "*) ;; *) why="$why reply: ${out:-none within 25 s};" ;; esac
wall=$(echo "$out" | sed -n 's/.*wall_usec=\([0-9]*\)$/\1/p')
[ -n "$wall" ] && [ "$wall" -lt 15000000 ] || why="$why took ${wall:-?} us of its 30 s deadline;"
daemon_has "Reset $id1 of bus_0000_04: peer $k_name left, not waiting for it" || why="$why no 'peer $k_name left' in the daemon log;"
daemon_has "Reset $id1 of bus_0000_04: VFIO_DEVICE_PCI_HOT_RESET took" || why="$why no kernel reset;"
wait_for 10 peer_has A "^rewrote "
peer_has A "^resume $id1 done\$" || why="$why A: no 'resume $id1 done';"
peer_has A "^value $a reg=0x3800 mmap=0x00000000 pread=0x00000000 reset=yes\$" || why="$why A: TDBAL not reset;"
vmtest_result "SIGKILLed peer: reset $id1 completes promptly" "$why"
vmtest_info "reset $id1: $out; answered $(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.1f", b - a }') s after the SIGKILL (guest uptime)"

# 2. A member unbound from vfio-pci while held, mid-reset.
why=""
peer_start G --take "$b" --silent || why="peer G: $(cat /run/peer-G.log);"
vmtest_result "peer G (silent) took $b" "$why"
reset_request_bg R2 "$a" --timeout-usec 30000000
peer_wait G 20 '^pause [0-9]+ pause ' || vmtest_fail "unbind mid-reset" "G got no pause: $(cat /run/peer-G.log)"
id2=$(sed -n 's/^pause \([0-9]*\) pause .*/\1/p' /run/peer-G.log | tail -n 1)
wait_for 10 daemon_has "Reset $id2 of bus_0000_04: .* paused \(1 of 2\)"
vmtest_info "unbinding $b from vfio-pci while peer G holds it and reset $id2 waits for G"
(
	printf '%s' "$b" >/sys/bus/pci/drivers/vfio-pci/unbind
	st=$?
	echo "unbind status $st" >/run/unbind.done
) &
unbinder=$!
why=""
peer_wait G 20 "^pause [0-9]+ gone $b\$" || why="$why G got no Pause 'gone';"
peer_wait G 10 "^closed $b\$" || why="$why G did not close its fds;"
# How the daemon learnt it. Before Linux 6.6 vfio_unregister_group_dev
# relays the device request (VFIO_PCI_REQ_IRQ_INDEX) first and deletes the
# vfio device after; since 6.6 (every kernel with VFIO device cdevs) it
# deletes the device first, whose removal uevent makes the daemon scan and
# find the driver gone, and the request comes microseconds later: either may
# reach the daemon first there.
heard=""
daemon_has "The kernel asks for $b back" && heard="the device request"
[ -z "$heard" ] && [ -e /dev/vfio/devices ] && daemon_has "Device $(device_path "$b") left vfio" &&
	heard="the removal uevent of its vfio device (the request came after)"
[ -n "$heard" ] || why="$why no 'kernel asks for $b back' in the daemon log;"
vmtest_result "unbind: the daemon hears the kernel let go of $b and sends Pause gone; the peer lets go" "$why"
vmtest_info "unbind: the daemon heard ${heard:-nothing}"

why=""
wait_for 25 peer_has R2 '^reset-'
out=$(peer_line R2 '^reset-')
case $out in
"reset-error org.vfioresetd1.Error.DeviceGone "*) ;;
*) why="$why reply: ${out:-none within 25 s};" ;;
esac
daemon_has "Reset $id2 of bus_0000_04: VFIO_DEVICE_PCI_HOT_RESET took" && why="$why a kernel reset ran;"
vmtest_result "reset $id2 in flight ends DeviceGone" "$why"
vmtest_info "reset $id2: $out"

why=""
if wait_for 30 sh -c '[ -f /run/unbind.done ]'; then
	wait "$unbinder" 2>/dev/null
	vmtest_info "$(cat /run/unbind.done); $b driver now: $(pci_driver "$b")"
	[ "$(pci_driver "$b")" = none ] || why="$why $b is still on $(pci_driver "$b");"
else
	why="$why the unbind still waits after 30 s (an fd of $b is still open);"
	for f in /proc/[0-9]*/fd/*; do
		case $(readlink "$f" 2>/dev/null) in *vfio*) echo "VMTEST INFO vfio fd open: $f -> $(readlink "$f")" ;; esac
	done
fi
gone() {
	! busctl --system call "$VMTEST_NAME" /org/vfioresetd1 org.vfioresetd1.Manager GetDevice s "$b" >/dev/null 2>&1
}
wait_for 20 gone || why="$why GetDevice $b still answers: $(busctl --system call "$VMTEST_NAME" /org/vfioresetd1 org.vfioresetd1.Manager GetDevice s "$b" 2>&1);"
vmtest_result "the unbind finished and $b left the bus objects" "$why"
busctl --system call "$VMTEST_NAME" /org/vfioresetd1 org.vfioresetd1.Manager GetDevice s "$b" 2>&1 |
	sed 's/^/VMTEST INFO GetDevice '"$b"': /'

why=""
daemon_alive "$a" || why="$why GetDevice $a failed;"
daemon_alive "$other" || why="$why GetDevice $other failed;"
kill -0 "$(peer_pid G)" 2>/dev/null || why="$why peer G died;"
kill -0 "$(peer_pid A)" 2>/dev/null || why="$why peer A died;"
vmtest_result "the daemon keeps serving (GetDevice $a, $other); peers A and G live" "$why"

# The next request on what is left of the set is answered, one way or another.
reset_request R3 "$a" --timeout-usec 5000000
out=$(peer_line R3 '^reset-')
if [ -n "$out" ]; then
	vmtest_pass "a later ResetDevice $a is answered"
else
	vmtest_fail "a later ResetDevice $a is answered" "no answer"
fi
vmtest_info "later reset of $a: $out"
daemon_alive "$other" || vmtest_fail "daemon alive at the end" "GetDevice $other failed"

peer_stop A
peer_stop G
daemon_show_resets
vmtest_stop
