#!/bin/bash
# Build the busybox initramfs the VM tests boot.
# Usage: tests/vm/mkinitrd.sh --kernel DIR --scenario FILE --out FILE.cpio.gz
#          [--native BDF]... [--bin PATH]... [--env NAME=VALUE]...
#   --kernel   a kernel folder made by fetch.sh (CACHE/kernel)
#   --scenario the guest script /init runs once the devices are bound
#   --native   an endpoint NIC left on its native driver instead of vfio-pci
#   --bin      a host program to copy in (with its libraries and the loader)
#   --env      a variable the scenario sees
#   --modules  the modules to load (with what modules.dep and the softdeps
#              say they need; those built in are left out); by default
#              vfio-pci's and the NICs' drivers
#   --init     the initramfs's /init (default guest-init.sh)
#   --payload  a folder copied in as /vmtest-root (guest-root-init.sh puts
#              it into the Debian root)
# /init (guest-init.sh) binds every other endpoint NIC to vfio-pci.
set -eu

here=$(cd "$(dirname "$0")" && pwd)
kernel="" scenario="" out="" payload="" init="$here/guest-init.sh"
# What the guest needs; modules.dep adds their dependencies.
wanted_modules="vfio vfio_iommu_type1 vfio_pci_core vfio_pci e1000 e1000e igb"
natives=() bins=() envs=()
while [ $# -gt 0 ]; do
	case $1 in
	--kernel) kernel=$2; shift 2 ;;
	--scenario) scenario=$2; shift 2 ;;
	--out) out=$2; shift 2 ;;
	--native) natives+=("$2"); shift 2 ;;
	--bin) bins+=("$2"); shift 2 ;;
	--env) envs+=("$2"); shift 2 ;;
	--modules) wanted_modules=$2; shift 2 ;;
	--init) init=$2; shift 2 ;;
	--payload) payload=$2; shift 2 ;;
	*) echo "mkinitrd.sh: unknown argument '$1'" >&2; exit 2 ;;
	esac
done
if [ -z "$kernel" ] || [ -z "$scenario" ] || [ -z "$out" ]; then
	echo "usage: $0 --kernel DIR --scenario FILE --out FILE [--native BDF]... [--bin PATH]... [--env N=V]... [--modules LIST] [--init FILE] [--payload DIR]" >&2
	exit 2
fi
die() { echo "mkinitrd.sh: $*" >&2; exit 1; }
[ -f "$kernel/version" ] || die "$kernel has no kernel (run fetch.sh)"
[ -f "$scenario" ] || die "no scenario $scenario"
kver=$(cat "$kernel/version")
moddir="$kernel/root/lib/modules/$kver"

root=$(mktemp -d)
trap 'rm -rf "$root"' EXIT
# A merged /usr like the host, so library paths from ldd are valid as they are.
mkdir -p "$root"/usr/bin "$root"/usr/sbin "$root"/usr/lib/x86_64-linux-gnu "$root"/usr/lib64 \
	"$root"/proc "$root"/sys "$root"/dev "$root"/run "$root"/tmp "$root"/etc/dbus-1 \
	"$root"/var "$root"/root
ln -s usr/bin "$root/bin"
ln -s usr/sbin "$root/sbin"
ln -s usr/lib "$root/lib"
ln -s usr/lib64 "$root/lib64"
ln -s ../run "$root/var/run"

# busybox and its applets (a copied program of the same name wins).
busybox=$(command -v busybox)
LC_ALL=C ldd "$busybox" 2>&1 | grep -q 'not a dynamic executable' ||
	die "$busybox is not static (install busybox-static)"
cp "$busybox" "$root/usr/bin/busybox"
for applet in $("$busybox" --list); do
	[ "$applet" = busybox ] || ln -s busybox "$root/usr/bin/$applet"
done

