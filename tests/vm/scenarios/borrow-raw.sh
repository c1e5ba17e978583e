#!/bin/sh
# Borrowed reset, raw, in the guest: what the kernel allows, with no daemon.
# Two holder processes (tests/vm/holder.c: no D-Bus, like QEMU) each hold one
# function of the igb bus set 04:00.0/04:00.1 (IOMMU groups 11 and 12: nobody
# can open both, so nobody can reset the set), map BAR0 and write TDBAL.
# borrow-reset (tests/vm/borrow-reset.c), as root with CAP_SYS_PTRACE: SIGSTOP
# both, pidfd_getfd each one's group fd, VFIO_GROUP_GET_DEVICE_FD on each
# borrowed group fd, VFIO_DEVICE_PCI_HOT_RESET with the two borrowed group
# fds, the IDs read back through the new device fds, everything borrowed
# closed, SIGCONT both.
# 1. One such reset: both holders see TDBAL go to 0 and run on (not stopped),
#    both can write it again; the kernel log has nothing alarming.
# 2. The same without the hot reset: closing the borrowed device fds while the
#    holders keep theirs changes nothing for them (the register keeps its
#    pattern, the mapping still writes).
# 3. VMTEST_BENCH_N (10) borrowed resets in a row, timed on the guest's clock.
set -u
# shellcheck source=/dev/null
. /usr/lib/vmtest.sh

igb_bus_set
n=${VMTEST_BENCH_N:-10}

need_programs holder borrow-reset hot-reset-info || exit 0

why=""
holder_start A "$a" || why="holder A: $(cat /run/holder-A.log);"
holder_start B "$b" || why="$why holder B: $(cat /run/holder-B.log);"
for h in A:$a B:$b; do
	holder_has "${h%%:*}" "^${h#*:} wrote TDBAL $written readback=$written\$" ||
		why="$why holder ${h%%:*} did not write TDBAL of ${h#*:};"
done
vmtest_result "holders A ($a, group $(pci_group "$a")) and B ($b, group $(pci_group "$b")) wrote TDBAL=$written" "$why"
if [ -n "$why" ]; then
	holders_dump A B
	exit 0
fi
pa=$(holder_pid A)
pb=$(holder_pid B)
vmtest_info "holder A is pid $pa, holder B pid $pb; $(grep -h ' ready ' /run/holder-A.log /run/holder-B.log | tr '\n' ';')"

# Without borrowing, the set cannot be reset: its groups are taken.
hot-reset-info --time-hot-reset "$a" -n 1 >/run/unborrowed.txt 2>&1
why=""
grep -q 'error=open-group errno=EBUSY' /run/unborrowed.txt || why="$(cat /run/unborrowed.txt)"
vmtest_result "a plain hot reset of $a fails EBUSY while the holders hold the groups" "$why"

