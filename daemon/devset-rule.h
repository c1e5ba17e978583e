/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* The kernel's dev_set rule (vfio_pci_core_register_device), applied to a
 * topology snapshot: pure, so it is tested without sysfs. */

#include <stddef.h>

#include "topology.h"

enum dev_set_kind {
        DEV_SET_SINGLE,
        DEV_SET_SLOT,
        DEV_SET_BUS,
};

const char *dev_set_kind_to_string(enum dev_set_kind k);

struct dev_set_spec {
        char *id;               /* bus_DDDD_BB, slot_DDDD_BB_<slot>, dev_DDDD_BB_SS_F */
        enum dev_set_kind kind;
        size_t *members;        /* indices into topology->functions, all vfio-bound */
        size_t n_members;
        size_t *foreign;        /* functions the reset reaches that are not members */
        size_t n_foreign;
};

struct dev_set_specs {
        struct dev_set_spec *sets;      /* sorted by id */
        size_t n_sets;
};

/* The set a vfio-bound function joins: its id and kind. */
int dev_set_key(const struct pci_function *f, char **ret_id, enum dev_set_kind *ret_kind);

int dev_set_rule_apply(const struct topology *t, struct dev_set_specs **ret);
struct dev_set_specs *dev_set_specs_free(struct dev_set_specs *s);
DEFINE_TRIVIAL_CLEANUP_FUNC(struct dev_set_specs *, dev_set_specs_free)
