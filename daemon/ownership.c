/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <errno.h>
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

static void watch_requests(struct ownership *o, struct device *d) {
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
                r = o->kernel->group_open(o->kernel->data, g->group, &g->group_fd, &g->container_fd);
                if (r < 0) {
                        free(g);
                        return r;
                }
                o->groups[o->n_groups++] = g;
                log_info("Opened IOMMU group %d (container of its own) for %s", g->group, address);
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
        watch_requests(o, d);
        return 0;
}

static void legacy_release_group(struct ownership *o, struct owned_group *g) {
        for (size_t i = 0; i < o->n_groups; i++)
                if (o->groups[i] == g) {
                        o->groups[i] = o->groups[--o->n_groups];
                        break;
                }
        log_info("Closing IOMMU group %d", g->group);
        close(g->group_fd);
        close(g->container_fd);
        free(g);
}

static void legacy_release(struct ownership *o, struct device *d) {
        struct owned_group *g;

        d->request_source = sd_event_source_disable_unref(d->request_source);
        if (d->device_fd < 0)
                return;
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

const struct ownership_ops ownership_legacy_ops = {
        .name = "legacy",
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
                r = o->ops->acquire(o, d);
                if (r < 0 && r != d->acquire_error)
                        log_warning_errno(r, "Cannot take ownership of %s (IOMMU group %d): %s",
                                          pci_address_format(&d->fn.address, address), d->fn.iommu_group,
                                          r == -EBUSY ? "another process holds the group" :
                                          r == -EPERM ? "the group is not viable: bind all its devices to vfio-pci" :
                                          strerror(-r));
                d->acquire_error = r < 0 ? r : 0;
        }
}
