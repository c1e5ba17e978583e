/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "log.h"
#include "macro.h"
#include "ownership.h"

static void legacy_release_group(struct ownership *o, struct owned_group *g);

struct owned_group *ownership_find_group(const struct ownership *o, int group) {
        for (size_t i = 0; i < o->n_groups; i++)
                if (o->groups[i]->group == group)
                        return o->groups[i];
        return NULL;
}

struct request_watch {
        struct ownership *ownership;
        struct device *device;
};

static int on_device_request(sd_event_source *s, int fd, uint32_t revents, void *userdata) {
        struct ownership *o = ((struct request_watch *) userdata)->ownership;
        struct device *d = ((struct request_watch *) userdata)->device;
        char address[PCI_ADDRESS_STRLEN];
        uint64_t v;

        (void) read(fd, &v, sizeof(v));
        log_info("The kernel asks for %s back (unbind or removal): releasing it",
                 pci_address_format(&d->fn.address, address));
        d->kernel_wants_it = true;
        /* A reset under way owns duplicates of its fds: letting go first costs it nothing. */
        o->ops->release(o, d);
        if (o->events.device_request)
                o->events.device_request(o->userdata, d);
        return 0;
}

void ownership_watch_requests(struct ownership *o, struct device *d) {
        int fd = o->kernel->request_notify ? o->kernel->request_notify(o->kernel->data, d->device_fd) : -EOPNOTSUPP;
        struct request_watch *w;

        if (fd < 0) {
                if (fd != -EOPNOTSUPP)
                        log_debug_errno(fd, "No device request channel for %s: %m", d->path);
                return;
        }
        w = malloc(sizeof(*w));
        if (!w || sd_event_add_io(o->event, &d->request_source, fd, EPOLLIN, on_device_request, w) < 0) {
                free(w);
                close(fd);
                return;
        }
        *w = (struct request_watch) { o, d };
        (void) sd_event_source_set_io_fd_own(d->request_source, true);
        (void) sd_event_source_set_destroy_callback(d->request_source, free);
}

/* The group from the fd store, checked to be what its names say; else -ENOENT
 * (nothing stored) or why not, the stored fds closed and dropped. */
static int take_back_group(struct ownership *o, struct owned_group *g, const char *address) {
        char gname[FDSTORE_NAME_MAX], cname[FDSTORE_NAME_MAX], why[2 * FDSTORE_NAME_MAX + 64] = "";
        int gfd, cfd, r;

        fdstore_group_name(g->group, gname);
        fdstore_container_name(g->group, cname);
        gfd = o->store ? fdstore_take(o->store, gname) : -ENOENT;
        cfd = o->store ? fdstore_take(o->store, cname) : -ENOENT;
        if (gfd < 0 && cfd < 0)
                return -ENOENT;
        if (gfd < 0 || cfd < 0) {
                snprintf(why, sizeof(why), "%s came back without %s", gfd >= 0 ? gname : cname,
                         gfd >= 0 ? cname : gname);
                r = -EBADF;
        } else
                r = o->kernel->group_check(o->kernel->data, g->group, gfd, cfd, why, sizeof(why));
        if (r < 0) {
                char what[2 * FDSTORE_NAME_MAX + 48];

                if (gfd >= 0 && cfd >= 0)
                        snprintf(what, sizeof(what), "%s (fd %d) and %s (fd %d)", gname, gfd, cname, cfd);
                else
                        snprintf(what, sizeof(what), "%s (fd %d)", gfd >= 0 ? gname : cname, gfd >= 0 ? gfd : cfd);
                log_warning("Refusing %s from the fd store: %s; closing and removing what came back", what, why);
                if (gfd >= 0)
                        fdstore_discard(gname, gfd);
                if (cfd >= 0)
                        fdstore_discard(cname, cfd);
                /* The kernel opens a group only while no file of it is open: the
                 * store's copy must be gone before the group is opened afresh. */
                fdstore_sync();
                return r;
        }
        g->group_fd = gfd;
        g->container_fd = cfd;
        log_info("Took IOMMU group %d and its container back from the fd store (fds %d, %d) for %s: not opened again",
                 g->group, gfd, cfd, address);
        g->previous = (struct previous_holders) { .group = g->group, .file = cfd, .adopted = true };
        return 0;
}

