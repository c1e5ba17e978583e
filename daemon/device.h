/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* A vfio-bound PCI function: the object behind /org/vfioresetd1/device/pci_DDDD_BB_SS_F. */

#include "topology.h"

struct manager;
struct dev_set;

struct device {
        struct manager *manager;
        struct pci_function fn;         /* as of the last scan */
        char *path;
        struct dev_set *dev_set;
};

int device_new(struct manager *m, const struct pci_function *fn, struct device **ret);
struct device *device_free(struct device *d);

/* Which of the Device interface's properties differ between two scans of one function.
 * Returns a NULL-terminated list of static names; empty when nothing changed. */
void device_changed_properties(const struct pci_function *old, const struct pci_function *new,
                               const char *ret[static 8]);

/* "/org/vfioresetd1/device/pci_DDDD_BB_SS_F", and back. */
char *device_path_from_address(const struct pci_address *a);
int device_address_from_path(const char *path, struct pci_address *ret);
