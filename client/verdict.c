/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "holder-name.h"
#include "macro.h"
#include "strv.h"
#include "uninspected.h"
#include "verdict.h"

const char *blocker_type_to_string(enum blocker_type t) {
        switch (t) {
        case BLOCKER_HOLDER:
                return "holder";
        case BLOCKER_FOREIGN:
                return "foreign-device";
        case BLOCKER_NO_RESET:
                return "no-reset-method";
        case BLOCKER_BUSY:
                return "busy";
        case BLOCKER_UNINSPECTED:
                return "uninspected";
        }
        return "unknown";
}

_printf_(3, 4)
static int add(struct verdict *v, const struct blocker *b, const char *fmt, ...) {
        struct blocker *n = realloc(v->blockers, sizeof(*n) * (v->n_blockers + 1));
        va_list ap;
        int r;

        if (!n)
                return -ENOMEM;
        v->blockers = n;
        n[v->n_blockers] = *b;
        va_start(ap, fmt);
        r = vasprintf(&n[v->n_blockers].message, fmt, ap);
        va_end(ap);
        if (r < 0)
                return -ENOMEM;
        v->n_blockers++;
        return 0;
}

static int group_of(const struct ctl_model *m, const char *address) {
        for (size_t i = 0; i < m->n_devices; i++)
                if (streq_ptr(m->devices[i].address, address))
                        return m->devices[i].iommu_group;
        return -1;
}

/* Does one pid hold every member of the set? Then it owns the set in the
 * kernel's sense and can reset it itself; nobody else can. */
static bool single_owner(const struct ctl_model *m, const struct ctl_dev_set *s, uint32_t *ret_pid) {
        size_t n = strv_length(s->devices);

        if (s->n_holders == 0)
                return false;
        for (size_t i = 0; i < s->n_holders; i++)
                if (s->holders[i].pid != s->holders[0].pid)
                        return false;
        if (s->n_holders != n)
                return false;
        *ret_pid = s->holders[0].pid;
        return true;
}

char *verdict_uninspected(const struct ctl_dev_set *s) {
        _cleanup_free_ char *list = NULL;
        char *r = NULL;

        if (s->n_uninspected == 0)
                return NULL;
        for (size_t i = 0; i < s->n_uninspected; i++)
                if (uninspected_append(&list, i, s->n_uninspected, s->uninspected[i].pid,
                                       s->uninspected[i].command ?: "?") < 0)
                        return NULL;
        if (asprintf(&r, "%zu process%s could not be inspected (%s); " UNINSPECTED_HINT, s->n_uninspected,
                     s->n_uninspected == 1 ? "" : "es", list) < 0)
                return NULL;
        return r;
}

