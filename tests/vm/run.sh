#!/bin/bash
# Boot a real kernel in QEMU with emulated IOMMU and PCI devices in shared
# dev_sets (the layout of shared VM.md) and run one guest scenario.
# Usage: tests/vm/run.sh [--cache DIR] [--bin PATH]... [--native BDF]...
#          [--env NAME=VALUE]... [--timeout SECONDS] [--log FILE] [--verbose]
#          [--root busybox|debian] [--install BUILDDIR] [--kernel debian|7.3]
#          {--scenario tests/vm/scenarios/NAME.sh | tests/vm/scenarios/NAME.sh}
#   --cache    downloads, the initrd and logs, kept between runs (default
#              $VMTEST_CACHE, else /var/tmp/vfio-resetd-vm)
#   --bin      a host program to put in the guest (vfio-resetd, vfio-resetctl);
#              dbus-daemon, busctl, hot-reset-info, bar-peer, holder,
#              borrow-reset and dmabuf-importer are always there (and util-linux's setpriv, if the host has it)
#   --native   leave this endpoint on its native driver (also read from the
#              scenario's `# vmtest-native: BDF...` lines)
# A scenario's `# vmtest-qemu-args: ARG...` lines add QEMU arguments (extra
# devices) to its own VM.
#   --root     what the guest boots (default: the scenario's `# vmtest-root:`
#              line, else busybox): busybox, the initramfs with the --bin
#              programs; debian, a Debian root with systemd, dbus, polkitd
#              and libvirtd (CACHE/debian/root.img, built by fetch.sh
#              --debian-root) booted through a copy-on-write overlay, with
#              the --install build tree's `make install`
#   --install  the build tree a debian guest gets installed (make install
#              DESTDIR=..., its files copied into the root at boot)
#   --kernel   what the guest runs (default $VMTEST_KERNEL, else debian):
#              debian, bookworm's 6.1 (fetch.sh); 7.3, the project's own
#              build of 7.3 with IOMMUFD and VFIO device cdevs
#              (build-kernel.sh, cached in $VMTEST_KERNEL_CACHE)
# A scenario's `# vmtest-config: SYMBOL...` lines name kernel options it
# needs (CONFIG_SYMBOL=y or =m): on a kernel without one it is skipped
# without a boot.
#   --log      where to keep the guest log (default CACHE/log/NAME-TIME.log)
#   --timeout  how long one boot of the guest may run, scenario included
#   --verbose  echo the whole console, not only the VMTEST lines
#   --demo     echo only the scenario's "DEMO " lines, for a person to read
# Env: CC (default gcc) builds the checker; VMTEST_TIMEOUT is --timeout's
# default (600); VMTEST_BOOT_TIMEOUT (default 240) how long the guest may take
# to begin the scenario.
# One guest runs at a time on the host, whatever make's -j: the others wait
# for CACHE/vm.lock (the wait is counted in no timeout). A guest that
# panicked or stalled before the scenario began is booted once more; a
# scenario that failed is never run again.
# Exit: 0 all passed, 1 a test failed or the guest did not finish, 77 skipped
# (QEMU, the kernel or the Debian root cannot be had, a Debian-root scenario
# without --install, or every test skipped).
set -eu

here=$(cd "$(dirname "$0")" && pwd)
cache=${VMTEST_CACHE:-/var/tmp/vfio-resetd-vm} scenario="" log="" verbose=0
timeout=${VMTEST_TIMEOUT:-600} boot_timeout=${VMTEST_BOOT_TIMEOUT:-240}
bins=() natives=() envs=() root_kind="" builddir="" kernel=${VMTEST_KERNEL:-debian}
while [ $# -gt 0 ]; do
	case $1 in
	--cache) cache=$2; shift 2 ;;
	--scenario) scenario=$2; shift 2 ;;
	--bin) bins+=("$2"); shift 2 ;;
	--native) natives+=("$2"); shift 2 ;;
	--env) envs+=("$2"); shift 2 ;;
	--root) root_kind=$2; shift 2 ;;
	--install) builddir=$2; shift 2 ;;
	--kernel) kernel=$2; shift 2 ;;
	--timeout) timeout=$2; shift 2 ;;
	--log) log=$2; shift 2 ;;
	--verbose) verbose=1; shift ;;
	--demo) verbose=2; shift ;;
	-*) echo "run.sh: unknown argument '$1'" >&2; exit 2 ;;
	*) scenario=$1; shift ;;
	esac