static int open_group(struct ownership *o, struct owned_group *g, const char *address) {
        char name[FDSTORE_NAME_MAX];
        int r;

        r = take_back_group(o, g, address);
        if (r >= 0)
                return 0;
        r = o->kernel->group_open(o->kernel->data, g->group, &g->group_fd, &g->container_fd);
        if (r < 0)
                return r;
        log_info("Opened IOMMU group %d (container of its own) for %s", g->group, address);
        fdstore_put(fdstore_group_name(g->group, name), g->group_fd);
        fdstore_put(fdstore_container_name(g->group, name), g->container_fd);
        return 0;
}

/* The device fd is parked too: the kernel resets a function when its last
 * open file closes (vfio_pci_core_disable) and again when one opens
 * (vfio_pci_core_enable). After a restart the one stored keeps it open while
 * a new one is had from the group by address, where the kernel vouches for
 * which device it is (a device fd itself does not say which function it is:
 * its IDs are the most it tells); the stored one is then let go. */
static void park_device(struct ownership *o, struct device *d) {
        char name[FDSTORE_NAME_MAX], address[PCI_ADDRESS_STRLEN];
        uint16_t vendor = 0, device = 0;
        int old, r;

        fdstore_device_name(&d->fn.address, name);
        old = o->store ? fdstore_take(o->store, name) : -ENOENT;
        if (old >= 0) {
                r = o->kernel->read_ids(o->kernel->data, old, &vendor, &device);
                if (r < 0)
                        log_warning("Refusing %s (fd %d) from the fd store: it is no VFIO device of %s (its config "
                                    "space cannot be read: %s); closing it and removing it from the store", name, old,
                                    pci_address_format(&d->fn.address, address), strerror(-r));
                else if (vendor != d->fn.vendor_id || device != d->fn.device_id)
                        log_warning("Refusing %s (fd %d) from the fd store: its config space reads %04x:%04x, "
                                    "not %04x:%04x as %s; closing it and removing it from the store", name, old,
                                    vendor, device, d->fn.vendor_id, d->fn.device_id,
                                    pci_address_format(&d->fn.address, address));
                else
                        log_info("%s stayed open across the restart in the fd store (fd %d): not reset", name, old);
                fdstore_remove(name);
        }
        fdstore_put(name, d->device_fd);
        if (old >= 0)
                close(old);
}

static int legacy_acquire(struct ownership *o, struct device *d) {
        struct owned_group *g = ownership_find_group(o, d->fn.iommu_group);
        char address[PCI_ADDRESS_STRLEN];
        bool can_reset = false;
        int fd, r;

        if (d->device_fd >= 0)
                return 0;
        if (d->fn.iommu_group < 0)
                return -ENOENT;
        pci_address_format(&d->fn.address, address);
        if (!g) {
                struct owned_group **n = realloc(o->groups, sizeof(*n) * (o->n_groups + 1));

                if (!n)
                        return -ENOMEM;
                o->groups = n;
                g = calloc(1, sizeof(*g));
                if (!g)
                        return -ENOMEM;
                *g = (struct owned_group) { .group = d->fn.iommu_group, .group_fd = -EBADF, .container_fd = -EBADF };
                r = open_group(o, g, address);
                if (r < 0) {
                        free(g);
                        return r;
                }
                o->groups[o->n_groups++] = g;
        }
        r = o->kernel->device_open(o->kernel->data, g->group_fd, &d->fn.address, &fd, &can_reset);
        if (r < 0) {
                if (g->n_devices == 0)
                        legacy_release_group(o, g);
                return r;
        }
        g->n_devices++;
        d->device_fd = fd;
        d->can_function_reset = can_reset;
        park_device(o, d);
        ownership_watch_requests(o, d);
        return 0;
}

static void legacy_release_group(struct ownership *o, struct owned_group *g) {
        char name[FDSTORE_NAME_MAX];

        for (size_t i = 0; i < o->n_groups; i++)
                if (o->groups[i] == g) {
                        o->groups[i] = o->groups[--o->n_groups];
                        break;
                }
        if (!o->keep_stored) {
                log_info("Closing IOMMU group %d", g->group);
                fdstore_remove(fdstore_group_name(g->group, name));
                fdstore_remove(fdstore_container_name(g->group, name));
        }
        close(g->group_fd);
        close(g->container_fd);
        free(g->previous.v);
        free(g);
}

