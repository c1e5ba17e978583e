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

        /* cdev model (Linux 6.6+, CONFIG_IOMMUFD and CONFIG_VFIO_DEVICE_CDEV).
         * Does the kernel offer /dev/iommu? Looked up, never opened. */
        bool (*iommufd_offered)(void *data);
        /* A new iommufd context: open /dev/iommu. */
        int (*iommufd_open)(void *data, int *ret_iommufd);
        /* Open the device's cdev (/dev/vfio/devices/CDEV) and bind it to the
         * context (VFIO_DEVICE_BIND_IOMMUFD): its device fd and its id in the
         * context. -EINVAL: the device is bound elsewhere (another context,
         * or the group path holds it: -EBUSY). */
        int (*cdev_bind)(void *data, const char *cdev, const struct pci_address *a, int iommufd,
                         int *ret_device_fd, uint32_t *ret_devid, bool *ret_can_reset);
        /* IOMMU_IOAS_ALLOC / IOMMU_DESTROY of an IO address space in a context. */
        int (*ioas_alloc)(void *data, int iommufd, uint32_t *ret_ioas);
        int (*ioas_destroy)(void *data, int iommufd, uint32_t ioas);
        /* 0 when the context has an IOAS of that id (IOMMU_IOAS_IOVA_RANGES
         * answers), else -ENOENT: what an id from before a restart names. */
        int (*ioas_check)(void *data, int iommufd, uint32_t ioas);
        /* VFIO_DEVICE_ATTACH_IOMMUFD_PT / VFIO_DEVICE_DETACH_IOMMUFD_PT. */
        int (*ioas_attach)(void *data, int device_fd, uint32_t ioas);
        int (*ioas_detach)(void *data, int device_fd);
        /* Fds from before a restart: 0 when iommufd is /dev/iommu; when
         * device_fd is the cdev CDEV, bound (it answers VFIO_DEVICE_GET_INFO).
         * Else a negative errno and why, in words. */
        int (*iommufd_check)(void *data, int iommufd, char *why, size_t why_size);
        int (*cdev_check)(void *data, const char *cdev, int device_fd, char *why, size_t why_size);

        /* An eventfd the kernel signals when it wants the device back (it is
         * being unbound or removed, and waits until every fd of it is closed).
         * -EOPNOTSUPP when the device has no such channel. */
        int (*request_notify)(void *data, int device_fd);

        /* Worker-thread calls. */
        int (*low_power_exit)(void *data, int device_fd);
        /* The cdev model's proof, asked before an empty-list hot reset
         * (VFIO_DEVICE_GET_PCI_HOT_RESET_INFO, flag DEV_ID_OWNED): 0 when the
         * device's context owns every device the reset reaches; else -EPERM
         * and the first device it does not own in *ret_not_owned. */
        int (*hot_reset_owned)(void *data, int device_fd, struct pci_address *ret_not_owned);
        /* n_group_fds 0: the cdev model's empty list. */
        int (*hot_reset)(void *data, int device_fd, const int *group_fds, size_t n_group_fds);
        int (*function_reset)(void *data, int device_fd);
        /* Vendor and device ID read through the VFIO config region. */
        int (*read_ids)(void *data, int device_fd, uint16_t *ret_vendor, uint16_t *ret_device);

        void *data;
};

extern const struct kernel_ops kernel_vfio_ops;

