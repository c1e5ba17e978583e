/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* What the VM tests' own VFIO programs share (hot-reset-info.c, bar-peer.c,
 * holder.c, borrow-reset.c): the group of a PCI function, the kernel's
 * hot-reset set, a function's config space and BAR0. Static inline, so that
 * each program builds from its one .c file (run.sh) and keeps what it uses.
 * The legacy group + container + type1 interface of include/uapi/linux/vfio.h,
 * which every Debian kernel has. */
#pragma once

#include <errno.h>
#include <libgen.h>
#include <limits.h>
#include <linux/pci_regs.h>
#include <linux/vfio.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/types.h>
#include <time.h>
#include <unistd.h>

static inline const char *vt_errname(int e)
{
        const char *n = strerrorname_np(e);
        return n ? n : "E?";
}

static inline double vt_now_us(void)
{
        struct timespec ts;

        clock_gettime(CLOCK_MONOTONIC, &ts);
        return ts.tv_sec * 1e6 + ts.tv_nsec / 1e3;
}

static inline int vt_cmp_double(const void *a, const void *b)
{
        double x = *(const double *)a, y = *(const double *)b;
        return (x > y) - (x < y);
}

/* Sorts v; its median. */
static inline double vt_median(double *v, size_t n)
{
        qsort(v, n, sizeof(*v), vt_cmp_double);
        return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

static inline int vt_valid_bdf(const char *s)
{
        unsigned d, b, sl, f;
        char end;

        return strlen(s) == 12 && sscanf(s, "%4x:%2x:%2x.%1x%c", &d, &b, &sl, &f, &end) == 4 && sl < 32 && f < 8;
}

/* The IOMMU group number of a PCI function, from its sysfs link; -errno. */
static inline int vt_group_of(const char *bdf)
{
        char path[PATH_MAX], link[PATH_MAX];
        ssize_t n;
        char *end;
        long id;

        snprintf(path, sizeof(path), "/sys/bus/pci/devices/%s/iommu_group", bdf);
        n = readlink(path, link, sizeof(link) - 1);
        if (n < 0)
                return -errno;
        link[n] = '\0';
        errno = 0;
        id = strtol(basename(link), &end, 10);
        if (errno || *end || id < 0 || id > INT_MAX)
                return -EINVAL;
        return (int)id;
}

/* The devices a hot reset through device fd FD affects; -errno (-ENODEV: no hot reset). */
static inline int vt_hot_reset_info(int fd, struct vfio_pci_hot_reset_info **out)
{
        struct vfio_pci_hot_reset_info hdr = { .argsz = sizeof(hdr) };
        struct vfio_pci_hot_reset_info *info;
        size_t size;

        /* vfio.h: -ENOSPC = insufficient buffer, and the kernel fills in count;
         * -ENODEV = unsupported for device (no slot or bus reset: root bus). */
        if (ioctl(fd, VFIO_DEVICE_GET_PCI_HOT_RESET_INFO, &hdr) == 0)
                hdr.count = 0;
        else if (errno != ENOSPC)
                return -errno;
        size = sizeof(hdr) + hdr.count * sizeof(info->devices[0]);
        info = calloc(1, size);
        if (!info)
                return -ENOMEM;
        info->argsz = size;
        if (ioctl(fd, VFIO_DEVICE_GET_PCI_HOT_RESET_INFO, info) < 0) {
                int e = errno;
                free(info);
                return -e;
        }
        *out = info;
        return 0;
}

static inline void vt_format_dep(const struct vfio_pci_dependent_device *d, char *buf, size_t len)
{
        snprintf(buf, len, "%04x:%02x:%02x.%x", d->segment, d->bus, d->devfn >> 3, d->devfn & 7);
}

/* The distinct groups of a set (at most max), in the order the kernel lists the devices. */
static inline size_t vt_set_groups(const struct vfio_pci_hot_reset_info *info, int *ids, size_t max)
{
        size_t n = 0;

        for (size_t i = 0; i < info->count; i++) {
                size_t j = 0;
                while (j < n && ids[j] != (int)info->devices[i].group_id)
                        j++;
                if (j == n && n < max)
                        ids[n++] = (int)info->devices[i].group_id;
        }
        return n;
}

/* Read LEN bytes of the function's config space at OFF through its device fd; -errno. */
static inline int vt_config_read(int fd, off_t off, void *buf, size_t len)
{
        struct vfio_region_info cfg = { .argsz = sizeof(cfg), .index = VFIO_PCI_CONFIG_REGION_INDEX };

        if (ioctl(fd, VFIO_DEVICE_GET_REGION_INFO, &cfg) < 0)
                return -errno;
        if (pread(fd, buf, len, (off_t)cfg.offset + off) != (ssize_t)len)
                return -EIO;
        return 0;
}

/* Make sure the device decodes memory (as any user does before touching a BAR); -errno. */
static inline int vt_enable_memory(int fd)
{
        struct vfio_region_info cfg = { .argsz = sizeof(cfg), .index = VFIO_PCI_CONFIG_REGION_INDEX };
        uint16_t cmd;

        if (ioctl(fd, VFIO_DEVICE_GET_REGION_INFO, &cfg) < 0)
                return -errno;
        if (pread(fd, &cmd, sizeof(cmd), (off_t)cfg.offset + PCI_COMMAND) != sizeof(cmd))
                return -EIO;
        if (cmd & PCI_COMMAND_MEMORY)
                return 0;
        cmd |= PCI_COMMAND_MEMORY;
        if (pwrite(fd, &cmd, sizeof(cmd), (off_t)cfg.offset + PCI_COMMAND) != sizeof(cmd))
                return -EIO;
        return 0;
}

struct vt_bar {
        volatile uint32_t *p;
        size_t size;
        off_t offset;   /* the region's offset in the device fd */
};

/* Map BAR0 of device fd FD, which must hold at least min_size bytes, with
 * memory decoding on. On failure, -1 and a sentence in why. */
static inline int vt_map_bar0(int fd, size_t min_size, struct vt_bar *bar, char *why, size_t why_len)
{
        struct vfio_region_info info = { .argsz = sizeof(info), .index = VFIO_PCI_BAR0_REGION_INDEX };
        void *p;
        int r;

        if (ioctl(fd, VFIO_DEVICE_GET_REGION_INFO, &info) < 0) {
                snprintf(why, why_len, "VFIO_DEVICE_GET_REGION_INFO: %s", strerror(errno));
                return -1;
        }
        if (!(info.flags & VFIO_REGION_INFO_FLAG_MMAP) || info.size < min_size) {
                snprintf(why, why_len, "size=%llu flags=%#x: cannot map %zu bytes", (unsigned long long)info.size,
                         info.flags, min_size);
                return -1;
        }
        r = vt_enable_memory(fd);
        if (r < 0) {
                snprintf(why, why_len, "cannot enable memory decoding: %s", strerror(-r));
                return -1;
        }
        p = mmap(NULL, info.size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, (off_t)info.offset);
        if (p == MAP_FAILED) {
                snprintf(why, why_len, "mmap: %s", strerror(errno));
                return -1;
        }
        *bar = (struct vt_bar){ .p = p, .size = info.size, .offset = (off_t)info.offset };
        return 0;
}
