/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* The kernel backend: every VFIO call the daemon makes, behind one table so
 * that the arbiter runs the same against the real kernel (kernel-vfio.c) and
 * against a test double that can fail, stall or lose a device
 * (tests/kernel-fake.c). The reset calls run on a worker thread: they must not
 * touch daemon state. */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "pci-address.h"

struct kernel_ops {
        const char *name;

        /* Legacy model: open /dev/vfio/GROUP, give it a container of its own
         * (/dev/vfio/vfio) with the type1 IOMMU. -EBUSY: someone else holds it;
         * -EPERM/-EINVAL: the group is not viable. */
        int (*group_open)(void *data, int group, int *ret_group_fd, int *ret_container_fd);
        /* A device fd from an open group (VFIO_GROUP_GET_DEVICE_FD); *ret_can_reset
         * says whether it has a function reset (VFIO_DEVICE_FLAGS_RESET). */
        int (*device_open)(void *data, int group_fd, const struct pci_address *a, int *ret_device_fd,
                           bool *ret_can_reset);
        /* A group fd and its container fd from before a restart (systemd's fd
         * store): 0 when group_fd is IOMMU group `group` (its char device),
         * viable and in a container, and container_fd a VFIO container with
         * an IOMMU model set; else a negative errno, and what is wrong, in
         * words, in why. Nothing is opened or changed. */
        int (*group_check)(void *data, int group, int group_fd, int container_fd, char *why, size_t why_size);

        /* An eventfd the kernel signals when it wants the device back (it is
         * being unbound or removed, and waits until every fd of it is closed).
         * -EOPNOTSUPP when the device has no such channel. */
        int (*request_notify)(void *data, int device_fd);

        /* Worker-thread calls. */
        int (*low_power_exit)(void *data, int device_fd);
        int (*hot_reset)(void *data, int device_fd, const int *group_fds, size_t n_group_fds);
        int (*function_reset)(void *data, int device_fd);
        /* Vendor and device ID read through the VFIO config region. */
        int (*read_ids)(void *data, int device_fd, uint16_t *ret_vendor, uint16_t *ret_device);

        void *data;
};

extern const struct kernel_ops kernel_vfio_ops;
