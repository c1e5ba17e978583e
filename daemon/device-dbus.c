/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* org.vfioresetd1.Device: one object per vfio-bound PCI function. */
#include <errno.h>
#include <stdlib.h>

#include "bus-names.h"
#include "device-dbus.h"
#include "macro.h"
#include "peer-dbus.h"
#include "strv.h"

static int property_get_address(sd_bus *bus, const char *path, const char *interface, const char *property,
                                sd_bus_message *reply, void *userdata, sd_bus_error *error) {
        struct device *d = userdata;
        char buf[PCI_ADDRESS_STRLEN];

        return sd_bus_message_append(reply, "s", pci_address_format(&d->fn.address, buf));
}

static int property_get_driver(sd_bus *bus, const char *path, const char *interface, const char *property,
                               sd_bus_message *reply, void *userdata, sd_bus_error *error) {
        struct device *d = userdata;

        return sd_bus_message_append(reply, "s", d->fn.driver ?: "");
}

static int property_get_dev_set(sd_bus *bus, const char *path, const char *interface, const char *property,
                                sd_bus_message *reply, void *userdata, sd_bus_error *error) {
        struct device *d = userdata;

        return sd_bus_message_append(reply, "o", d->dev_set ? d->dev_set->path : "/");
}

static int property_get_reset_methods(sd_bus *bus, const char *path, const char *interface, const char *property,
                                      sd_bus_message *reply, void *userdata, sd_bus_error *error) {
        struct device *d = userdata;

        return sd_bus_message_append_strv(reply, d->fn.reset_methods);
}

static int property_get_managed(sd_bus *bus, const char *path, const char *interface, const char *property,
                                sd_bus_message *reply, void *userdata, sd_bus_error *error) {
        struct device *d = userdata;

        return sd_bus_message_append(reply, "b", d->device_fd >= 0);
}

/* Peers that took this device (the index of its peers, not every peer). */
static int property_get_peers(sd_bus *bus, const char *path, const char *interface, const char *property,
                              sd_bus_message *reply, void *userdata, sd_bus_error *error) {
        struct device *d = userdata;
        int r;

        r = sd_bus_message_open_container(reply, 'a', "s");
        if (r >= 0)
                r = peer_foreach_claiming(&d->manager->peers, &d->fn.address, peer_bus_append_name, reply);
        return r < 0 ? r : sd_bus_message_close_container(reply);
}

static int property_get_ownership(sd_bus *bus, const char *path, const char *interface, const char *property,
                                  sd_bus_message *reply, void *userdata, sd_bus_error *error) {
        const struct device *d = userdata;

        return sd_bus_message_append(reply, "s", ownership_model_name(d->device_fd >= 0 ? d->model : OWNERSHIP_NONE));
}

static int property_get_physfn(sd_bus *bus, const char *path, const char *interface, const char *property,
                               sd_bus_message *reply, void *userdata, sd_bus_error *error) {
        struct device *d = userdata;
        char buf[PCI_ADDRESS_STRLEN];

        return sd_bus_message_append(reply, "s", d->fn.virtfn ? pci_address_format(&d->fn.physfn, buf) : "");
}

static const sd_bus_vtable device_vtable[] = {
        SD_BUS_VTABLE_START(0),
        SD_BUS_PROPERTY("Address", "s", property_get_address, 0, SD_BUS_VTABLE_PROPERTY_CONST),
        SD_BUS_PROPERTY("VendorId", "q", NULL, offsetof(struct device, fn.vendor_id), SD_BUS_VTABLE_PROPERTY_CONST),
        SD_BUS_PROPERTY("DeviceId", "q", NULL, offsetof(struct device, fn.device_id), SD_BUS_VTABLE_PROPERTY_CONST),
        SD_BUS_PROPERTY("Class", "u", NULL, offsetof(struct device, fn.class), SD_BUS_VTABLE_PROPERTY_CONST),
        SD_BUS_PROPERTY("Driver", "s", property_get_driver, 0, SD_BUS_VTABLE_PROPERTY_EMITS_CHANGE),
        SD_BUS_PROPERTY("IommuGroup", "i", NULL, offsetof(struct device, fn.iommu_group), SD_BUS_VTABLE_PROPERTY_EMITS_CHANGE),
        SD_BUS_PROPERTY("DevSet", "o", property_get_dev_set, 0, SD_BUS_VTABLE_PROPERTY_EMITS_CHANGE),
        SD_BUS_PROPERTY("ResetMethods", "as", property_get_reset_methods, 0, SD_BUS_VTABLE_PROPERTY_EMITS_CHANGE),
        SD_BUS_PROPERTY("Managed", "b", property_get_managed, 0, SD_BUS_VTABLE_PROPERTY_EMITS_CHANGE),
        SD_BUS_PROPERTY("Peers", "as", property_get_peers, 0, SD_BUS_VTABLE_PROPERTY_EMITS_CHANGE),
        /* beyond DESIGN.md section 5: the PF of an SR-IOV VF, "" otherwise */
        SD_BUS_PROPERTY("PhysicalFunction", "s", property_get_physfn, 0, SD_BUS_VTABLE_PROPERTY_EMITS_CHANGE),
        SD_BUS_PROPERTY("Ownership", "s", property_get_ownership, 0, SD_BUS_VTABLE_PROPERTY_EMITS_CHANGE),
        SD_BUS_PROPERTY("IommufdDevId", "u", NULL, offsetof(struct device, iommufd_devid),
                        SD_BUS_VTABLE_PROPERTY_EMITS_CHANGE),
        SD_BUS_PROPERTY("IommufdIoasId", "u", NULL, offsetof(struct device, iommufd_ioas),
                        SD_BUS_VTABLE_PROPERTY_EMITS_CHANGE),
        SD_BUS_VTABLE_END
};

static int device_object_find(sd_bus *bus, const char *path, const char *interface, void *userdata,
                              void **found, sd_bus_error *error) {
        struct manager *m = userdata;
        struct pci_address a;
        struct device *d;

        if (device_address_from_path(path, &a) < 0)
                return 0;
        d = manager_find_device(m, &a);
        if (!d)
                return 0;
        *found = d;
        return 1;
}

static int device_node_enumerator(sd_bus *bus, const char *path, void *userdata, char ***nodes, sd_bus_error *error) {
        struct manager *m = userdata;
        _cleanup_strv_free_ char **l = calloc(m->n_devices + 1, sizeof(char *));

        if (!l)
                return -ENOMEM;
        for (size_t i = 0; i < m->n_devices; i++)
                if (!(l[i] = strdup(m->devices[i]->path)))
                        return -ENOMEM;
        *nodes = TAKE_PTR(l);
        return 1;
}

int device_bus_register(struct manager *m) {
        int r;

        r = sd_bus_add_fallback_vtable(m->bus, NULL, VRD_DEVICE_PATH_PREFIX, VRD_DEVICE_IFACE,
                                       device_vtable, device_object_find, m);
        if (r < 0)
                return r;
        return sd_bus_add_node_enumerator(m->bus, NULL, VRD_DEVICE_PATH_PREFIX, device_node_enumerator, m);
}

int device_bus_emit_changed(struct device *d, const char *const *properties) {
        if (!d->manager->bus)
                return 0;
        return sd_bus_emit_properties_changed_strv(d->manager->bus, d->path, VRD_DEVICE_IFACE, (char **) properties);
}
