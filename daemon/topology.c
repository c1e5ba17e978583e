/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <dirent.h>
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <libudev.h>

#include "log.h"
#include "macro.h"
#include "strv.h"
#include "topology.h"

DEFINE_TRIVIAL_CLEANUP_FUNC(struct udev_enumerate *, udev_enumerate_unref)

void pci_function_done(struct pci_function *f) {
        free(f->syspath);
        free(f->driver);
        free(f->slot);
        free(f->vfio_cdev);
        strv_free(f->reset_methods);
        *f = (struct pci_function) { .iommu_group = -1 };
}

static int strdup_or_null(char **dst, const char *src) {
        *dst = NULL;
        return src && !(*dst = strdup(src)) ? -ENOMEM : 0;
}

int pci_function_copy(struct pci_function *dst, const struct pci_function *src) {
        *dst = *src;
        dst->reset_methods = strv_copy(src->reset_methods);
        if (strdup_or_null(&dst->syspath, src->syspath) < 0 ||
            strdup_or_null(&dst->driver, src->driver) < 0 ||
            strdup_or_null(&dst->slot, src->slot) < 0 ||
            strdup_or_null(&dst->vfio_cdev, src->vfio_cdev) < 0 ||
            !dst->reset_methods) {
                pci_function_done(dst);
                return -ENOMEM;
        }
        return 0;
}

struct topology *topology_free(struct topology *t) {
        if (!t)
                return NULL;
        for (size_t i = 0; i < t->n_functions; i++)
                pci_function_done(&t->functions[i]);
        free(t->functions);
        free(t);
        return NULL;
}

static int cmp_function(const void *a, const void *b) {
        return pci_address_compare(&((const struct pci_function *) a)->address,
                                   &((const struct pci_function *) b)->address);
}

const struct pci_function *topology_find(const struct topology *t, const struct pci_address *a) {
        struct pci_function key = { .address = *a };

        if (!t || t->n_functions == 0)
                return NULL;
        return bsearch(&key, t->functions, t->n_functions, sizeof(key), cmp_function);
}

void topology_forget(struct topology *t, const struct pci_address *a) {
        struct pci_function *f = (struct pci_function *) topology_find(t, a);
        size_t i;

        if (!f)
                return;
        i = (size_t) (f - t->functions);
        pci_function_done(f);
        memmove(f, f + 1, sizeof(*f) * (t->n_functions - i - 1));
        t->n_functions--;
}

/* The last path element of a sysfs link, e.g. "5" for iommu_group -> ../../kernel/iommu_groups/5. */
static char *link_basename(const char *dir, const char *name) {
        char path[PATH_MAX], target[PATH_MAX];
        const char *slash;
        ssize_t n;

        if (snprintf(path, sizeof(path), "%s/%s", dir, name) >= (int) sizeof(path))
                return NULL;
        n = readlink(path, target, sizeof(target) - 1);
        if (n < 0)
                return NULL;
        target[n] = '\0';
        slash = strrchr(target, '/');
        return strdup(slash ? slash + 1 : target);
}

bool driver_is_vfio(const char *driver, const struct topology_options *o) {
        _cleanup_free_ char *module = NULL;
        char dir[PATH_MAX], holder[PATH_MAX];

        if (!driver)
                return false;
        if (strcmp(driver, "vfio-pci") == 0)
                return true;
        if (o && strv_contains(o->extra_vfio_drivers, driver))
                return true;
        /* Variant drivers (mlx5_vfio_pci, hisi_acc_vfio_pci, ...) are the modules
         * that vfio_pci_core lists as its holders. */
        snprintf(dir, sizeof(dir), "/sys/bus/pci/drivers/%s", driver);
        module = link_basename(dir, "module");
        if (!module)
                return false;
        snprintf(holder, sizeof(holder), "/sys/module/vfio_pci_core/holders/%s", module);
        return access(holder, F_OK) == 0;
}

