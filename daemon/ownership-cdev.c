/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The cdev ownership model (Linux 6.6+, CONFIG_IOMMUFD, CONFIG_VFIO_DEVICE_CDEV):
 * one iommufd context (/dev/iommu) per dev_set, every member's cdev
 * (/dev/vfio/devices/vfioX) bound to it, and each peer's devices attached to
 * an IO address space of its own in it. The kernel lets an empty-list hot
 * reset through when every device of the set is bound to the caller's
 * context (vfio_pci_dev_set_hot_reset), which is what one context per set
 * gives. Isolation is weaker than legacy's container per group: a context's
 * IOAS ids are reachable by every holder of its fd, and every peer of the set
 * gets that fd. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "devset.h"
#include "log.h"
#include "macro.h"
#include "ownership.h"

struct owned_context *ownership_find_context(const struct ownership *o, const char *set_id) {
        for (size_t i = 0; set_id && i < o->n_contexts; i++)
                if (strcmp(o->contexts[i]->set_id, set_id) == 0)
                        return o->contexts[i];
        return NULL;
}

/* A stored fd, checked (the iommufd, or with cdev the device's cdev): the
 * fd, -ENOENT when none was stored, or why not (closed and dropped). */
static int check_back(struct ownership *o, const char *name, int fd, const char *cdev) {
        const struct kernel_ops *k = o->kernel;
        char why[512] = "";
        int r;

        if (fd < 0)
                return -ENOENT;
        r = cdev ? k->cdev_check(k->data, cdev, fd, why, sizeof(why)) : k->iommufd_check(k->data, fd, why, sizeof(why));
        if (r < 0) {
                log_warning("Refusing %s (fd %d) from the fd store: %s; closing and removing it", name, fd, why);
                fdstore_discard(name, fd);
                /* A cdev binds once: the store's copy must be gone before it is bound afresh. */
                fdstore_sync();
                return r;
        }
        log_info("Took %s back from the fd store (fd %d): not opened again", name, fd);
        return fd;
}

static int context_get(struct ownership *o, const char *set_id, struct owned_context **ret) {
        _cleanup_free_ struct owned_context *c = NULL;
        struct owned_context **v;
        char name[FDSTORE_NAME_MAX];
        int r, fd;

        *ret = ownership_find_context(o, set_id);
        if (*ret)
                return 0;
        v = realloc(o->contexts, sizeof(*v) * (o->n_contexts + 1));
        if (!v)
                return -ENOMEM;
        o->contexts = v;
        c = calloc(1, sizeof(*c));
        if (!c || !(c->set_id = strdup(set_id)))
                return -ENOMEM;
        fdstore_iommufd_name(set_id, name);
        fd = check_back(o, name, o->store ? fdstore_take(o->store, name) : -ENOENT, NULL);
        if (fd < 0) {
                r = o->kernel->iommufd_open(o->kernel->data, &fd);
                if (r < 0) {
                        free(c->set_id);
                        return r;
                }
                log_info("Opened /dev/iommu for dev_set %s (an iommufd context of its own)", set_id);
                fdstore_put(name, fd);
        }
        c->iommufd = fd;
        o->contexts[o->n_contexts++] = c;
        *ret = TAKE_PTR(c);
        return 0;
}

static void context_unref(struct ownership *o, struct owned_context *c) {
        char name[FDSTORE_NAME_MAX];

        if (--c->n_devices > 0)
                return;
        for (size_t i = 0; i < o->n_contexts; i++)
                if (o->contexts[i] == c) {
                        o->contexts[i] = o->contexts[--o->n_contexts];
                        break;
                }
        if (!o->keep_stored) {
                log_info("Closing the iommufd context of dev_set %s", c->set_id);
                fdstore_remove(fdstore_iommufd_name(c->set_id, name));
        }
        for (size_t i = 0; i < c->n_previous; i++)
                free(c->previous[i].v);
        free(c->previous);
        close(c->iommufd);
        free(c->set_id);
        free(c);
}

/* Park d's cdev under the name that says its dev id and IOAS, in place of
 * the one that said was_ioas. Removed first: systemd keeps one entry per
 * open file, and suppresses a second FDSTORE=1 of the same one. */
static void park(const struct device *d, uint32_t was_ioas) {
        char old[FDSTORE_NAME_MAX], new[FDSTORE_NAME_MAX];

        fdstore_cdev_name(&d->fn.address, d->iommufd_devid, was_ioas, old);
        fdstore_cdev_name(&d->fn.address, d->iommufd_devid, d->iommufd_ioas, new);
        if (strcmp(old, new) == 0)
                return;
        fdstore_remove(old);
        fdstore_put(new, d->device_fd);
}

