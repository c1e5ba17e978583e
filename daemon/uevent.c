/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Uevents from netlink, in the two formats of its two senders: the kernel's
 * (lib/kobject_uevent.c: "ACTION@DEVPATH", then NUL-terminated KEY=VALUE
 * strings) and udevd's (a header starting "libudev", then the same strings;
 * systemd's sd-device monitor writes it, libudev and sd-device read it). */
#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <arpa/inet.h>
#include <linux/filter.h>
#include <linux/netlink.h>
#include <systemd/sd-daemon.h>

#include "log.h"
#include "macro.h"
#include "uevent.h"

uint32_t uevent_subsystem_hash(const char *s) {
        const uint32_t m = 0x5bd1e995;
        size_t len = strlen(s);
        uint32_t h = (uint32_t) len;
        const unsigned char *p = (const unsigned char *) s;

        for (; len >= 4; p += 4, len -= 4) {
                uint32_t k;

                memcpy(&k, p, sizeof(k));       /* in the host's byte order, as udevd reads it */
                k *= m;
                k ^= k >> 24;
                k *= m;
                h = h * m ^ k;
        }
        switch (len) {
        case 3:
                h ^= (uint32_t) p[2] << 16;
                /* fall through */
        case 2:
                h ^= (uint32_t) p[1] << 8;
                /* fall through */
        case 1:
                h ^= p[0];
                h *= m;
        }
        h ^= h >> 13;
        h *= m;
        return h ^ (h >> 15);
}

/* The kernel drops udevd's events of other subsystems before they wake the
 * daemon (or, on systemd's socket while the daemon is stopped, start it).
 * The kernel's own carry no magic and pass; what is too short for one is dropped. */
static int attach_pci_filter(int fd) {
        struct sock_filter code[] = {
                BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct uevent_udevd_header, magic)),
                BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, UEVENT_UDEVD_MAGIC, 1, 0),
                BPF_STMT(BPF_RET | BPF_K, 0xffffffff),
                BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct uevent_udevd_header, filter_subsystem_hash)),
                BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, uevent_subsystem_hash("pci"), 0, 1),
                BPF_STMT(BPF_RET | BPF_K, 0xffffffff),
                BPF_STMT(BPF_RET | BPF_K, 0),
        };
        struct sock_fprog prog = { .len = ELEMENTSOF(code), .filter = code };

        if (setsockopt(fd, SOL_SOCKET, SO_ATTACH_FILTER, &prog, sizeof(prog)) < 0)
                return negative_errno();
        return 0;
}

/* Credentials with every message (udevd's must be root's), and the filter. */
static int setup_socket(int fd) {
        const int one = 1;

        if (setsockopt(fd, SOL_SOCKET, SO_PASSCRED, &one, sizeof(one)) < 0)
                return negative_errno();
        return attach_pci_filter(fd);
}

int uevent_socket_open(enum uevent_group group) {
        struct sockaddr_nl sa = { .nl_family = AF_NETLINK, .nl_groups = 1U << (group - 1) };
        _cleanup_close_ int fd = -EBADF;
        const int room = 8 * 1024 * 1024;
        int r;

        fd = socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC | SOCK_NONBLOCK, NETLINK_KOBJECT_UEVENT);
        if (fd < 0)
                return negative_errno();
        /* Room for a burst (a bind moves every function of a set at once);
         * systemd's socket has its ReceiveBuffer= already, not to be shrunk. */
        if (setsockopt(fd, SOL_SOCKET, SO_RCVBUFFORCE, &room, sizeof(room)) < 0)
                (void) setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &room, sizeof(room));      /* up to rmem_max */
        r = setup_socket(fd);
        if (r < 0)
                return r;
        if (bind(fd, (struct sockaddr *) &sa, sizeof(sa)) < 0)
                return negative_errno();
        return TAKE_FD(fd);
}

int uevent_socket_adopt(int fd) {
        struct sockaddr_nl sa = {};
        socklen_t len = sizeof(sa), plen = sizeof(int);
        int protocol, flags, r;

        r = sd_is_socket(fd, AF_NETLINK, SOCK_RAW, -1);
        if (r < 0)
                return r;
        if (r == 0)
                return -EPROTOTYPE;
        if (getsockopt(fd, SOL_SOCKET, SO_PROTOCOL, &protocol, &plen) < 0 || getsockname(fd, (struct sockaddr *) &sa, &len) < 0)
                return negative_errno();
        if (protocol != NETLINK_KOBJECT_UEVENT || !(sa.nl_groups & 3))
                return -EPROTOTYPE;
        flags = fcntl(fd, F_GETFL);
        if (flags < 0 || fcntl(fd, F_SETFL, flags | O_NONBLOCK) < 0 || fcntl(fd, F_SETFD, FD_CLOEXEC) < 0)
                return negative_errno();
        r = setup_socket(fd);
        if (r < 0)
                return r;
        return sa.nl_groups & 2 ? UEVENT_GROUP_UDEV : UEVENT_GROUP_KERNEL;
}

