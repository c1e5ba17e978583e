/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* Ownership of managed devices, behind one table so that the cdev model
 * (/dev/vfio/devices/vfioX + /dev/iommu) slots in without touching the
 * arbiter. Today: the legacy model, a container of its own for every group
 * (one IOMMU address space per group: two peers never share one). */

#include <stddef.h>

struct manager;
struct device;
struct dev_set;

/* An open group: the kernel's unit of isolation, so also the unit of claims. */
struct owned_group {
        int group;
        int group_fd;
        int container_fd;
        unsigned n_devices;     /* daemon-owned devices in it */
};

struct ownership_ops {
        const char *name;
        /* Open what the device needs (its group and container, its device fd). */
        int (*acquire)(struct manager *m, struct device *d);
        void (*release)(struct manager *m, struct device *d);
        /* The fd a peer sets up DMA through: the group's container. */
        int (*iommu_fd)(const struct device *d);
        /* The group fds a hot reset of the set needs (legacy: every group; cdev: none). */
        int (*reset_group_fds)(const struct dev_set *s, int **ret, size_t *n_ret);
};

extern const struct ownership_ops ownership_legacy_ops;

/* Bring every device's ownership in line with whether it is managed; logs what fails. */
void ownership_sync(struct manager *m);