/* A cdev came back attached to IOAS ioas: its peer's address space if the
 * context still has it. Its group is kept for whoever holds this cdev. */
static uint32_t ioas_back(struct ownership *o, struct owned_context *c, const struct device *d, int fd,
                          uint32_t ioas) {
        char address[PCI_ADDRESS_STRLEN];
        struct previous_holders *v;
        int r;

        pci_address_format(&d->fn.address, address);
        r = o->kernel->ioas_check(o->kernel->data, c->iommufd, ioas);
        if (r < 0) {
                log_warning("%s came back attached to IOAS %u, which the iommufd context of %s does not have "
                            "(IOMMU_IOAS_IOVA_RANGES: %s): its next take attaches a new one", address, ioas,
                            c->set_id, strerror(-r));
                return 0;
        }
        log_info("%s came back attached to IOAS %u, its peer's before the restart", address, ioas);
        for (size_t i = 0; i < c->n_previous; i++)
                if (c->previous[i].group == d->fn.iommu_group)
                        return ioas;
        v = realloc(c->previous, sizeof(*v) * (c->n_previous + 1));
        if (!v) {
                log_oom();
                return ioas;
        }
        c->previous = v;
        v[c->n_previous++] = (struct previous_holders) { .group = d->fn.iommu_group, .file = fd, .adopted = true };
        return ioas;
}

static int cdev_acquire(struct ownership *o, struct device *d) {
        char name[FDSTORE_NAME_MAX], address[PCI_ADDRESS_STRLEN];
        struct owned_context *c;
        bool can_reset = false;
        uint32_t devid = 0, ioas = 0, stored_ioas = 0;
        int fd, r;

        if (d->device_fd >= 0)
                return 0;
        if (!d->fn.vfio_cdev || !d->dev_set)
                return -ENOENT;
        pci_address_format(&d->fn.address, address);
        r = context_get(o, d->dev_set->id, &c);
        if (r < 0)
                return r;
        c->n_devices++;         /* held while binding: a failure below lets go of a context nobody uses */
        /* A bound cdev cannot be bound again while the stored file lives
         * (one bind per device, vfio_df_open): the stored one is the device,
         * the kernel vouching for which by its char device number. Its dev id
         * and IOAS are in its name, as the kernel tells neither.
         * VFIO_DEVICE_FLAGS_RESET is the kernel's pci_dev reset_fn, which a
         * non-empty reset_method says too. */
        fd = o->store ? fdstore_take_cdev(o->store, &d->fn.address, &devid, &stored_ioas, name) : -ENOENT;
        fd = check_back(o, name, fd, d->fn.vfio_cdev);
        if (fd >= 0) {
                r = 0;
                can_reset = d->fn.reset_methods && d->fn.reset_methods[0];
                ioas = stored_ioas ? ioas_back(o, c, d, fd, stored_ioas) : 0;
        } else {
                devid = 0;
                fdstore_cdev_name(&d->fn.address, 0, 0, name);
                r = o->kernel->cdev_bind(o->kernel->data, d->fn.vfio_cdev, &d->fn.address, c->iommufd, &fd, &devid,
                                         &can_reset);
                if (r >= 0) {
                        log_info("Bound %s (/dev/vfio/devices/%s) to the iommufd context of %s (dev id %u)", address,
                                 d->fn.vfio_cdev, d->dev_set->id, devid);
                        fdstore_put(fdstore_cdev_name(&d->fn.address, devid, 0, name), fd);
                }
        }
        if (r < 0) {
                if (fd >= 0)
                        fdstore_discard(name, fd);
                context_unref(o, c);
                return r;
        }
        d->device_fd = fd;
        d->can_function_reset = can_reset;
        d->iommufd_devid = devid;
        d->iommufd_ioas = ioas;
        d->model = OWNERSHIP_CDEV;
        park(d, stored_ioas);     /* an IOAS the context lost leaves the name */
        ownership_watch_requests(o, d);
        return 0;
}

static void cdev_release(struct ownership *o, struct device *d) {
        struct owned_context *c = d->dev_set ? ownership_find_context(o, d->dev_set->id) : NULL;
        char name[FDSTORE_NAME_MAX];
        uint32_t ioas = d->iommufd_ioas;

        d->request_source = sd_event_source_disable_unref(d->request_source);
        if (d->device_fd < 0)
                return;
        /* The kernel waits for every open file of a device it wants back:
         * the store's copy goes first. */
        if (!o->keep_stored)
                fdstore_remove(fdstore_cdev_name(&d->fn.address, d->iommufd_devid, ioas, name));
        if (c)
                previous_holders_forget(&c->previous, &c->n_previous, d->device_fd);
        close(d->device_fd);
        d->device_fd = -EBADF;
        d->iommufd_ioas = d->iommufd_devid = 0;
        /* Its IOAS goes when no device of the daemon's is in it; a peer that
         * keeps a file of the device keeps it attached (EBUSY), and the
         * context's close frees it then. */
        if (c && ioas && !o->keep_stored) {
                bool used = false;

                for (size_t i = 0; i < d->dev_set->n_members; i++)
                        used = used || d->dev_set->members[i]->iommufd_ioas == ioas;
                if (!used)
                        (void) o->kernel->ioas_destroy(o->kernel->data, c->iommufd, ioas);
        }
        if (c)
                context_unref(o, c);
}

