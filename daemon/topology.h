/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* A snapshot of the machine's PCI functions as sysfs shows them: what the
 * dev_set rule (devset-rule.c) needs, read once per scan through libudev. */

#include <stdbool.h>
#include <stdint.h>

#include "macro.h"
#include "pci-address.h"

struct udev;

struct pci_function {
        struct pci_address address;
        char *syspath;
        char *driver;                   /* NULL when no driver is bound */
        bool vfio;                      /* bound to vfio-pci or a vfio-pci variant driver */
        uint16_t vendor_id;
        uint16_t device_id;
        uint32_t class;
        int iommu_group;                /* -1 when the function has none */
        bool root_bus;                  /* on a root bus: no bridge above, no bus reset */
        bool has_parent;
        struct pci_address parent;      /* bridge whose secondary bus this is */
        bool virtfn;                    /* SR-IOV VF */
        struct pci_address physfn;      /* its PF, when virtfn */
        char *slot;                     /* /sys/bus/pci/slots name, NULL when none */
        bool slot_resettable;           /* the slot's hotplug driver can reset it (pciehp) */
        char **reset_methods;           /* the function's reset_method list, never NULL */
        char *vfio_cdev;                /* "vfioN" under /dev/vfio/devices, NULL when none */
        bool tagged;                    /* udev tag "vfio-resetd": the admin opted it in */
};

struct topology {
        struct pci_function *functions;  /* sorted by address */
        size_t n_functions;
};

struct topology_options {
        /* Drivers to treat as vfio-pci variants besides vfio-pci itself and
         * the modules that depend on vfio_pci_core (NULL-terminated, may be NULL). */
        char **extra_vfio_drivers;
};

int topology_scan(struct udev *udev, const struct topology_options *o, struct topology **ret);
struct topology *topology_free(struct topology *t);
DEFINE_TRIVIAL_CLEANUP_FUNC(struct topology *, topology_free)
const struct pci_function *topology_find(const struct topology *t, const struct pci_address *a);
/* Forget a function the scan found (the kernel announced its removal before sysfs caught up). */
void topology_forget(struct topology *t, const struct pci_address *a);

/* Is the driver vfio-pci or a variant of it (its module depends on vfio_pci_core)? */
bool driver_is_vfio(const char *driver, const struct topology_options *o);

/* Deep copy into *dst (which the caller later releases with pci_function_done). */
int pci_function_copy(struct pci_function *dst, const struct pci_function *src);
void pci_function_done(struct pci_function *f);
