/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The borrowed reset's plan and fds (see borrow.h). */
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/pidfd.h>
#include <sys/stat.h>
#include <unistd.h>

#include "borrow.h"
#include "log.h"
#include "macro.h"

static int appendf(char **s, const char *fmt, ...) _printf_(2, 3);
static int appendf(char **s, const char *fmt, ...) {
        _cleanup_free_ char *more = NULL;
        char *n;
        va_list ap;
        int k;

        va_start(ap, fmt);
        k = vasprintf(&more, fmt, ap);
        va_end(ap);
        if (k < 0)
                return -ENOMEM;
        if (asprintf(&n, "%s%s", *s ?: "", more) < 0)
                return -ENOMEM;
        free(*s);
        *s = n;
        return 0;
}

static struct borrow_group *find_group(struct borrow *b, int group) {
        for (size_t i = 0; i < b->n_groups; i++)
                if (b->groups[i].group == group)
                        return &b->groups[i];
        return NULL;
}

static int add_groups(struct borrow *b, const struct dev_set *s, const struct ownership *o, char **ret_message) {
        b->groups = calloc(s->n_members, sizeof(*b->groups));
        b->members = calloc(s->n_members, sizeof(*b->members));
        if (!b->groups || !b->members)
                return -ENOMEM;
        for (size_t i = 0; i < s->n_members; i++)
                b->members[b->n_members++] = s->members[i]->fn.address;
        for (size_t i = 0; i < s->n_members; i++) {
                const struct device *d = s->members[i];
                struct holder_target t;
                char path[64], address[PCI_ADDRESS_STRLEN];
                int k;

                pci_address_format(&d->fn.address, address);
                if (d->fn.iommu_group < 0) {
                        if (asprintf(ret_message, "Cannot reset %s with Borrow: %s has no IOMMU group", s->id,
                                     address) < 0)
                                return -ENOMEM;
                        return -EINVAL;
                }
                /* The daemon's cdev members prove ownership by its iommufd
                 * context, which the others' borrowed groups cannot join
                 * ("zero-length array is only for cdev opened devices",
                 * vfio_pci_ioctl_pci_hot_reset), nor can their groups be
                 * opened while its cdevs are bound. */
                if (d->model == OWNERSHIP_CDEV && d->device_fd >= 0) {
                        if (asprintf(ret_message, "Cannot reset %s with Borrow: vfio-resetd owns %s through its cdev, "
                                     "bound to an iommufd context of its own, and the kernel resets a set with cdev "
                                     "members only for one context holding every member: the members others hold "
                                     "cannot be borrowed into it", s->id, address) < 0)
                                return -ENOMEM;
                        return -EPERM;
                }
                if (find_group(b, d->fn.iommu_group))
                        continue;
                snprintf(path, sizeof(path), "/dev/vfio/%d", d->fn.iommu_group);
                k = holder_target_from_path(path, &t);
                if (k < 0) {
                        if (asprintf(ret_message, "Cannot reset %s with Borrow: the group of %s, %s: %s", s->id,
                                     address, path, strerror(-k)) < 0)
                                return -ENOMEM;
                        return k;
                }
                b->groups[b->n_groups++] = (struct borrow_group) {
                        .group = d->fn.iommu_group,
                        .rdev = t.rdev,
                        .how = ownership_find_group(o, d->fn.iommu_group) ? BORROW_OWNED : BORROW_FREE,
                };
        }
        return 0;
}

static bool planned(const struct borrow *b, pid_t pid, int group) {
        for (size_t i = 0; i < b->n_holders; i++)
                if (b->holders[i].process.pid == pid && b->holders[i].group == group)
                        return true;
        return false;
}

/* The adapter that stops h: a target of it that already covers h, or a new one. */
static int assign_target(struct borrow *b, struct borrow_holder *h, struct quiesce_adapter *const *adapters,
                         size_t n_adapters, bool force, const char **ret_hint) {
        struct quiesce_target **v;

        *ret_hint = NULL;
        for (size_t a = 0; a < n_adapters; a++) {
                const char *hint = NULL;

                if (!adapters[a]->applies(adapters[a], &h->q, force, &hint)) {
                        *ret_hint = *ret_hint ?: hint;
                        continue;
                }
                for (size_t i = 0; i < b->n_targets; i++)
                        if (b->targets[i]->adapter == adapters[a] && adapters[a]->covers(b->targets[i], &h->q)) {
                                h->target = b->targets[i];
                                return 0;
                        }
                v = realloc(b->targets, sizeof(*v) * (b->n_targets + 1));
                if (!v)
                        return -ENOMEM;
                b->targets = v;
                if (adapters[a]->target_new(adapters[a], &h->q, &b->targets[b->n_targets]) < 0)
                        return -ENOMEM;
                h->target = b->targets[b->n_targets++];
                return 0;
        }
        return -EPERM;
}

