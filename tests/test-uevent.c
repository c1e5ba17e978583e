/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* daemon/uevent.c: the two formats, and the socket's filters, in a network
 * namespace of the test's own (multicast there reaches no one else). */
#include <check.h>
#include <errno.h>
#include <sched.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>
#include <arpa/inet.h>
#include <linux/netlink.h>

#include "uevent.h"
#include "check-run.h"

#define DEVPATH "/devices/pci0000:00/0000:00:07.0/0000:04:00.1"
#define PROPS(action, subsystem) \
        "ACTION=" action "\0DEVPATH=" DEVPATH "\0SUBSYSTEM=" subsystem "\0DRIVER=vfio-pci\0SEQNUM=4711\0"

/* What udevd sends: its header, then the strings. */
static size_t udevd_message(char *buf, size_t size, const char *subsystem, const char *props, size_t len) {
        struct uevent_udevd_header h = {
                .prefix = "libudev",
                .magic = htonl(UEVENT_UDEVD_MAGIC),
                .header_size = sizeof(h),
                .properties_off = sizeof(h),
                .properties_len = (uint32_t) len,
                .filter_subsystem_hash = htonl(uevent_subsystem_hash(subsystem)),
        };

        ck_assert_uint_le(sizeof(h) + len, size);
        memcpy(buf, &h, sizeof(h));
        memcpy(buf + sizeof(h), props, len);
        return sizeof(h) + len;
}

START_TEST(test_kernel_format) {
        static const char msg[] = "bind@" DEVPATH "\0" PROPS("bind", "pci");
        struct uevent e;

        ck_assert_int_eq(uevent_parse(msg, sizeof(msg) - 1, &e), 0);
        ck_assert_str_eq(e.action, "bind");
        ck_assert_str_eq(e.subsystem, "pci");
        ck_assert_str_eq(e.sysname, "0000:04:00.1");
        ck_assert_str_eq(e.driver, "vfio-pci");
}
END_TEST

START_TEST(test_udevd_format) {
        static const char props[] = PROPS("remove", "pci");
        char buf[512];
        size_t n = udevd_message(buf, sizeof(buf), "pci", props, sizeof(props) - 1);
        struct uevent e;

        ck_assert_int_eq(uevent_parse(buf, n, &e), 0);
        ck_assert_str_eq(e.action, "remove");
        ck_assert_str_eq(e.subsystem, "pci");
        ck_assert_str_eq(e.sysname, "0000:04:00.1");
        ck_assert_str_eq(e.driver, "vfio-pci");
        /* the last string unterminated, no driver: still an event */
        n = udevd_message(buf, sizeof(buf), "pci", "ACTION=add\0SUBSYSTEM=pci\0DEVPATH=" DEVPATH,
                          sizeof("ACTION=add\0SUBSYSTEM=pci\0DEVPATH=" DEVPATH) - 1);
        ck_assert_int_eq(uevent_parse(buf, n, &e), 0);
        ck_assert_str_eq(e.sysname, "0000:04:00.1");
        ck_assert_str_eq(e.driver, "");
}
END_TEST

