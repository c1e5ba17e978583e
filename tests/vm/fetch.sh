#!/bin/bash
# Fetch QEMU 10 (bookworm-backports) and bookworm's 6.1 kernel into a cache
# folder for the real-kernel VM tests, without touching the system's apt
# sources. Idempotent: stamp files record what was unpacked.
# Usage: tests/vm/fetch.sh CACHE_DIR
# Exit 0: everything is there; 77: something cannot be had (reason printed).
set -eu

if [ $# -ne 1 ]; then
	echo "usage: $0 CACHE_DIR" >&2
	exit 2
fi
mkdir -p "$1"
cache=$(cd "$1" && pwd)

skip() {
	echo "fetch.sh: SKIP: $*" >&2
	exit 77
}
say() { echo "fetch.sh: $*" >&2; }

# Host tools the test bed runs. bookworm's qemu-system-x86 stays installed
# because the unpacked QEMU 10 uses its shared libraries.
host_tools() {
	local need=() t pkg
	for t in qemu-system-x86_64:qemu-system-x86 busybox:busybox-static \
		cpio:cpio depmod:kmod dpkg-deb:dpkg; do
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

# The mirror URI the system already uses for bookworm (never written down here).
mirror_uri() {
	awk '
		/^[[:space:]]*$/ { if (uri != "" && bw) { print uri; exit } uri = ""; bw = 0; next }
		$1 == "URIs:" { uri = $2 }
		$1 == "Suites:" { for (i = 2; i <= NF; i++) if ($i == "bookworm") bw = 1 }
		END { if (uri != "" && bw) print uri }
	' /etc/apt/sources.list.d/debian.sources 2>/dev/null | head -n 1
}

apt_private() {
	apt-get -o Dir::Etc::SourceList="$cache/apt/sources.list" \
		-o Dir::Etc::SourceParts=/dev/null \
		-o Dir::State::Lists="$cache/apt/lists" \
		-o Dir::Cache="$cache/apt/cache" \
		-o Dir::State::status=/dev/null \
		-o APT::Sandbox::User=root \
		-o Debug::NoLocking=1 "$@"
}
apt_cache_private() {
	apt-cache -o Dir::Etc::SourceList="$cache/apt/sources.list" \
		-o Dir::Etc::SourceParts=/dev/null \
		-o Dir::State::Lists="$cache/apt/lists" \
		-o Dir::Cache="$cache/apt/cache" \
		-o Dir::State::status=/dev/null "$@"
}

apt_lists_ready=0
apt_update_private() {
	[ "$apt_lists_ready" -eq 1 ] && return 0
	local uri
	uri=$(mirror_uri)
	[ -n "$uri" ] || skip "no bookworm URI in /etc/apt/sources.list.d/debian.sources"
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

mkdir -p "$cache/log"
# Parallel test runs share the cache: one fetches, the others wait.
exec 9>"$cache/.fetch.lock"
flock 9
host_tools
fetch_qemu
fetch_kernel
say "ready in $cache"
