/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Bringing the bus objects in line with sysfs: rescan, diff, announce. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "macro.h"
#include "manager.h"


static void emit_removed(struct manager *m, const char *path) {
        if (m->events.object_removed)
                m->events.object_removed(m->events_userdata, path);
}

static void emit_added(struct manager *m, const char *path) {
        if (m->events.object_added)
                m->events.object_added(m->events_userdata, path);
}

static const struct dev_set_spec *find_spec(const struct dev_set_specs *specs, const char *id) {
        for (size_t i = 0; i < specs->n_sets; i++)
                if (strcmp(specs->sets[i].id, id) == 0)
                        return &specs->sets[i];
        return NULL;
}

struct device_change {
        struct device *device;
        bool added;
        struct pci_function fn;         /* the fresh scan's, for a device that stays */
        struct dev_set *old_set;        /* compared, never followed: it may be freed */
        bool moved;
        bool was_managed;
        const char *changed[12];
};

/* Everything a refresh needs, made before anything changes. */
struct refresh_plan {
        struct topology *topology;
        struct dev_set_specs *specs;
        struct device **devices;        /* the new list, in address order */
        size_t n_devices;
        struct device_change *changes;  /* one per new list entry */
        struct dev_set **sets;          /* one per spec */
        bool *set_added;
        struct dev_set_update *updates; /* one per spec */
        struct dev_set **lost;          /* old sets that lose a device that goes */
        size_t n_lost;
};

static void refresh_plan_done(struct refresh_plan *p) {
        for (size_t i = 0; p->changes && i < p->n_devices; i++)
                if (p->changes[i].added)
                        device_free(p->changes[i].device);
                else
                        pci_function_done(&p->changes[i].fn);
        for (size_t i = 0; p->specs && p->sets && p->set_added && i < p->specs->n_sets; i++)
                if (p->set_added[i])
                        dev_set_free(p->sets[i]);
        for (size_t i = 0; p->specs && p->updates && i < p->specs->n_sets; i++)
                dev_set_update_done(&p->updates[i]);
        free(p->devices);
        free(p->changes);
        free(p->sets);
        free(p->set_added);
        free(p->updates);
        free(p->lost);
        dev_set_specs_free(p->specs);
        topology_free(p->topology);
        *p = (struct refresh_plan) {};
}

static int refresh_plan_make(struct manager *m, struct refresh_plan *p) {
        struct topology *t;
        int r;

        r = topology_scan(m->udev, &m->topology_options, &p->topology);
        if (r < 0)
                return log_error_errno(r, "Failed to scan PCI devices: %m");
        t = p->topology;
        for (size_t i = 0; i < m->n_removed;)
                if (topology_find(t, &m->removed[i]))
                        topology_forget(t, &m->removed[i++]);
                else            /* sysfs caught up: nothing more to hide */
                        m->removed[i] = m->removed[--m->n_removed];

        r = dev_set_rule_apply(t, &p->specs);
        if (r < 0)
                return log_error_errno(r, "Failed to compute dev_sets: %m");

        p->devices = calloc(t->n_functions + 1, sizeof(*p->devices));
        p->changes = calloc(t->n_functions + 1, sizeof(*p->changes));
        p->sets = calloc(p->specs->n_sets + 1, sizeof(*p->sets));
        p->set_added = calloc(p->specs->n_sets + 1, sizeof(bool));
        p->updates = calloc(p->specs->n_sets + 1, sizeof(*p->updates));
        p->lost = calloc(m->n_devices + 1, sizeof(*p->lost));
        if (!p->devices || !p->changes || !p->sets || !p->set_added || !p->updates || !p->lost)
                return log_oom();

        /* New objects are made while every old one lives: no address is reused. */
        for (size_t i = 0; i < t->n_functions; i++) {
                const struct pci_function *f = &t->functions[i];
                struct device_change *c = &p->changes[p->n_devices];
                struct device *d;

                if (!f->vfio)
                        continue;
                d = manager_find_device(m, &f->address);
                if (d)
                        r = pci_function_copy(&c->fn, f);
                else {
                        r = device_new(m, f, &d);
                        c->added = r >= 0;
                }
                if (r < 0)
                        return log_oom();
                c->device = d;
                c->old_set = d->dev_set;
                p->devices[p->n_devices++] = d;
        }
        for (size_t i = 0; i < p->specs->n_sets; i++) {
                struct dev_set *s = manager_find_dev_set(m, p->specs->sets[i].id);

                if (!s) {
                        r = dev_set_new(m, p->specs->sets[i].id, p->specs->sets[i].kind, &s);
                        if (r < 0)
                                return log_oom();
                        p->set_added[i] = true;
                }
                p->sets[i] = s;
        }
        for (size_t i = 0; i < p->specs->n_sets; i++) {
                r = dev_set_update_prepare(t, &p->specs->sets[i], p->devices, p->n_devices, &p->updates[i]);
                if (r < 0)
                        return log_error_errno(r, "Failed to update dev_set %s: %m", p->specs->sets[i].id);
        }
        return 0;
}

