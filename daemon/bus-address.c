/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <errno.h>

#include "bus-address.h"
#include "bus-names.h"
#include "macro.h"

static int lookup_device(struct manager *m, const char *address, struct device **ret, sd_bus_error *error) {
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
        f = m->topology ? topology_find(m->topology, &a) : NULL;
        if (!f)
                return sd_bus_error_setf(error, VRD_ERROR_NO_SUCH_DEVICE, "No PCI device %s on this machine", buf);
        if (!f->driver)
                return sd_bus_error_setf(error, VRD_ERROR_NO_SUCH_DEVICE,
                                         "PCI device %s has no driver; bind it to vfio-pci first", buf);
        return sd_bus_error_setf(error, VRD_ERROR_NO_SUCH_DEVICE,
                                 "PCI device %s is bound to %s, not to a vfio-pci driver", buf, f->driver);
}

int bus_read_device(struct manager *m, sd_bus_message *msg, struct device **ret, sd_bus_error *error) {
        const char *address;
        int r;

        r = sd_bus_message_read(msg, "s", &address);
        if (r < 0)
                return r;
        return lookup_device(m, address, ret, error);
}

int bus_device_dev_set(const struct device *d, struct dev_set **ret, sd_bus_error *error) {
        char buf[PCI_ADDRESS_STRLEN];

        if (!d->dev_set)
                return sd_bus_error_setf(error, VRD_ERROR_NO_SUCH_DEVICE, "%s is in no dev_set right now; try again",
                                         pci_address_format(&d->fn.address, buf));
        *ret = d->dev_set;
        return 0;
}
