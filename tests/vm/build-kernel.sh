#!/bin/bash
# Build the VM tests' second kernel: Debian's linux-source-7.3
# (trixie-backports) with IOMMUFD, VFIO device cdevs and vfio-pci dma-buf
# export, which no Debian kernel has. The configuration is x86_64_defconfig,
# kvm_guest.config, then every value of kernel-7.3.config (scripts/config),
# then olddefconfig; every value of kernel-7.3.config is checked in the result.
#
# Usage: tests/vm/build-kernel.sh [--cache DIR]
#   --cache  where the source, the build tree and the result are kept
#            (default $VMTEST_KERNEL_CACHE, else /var/cache/vfio-resetd-tests)
# Prints the kernel folder on stdout (the layout of fetch.sh's CACHE/kernel:
# vmlinuz, version, root/lib/modules/KVER; besides, config, the kernel's
# configuration, and usr/include, its uapi headers, for programs that use
# what bookworm's linux-libc-dev lacks, such as VFIO_DEVICE_BIND_IOMMUFD),
# after building it if needed:
#   CACHE/kernel-7.3-HASH/    HASH: of kernel-7.3.config and $recipe below,
#                             so only a change to either builds again
#   CACHE/src/linux-VERSION/  the unpacked source (read-only use: the build
#                             is out of tree)
#   CACHE/build-7.3/          the build tree (make O=), reused, so a change
#                             of the configuration rebuilds only what changed
# Two runs at once take turns (CACHE/kernel-7.3.lock): one builds, the
# other then finds the result. Env: VMTEST_KERNEL_JOBS (default: the
# number of CPUs) for make -j.
# Exit 0: the kernel is there; 77: it cannot be had or built (one line on
# stderr says why); 1: the configuration lacks a wanted value, or usage.
set -eu

# Bump when the way the kernel is built changes (not for comments).
recipe=2
here=$(cd "$(dirname "$0")" && pwd)
fragment="$here/kernel-7.3.config"
base=${VMTEST_KERNEL_CACHE:-/var/cache/vfio-resetd-tests}
while [ $# -gt 0 ]; do
	case $1 in
	--cache) base=$2; shift 2 ;;
	*) echo "build-kernel.sh: unknown argument '$1'" >&2; exit 2 ;;
	esac
done

# Run by make check (tests/vm/kernel-7.3/kernel.test, run.sh), it inherits
# the outer make's flags: its jobserver, which the kernel's make cannot use,
# and -w, which puts "Entering directory" lines into what `make -s
# kernelversion` prints. The kernel's makes here are makes of their own.
unset MAKEFLAGS MAKELEVEL MFLAGS

say() { echo "build-kernel.sh: $*" >&2; }
skip() {
	echo "build-kernel.sh: SKIP: $*" >&2
	exit 77
}

[ -f "$fragment" ] || { say "no $fragment"; exit 1; }
hash=$({ cat "$fragment"; echo "build-kernel.sh recipe $recipe"; } | sha256sum | cut -c1-12)
mkdir -p "$base" 2>/dev/null || skip "cannot create $base (set VMTEST_KERNEL_CACHE)"
base=$(cd "$base" && pwd)
out="$base/kernel-7.3-$hash"

# Already built: nothing to lock.
if [ -f "$out/stamp" ]; then
	echo "$out"
	exit 0
fi

mkdir -p "$base/log"
exec 9>"$base/kernel-7.3.lock" || skip "cannot write $base/kernel-7.3.lock"
if ! flock -n 9; then
	say "another run is building the kernel; waiting for it ($base/kernel-7.3.lock)"
	flock 9
fi
if [ -f "$out/stamp" ]; then
	echo "$out"
	exit 0
fi
log="$base/log/build-$hash.log"
: >"$log"
say "building the 7.3 kernel into $out (log: $log)"

