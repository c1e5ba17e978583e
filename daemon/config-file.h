/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* /etc/vfio-resetd/vfio-resetd.conf: which devices the daemon manages, and
 * defaults for resets. A bad line is logged (file:line: what is wrong) and
 * skipped; the rest of the file still counts. */

#include <stdbool.h>
#include <stdint.h>

#include "pci-address.h"

#define CONFIG_FILE_PATH "/etc/vfio-resetd/vfio-resetd.conf"
#define CONFIG_QUIESCE_TIMEOUT_USEC_DEFAULT (5 * UINT64_C(1000000))
#define CONFIG_LIBVIRT_URI_DEFAULT "qemu:///system"

/* [Ownership] Model= and [DevSet ID] Model=: how the daemon owns a set. */
enum config_model {
        CONFIG_MODEL_AUTO,      /* cdev where the kernel offers it, else legacy */
        CONFIG_MODEL_LEGACY,    /* groups and a container per group: peers isolated from each other */
        CONFIG_MODEL_CDEV,      /* cdevs bound to one iommufd context per set */
};

struct config_set_model {
        char *set_id;           /* a dev_set id: bus_DDDD_BB, slot_..., dev_... */
        enum config_model model;
};

struct vrd_config {
        char **managed;                 /* [Manage] Device=: canonical "DDDD:BB:SS.F", no duplicates */
        char **vfio_drivers;            /* [Topology] VfioDriver=: extra vfio-pci variant drivers */
        uint64_t quiesce_timeout_usec;  /* [Reset] QuiesceTimeoutSec= */
        char *libvirt_uri;              /* [Libvirt] URI=: NULL when "" or "none" (no libvirt adapter) */
        enum config_model model;        /* [Ownership] Model= */
        struct config_set_model *set_models;    /* [DevSet ID] Model=, one per set named */
        size_t n_set_models;
};

/* Fills *ret (defaults first; a missing file leaves them). Bad lines are
 * logged as warnings. Returns 0, or a negative errno, not logged, when the
 * file exists but cannot be read or memory runs out; *ret is then untouched. */
int config_load(const char *path, struct vrd_config *ret);
void config_done(struct vrd_config *c);

bool config_manages(const struct vrd_config *c, const struct pci_address *a);
/* The set's model: its [DevSet ID] Model= if any, else [Ownership] Model=. */
enum config_model config_model_for(const struct vrd_config *c, const char *set_id);
