/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* vfio-resetctl hold: what its COMMAND is told (documented in vfio-resetctl(1)). */

#include <stddef.h>

#include "pci-address.h"

#define HOLD_ENV_DEVICES        "VFIO_RESETD_DEVICES"
#define HOLD_ENV_DEVICE_FD      "VFIO_RESETD_DEVICE_FD_"
#define HOLD_ENV_IOMMU_FD       "VFIO_RESETD_IOMMU_FD_"

struct held_device {
        char address[PCI_ADDRESS_STRLEN];       /* canonical */
        int device_fd;
        int iommu_fd;
};

/* NAME=VALUE strings for the command: VFIO_RESETD_DEVICES="0000:04:00.0 0000:04:00.1",
 * and per device VFIO_RESETD_DEVICE_FD_0000_04_00_0=N and VFIO_RESETD_IOMMU_FD_0000_04_00_0=M.
 * NULL when out of memory. */
char **hold_environment(const struct held_device *devices, size_t n);
