/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bus-names.h"
#include "device.h"
#include "devset.h"
#include "macro.h"

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

int dev_set_update_prepare(const struct topology *t, const struct dev_set_spec *spec, struct device *const *devices,
                           size_t n_devices, struct dev_set_update *ret) {
        struct dev_set_update u = {
                .members = calloc(spec->n_members ?: 1, sizeof(*u.members)),
                .foreign = calloc(spec->n_foreign ?: 1, sizeof(*u.foreign)),
        };

        if (!u.members || !u.foreign) {
                dev_set_update_done(&u);
                return -ENOMEM;
        }
        for (size_t i = 0; i < spec->n_members; i++) {
                u.members[i] = devices_find(devices, n_devices, &t->functions[spec->members[i]].address);
                if (!u.members[i]) {
                        dev_set_update_done(&u);
                        return -ENOENT;
                }
                u.n_members++;
        }
        for (size_t i = 0; i < spec->n_foreign; i++) {
                const struct pci_function *f = &t->functions[spec->foreign[i]];

                u.foreign[i] = (struct foreign_function) { .address = f->address, .vfio = f->vfio };
                u.n_foreign++;
                if (f->driver && !(u.foreign[i].driver = strdup(f->driver))) {
                        dev_set_update_done(&u);
                        return -ENOMEM;
                }
        }
        *ret = u;
        return 0;
}

void dev_set_update_done(struct dev_set_update *u) {
        free(u->members);
        foreign_free(u->foreign, u->n_foreign);
        *u = (struct dev_set_update) {};
}

void dev_set_update_apply(struct dev_set *s, struct dev_set_update *u, bool *ret_members_changed,
                          bool *ret_foreign_changed) {
        *ret_members_changed = u->n_members != s->n_members ||
                (s->n_members > 0 && memcmp(u->members, s->members, sizeof(*s->members) * s->n_members) != 0);
        *ret_foreign_changed = !foreign_equal(u->foreign, u->n_foreign, s->foreign, s->n_foreign);

        free(s->members);
        s->members = TAKE_PTR(u->members);
        s->n_members = u->n_members;
        foreign_free(s->foreign, s->n_foreign);
        s->foreign = TAKE_PTR(u->foreign);
        s->n_foreign = u->n_foreign;
        *u = (struct dev_set_update) {};
        for (size_t i = 0; i < s->n_members; i++)
                s->members[i]->dev_set = s;
}
