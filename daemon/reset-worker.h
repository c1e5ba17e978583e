/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* One kernel reset of a dev_set, run on a thread of its own so that the bus
 * stays responsive while the kernel works (a hot reset takes 15-170 ms on the
 * test VM, and can stall). The job owns duplicates of every fd it uses: the
 * daemon may drop its devices meanwhile. It signals an eventfd when done. */

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#include "kernel.h"

struct reset_job_device {
        char address[PCI_ADDRESS_STRLEN];
        int fd;
        uint16_t vendor_id, device_id;          /* what must read back */
        uint16_t read_vendor, read_device;      /* what did */
};

struct reset_job {
        const struct kernel_ops *kernel;
        bool hot;                       /* VFIO_DEVICE_PCI_HOT_RESET, else VFIO_DEVICE_RESET */
        struct reset_job_device *devices;
        size_t n_devices;
        int *group_fds;
        size_t n_group_fds;
        int *kept_fds;                  /* held open for the job's length only (containers) */
        size_t n_kept_fds;

        /* results */
        int error;                      /* negative errno of the failed step, 0 */
        const char *step;               /* which step failed */
        const char *address;            /* the device it failed on, if one */
        bool not_back;                  /* a device read back other IDs (all-ones: gone) */
        /* cdev model: the device the context does not own (hot-reset info
         * NOT_OWNED), "" when the check passed or was not made */
        char not_owned[PCI_ADDRESS_STRLEN];
        uint64_t kernel_usec;           /* time spent in the reset ioctl */

        int event_fd;                   /* readable once the job is done */
        pthread_t thread;
        bool started;
};

/* Takes ownership of every fd added; hot may be changed until the job starts. */
int reset_job_new(const struct kernel_ops *kernel, bool hot, struct reset_job **ret);
int reset_job_add_device(struct reset_job *j, const char *address, int fd, uint16_t vendor_id, uint16_t device_id);
int reset_job_add_group(struct reset_job *j, int fd);
int reset_job_keep(struct reset_job *j, int fd);
int reset_job_start(struct reset_job *j);
/* Joins the thread (it must be done: wait for event_fd) and closes every fd. */
struct reset_job *reset_job_free(struct reset_job *j);