int borrow_plan(const struct dev_set *s, const struct ownership *o, const struct device_holder *holders,
                size_t n_holders, struct quiesce_adapter *const *adapters, size_t n_adapters, bool force,
                struct borrow **ret, char **ret_message) {
        _cleanup_free_ char *refused = NULL;
        struct borrow *b = calloc(1, sizeof(*b));
        int k;

        *ret_message = NULL;
        if (!b)
                return -ENOMEM;
        k = add_groups(b, s, o, ret_message);
        if (k >= 0)
                b->holders = calloc(n_holders + 1, sizeof(*b->holders));
        if (k >= 0 && !b->holders)
                k = -ENOMEM;
        for (size_t i = 0; k >= 0 && i < n_holders; i++) {
                const struct device_holder *dh = &holders[i];
                struct borrow_group *g;
                struct borrow_holder *h;
                const char *hint;
                char address[PCI_ADDRESS_STRLEN], name[HOLDER_NAME_MAX], what[QUIESCE_IDENTITY_MAX];
                int pidfd;

                if (dh->device->dev_set != s || !(g = find_group(b, dh->device->fn.iommu_group)) ||
                    g->how == BORROW_OWNED || planned(b, dh->process.pid, g->group))
                        continue;
                /* The kernel's proof for a cdev holder is its iommufd context,
                 * and a device binds to one context only (VFIO_DEVICE_BIND_IOMMUFD
                 * of a device bound elsewhere: EINVAL): no fd the daemon can
                 * borrow puts every member in one context. */
                if (dh->cdev) {
                        pci_address_format(&dh->device->fn.address, address);
                        k = appendf(&refused, "%s%s is held by %s through its cdev, bound to an iommufd context of "
                                    "that process's own, which borrowing cannot join with another (a device binds "
                                    "to one context only); it must release the device for the reset",
                                    refused ? "; " : "", address, holder_describe(&dh->process, name));
                        continue;
                }
                /* Pin the process, then see that it still holds the group: a pid
                 * that exited, or was reused since the scan, holds nothing. */
                pidfd = pidfd_open(dh->process.pid, 0);
                if (pidfd < 0)
                        continue;
                if (holder_fd_of(dh->process.pid, g->rdev) < 0) {
                        close(pidfd);
                        continue;
                }
                h = &b->holders[b->n_holders++];
                *h = (struct borrow_holder) { .process = dh->process, .group = g->group };
                h->q = (struct quiesce_holder) {
                        .holder = &h->process, .pidfd = pidfd, .members = b->members, .n_members = b->n_members,
                };
                g->how = BORROW_HELD;
                k = assign_target(b, h, adapters, n_adapters, force, &hint);
                if (k == -EPERM) {
                        pci_address_format(&dh->device->fn.address, address);
                        if (!quiesce_identify(adapters, n_adapters, &h->q, what, sizeof(what)))
                                what[0] = '\0';
                        k = appendf(&refused, "%s%s is held by %s%s%s, which vfio-resetd cannot stop%s%s",
                                    refused ? "; " : "", address, holder_describe(&dh->process, name),
                                    what[0] ? ", " : "", what, hint ? " without " : "",
                                    hint ?: " (no quiesce adapter applies)");
                        if (k >= 0)
                                k = -EPERM;
                }
                if (k == -EPERM)
                        k = 0;  /* name every holder that cannot be stopped, then fail */
        }
        if (k >= 0 && refused) {
                if (asprintf(ret_message, "Cannot reset %s with Borrow: %s", s->id, refused) < 0)
                        k = -ENOMEM;
                else
                        k = -EPERM;
        }
        if (k < 0) {
                borrow_free(b);
                return k;
        }
        *ret = b;
        return 0;
}

/* A duplicate of the holder's group file, checked to be that group. */
static int borrow_group_fd(struct borrow_holder *h, const struct borrow_group *g, int *ret_fd, char **ret_message) {
        struct stat st;
        int n, fd;

        n = holder_fd_of(h->process.pid, g->rdev);
        if (n < 0)
                return 0;       /* it let go of the group, or exited */
        fd = pidfd_getfd(h->q.pidfd, n, 0);
        if (fd < 0) {
                int e = errno;

                if (e == ESRCH || e == EBADF)
                        return 0;       /* it exited, or closed the fd, just now */
                if (asprintf(ret_message,
                             "pidfd_getfd() of fd %d (group %d) of pid %d (%s) failed: %s%s", n, g->group,
                             (int) h->process.pid, h->process.comm, strerror(e),
                             e == EPERM ? "; vfio-resetd needs CAP_SYS_PTRACE, and Yama's ptrace_scope "
                                          "(/proc/sys/kernel/yama/ptrace_scope) must let it attach" : "") < 0)
                        *ret_message = NULL;
                return -e;
        }
        if (fstat(fd, &st) < 0 || !S_ISCHR(st.st_mode) || st.st_rdev != g->rdev) {
                close(fd);      /* the fd number changed hands between the look and the take */
                return 0;
        }
        *ret_fd = fd;
        return 1;
}

