/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* The cdev + iommufd uapi (Linux 6.6+) that older <linux/vfio.h> lack and
 * that has no <linux/iommufd.h> before 6.2 (Debian 12 ships 6.1's). Each
 * definition is carried exactly as include/uapi/linux/vfio.h and
 * include/uapi/linux/iommufd.h of mainline have it, and only where the
 * installed headers do not define it. Structures are passed with argsz or
 * size set to their first, oldest part: the kernel copies what it
 * understands up to that size (offsetofend(..., out_devid) for bind,
 * offsetofend(..., pt_id) for attach, drivers/vfio/device_cdev.c). */

#include <stdint.h>
#include <string.h>
#include <linux/types.h>
#include <linux/ioctl.h>
#include <linux/vfio.h>

#if __has_include(<linux/iommufd.h>)
#include <linux/iommufd.h>
#endif

/* include/uapi/linux/vfio.h */
#ifndef VFIO_DEVICE_BIND_IOMMUFD
struct vfio_device_bind_iommufd {
        __u32 argsz;
        __u32 flags;
        __s32 iommufd;
        __u32 out_devid;
};
#define VFIO_DEVICE_BIND_IOMMUFD _IO(VFIO_TYPE, VFIO_BASE + 18)
#endif

#ifndef VFIO_DEVICE_ATTACH_IOMMUFD_PT
struct vfio_device_attach_iommufd_pt {
        __u32 argsz;
        __u32 flags;
        __u32 pt_id;
};
#define VFIO_DEVICE_ATTACH_IOMMUFD_PT _IO(VFIO_TYPE, VFIO_BASE + 19)

struct vfio_device_detach_iommufd_pt {
        __u32 argsz;
        __u32 flags;
};
#define VFIO_DEVICE_DETACH_IOMMUFD_PT _IO(VFIO_TYPE, VFIO_BASE + 20)
#endif

#ifndef VFIO_PCI_HOT_RESET_FLAG_DEV_ID
#define VFIO_PCI_HOT_RESET_FLAG_DEV_ID (1 << 0)
#define VFIO_PCI_HOT_RESET_FLAG_DEV_ID_OWNED (1 << 1)
#endif
#ifndef VFIO_PCI_DEVID_OWNED
#define VFIO_PCI_DEVID_OWNED 0
#define VFIO_PCI_DEVID_NOT_OWNED -1
#endif

/* struct vfio_pci_dependent_device's first word is `union { group_id; devid; }`
 * since 6.6; older headers name it group_id only. */
static inline uint32_t vfio_dependent_devid(const struct vfio_pci_dependent_device *d) {
        uint32_t v;

        memcpy(&v, d, sizeof(v));
        return v;
}

/* include/uapi/linux/iommufd.h */
#ifndef IOMMUFD_TYPE
#define IOMMUFD_TYPE (';')
#define IOMMUFD_CMD_DESTROY 0x80
#define IOMMUFD_CMD_IOAS_ALLOC 0x81

struct iommu_destroy {
        __u32 size;
        __u32 id;
};
#define IOMMU_DESTROY _IO(IOMMUFD_TYPE, IOMMUFD_CMD_DESTROY)

struct iommu_ioas_alloc {
        __u32 size;
        __u32 flags;
        __u32 out_ioas_id;
};
#define IOMMU_IOAS_ALLOC _IO(IOMMUFD_TYPE, IOMMUFD_CMD_IOAS_ALLOC)

#define IOMMUFD_CMD_IOAS_IOVA_RANGES 0x84
struct iommu_ioas_iova_ranges {
        __u32 size;
        __u32 ioas_id;
        __u32 num_iovas;
        __u32 __reserved;
        __aligned_u64 allowed_iovas;
        __aligned_u64 out_iova_alignment;
};
#define IOMMU_IOAS_IOVA_RANGES _IO(IOMMUFD_TYPE, IOMMUFD_CMD_IOAS_IOVA_RANGES)

#define IOMMUFD_CMD_IOAS_MAP 0x85
enum iommufd_ioas_map_flags {
        IOMMU_IOAS_MAP_FIXED_IOVA = 1 << 0,
        IOMMU_IOAS_MAP_WRITEABLE = 1 << 1,
        IOMMU_IOAS_MAP_READABLE = 1 << 2,
};
struct iommu_ioas_map {
        __u32 size;
        __u32 flags;
        __u32 ioas_id;
        __u32 __reserved;
        __aligned_u64 user_va;
        __aligned_u64 length;
        __aligned_u64 iova;
};
#define IOMMU_IOAS_MAP _IO(IOMMUFD_TYPE, IOMMUFD_CMD_IOAS_MAP)
#endif