# Modules in load order, as modprobe(8) would load them: for each wanted
# module, the modules its softdeps want first (modprobe.d(5) "softdep MOD
# pre: ...", in modules.softdep, each name through modules.alias), its
# modules.dep entries (which list every indirect dependency, deepest last) in
# reverse, then itself. A module built into the kernel (modules.builtin) is
# left out: the kernel has it already.
module_name() { awk -v p="$1" 'BEGIN { sub(/.*\//, "", p); sub(/\.ko(\.[a-z]+)?$/, "", p); gsub(/-/, "_", p); print p }'; }
module_path() {
	awk -F: -v n="$1" '{ f = $1; sub(/.*\//, "", f); sub(/\.ko(\.[a-z]+)?$/, "", f);
		gsub(/-/, "_", f); if (f == n) { print $1; exit } }' "$moddir/modules.dep"
}
module_builtin() {
	[ -f "$moddir/modules.builtin" ] && awk -v n="$1" '{ f = $1; sub(/.*\//, "", f); sub(/\.ko$/, "", f);
		gsub(/-/, "_", f); if (f == n) { found = 1; exit } } END { exit !found }' "$moddir/modules.builtin"
}
module_deps() {
	awk -F: -v p="$1" '$1 == p { n = split($2, d, " "); for (i = n; i >= 1; i--) print d[i]; exit }' \
		"$moddir/modules.dep"
}
# The modules a module's "pre:" softdeps name (an alias may name several:
# modprobe loads each that exists).
module_softdeps() {
	[ -f "$moddir/modules.softdep" ] || return 0
	local n
	for n in $(awk -v m="$1" '$1 == "softdep" && $2 == m {
			for (i = 3; i <= NF; i++) { if ($i == "pre:") pre = 1; else if ($i ~ /:$/) pre = 0; else if (pre) print $i } }' \
		"$moddir/modules.softdep"); do
		if [ -n "$(module_path "$(echo "$n" | tr - _)")" ]; then
			echo "$n" | tr - _
		else
			awk -v a="$n" '$1 == "alias" && $2 == a { print $3 }' "$moddir/modules.alias" 2>/dev/null
		fi
	done
}
order=()
add_module() {
	local p
	for p in "${order[@]}"; do [ "$p" = "$1" ] && return 0; done
	order+=("$1")
}
# want NAME [soft]: NAME and what it needs, in load order; a softdep that
# is neither a module nor built in is left out, as modprobe leaves it.
want() {
	local p p2 d s
	module_builtin "$1" && return 0
	p=$(module_path "$1")
	if [ -z "$p" ]; then
		[ "${2:-}" = soft ] && return 0
		die "module $1 is neither a module of $kver nor built into it"
	fi
	for p2 in "${order[@]}"; do [ "$p2" = "$p" ] && return 0; done
	for d in "$p" $(module_deps "$p"); do
		for s in $(module_softdeps "$(module_name "$d")"); do want "$s" soft; done
	done
	for d in $(module_deps "$p"); do add_module "$d"; done
	add_module "$p"
}
for m in $wanted_modules; do want "$m"; done
mkdir -p "$root/usr/lib/modules/$kver"
: >"$root/usr/lib/modules/$kver/load-order"
for p in "${order[@]}"; do
	dest="$root/usr/lib/modules/$kver/${p%.ko*}.ko"
	mkdir -p "$(dirname "$dest")"
	case $p in
	*.ko) cp "$moddir/$p" "$dest" ;;
	*.ko.xz) xz -dc "$moddir/$p" >"$dest" ;;
	*.ko.zst) zstd -qdc "$moddir/$p" >"$dest" ;;
	*) die "unknown module format $p" ;;
	esac
	echo "/lib/modules/$kver/${p%.ko*}.ko" >>"$root/usr/lib/modules/$kver/load-order"
done