static int cdev_iommu_fd(const struct ownership *o, const struct device *d) {
        const struct owned_context *c = d->dev_set ? ownership_find_context(o, d->dev_set->id) : NULL;

        return c && d->device_fd >= 0 ? c->iommufd : -ENOENT;
}

/* The empty list: the kernel's proof is the context, which the device fd carries. */
static int cdev_reset_group_fds(const struct ownership *o, const struct dev_set *s, int **ret, size_t *n_ret) {
        for (size_t i = 0; i < s->n_members; i++)
                if (s->members[i]->device_fd < 0 || s->members[i]->model != OWNERSHIP_CDEV)
                        return -EPERM;
        *ret = calloc(1, sizeof(int));
        if (!*ret)
                return -ENOMEM;
        *n_ret = 0;
        return 0;
}

/* A peer takes d. The IOMMU attaches a whole group to one address space
 * (iommufd: every device of a group in one hw_pagetable), so the group
 * moves: on a fresh take every owned device of d's group leaves the previous
 * peer's IOAS for a new one, which the previous IOAS, and the mappings that
 * peer made there, do not survive. */
static int cdev_take(struct ownership *o, struct device *d, bool fresh, struct device **ret_moved,
                     size_t n_moved_max, char *why, size_t why_size) {
        struct owned_context *c = ownership_find_context(o, d->dev_set ? d->dev_set->id : NULL);
        char address[PCI_ADDRESS_STRLEN];
        uint32_t ioas, old = d->iommufd_ioas;
        size_t n = 0;
        int r;

        ret_moved[0] = NULL;
        pci_address_format(&d->fn.address, address);
        if (!c || d->device_fd < 0) {
                snprintf(why, why_size, "%s is not bound to an iommufd context of vfio-resetd", address);
                return -ENOENT;
        }
        if (!fresh && d->iommufd_ioas)
                return 0;
        r = o->kernel->ioas_alloc(o->kernel->data, c->iommufd, &ioas);
        if (r < 0) {
                snprintf(why, why_size, "cannot give %s an IO address space of its own in the iommufd context of %s "
                         "(IOMMU_IOAS_ALLOC: %s)", address, c->set_id, strerror(-r));
                return r;
        }
        for (size_t i = 0; i < d->dev_set->n_members; i++) {
                struct device *m = d->dev_set->members[i];

                if (m->device_fd < 0 || m->fn.iommu_group != d->fn.iommu_group || (!fresh && m->iommufd_ioas))
                        continue;
                uint32_t was = m->iommufd_ioas;

                if (m->iommufd_ioas)
                        (void) o->kernel->ioas_detach(o->kernel->data, m->device_fd);
                r = o->kernel->ioas_attach(o->kernel->data, m->device_fd, ioas);
                if (r < 0) {
                        snprintf(why, why_size, "cannot attach %s to IOAS %u of the iommufd context of %s "
                                 "(VFIO_DEVICE_ATTACH_IOMMUFD_PT: %s)", pci_address_format(&m->fn.address, address),
                                 ioas, c->set_id, strerror(-r));
                        m->iommufd_ioas = 0;
                        park(m, was);
                        if (n + 1 < n_moved_max)
                                ret_moved[n++] = m;
                        ret_moved[n] = NULL;
                        (void) o->kernel->ioas_destroy(o->kernel->data, c->iommufd, ioas);
                        return r;
                }
                log_debug("Attached %s to IOAS %u of dev_set %s", pci_address_format(&m->fn.address, address), ioas,
                          c->set_id);
                m->iommufd_ioas = ioas;
                park(m, was);
                if (n + 1 < n_moved_max)
                        ret_moved[n++] = m;
        }
        ret_moved[n] = NULL;
        if (old && old != ioas)
                (void) o->kernel->ioas_destroy(o->kernel->data, c->iommufd, old);
        return 0;
}

const struct ownership_ops ownership_cdev_ops = {
        .name = "cdev",
        .acquire = cdev_acquire,
        .release = cdev_release,
        .iommu_fd = cdev_iommu_fd,
        .reset_group_fds = cdev_reset_group_fds,
        .take = cdev_take,
};
