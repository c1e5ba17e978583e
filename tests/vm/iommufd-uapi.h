/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The parts of the kernel's uapi that the VM tests' cdev and dma-buf
 * programs need and that the build host's headers may lack (Debian 12's
 * linux-libc-dev is 6.1: no <linux/iommufd.h> MAP_FILE, no VFIO cdev
 * ioctls, no dma-buf feature). Values and layouts as in the 7.3 kernel's
 * include/uapi/linux/iommufd.h and include/uapi/linux/vfio.h; each one only
 * where the host's header does not define it. The kernel checks argsz/size
 * against the smallest structure it accepts, so these older, shorter
 * layouts stay valid on newer kernels (vfio_device_bind_iommufd grew a
 * token pointer, vfio_device_attach_iommufd_pt a pasid, both behind flags). */
#pragma once

#include <linux/ioctl.h>
#include <linux/types.h>
#include <linux/vfio.h>

#ifndef IOMMUFD_TYPE
#define IOMMUFD_TYPE (';')
#endif

/* include/uapi/linux/iommufd.h: the command numbers, from IOMMUFD_CMD_BASE 0x80 */
#define VT_IOMMUFD_CMD_IOAS_ALLOC 0x81
#define VT_IOMMUFD_CMD_IOAS_MAP 0x85
#define VT_IOMMUFD_CMD_IOAS_UNMAP 0x86
#define VT_IOMMUFD_CMD_IOAS_MAP_FILE 0x8f

#ifndef IOMMU_IOAS_ALLOC
struct iommu_ioas_alloc {
        __u32 size;
        __u32 flags;
        __u32 out_ioas_id;
};
#define IOMMU_IOAS_ALLOC _IO(IOMMUFD_TYPE, VT_IOMMUFD_CMD_IOAS_ALLOC)

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
#define IOMMU_IOAS_MAP _IO(IOMMUFD_TYPE, VT_IOMMUFD_CMD_IOAS_MAP)

struct iommu_ioas_unmap {
        __u32 size;
        __u32 ioas_id;
        __aligned_u64 iova;
        __aligned_u64 length;
};
#define IOMMU_IOAS_UNMAP _IO(IOMMUFD_TYPE, VT_IOMMUFD_CMD_IOAS_UNMAP)
#endif

#ifndef IOMMU_IOAS_MAP_FILE
/* Map a file (memfd, or, since the dma-buf importer of
 * drivers/iommu/iommufd/pages.c, a vfio-pci dma-buf) into an IOAS. */
struct iommu_ioas_map_file {
        __u32 size;
        __u32 flags;
        __u32 ioas_id;
        __s32 fd;
        __aligned_u64 start;
        __aligned_u64 length;
        __aligned_u64 iova;
};
#define IOMMU_IOAS_MAP_FILE _IO(IOMMUFD_TYPE, VT_IOMMUFD_CMD_IOAS_MAP_FILE)
#endif

/* include/uapi/linux/vfio.h: the device cdev (/dev/vfio/devices/vfioX) */
#ifndef VFIO_DEVICE_BIND_IOMMUFD
struct vfio_device_bind_iommufd {
        __u32 argsz;
        __u32 flags;
        __s32 iommufd;
        __u32 out_devid;
};
#define VFIO_DEVICE_BIND_IOMMUFD _IO(VFIO_TYPE, VFIO_BASE + 18)

struct vfio_device_attach_iommufd_pt {
        __u32 argsz;
        __u32 flags;
        __u32 pt_id;
};
#define VFIO_DEVICE_ATTACH_IOMMUFD_PT _IO(VFIO_TYPE, VFIO_BASE + 19)
#endif

/* VFIO_DEVICE_FEATURE(GET | DMA_BUF): a dma-buf of ranges of one BAR; the
 * ioctl returns its fd. */
#ifndef VFIO_DEVICE_FEATURE_DMA_BUF
#define VFIO_DEVICE_FEATURE_DMA_BUF 11

struct vfio_region_dma_range {
        __u64 offset;
        __u64 length;
};

struct vfio_device_feature_dma_buf {
        __u32 region_index;
        __u32 open_flags;
        __u32 flags;
        __u32 nr_ranges;
        struct vfio_region_dma_range dma_ranges[];
};
#endif
