/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The real kernel backend: VFIO's legacy group/container interface
 * (include/uapi/linux/vfio.h; drivers/vfio/pci/vfio_pci_core.c), and the
 * table with the cdev half (kernel-iommufd.c). */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>
#include <linux/vfio.h>

#include "kernel.h"
#include "kernel-iommufd.h"
#include "vfio-chardev.h"
#include "macro.h"

static int vfio_group_open(void *data, int group, int *ret_group_fd, int *ret_container_fd) {
        _cleanup_close_ int fd = -EBADF, container = -EBADF;
        struct vfio_group_status status = { .argsz = sizeof(status) };
        char path[64];
        int type;

        snprintf(path, sizeof(path), "/dev/vfio/%d", group);
        /* One opener at a time: a group another process holds answers EBUSY. */
        fd = open(path, O_RDWR | O_CLOEXEC);
        if (fd < 0)
                return negative_errno();
        if (ioctl(fd, VFIO_GROUP_GET_STATUS, &status) < 0)
                return negative_errno();
        /* Viable only when every device of the group is bound to a vfio driver
         * (or to none): the IOMMU cannot isolate less than a group. */
        if (!(status.flags & VFIO_GROUP_FLAGS_VIABLE))
                return -EPERM;

        container = open("/dev/vfio/vfio", O_RDWR | O_CLOEXEC);
        if (container < 0)
                return negative_errno();
        if (ioctl(container, VFIO_GET_API_VERSION) != VFIO_API_VERSION)
                return -EPROTO;
        type = ioctl(container, VFIO_CHECK_EXTENSION, VFIO_TYPE1v2_IOMMU) > 0 ? VFIO_TYPE1v2_IOMMU : VFIO_TYPE1_IOMMU;
        if (ioctl(fd, VFIO_GROUP_SET_CONTAINER, &container) < 0)
                return negative_errno();
        /* Device fds are only handed out once the container has an IOMMU model. */
        if (ioctl(container, VFIO_SET_IOMMU, type) < 0)
                return negative_errno();

        *ret_group_fd = TAKE_FD(fd);
        *ret_container_fd = TAKE_FD(container);
        return 0;
}

static int vfio_device_open(void *data, int group_fd, const struct pci_address *a, int *ret_device_fd,
                            bool *ret_can_reset) {
        struct vfio_device_info info = { .argsz = sizeof(info) };
        char name[PCI_ADDRESS_STRLEN];
        _cleanup_close_ int fd = -EBADF;

        fd = ioctl(group_fd, VFIO_GROUP_GET_DEVICE_FD, pci_address_format(a, name));
        if (fd < 0)
                return negative_errno();
        if (ioctl(fd, VFIO_DEVICE_GET_INFO, &info) < 0)
                return negative_errno();
        *ret_can_reset = info.flags & VFIO_DEVICE_FLAGS_RESET;
        *ret_device_fd = TAKE_FD(fd);
        return 0;
}

static int vfio_group_check(void *data, int group, int group_fd, int container_fd, char *why, size_t why_size) {
        struct vfio_group_status status = { .argsz = sizeof(status) };
        struct vfio_iommu_type1_info info = { .argsz = sizeof(info) };
        char path[64], what[256];
        dev_t want;
        int r;

        snprintf(path, sizeof(path), "/sys/class/vfio/%d/dev", group);
        r = vfio_sysfs_devnum(path, &want);
        if (r < 0) {
                snprintf(why, why_size, "IOMMU group %d has no vfio char device (%s: %s)", group, path, strerror(-r));
                return r;
        }
        r = vfio_is_char_device(group_fd, want);
        if (r <= 0) {
                snprintf(why, why_size, "the group fd is %s, not IOMMU group %d (char device %u:%u)",
                         vfio_fd_what(group_fd, what, sizeof(what)), group, major(want), minor(want));
                return r < 0 ? r : -EBADF;
        }
        if (ioctl(group_fd, VFIO_GROUP_GET_STATUS, &status) < 0) {
                r = negative_errno();
                snprintf(why, why_size, "VFIO_GROUP_GET_STATUS of group %d failed: %s", group, strerror(-r));
                return r;
        }
        /* Viable: every device of the group is bound to a vfio driver or to none. */
        if (!(status.flags & VFIO_GROUP_FLAGS_VIABLE)) {
                snprintf(why, why_size, "IOMMU group %d is not viable: a device of it is bound to another driver",
                         group);
                return -EPERM;
        }
        if (!(status.flags & VFIO_GROUP_FLAGS_CONTAINER_SET)) {
                snprintf(why, why_size, "IOMMU group %d is in no container", group);
                return -ENXIO;
        }
        r = vfio_sysfs_devnum("/sys/class/misc/vfio/dev", &want);
        if (r >= 0)
                r = vfio_is_char_device(container_fd, want);
        if (r <= 0) {
                snprintf(why, why_size, "the container fd is %s, not /dev/vfio/vfio",
                         vfio_fd_what(container_fd, what, sizeof(what)));
                return r < 0 ? r : -EBADF;
        }
        if (ioctl(container_fd, VFIO_GET_API_VERSION) != VFIO_API_VERSION) {
                snprintf(why, why_size, "the container speaks another VFIO API than version %d", VFIO_API_VERSION);
                return -EPROTO;
        }
        /* An IOMMU driver answers its own ioctls only once VFIO_SET_IOMMU chose
         * it, which needs a group in the container (drivers/vfio/container.c). */
        if (ioctl(container_fd, VFIO_IOMMU_GET_INFO, &info) < 0) {
                r = negative_errno();
                snprintf(why, why_size, "the container has no IOMMU model set (VFIO_IOMMU_GET_INFO: %s)",
                         strerror(-r));
                return r;
        }
        return 0;
}

