/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* Which char device an fd is: what both kernel backends check a stored fd
 * against (a group, the container, /dev/iommu, a device cdev). */

#include <stddef.h>
#include <sys/types.h>

/* The number of a char device the kernel registered, from its sysfs "dev"
 * file ("MAJOR:MINOR"). */
int vfio_sysfs_devnum(const char *path, dev_t *ret);
/* 1 when fd is the char device want, 0 when not, -errno. */
int vfio_is_char_device(int fd, dev_t want);
/* "/dev/null", "anon_inode:[eventfd]": what an fd is, for a message. */
const char *vfio_fd_what(int fd, char *buf, size_t size);
