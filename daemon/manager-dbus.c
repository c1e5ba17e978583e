/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* org.vfioresetd1.Manager at /org/vfioresetd1, and the ObjectManager over all objects. */
#include <errno.h>

#include "bus-names.h"
#include "macro.h"
#include "manager.h"

int manager_lookup_device(struct manager *m, const char *address, struct device **ret, sd_bus_error *error) {
        const struct pci_function *f;
        struct pci_address a;
        char err[160], buf[PCI_ADDRESS_STRLEN];
        struct device *d;

        if (pci_address_parse(address, &a, err, sizeof(err)) < 0)
                return sd_bus_error_setf(error, SD_BUS_ERROR_INVALID_ARGS, "Invalid PCI address: %s", err);
        d = manager_find_device(m, &a);
        if (d) {
                *ret = d;
                return 0;
        }
        pci_address_format(&a, buf);
        f = topology_find(m->topology, &a);
        if (!f)
                return sd_bus_error_setf(error, VRD_ERROR_NO_SUCH_DEVICE, "No PCI device %s on this machine", buf);
        if (!f->driver)
                return sd_bus_error_setf(error, VRD_ERROR_NO_SUCH_DEVICE,
                                         "PCI device %s has no driver; bind it to vfio-pci first", buf);
        return sd_bus_error_setf(error, VRD_ERROR_NO_SUCH_DEVICE,
                                 "PCI device %s is bound to %s, not to a vfio-pci driver", buf, f->driver);
}

int manager_read_device(struct manager *m, sd_bus_message *msg, struct device **ret, sd_bus_error *error) {
        const char *address;
        int r;

        r = sd_bus_message_read(msg, "s", &address);
        if (r < 0)
                return r;
        return manager_lookup_device(m, address, ret, error);
}

static int method_get_device(sd_bus_message *msg, void *userdata, sd_bus_error *error) {
        struct manager *m = userdata;
        struct device *d;
        int r;

        r = manager_read_device(m, msg, &d, error);
        if (r < 0)
                return r;
        return sd_bus_reply_method_return(msg, "o", d->path);
}

static int method_get_dev_set(sd_bus_message *msg, void *userdata, sd_bus_error *error) {
        struct manager *m = userdata;
        struct device *d;
        int r;

        r = manager_read_device(m, msg, &d, error);
        if (r < 0)
                return r;
        if (!d->dev_set)        /* cannot happen: every vfio device is in a set */
                return sd_bus_error_setf(error, SD_BUS_ERROR_FAILED, "Device %s has no dev_set", d->path);
        return sd_bus_reply_method_return(msg, "o", d->dev_set->path);
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

int manager_bus_register(struct manager *m) {
        int r;

        r = sd_bus_add_object_vtable(m->bus, NULL, VRD_ROOT_PATH, VRD_MANAGER_IFACE, manager_vtable, m);
        if (r < 0)
                return r;
        r = sd_bus_add_object_manager(m->bus, NULL, VRD_ROOT_PATH);
        if (r < 0)
                return r;
        r = device_bus_register(m);
        if (r < 0)
                return r;
        return dev_set_bus_register(m);
}
