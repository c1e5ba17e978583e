/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* org.vfioresetd1.Manager at /org/vfioresetd1, and the ObjectManager over all objects. */
#include <errno.h>

#include "arbiter-dbus.h"
#include "bus-address.h"
#include "bus-names.h"
#include "device-dbus.h"
#include "devset-dbus.h"
#include "log.h"
#include "macro.h"
#include "manager-dbus.h"
#include "peer-dbus.h"

static int method_get_device(sd_bus_message *msg, void *userdata, sd_bus_error *error) {
        struct manager *m = userdata;
        struct device *d;
        int r;

        r = bus_read_device(m, msg, &d, error);
        if (r < 0)
                return r;
        return sd_bus_reply_method_return(msg, "o", d->path);
}

static int method_get_dev_set(sd_bus_message *msg, void *userdata, sd_bus_error *error) {
        struct manager *m = userdata;
        struct device *d;
        int r;

        r = bus_read_device(m, msg, &d, error);
        if (r < 0)
                return r;
        struct dev_set *s;

        r = bus_device_dev_set(d, &s, error);
        if (r < 0)
                return r;
        return sd_bus_reply_method_return(msg, "o", s->path);
}

static const sd_bus_vtable manager_vtable[] = {
        SD_BUS_VTABLE_START(0),
        SD_BUS_METHOD_WITH_NAMES("GetDevice", "s", SD_BUS_PARAM(address), "o", SD_BUS_PARAM(device),
                                 method_get_device, SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_METHOD_WITH_NAMES("GetDevSet", "s", SD_BUS_PARAM(address), "o", SD_BUS_PARAM(devset),
                                 method_get_dev_set, SD_BUS_VTABLE_UNPRIVILEGED),
        /* the reset (arbiter-dbus.c) */
        SD_BUS_METHOD_WITH_NAMES("ResetDevice", "sa{sv}", SD_BUS_PARAM(address) SD_BUS_PARAM(options), "ost",
                                 SD_BUS_PARAM(devset) SD_BUS_PARAM(result) SD_BUS_PARAM(duration_usec),
                                 method_reset_device, SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_METHOD_WITH_NAMES("PauseComplete", "t", SD_BUS_PARAM(reset_id), NULL,,
                                 method_pause_complete, SD_BUS_VTABLE_UNPRIVILEGED),
        /* peers (peer-dbus.c) */
        SD_BUS_METHOD_WITH_NAMES("TakeDevice", "s", SD_BUS_PARAM(address), "hhb",
                                 SD_BUS_PARAM(device) SD_BUS_PARAM(iommu) SD_BUS_PARAM(paused),
                                 method_take_device, SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_METHOD_WITH_NAMES("ReleaseDevice", "s", SD_BUS_PARAM(address), NULL,,
                                 method_release_device, SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_METHOD_WITH_NAMES("Watch", "s", SD_BUS_PARAM(address), NULL,,
                                 method_watch, SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_METHOD_WITH_NAMES("Unwatch", "s", SD_BUS_PARAM(address), NULL,,
                                 method_unwatch, SD_BUS_VTABLE_UNPRIVILEGED),
        /* unicast to the peers of one set */
        SD_BUS_SIGNAL_WITH_NAMES("Pause", "otstas", SD_BUS_PARAM(devset) SD_BUS_PARAM(reset_id) SD_BUS_PARAM(type)
                                 SD_BUS_PARAM(deadline_usec) SD_BUS_PARAM(addresses), 0),
        SD_BUS_SIGNAL_WITH_NAMES("Resume", "ots", SD_BUS_PARAM(devset) SD_BUS_PARAM(reset_id) SD_BUS_PARAM(result), 0),
        /* broadcast */
        SD_BUS_SIGNAL_WITH_NAMES("ResetStarted", "ot", SD_BUS_PARAM(devset) SD_BUS_PARAM(reset_id), 0),
        SD_BUS_SIGNAL_WITH_NAMES("ResetFinished", "otst", SD_BUS_PARAM(devset) SD_BUS_PARAM(reset_id)
                                 SD_BUS_PARAM(result) SD_BUS_PARAM(duration_usec), 0),
        SD_BUS_VTABLE_END
};

static void on_object_added(void *userdata, const char *path) {
        struct manager *m = userdata;
        int r = sd_bus_emit_object_added(m->bus, path);

        if (r < 0)
                log_warning_errno(r, "Failed to announce %s: %m", path);
}

static void on_object_removed(void *userdata, const char *path) {
        struct manager *m = userdata;
        int r = sd_bus_emit_object_removed(m->bus, path);

        if (r < 0)
                log_warning_errno(r, "Failed to announce removal of %s: %m", path);
}

static void on_device_changed(void *userdata, struct device *d, const char *const *properties) {
        (void) device_bus_emit_changed(d, properties);
}

static void on_dev_set_changed(void *userdata, struct dev_set *s, const char *const *properties) {
        (void) dev_set_bus_emit_changed(s, properties);
}

int manager_bus_start(struct manager *m) {
        struct quiesce_adapter *systemd;
        int r;

        r = sd_bus_open_system(&m->bus);
        if (r < 0)
                return log_error_errno(r, "Failed to connect to the system bus: %m");
        (void) sd_bus_set_exit_on_disconnect(m->bus, true);
        r = sd_bus_attach_event(m->bus, m->event, SD_EVENT_PRIORITY_NORMAL);
        if (r < 0)
                return log_error_errno(r, "Failed to attach the bus to the event loop: %m");

        r = sd_bus_add_object_vtable(m->bus, NULL, VRD_ROOT_PATH, VRD_MANAGER_IFACE, manager_vtable, m);
        if (r >= 0)
                r = sd_bus_add_object_manager(m->bus, NULL, VRD_ROOT_PATH);
        if (r >= 0)
                r = device_bus_register(m);
        if (r >= 0)
                r = dev_set_bus_register(m);
        if (r >= 0)
                r = peer_bus_track(m);
        if (r < 0)
                return log_error_errno(r, "Failed to register bus objects: %m");

        /* Objects come and go unannounced until the name is ours (see
         * manager_bus_request_name): nobody could hear of them, and each
         * InterfacesAdded reads every property, Holders included. */
        m->events = (struct manager_events) {
                .device_changed = on_device_changed,
                .dev_set_changed = on_dev_set_changed,
        };
        m->events_userdata = m;
        m->arbiter.ops = &arbiter_bus_ops;
        m->arbiter.userdata = m;

        /* A holder's unit is frozen rather than its process stopped, where systemd can. */
        r = quiesce_systemd_new(m->bus, m->event, &systemd);
        if (r < 0)
                return log_error_errno(r, "Failed to set up the systemd quiesce adapter: %m");
        manager_add_adapter(m, systemd, true);
        return 0;
}

int manager_bus_request_name(struct manager *m) {
        int r;

        r = sd_bus_request_name(m->bus, VRD_BUS_NAME, 0);
        if (r < 0)
                return log_error_errno(r, "Failed to acquire bus name %s: %m", VRD_BUS_NAME);
        /* From now on a client that watches the name hears of every change. */
        m->events.object_added = on_object_added;
        m->events.object_removed = on_object_removed;
        log_info("Serving %s: %zu vfio devices in %zu dev_sets", VRD_BUS_NAME, m->n_devices, m->n_dev_sets);
        return 0;
}
