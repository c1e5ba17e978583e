/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* The real kernel backend's cdev half (cdevs and iommufd), which the table in
 * kernel-vfio.c points to. */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "pci-address.h"

bool iommufd_offered(void *data);
int iommufd_open(void *data, int *ret_iommufd);
int iommufd_cdev_bind(void *data, const char *cdev, const struct pci_address *a, int iommufd, int *ret_device_fd,
                      uint32_t *ret_devid, bool *ret_can_reset);
int iommufd_ioas_alloc(void *data, int iommufd, uint32_t *ret_ioas);
int iommufd_ioas_destroy(void *data, int iommufd, uint32_t ioas);
int iommufd_ioas_check(void *data, int iommufd, uint32_t ioas);
int iommufd_ioas_attach(void *data, int device_fd, uint32_t ioas);
int iommufd_ioas_detach(void *data, int device_fd);
int iommufd_check(void *data, int iommufd, char *why, size_t why_size);
int iommufd_cdev_check(void *data, const char *cdev, int device_fd, char *why, size_t why_size);
int iommufd_hot_reset_owned(void *data, int device_fd, struct pci_address *ret_not_owned);