done
if [ -z "$scenario" ]; then
	echo "usage: $0 [--cache DIR] [--bin PATH]... [--native BDF]... [--env N=V]... [--timeout S] [--log FILE] [--verbose] [--scenario] FILE" >&2
	exit 2
fi
[ -f "$scenario" ] || { echo "run.sh: no scenario $scenario" >&2; exit 2; }
# NAME.sh, or a link to it named for another kernel's list (NAME.k73).
name=$(basename "$scenario")
name=${name%.*}
case $kernel in
debian | 7.3) ;;
*) echo "run.sh: unknown --kernel '$kernel' (debian or 7.3)" >&2; exit 2 ;;
esac
[ -n "$root_kind" ] || root_kind=$(sed -n 's/^# vmtest-root: *\([a-z]*\).*/\1/p' "$scenario" | head -n 1)
root_kind=${root_kind:-busybox}
case $root_kind in
busybox) ;;
debian)
	if [ -z "$builddir" ] || [ ! -f "$builddir/Makefile" ]; then
		echo "run.sh: SKIP $name: a Debian-root scenario needs --install BUILDDIR (a configured, built tree)"
		exit 77
	fi
	builddir=$(cd "$builddir" && pwd) ;;
*) echo "run.sh: unknown --root '$root_kind' (busybox or debian)" >&2; exit 2 ;;
esac
mkdir -p "$cache/log" "$cache/build"
cache=$(cd "$cache" && pwd)

shopt -s extglob
# Microseconds since the epoch, without a fork (bash 5).
now_us() { local t=${EPOCHREALTIME/./}; echo "$t"; }
secs() { local us=$1; printf '%d.%01d' $((us / 1000000)) $((us % 1000000 / 100000)); }
t_start=$(now_us)

rc=0
fetch_args=()
[ "$root_kind" = busybox ] || fetch_args+=(--debian-root)
"$here/fetch.sh" "${fetch_args[@]}" "$cache" || rc=$?
if [ "$rc" -eq 77 ]; then
	echo "run.sh: SKIP $name: QEMU 10, the kernel or the Debian root cannot be had (see above)"
	exit 77
elif [ "$rc" -ne 0 ]; then
	echo "run.sh: fetch.sh failed with status $rc"
	exit 1
fi
# The kernel folder: vmlinuz, version, root/lib/modules/KVER, and the
# kernel's configuration (root/boot/config-KVER, or config).
kdir="$cache/kernel"
if [ "$kernel" = 7.3 ]; then
	rc=0
	kdir=$("$here/build-kernel.sh") || rc=$?
	if [ "$rc" -eq 77 ]; then
		echo "run.sh: SKIP $name: the 7.3 kernel cannot be had (see above)"
		exit 77
	elif [ "$rc" -ne 0 ]; then
		echo "run.sh: build-kernel.sh failed with status $rc"
		exit 1
	fi
fi
kver=$(cat "$kdir/version")
kconfig="$kdir/config"
[ -f "$kconfig" ] || kconfig="$kdir/root/boot/config-$kver"
# shellcheck disable=SC2013 # symbols, one a word
for sym in $(sed -n 's/^# vmtest-config://p' "$scenario"); do
	if ! grep -Eq "^CONFIG_$sym=[ym]$" "$kconfig"; then
		hint=""
		[ "$kernel" = 7.3 ] || ! grep -Eq "^CONFIG_$sym=[ym]$" "$here/kernel-7.3.config" ||
			hint=" (the 7.3 kernel has it: --kernel 7.3)"
		echo "run.sh: SKIP $name: the $kernel kernel ($kver) has no CONFIG_$sym$hint"
		exit 77
	fi
done
t_fetched=$(now_us)

for tool in dbus-daemon busctl; do
	command -v "$tool" >/dev/null || { echo "run.sh: SKIP $name: no $tool on the host"; exit 77; }