START_TEST(test_malformed) {
        static const char props[] = PROPS("add", "pci");
        struct uevent_udevd_header *h;
        char buf[512], name[200];
        size_t n;
        struct uevent e;

        /* the kernel's: no ACTION@DEVPATH first, no SUBSYSTEM, an empty message */
        ck_assert_int_eq(uevent_parse(props, sizeof(props) - 1, &e), -EBADMSG);
        ck_assert_int_eq(uevent_parse("add@/x\0ACTION=add\0DEVPATH=/x", 28, &e), -EBADMSG);
        ck_assert_int_eq(uevent_parse("", 0, &e), -EBADMSG);
        /* a sysname longer than any PCI address fits */
        memset(name, 'a', sizeof(name) - 1);
        name[sizeof(name) - 1] = '\0';
        n = (size_t) snprintf(buf, sizeof(buf), "add@/x/%s%cACTION=add%cSUBSYSTEM=pci%cDEVPATH=/x/%s", name, 0, 0, 0, name);
        ck_assert_int_eq(uevent_parse(buf, n, &e), -EBADMSG);

        /* udevd's: a wrong magic, properties outside the message */
        n = udevd_message(buf, sizeof(buf), "pci", props, sizeof(props) - 1);
        h = (struct uevent_udevd_header *) buf;
        h->magic = htonl(0xdeadbeef);
        ck_assert_int_eq(uevent_parse(buf, n, &e), -EBADMSG);
        h->magic = htonl(UEVENT_UDEVD_MAGIC);
        h->properties_off = (uint32_t) n + 1;
        ck_assert_int_eq(uevent_parse(buf, n, &e), -EBADMSG);
        h->properties_off = 4;
        ck_assert_int_eq(uevent_parse(buf, n, &e), -EBADMSG);
        h->properties_off = sizeof(*h);
        h->properties_len = (uint32_t) n;
        ck_assert_int_eq(uevent_parse(buf, n, &e), -EBADMSG);
        h->properties_len = (uint32_t) (sizeof(props) - 1);
        ck_assert_int_eq(uevent_parse(buf, n, &e), 0);
}
END_TEST

/* --- sockets, in the test's own network namespace ---------------------------- */

static int sender(void) {
        int fd = socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, NETLINK_KOBJECT_UEVENT);

        ck_assert_int_ge(fd, 0);
        return fd;
}

static void send_to(int fd, uint32_t groups, uint32_t pid, const void *buf, size_t n) {
        struct sockaddr_nl to = { .nl_family = AF_NETLINK, .nl_groups = groups, .nl_pid = pid };

        ck_assert_int_eq(sendto(fd, buf, n, 0, (struct sockaddr *) &to, sizeof(to)), (ssize_t) n);
}

static void setup_netns(void) {
        ck_assert_int_eq(unshare(CLONE_NEWNET), 0);
}

START_TEST(test_udev_group_takes_pci_only) {
        static const char pci[] = PROPS("bind", "pci"), usb[] = PROPS("add", "usb");
        char buf[512];
        struct uevent e;
        int fd = uevent_socket_open(UEVENT_GROUP_UDEV), s = sender();

        ck_assert_int_ge(fd, 0);
        ck_assert_int_eq(uevent_receive(fd, UEVENT_GROUP_UDEV, &e), 0);     /* nothing yet */
        /* another subsystem's event: the filter drops it in the kernel, nothing is queued */
        send_to(s, 2, 0, buf, udevd_message(buf, sizeof(buf), "usb", usb, sizeof(usb) - 1));
        ck_assert_int_eq(recv(fd, buf, sizeof(buf), MSG_PEEK | MSG_DONTWAIT), -1);
        ck_assert_int_eq(errno, EAGAIN);
        /* a PCI one whose header lies about its subsystem: the filter lets it by, the check after does not */
        send_to(s, 2, 0, buf, udevd_message(buf, sizeof(buf), "pci", usb, sizeof(usb) - 1));
        send_to(s, 2, 0, buf, udevd_message(buf, sizeof(buf), "pci", pci, sizeof(pci) - 1));
        ck_assert_int_eq(uevent_receive(fd, UEVENT_GROUP_UDEV, &e), 1);
        ck_assert_str_eq(e.action, "bind");
        ck_assert_str_eq(e.sysname, "0000:04:00.1");
        ck_assert_int_eq(uevent_receive(fd, UEVENT_GROUP_UDEV, &e), 0);
        close(s);
        close(fd);
}
END_TEST

