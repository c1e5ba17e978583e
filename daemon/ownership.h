/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* Ownership of managed devices, behind one table per model, chosen per
 * dev_set (ownership-model.c):
 * - legacy (ownership.c): the group and a container of its own for every
 *   group: one IOMMU address space per group, two peers never share one;
 * - cdev (ownership-cdev.c, Linux 6.6+): one iommufd context per dev_set,
 *   every member's cdev bound to it; each peer gets an IOAS of its own in
 *   it, but whoever holds the context's fd reaches every IOAS id of it. */

#include <stddef.h>
#include <systemd/sd-event.h>

#include "config-file.h"
#include "device.h"
#include "devset.h"
#include "fdstore.h"
#include "holders.h"
#include "kernel.h"

/* A group taken back from the fd store with the address space its peer
 * had (legacy: the group's container; cdev: the IOAS its devices stayed
 * attached to), and the processes that still held the daemon's file of it
 * then (legacy: that container; cdev: a member's bound cdev): its peers
 * before the restart, whose DMA mappings are there. Until one of them takes
 * a device of the group again, or none holds the file any more, nobody else
 * may (ownership-restart.c). */
struct previous_holders {
        int group;
        int file;               /* the daemon's own, not owned here */
        struct holder *v;
        size_t n;
        bool adopted;           /* taken back, its holders not looked for yet */
};

/* An open group: the kernel's unit of isolation, so also the unit of claims. */
struct owned_group {
        int group;
        int group_fd;
        int container_fd;
        unsigned n_devices;     /* daemon-owned devices in it */
        struct previous_holders previous;       /* file: the container */
};

/* cdev model: a dev_set's iommufd context (/dev/iommu). The kernel's proof
 * for an empty-list hot reset is every device of the set bound to it. */
struct owned_context {
        char *set_id;
        int iommufd;
        unsigned n_devices;     /* daemon-owned devices bound to it */
        struct previous_holders *previous;      /* groups whose IOAS came back; file: a member's cdev */
        size_t n_previous;
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
        /* A peer takes the device: fresh when it claims nothing of the
         * device's group yet (cdev: the group's devices move to a new IOAS;
         * legacy: nothing). Sets *ret_moved to the devices whose IOAS changed
         * (at most n_moved_max), NULL-terminated. Error messages name d. */
        int (*take)(struct ownership *o, struct device *d, bool fresh, struct device **ret_moved, size_t n_moved_max,
                    char *why, size_t why_size);
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
        struct owned_group **groups;    /* legacy: groups the daemon holds open */
        size_t n_groups;
        struct owned_context **contexts; /* cdev: one per dev_set with owned members */
        size_t n_contexts;
        struct ownership_events events;
        void *userdata;
        /* Every fd taken is parked in the service manager's fd store, and
         * taken back from it after a restart (fdstore.h). */
        struct fdstore *store;
        bool keep_stored;       /* the daemon exits: what it lets go of stays in the store */
};

/* What the callers use: routes each call to the table of the device's model. */
extern const struct ownership_ops ownership_model_ops;
extern const struct ownership_ops ownership_legacy_ops;
extern const struct ownership_ops ownership_cdev_ops;

/* The model a device of this set is to be taken with: the set's
 * [DevSet ID] Model=, else [Ownership] Model=; auto picks cdev where the
 * kernel offers it (/dev/iommu exists and every member has a vfio cdev). */
enum ownership_model ownership_pick_model(const struct ownership *o, const struct device *d,
                                          const struct vrd_config *config);
const char *ownership_model_name(enum ownership_model m);

/* Both models: listen for the kernel asking for the device back. */
void ownership_watch_requests(struct ownership *o, struct device *d);
struct owned_context *ownership_find_context(const struct ownership *o, const char *set_id);

/* The group the daemon holds open, or NULL. */
struct owned_group *ownership_find_group(const struct ownership *o, int group);

/* After the groups came back from the fd store: who holds their files
 * still (one walk of /proc for them all); logged. */
void ownership_find_previous_holders(struct ownership *o);
/* May the process pid take a device of this group? 1: it is a peer of it
 * from before a restart, back (it holds the file: its address space is
 * there); 0: it may, nobody from before holds the group any more; -EBUSY:
 * *ret, a peer from before, still holds it. */
int ownership_previous_holder(struct ownership *o, int group, pid_t pid, const struct holder **ret);
/* Some group waits for its peer from before a restart (TakeDevice must learn the caller's pid). */
bool ownership_has_previous_holders(const struct ownership *o, int group);
/* Forget the previous holders of what came back with file (it is let go of). */
void previous_holders_forget(struct previous_holders **v, size_t *n, int file);

/* Bring every device's ownership in line with whether it is managed; logs what fails. */
void ownership_sync(struct ownership *o, struct device *const *devices, size_t n_devices,
                    const struct vrd_config *config);
