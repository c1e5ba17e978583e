/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bus-names.h"
#include "device.h"
#include "devset.h"
#include "macro.h"
#include "manager.h"

const char *dev_set_state_to_string(enum dev_set_state s) {
        switch (s) {
        case DEV_SET_IDLE:
                return "idle";
        case DEV_SET_QUIESCING:
                return "quiescing";
        case DEV_SET_RESETTING:
                return "resetting";
        case DEV_SET_RESUMING:
                return "resuming";
        }
        return "unknown";
}

char *dev_set_path_from_id(const char *id) {
        char *p;

        if (asprintf(&p, VRD_DEVSET_PATH_PREFIX "/%s", id) < 0)
                return NULL;
        return p;
}

int dev_set_new(struct manager *m, const char *id, enum dev_set_kind kind, struct dev_set **ret) {
        _cleanup_free_ struct dev_set *s = calloc(1, sizeof(*s));

        if (!s)
                return -ENOMEM;
        *s = (struct dev_set) {
                .manager = m,
                .kind = kind,
                .state = DEV_SET_IDLE,
                .id = strdup(id),
                .path = dev_set_path_from_id(id),
                .last_result = strdup(""),
        };
        if (!s->id || !s->path || !s->last_result) {
                free(s->id);
                free(s->path);
                free(s->last_result);
                return -ENOMEM;
        }
        *ret = TAKE_PTR(s);
        return 0;
}

bool dev_set_is_managed(const struct dev_set *s) {
        for (size_t i = 0; i < s->n_members; i++)
                if (s->members[i]->device_fd < 0)
                        return false;
        return s->n_members > 0;
}

static void foreign_free(struct foreign_function *f, size_t n) {
        for (size_t i = 0; i < n; i++)
                free(f[i].driver);
        free(f);
}

struct dev_set *dev_set_free(struct dev_set *s) {
        if (!s)
                return NULL;
        for (size_t i = 0; i < s->n_members; i++)
                if (s->members[i]->dev_set == s)
                        s->members[i]->dev_set = NULL;
        free(s->members);
        foreign_free(s->foreign, s->n_foreign);
        free(s->id);
        free(s->path);
        free(s->last_result);
        free(s);
        return NULL;
}

static bool foreign_equal(const struct foreign_function *a, size_t na, const struct foreign_function *b, size_t nb) {
        if (na != nb)
                return false;
        for (size_t i = 0; i < na; i++)
                if (!pci_address_equal(&a[i].address, &b[i].address) || !streq_ptr(a[i].driver, b[i].driver))
                        return false;
        return true;
}

int dev_set_update(struct dev_set *s, const struct topology *t, const struct dev_set_spec *spec,
                   bool *ret_members_changed, bool *ret_foreign_changed) {
        _cleanup_free_ struct device **members = calloc(spec->n_members ?: 1, sizeof(*members));
        struct foreign_function *foreign = calloc(spec->n_foreign ?: 1, sizeof(*foreign));
        bool changed;

        if (!members || !foreign) {
                free(foreign);
                return -ENOMEM;
        }
        for (size_t i = 0; i < spec->n_members; i++) {
                members[i] = manager_find_device(s->manager, &t->functions[spec->members[i]].address);
                if (!members[i]) {
                        free(foreign);
                        return -ENOENT;
                }
        }
        for (size_t i = 0; i < spec->n_foreign; i++) {
                const struct pci_function *f = &t->functions[spec->foreign[i]];

                foreign[i] = (struct foreign_function) { .address = f->address, .vfio = f->vfio };
                if (f->driver && !(foreign[i].driver = strdup(f->driver))) {
                        foreign_free(foreign, i);
                        return -ENOMEM;
                }
        }

        changed = spec->n_members != s->n_members ||
                  (s->n_members > 0 && memcmp(members, s->members, sizeof(*members) * s->n_members) != 0);
        *ret_members_changed = changed;
        *ret_foreign_changed = !foreign_equal(foreign, spec->n_foreign, s->foreign, s->n_foreign);

        free(s->members);
        s->members = TAKE_PTR(members);
        s->n_members = spec->n_members;
        foreign_free(s->foreign, s->n_foreign);
        s->foreign = foreign;
        s->n_foreign = spec->n_foreign;
        for (size_t i = 0; i < s->n_members; i++)
                s->members[i]->dev_set = s;
        return 0;
}
