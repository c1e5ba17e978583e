/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* PCI uevents straight from netlink (NETLINK_KOBJECT_UEVENT): udevd's, sent
 * once its rules ran (tags set, its database written), or the kernel's. The
 * socket is the daemon's own, or one systemd passes (vfio-resetd.socket,
 * ListenNetlink=kobject-uevent 2). A netlink multicast reaches only sockets
 * of the sender's network namespace, so under PrivateNetwork=yes only a
 * socket that systemd bound outside the sandbox still hears udevd. */

#include <stddef.h>
#include <stdint.h>

/* The multicast group: which sender's events (netlink(7), NETLINK_KOBJECT_UEVENT). */
enum uevent_group {
        UEVENT_GROUP_KERNEL = 1,
        UEVENT_GROUP_UDEV = 2,
};

struct uevent {
        char action[16];                /* add, remove, bind, unbind, change, ... */
        char subsystem[32];
        char sysname[64];               /* the last element of DEVPATH: "0000:04:00.0" */
        char driver[64];                /* DRIVER=, "" when the event has none */
};

/* udevd's header before the KEY=VALUE strings: the magic and the hashes in
 * network byte order (socket filters read them), sizes and offsets in the host's. */
#define UEVENT_UDEVD_MAGIC 0xfeedcafeU
struct uevent_udevd_header {
        char prefix[8];                 /* "libudev" */
        uint32_t magic;
        uint32_t header_size;
        uint32_t properties_off;        /* from the start of the message */
        uint32_t properties_len;
        uint32_t filter_subsystem_hash;
        uint32_t filter_devtype_hash;
        uint32_t filter_tag_bloom_hi;
        uint32_t filter_tag_bloom_lo;
};

/* A socket of its own, bound to group, non-blocking. Returns the fd or -errno. */
int uevent_socket_open(enum uevent_group group);
/* Takes fd (systemd's), a bound NETLINK_KOBJECT_UEVENT socket, into use.
 * Returns the group it listens to, or -errno (-EPROTOTYPE: not such a socket). */
int uevent_socket_adopt(int fd);

/* One message as the kernel (ACTION@DEVPATH, then KEY=VALUE strings) or udevd
 * ("libudev" header, then the same strings) sends it. 0, or -EBADMSG. */
int uevent_parse(const void *buf, size_t len, struct uevent *ret);

/* What udevd's header carries for a subsystem name (MurmurHash2, seed 0),
 * for socket filters. */
uint32_t uevent_subsystem_hash(const char *subsystem);

/* The next PCI event on fd: 1 with *ret, 0 when none is waiting, -ENOBUFS
 * when the socket dropped some (rescan to catch up), other -errno. Messages
 * from anyone but the group's sender (the kernel; udevd, as root) and events
 * of other subsystems are skipped. */
int uevent_receive(int fd, enum uevent_group group, struct uevent *ret);