static int sysattr_hex(struct udev_device *d, const char *attr, unsigned long *ret) {
        const char *v = udev_device_get_sysattr_value(d, attr);
        char *end;

        if (!v)
                return -ENOENT;
        errno = 0;
        *ret = strtoul(v, &end, 16);
        if (errno != 0 || end == v)
                return -EINVAL;
        return 0;
}

/* /sys/bus/pci/slots/NAME/address holds "DDDD:BB:SS" for every slot the
 * platform or a hotplug driver registered. */
static char *slot_name_for(const struct pci_address *a) {
        _cleanup_(closedirp) DIR *d = opendir("/sys/bus/pci/slots");
        struct dirent *de;
        char want[32];

        if (!d)
                return NULL;
        snprintf(want, sizeof(want), "%04x:%02x:%02x", a->domain, a->bus, a->slot);
        while ((de = readdir(d))) {
                char path[PATH_MAX], buf[64] = "";
                _cleanup_(fclosep) FILE *f = NULL;

                if (de->d_name[0] == '.')
                        continue;
                snprintf(path, sizeof(path), "/sys/bus/pci/slots/%s/address", de->d_name);
                f = fopen(path, "re");
                if (!f || !fgets(buf, sizeof(buf), f))
                        continue;
                buf[strcspn(buf, "\n")] = '\0';
                if (strcasecmp(buf, want) == 0)
                        return strdup(de->d_name);
        }
        return NULL;
}

/* The kernel gives a function a slot dev_set when pci_probe_reset_slot()
 * succeeds on its slot, i.e. when the slot's hotplug driver can reset it
 * (drivers/pci/pci.c, drivers/vfio/pci/vfio_pci_core.c); on x86 that is only
 * pciehp. pciehp registers the slot on the secondary bus of the port whose
 * hotplug service device it binds (drivers/pci/hotplug/pciehp_core.c), and
 * that service device is a child of the port on the pci_express bus, named
 * "<port>:pcie" plus the port type and the service (drivers/pci/pcie/portdrv.c:
 * pcie004 on a root port, pcie204 on a switch downstream port). So: a child of
 * the port on pci_express bound to pciehp, whatever its name. */
static bool slot_resettable(struct udev_device *bridge) {
        const char *port = udev_device_get_syspath(bridge);
        _cleanup_(closedirp) DIR *d = opendir(port);
        struct dirent *de;

        while (d && (de = readdir(d))) {
                _cleanup_free_ char *subsystem = NULL, *driver = NULL;
                char child[PATH_MAX];

                if (de->d_name[0] == '.' ||
                    snprintf(child, sizeof(child), "%s/%s", port, de->d_name) >= (int) sizeof(child))
                        continue;
                subsystem = link_basename(child, "subsystem");
                if (!streq_ptr(subsystem, "pci_express"))
                        continue;
                driver = link_basename(child, "driver");
                if (streq_ptr(driver, "pciehp"))
                        return true;
        }
        return false;
}

/* libudev builds TAGS/CURRENT_TAGS (":a:b:") from the tags it knows; a
 * device seen only through its uevent file (no udev database) has them there. */
static bool has_tag_property(struct udev_device *d, const char *property) {
        const char *v = udev_device_get_property_value(d, property);

        return v && strstr(v, ":vfio-resetd:");
}

