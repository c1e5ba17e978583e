/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* Who holds a vfio group (/dev/vfio/N) or device cdev (/dev/vfio/devices/vfioX)
 * open, found by walking /proc/<pid>/fd. The kernel lets one process at a
 * time open a group, so whoever holds it blocks every other user of it. */

#include <stdbool.h>
#include <sys/types.h>

/* A node's identity: the inode /proc/<pid>/fd/<n> resolves to. */
struct holder_target {
        dev_t dev;
        ino_t ino;
};

struct holder {
        size_t target;          /* index into the targets passed to holders_scan */
        pid_t pid;
        char comm[17];          /* /proc/<pid>/comm (TASK_COMM_LEN) */
};

/* Fills *ret with one entry per (target, pid); fails only on -ENOMEM. A
 * target whose node does not exist is skipped by its caller. */
int holder_target_from_path(const char *path, struct holder_target *ret);
int holders_scan(const struct holder_target *targets, size_t n_targets, pid_t exclude,
                 struct holder **ret, size_t *n_ret);
