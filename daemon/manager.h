/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* The daemon's state: the event loop, the bus, the topology and its objects. */

#include <systemd/sd-bus.h>
#include <systemd/sd-event.h>

#include "arbiter.h"
#include "config-file.h"
#include "device.h"
#include "devset.h"
#include "holders.h"
#include "kernel.h"
#include "ownership.h"
#include "peer.h"
#include "polkit.h"
#include "topology.h"

struct udev;
struct udev_monitor;

enum uevent_source {
        UEVENT_SOURCE_AUTO,     /* udev when systemd-udevd runs, else the kernel's */
        UEVENT_SOURCE_UDEV,
        UEVENT_SOURCE_KERNEL,
};

struct device_holder {
        struct device *device;
        pid_t pid;
        char comm[17];
};

struct manager {
        sd_event *event;
        sd_bus *bus;
        struct udev *udev;
        struct udev_monitor *monitor;
        sd_event_source *monitor_source;
        sd_event_source *rescan_source; /* coalesces a burst of uevents into one rescan */
        enum uevent_source uevent_source;
        /* Functions a "remove" uevent announced: the kernel sends it before it
         * takes the device out of sysfs, so a scan may still see them. */
        struct pci_address *removed;
        size_t n_removed;

        struct topology_options topology_options;
        struct topology *topology;      /* every PCI function, as of the last scan */
        struct device **devices;        /* vfio-bound functions, sorted by address */
        size_t n_devices;
        struct dev_set **dev_sets;      /* sorted by id */
        size_t n_dev_sets;

        const struct kernel_ops *kernel;
        const struct ownership_ops *ownership;
        struct owned_group **groups;    /* groups the daemon holds open */
        size_t n_groups;
        struct peer **peers;
        size_t n_peers;
        struct reset **orphans;         /* resets whose set vanished while the kernel worked */
        size_t n_orphans;
        uint64_t last_reset_id;
        struct polkit_registry *polkit;

        char *config_path;
        struct vrd_config config;
        uint64_t quiesce_timeout_usec;  /* default deadline of a pause */

        /* Holders are looked up on demand, at most once per loop iteration. */
        uint64_t holders_stamp;
        struct device_holder *holders;
        size_t n_holders;
        struct holder *uninspected;     /* processes whose fds the last scan could not read */
        size_t n_uninspected;
};

int manager_new(const struct kernel_ops *kernel, struct manager **ret);
struct manager *manager_free(struct manager *m);

/* Connect to the bus, scan, start following uevents, take the bus name. */
int manager_start(struct manager *m);
int manager_run(struct manager *m);

/* Remember (or, when added again, forget) a function a uevent said was removed. */
void manager_note_removal(struct manager *m, const struct pci_address *a, bool removed);

/* Rescan sysfs and bring objects in line, announcing every change on the bus. */
int manager_refresh(struct manager *m);

struct device *manager_find_device(struct manager *m, const struct pci_address *a);
/* An address argument to a vfio device, or error naming the address and what it is instead. */
int manager_lookup_device(struct manager *m, const char *address, struct device **ret, sd_bus_error *error);
/* The same for a method call whose first argument is the address. */
int manager_read_device(struct manager *m, sd_bus_message *msg, struct device **ret, sd_bus_error *error);
struct dev_set *manager_find_dev_set(struct manager *m, const char *id);

/* Holders of every vfio device (other than this daemon), fresh for this loop iteration. */
int manager_get_holders(struct manager *m, const struct device_holder **ret, size_t *n_ret);
/* The processes of that scan whose fds could not be read: any of them may hold
 * a member of s. None when the daemon holds every group of s itself. */
int manager_get_uninspected(struct manager *m, const struct dev_set *s, const struct holder **ret, size_t *n_ret);

/* The bus faces, in manager-dbus.c, device-dbus.c and devset-dbus.c. */
int manager_bus_register(struct manager *m);
int device_bus_register(struct manager *m);
int dev_set_bus_register(struct manager *m);
int device_bus_emit_changed(struct device *d, const char **properties);
int method_reset_device(sd_bus_message *msg, void *userdata, sd_bus_error *error);
int method_dev_set_reset(sd_bus_message *msg, void *userdata, sd_bus_error *error);
int method_pause_complete(sd_bus_message *msg, void *userdata, sd_bus_error *error);
int method_take_device(sd_bus_message *msg, void *userdata, sd_bus_error *error);
int method_release_device(sd_bus_message *msg, void *userdata, sd_bus_error *error);
int method_watch(sd_bus_message *msg, void *userdata, sd_bus_error *error);
int method_unwatch(sd_bus_message *msg, void *userdata, sd_bus_error *error);

/* The daemon's main(), with the kernel backend to use (tests pass a double). */
int vfio_resetd_main(int argc, char *argv[], const struct kernel_ops *kernel);
int dev_set_bus_emit_changed(struct dev_set *s, const char **properties);
