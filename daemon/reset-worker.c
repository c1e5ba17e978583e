/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <time.h>
#include <unistd.h>

#include "macro.h"
#include "reset-worker.h"


int reset_job_new(const struct kernel_ops *kernel, bool hot, struct reset_job **ret) {
        struct reset_job *j = calloc(1, sizeof(*j));

        if (!j)
                return -ENOMEM;
        j->kernel = kernel;
        j->hot = hot;
        j->event_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
        if (j->event_fd < 0) {
                free(j);
                return negative_errno();
        }
        *ret = j;
        return 0;
}

int reset_job_add_device(struct reset_job *j, const char *address, int fd, uint16_t vendor_id, uint16_t device_id) {
        struct reset_job_device *n = realloc(j->devices, sizeof(*n) * (j->n_devices + 1));

        if (!n) {
                close(fd);
                return -ENOMEM;
        }
        j->devices = n;
        n = &n[j->n_devices++];
        *n = (struct reset_job_device) { .fd = fd, .vendor_id = vendor_id, .device_id = device_id };
        snprintf(n->address, sizeof(n->address), "%s", address);
        return 0;
}

int reset_job_add_group(struct reset_job *j, int fd) {
        int *n = realloc(j->group_fds, sizeof(*n) * (j->n_group_fds + 1));

        if (!n) {
                close(fd);
                return -ENOMEM;
        }
        j->group_fds = n;
        n[j->n_group_fds++] = fd;
        return 0;
}

int reset_job_keep(struct reset_job *j, int fd) {
        int *n = realloc(j->kept_fds, sizeof(*n) * (j->n_kept_fds + 1));

        if (!n) {
                close(fd);
                return -ENOMEM;
        }
        j->kept_fds = n;
        n[j->n_kept_fds++] = fd;
        return 0;
}

static void *run(void *userdata) {
        struct reset_job *j = userdata;
        const struct kernel_ops *k = j->kernel;
        uint64_t t;
        int r = 0;

        /* D0 first: a device a user parked in runtime low power cannot be reset. */
        for (size_t i = 0; r >= 0 && i < j->n_devices; i++) {
                r = k->low_power_exit(k->data, j->devices[i].fd);
                if (r < 0)
                        j->step = "low-power exit", j->address = j->devices[i].address;
        }
        /* An empty group list is the cdev model's: the kernel lets it through
         * only when every device of the set is bound to the calling device's
         * iommufd context (vfio_pci_dev_set_hot_reset), else EINVAL, which
         * names nobody. Its hot-reset info says which device is not. */
        if (r >= 0 && j->hot && j->n_group_fds == 0 && k->hot_reset_owned) {
                struct pci_address a = { .domain = UINT32_MAX };

                r = k->hot_reset_owned(k->data, j->devices[0].fd, &a);
                if (r < 0) {
                        j->step = "ownership check (VFIO_DEVICE_GET_PCI_HOT_RESET_INFO)";
                        j->address = j->devices[0].address;
                        if (r == -EPERM)
                                pci_address_format(&a, j->not_owned);
                        if (r == -EPERM && a.domain == UINT32_MAX)
                                snprintf(j->not_owned, sizeof(j->not_owned), "?");
                }
        }
        if (r >= 0) {
                t = monotonic_usec();
                r = j->hot ? k->hot_reset(k->data, j->devices[0].fd, j->group_fds, j->n_group_fds)
                           : k->function_reset(k->data, j->devices[0].fd);
                j->kernel_usec = monotonic_usec() - t;
                if (r < 0)
                        j->step = j->hot ? "hot reset" : "function reset";
        }
        /* Did every device come back? A device that fell off the bus reads all-ones. */
        for (size_t i = 0; r >= 0 && i < j->n_devices; i++) {
                struct reset_job_device *d = &j->devices[i];

                r = k->read_ids(k->data, d->fd, &d->read_vendor, &d->read_device);
                if (r < 0) {
                        j->step = "config read-back", j->address = d->address;
                        break;
                }
                if (d->read_vendor != d->vendor_id || d->read_device != d->device_id) {
                        j->step = "config read-back", j->address = d->address;
                        j->not_back = true;
                        r = -ENODEV;
                }
        }
        j->error = r < 0 ? r : 0;
        (void) eventfd_write(j->event_fd, 1);
        return NULL;
}

int reset_job_start(struct reset_job *j) {
        int r;

        if (j->n_devices == 0)
                return -EINVAL;
        r = pthread_create(&j->thread, NULL, run, j);
        if (r != 0)
                return -r;
        j->started = true;
        return 0;
}

struct reset_job *reset_job_free(struct reset_job *j) {
        if (!j)
                return NULL;
        if (j->started)
                pthread_join(j->thread, NULL);
        for (size_t i = 0; i < j->n_devices; i++)
                close(j->devices[i].fd);
        for (size_t i = 0; i < j->n_group_fds; i++)
                close(j->group_fds[i]);
        /* Containers last: the device fds above were taken through them. */
        for (size_t i = 0; i < j->n_kept_fds; i++)
                close(j->kept_fds[i]);
        free(j->devices);
        free(j->group_fds);
        free(j->kept_fds);
        close(j->event_fd);
        free(j);
        return NULL;
}
