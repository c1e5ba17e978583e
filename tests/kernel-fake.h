/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* A kernel test double for the daemon: groups and devices are memfds named
 * after them (a /dev/vfio/N a holder opened counts as group N too),
 * containers eventfds; resets take a while and succeed, or fail with an errno, stall, or
 * lose a device (it reads all-ones afterwards). IDs and reset capability come
 * from (the fake) sysfs, as the kernel's do. Every reset is logged as one line
 * "hot-reset ADDR groups=N group_ids=G+G result=R start_usec=T0 end_usec=T1" or
 * "function-reset ADDR result=R start_usec=T0 end_usec=T1" to the log file,
 * T0 and T1 being CLOCK_MONOTONIC microseconds when the reset call began and
 * returned.
 *
 * Configured by a spec "key=value,key=value": delay_ms=20, fail=EIO,
 * stall_ms=3000, lose=0000:04:00.1, busy=10+11 (groups that answer EBUSY),
 * log=/path, begin_log=/path (a line "hot-reset ADDR" as each reset begins,
 * with the spec it runs with already read), open_log=/path (a line
 * "group-open N result=R" for every group open, "device-open ADDR first=B"
 * for every device fd, B 1 when no open file of the device exists anywhere
 * in the world: the kernel resets a function on its first open).
 *
 * The cdev model: iommufd=1 (/dev/iommu exists), bind_fail=ADDR+ADDR
 * (VFIO_DEVICE_BIND_IOMMUFD fails EINVAL: bound in another context),
 * not_owned=ADDR+ADDR (the hot-reset info says NOT_OWNED, and the empty-list
 * reset fails EINVAL), attach_fail=ADDR+ADDR (VFIO_DEVICE_ATTACH_IOMMUFD_PT
 * fails EINVAL), ioas_fail=1 (IOMMU_IOAS_ALLOC fails ENOMEM). A context is a
 * memfd "vfio-fake-iommufd-PID-N@WORLD", a bound cdev one named
 * "vfio-fake-ADDR#iommufd-PID-N@WORLD": whoever holds it holds that device
 * in that context. open_log gets "cdev-bind ADDR CDEV result=R",
 * "ioas-alloc CONTEXT result=R", "ioas-attach ADDR ioas=N result=R",
 * "ioas-check N result=R" and "ioas-destroy N result=R". The ids and IOAS
 * outlive the daemon process, as the kernel's do, in the file
 * $VRD_FAKE_KERNEL_FILE.iommufd. A hot reset from a bound cdev must pass no
 * group and have every vfio-pci function of its bus bound to its context.
 *
 * As the kernel, a group opens only while no process holds an open file of
 * it (-EBUSY; systemd's fd store counts). The memfds are named
 * "vfio-fake-group-N@WORLD" and "vfio-fake-ADDR@WORLD", WORLD the folder of
 * $UMOCKDEV_DIR: tests side by side each see their own kernel. group_check
 * knows its own fds: a group's memfd (or node), and eventfds as containers. The spec comes from $VRD_FAKE_KERNEL, and is read again from the
 * file $VRD_FAKE_KERNEL_FILE (if set) before every reset and group open. */

#include "kernel.h"

const struct kernel_ops *kernel_fake_ops(void);
int kernel_fake_configure(const char *spec);
