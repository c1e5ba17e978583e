/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* TakeDevice, ReleaseDevice, Watch, Unwatch: how a program becomes a peer. */
#include <errno.h>

#include "arbiter.h"
#include "bus-names.h"
#include "log.h"
#include "macro.h"
#include "manager.h"
#include "ownership.h"
#include "peer.h"
#include "polkit.h"

/* Read the address, find the device, check the caller may take or watch. r <= 0: return r (or 1). */
static int begin(sd_bus_message *msg, struct manager *m, sd_bus_message_handler_t handler, struct device **ret,
                 sd_bus_error *error) {
        int r;

        r = manager_read_device(m, msg, ret, error);
        if (r < 0)
                return r;
        return polkit_verify(&m->polkit, msg, VRD_ACTION_TAKE, handler, m, error);
}

int method_take_device(sd_bus_message *msg, void *userdata, sd_bus_error *error) {
        struct manager *m = userdata;
        const char *sender = sd_bus_message_get_sender(msg);
        char address[PCI_ADDRESS_STRLEN];
        struct peer *p, *other;
        struct device *d;
        int r, iommu;

        r = begin(msg, m, method_take_device, &d, error);
        if (r <= 0)
                return r < 0 ? r : 1;
        pci_address_format(&d->fn.address, address);
        if (d->device_fd < 0)
                return sd_bus_error_setf(error, VRD_ERROR_NOT_MANAGED,
                                         "%s is not managed by vfio-resetd (tag it \"vfio-resetd\" in udev or list "
                                         "it under [Manage] in the config)%s", address,
                                         d->acquire_error == -EBUSY ? "; and another process holds its group" : "");
        /* The group is the kernel's isolation unit, so it is the unit of claims. */
        p = peer_find(m, sender);
        other = peer_claiming_group(m, d->fn.iommu_group, p);
        if (other)
                return sd_bus_error_setf(error, VRD_ERROR_BUSY, "IOMMU group %d of %s is claimed by peer %s",
                                         d->fn.iommu_group, address, other->name);
        iommu = m->ownership->iommu_fd(d);
        if (iommu < 0)
                return sd_bus_error_set_errnof(error, -iommu, "%s has no IOMMU context: %m", address);
        r = peer_get(m, sender, &p);
        if (r < 0)
                return r;
        r = peer_add(&p->claims, &p->n_claims, &d->fn.address);
        if (r < 0)
                return r;
        if (r > 0) {
                log_info("Peer %s took %s", sender, address);
                peer_emit_changes(m, &d->fn.address);
        }
        r = arbiter_joined_paused(d->dev_set, sender);
        if (r < 0)
                return r;
        /* sd-bus duplicates the fds into the reply: the daemon keeps its own. */
        return sd_bus_reply_method_return(msg, "hhb", d->device_fd, iommu, arbiter_paused(d->dev_set));
}

static int drop(sd_bus_message *msg, struct manager *m, bool claim, sd_bus_error *error) {
        const char *address;
        struct pci_address a;
        char err[160];
        struct peer *p;
        bool had;
        int r;

        r = sd_bus_message_read(msg, "s", &address);
        if (r < 0)
                return r;
        if (pci_address_parse(address, &a, err, sizeof(err)) < 0)
                return sd_bus_error_setf(error, SD_BUS_ERROR_INVALID_ARGS, "Invalid PCI address: %s", err);
        p = peer_find(m, sd_bus_message_get_sender(msg));
        had = p && (claim ? peer_remove(p->claims, &p->n_claims, &a) : peer_remove(p->watches, &p->n_watches, &a));
        if (!had)
                return sd_bus_error_setf(error, SD_BUS_ERROR_INVALID_ARGS, "%s did not %s %s",
                                         sd_bus_message_get_sender(msg), claim ? "take" : "watch", address);
        peer_gc(p);
        peer_emit_changes(m, &a);
        arbiter_peer_gone(m, sd_bus_message_get_sender(msg));
        return sd_bus_reply_method_return(msg, NULL);
}

int method_release_device(sd_bus_message *msg, void *userdata, sd_bus_error *error) {
        return drop(msg, userdata, true, error);
}

int method_unwatch(sd_bus_message *msg, void *userdata, sd_bus_error *error) {
        return drop(msg, userdata, false, error);
}

int method_watch(sd_bus_message *msg, void *userdata, sd_bus_error *error) {
        struct manager *m = userdata;
        struct device *d;
        struct peer *p;
        int r;

        r = begin(msg, m, method_watch, &d, error);
        if (r <= 0)
                return r < 0 ? r : 1;
        r = peer_get(m, sd_bus_message_get_sender(msg), &p);
        if (r < 0)
                return r;
        r = peer_add(&p->watches, &p->n_watches, &d->fn.address);
        if (r < 0)
                return r;
        if (r > 0)
                peer_emit_changes(m, &d->fn.address);
        r = arbiter_joined_paused(d->dev_set, p->name);
        if (r < 0)
                return r;
        return sd_bus_reply_method_return(msg, NULL);
}