int verdict_compute(const struct ctl_model *m, const struct ctl_dev_set *s, struct verdict *v) {
        _cleanup_free_ char *unseen = NULL;
        bool single = streq_ptr(s->kind, "single");
        uint32_t owner = 0;
        int r;

        *v = (struct verdict) { .method = single ? "function-reset" : "hot-reset" };

        if (!streq_ptr(s->state, "idle")) {
                r = add(v, &(struct blocker) { .type = BLOCKER_BUSY },
                        "a reset of %s is under way (state %s)", s->id, s->state);
                if (r < 0)
                        return r;
        }

        if (single) {
                const struct ctl_device *d = s->devices ? ctl_model_device(m, s->devices[0]) : NULL;

                if (d && strv_length(d->reset_methods) == 0) {
                        r = add(v, &(struct blocker) { .type = BLOCKER_NO_RESET, .address = d->address },
                                "%s has no function reset (its reset_method list is empty), and as it sits %s "
                                "it is a dev_set of its own with no bus or slot reset either",
                                d->address, d->physfn && *d->physfn ? "on an SR-IOV PF's bus as a VF" : "on a root bus");
                        if (r < 0)
                                return r;
                }
        }

        for (size_t i = 0; i < s->n_holders; i++) {
                const struct ctl_holder *h = &s->holders[i];
                const struct ctl_domain *dom = ctl_dev_set_domain(s, h);
                char name[HOLDER_NAME_MAX];

                if (ctl_dev_set_holds_cdev(s, h))
                        r = add(v, &(struct blocker) { .type = BLOCKER_HOLDER, .address = h->address, .holder = h },
                                "%s is held open through its cdev (/dev/vfio/devices/vfioX, bound to an iommufd "
                                "context) by %s%s%s%s%s", h->address,
                                holder_name(name, sizeof(name), h->pid, h->command, h->uid, h->unit),
                                dom ? ": libvirt domain " : "", dom ? dom->name : "", dom ? " " : "",
                                dom ? dom->uuid : "");
                else
                        r = add(v, &(struct blocker) { .type = BLOCKER_HOLDER, .address = h->address, .holder = h },
                                "%s (IOMMU group %d) is held open by %s%s%s%s%s", h->address,
                                group_of(m, h->address),
                                holder_name(name, sizeof(name), h->pid, h->command, h->uid, h->unit),
                                dom ? ": libvirt domain " : "", dom ? dom->name : "", dom ? " " : "",
                                dom ? dom->uuid : "");
                if (r < 0)
                        return r;
        }

        for (size_t i = 0; i < s->n_foreign; i++) {
                const struct ctl_foreign *f = &s->foreign[i];
                struct blocker b = { .type = BLOCKER_FOREIGN, .address = f->address, .driver = f->driver };

                if (!f->driver || !*f->driver)
                        r = add(v, &b, "%s has no driver: the kernel resets it with the %s but only lets a "
                                "hot reset through when every function it reaches is in the dev_set; "
                                "bind it to vfio-pci", f->address, s->kind);
                else if (strcmp(f->driver, "vfio-pci") == 0)
                        r = add(v, &b, "%s is bound to vfio-pci but sits below this %s in a dev_set of its own; "
                                "the kernel refuses a hot reset that reaches a device outside the set",
                                f->address, s->kind);
                else
                        r = add(v, &b, "%s is bound to %s, not to vfio-pci: the kernel refuses a hot reset of "
                                "the %s while a function it reaches belongs to another driver; unbind it or "
                                "bind it to vfio-pci", f->address, f->driver, s->kind);
                if (r < 0)
                        return r;
        }

        /* Without every process's fds, "nothing blocks" would be a guess. */
        if (s->n_uninspected > 0) {
                unseen = verdict_uninspected(s);
                if (!unseen)
                        return -ENOMEM;
                r = add(v, &(struct blocker) { .type = BLOCKER_UNINSPECTED },
                        "cannot tell: %s", unseen);
                if (r < 0)
                        return r;
        }

        v->resettable = v->n_blockers == 0;
        /* Holders (and processes that may be holders) are what Borrow goes through. */
        v->borrowable = false;
        for (size_t i = 0; i < v->n_blockers; i++) {
                if (v->blockers[i].type != BLOCKER_HOLDER && v->blockers[i].type != BLOCKER_UNINSPECTED) {
                        v->borrowable = false;
                        break;
                }
                v->borrowable = v->borrowable || v->blockers[i].type == BLOCKER_HOLDER;
        }
        /* A cdev holder's proof is its iommufd context: nothing borrowed joins two. */
        v->borrowable = v->borrowable && s->n_cdev_holders == 0;
        if (v->resettable)
                r = asprintf(&v->summary, "Yes: nothing blocks a %s of %s now.",
                             single ? "function reset" : "hot reset", s->id);
        else if (single_owner(m, s, &owner) && s->n_foreign == 0) {
                const struct ctl_holder *h = &s->holders[0];
                char name[HOLDER_NAME_MAX];

                r = asprintf(&v->summary, "No: %s holds every group of %s. It owns the set and can reset it "
                             "itself; no other process can while it holds them.",
                             holder_name(name, sizeof(name), owner, h->command, h->uid, h->unit), s->id);
        } else if (s->n_cdev_holders > 0 && s->n_foreign == 0)
                r = asprintf(&v->summary, "No: %s cannot be reset while it is held, and borrowing cannot help. "
                             "Its members are held through their cdevs, where the kernel's proof for a hot reset "
                             "is one iommufd context with every member of the set bound to it, and a device binds "
                             "to one context only (a second VFIO_DEVICE_BIND_IOMMUFD fails EINVAL): the holders' "
                             "contexts cannot be joined by taking their fds. What works: quiesce the holders and "
                             "have all but one release their members (close the cdev), so that the one left can "
                             "bind every member to its context and reset; or have vfio-resetd own the set "
                             "(manage it, and let the programs take their devices with TakeDevice).", s->id);
        else if (v->n_blockers == 1 && unseen)
                r = asprintf(&v->summary, "Cannot tell: nothing the daemon can see blocks a %s of %s, but it "
                             "could not look into every process, and any of those may hold a member.",
                             single ? "function reset" : "hot reset", s->id);
        else if (s->n_holders > 0 && !single)
                r = asprintf(&v->summary, "No: %s cannot be reset while it is held. A hot reset needs every "
                             "group of the set in one caller's hands, and the kernel lets only one process at a "
                             "time open a group, so no process owns this whole set (QEMU says \"not owned\").",
                             s->id);
        else
                r = asprintf(&v->summary, "No: %s cannot be reset now.", s->id);
        return r < 0 ? -ENOMEM : 0;
}

void verdict_done(struct verdict *v) {
        for (size_t i = 0; i < v->n_blockers; i++)
                free(v->blockers[i].message);
        free(v->blockers);
        free(v->summary);
        *v = (struct verdict) {};
}
