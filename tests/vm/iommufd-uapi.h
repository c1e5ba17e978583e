/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The parts of the kernel's uapi that the VM tests' dma-buf importer needs
 * beyond the daemon's daemon/vfio-cdev-uapi.h (the device cdev's bind and
 * attach, the IOAS alloc and map): unmap, MAP_FILE and the dma-buf feature,
 * which Debian 12's 6.1 headers lack. Values and layouts as in the 7.3
 * kernel's include/uapi/linux/iommufd.h and include/uapi/linux/vfio.h, each
 * only where the host's header does not define it. */
#pragma once

#include "../../daemon/vfio-cdev-uapi.h"

#ifndef IOMMU_IOAS_UNMAP
#define IOMMUFD_CMD_IOAS_UNMAP 0x86
struct iommu_ioas_unmap {
        __u32 size;
        __u32 ioas_id;
        __aligned_u64 iova;
        __aligned_u64 length;
};
#define IOMMU_IOAS_UNMAP _IO(IOMMUFD_TYPE, IOMMUFD_CMD_IOAS_UNMAP)
#endif

#ifndef IOMMU_IOAS_MAP_FILE
#define IOMMUFD_CMD_IOAS_MAP_FILE 0x8f
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
#define IOMMU_IOAS_MAP_FILE _IO(IOMMUFD_TYPE, IOMMUFD_CMD_IOAS_MAP_FILE)
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
