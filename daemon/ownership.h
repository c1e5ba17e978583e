/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* Ownership of managed devices, behind one table so that the cdev model
 * (/dev/vfio/devices/vfioX + /dev/iommu) slots in without touching the
 * arbiter. Today: the legacy model, a container of its own for every group
 * (one IOMMU address space per group: two peers never share one). */

#include <stddef.h>
#include <systemd/sd-event.h>

#include "config-file.h"
#include "device.h"
#include "devset.h"
#include "fdstore.h"
#include "holders.h"
#include "kernel.h"

/* An open group: the kernel's unit of isolation, so also the unit of claims. */
struct owned_group {
        int group;
        int group_fd;
        int container_fd;
        unsigned n_devices;     /* daemon-owned devices in it */
        /* Taken back from the fd store: the processes that still held its
         * container then, its peers before the restart. Until one of them
         * takes a device of it again, or none holds it any more, nobody else
         * may: the container is their IOMMU address space. */
        struct holder *previous;
        size_t n_previous;
        bool adopted;           /* taken back, its previous holders not looked for yet */
};

struct ownership;

struct ownership_ops {
        const char *name;
        /* Open what the device needs (its group and container, its device fd). */
        int (*acquire)(struct ownership *o, struct device *d);
        void (*release)(struct ownership *o, struct device *d);
        /* The fd a peer sets up DMA through: the group's container. */
        int (*iommu_fd)(const struct ownership *o, const struct device *d);
        /* The group fds a hot reset of the set needs (legacy: every group; cdev: none). */
        int (*reset_group_fds)(const struct ownership *o, const struct dev_set *s, int **ret, size_t *n_ret);
};

struct ownership_events {
        /* The kernel wanted the device back (an unbind or a removal waits for
         * every fd of it to close), and the daemon has let go of it. */
        void (*device_request)(void *userdata, struct device *d);
};

struct ownership {
        const struct ownership_ops *ops;
        const struct kernel_ops *kernel;
        sd_event *event;
        struct owned_group **groups;    /* groups the daemon holds open */
        size_t n_groups;
        struct ownership_events events;
        void *userdata;
        /* Every fd taken is parked in the service manager's fd store, and
         * taken back from it after a restart (fdstore.h). */
        struct fdstore *store;
        bool keep_stored;       /* the daemon exits: what it lets go of stays in the store */
};

extern const struct ownership_ops ownership_legacy_ops;

/* The group the daemon holds open, or NULL. */
struct owned_group *ownership_find_group(const struct ownership *o, int group);

/* After the groups came back from the fd store: who holds their containers
 * still (one walk of /proc for them all); logged. */
void ownership_find_previous_holders(struct ownership *o);
/* May the process pid take a device of this group? NULL when it may; else
 * the peer from before a restart that still holds the group's container. */
const struct holder *ownership_previous_holder(struct ownership *o, int group, pid_t pid);
/* Some group waits for its peer from before a restart (TakeDevice must learn the caller's pid). */
bool ownership_has_previous_holders(const struct ownership *o, int group);

/* Bring every device's ownership in line with whether it is managed; logs what fails. */
void ownership_sync(struct ownership *o, struct device *const *devices, size_t n_devices,
                    const struct vrd_config *config);
