#!/bin/bash
# Fetch QEMU 10 (bookworm-backports) and bookworm's 6.1 kernel into a cache
# folder for the real-kernel VM tests, without touching the system's apt
# sources. Idempotent: stamp files record what was unpacked.
# With --debian-root, also the Debian root image that `# vmtest-root: debian`
# scenarios boot (CACHE/debian/root.img, rebuilt when its recipe changes).
# Usage: tests/vm/fetch.sh [--debian-root] CACHE_DIR
# Exit 0: everything is there; 77: something cannot be had (reason printed).
set -eu

debian_root=0
if [ "${1:-}" = --debian-root ]; then
	debian_root=1
	shift
fi
if [ $# -ne 1 ]; then
	echo "usage: $0 [--debian-root] CACHE_DIR" >&2
	exit 2
fi
mkdir -p "$1"
cache=$(cd "$1" && pwd)

skip() {
	echo "fetch.sh: SKIP: $*" >&2
	exit 77
}
say() { echo "fetch.sh: $*" >&2; }

# host_tools [TOOL:PACKAGE]...: the host tools the test bed runs, and
# those given (installed with apt-get when missing). bookworm's
# qemu-system-x86 stays installed because the unpacked QEMU 10 uses its
# shared libraries.
host_tools() {
	local need=() t pkg
	for t in qemu-system-x86_64:qemu-system-x86 busybox:busybox-static \
		cpio:cpio depmod:kmod dpkg-deb:dpkg "$@"; do
		pkg=${t#*:}
		command -v "${t%%:*}" >/dev/null 2>&1 ||
			[ -x "/usr/sbin/${t%%:*}" ] || [ -x "/sbin/${t%%:*}" ] ||
			need+=("$pkg")
	done
	# The static busybox is needed inside the guest, a dynamic one will not do.
	[ -x /bin/busybox ] && file_is_static /bin/busybox || need+=(busybox-static)
	[ ${#need[@]} -eq 0 ] && return 0
	[ "$(id -u)" -eq 0 ] || skip "missing ${need[*]} and not root to install them"
	say "installing ${need[*]}"
	if ! apt-get install -y -o DPkg::Lock::Timeout=600 "${need[@]}" >"$cache/log/apt-install.log" 2>&1; then
		apt-get update -o DPkg::Lock::Timeout=600 >>"$cache/log/apt-install.log" 2>&1 ||
			skip "apt-get update failed (no network?), see $cache/log/apt-install.log"
		apt-get install -y -o DPkg::Lock::Timeout=600 "${need[@]}" >>"$cache/log/apt-install.log" 2>&1 ||
			skip "cannot install ${need[*]}, see $cache/log/apt-install.log"
	fi
}

file_is_static() {
	# A static ELF has no PT_INTERP; ldd says so on stdout or stderr.
	LC_ALL=C ldd "$1" 2>&1 | grep -q 'not a dynamic executable'
}

# apt on a private configuration in CACHE/apt, and the system's mirror
apt_dir=$cache/apt
# shellcheck source=tests/vm/apt-private.sh
. "$(dirname "$0")/apt-private.sh"

apt_lists_ready=0
apt_update_private() {
	[ "$apt_lists_ready" -eq 1 ] && return 0
	local uri
	uri=$(mirror_uri | head -n 1)
	[ -n "$uri" ] || skip "no bookworm URI in the system's apt sources"
	mkdir -p "$cache/apt/lists/partial" "$cache/apt/cache/archives/partial"
	{
		echo "deb [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] $uri bookworm main"
		echo "deb [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] $uri bookworm-backports main"
	} >"$cache/apt/sources.list"
	say "apt-get update (private lists under $cache/apt)"
	apt_private update --error-on=any >"$cache/log/apt-update.log" 2>&1 ||
		skip "apt-get update of the private lists failed (no network?), see $cache/log/apt-update.log"
	apt_lists_ready=1
}

# download DIR PKG...: apt-get download into DIR (the .debs are kept there).
download() {
	local dir=$1
	shift
	mkdir -p "$dir"
	(cd "$dir" && apt_private download "$@") >>"$cache/log/apt-download.log" 2>&1 ||
		skip "apt-get download $* failed, see $cache/log/apt-download.log"
}

fetch_qemu() {
	local stamp="$cache/qemu.stamp" dir="$cache/qemu" deb
	if [ -f "$stamp" ] && [ -x "$dir/usr/bin/qemu-system-x86_64" ]; then
		return 0
	fi
	apt_update_private
	rm -rf "$dir" "$cache/debs/qemu"
	download "$cache/debs/qemu" qemu-system-x86/bookworm-backports \
		qemu-system-common/bookworm-backports qemu-system-data/bookworm-backports \
		seabios/bookworm-backports
	mkdir -p "$dir"
	for deb in "$cache"/debs/qemu/*.deb; do
		dpkg-deb -x "$deb" "$dir"
	done
	[ -x "$dir/usr/bin/qemu-system-x86_64" ] || skip "no qemu-system-x86_64 in the unpacked packages"
	local missing
	missing=$(LC_ALL=C ldd "$dir/usr/bin/qemu-system-x86_64" | awk '/not found/ { print $1 }')
	[ -z "$missing" ] || skip "QEMU 10 needs libraries this system lacks: $missing"
	(cd "$cache/debs/qemu" && ls ./*.deb) >"$stamp"
	say "QEMU: $("$dir/usr/bin/qemu-system-x86_64" --version | head -n 1)"
}

fetch_kernel() {
	local stamp="$cache/kernel.stamp" dir="$cache/kernel" image deb kver depmod
	if [ -f "$stamp" ] && [ -f "$dir/vmlinuz" ]; then
		return 0
	fi
	apt_update_private
	# linux-image-amd64 (bookworm, the candidate: backports has lower priority)
	# depends on exactly one linux-image-6.1.*-amd64.
	image=$(apt_cache_private depends linux-image-amd64 2>/dev/null |
		awk '$1 == "Depends:" && $2 ~ /^linux-image-6\.1\..*-amd64/ { print $2; exit }')
	[ -n "$image" ] || skip "cannot resolve linux-image-amd64 to a linux-image-6.1.*-amd64 package"
	rm -rf "$dir" "$cache/debs/kernel"
	download "$cache/debs/kernel" "$image"
	mkdir -p "$dir/root"
	for deb in "$cache"/debs/kernel/*.deb; do
		dpkg-deb -x "$deb" "$dir/root"
	done
	kver=$(basename "$(ls -d "$dir"/root/lib/modules/*)")
	[ -f "$dir/root/boot/vmlinuz-$kver" ] || skip "no vmlinuz in $image"
	depmod=$(command -v depmod || echo /usr/sbin/depmod)
	[ -x "$depmod" ] || skip "depmod (kmod) is missing"
	"$depmod" -b "$dir/root" "$kver"
	ln -sf "root/boot/vmlinuz-$kver" "$dir/vmlinuz"
	echo "$kver" >"$dir/version"
	echo "$image" >"$stamp"
	say "kernel: $image ($kver)"
}

# --- the Debian root (--debian-root) -----------------------------------------
# What the root holds: systemd as PID 1, the system bus, polkitd, udev and
# libvirtd with bookworm's QEMU for its domains; systemd-container for
# systemd-machined, which puts each domain's QEMU in a machine-*.scope unit;
# the libraries the project's programs link that the rest does not bring
# (libinih1 for vfio-resetd, libjson-c5 for vfio-resetctl).
root_packages=systemd-sysv,dbus,polkitd,pkexec,udev,kmod,libvirt-daemon-system,qemu-system-x86,busybox,systemd-container,libinih1,libjson-c5

# customize_root DIR KVER: what every boot of the image shares. What a run
# brings (the project's files, the scenario and its units) comes with that
# boot's initramfs (mkinitrd.sh --payload), so the image outlives builds.
customize_root() {
	local dir=$1 kver=$2
	mkdir -p "$dir/usr/lib/modules"
	cp -a "$cache/kernel/root/lib/modules/$kver" "$dir/usr/lib/modules/"
	# Every boot starts from the same image: not a first boot each time.
	echo 5f0c6b6ad1a54f1e9d2c3b4a59687766 >"$dir/etc/machine-id"
	echo vmtest >"$dir/etc/hostname"
	printf '127.0.0.1\tlocalhost\n127.0.1.1\tvmtest\n' >"$dir/etc/hosts"
	printf '/dev/vda / ext4 rw 0 1\n' >"$dir/etc/fstab"
	# agetty's vhangup on the serial console cuts the scenario's output.
	ln -sf /dev/null "$dir/etc/systemd/system/serial-getty@ttyS0.service"
	# The installed programs may live under /tmp (distcheck's prefix is in
	# its build folder): /tmp is not emptied at boot (tmpfiles.d's "D /tmp").
	printf 'd /tmp 1777 root root -\n' >"$dir/etc/tmpfiles.d/tmp.conf"
}

# The image: mmdebstrap into a folder, the kernel's modules and the settings
# above, then mkfs.ext4 -d into a 2 GiB raw image. Its stamp is a hash of
# this recipe, the package list and the kernel, so a change to any of them
# builds it again; a guest still booting the old image keeps its inode.
fetch_debian_root() {
	local dir="$cache/debian" stamp="$cache/debian/root.stamp" kver hash uri tmp
	kver=$(cat "$cache/kernel/version")
	hash=$({ declare -f customize_root fetch_debian_root; echo "$root_packages $kver"; } | sha256sum | cut -d' ' -f1)
	if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$hash" ] && [ -f "$dir/root.img" ]; then
		return 0
	fi
	host_tools mmdebstrap:mmdebstrap mkfs.ext4:e2fsprogs
	uri=$(mirror_uri | head -n 1)
	[ -n "$uri" ] || skip "no bookworm URI in the system's apt sources"
	mkdir -p "$dir"
	tmp=$(mktemp -d "$dir/build.XXXXXX")
	say "building the Debian root image (mmdebstrap, log: $cache/log/mmdebstrap.log)"
	local t0=$SECONDS
	# Documentation and translations are not needed to boot.
	mmdebstrap --variant=apt --include="$root_packages" \
		--dpkgopt='path-exclude=/usr/share/doc/*' --dpkgopt='path-exclude=/usr/share/man/*' \
		--dpkgopt='path-exclude=/usr/share/locale/*' --dpkgopt='path-exclude=/usr/share/info/*' \
		bookworm "$tmp/rootfs" "$uri" >"$cache/log/mmdebstrap.log" 2>&1 || {
		rm -rf "$tmp"
		skip "mmdebstrap failed (no network?), see $cache/log/mmdebstrap.log"
	}
	local t1=$SECONDS
	customize_root "$tmp/rootfs" "$kver"
	mkfs.ext4 -q -F -L vmtest-root -d "$tmp/rootfs" "$tmp/root.img" 2G >>"$cache/log/mmdebstrap.log" 2>&1 || {
		rm -rf "$tmp"
		echo "fetch.sh: mkfs.ext4 -d failed, see $cache/log/mmdebstrap.log" >&2
		exit 1
	}
	mv -f "$tmp/root.img" "$dir/root.img"
	rm -rf "$tmp"
	echo "$hash" >"$stamp"
	say "Debian root: $(du -h --apparent-size "$dir/root.img" | cut -f1) image, $(du -h "$dir/root.img" | cut -f1) used" \
		"(mmdebstrap $((t1 - t0)) s, modules and mkfs.ext4 $((SECONDS - t1)) s)"
}

mkdir -p "$cache/log"
# Parallel test runs share the cache: one fetches, the others wait.
exec 9>"$cache/.fetch.lock"
flock 9
host_tools
fetch_qemu
fetch_kernel
[ "$debian_root" -eq 0 ] || fetch_debian_root
say "ready in $cache"