done
# The test programs of this source tree and kernel (other trees sharing the
# cache may have other versions of them), each built apart, then renamed:
# parallel runs share the cache.
progs="$cache/build/progs-$(echo "$here $kernel" | sha1sum | cut -c1-12)"
mkdir -p "$progs"
# hot-reset-info against the guest kernel's uapi headers where the kernel
# folder has them (the 7.3 build: its --cdev needs VFIO_DEVICE_BIND_IOMMUFD).
uapi=()
[ ! -d "$kdir/usr/include/linux" ] || uapi=(-isystem "$kdir/usr/include")
checker="$progs/hot-reset-info"
${CC:-gcc} -std=gnu11 -Wall -Wextra -Werror -O2 "${uapi[@]}" -o "$checker.$$" "$here/hot-reset-info.c"
mv -f "$checker.$$" "$checker"
# The peer that maps a BAR and serves pauses (the reset scenarios).
peer="$progs/bar-peer"
# shellcheck disable=SC2046 # pkg-config's flags, one a word
${CC:-gcc} -std=gnu11 -Wall -Wextra -Werror -O2 -pthread -o "$peer.$$" "$here/bar-peer.c" \
	$(pkg-config --cflags --libs libsystemd)
mv -f "$peer.$$" "$peer"
# A program that holds a function without the daemon, and the raw borrowed
# reset (the borrow scenarios).
holder="$progs/holder" borrower="$progs/borrow-reset"
${CC:-gcc} -std=gnu11 -Wall -Wextra -Werror -O2 -o "$holder.$$" "$here/holder.c"
mv -f "$holder.$$" "$holder"
${CC:-gcc} -std=gnu11 -Wall -Wextra -Werror -O2 -o "$borrower.$$" "$here/borrow-reset.c"
mv -f "$borrower.$$" "$borrower"
# The dma-buf importer (the dma-buf scenarios): iommufd and the edu device's
# DMA, a peer through libvfio-resetd, whose sources it is built from (with
# their own warning flags: WARN_CFLAGS of configure.ac) so that no configured
# tree is needed.
importer="$progs/dmabuf-importer"
importer_objs="$progs/dmabuf-importer-objs.$$"
mkdir -p "$importer_objs"
src=$(cd "$here/../.." && pwd)
for f in client/libvfio-resetd.c common/log.c common/pci-address.c common/strv.c; do
	# shellcheck disable=SC2046 # pkg-config's flags, one a word
	${CC:-gcc} -std=gnu11 -D_GNU_SOURCE -Wall -Wextra -Werror -Wno-unused-parameter -O2 \
		-I"$src/client" -I"$src/common" $(pkg-config --cflags libsystemd) \
		-c -o "$importer_objs/$(basename "$f" .c).o" "$src/$f"