START_TEST(test_unicast_and_userspace_kernel_events_are_ignored) {
        static const char pci[] = "add@" DEVPATH "\0" PROPS("add", "pci");
        struct sockaddr_nl me = {};
        socklen_t len = sizeof(me);
        struct uevent e;
        int udev = uevent_socket_open(UEVENT_GROUP_UDEV), kernel = uevent_socket_open(UEVENT_GROUP_KERNEL), s = sender();

        ck_assert_int_ge(udev, 0);
        ck_assert_int_ge(kernel, 0);
        /* straight to the daemon's port rather than to udevd's group: anyone may send that */
        ck_assert_int_eq(getsockname(udev, (struct sockaddr *) &me, &len), 0);
        send_to(s, 0, me.nl_pid, pci, sizeof(pci) - 1);
        ck_assert_int_eq(uevent_receive(udev, UEVENT_GROUP_UDEV, &e), 0);
        /* group 1 from a process, not from the kernel (port 0) */
        send_to(s, 1, 0, pci, sizeof(pci) - 1);
        ck_assert_int_eq(uevent_receive(kernel, UEVENT_GROUP_KERNEL, &e), 0);
        /* the same on group 2 is udevd's way, from root: taken */
        send_to(s, 2, 0, pci, sizeof(pci) - 1);
        ck_assert_int_eq(uevent_receive(udev, UEVENT_GROUP_UDEV, &e), 1);
        ck_assert_str_eq(e.action, "add");
        close(s);
        close(kernel);
        close(udev);
}
END_TEST

START_TEST(test_adopt) {
        struct sockaddr_nl sa = { .nl_family = AF_NETLINK, .nl_groups = 2 };
        int fd = socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, NETLINK_KOBJECT_UEVENT), other;
        struct uevent e;

        const int room = 16 * 1024 * 1024;
        int before, after;
        socklen_t n = sizeof(int);

        /* as systemd passes it (ListenNetlink=kobject-uevent 2, ReceiveBuffer=): bound, blocking */
        ck_assert_int_ge(fd, 0);
        ck_assert_int_eq(setsockopt(fd, SOL_SOCKET, SO_RCVBUFFORCE, &room, sizeof(room)), 0);
        ck_assert_int_eq(getsockopt(fd, SOL_SOCKET, SO_RCVBUF, &before, &n), 0);
        ck_assert_int_eq(bind(fd, (struct sockaddr *) &sa, sizeof(sa)), 0);
        ck_assert_int_eq(uevent_socket_adopt(fd), UEVENT_GROUP_UDEV);
        ck_assert_int_eq(uevent_receive(fd, UEVENT_GROUP_UDEV, &e), 0);    /* non-blocking now */
        ck_assert_int_eq(getsockopt(fd, SOL_SOCKET, SO_RCVBUF, &after, &n), 0);
        ck_assert_int_eq(after, before);                                    /* its buffer left as it was */
        /* not a uevent socket */
        other = socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, NETLINK_ROUTE);
        ck_assert_int_eq(uevent_socket_adopt(other), -EPROTOTYPE);
        close(other);
        other = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
        ck_assert_int_eq(uevent_socket_adopt(other), -EPROTOTYPE);
        close(other);
        close(fd);
}
END_TEST

/* Whether this process may have a network namespace of its own (root, or CAP_SYS_ADMIN). */
static bool can_unshare_net(void) {
        int status;
        pid_t pid = fork();

        if (pid == 0)
                _exit(unshare(CLONE_NEWNET) == 0 ? 0 : 1);
        return pid > 0 && waitpid(pid, &status, 0) == pid && WIFEXITED(status) && WEXITSTATUS(status) == 0;
}

int main(void) {
        Suite *s = suite_create("uevent");
        TCase *tc = tcase_create("parse");

        tcase_add_test(tc, test_kernel_format);
        tcase_add_test(tc, test_udevd_format);
        tcase_add_test(tc, test_malformed);
        suite_add_tcase(s, tc);
        if (can_unshare_net()) {
                tc = tcase_create("netns");
                tcase_add_checked_fixture(tc, setup_netns, NULL);
                tcase_add_test(tc, test_udev_group_takes_pci_only);
                tcase_add_test(tc, test_unicast_and_userspace_kernel_events_are_ignored);
                tcase_add_test(tc, test_adopt);
                suite_add_tcase(s, tc);
        } else
                printf("Not run: the socket tests need a network namespace of their own (unshare(CLONE_NEWNET))\n");
        return check_run(s);
}
