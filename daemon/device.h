/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* A vfio-bound PCI function: the object behind /org/vfioresetd1/device/pci_DDDD_BB_SS_F. */

#include <systemd/sd-event.h>

#include "config-file.h"
#include "holders.h"
#include "topology.h"

struct manager;         /* only the bus faces follow these back pointers */
struct dev_set;

/* How the daemon owns a device (ownership.h). */
enum ownership_model {
        OWNERSHIP_NONE,         /* not owned */
        OWNERSHIP_LEGACY,       /* its group and a container of the group's own */
        OWNERSHIP_CDEV,         /* its cdev, bound to its dev_set's iommufd context */
};

struct device {
        struct manager *manager;
        struct pci_function fn;         /* as of the last scan */
        char *path;
        struct dev_set *dev_set;

        /* Ownership (ownership.c): the daemon's own device fd, -EBADF when not owned. */
        int device_fd;
        bool can_function_reset;        /* VFIO_DEVICE_FLAGS_RESET */
        int acquire_error;              /* last failure to take it, logged once */
        sd_event_source *request_source;        /* the kernel asks for the device back */
        bool kernel_wants_it;           /* it asked: never take it again while it stays bound */
        enum ownership_model model;     /* the model it is owned by, or is to be taken with */
        uint32_t iommufd_devid;         /* cdev: its id in the context (VFIO_DEVICE_BIND_IOMMUFD), 0 unknown */
        uint32_t iommufd_ioas;          /* cdev: the IOAS it is attached to, 0 none (ids start at 1) */
};

/* A process other than the daemon that holds the device's group or cdev open. */
struct device_holder {
        struct device *device;
        struct holder process;  /* .target is unused */
};

/* Opted in: tagged "vfio-resetd" by udev, or listed in the config. */
bool device_is_managed(const struct device *d, const struct vrd_config *config);

int device_new(struct manager *m, const struct pci_function *fn, struct device **ret);
struct device *device_free(struct device *d);

/* The device at this address in an array sorted by address, or NULL. */
struct device *devices_find(struct device *const *devices, size_t n, const struct pci_address *a);

/* Which of the Device interface's properties differ between two scans of one function.
 * Returns a NULL-terminated list of static names; empty when nothing changed. */
void device_changed_properties(const struct pci_function *old, const struct pci_function *new,
                               const char *ret[static 8]);

/* "/org/vfioresetd1/device/pci_DDDD_BB_SS_F", and back. */
char *device_path_from_address(const struct pci_address *a);
int device_address_from_path(const char *path, struct pci_address *ret);