# --- build dependencies -----------------------------------------------------
# What the kernel's build needs (Documentation/process/changes.rst): make,
# gcc, flex, bison, bc, libelf's and OpenSSL's headers (objtool, the signing
# tools), and for the result, kmod's depmod; cpio and xz for the source.
host_tools() {
	local need=() t
	for t in make:build-essential gcc:build-essential flex:flex bison:bison bc:bc \
		cpio:cpio xz:xz-utils dpkg-deb:dpkg /usr/include/gelf.h:libelf-dev \
		/usr/include/openssl/ssl.h:libssl-dev /usr/sbin/depmod:kmod; do
		case ${t%%:*} in
		/*) [ -e "${t%%:*}" ] || need+=("${t#*:}") ;;
		*) command -v "${t%%:*}" >/dev/null 2>&1 || need+=("${t#*:}") ;;
		esac
	done
	[ ${#need[@]} -eq 0 ] && return 0
	[ "$(id -u)" -eq 0 ] || skip "missing ${need[*]} to build the kernel, and not root to install them"
	say "installing ${need[*]}"
	if ! apt-get install -y -o DPkg::Lock::Timeout=600 "${need[@]}" >>"$log" 2>&1; then
		apt-get update -o DPkg::Lock::Timeout=600 >>"$log" 2>&1 ||
			skip "apt-get update failed (no network?), see $log"
		apt-get install -y -o DPkg::Lock::Timeout=600 "${need[@]}" >>"$log" 2>&1 ||
			skip "cannot install ${need[*]}, see $log"
	fi
}

# --- the source, with a private apt configuration (as fetch.sh) -------------
apt_dir=$base/apt
# shellcheck source=tests/vm/apt-private.sh
. "$here/apt-private.sh"

# fetch_source: sets src to the unpacked tree (CACHE/src/linux-VERSION),
# downloading and unpacking linux-source-7.3 only when no tree is there.
fetch_source() {
	local uri deb tmp ver
	src=$(find "$base/src" -mindepth 1 -maxdepth 1 -type d -name 'linux-7.3*' 2>/dev/null | sort -V | tail -n 1)
	if [ -n "$src" ] && [ -f "$src.stamp" ]; then
		return 0
	fi
	uri=$(mirror_uri | head -n 1)
	[ -n "$uri" ] || skip "no bookworm URI in the system's apt sources to take the mirror from"
	mkdir -p "$base/apt/lists/partial" "$base/apt/cache/archives/partial" "$base/debs" "$base/src"
	# trixie-backports is signed with trixie's keys, which bookworm's
	# debian-archive-keyring carries.
	echo "deb [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] $uri trixie-backports main" \
		>"$base/apt/sources.list"
	local t0=$SECONDS
	say "apt-get update (private lists under $base/apt)"
	apt_private update --error-on=any >>"$log" 2>&1 ||
		skip "apt-get update of trixie-backports failed (no network?), see $log"
	rm -f "$base"/debs/linux-source-7.3_*.deb
	(cd "$base/debs" && apt_private download linux-source-7.3/trixie-backports) >>"$log" 2>&1 ||
		skip "apt-get download linux-source-7.3/trixie-backports failed, see $log"
	deb=$(ls "$base"/debs/linux-source-7.3_*.deb)
	say "fetched $(basename "$deb") in $((SECONDS - t0)) s"
	t0=$SECONDS
	tmp=$(mktemp -d "$base/src/.unpack.XXXXXX")
	dpkg-deb -x "$deb" "$tmp/deb"
	[ -f "$tmp/deb/usr/src/linux-source-7.3.tar.xz" ] || { rm -rf "$tmp"; skip "$(basename "$deb") has no usr/src/linux-source-7.3.tar.xz"; }
	tar -xJf "$tmp/deb/usr/src/linux-source-7.3.tar.xz" -C "$tmp" || { rm -rf "$tmp"; skip "cannot unpack the kernel source into $base/src (disk space?)"; }
	ver=$(make -s -C "$tmp/linux-source-7.3" kernelversion 2>>"$log")
	[ -n "$ver" ] || { rm -rf "$tmp"; skip "no kernel version in the unpacked source"; }
	src="$base/src/linux-$ver"
	rm -rf "$src"
	mv "$tmp/linux-source-7.3" "$src"
	rm -rf "$tmp"
	dpkg-deb -f "$deb" Package Version >"$src.stamp"
	say "unpacked linux-$ver into $src in $((SECONDS - t0)) s"
}

# --- configuration ------------------------------------------------------------
# The fragment's lines as scripts/config arguments: CONFIG_X=y (--enable),
# =m (--module), ="string" (--set-str), =other (--set-val), and
# "# CONFIG_X is not set" (--disable).
config_args() {
	sed -n -e 's/^CONFIG_\([A-Za-z0-9_]*\)=y$/--enable \1/p' \
		-e 's/^CONFIG_\([A-Za-z0-9_]*\)=m$/--module \1/p' \
		-e 's/^CONFIG_\([A-Za-z0-9_]*\)="\(.*\)"$/--set-str \1 \2/p' \
		-e '/=[ymn"]/!s/^CONFIG_\([A-Za-z0-9_]*\)=\(.*\)$/--set-val \1 \2/p' \
		-e 's/^# CONFIG_\([A-Za-z0-9_]*\) is not set$/--disable \1/p' "$fragment"
}

# check_config FILE: every value of the fragment is in FILE (off: not =y or
# =m); prints each that is not, and fails then.
check_config() {
	local bad=0 line name
	while IFS= read -r line; do
		case $line in
		CONFIG_*=*)
			grep -qxF -- "$line" "$1" || {
				say "wanted $line, the configuration has: $(grep -E "^(# )?${line%%=*}[= ]" "$1" || echo 'nothing (its dependencies are missing)')"
				bad=1
			} ;;
		"# CONFIG_"*" is not set")
			name=${line#\# }
			name=${name%% *}
			! grep -qE "^$name=[ym]$" "$1" || { say "wanted $name off, the configuration has $(grep -E "^$name=" "$1")"; bad=1; } ;;
		esac
	done <"$fragment"
	return "$bad"
}

kmake() {
	nice -n 10 make -C "$src" O="$build" "$@"
}

host_tools
fetch_source
build="$base/build-7.3"
mkdir -p "$build"
t0=$SECONDS
kmake x86_64_defconfig >>"$log" 2>&1 || skip "make x86_64_defconfig failed, see $log"
kmake kvm_guest.config >>"$log" 2>&1 || skip "make kvm_guest.config failed, see $log"
# shellcheck disable=SC2046 # one argument a word; no value has spaces
"$src/scripts/config" --file "$build/.config" $(config_args)
kmake olddefconfig >>"$log" 2>&1 || skip "make olddefconfig failed, see $log"
if ! check_config "$build/.config"; then
	say "the configuration lacks wanted values of $fragment (above); fix the fragment"
	exit 1
fi
t_config=$((SECONDS - t0))
say "configured in $t_config s; building bzImage and modules with -j${VMTEST_KERNEL_JOBS:-$(nproc)}"

t0=$SECONDS
kmake -j"${VMTEST_KERNEL_JOBS:-$(nproc)}" bzImage modules >>"$log" 2>&1 ||
	skip "the kernel build failed, see the end of $log"
t_build=$((SECONDS - t0))
kver=$(kmake -s kernelrelease 2>>"$log")

# The result, next to the build tree and then renamed: a run that reads
# CACHE/kernel-7.3-HASH sees a whole kernel or none.
tmp=$(mktemp -d "$base/.kernel.XXXXXX")
cp "$build/arch/x86/boot/bzImage" "$tmp/vmlinuz"
cp "$build/.config" "$tmp/config"
kmake INSTALL_MOD_PATH="$tmp/root" INSTALL_MOD_STRIP=1 DEPMOD=/usr/sbin/depmod modules_install >>"$log" 2>&1 ||
	{ rm -rf "$tmp"; skip "make modules_install failed, see $log"; }
[ -f "$tmp/root/lib/modules/$kver/modules.dep" ] || { rm -rf "$tmp"; skip "modules_install made no modules.dep for $kver"; }
# The module tree's links back into the build tree are of no use to a guest.
rm -f "$tmp/root/lib/modules/$kver/build" "$tmp/root/lib/modules/$kver/source"
# The uapi headers as headers_install lays them out (without its rsync):
# "make headers" exports them into the build tree's usr/include.
kmake headers >>"$log" 2>&1 || { rm -rf "$tmp"; skip "make headers failed, see $log"; }
mkdir -p "$tmp/usr"
(cd "$build/usr" && find include -name '*.h' | cpio -pdm --quiet "$tmp/usr")
echo "$kver" >"$tmp/version"
{
	cat "$src.stamp"
	echo "configure: $t_config s"
	echo "bzImage modules: $t_build s"
} >"$tmp/build-times"
chmod -R a+rX "$tmp"
rm -rf "$out"
mv "$tmp" "$out"
echo "$hash" >"$out/stamp"
say "kernel $kver in $out (built in $t_build s, bzImage $(du -h "$out/vmlinuz" | cut -f1))"
echo "$out"
