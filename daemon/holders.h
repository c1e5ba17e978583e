/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* Who holds a vfio group (/dev/vfio/N) or device cdev (/dev/vfio/devices/vfioX)
 * open, found by walking /proc/<pid>/fd. The kernel lets one process at a
 * time open a group, so whoever holds it blocks every other user of it. */

#include <stdbool.h>
#include <sys/types.h>

#include "holder-name.h"

/* A node's identity: the character device it opens. vfio registers each group
 * as a char device under a dynamic major (vfio_group_fops; its number is in
 * /sys/class/vfio/N/dev), and the kernel opens a group by that number alone:
 * a node made with mknod in a private /dev (libvirt's QEMU namespace,
 * PrivateDevices=) is another inode on another filesystem with the same
 * st_rdev, and holds the same group. */
struct holder_target {
        dev_t rdev;
};

/* A unit name has at most 255 characters (systemd.unit(5)). */
#define HOLDER_UNIT_MAX 256

struct holder {
        size_t target;          /* index into the targets passed to holders_scan */
        pid_t pid;
        uid_t uid;              /* real uid (proc(5): "Uid:" of /proc/<pid>/status), (uid_t) -1 if gone */
        char comm[17];          /* /proc/<pid>/comm (TASK_COMM_LEN) */
        char unit[HOLDER_UNIT_MAX]; /* systemd unit of its cgroup (sd_pid_get_unit(3)), "" when none */
};

/* The device number of the char device node at path, looked up with O_PATH
 * (which never reaches the driver's open); -ENODEV if it is no char device. */
int holder_target_from_path(const char *path, struct holder_target *ret);

/* Fills *ret with one entry per (target, pid), and *ret_uninspected with the
 * processes whose fds cannot be read (no ptrace access: any of them may hold
 * a target; their .target is unused). Fails only on -ENOMEM or without /proc. */
int holders_scan(const struct holder_target *targets, size_t n_targets, pid_t exclude,
                 struct holder **ret, size_t *n_ret, struct holder **ret_uninspected, size_t *n_uninspected);

/* The lowest fd number by which pid holds the char device rdev open;
 * -ENOENT when it holds none, -errno when its fds cannot be read. */
int holder_fd_of(pid_t pid, dev_t rdev);

/* The processes, but those in exclude, that hold the very open file one of
 * our fds is (kcmp(2) KCMP_FILE): a dup of it, inherited, passed over a
 * socket or taken with pidfd_getfd(2); .target is the index in fds. A peer
 * from before a restart that still holds the container the daemon gave it
 * is found so. One walk of /proc for all of them. */
int holders_of_files(const int *fds, size_t n_fds, const pid_t *exclude, size_t n_exclude, struct holder **ret,
                     size_t *n_ret);
/* 1 when pid holds that file, 0 when not or gone, -errno when its fds cannot be read. */
int holder_has_file(pid_t pid, int fd);

/* "pid P (comm, uid U, unit X)" into buf, which it returns. */
const char *holder_describe(const struct holder *h, char buf[static HOLDER_NAME_MAX]);

/* "N processes could not be inspected (pid P (comm), ...); the daemon needs
 * CAP_SYS_PTRACE", or NULL on -ENOMEM. */
char *holders_uninspected_sentence(const struct holder *v, size_t n);