# A program and everything the loader will look for. Libraries outside the
# loader's default folders (a build tree's .libs) go to the default folder.
copy_lib() {
	local src=$1 dir
	dir=$(dirname "$src")
	case $dir in
	/lib/x86_64-linux-gnu | /usr/lib/x86_64-linux-gnu | /lib64 | /usr/lib64 | /usr/lib/x86_64-linux-gnu/*)
		dest="$root$src" ;;
	*) dest="$root/usr/lib/x86_64-linux-gnu/$(basename "$src")" ;;
	esac
	[ -e "$dest" ] && return 0
	mkdir -p "$(dirname "$dest")"
	cp -L "$src" "$dest"
}
copy_bin() {
	local bin=$1 real libpath="" line lib
	[ -f "$bin" ] || die "no program $bin"
	real=$bin
	# An uninstalled libtool program is a wrapper script: take the real one
	# from .libs and let ldd see the build tree's libraries.
	if head -c 2 "$bin" | grep -q '#!' && grep -q 'libtool' "$bin"; then
		real="$(dirname "$bin")/.libs/$(basename "$bin")"
		[ -f "$real" ] || real="$(dirname "$bin")/.libs/lt-$(basename "$bin")"
		[ -f "$real" ] || die "$bin is a libtool wrapper without a .libs program"
		# Absolute, so that ldd names absolute paths for a relative --bin too.
		libpath=$(find "$(cd "$(dirname "$bin")/.." && pwd)" -maxdepth 3 -type d -name .libs -printf '%p:')
	fi
	# Not through a busybox applet's link (setpriv): that would overwrite busybox.
	rm -f "$root/usr/bin/$(basename "$bin")"
	cp -L "$real" "$root/usr/bin/$(basename "$bin")"
	chmod 755 "$root/usr/bin/$(basename "$bin")"
	while IFS= read -r line; do
		case $line in
		*"not found"*) die "$bin: library $line" ;;
		*"=> /"*) lib=${line#*=> }; lib=${lib%% (*} ;;
		/*) lib=${line%% (*} ;;
		*) continue ;;
		esac
		lib=$(echo "$lib" | tr -d '[:space:]')
		copy_lib "$lib"
	done < <(LD_LIBRARY_PATH="$libpath" LC_ALL=C ldd "$real" 2>/dev/null | sed 's/^[[:space:]]*//')
}
for b in "${bins[@]}"; do copy_bin "$b"; done

# A private system bus like TESTING.md's, at the standard address.
cat >"$root/etc/dbus-1/vmtest-system.conf" <<'XML'
<!DOCTYPE busconfig PUBLIC "-//freedesktop//DTD D-Bus Bus Configuration 1.0//EN"
 "http://www.freedesktop.org/standards/dbus/1.0/busconfig.dtd">
<busconfig>
  <type>system</type>
  <listen>unix:path=/run/dbus/system_bus_socket</listen>
  <auth>EXTERNAL</auth>
  <policy context="default">
    <allow user="*"/>
    <allow own="*"/>
    <allow send_destination="*" eavesdrop="true"/>
    <allow receive_sender="*"/>
    <allow eavesdrop="true"/>
  </policy>
</busconfig>
XML
printf 'root:x:0:0:root:/root:/bin/sh\nmessagebus:x:100:101::/run/dbus:/bin/false\n' >"$root/etc/passwd"
printf 'root:x:0:\nmessagebus:x:101:\n' >"$root/etc/group"
printf 'passwd: files\ngroup: files\n' >"$root/etc/nsswitch.conf"
# dbus-daemon and sd-bus want a machine id; any fixed one will do.
echo 5f0c6b6ad1a54f1e9d2c3b4a59687766 >"$root/etc/machine-id"
mkdir -p "$root/var/lib/dbus"
ln -s /etc/machine-id "$root/var/lib/dbus/machine-id"

{
	printf 'VMTEST_KVER=%s\n' "$kver"
	printf 'VMTEST_NATIVE="%s"\n' "${natives[*]}"
	printf 'VMTEST_SCENARIO=%s\n' "$(basename "$scenario" .sh)"
	for e in "${envs[@]}"; do
		printf 'export %s=%q\n' "${e%%=*}" "${e#*=}"
	done
} >"$root/etc/vmtest.conf"

install -m 755 "$init" "$root/init"
if [ -n "$payload" ]; then
	mkdir -p "$root/vmtest-root"
	cp -a "$payload/." "$root/vmtest-root/"
fi
install -m 644 "$here/guest-lib.sh" "$root/usr/lib/vmtest.sh"
install -m 755 "$scenario" "$root/scenario.sh"

mkdir -p "$(dirname "$out")"
(cd "$root" && find . -print0 | LC_ALL=C sort -z | cpio --null -o -H newc --quiet) | gzip -1 >"$out.tmp"
mv "$out.tmp" "$out"
