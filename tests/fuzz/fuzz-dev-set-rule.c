/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The dev_set rule (dev_set_rule_apply) on a PCI tree the input describes:
 * functions on a few domains, buses and slots, bridges above them (parent
 * links, loops and dangling ones included), VFs, slots with names and reset
 * ability, bound or not to vfio-pci: what topology_scan() makes of a sysfs.
 * Every vfio function must end up in exactly one set of the kind
 * dev_set_key() gives it, sets sorted by id without duplicates, and a set's
 * foreign functions neither members nor vfio functions of the same set. */
#include <stdlib.h>
#include <string.h>

#include "devset-rule.h"
#include "fuzz.h"

#define FUNCTIONS_MAX 48

static const char *const slot_names[] = { NULL, "1", "Slot 1", "0-1", "" };

static void take_address(struct fuzz_input *in, struct pci_address *a) {
        uint8_t b = fuzz_take(in), c = fuzz_take(in);

        /* few values, so that functions share buses and slots */
        *a = (struct pci_address) { .domain = b >> 7, .bus = b & 7, .slot = c & 3, .function = (c >> 2) & 7 };
}

static int cmp_function(const void *a, const void *b) {
        return pci_address_compare(&((const struct pci_function *) a)->address,
                                   &((const struct pci_function *) b)->address);
}

static void check(const struct topology *t, const struct dev_set_specs *s) {
        size_t seen[FUNCTIONS_MAX] = { 0 };

        for (size_t j = 0; j < s->n_sets; j++) {
                const struct dev_set_spec *set = &s->sets[j];

                if (j > 0 && strcmp(s->sets[j - 1].id, set->id) >= 0)
                        abort();
                if (set->n_members == 0 || (set->kind == DEV_SET_SINGLE && set->n_members != 1))
                        abort();
                for (size_t k = 0; k < set->n_members; k++) {
                        const struct pci_function *f;
                        char *id = NULL;
                        enum dev_set_kind kind;

                        if (set->members[k] >= t->n_functions)
                                abort();
                        f = &t->functions[set->members[k]];
                        if (!f->vfio || dev_set_key(f, &id, &kind) < 0)
                                abort();
                        if (kind != set->kind || strcmp(id, set->id) != 0)
                                abort();
                        free(id);
                        seen[set->members[k]]++;
                }
                for (size_t k = 0; k < set->n_foreign; k++) {
                        if (set->foreign[k] >= t->n_functions)
                                abort();
                        for (size_t m = 0; m < set->n_members; m++)
                                if (set->members[m] == set->foreign[k])
                                        abort();
                }
        }
        for (size_t i = 0; i < t->n_functions; i++)
                if (seen[i] != (t->functions[i].vfio ? 1u : 0u))
                        abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        struct pci_function functions[FUNCTIONS_MAX];
        struct topology t = { .functions = functions };
        struct dev_set_specs *s = NULL;
        struct fuzz_input in = { data, size };
        size_t n = fuzz_take(&in) % (FUNCTIONS_MAX + 1);

        for (size_t i = 0; i < n; i++) {
                struct pci_function *f = &functions[t.n_functions];
                uint8_t flags = fuzz_take(&in), slot = fuzz_take(&in);

                *f = (struct pci_function) { .iommu_group = i, .vfio = flags & 1, .root_bus = flags & 2,
                                             .has_parent = flags & 4, .virtfn = flags & 8,
                                             .slot_resettable = flags & 16 };
                take_address(&in, &f->address);
                if (f->has_parent)
                        take_address(&in, &f->parent);
                if (f->virtfn)
                        take_address(&in, &f->physfn);
                f->slot = (char *) slot_names[slot % ELEMENTSOF(slot_names)];
                /* topology_scan() lists each address once */
                bool dup = false;
                for (size_t k = 0; k < t.n_functions; k++)
                        dup = dup || pci_address_equal(&functions[k].address, &f->address);
                if (!dup)
                        t.n_functions++;
        }
        if (t.n_functions > 0)
                qsort(functions, t.n_functions, sizeof(*functions), cmp_function);
        if (dev_set_rule_apply(&t, &s) < 0)
                return 0;       /* -ENOMEM */
        check(&t, s);
        dev_set_specs_free(s);
        return 0;
}