static int read_function(struct udev_device *d, const struct topology_options *o, struct pci_function *f) {
        struct udev_device *parent;
        _cleanup_free_ char *group = NULL, *physfn = NULL;
        const char *syspath = udev_device_get_syspath(d), *driver, *methods;
        unsigned long v;
        char vfio_dev[PATH_MAX];
        int r;

        r = pci_address_parse(udev_device_get_sysname(d), &f->address, NULL, 0);
        if (r < 0)
                return r;
        f->syspath = strdup(syspath);
        if (!f->syspath)
                return -ENOMEM;

        driver = udev_device_get_driver(d);
        if (driver && !(f->driver = strdup(driver)))
                return -ENOMEM;
        f->vfio = driver_is_vfio(driver, o);

        if (sysattr_hex(d, "vendor", &v) >= 0)
                f->vendor_id = (uint16_t) v;
        if (sysattr_hex(d, "device", &v) >= 0)
                f->device_id = (uint16_t) v;
        if (sysattr_hex(d, "class", &v) >= 0)
                f->class = (uint32_t) v;

        group = link_basename(syspath, "iommu_group");
        f->iommu_group = group ? atoi(group) : -1;

        physfn = link_basename(syspath, "physfn");
        if (physfn && pci_address_parse(physfn, &f->physfn, NULL, 0) >= 0)
                f->virtfn = true;

        parent = udev_device_get_parent(d);
        if (parent && streq_ptr(udev_device_get_subsystem(parent), "pci") &&
            pci_address_parse(udev_device_get_sysname(parent), &f->parent, NULL, 0) >= 0) {
                f->has_parent = true;
                f->slot = slot_name_for(&f->address);
                f->slot_resettable = f->slot && slot_resettable(parent);
        } else
                f->root_bus = true;

        f->tagged = udev_device_has_current_tag(d, "vfio-resetd") > 0 || has_tag_property(d, "CURRENT_TAGS") ||
                    has_tag_property(d, "TAGS");

        methods = udev_device_get_sysattr_value(d, "reset_method");
        f->reset_methods = strv_split_whitespace(methods);
        if (!f->reset_methods)
                return -ENOMEM;

        snprintf(vfio_dev, sizeof(vfio_dev), "%s/vfio-dev", syspath);
        {
                _cleanup_(closedirp) DIR *vd = opendir(vfio_dev);
                struct dirent *de;

                while (vd && (de = readdir(vd)))
                        if (strncmp(de->d_name, "vfio", 4) == 0) {
                                f->vfio_cdev = strdup(de->d_name);
                                break;
                        }
        }
        return 0;
}

int topology_scan(struct udev *udev, const struct topology_options *o, struct topology **ret) {
        _cleanup_(udev_enumerate_unrefp) struct udev_enumerate *e = NULL;
        _cleanup_(topology_freep) struct topology *t = NULL;
        struct udev_list_entry *entry;
        int r;

        t = calloc(1, sizeof(*t));
        e = udev_enumerate_new(udev);
        if (!t || !e)
                return -ENOMEM;
        r = udev_enumerate_add_match_subsystem(e, "pci");
        if (r < 0)
                return r;
        r = udev_enumerate_scan_devices(e);
        if (r < 0)
                return log_error_errno(r, "Failed to enumerate PCI devices: %m");

        udev_list_entry_foreach(entry, udev_enumerate_get_list_entry(e)) {
                struct udev_device *d = udev_device_new_from_syspath(udev, udev_list_entry_get_name(entry));
                struct pci_function *n;

                if (!d)
                        continue;       /* gone since the scan: the next event rescans */
                n = realloc(t->functions, sizeof(*n) * (t->n_functions + 1));
                if (!n) {
                        udev_device_unref(d);
                        return -ENOMEM;
                }
                t->functions = n;
                n = &t->functions[t->n_functions];
                *n = (struct pci_function) { .iommu_group = -1 };
                r = read_function(d, o, n);
                udev_device_unref(d);
                if (r == -ENOMEM) {
                        pci_function_done(n);
                        return r;
                }
                if (r < 0) {
                        log_debug("Ignoring PCI device %s: cannot read it", udev_list_entry_get_name(entry));
                        pci_function_done(n);
                        continue;
                }
                t->n_functions++;
        }

        qsort(t->functions, t->n_functions, sizeof(*t->functions), cmp_function);
        *ret = TAKE_PTR(t);
        return 0;
}
