/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* vfio-resetctl explain ADDRESS: can the device's dev_set be reset now, and why not. */
#include <stdio.h>
#include <stdlib.h>

#include "macro.h"
#include "strv.h"
#include "verdict.h"
#include "vfio-resetctl.h"


int cmd_explain(struct ctl *c, int argc, char *argv[]) {
        _cleanup_(ctl_model_freep) struct ctl_model *m = NULL;
        _cleanup_free_ char *device_path = NULL, *dev_set_path = NULL, *members = NULL;
        const struct ctl_device *d;
        const struct ctl_dev_set *s;
        struct verdict v;
        size_t n_groups = 0;
        int groups[64];
        int r;

        if (argc != 2) {
                fprintf(stderr, "%s: explain takes one PCI address\n", program_invocation_short_name);
                return CTL_EXIT_USAGE;
        }
        r = ctl_resolve(c, argv[1], &device_path, &dev_set_path);
        if (r < 0)
                return -r;
        r = ctl_load(c, &m);
        if (r < 0)
                return -r;
        d = ctl_model_device(m, device_path);
        s = ctl_model_dev_set(m, dev_set_path);
        if (!d || !s) {
                fprintf(stderr, "%s: %s changed while it was read; try again\n", program_invocation_short_name, argv[1]);
                return CTL_EXIT_FAILURE;
        }
        r = verdict_compute(m, s, &v);
        if (r < 0) {
                fprintf(stderr, "%s: out of memory\n", program_invocation_short_name);
                return CTL_EXIT_FAILURE;
        }

        if (c->json) {
                json_object *o = json_object_new_object(), *b = json_object_new_array();

                for (size_t i = 0; i < v.n_blockers; i++) {
                        json_object *e = json_object_new_object();
                        const struct blocker *x = &v.blockers[i];

                        json_object_object_add(e, "type", json_object_new_string(blocker_type_to_string(x->type)));
                        if (x->address)
                                json_object_object_add(e, "address", json_object_new_string(x->address));
                        if (x->type == BLOCKER_HOLDER) {
                                const struct ctl_domain *dom = ctl_dev_set_domain(s, x->holder);

                                ctl_holder_add_json(e, x->holder);
                                if (dom) {
                                        json_object_object_add(e, "domain", json_object_new_string(dom->name));
                                        json_object_object_add(e, "uuid", json_object_new_string(dom->uuid));
                                }
                        }
                        if (x->type == BLOCKER_FOREIGN)
                                json_object_object_add(e, "driver", json_object_new_string(x->driver));
                        if (x->type == BLOCKER_UNINSPECTED)
                                json_object_object_add(e, "processes", ctl_uninspected_to_json(s));
                        json_object_object_add(e, "message", json_object_new_string(x->message));
                        json_object_array_add(b, e);
                }
                json_object_object_add(o, "address", json_object_new_string(d->address));
                json_object_object_add(o, "devset", json_object_new_string(s->id));
                json_object_object_add(o, "kind", json_object_new_string(s->kind));
                json_object_object_add(o, "method", json_object_new_string(v.method));
                json_object_object_add(o, "resettable", json_object_new_boolean(v.resettable));
                json_object_object_add(o, "borrowable", json_object_new_boolean(v.borrowable));
                json_object_object_add(o, "blockers", b);
                json_object_object_add(o, "summary", json_object_new_string(v.summary));
                ctl_print_json(o);
                json_object_put(o);
                verdict_done(&v);
                return 0;
        }

        for (char **p = s->devices; p && *p; p++) {
                const struct ctl_device *x = ctl_model_device(m, *p);
                bool dup = false;

                for (size_t i = 0; x && i < n_groups; i++)
                        dup = dup || groups[i] == x->iommu_group;
                if (x && !dup && n_groups < ELEMENTSOF(groups))
                        groups[n_groups++] = x->iommu_group;
        }
        members = ctl_join_addresses(m, s->devices, ", ");
        if (streq_ptr(s->kind, "single"))
                printf("%s is a dev_set of its own (%s): it is reset alone, with its function reset "
                       "(VFIO_DEVICE_RESET).\n", d->address, s->id);
        else if (strv_length(s->devices) == 1)
                printf("%s is alone in dev_set %s: a hot reset (VFIO_DEVICE_PCI_HOT_RESET) resets its %s.\n",
                       d->address, s->id, s->kind);
        else
                printf("%s is in dev_set %s: one hot reset (VFIO_DEVICE_PCI_HOT_RESET) of the %s resets "
                       "%s together (%zu devices in %zu IOMMU group%s).\n",
                       d->address, s->id, s->kind, members ?: "?", strv_length(s->devices),
                       n_groups, n_groups == 1 ? "" : "s");
        printf("%s\n", v.summary);
        for (size_t i = 0; i < v.n_blockers; i++)
                printf("  - %s\n", v.blockers[i].message);
        if (v.borrowable)
                printf("vfio-resetd can reset it anyway: vfio-resetctl reset --borrow %s stops the holders for the "
                       "length of the reset (one in a service or scope unit is frozen with its unit; add --force to "
                       "stop any other with SIGSTOP), and lets them run again.\n", d->address);
        verdict_done(&v);
        return 0;
}
