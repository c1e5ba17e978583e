/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* The daemon's state: the event loop, the topology and its objects, and the
 * parts below it (ownership, peers, arbiter), whose events the manager wires
 * to one another. It knows nothing of D-Bus: what the bus must hear goes out
 * through struct manager_events, which the bus face (manager-dbus.c) fills. */

#include <systemd/sd-bus.h>
#include <systemd/sd-event.h>

#include "arbiter.h"
#include "config-file.h"
#include "device.h"
#include "devset.h"
#include "fdstore.h"
#include "holders.h"
#include "kernel.h"
#include "ownership.h"
#include "peer.h"
#include "polkit.h"
#include "quiesce.h"
#include "topology.h"

struct udev;
struct udev_monitor;

enum uevent_source {
        UEVENT_SOURCE_AUTO,     /* udev when systemd-udevd runs, else the kernel's */
        UEVENT_SOURCE_UDEV,
        UEVENT_SOURCE_KERNEL,
};

/* What the bus must announce. userdata is manager.events_userdata. */
struct manager_events {
        void (*object_added)(void *userdata, const char *path);
        void (*object_removed)(void *userdata, const char *path);
        void (*device_changed)(void *userdata, struct device *d, const char *const *properties);
        void (*dev_set_changed)(void *userdata, struct dev_set *s, const char *const *properties);
};

struct manager {
        sd_event *event;
        sd_bus *bus;                    /* the bus faces' connection */
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
        struct fdstore fdstore;         /* fds passed at start, until ownership takes them back */
        struct ownership ownership;
        struct peer_registry peers;
        struct arbiter arbiter;
        struct quiesce_adapter *adapters[4];    /* the arbiter's, in order of preference */
        size_t n_adapters;
        struct polkit_registry *polkit;

        char *config_path;
        struct vrd_config config;
        uint64_t quiesce_timeout_usec;  /* default deadline of a pause */
        bool stopping;

        struct manager_events events;
        void *events_userdata;
        /* The bus face's: dev_sets whose PausedPeers change waits for an idle loop. */
        char **bus_paused_peers_pending;
        sd_event_source *bus_paused_peers_flush;

        /* Holders are looked up on demand, at most once per loop iteration. */
        uint64_t holders_stamp;
        struct device_holder *holders;
        size_t n_holders;
        struct holder *uninspected;     /* processes whose fds the last scan could not read */
        size_t n_uninspected;
};

int manager_new(const struct kernel_ops *kernel, struct manager **ret);
struct manager *manager_free(struct manager *m);

/* One more quiesce adapter for borrowed resets: before the others when
 * preferred (a unit is frozen rather than its process stopped). Owned by m. */
void manager_add_adapter(struct manager *m, struct quiesce_adapter *a, bool preferred);

/* Read the config, follow uevents, scan; the bus face is registered before. */
int manager_start(struct manager *m);
int manager_run(struct manager *m);
/* SIGTERM: stop taking requests, let resets under way end, then leave the loop. */
void manager_stop(struct manager *m);

/* Remember (or, when added again, forget) a function a uevent said was removed. */
void manager_note_removal(struct manager *m, const struct pci_address *a, bool removed);

/* Rescan sysfs and bring objects in line, announcing every change. On
 * failure nothing changed. */
int manager_refresh(struct manager *m);

struct device *manager_find_device(struct manager *m, const struct pci_address *a);
struct dev_set *manager_find_dev_set(struct manager *m, const char *id);

/* Holders of every vfio device (other than this daemon), fresh for this loop iteration. */
int manager_get_holders(struct manager *m, const struct device_holder **ret, size_t *n_ret);
/* The processes of that scan whose fds could not be read: any of them may hold
 * a member of s. None when the daemon holds every group of s itself. */
int manager_get_uninspected(struct manager *m, const struct dev_set *s, const struct holder **ret, size_t *n_ret);

/* Tell the bus (when one listens). */
void manager_emit_device_changed(struct manager *m, struct device *d, const char *const *properties);
void manager_emit_dev_set_changed(struct manager *m, struct dev_set *s, const char *const *properties);
/* Peers of a device changed: its Peers and its set's. */
void manager_emit_peers_changed(struct manager *m, const struct pci_address *a);
