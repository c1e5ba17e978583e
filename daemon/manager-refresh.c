/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Bringing the bus objects in line with sysfs: rescan, diff, announce. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "macro.h"
#include "manager.h"


static void emit_removed(struct manager *m, const char *path) {
        int r;

        if (!m->bus)
                return;
        r = sd_bus_emit_object_removed(m->bus, path);
        if (r < 0)
                log_warning_errno(r, "Failed to announce removal of %s: %m", path);
}

static void emit_added(struct manager *m, const char *path) {
        int r;

        if (!m->bus)
                return;
        r = sd_bus_emit_object_added(m->bus, path);
        if (r < 0)
                log_warning_errno(r, "Failed to announce %s: %m", path);
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
        struct dev_set *old_set;        /* compared, never followed: it may be freed */
        bool moved;
        bool was_managed;
        const char *changed[8];
};

int manager_refresh(struct manager *m) {
        _cleanup_(topology_freep) struct topology *t = NULL;
        _cleanup_(dev_set_specs_freep) struct dev_set_specs *specs = NULL;
        _cleanup_free_ struct device **devices = NULL;
        _cleanup_free_ struct device_change *changes = NULL;
        _cleanup_free_ struct dev_set **sets = NULL;
        _cleanup_free_ bool *set_added = NULL, *set_members = NULL, *set_foreign = NULL, *set_was_managed = NULL;
        _cleanup_free_ struct dev_set **lost = NULL;     /* sets a removed device left */
        size_t n_devices = 0, n_changes = 0, n_lost = 0;
        int r;

        r = topology_scan(m->udev, &m->topology_options, &t);
        if (r < 0)
                return log_error_errno(r, "Failed to scan PCI devices: %m");
        for (size_t i = 0; i < m->n_removed;)
                if (topology_find(t, &m->removed[i]))
                        topology_forget(t, &m->removed[i++]);
                else            /* sysfs caught up: nothing more to hide */
                        m->removed[i] = m->removed[--m->n_removed];

        r = dev_set_rule_apply(t, &specs);
        if (r < 0)
                return log_error_errno(r, "Failed to compute dev_sets: %m");

        devices = calloc(t->n_functions + 1, sizeof(*devices));
        changes = calloc(t->n_functions + 1, sizeof(*changes));
        sets = calloc(specs->n_sets + 1, sizeof(*sets));
        set_added = calloc(specs->n_sets + 1, sizeof(bool));
        set_members = calloc(specs->n_sets + 1, sizeof(bool));
        set_foreign = calloc(specs->n_sets + 1, sizeof(bool));
        lost = calloc(m->n_devices + 1, sizeof(*lost));
        set_was_managed = calloc(specs->n_sets + 1, sizeof(bool));
        if (!devices || !changes || !sets || !set_added || !set_members || !set_foreign || !lost || !set_was_managed)
                return log_oom();

        /* Announce every removal while all objects are still whole. */
        for (size_t i = 0; i < m->n_devices; i++) {
                const struct pci_function *f = topology_find(t, &m->devices[i]->fn.address);

                if (!f || !f->vfio) {
                        log_info("Device %s left vfio (%s)", m->devices[i]->path,
                                 !f ? "removed" : f->driver ? f->driver : "unbound");
                        /* Its peers hear "gone", a reset of its set ends, the daemon lets go. */
                        arbiter_device_gone(m, m->devices[i]);
                        m->ownership->release(m, m->devices[i]);
                        emit_removed(m, m->devices[i]->path);
                }
        }
        for (size_t i = 0; i < m->n_dev_sets; i++)
                if (!find_spec(specs, m->dev_sets[i]->id)) {
                        arbiter_dev_set_gone(m->dev_sets[i]);
                        emit_removed(m, m->dev_sets[i]->path);
                }

        /* New device list, in address order; keep the objects that survive. */
        for (size_t i = 0; i < t->n_functions; i++) {
                const struct pci_function *f = &t->functions[i];
                struct device_change *c = &changes[n_changes];
                struct device *d;

                if (!f->vfio)
                        continue;
                d = manager_find_device(m, &f->address);
                if (d) {
                        struct pci_function copy;

                        r = pci_function_copy(&copy, f);
                        if (r < 0)
                                return log_oom();
                        device_changed_properties(&d->fn, f, c->changed);
                        pci_function_done(&d->fn);
                        d->fn = copy;
                } else {
                        r = device_new(m, f, &d);
                        if (r < 0)
                                return log_oom();
                        c->added = true;
                        log_info("Device %s bound to %s", d->path, f->driver);
                }
                c->device = d;
                c->old_set = d->dev_set;
                n_changes++;
                devices[n_devices++] = d;
        }
        /* Free what left, detached from its set first. */
        for (size_t i = 0; i < m->n_devices; i++) {
                bool kept = false;

                for (size_t j = 0; j < n_devices; j++)
                        kept = kept || devices[j] == m->devices[i];
                if (kept)
                        continue;
                for (size_t s = 0; s < m->n_dev_sets; s++) {
                        struct dev_set *set = m->dev_sets[s];

                        for (size_t k = 0; k < set->n_members; k++)
                                if (set->members[k] == m->devices[i]) {
                                        lost[n_lost++] = set;
                                        memmove(&set->members[k], &set->members[k + 1],
                                                sizeof(*set->members) * (set->n_members - k - 1));
                                        set->n_members--;
                                        break;
                                }
                }
                device_free(m->devices[i]);
        }
        free(m->devices);
        m->devices = TAKE_PTR(devices);
        m->n_devices = n_devices;
        for (size_t i = 0; i < m->n_devices; i++)
                m->devices[i]->dev_set = NULL;

        /* New set list, in id order. */
        for (size_t i = 0; i < specs->n_sets; i++) {
                struct dev_set *s = manager_find_dev_set(m, specs->sets[i].id);

                if (!s) {
                        r = dev_set_new(m, specs->sets[i].id, specs->sets[i].kind, &s);
                        if (r < 0)
                                return log_oom();
                        set_added[i] = true;
                }
                sets[i] = s;
        }
        for (size_t i = 0; i < m->n_dev_sets; i++) {
                bool kept = false;

                for (size_t j = 0; j < specs->n_sets; j++)
                        kept = kept || sets[j] == m->dev_sets[i];
                if (!kept) {
                        m->dev_sets[i]->n_members = 0;  /* its devices belong elsewhere now */
                        dev_set_free(m->dev_sets[i]);
                }
        }
        free(m->dev_sets);
        m->dev_sets = TAKE_PTR(sets);
        m->n_dev_sets = specs->n_sets;
        for (size_t i = 0; i < m->n_dev_sets; i++) {
                r = dev_set_update(m->dev_sets[i], t, &specs->sets[i], &set_members[i], &set_foreign[i]);
                if (r < 0)
                        return log_error_errno(r, "Failed to update dev_set %s: %m", m->dev_sets[i]->id);
                /* Old sets were all alive when the new ones were made: no address is reused. */
                for (size_t k = 0; k < n_lost; k++)
                        set_members[i] = set_members[i] || lost[k] == m->dev_sets[i];
        }

        for (size_t i = 0; i < n_changes; i++)
                changes[i].moved = changes[i].old_set != changes[i].device->dev_set;
        for (size_t i = 0; i < m->n_dev_sets; i++)      /* a new set may reuse a freed one's address */
                for (size_t k = 0; set_added[i] && k < m->dev_sets[i]->n_members; k++)
                        for (size_t j = 0; j < n_changes; j++)
                                if (changes[j].device == m->dev_sets[i]->members[k])
                                        changes[j].moved = true;

        topology_free(m->topology);
        m->topology = TAKE_PTR(t);
        m->holders_stamp = 0;

        /* Take (or let go of) what is managed now; announce what changed. */
        for (size_t i = 0; i < n_changes; i++)
                changes[i].was_managed = changes[i].device->device_fd >= 0;
        for (size_t i = 0; i < m->n_dev_sets; i++)
                set_was_managed[i] = dev_set_is_managed(m->dev_sets[i]);
        ownership_sync(m);

        /* Announce: new objects whole, then what changed on the old ones. */
        for (size_t i = 0; i < m->n_dev_sets; i++)
                if (set_added[i])
                        emit_added(m, m->dev_sets[i]->path);
        for (size_t i = 0; i < n_changes; i++)
                if (changes[i].added)
                        emit_added(m, changes[i].device->path);
        for (size_t i = 0; i < m->n_dev_sets; i++) {
                const char *props[4] = {};
                size_t n = 0;

                if (set_added[i])
                        continue;
                if (set_members[i])
                        props[n++] = "Devices";
                if (set_foreign[i])
                        props[n++] = "ForeignDevices";
                if (set_was_managed[i] != dev_set_is_managed(m->dev_sets[i]))
                        props[n++] = "Managed";
                if (n > 0)
                        (void) dev_set_bus_emit_changed(m->dev_sets[i], props);
        }
        for (size_t i = 0; i < n_changes; i++) {
                struct device_change *c = &changes[i];
                size_t n = 0;

                if (c->added)
                        continue;
                while (c->changed[n])
                        n++;
                if (c->moved && n < ELEMENTSOF(c->changed) - 1)
                        c->changed[n++] = "DevSet";
                if (c->was_managed != (c->device->device_fd >= 0) && n < ELEMENTSOF(c->changed) - 1)
                        c->changed[n++] = "Managed";
                c->changed[n] = NULL;
                if (n > 0)
                        (void) device_bus_emit_changed(c->device, c->changed);
        }
        log_debug("Topology: %zu PCI functions, %zu vfio devices, %zu dev_sets",
                  m->topology->n_functions, m->n_devices, m->n_dev_sets);
        return 0;
}