static bool plan_keeps_device(const struct refresh_plan *p, const struct device *d) {
        return devices_find(p->devices, p->n_devices, &d->fn.address) == d;
}

/* Nothing below can fail: the refresh either happens whole or not at all. */
static void refresh_plan_apply(struct manager *m, struct refresh_plan *p) {
        const size_t n_sets = p->specs->n_sets;
        bool set_members[n_sets + 1], set_foreign[n_sets + 1], set_was_managed[n_sets + 1];

        /* Announce every removal while all objects are still whole. */
        for (size_t i = 0; i < m->n_devices; i++)
                if (!plan_keeps_device(p, m->devices[i])) {
                        const struct pci_function *f = topology_find(p->topology, &m->devices[i]->fn.address);

                        log_info("Device %s left vfio (%s)", m->devices[i]->path,
                                 !f ? "removed" : f->driver ? f->driver : "unbound");
                        /* Its peers hear "gone", a reset of its set ends, the daemon lets go. */
                        arbiter_device_gone(&m->arbiter, m->devices[i]);
                        m->ownership.ops->release(&m->ownership, m->devices[i]);
                        emit_removed(m, m->devices[i]->path);
                }
        for (size_t i = 0; i < m->n_dev_sets; i++)
                if (!find_spec(p->specs, m->dev_sets[i]->id)) {
                        arbiter_dev_set_gone(&m->arbiter, m->dev_sets[i]);
                        emit_removed(m, m->dev_sets[i]->path);
                }

        /* The surviving devices take the fresh scan; the others go. */
        for (size_t i = 0; i < p->n_devices; i++) {
                struct device_change *c = &p->changes[i];

                if (c->added) {
                        log_info("Device %s bound to %s", c->device->path, c->device->fn.driver);
                        continue;
                }
                device_changed_properties(&c->device->fn, &c->fn, c->changed);
                pci_function_done(&c->device->fn);
                c->device->fn = c->fn;
                c->fn = (struct pci_function) {};
        }
        for (size_t i = 0; i < m->n_devices; i++)
                if (!plan_keeps_device(p, m->devices[i])) {
                        for (size_t s = 0; s < m->n_dev_sets; s++) {
                                struct dev_set *set = m->dev_sets[s];

                                for (size_t k = 0; k < set->n_members; k++)
                                        if (set->members[k] == m->devices[i]) {
                                                p->lost[p->n_lost++] = set;
                                                memmove(&set->members[k], &set->members[k + 1],
                                                        sizeof(*set->members) * (set->n_members - k - 1));
                                                set->n_members--;
                                                break;
                                        }
                        }
                        device_free(m->devices[i]);
                }
        free(m->devices);
        m->devices = TAKE_PTR(p->devices);
        m->n_devices = p->n_devices;
        for (size_t i = 0; i < m->n_devices; i++)
                m->devices[i]->dev_set = NULL;

        /* The new set list, in id order. */
        for (size_t i = 0; i < m->n_dev_sets; i++) {
                bool kept = false;

                for (size_t j = 0; j < n_sets; j++)
                        kept = kept || p->sets[j] == m->dev_sets[i];
                if (!kept) {
                        m->dev_sets[i]->n_members = 0;  /* its devices belong elsewhere now */
                        dev_set_free(m->dev_sets[i]);
                }
        }
        free(m->dev_sets);
        m->dev_sets = TAKE_PTR(p->sets);
        m->n_dev_sets = n_sets;
        for (size_t i = 0; i < n_sets; i++) {
                dev_set_update_apply(m->dev_sets[i], &p->updates[i], &set_members[i], &set_foreign[i]);
                for (size_t k = 0; k < p->n_lost; k++)  /* compared, never followed */
                        set_members[i] = set_members[i] || p->lost[k] == m->dev_sets[i];
        }
        for (size_t i = 0; i < p->n_devices; i++)
                p->changes[i].moved = p->changes[i].old_set != p->changes[i].device->dev_set;

        topology_free(m->topology);
        m->topology = TAKE_PTR(p->topology);
        m->holders_stamp = 0;

        /* Take (or let go of) what is managed now; announce what changed. */
        for (size_t i = 0; i < p->n_devices; i++)
                p->changes[i].was_managed = p->changes[i].device->device_fd >= 0;
        for (size_t i = 0; i < n_sets; i++)
                set_was_managed[i] = dev_set_is_managed(m->dev_sets[i]);
        ownership_sync(&m->ownership, m->devices, m->n_devices, &m->config);

        /* Announce: new objects whole, then what changed on the old ones. */
        for (size_t i = 0; i < n_sets; i++)
                if (p->set_added[i])
                        emit_added(m, m->dev_sets[i]->path);
        for (size_t i = 0; i < p->n_devices; i++)
                if (p->changes[i].added)
                        emit_added(m, p->changes[i].device->path);
        for (size_t i = 0; i < n_sets; i++) {
                const char *props[4] = {};
                size_t n = 0;

                if (p->set_added[i])
                        continue;
                if (set_members[i])
                        props[n++] = "Devices";
                if (set_foreign[i])
                        props[n++] = "ForeignDevices";
                if (set_was_managed[i] != dev_set_is_managed(m->dev_sets[i]))
                        props[n++] = "Managed";
                if (n > 0)
                        manager_emit_dev_set_changed(m, m->dev_sets[i], props);
        }
        for (size_t i = 0; i < p->n_devices; i++) {
                struct device_change *c = &p->changes[i];
                size_t n = 0;

                if (c->added)
                        continue;
                while (c->changed[n])
                        n++;
                if (c->moved && n < ELEMENTSOF(c->changed) - 1)
                        c->changed[n++] = "DevSet";
                /* Taken or let go: its model and iommufd ids came or went with it. */
                if (c->was_managed != (c->device->device_fd >= 0))
                        for (size_t k = 0; k < 4 && n < ELEMENTSOF(c->changed) - 1; k++)
                                c->changed[n++] = (const char *[]) { "Managed", "Ownership", "IommufdDevId",
                                                                     "IommufdIoasId" }[k];
                c->changed[n] = NULL;
                if (n > 0)
                        manager_emit_device_changed(m, c->device, c->changed);
        }
        /* Everything made for the plan now belongs to the manager. */
        for (size_t i = 0; i < p->n_devices; i++)
                p->changes[i].added = false;
        memset(p->set_added, 0, sizeof(bool) * n_sets);
        p->n_devices = 0;
        log_debug("Topology: %zu PCI functions, %zu vfio devices, %zu dev_sets",
                  m->topology->n_functions, m->n_devices, m->n_dev_sets);
}

int manager_refresh(struct manager *m) {
        struct refresh_plan p = {};
        int r;

        r = refresh_plan_make(m, &p);
        if (r >= 0)
                refresh_plan_apply(m, &p);
        refresh_plan_done(&p);
        return r;
}