static int group_fd(struct borrow *b, struct borrow_group *g, const struct dev_set *s, const struct ownership *o,
                    const struct kernel_ops *k, struct reset_job *job, char **ret_message) {
        int fd = -EBADF, container = -EBADF, r;

        if (g->how == BORROW_OWNED) {
                fd = fcntl(ownership_find_group(o, g->group)->group_fd, F_DUPFD_CLOEXEC, 3);
                return fd < 0 ? negative_errno() : reset_job_add_group(job, fd);
        }
        for (size_t i = 0; g->how == BORROW_HELD && i < b->n_holders; i++) {
                if (b->holders[i].group != g->group)
                        continue;
                r = borrow_group_fd(&b->holders[i], g, &fd, ret_message);
                if (r < 0)
                        return r;
                if (r > 0) {
                        log_info("Borrowed group %d from pid %d (%s)", g->group, (int) b->holders[i].process.pid,
                                 b->holders[i].process.comm);
                        return reset_job_add_group(job, fd);
                }
        }
        if (g->how == BORROW_HELD)
                log_info("The holders of group %d let go of it: opening it for the reset", g->group);
        g->how = BORROW_FREE;
        r = k->group_open(k->data, g->group, &fd, &container);
        if (r < 0) {
                if (asprintf(ret_message, "Cannot open group %d of %s for the reset: %s%s", g->group, s->id,
                             strerror(-r), r == -EBUSY ? " (a process vfio-resetd cannot see holds it)" : "") < 0)
                        *ret_message = NULL;
                return r;
        }
        r = reset_job_keep(job, container);
        return r < 0 ? (close(fd), r) : reset_job_add_group(job, fd);
}

int borrow_take(struct borrow *b, const struct dev_set *s, const struct ownership *o, const struct kernel_ops *k,
                struct reset_job *job, char **ret_message) {
        bool can_reset = false;
        int r;

        *ret_message = NULL;
        for (size_t i = 0; i < b->n_groups; i++) {
                r = group_fd(b, &b->groups[i], s, o, k, job, ret_message);
                if (r < 0)
                        return r;
        }
        for (size_t i = 0; i < s->n_members; i++) {
                const struct device *d = s->members[i];
                char address[PCI_ADDRESS_STRLEN];
                int fd = -EBADF;

                pci_address_format(&d->fn.address, address);
                if (d->device_fd >= 0) {
                        fd = fcntl(d->device_fd, F_DUPFD_CLOEXEC, 3);
                        r = fd < 0 ? negative_errno() : 0;
                        can_reset = d->can_function_reset;
                } else {
                        int gfd = -EBADF;

                        /* The job's group fds are in the order of b->groups. */
                        for (size_t g = 0; g < b->n_groups; g++)
                                if (b->groups[g].group == d->fn.iommu_group)
                                        gfd = job->group_fds[g];
                        /* A second device fd through the group: the kernel counts
                         * it as one more opener, and closing it resets nothing
                         * while the holder keeps its own. */
                        r = k->device_open(k->data, gfd, &d->fn.address, &fd, &can_reset);
                }
                if (r < 0) {
                        if (asprintf(ret_message, "Cannot get a device fd of %s for the reset of %s: %s", address,
                                     s->id, strerror(-r)) < 0)
                                *ret_message = NULL;
                        return r;
                }
                r = reset_job_add_device(job, address, fd, d->fn.vendor_id, d->fn.device_id);
                if (r < 0)
                        return r;
        }
        /* As without Borrow: a set of several devices, or a lone one without
         * its own reset, needs the bus or slot reset. */
        job->hot = s->n_members > 1 || !can_reset;
        return 0;
}

struct borrow *borrow_free(struct borrow *b) {
        if (!b)
                return NULL;
        for (size_t i = 0; i < b->n_targets; i++)
                b->targets[i]->adapter->target_free(b->targets[i]);
        for (size_t i = 0; i < b->n_holders; i++)
                if (b->holders[i].q.pidfd >= 0)
                        close(b->holders[i].q.pidfd);
        free(b->targets);
        free(b->holders);
        free(b->groups);
        free(b->members);
        free(b);
        return NULL;
}
