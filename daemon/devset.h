/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* A dev_set: the devices one hot reset resets together. Its reset state
 * machine lives in arbiter.c. */

#include <stdint.h>

#include "device.h"
#include "devset-rule.h"

struct manager;         /* only the bus faces follow this back pointer */
struct reset;

/* A function a reset of the set reaches but that is not in it. */
struct foreign_function {
        struct pci_address address;
        char *driver;           /* NULL when unbound */
        bool vfio;              /* vfio-bound, but in another dev_set (a bus below) */
};

struct dev_set {
        struct manager *manager;
        char *id;
        char *path;
        enum dev_set_kind kind;
        struct device **members;        /* sorted by address */
        size_t n_members;
        struct foreign_function *foreign;
        size_t n_foreign;

        /* The arbiter's: the reset under way (its state is the set's) and the
         * one follow-up queued behind it. */
        struct reset *reset;
        struct reset *next;
        uint64_t reset_count;
        char *last_result;              /* "" until the first reset */
        uint64_t last_reset_usec;
};

int dev_set_new(struct manager *m, const char *id, enum dev_set_kind kind, struct dev_set **ret);
struct dev_set *dev_set_free(struct dev_set *s);

/* A set's members and foreign functions as a fresh spec has them, made
 * before anything changes so that applying it cannot fail. */
struct dev_set_update {
        struct device **members;
        size_t n_members;
        struct foreign_function *foreign;
        size_t n_foreign;
};

/* devices: every vfio device, sorted by address; each member must be there. */
int dev_set_update_prepare(const struct topology *t, const struct dev_set_spec *spec, struct device *const *devices,
                           size_t n_devices, struct dev_set_update *ret);
/* Takes over u; sets *ret_members_changed and *ret_foreign_changed. */
void dev_set_update_apply(struct dev_set *s, struct dev_set_update *u, bool *ret_members_changed,
                          bool *ret_foreign_changed);
void dev_set_update_done(struct dev_set_update *u);

char *dev_set_path_from_id(const char *id);
/* The daemon owns every member. */
bool dev_set_is_managed(const struct dev_set *s);