# 1. One borrowed reset.
borrow-reset "$pa=$a" "$pb=$b" >/run/borrow1.txt 2>&1
rc=$?
vmtest_dump borrow-reset /run/borrow1.txt
why=""
[ "$rc" -eq 0 ] || why="status $rc;"
for h in $pa:$a $pb:$b; do
	grep -q "^borrowed ${h%%:*} ${h#*:} group=$(pci_group "${h#*:}") holder_fd=[0-9]* fd=[0-9]*\$" /run/borrow1.txt ||
		why="$why no group fd borrowed from pid ${h%%:*};"
done
vmtest_result "pidfd_getfd duplicated both holders' group fds" "$why"

why=""
for x in "$a" "$b"; do
	grep -q "^device-fd $x fd=[0-9]*\$" /run/borrow1.txt || why="$why $(grep "^device-fd $x" /run/borrow1.txt || echo "no device-fd line for $x");"
done
vmtest_result "VFIO_GROUP_GET_DEVICE_FD on each borrowed group fd gives a second device fd while the holder has its own" "$why"

why=""
grep -q "^set $a,$b groups=$(pci_group "$a"),$(pci_group "$b")\$" /run/borrow1.txt ||
	why="hot-reset info: $(grep '^set ' /run/borrow1.txt || echo none);"
grep -q '^hot-reset ok ' /run/borrow1.txt || why="$why $(grep '^hot-reset' /run/borrow1.txt || echo 'no hot-reset line');"
for x in "$a" "$b"; do
	grep -q "^ids $x config=\([0-9a-f:]*\) sysfs=\1 match=yes\$" /run/borrow1.txt || why="$why IDs of $x did not read back;"
done
grep -q '^run 1 ok ' /run/borrow1.txt || why="$why run 1 failed;"
vmtest_result "VFIO_DEVICE_PCI_HOT_RESET with the two borrowed group fds returned 0, IDs read back" "$why"

why="$(holder_saw_reset A 0 0)$(holder_saw_reset B 0 0)"
[ "$(holder_conts A)" = 1 ] && [ "$(holder_conts B)" = 1 ] || why="$why not continued once each;"
sleep 0.3
why="$why$(holder_runs A 0x00000000)$(holder_runs B 0x00000000)"
vmtest_result "both holders saw their register reset and run on (stopped once, continued, not stopped now)" "$why"
vmtest_result "after the borrowed reset the holders' mappings still write TDBAL" "$(holder_rewrites A)$(holder_rewrites B)"

# 2. Borrow and give back without a reset.
sleep 0.3
ra=$(holder_count A ' TDBAL .* -> ') rb=$(holder_count B ' TDBAL .* -> ')
borrow-reset --no-reset "$pa=$a" "$pb=$b" >/run/borrow-noreset.txt 2>&1
rc=$?
vmtest_dump "borrow-reset --no-reset" /run/borrow-noreset.txt
sleep 0.5
why=""
[ "$rc" -eq 0 ] || why="status $rc;"
for x in "$a" "$b"; do
	grep -q "^device-fd $x fd=[0-9]*\$" /run/borrow-noreset.txt || why="$why no second device fd of $x;"
done
[ "$(holder_count A ' TDBAL .* -> ')" = "$ra" ] || why="$why holder A's TDBAL changed: $(holder_line A ' -> ');"
[ "$(holder_count B ' TDBAL .* -> ')" = "$rb" ] || why="$why holder B's TDBAL changed: $(holder_line B ' -> ');"
why="$why$(holder_runs A "$written")$(holder_runs B "$written")$(holder_rewrites A)$(holder_rewrites B)"
vmtest_result "closing the borrowed device fds leaves the holders' devices, registers and mappings as they were" "$why"

# 3. Timed: N borrowed resets in a row.
ca=$(holder_conts A) cb=$(holder_conts B) ra=$(holder_resets A) rb=$(holder_resets B)
vmtest_info "bench begin raw-borrow"
borrow-reset -n "$n" "$pa=$a" "$pb=$b" >/run/borrow-n.txt 2>&1
rc=$?
vmtest_info "bench end raw-borrow"
sed 's/^/VMTEST INFO bench result raw-borrow /' /run/borrow-n.txt | grep -E 'summary|run [0-9]+ failed| error='
why=""
[ "$rc" -eq 0 ] || why="status $rc: $(grep -E 'failed|error' /run/borrow-n.txt | head -n 3);"
grep -q "^summary n=$n ok=$n " /run/borrow-n.txt || why="$why $(grep '^summary' /run/borrow-n.txt);"
# Continued at least once, and running now: not one SIGCONT handler run a
# reset, since a SIGSTOP sent before the holder ran discards the SIGCONT
# still pending (kernel/signal.c, prepare_signal()).
why="$why$(holder_saw_reset A "$ra" "$ca")$(holder_saw_reset B "$rb" "$cb")"
sleep 0.3
why="$why$(holder_runs A 0x00000000)$(holder_runs B 0x00000000)"
vmtest_result "$n borrowed resets in a row, the holders run on" "$why"
vmtest_info "SIGCONT handled over the $n: A $(($(holder_conts A) - ca)), B $(($(holder_conts B) - cb))"

why=""
kill -0 "$pa" 2>/dev/null || why="holder A died;"
kill -0 "$pb" 2>/dev/null || why="$why holder B died;"
why="$why$(kernel_log_why)"
vmtest_result "the holders and the kernel survive the borrowed resets" "$why"
vmtest_dmesg | grep -i vfio | head -n 20 | sed 's/^/VMTEST INFO dmesg: /'
holders_dump A B
holder_stop A
holder_stop B
