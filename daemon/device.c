/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bus-names.h"
#include "device.h"
#include "macro.h"
#include "strv.h"

char *device_path_from_address(const struct pci_address *a) {
        char *p;

        if (asprintf(&p, VRD_DEVICE_PATH_PREFIX "/pci_%04x_%02x_%02x_%x",
                     a->domain, a->bus, a->slot, a->function) < 0)
                return NULL;
        return p;
}

int device_address_from_path(const char *path, struct pci_address *ret) {
        const char *prefix = VRD_DEVICE_PATH_PREFIX "/pci_";
        char addr[PCI_ADDRESS_STRLEN], *p;
        size_t n = strlen(prefix);

        if (strncmp(path, prefix, n) != 0 || strlen(path + n) >= sizeof(addr))
                return -EINVAL;
        /* pci_DDDD_BB_SS_F -> DDDD:BB:SS.F */
        strcpy(addr, path + n);
        p = strrchr(addr, '_');
        if (!p)
                return -EINVAL;
        *p = '.';
        for (p = addr; *p; p++)
                if (*p == '_')
                        *p = ':';
        return pci_address_parse(addr, ret, NULL, 0);
}

int device_new(struct manager *m, const struct pci_function *fn, struct device **ret) {
        _cleanup_free_ struct device *d = calloc(1, sizeof(*d));
        int r;

        if (!d)
                return -ENOMEM;
        d->manager = m;
        d->device_fd = -EBADF;
        d->path = device_path_from_address(&fn->address);
        if (!d->path)
                return -ENOMEM;
        r = pci_function_copy(&d->fn, fn);
        if (r < 0) {
                free(d->path);
                return r;
        }
        *ret = TAKE_PTR(d);
        return 0;
}

bool device_is_managed(const struct device *d, const struct vrd_config *config) {
        return d->fn.tagged || config_manages(config, &d->fn.address);
}

struct device *devices_find(struct device *const *devices, size_t n, const struct pci_address *a) {
        size_t lo = 0, hi = n;

        while (lo < hi) {
                size_t mid = lo + (hi - lo) / 2;
                int c = pci_address_compare(&devices[mid]->fn.address, a);

                if (c == 0)
                        return devices[mid];
                if (c < 0)
                        lo = mid + 1;
                else
                        hi = mid;
        }
        return NULL;
}

struct device *device_free(struct device *d) {
        if (!d)
                return NULL;
        pci_function_done(&d->fn);
        free(d->path);
        free(d);
        return NULL;
}

void device_changed_properties(const struct pci_function *old, const struct pci_function *new,
                               const char *ret[static 8]) {
        size_t n = 0;

        if (!streq_ptr(old->driver, new->driver))
                ret[n++] = "Driver";
        if (old->iommu_group != new->iommu_group)
                ret[n++] = "IommuGroup";
        if (!strv_equal(old->reset_methods, new->reset_methods))
                ret[n++] = "ResetMethods";
        if (old->virtfn != new->virtfn || !pci_address_equal(&old->physfn, &new->physfn))
                ret[n++] = "PhysicalFunction";
        ret[n] = NULL;
}
