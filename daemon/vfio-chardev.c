/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Which char device an fd is, by the number the kernel registered for it. */
#include <errno.h>
#include <stdio.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include "macro.h"
#include "vfio-chardev.h"

/* The number of a char device the kernel registered, from its sysfs "dev"
 * file ("MAJOR:MINOR"): a group's in class vfio (/sys/class/vfio/N/dev), the
 * container's as the misc device vfio (/sys/class/misc/vfio/dev). The kernel
 * opens a char device by that number alone, whatever node names it. */
int vfio_sysfs_devnum(const char *path, dev_t *ret) {
        _cleanup_(fclosep) FILE *f = fopen(path, "re");
        unsigned ma, mi;

        if (!f)
                return negative_errno();
        if (fscanf(f, "%u:%u", &ma, &mi) != 2)
                return -EIO;
        *ret = makedev(ma, mi);
        return 0;
}

const char *vfio_fd_what(int fd, char *buf, size_t size) {
        char path[64];
        ssize_t n;

        snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);
        n = readlink(path, buf, size - 1);
        if (n < 0)
                snprintf(buf, size, "fd %d", fd);
        else
                buf[n] = '\0';
        return buf;
}

int vfio_is_char_device(int fd, dev_t want) {
        struct stat st;

        if (fstat(fd, &st) < 0)
                return negative_errno();
        return S_ISCHR(st.st_mode) && st.st_rdev == want;
}