static int vfio_request_notify(void *data, int device_fd) {
        size_t size = sizeof(struct vfio_irq_set) + sizeof(int32_t);
        _cleanup_free_ struct vfio_irq_set *irq = calloc(1, size);
        _cleanup_close_ int fd = -EBADF;
        int32_t efd;

        if (!irq)
                return -ENOMEM;
        fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
        if (fd < 0)
                return negative_errno();
        /* The "device request" interrupt: vfio-pci signals it while a remove
         * waits for the user to close the device. */
        *irq = (struct vfio_irq_set) {
                .argsz = (uint32_t) size,
                .flags = VFIO_IRQ_SET_DATA_EVENTFD | VFIO_IRQ_SET_ACTION_TRIGGER,
                .index = VFIO_PCI_REQ_IRQ_INDEX,
                .start = 0,
                .count = 1,
        };
        efd = fd;
        memcpy(irq->data, &efd, sizeof(efd));
        if (ioctl(device_fd, VFIO_DEVICE_SET_IRQS, irq) < 0)
                return errno == EINVAL || errno == ENOTTY ? -EOPNOTSUPP : negative_errno();
        return TAKE_FD(fd);
}

static int vfio_low_power_exit(void *data, int device_fd) {
        struct vfio_device_feature f = {
                .argsz = sizeof(f),
                .flags = VFIO_DEVICE_FEATURE_SET | VFIO_DEVICE_FEATURE_LOW_POWER_EXIT,
        };

        if (ioctl(device_fd, VFIO_DEVICE_FEATURE, &f) >= 0)
                return 0;
        /* Before 6.0 the feature does not exist, and then nothing can have put
         * the device into runtime low power on a user's request either. */
        if (errno == ENOTTY || errno == EINVAL)
                return 0;
        return negative_errno();
}

static int vfio_hot_reset(void *data, int device_fd, const int *group_fds, size_t n_group_fds) {
        size_t size = sizeof(struct vfio_pci_hot_reset) + sizeof(__s32) * n_group_fds;
        _cleanup_free_ struct vfio_pci_hot_reset *h = calloc(1, size);

        if (!h)
                return -ENOMEM;
        h->argsz = (__u32) size;
        h->count = (__u32) n_group_fds;
        for (size_t i = 0; i < n_group_fds; i++)
                h->group_fds[i] = group_fds[i];
        /* The kernel demands a group fd for every group the bus or slot reset
         * reaches, and every reached device in the dev_set; else EINVAL. An
         * empty list is for cdev-bound devices only ("zero-length array is
         * only for cdev opened devices", vfio_pci_ioctl_pci_hot_reset). */
        if (ioctl(device_fd, VFIO_DEVICE_PCI_HOT_RESET, h) < 0)
                return negative_errno();
        return 0;
}

static int vfio_function_reset(void *data, int device_fd) {
        /* EINVAL when the device has no function reset (VFIO_DEVICE_FLAGS_RESET clear). */
        if (ioctl(device_fd, VFIO_DEVICE_RESET) < 0)
                return negative_errno();
        return 0;
}

static int vfio_read_ids(void *data, int device_fd, uint16_t *ret_vendor, uint16_t *ret_device) {
        struct vfio_region_info info = { .argsz = sizeof(info), .index = VFIO_PCI_CONFIG_REGION_INDEX };
        uint32_t ids;
        ssize_t n;

        if (ioctl(device_fd, VFIO_DEVICE_GET_REGION_INFO, &info) < 0)
                return negative_errno();
        n = pread(device_fd, &ids, sizeof(ids), (off_t) info.offset);
        if (n < 0)
                return negative_errno();
        if (n != sizeof(ids))
                return -EIO;
        *ret_vendor = (uint16_t) (ids & 0xffff);
        *ret_device = (uint16_t) (ids >> 16);
        return 0;
}

const struct kernel_ops kernel_vfio_ops = {
        .name = "vfio",
        .group_open = vfio_group_open,
        .device_open = vfio_device_open,
        .group_check = vfio_group_check,
        .iommufd_offered = iommufd_offered,
        .iommufd_open = iommufd_open,
        .cdev_bind = iommufd_cdev_bind,
        .ioas_alloc = iommufd_ioas_alloc,
        .ioas_destroy = iommufd_ioas_destroy,
        .ioas_check = iommufd_ioas_check,
        .ioas_attach = iommufd_ioas_attach,
        .ioas_detach = iommufd_ioas_detach,
        .iommufd_check = iommufd_check,
        .cdev_check = iommufd_cdev_check,
        .request_notify = vfio_request_notify,
        .low_power_exit = vfio_low_power_exit,
        .hot_reset_owned = iommufd_hot_reset_owned,
        .hot_reset = vfio_hot_reset,
        .function_reset = vfio_function_reset,
        .read_ids = vfio_read_ids,
};
