/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* A dev_set: the devices one hot reset resets together, and (from the reset
 * issue on) the state machine idle -> quiescing -> resetting -> resuming. */

#include <stdint.h>

#include "devset-rule.h"

struct manager;
struct device;
struct reset;

enum dev_set_state {
        DEV_SET_IDLE,
        DEV_SET_QUIESCING,
        DEV_SET_RESETTING,
        DEV_SET_RESUMING,
};

const char *dev_set_state_to_string(enum dev_set_state s);

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

        enum dev_set_state state;
        struct reset *reset;            /* under way (quiescing or resetting) */
        struct reset *next;             /* the one follow-up queued behind it */
        uint64_t reset_count;
        char *last_result;              /* "" until the first reset */
        uint64_t last_reset_usec;
};

int dev_set_new(struct manager *m, const char *id, enum dev_set_kind kind, struct dev_set **ret);
struct dev_set *dev_set_free(struct dev_set *s);

/* Replace members and foreign functions with a fresh spec's; sets *ret_members_changed
 * and *ret_foreign_changed. The devices must already exist in the manager. */
int dev_set_update(struct dev_set *s, const struct topology *t, const struct dev_set_spec *spec,
                   bool *ret_members_changed, bool *ret_foreign_changed);

char *dev_set_path_from_id(const char *id);
/* The daemon owns every member. */
bool dev_set_is_managed(const struct dev_set *s);