static void legacy_release(struct ownership *o, struct device *d) {
        char name[FDSTORE_NAME_MAX];
        struct owned_group *g;

        d->request_source = sd_event_source_disable_unref(d->request_source);
        if (d->device_fd < 0)
                return;
        /* The kernel waits for every open file of a device it wants back: the
         * store's copy goes first. */
        if (!o->keep_stored)
                fdstore_remove(fdstore_device_name(&d->fn.address, name));
        close(d->device_fd);
        d->device_fd = -EBADF;
        g = ownership_find_group(o, d->fn.iommu_group);
        if (g && --g->n_devices == 0)
                legacy_release_group(o, g);
}

static int legacy_iommu_fd(const struct ownership *o, const struct device *d) {
        struct owned_group *g = ownership_find_group(o, d->fn.iommu_group);

        return g ? g->container_fd : -ENOENT;
}

static int legacy_reset_group_fds(const struct ownership *o, const struct dev_set *s, int **ret, size_t *n_ret) {
        _cleanup_free_ int *fds = calloc(s->n_members + 1, sizeof(int));
        size_t n = 0;

        if (!fds)
                return -ENOMEM;
        for (size_t i = 0; i < s->n_members; i++) {
                struct owned_group *g = ownership_find_group(o, s->members[i]->fn.iommu_group);
                bool dup = false;

                if (!g || s->members[i]->device_fd < 0)
                        return -EPERM;
                for (size_t k = 0; k < n; k++)
                        dup = dup || fds[k] == g->group_fd;
                if (!dup)
                        fds[n++] = g->group_fd;
        }
        *ret = TAKE_PTR(fds);
        *n_ret = n;
        return 0;
}

static int legacy_take(struct ownership *o, struct device *d, bool fresh, struct device **ret_moved,
                       size_t n_moved_max, char *why, size_t why_size) {
        /* The group's container is the peer's address space: nothing moves. */
        ret_moved[0] = NULL;
        return 0;
}

const struct ownership_ops ownership_legacy_ops = {
        .name = "legacy",
        .take = legacy_take,
        .acquire = legacy_acquire,
        .release = legacy_release,
        .iommu_fd = legacy_iommu_fd,
        .reset_group_fds = legacy_reset_group_fds,
};

void ownership_sync(struct ownership *o, struct device *const *devices, size_t n_devices,
                    const struct vrd_config *config) {
        for (size_t i = 0; i < n_devices; i++) {
                struct device *d = devices[i];
                char address[PCI_ADDRESS_STRLEN];
                int r;

                if (!device_is_managed(d, config) || d->kernel_wants_it) {
                        o->ops->release(o, d);
                        continue;
                }
                if (d->device_fd >= 0)
                        continue;
                d->model = ownership_pick_model(o, d, config);
                r = o->ops->acquire(o, d);
                if (r < 0 && r != d->acquire_error && d->model == OWNERSHIP_CDEV)
                        log_warning_errno(r, "Cannot take ownership of %s (cdev /dev/vfio/devices/%s): %s",
                                          pci_address_format(&d->fn.address, address), d->fn.vfio_cdev ?: "?",
                                          r == -EINVAL ? "another process has bound it to an iommufd context of its "
                                                         "own (VFIO_DEVICE_BIND_IOMMUFD: EINVAL)" :
                                          r == -EBUSY ? "another process holds its IOMMU group" : strerror(-r));
                else if (r < 0 && r != d->acquire_error)
                        log_warning_errno(r, "Cannot take ownership of %s (IOMMU group %d): %s",
                                          pci_address_format(&d->fn.address, address), d->fn.iommu_group,
                                          r == -EBUSY ? "another process holds the group" :
                                          r == -EPERM ? "the group is not viable: bind all its devices to vfio-pci" :
                                          strerror(-r));
                d->acquire_error = r < 0 ? r : 0;
        }
}
