/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The real kernel backend's cdev half: device cdevs (/dev/vfio/devices/vfioX,
 * drivers/vfio/device_cdev.c) bound to an iommufd context (/dev/iommu,
 * drivers/iommu/iommufd/), and the hot-reset ownership the kernel reports for
 * them (vfio_pci_core.c, VFIO_DEVICE_GET_PCI_HOT_RESET_INFO). */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include "kernel-iommufd.h"
#include "macro.h"
#include "vfio-cdev-uapi.h"
#include "vfio-chardev.h"

bool iommufd_offered(void *data) {
        struct stat st;

        /* stat, not open: looking takes nothing from anyone. */
        return stat("/dev/iommu", &st) >= 0 && S_ISCHR(st.st_mode);
}

int iommufd_open(void *data, int *ret_iommufd) {
        int fd = open("/dev/iommu", O_RDWR | O_CLOEXEC);

        if (fd < 0)
                return negative_errno();
        *ret_iommufd = fd;
        return 0;
}

/* The cdev's char device number (/sys/class/vfio-dev/vfioX/dev). */
static int cdev_devnum(const char *cdev, dev_t *ret) {
        char path[128];

        snprintf(path, sizeof(path), "/sys/class/vfio-dev/%s/dev", cdev);
        return vfio_sysfs_devnum(path, ret);
}

int iommufd_cdev_bind(void *data, const char *cdev, const struct pci_address *a, int iommufd, int *ret_device_fd,
                      uint32_t *ret_devid, bool *ret_can_reset) {
        struct vfio_device_bind_iommufd bind = {
                .argsz = offsetof(struct vfio_device_bind_iommufd, out_devid) + sizeof(bind.out_devid),
                .iommufd = iommufd,
        };
        struct vfio_device_info info = { .argsz = sizeof(info) };
        _cleanup_close_ int fd = -EBADF;
        char path[128];
        dev_t want;
        int r;

        snprintf(path, sizeof(path), "/dev/vfio/devices/%s", cdev);
        fd = open(path, O_RDWR | O_CLOEXEC);
        if (fd < 0)
                return negative_errno();
        /* The node must be the cdev sysfs names for this function: a stray
         * node in /dev would bind somebody else's device. */
        r = cdev_devnum(cdev, &want);
        if (r >= 0)
                r = vfio_is_char_device(fd, want);
        if (r <= 0)
                return r < 0 ? r : -ENODEV;
        /* A device binds once (vfio_df_open: "the device cdev path doesn't
         * have a secure way" to open it twice): EINVAL while any other file
         * of it is bound, in any context; EBUSY while its group is open
         * (vfio_device_block_group). */
        if (ioctl(fd, VFIO_DEVICE_BIND_IOMMUFD, &bind) < 0)
                return negative_errno();
        if (ioctl(fd, VFIO_DEVICE_GET_INFO, &info) < 0)
                return negative_errno();
        *ret_devid = bind.out_devid;
        *ret_can_reset = info.flags & VFIO_DEVICE_FLAGS_RESET;
        *ret_device_fd = TAKE_FD(fd);
        return 0;
}

int iommufd_ioas_alloc(void *data, int iommufd, uint32_t *ret_ioas) {
        struct iommu_ioas_alloc a = { .size = sizeof(a) };

        if (ioctl(iommufd, IOMMU_IOAS_ALLOC, &a) < 0)
                return negative_errno();
        *ret_ioas = a.out_ioas_id;
        return 0;
}

int iommufd_ioas_destroy(void *data, int iommufd, uint32_t ioas) {
        struct iommu_destroy d = { .size = sizeof(d), .id = ioas };

        /* EBUSY while a device is still attached to it. */
        if (ioctl(iommufd, IOMMU_DESTROY, &d) < 0)
                return negative_errno();
        return 0;
}

int iommufd_ioas_check(void *data, int iommufd, uint32_t ioas) {
        struct iommu_ioas_iova_ranges q = { .size = sizeof(q), .ioas_id = ioas };

        /* The context looks the id up as an IOAS (ENOENT: no object of that
         * id and type); room for no range is EMSGSIZE, and still an IOAS. */
        if (ioctl(iommufd, IOMMU_IOAS_IOVA_RANGES, &q) < 0 && errno != EMSGSIZE)
                return negative_errno();
        return 0;
}

