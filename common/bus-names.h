/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* The D-Bus contract's names (docs/dbus-api.md), shared by daemon, client and tests. */
#define VRD_BUS_NAME            "org.vfioresetd1"
#define VRD_ROOT_PATH           "/org/vfioresetd1"
#define VRD_DEVICE_PATH_PREFIX  "/org/vfioresetd1/device"
#define VRD_DEVSET_PATH_PREFIX  "/org/vfioresetd1/devset"
#define VRD_MANAGER_IFACE       "org.vfioresetd1.Manager"
#define VRD_DEVICE_IFACE        "org.vfioresetd1.Device"
#define VRD_DEVSET_IFACE        "org.vfioresetd1.DevSet"

#define VRD_ERROR_NO_SUCH_DEVICE "org.vfioresetd1.Error.NoSuchDevice"
#define VRD_ERROR_NOT_MANAGED    "org.vfioresetd1.Error.NotManaged"
#define VRD_ERROR_NOT_OWNED      "org.vfioresetd1.Error.NotOwned"
#define VRD_ERROR_BUSY           "org.vfioresetd1.Error.Busy"
#define VRD_ERROR_QUIESCE_TIMEOUT "org.vfioresetd1.Error.QuiesceTimeout"
#define VRD_ERROR_RESET_FAILED   "org.vfioresetd1.Error.ResetFailed"
#define VRD_ERROR_DEVICE_GONE    "org.vfioresetd1.Error.DeviceGone"
#define VRD_ERROR_SHUTTING_DOWN  "org.vfioresetd1.Error.ShuttingDown"
#define VRD_ERROR_QUIESCE_FAILED "org.vfioresetd1.Error.QuiesceFailed"
#define VRD_ERROR_BORROW_FAILED  "org.vfioresetd1.Error.BorrowFailed"
#define VRD_ERROR_IOMMU_FAILED   "org.vfioresetd1.Error.IommuFailed"