/* KEY=VALUE at p (n bytes, maybe unterminated) into dst when it is key's:
 * 1 copied, 0 another key's, -EBADMSG a value that fits no PCI event. */
static int take_value(const char *p, size_t n, const char *key, char *dst, size_t size) {
        size_t k = strlen(key);

        if (n < k || memcmp(p, key, k) != 0)
                return 0;
        if (n - k >= size)
                return -EBADMSG;
        memcpy(dst, p + k, n - k);
        dst[n - k] = '\0';
        return 1;
}

int uevent_parse(const void *buf, size_t len, struct uevent *ret) {
        const char *p = buf, *end;
        struct uevent_udevd_header hdr;

        *ret = (struct uevent) {};
        if (len >= sizeof(hdr) && memcmp(p, "libudev", 8) == 0) {
                memcpy(&hdr, p, sizeof(hdr));
                if (ntohl(hdr.magic) != UEVENT_UDEVD_MAGIC || hdr.properties_off < sizeof(hdr) || hdr.properties_off > len ||
                    hdr.properties_len > len - hdr.properties_off)
                        return -EBADMSG;
                end = p + hdr.properties_off + hdr.properties_len;
                p += hdr.properties_off;
        } else {
                const char *at = memchr(p, '\0', len);

                /* ACTION@DEVPATH */
                if (!at || !memchr(p, '@', (size_t) (at - p)))
                        return -EBADMSG;
                end = p + len;
                p = at + 1;
        }

        while (p < end) {
                const char *nul = memchr(p, '\0', (size_t) (end - p));
                size_t n = nul ? (size_t) (nul - p) : (size_t) (end - p);
                char path[4096];
                int r;

                r = take_value(p, n, "ACTION=", ret->action, sizeof(ret->action));
                if (r == 0)
                        r = take_value(p, n, "SUBSYSTEM=", ret->subsystem, sizeof(ret->subsystem));
                if (r == 0)
                        r = take_value(p, n, "DRIVER=", ret->driver, sizeof(ret->driver));
                if (r == 0 && (r = take_value(p, n, "DEVPATH=", path, sizeof(path))) > 0) {
                        const char *slash = strrchr(path, '/');

                        if (!slash || strlen(slash + 1) >= sizeof(ret->sysname))
                                return -EBADMSG;
                        strcpy(ret->sysname, slash + 1);
                }
                if (r < 0)
                        return r;
                p += n + 1;
        }
        if (!ret->action[0] || !ret->subsystem[0] || !ret->sysname[0])
                return -EBADMSG;
        return 0;
}

/* Only the kernel sends to group 1 (from no port), and only root may send
 * to group 2; udevd's messages must say so in their credentials. */
static bool from_sender(struct msghdr *msg, const struct sockaddr_nl *sender, enum uevent_group group) {
        if (sender->nl_groups != 1U << (group - 1))
                return false;           /* unicast, or another group */
        if (group == UEVENT_GROUP_KERNEL)
                return sender->nl_pid == 0;
        for (struct cmsghdr *c = CMSG_FIRSTHDR(msg); c; c = CMSG_NXTHDR(msg, c))
                if (c->cmsg_level == SOL_SOCKET && c->cmsg_type == SCM_CREDENTIALS &&
                    c->cmsg_len >= CMSG_LEN(sizeof(struct ucred))) {
                        struct ucred cred;

                        memcpy(&cred, CMSG_DATA(c), sizeof(cred));
                        return cred.uid == 0;
                }
        return false;
}

int uevent_receive(int fd, enum uevent_group group, struct uevent *ret) {
        for (;;) {
                union {
                        struct cmsghdr h;
                        uint8_t space[CMSG_SPACE(sizeof(struct ucred))];
                } control;
                char buf[8192];
                struct sockaddr_nl sender = {};
                struct iovec iov = { .iov_base = buf, .iov_len = sizeof(buf) };
                struct msghdr msg = {
                        .msg_name = &sender,
                        .msg_namelen = sizeof(sender),
                        .msg_iov = &iov,
                        .msg_iovlen = 1,
                        .msg_control = &control,
                        .msg_controllen = sizeof(control),
                };
                ssize_t n;

                n = recvmsg(fd, &msg, MSG_DONTWAIT);
                if (n < 0) {
                        if (errno == EAGAIN || errno == EWOULDBLOCK)
                                return 0;
                        if (errno == EINTR)
                                continue;
                        return negative_errno();
                }
                if ((msg.msg_flags & MSG_TRUNC) || !from_sender(&msg, &sender, group))
                        continue;
                if (uevent_parse(buf, (size_t) n, ret) < 0) {
                        log_debug("Ignoring a malformed uevent of %zd bytes", n);
                        continue;
                }
                if (strcmp(ret->subsystem, "pci") == 0)
                        return 1;
        }
}