done
# shellcheck disable=SC2046 # pkg-config's flags, one a word
${CC:-gcc} -std=gnu11 -Wall -Wextra -Werror -O2 -I"$src/client" -o "$importer.$$" "$here/dmabuf-importer.c" \
	"$importer_objs"/*.o $(pkg-config --cflags --libs libsystemd)
rm -rf "$importer_objs"
mv -f "$importer.$$" "$importer"
# util-linux's setpriv (busybox's cannot change the bounding set), when the
# host has it: it runs a program without a capability.
setpriv=""
[ -x /usr/bin/setpriv ] && /usr/bin/setpriv --help 2>&1 | grep -q -- --bounding-set && setpriv=/usr/bin/setpriv

initrd="$cache/build/initrd-$name-$$.cpio.gz"
mk=(--kernel "$kdir" --scenario "$scenario" --out "$initrd")
if [ "$root_kind" = busybox ]; then
	mk+=(--bin "$(command -v dbus-daemon)" --bin "$(command -v busctl)" --bin "$checker" --bin "$peer"
		--bin "$holder" --bin "$borrower" --bin "$importer")
	[ -z "$setpriv" ] || mk+=(--bin "$setpriv")
	for b in "${bins[@]}"; do mk+=(--bin "$b"); done
else
	# The build tree as `make install` lays it out, with the unit, the D-Bus
	# policy and activation file and the polkit action where the root's
	# systemd, dbus-daemon and polkitd read them (the README's
	# --prefix=/usr puts them there; the programs stay under the tree's own
	# prefix, which the unit names). Under a lock: libtool relinks in .libs.
	stage="$cache/build/stage-$name-$$"
	rm -rf "$stage"
	t_install=$(now_us)
	if ! (
		flock 7
		env -u MAKEFLAGS -u MAKELEVEL -u MFLAGS nice -n 10 make -C "$builddir" install DESTDIR="$stage" \
			systemdsystemunitdir=/usr/lib/systemd/system dbuspolicydir=/usr/share/dbus-1/system.d \
			dbussystemservicedir=/usr/share/dbus-1/system-services \
			polkitactionsdir=/usr/share/polkit-1/actions
	) 7>"$cache/build/install.lock" >"$cache/log/install-$name.log" 2>&1; then
		echo "run.sh: FAIL $name: make install DESTDIR=$stage failed; the last lines:"
		tail -n 15 "$cache/log/install-$name.log"
		rm -rf "$stage"
		exit 1
	fi
	installed_path=""
	for p in vfio-resetctl vfio-resetd; do
		f=$(cd "$stage" && find . -path "*bin/$p" -type f | head -n 1)
		[ -n "$f" ] || { echo "run.sh: FAIL $name: make install put no $p in $stage"; rm -rf "$stage"; exit 1; }
		f=${f#.}
		installed_path="$installed_path${installed_path:+:}${f%/*}"
	done
	echo "run.sh: $name: make install of $builddir in $(secs $(($(now_us) - t_install))) s"
	# A tree whose prefix is under /tmp, /var/tmp or a home (distcheck's
	# _inst is below its build folder) installs a daemon that the unit's own
	# PrivateTmp= and ProtectHome= hide from it. The guest runs the same
	# binary from a copy outside them; the unit's sandbox stays as installed.
	# (the unit is where pkg-config's systemd.pc said: /lib or /usr/lib)
	exec_start=$(cd "$stage" && sed -n 's/^ExecStart=//p' ./lib/systemd/system/vfio-resetd.service \
		./usr/lib/systemd/system/vfio-resetd.service 2>/dev/null | head -n 1)
	exec_prog=${exec_start%% *} exec_args=${exec_start#"$exec_prog"}
	case $exec_prog in
	/tmp/* | /var/tmp/* | /home/* | /root/* | /run/user/*)
		install -D -m 755 "$stage$exec_prog" "$stage/usr/lib/vmtest/sbin/vfio-resetd"
		mkdir -p "$stage/etc/systemd/system/vfio-resetd.service.d"
		printf '# run.sh: %s is hidden by PrivateTmp= or ProtectHome=\n[Service]\nExecStart=\nExecStart=%s%s\n' \
			"$exec_prog" /usr/lib/vmtest/sbin/vfio-resetd "$exec_args" \
			>"$stage/etc/systemd/system/vfio-resetd.service.d/vmtest-prefix.conf"
		echo "run.sh: $name: the unit's sandbox hides $exec_prog: the guest runs a copy in /usr/lib/vmtest/sbin" ;;
	esac
	install -D -m 755 "$here/guest-root-run.sh" "$stage/usr/lib/vmtest/run"
	# The test programs, on the scenario's PATH (guest-root-run.sh); the
	# root's libsystemd is the host's (both bookworm).
	install -D -m 755 "$peer" "$stage/usr/lib/vmtest/bin/bar-peer"
	install -D -m 755 "$holder" "$stage/usr/lib/vmtest/bin/holder"
	# The image holds the Debian kernel's modules; another kernel's come
	# with the boot, for the root's udev and modprobe.
	if [ "$kdir" != "$cache/kernel" ]; then
		mkdir -p "$stage/usr/lib/modules"
		cp -a "$kdir/root/lib/modules/$kver" "$stage/usr/lib/modules/"
	fi
	# What mounting the root takes, and vfio-pci's (not the NICs' drivers:
	# the root's udev loads those, for the natives); mkinitrd.sh adds what
	# they need and leaves out what is built in.
	mk+=(--modules "virtio_pci virtio_blk ext4 vfio vfio_iommu_type1 vfio_pci_core vfio_pci"
		--init "$here/guest-root-init.sh"
		--payload "$stage" --env "VMTEST_INSTALLED_PATH=$installed_path")
fi

# shellcheck disable=SC2207 # BDFs have no spaces
natives+=($(sed -n 's/^# vmtest-native://p' "$scenario"))
# A scenario may add devices to the layout for itself alone (QEMU arguments
# without spaces in them, after the shared layout, so no address moves).
# shellcheck disable=SC2207
extra_qemu=($(sed -n 's/^# vmtest-qemu-args://p' "$scenario"))
for n in "${natives[@]}"; do mk+=(--native "$n"); done
for e in "${envs[@]}"; do mk+=(--env "$e"); done
# Built while another scenario's guest may run: it goes first.
nice -n 10 "$here/mkinitrd.sh" "${mk[@]}"
[ "$root_kind" = busybox ] || rm -rf "$stage"
t_initrd=$(now_us)

if [ -z "$log" ]; then
	# NAME-TIME.log on the Debian kernel, NAME-k7.3-TIME.log on the other.
	lname=$name
	[ "$kernel" = debian ] || lname="$name-k$kernel"
	log="$cache/log/$lname-$(date +%Y%m%d-%H%M%S).log"
	# Keep the newest 20 logs of each scenario.
	# shellcheck disable=SC2012 # names are ours, without spaces
	ls -t "$cache/log/$lname"-2*.log 2>/dev/null | tail -n +21 | xargs -r rm -f
fi
mkdir -p "$(dirname "$log")"

qemu_dir="$cache/qemu"
mem=1024 smp=1 root_qemu=() root_append=""
if [ "$root_kind" = debian ]; then
	# systemd, libvirtd and two nested QEMUs want more memory than the
	# initramfs. One vCPU all the same: with -smp 2 the 6.1 kernel once hung
	# early in its boot (RCU stalls, "timer wakeup didn't happen") on a busy
	# host, and one vCPU boots and runs libvirt-guests.sh as fast.
	mem=1536 smp=1
	# snapshot=on: QEMU's own throwaway copy-on-write overlay (a temporary
	# qcow2 over the raw image, deleted when QEMU ends), so the cached image
	# stays as it was built. At 00:10.0, after the shared layout: no address
	# moves, but the groups behind the root ports are one higher (a root-bus
	# device gets its group before them): 04:00.0/04:00.1 are in 12 and 13.
	# shellcheck disable=SC2054 # the commas are QEMU's
	root_qemu=(-drive "file=$cache/debian/root.img,if=none,id=root,format=raw,snapshot=on"
		-device virtio-blk-pci,drive=root,addr=10.0)
	root_append=" root=/dev/vda rw"
fi
# shellcheck disable=SC2054 # the commas are QEMU's
qemu=(
	"$qemu_dir/usr/bin/qemu-system-x86_64"
	-L "$qemu_dir/usr/share/qemu" -L "$qemu_dir/usr/share/seabios" -L /usr/share/seabios
	-machine q35,kernel-irqchip=split -accel tcg,thread=multi -cpu max -m "$mem" -smp "$smp"
	-nodefaults -nographic -serial stdio -no-reboot
	-device intel-iommu,intremap=on
	# pciehp (not ACPI) drives the hotplug ports, so their sets are slot sets.
	-global ICH9-LPC.acpi-pci-hotplug-with-bridge-support=off
	# root bus: a dev_set of its own (hot-reset info ENODEV)
	-device e1000e,addr=02.0,romfile=
	# bus set in one group (the bridge's)
	-device pcie-pci-bridge,id=pb,addr=03.0
	-device e1000,bus=pb,addr=01.0,romfile= -device e1000,bus=pb,addr=02.0,romfile=
	# pciehp slot set in one group
	-device pcie-root-port,id=rp1,chassis=1,slot=1,addr=04.0,x-speed=5,x-width=1
	-device e1000e,bus=rp1,addr=00.0,multifunction=on,romfile= -device e1000e,bus=rp1,addr=00.1,romfile=
	# pciehp slot set spanning two groups
	-device pcie-root-port,id=rp3,chassis=3,slot=3,addr=06.0,x-speed=5,x-width=1
	-device igb,bus=rp3,addr=00.0,multifunction=on,romfile= -device igb,bus=rp3,addr=00.1,romfile=
	# no hotplug: bus set spanning two groups
	-device pcie-root-port,id=rp4,chassis=4,slot=4,addr=07.0,hotplug=off,x-speed=5,x-width=1
	-device igb,bus=rp4,addr=00.0,multifunction=on,romfile= -device igb,bus=rp4,addr=00.1,romfile=
	# a PCIe switch (buses 05-08) behind a root port without hotplug: a
	# downstream port with pciehp (slot set, its hotplug service device is
	# pcie204, not a root port's pcie004) and one with hotplug=off (bus set).
	# xio3130-downstream has no x-speed; a hot reset behind it takes ~1.3 s.
	-device pcie-root-port,id=rp9,chassis=9,slot=9,addr=09.0,hotplug=off,x-speed=5,x-width=1
	-device x3130-upstream,id=up9,bus=rp9,addr=00.0
	-device xio3130-downstream,id=dp5,bus=up9,chassis=5,slot=5,addr=00.0
	-device igb,bus=dp5,addr=00.0,multifunction=on,romfile= -device igb,bus=dp5,addr=00.1,romfile=
	-device xio3130-downstream,id=dp6,bus=up9,chassis=6,slot=6,addr=01.0,hotplug=off
	-device igb,bus=dp6,addr=00.0,multifunction=on,romfile= -device igb,bus=dp6,addr=00.1,romfile=
	"${extra_qemu[@]}"
	"${root_qemu[@]}"
	-kernel "$kdir/vmlinuz" -initrd "$initrd"
	# no_timer_check: on a busy host the guest's boot-time test of the IO-APIC
	# timer (timer_irq_works, arch/x86/kernel/apic/io_apic.c) can see too few
	# ticks and panic "timer doesn't work through Interrupt-remapped IO-APIC"
	# (Documentation/admin-guide/kernel-parameters.txt).
	-append "console=ttyS0 intel_iommu=on iommu=pt panic=-1 quiet loglevel=4 pci=noari no_timer_check$root_append"
)

# Host-side stamps: under TCG the guest's clock is not the host's.
stamp() {
	local line t e
	while IFS= read -r line || [ -n "$line" ]; do
		line=${line%$'\r'}
		# Drop the firmware's terminal resets and other escape sequences.
		line=${line//$'\e'\[*([0-9;?])[a-zA-Z]/}
		line=${line//$'\e'c/}
		t=$(now_us)
		e=$((t - t_boot))
		printf '[%4d.%03d] %s\n' $((e / 1000000)) $((e % 1000000 / 1000)) "$line"
		case $line in
		*"VMTEST INFO init: kernel"*) [ -n "${t_init:-}" ] || { t_init=$t; echo "$t" >"$log.init"; } ;;
		*"VMTEST INFO init: running scenario"*) [ -e "$log.began" ] || echo "$t" >"$log.began" ;;
		esac
	done
}

# boot: run the guest once, its console in $log; sets qemu_rc and t_init, and
# boot_failed when the scenario never began (a panic, or no scenario within
# boot_timeout s: then QEMU is stopped).
boot() {
	local watchdog
	rm -f "$log.init" "$log.began" "$log.rc" "$log.pid" "$log.stalled"
	echo "run.sh: booting $name on $kver (log: $log)"
	t_boot=$(now_us) t_init=""
	(
		set +e
		exec 8>&-
		for ((i = 0; i < boot_timeout; i++)); do
			sleep 1
			[ -e "$log.began" ] || [ -e "$log.rc" ] && exit 0
		done
		: >"$log.stalled"
		[ -s "$log.pid" ] && kill "$(cat "$log.pid")" 2>/dev/null
	) &
	watchdog=$!
	set +e
	{
		QEMU_MODULE_DIR="$qemu_dir/usr/lib/x86_64-linux-gnu/qemu" \
			timeout -k 10 "$timeout" "${qemu[@]}" -pidfile "$log.pid"
		echo $? >"$log.rc"
	} </dev/null 2>&1 8>&- | stamp | tee "$log" |
		case $verbose in
		1) cat ;;
		2) sed -u -n 's/^\(\[[ 0-9.]*\]\) DEMO \{0,1\}/\1 /p' ;;
		*) grep --line-buffered -a 'VMTEST ' ;;
		esac
	wait "$watchdog"
	set -e
	qemu_rc=$(cat "$log.rc" 2>/dev/null || echo 1)
	t_init="" t_began=""
	[ -f "$log.init" ] && t_init=$(cat "$log.init")
	[ -f "$log.began" ] && t_began=$(cat "$log.began")
	boot_failed=""
	if [ -e "$log.stalled" ]; then
		boot_failed="the scenario had not begun $boot_timeout s after QEMU started"
	elif [ ! -e "$log.began" ] && ! grep -q -a 'VMTEST DONE' "$log"; then
		boot_failed="QEMU ended (status $qemu_rc) before the scenario began"
	fi
	rm -f "$log.init" "$log.began" "$log.rc" "$log.pid" "$log.stalled"
}

# One guest at a time: TCG guests that share a busy host's cores slow each
# other down until their boot stalls or panics. The lock is in the cache, so
# builds that share it (distcheck, other work trees) take turns too.
exec 8>"$cache/vm.lock"
t_wait=$(now_us)
if ! flock -n 8; then
	echo "run.sh: $name waits for the guest of another scenario to end ($cache/vm.lock)"
	flock 8
fi
t_locked=$(now_us)
[ $((t_locked - t_wait)) -lt 100000 ] || echo "run.sh: $name waited $(secs $((t_locked - t_wait))) s for its turn"

boots=1
boot
if [ -n "$boot_failed" ]; then
	echo "run.sh: $name: boot failed: $boot_failed; the last lines:"
	tail -n 15 "$log"
	failed_log=${log%.log}.boot1.log
	mv -f "$log" "$failed_log"
	echo "run.sh: $name: booting once more (that boot's log: $failed_log)"
	boots=2
	boot
fi
flock -u 8
exec 8>&-
t_end=$(now_us)
rm -f "$initrd"

grep -a 'VMTEST ' "$log" | sed 's/^\[[ 0-9.]*\] //; s/.*\(VMTEST \)/\1/' >"$log.results" || true
n_pass=$(grep -c '^VMTEST PASS' "$log.results" || true)
n_fail=$(grep -c '^VMTEST FAIL' "$log.results" || true)
n_skip=$(grep -c '^VMTEST SKIP' "$log.results" || true)
done_seen=$(grep -c '^VMTEST DONE' "$log.results" || true)
rm -f "$log.results"

boot_s="?"
[ -n "$t_init" ] && boot_s=$(secs $((t_init - t_boot)))
began_s="?"
[ -n "$t_began" ] && began_s=$(secs $((t_began - t_boot)))
echo "run.sh: wall $(secs $((t_end - t_start))) s (fetch $(secs $((t_fetched - t_start))) s," \
	"initrd $(secs $((t_initrd - t_fetched))) s, waiting for the turn $(secs $((t_locked - t_wait))) s," \
	"boot to /init $boot_s s, to the scenario $began_s s, VM $(secs $((t_end - t_boot))) s, boots $boots)"

status=0
if [ "$done_seen" -eq 0 ]; then
	if [ -n "$boot_failed" ]; then
		echo "run.sh: FAIL $name: boot failed twice: $boot_failed; the last lines:"
		tail -n 15 "$log"
	elif [ "$qemu_rc" -eq 124 ]; then
		echo "run.sh: FAIL $name: the guest did not finish within $timeout s"
	else
		echo "run.sh: FAIL $name: QEMU ended (status $qemu_rc) without VMTEST DONE; the last lines:"
		tail -n 15 "$log"
	fi
	status=1
elif [ "$n_fail" -gt 0 ]; then
	echo "run.sh: failed:"
	grep -a 'VMTEST FAIL' "$log"
	status=1
elif [ "$n_pass" -eq 0 ] && [ "$n_skip" -gt 0 ]; then
	grep -a 'VMTEST SKIP' "$log"
	status=77
elif [ "$n_pass" -eq 0 ]; then
	echo "run.sh: FAIL $name: the scenario reported nothing"
	status=1
fi
echo "run.sh: $name: $n_pass passed, $n_fail failed, $n_skip skipped; log kept in $log"
exit "$status"
