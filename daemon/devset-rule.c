/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <assert.h>
#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "devset-rule.h"
#include "macro.h"


const char *dev_set_kind_to_string(enum dev_set_kind k) {
        switch (k) {
        case DEV_SET_SINGLE:
                return "single";
        case DEV_SET_SLOT:
                return "slot";
        case DEV_SET_BUS:
                return "bus";
        }
        return "unknown";
}

/* Slot names are the platform's ("3", "Slot 1", "0-1"): keep what an object
 * path allows, escape the rest as _xx. */
static char *escape_slot(const char *name) {
        char *r = malloc(strlen(name) * 3 + 1), *p = r;

        if (!r)
                return NULL;
        for (const char *s = name; *s; s++)
                if (isalnum((unsigned char) *s))
                        *p++ = *s;
                else
                        p += sprintf(p, "_%02x", (unsigned char) *s);
        *p = '\0';
        return r;
}

int dev_set_key(const struct pci_function *f, char **ret_id, enum dev_set_kind *ret_kind) {
        const struct pci_address *a = &f->address;
        _cleanup_free_ char *slot = NULL;
        int n;

        /* The kernel's order: a root-bus function or a VF is alone; then a slot
         * that can be reset; else the whole bus. */
        if (f->root_bus || f->virtfn) {
                *ret_kind = DEV_SET_SINGLE;
                n = asprintf(ret_id, "dev_%04x_%02x_%02x_%x", a->domain, a->bus, a->slot, a->function);
        } else if (f->slot && f->slot_resettable) {
                slot = escape_slot(f->slot);
                if (!slot)
                        return -ENOMEM;
                *ret_kind = DEV_SET_SLOT;
                n = asprintf(ret_id, "slot_%04x_%02x_%s", a->domain, a->bus, slot);
        } else {
                *ret_kind = DEV_SET_BUS;
                n = asprintf(ret_id, "bus_%04x_%02x", a->domain, a->bus);
        }
        return n < 0 ? -ENOMEM : 0;
}

/* Does a reset of this bus (any slot) or of this slot reach function g? It
 * does for functions on the bus and on every bus below it. */
static bool in_reach(const struct topology *t, const struct pci_function *g,
                     const struct pci_function *anchor, enum dev_set_kind kind) {
        const struct pci_function *cur = g;

        for (unsigned depth = 0; cur && depth < 256; depth++) {
                if (cur->address.domain == anchor->address.domain && cur->address.bus == anchor->address.bus)
                        return kind == DEV_SET_BUS || cur->address.slot == anchor->address.slot;
                if (!cur->has_parent)
                        return false;
                cur = topology_find(t, &cur->parent);
        }
        return false;
}

static int append_index(size_t **v, size_t *n, size_t i) {
        size_t *nv = realloc(*v, sizeof(size_t) * (*n + 1));

        if (!nv)
                return -ENOMEM;
        nv[(*n)++] = i;
        *v = nv;
        return 0;
}

static int cmp_spec(const void *a, const void *b) {
        return strcmp(((const struct dev_set_spec *) a)->id, ((const struct dev_set_spec *) b)->id);
}

int dev_set_rule_apply(const struct topology *t, struct dev_set_specs **ret) {
        _cleanup_(dev_set_specs_freep) struct dev_set_specs *s = calloc(1, sizeof(*s));
        int r;

        if (!s)
                return -ENOMEM;

        for (size_t i = 0; i < t->n_functions; i++) {
                const struct pci_function *f = &t->functions[i];
                _cleanup_free_ char *id = NULL;
                struct dev_set_spec *set = NULL;
                enum dev_set_kind kind;

                if (!f->vfio)
                        continue;
                r = dev_set_key(f, &id, &kind);
                if (r < 0)
                        return r;
                for (size_t j = 0; j < s->n_sets; j++)
                        if (strcmp(s->sets[j].id, id) == 0)
                                set = &s->sets[j];
                if (!set) {
                        struct dev_set_spec *n = realloc(s->sets, sizeof(*n) * (s->n_sets + 1));

                        if (!n)
                                return -ENOMEM;
                        s->sets = n;
                        set = &s->sets[s->n_sets++];
                        *set = (struct dev_set_spec) { .id = TAKE_PTR(id), .kind = kind };
                }
                r = append_index(&set->members, &set->n_members, i);
                if (r < 0)
                        return r;
        }

        for (size_t j = 0; j < s->n_sets; j++) {
                struct dev_set_spec *set = &s->sets[j];
                const struct pci_function *anchor;

                assert(set->n_members > 0);
                if (set->kind == DEV_SET_SINGLE)
                        continue;
                anchor = &t->functions[set->members[0]];
                for (size_t i = 0; i < t->n_functions; i++) {
                        bool member = false;

                        for (size_t k = 0; k < set->n_members; k++)
                                member = member || set->members[k] == i;
                        if (member || !in_reach(t, &t->functions[i], anchor, set->kind))
                                continue;
                        r = append_index(&set->foreign, &set->n_foreign, i);
                        if (r < 0)
                                return r;
                }
        }

        if (s->n_sets > 0)
                qsort(s->sets, s->n_sets, sizeof(*s->sets), cmp_spec);
        *ret = TAKE_PTR(s);
        return 0;
}

struct dev_set_specs *dev_set_specs_free(struct dev_set_specs *s) {
        if (!s)
                return NULL;
        for (size_t j = 0; j < s->n_sets; j++) {
                free(s->sets[j].id);
                free(s->sets[j].members);
                free(s->sets[j].foreign);
        }
        free(s->sets);
        free(s);
        return NULL;
}
