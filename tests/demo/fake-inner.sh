#!/bin/sh
# Runs inside umockdev-run (see fake.sh): $UMOCKDEV_DIR is the fake /sys and /dev.
set -eu
while IFS='=' read -r path value; do
	mkdir -p "$UMOCKDEV_DIR/sys/$(dirname "$path")"
	printf '%s' "$value" > "$UMOCKDEV_DIR/sys/$path"
done < "$LAB_SYSFS"

say() { printf '\n\033[1m== %s\033[0m\n' "$*"; }
run() { printf '$ %s\n' "$*"; "$@"; }

"$VRD_DAEMON" --uevents=udev 2>"$UMOCKDEV_DIR/daemon.log" &
daemon=$!
has_name() {
	busctl --system call org.freedesktop.DBus /org/freedesktop/DBus org.freedesktop.DBus \
		NameHasOwner s org.vfioresetd1 2>/dev/null | grep -q true
}
i=0; until has_name; do
	i=$((i + 1)); [ $i -lt 100 ] || { cat "$UMOCKDEV_DIR/daemon.log"; exit 1; }; sleep 0.05
done

say "A fake machine (umockdev): the VM.md layout, plus a VF pair and a set with an igb-bound sibling"
say "Every vfio dev_set vfio-resetd sees, and who holds it"
run "$VRD_CTL" list

say "A stray process opens one igb function's group (/dev/vfio/10), as a VM would"
sleep 300 3</dev/vfio/10 &
stray=$!
sleep 0.2
echo "pid $stray: sleep 300 3</dev/vfio/10"
run "$VRD_CTL" list

say "Why can't the igb pair on bus 04 be reset?"
run "$VRD_CTL" explain 0000:04:00.1

say "Why can't bus 06 be reset?"
run "$VRD_CTL" explain 06:00.0

say "The same over D-Bus"
run busctl --system get-property org.vfioresetd1 /org/vfioresetd1/devset/bus_0000_04 org.vfioresetd1.DevSet Kind Devices Holders State

say "A bad address gets a clear error (exit 2)"
"$VRD_CTL" explain 0000:04:00.9 || echo "(exit $?)"

kill "$stray" "$daemon"
wait "$daemon" 2>/dev/null || true
say "Done. The real-kernel demo (make demo) shows the same on a real kernel in a VM."