int iommufd_ioas_attach(void *data, int device_fd, uint32_t ioas) {
        struct vfio_device_attach_iommufd_pt a = {
                .argsz = offsetof(struct vfio_device_attach_iommufd_pt, pt_id) + sizeof(a.pt_id),
                .pt_id = ioas,
        };

        if (ioctl(device_fd, VFIO_DEVICE_ATTACH_IOMMUFD_PT, &a) < 0)
                return negative_errno();
        return 0;
}

int iommufd_ioas_detach(void *data, int device_fd) {
        struct vfio_device_detach_iommufd_pt d = { .argsz = sizeof(d) };

        if (ioctl(device_fd, VFIO_DEVICE_DETACH_IOMMUFD_PT, &d) < 0)
                return negative_errno();
        return 0;
}

int iommufd_check(void *data, int iommufd, char *why, size_t why_size) {
        char what[256];
        dev_t want;
        int r;

        r = vfio_sysfs_devnum("/sys/class/misc/iommu/dev", &want);
        if (r >= 0)
                r = vfio_is_char_device(iommufd, want);
        if (r <= 0) {
                snprintf(why, why_size, "the iommufd is %s, not /dev/iommu", vfio_fd_what(iommufd, what, sizeof(what)));
                return r < 0 ? r : -EBADF;
        }
        return 0;
}

int iommufd_cdev_check(void *data, const char *cdev, int device_fd, char *why, size_t why_size) {
        struct vfio_device_info info = { .argsz = sizeof(info) };
        char what[256];
        dev_t want;
        int r;

        r = cdev_devnum(cdev, &want);
        if (r < 0) {
                snprintf(why, why_size, "%s has no vfio-dev char device (/sys/class/vfio-dev/%s/dev: %s)", cdev, cdev,
                         strerror(-r));
                return r;
        }
        r = vfio_is_char_device(device_fd, want);
        if (r <= 0) {
                snprintf(why, why_size, "the device fd is %s, not /dev/vfio/devices/%s (char device %u:%u)",
                         vfio_fd_what(device_fd, what, sizeof(what)), cdev, major(want), minor(want));
                return r < 0 ? r : -EBADF;
        }
        /* An unbound cdev file answers no ioctl but the bind (EINVAL,
         * vfio_device_fops_unl_ioctl's access_granted). */
        if (ioctl(device_fd, VFIO_DEVICE_GET_INFO, &info) < 0) {
                r = negative_errno();
                snprintf(why, why_size, "/dev/vfio/devices/%s is not bound to an iommufd (VFIO_DEVICE_GET_INFO: %s)",
                         cdev, strerror(-r));
                return r;
        }
        return 0;
}

int iommufd_hot_reset_owned(void *data, int device_fd, struct pci_address *ret_not_owned) {
        struct vfio_pci_hot_reset_info probe = { .argsz = sizeof(probe) };
        _cleanup_free_ struct vfio_pci_hot_reset_info *info = NULL;
        size_t size;

        /* ENOSPC with the count when the buffer holds none of the devices. */
        if (ioctl(device_fd, VFIO_DEVICE_GET_PCI_HOT_RESET_INFO, &probe) < 0 && errno != ENOSPC)
                return negative_errno();
        size = sizeof(*info) + sizeof(info->devices[0]) * (probe.count + 1);
        info = calloc(1, size);
        if (!info)
                return -ENOMEM;
        info->argsz = (uint32_t) size;
        if (ioctl(device_fd, VFIO_DEVICE_GET_PCI_HOT_RESET_INFO, info) < 0)
                return negative_errno();
        /* For a cdev-bound device the kernel reports dev ids, and DEV_ID_OWNED
         * when the caller's context owns every device the reset reaches. */
        if (info->flags & VFIO_PCI_HOT_RESET_FLAG_DEV_ID_OWNED)
                return 0;
        for (uint32_t i = 0; i < info->count; i++)
                if (!(info->flags & VFIO_PCI_HOT_RESET_FLAG_DEV_ID) ||
                    vfio_dependent_devid(&info->devices[i]) == (uint32_t) VFIO_PCI_DEVID_NOT_OWNED) {
                        *ret_not_owned = (struct pci_address) {
                                .domain = info->devices[i].segment,
                                .bus = info->devices[i].bus,
                                .slot = (uint8_t) (info->devices[i].devfn >> 3),
                                .function = (uint8_t) (info->devices[i].devfn & 7),
                        };
                        return -EPERM;
                }
        return -EPERM;
}
