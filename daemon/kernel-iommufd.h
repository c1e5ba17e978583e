/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* The real kernel backend's two halves (kernel-vfio.c: groups and containers,
 * and the table; kernel-iommufd.c: cdevs and iommufd) and what they share. */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "pci-address.h"

/* The number of a char device the kernel registered, from its sysfs "dev" file. */
int vfio_sysfs_devnum(const char *path, dev_t *ret);
/* 1 when fd is the char device want, 0 when not. */
int vfio_is_char_device(int fd, dev_t want);
/* "/dev/null", "anon_inode:[eventfd]": what an fd is, for a message. */
const char *vfio_fd_what(int fd, char *buf, size_t size);

bool iommufd_offered(void *data);
int iommufd_open(void *data, int *ret_iommufd);
int iommufd_cdev_bind(void *data, const char *cdev, const struct pci_address *a, int iommufd, int *ret_device_fd,
                      uint32_t *ret_devid, bool *ret_can_reset);
int iommufd_ioas_alloc(void *data, int iommufd, uint32_t *ret_ioas);
int iommufd_ioas_destroy(void *data, int iommufd, uint32_t ioas);
int iommufd_ioas_attach(void *data, int device_fd, uint32_t ioas);
int iommufd_ioas_detach(void *data, int device_fd);
int iommufd_check(void *data, int iommufd, char *why, size_t why_size);
int iommufd_cdev_check(void *data, const char *cdev, int device_fd, char *why, size_t why_size);
int iommufd_hot_reset_owned(void *data, int device_fd, struct pci_address *ret_not_owned);
