/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "log.h"
#include "macro.h"
#include "manager.h"
#include "ownership.h"

static void legacy_release_group(struct manager *m, struct owned_group *g);

static struct owned_group *find_group(struct manager *m, int group) {
        for (size_t i = 0; i < m->n_groups; i++)
                if (m->groups[i]->group == group)
                        return m->groups[i];
        return NULL;
}

/* The kernel wants the device back (an unbind or a removal waits for every
 * fd of it to close): tell its peers it is gone, end its set's reset, let go. */
static int on_device_request(sd_event_source *s, int fd, uint32_t revents, void *userdata) {
        struct device *d = userdata;
        struct manager *m = d->manager;
        char address[PCI_ADDRESS_STRLEN];
        uint64_t v;

        (void) read(fd, &v, sizeof(v));
        log_info("The kernel asks for %s back (unbind or removal): releasing it",
                 pci_address_format(&d->fn.address, address));
        d->kernel_wants_it = true;
        arbiter_device_gone(m, d);
        m->ownership->release(m, d);
        (void) device_bus_emit_changed(d, (const char *[]) { "Managed", "Peers", NULL });
        if (d->dev_set)
                (void) dev_set_bus_emit_changed(d->dev_set, (const char *[]) { "Managed", "Peers", NULL });
        return 0;
}

static void watch_requests(struct manager *m, struct device *d) {
        int fd = m->kernel->request_notify ? m->kernel->request_notify(m->kernel->data, d->device_fd) : -EOPNOTSUPP;

        if (fd < 0) {
                if (fd != -EOPNOTSUPP)
                        log_debug_errno(fd, "No device request channel for %s: %m", d->path);
                return;
        }
        if (sd_event_add_io(m->event, &d->request_source, fd, EPOLLIN, on_device_request, d) < 0) {
                close(fd);
                return;
        }
        (void) sd_event_source_set_io_fd_own(d->request_source, true);
}

static int legacy_acquire(struct manager *m, struct device *d) {
        struct owned_group *g = find_group(m, d->fn.iommu_group);
        char address[PCI_ADDRESS_STRLEN];
        bool can_reset = false;
        int fd, r;

        if (d->device_fd >= 0)
                return 0;
        if (d->fn.iommu_group < 0)
                return -ENOENT;
        pci_address_format(&d->fn.address, address);
        if (!g) {
                struct owned_group **n = realloc(m->groups, sizeof(*n) * (m->n_groups + 1));

                if (!n)
                        return -ENOMEM;
                m->groups = n;
                g = calloc(1, sizeof(*g));
                if (!g)
                        return -ENOMEM;
                *g = (struct owned_group) { .group = d->fn.iommu_group, .group_fd = -EBADF, .container_fd = -EBADF };
                r = m->kernel->group_open(m->kernel->data, g->group, &g->group_fd, &g->container_fd);
                if (r < 0) {
                        free(g);
                        return r;
                }
                m->groups[m->n_groups++] = g;
                log_info("Opened IOMMU group %d (container of its own) for %s", g->group, address);
        }
        r = m->kernel->device_open(m->kernel->data, g->group_fd, &d->fn.address, &fd, &can_reset);
        if (r < 0) {
                if (g->n_devices == 0)
                        legacy_release_group(m, g);
                return r;
        }
        g->n_devices++;
        d->device_fd = fd;
        d->can_function_reset = can_reset;
        watch_requests(m, d);
        return 0;
}

static void legacy_release_group(struct manager *m, struct owned_group *g) {
        for (size_t i = 0; i < m->n_groups; i++)
                if (m->groups[i] == g) {
                        m->groups[i] = m->groups[--m->n_groups];
                        break;
                }
        log_info("Closing IOMMU group %d", g->group);
        close(g->group_fd);
        close(g->container_fd);
        free(g);
}

static void legacy_release(struct manager *m, struct device *d) {
        struct owned_group *g;

        d->request_source = sd_event_source_disable_unref(d->request_source);
        if (d->device_fd < 0)
                return;
        close(d->device_fd);
        d->device_fd = -EBADF;
        g = find_group(m, d->fn.iommu_group);
        if (g && --g->n_devices == 0)
                legacy_release_group(m, g);
}

static int legacy_iommu_fd(const struct device *d) {
        struct owned_group *g = find_group(d->manager, d->fn.iommu_group);

        return g ? g->container_fd : -ENOENT;
}

static int legacy_reset_group_fds(const struct dev_set *s, int **ret, size_t *n_ret) {
        _cleanup_free_ int *fds = calloc(s->n_members + 1, sizeof(int));
        size_t n = 0;

        if (!fds)
                return -ENOMEM;
        for (size_t i = 0; i < s->n_members; i++) {
                struct owned_group *g = find_group(s->manager, s->members[i]->fn.iommu_group);
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

void ownership_sync(struct manager *m) {
        for (size_t i = 0; i < m->n_devices; i++) {
                struct device *d = m->devices[i];
                char address[PCI_ADDRESS_STRLEN];
                int r;

                if (!device_is_managed(d) || d->kernel_wants_it) {
                        m->ownership->release(m, d);
                        continue;
                }
                if (d->device_fd >= 0)
                        continue;
                r = m->ownership->acquire(m, d);
                if (r < 0 && r != d->acquire_error)
                        log_warning_errno(r, "Cannot take ownership of %s (IOMMU group %d): %s",
                                          pci_address_format(&d->fn.address, address), d->fn.iommu_group,
                                          r == -EBUSY ? "another process holds the group" :
                                          r == -EPERM ? "the group is not viable: bind all its devices to vfio-pci" :
                                          strerror(-r));
                d->acquire_error = r < 0 ? r : 0;
        }
}
