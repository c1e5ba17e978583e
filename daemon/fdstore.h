/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* systemd's file descriptor store: the fds the daemon owns are parked with
 * the service manager under names that say what they are
 * (sd_pid_notify_with_fds(3), FDSTORE=1 with FDNAME=), so that the next start
 * of the service gets them back (sd_listen_fds_with_names(3)) and takes its
 * devices over without opening or resetting anything. Without $NOTIFY_SOCKET
 * (run by hand, D-Bus activated without systemd) nothing is stored and
 * nothing comes back.
 *
 * The names (FDNAME= may hold any ASCII but control characters and ':'):
 *   group-N                  IOMMU group N (/dev/vfio/N)
 *   container-N              the container of group N (/dev/vfio/vfio), one per group
 *   device-pci_DDDD_BB_SS_F  the daemon's device fd of that function (legacy)
 *   iommufd-SET              the iommufd context of dev_set SET (/dev/iommu), cdev model
 *   cdev-pci_DDDD_BB_SS_F.dev-D[.ioas-N]
 *                            that function's cdev (/dev/vfio/devices/vfioX),
 *                            bound to its set's iommufd with dev id D, and
 *                            attached to IOAS N (its peer's) if it is: the
 *                            kernel has no call that tells either */

#include <stddef.h>
#include <stdint.h>

#include "pci-address.h"

#define FDSTORE_NAME_MAX 256

/* The fds passed at start that nobody took back yet. */
struct fdstore {
        struct fdstore_fd {
                char *name;
                int fd;
        } *fds;
        size_t n_fds;
};

const char *fdstore_group_name(int group, char buf[static FDSTORE_NAME_MAX]);
const char *fdstore_container_name(int group, char buf[static FDSTORE_NAME_MAX]);
const char *fdstore_device_name(const struct pci_address *a, char buf[static FDSTORE_NAME_MAX]);
const char *fdstore_iommufd_name(const char *set_id, char buf[static FDSTORE_NAME_MAX]);
const char *fdstore_cdev_name(const struct pci_address *a, uint32_t devid, uint32_t ioas,
                              char buf[static FDSTORE_NAME_MAX]);

/* Read $LISTEN_FDS/$LISTEN_FDNAMES (and unset them): the number of fds kept. */
int fdstore_receive(struct fdstore *s);
/* The fd passed under this name, now the caller's; -ENOENT when none was. */
int fdstore_take(struct fdstore *s, const char *name);

/* The cdev of that function passed under any of its names, now the
 * caller's, with the dev id and IOAS the name says (0 where it says none)
 * and the name itself; -ENOENT when none was. */
int fdstore_take_cdev(struct fdstore *s, const struct pci_address *a, uint32_t *ret_devid, uint32_t *ret_ioas,
                      char ret_name[static FDSTORE_NAME_MAX]);

/* Park fd under name (a duplicate: the caller keeps fd). Failures are logged:
 * without the store the daemon works on, and a restart opens afresh. */
void fdstore_put(const char *name, int fd);
/* Drop every fd parked under name. */
void fdstore_remove(const char *name);
/* Close fd, which came back under name, and drop it from the store. */
void fdstore_discard(const char *name, int fd);
/* Wait until the service manager has done what it was told (BARRIER=1,
 * sd_notify_barrier(3)): a group it held is free to be opened again. */
void fdstore_sync(void);

/* Every fd nobody took back (its device is gone or not managed any more, or
 * its name means nothing to this version): warned about, closed, dropped. */
void fdstore_discard_unclaimed(struct fdstore *s);
/* Close what is left without touching the store. */
void fdstore_done(struct fdstore *s);
