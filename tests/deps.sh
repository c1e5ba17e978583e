#!/bin/sh
# Installs what vfio-resetd needs to build, test and run its demo on Debian 12 (as root);
# clang with libFuzzer (libclang-rt-dev), llvm's symbolizer and valgrind for .ci/run's
# sanitizer, fuzz and memcheck passes; what building the VM tests' 7.3 kernel takes
# (tests/vm/build-kernel.sh: flex, bison, bc, libelf and OpenSSL headers, xz).
set -eu
export DEBIAN_FRONTEND=noninteractive
apt_get() { apt-get -o DPkg::Lock::Timeout=600 -q "$@"; }
apt_get update
apt_get install -y --no-install-recommends \
	autoconf automake libtool autoconf-archive pkg-config build-essential \
	libsystemd-dev libudev-dev libjson-c-dev libxml2-dev \
	check umockdev libumockdev-dev dbus-daemon systemd udev libinih-dev python3-dbusmock bash-completion \
	libvirt-dev libvirt-daemon \
	qemu-system-x86 busybox-static cpio kmod mmdebstrap e2fsprogs \
	flex bison bc libelf-dev libssl-dev xz-utils \
	clang libclang-rt-dev llvm valgrind
