/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* vfio-resetctl status ADDRESS: a device and its dev_set. */
#include <stdio.h>
#include <stdlib.h>

#include "holder-name.h"
#include "macro.h"
#include "strv.h"
#include "verdict.h"
#include "vfio-resetctl.h"


int cmd_status(struct ctl *c, int argc, char *argv[]) {
        _cleanup_(ctl_model_freep) struct ctl_model *m = NULL;
        _cleanup_free_ char *device_path = NULL, *dev_set_path = NULL, *members = NULL, *unseen = NULL;
        const struct ctl_device *d;
        const struct ctl_dev_set *s;
        int r;

        if (argc != 2) {
                fprintf(stderr, "%s: status takes one PCI address\n", program_invocation_short_name);
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

        if (c->json) {
                json_object *o = json_object_new_object();

                json_object_object_add(o, "device", ctl_device_to_json(d));
                json_object_object_add(o, "devset", ctl_dev_set_to_json(m, s));
                ctl_print_json(o);
                json_object_put(o);
                return 0;
        }

        members = ctl_join_addresses(m, s->devices, " ");
        printf("%s (%04x:%04x, class 0x%06x)\n", d->address, d->vendor_id, d->device_id, d->class);
        printf("      Driver: %s\n", d->driver);
        printf(" IOMMU group: %d\n", d->iommu_group);
        printf("Reset method:");
        for (char **p = d->reset_methods; p && *p; p++)
                printf(" %s", *p);
        printf("%s\n", strv_length(d->reset_methods) ? "" : " none");
        if (d->physfn && *d->physfn)
                printf("   SR-IOV PF: %s\n", d->physfn);
        if (d->managed && streq_ptr(d->ownership, "cdev"))
                printf("     Managed: yes, through its cdev bound to the set's iommufd context (IOAS %u)\n", d->ioas);
        else if (d->managed && streq_ptr(d->ownership, "legacy"))
                printf("     Managed: yes, through its IOMMU group and a container of the group's own\n");
        else
                printf("     Managed: %s\n", d->managed ? "yes" : "no");
        printf("      DevSet: %s (%s)\n", s->id, s->kind);
        printf("     Members: %s\n", members ?: "?");
        printf("       State: %s\n", s->state);
        for (size_t i = 0; i < s->n_holders; i++) {
                const struct ctl_holder *h = &s->holders[i];
                char name[HOLDER_NAME_MAX];

                printf("%s %s holds %s\n", i == 0 ? "     Holders:" : "             ",
                       holder_name(name, sizeof(name), h->pid, h->command, h->uid, h->unit), h->address);
        }
        unseen = verdict_uninspected(s);
        if (unseen)
                printf("%s cannot tell: %s\n", s->n_holders == 0 ? "     Holders:" : "             ", unseen);
        else if (s->n_holders == 0)
                printf("     Holders: none\n");
        for (size_t i = 0; i < s->n_foreign; i++)
                printf("%s %s (%s)\n", i == 0 ? "Also reached:" : "             ", s->foreign[i].address,
                       *s->foreign[i].driver ? s->foreign[i].driver : "no driver");
        printf("      Resets: %llu%s%s\n", (unsigned long long) s->reset_count,
               *s->last_result ? ", last: " : "", s->last_result);
        return 0;
}
