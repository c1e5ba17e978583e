/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "bus-address.h"
#include "bus-names.h"
#include "log.h"
#include "macro.h"
#include "peer-dbus.h"
#include "polkit.h"

static int on_name_owner_changed(sd_bus_message *msg, void *userdata, sd_bus_error *error) {
        struct manager *m = userdata;
        const char *name, *old_owner, *new_owner;

        if (sd_bus_message_read(msg, "sss", &name, &old_owner, &new_owner) < 0)
                return 0;
        /* A unique name that loses its owner is a connection that left. */
        if (name[0] == ':' && !*new_owner)
                peer_registry_name_lost(&m->peers, name);
        return 0;
}

int peer_bus_track(struct manager *m) {
        return sd_bus_match_signal_async(m->bus, NULL, "org.freedesktop.DBus", "/org/freedesktop/DBus",
                                         "org.freedesktop.DBus", "NameOwnerChanged", on_name_owner_changed, NULL, m);
}

int peer_bus_append_name(struct peer *p, void *reply) {
        return sd_bus_message_append(reply, "s", p->name);
}

struct pid_query {
        struct manager *manager;
        char name[];
};

/* The bus driver answers in order: a name that left before it is looked up
 * has no owner, even if its NameOwnerChanged went by before the peer existed
 * (a call that waited for polkit). */
static int on_pid(sd_bus_message *reply, void *userdata, sd_bus_error *ret_error) {
        struct pid_query *q = userdata;
        const sd_bus_error *e = sd_bus_message_get_error(reply);
        struct peer *p = peer_find(&q->manager->peers, q->name);
        uint32_t pid;

        if (e && sd_bus_error_has_name(e, "org.freedesktop.DBus.Error.NameHasNoOwner"))
                peer_registry_name_lost(&q->manager->peers, q->name);
        else if (e)
                log_debug("Cannot learn the pid of peer %s: %s", q->name, e->message);
        else if (p && sd_bus_message_read(reply, "u", &pid) >= 0)
                p->pid = (pid_t) pid;
        return 0;
}

/* The peer for the sender of msg, made and looked up on the bus if new. */
static int get_peer(struct manager *m, const char *name, struct peer **ret) {
        struct pid_query *q;
        sd_bus_slot *slot;
        int r;

        r = peer_get(&m->peers, name, ret);
        if (r <= 0)
                return r;
        q = malloc(sizeof(*q) + strlen(name) + 1);
        if (!q)
                return 0;       /* the pid is only for messages */
        q->manager = m;
        strcpy(q->name, name);
        r = sd_bus_call_method_async(m->bus, &slot, "org.freedesktop.DBus", "/org/freedesktop/DBus",
                                     "org.freedesktop.DBus", "GetConnectionUnixProcessID", on_pid, q, "s", name);
        if (r < 0) {
                free(q);
                return 0;
        }
        (void) sd_bus_slot_set_destroy_callback(slot, free);
        /* The bus takes a reference of its own to a floating slot: drop ours. */
        (void) sd_bus_slot_set_floating(slot, 1);
        sd_bus_slot_unref(slot);
        return 0;
}

/* Read the address, find the device, check the caller may take or watch. r <= 0: return r (or 1). */
static int begin(sd_bus_message *msg, struct manager *m, sd_bus_message_handler_t handler, struct device **ret,
                 struct dev_set **ret_set, sd_bus_error *error) {
        int r;

        r = bus_read_device(m, msg, ret, error);
        if (r >= 0)
                r = bus_device_dev_set(*ret, ret_set, error);
        if (r < 0)
                return r;
        return polkit_verify(&m->polkit, msg, VRD_ACTION_TAKE, handler, m, error);
}

/* After a restart nobody has claims, but a peer from before may still hold
 * the group's address space, where its DMA mappings are: only that process
 * may take the group's devices again (it proves it by holding the daemon's
 * file of it: the container, or with cdev the device's cdev), until it lets
 * go of it. 1: the caller is that peer, back; 0: anyone may take it. */
static int check_previous_holder(struct manager *m, sd_bus_message *msg, struct device *d, const char *address,
                                 sd_bus_error *error) {
        _cleanup_(sd_bus_creds_unrefp) sd_bus_creds *creds = NULL;
        const struct holder *prev;
        char who[HOLDER_NAME_MAX];
        pid_t pid = 0;
        int r;

        if (!ownership_has_previous_holders(&m->ownership, d->fn.iommu_group))
                return 0;
        r = sd_bus_query_sender_creds(msg, SD_BUS_CREDS_PID | SD_BUS_CREDS_AUGMENT, &creds);
        if (r >= 0)
                r = sd_bus_creds_get_pid(creds, &pid);
        if (r < 0)
                return sd_bus_error_set_errnof(error, -r, "Cannot tell which process asks for %s: %m", address);
        r = ownership_previous_holder(&m->ownership, d->fn.iommu_group, pid, &prev);
        if (r >= 0)
                return r;
        return sd_bus_error_setf(error, VRD_ERROR_BUSY,
                                 "IOMMU group %d of %s is still held by %s, its peer before vfio-resetd restarted: "
                                 "only that process may take it again, until it closes %s",
                                 d->fn.iommu_group, address, holder_describe(prev, who),
                                 d->model == OWNERSHIP_CDEV ? "the device's cdev (its IOAS is there)" :
                                                              "the group's fds");
}

int method_take_device(sd_bus_message *msg, void *userdata, sd_bus_error *error) {
        struct manager *m = userdata;
        const char *sender = sd_bus_message_get_sender(msg);
        char address[PCI_ADDRESS_STRLEN];
        struct peer *p, *other;
        struct dev_set *s;
        struct device *d;
        bool back;
        int r, iommu;

        r = begin(msg, m, method_take_device, &d, &s, error);
        if (r <= 0)
                return r < 0 ? r : 1;
        pci_address_format(&d->fn.address, address);
        if (d->device_fd < 0)
                return sd_bus_error_setf(error, VRD_ERROR_NOT_MANAGED,
                                         "%s is not managed by vfio-resetd (tag it \"vfio-resetd\" in udev or list "
                                         "it under [Manage] in the config)%s%s%s", address,
                                         d->acquire_error == -EBUSY ? "; and another process holds its group" :
                                         d->acquire_error == -EINVAL && d->model == OWNERSHIP_CDEV ?
                                         "; and another process has bound its cdev /dev/vfio/devices/" : "",
                                         d->acquire_error == -EINVAL && d->model == OWNERSHIP_CDEV ?
                                         d->fn.vfio_cdev : "",
                                         d->acquire_error == -EINVAL && d->model == OWNERSHIP_CDEV ?
                                         " to an iommufd context of its own (VFIO_DEVICE_BIND_IOMMUFD: EINVAL)" : "");
        /* The group is the kernel's isolation unit, so it is the unit of claims. */
        p = peer_find(&m->peers, sender);
        other = peer_claiming_group(&m->peers, m->devices, m->n_devices, d->fn.iommu_group, p);
        if (other)
                return sd_bus_error_setf(error, VRD_ERROR_BUSY, "IOMMU group %d of %s is claimed by peer %s",
                                         d->fn.iommu_group, address, other->name);
        r = check_previous_holder(m, msg, d, address, error);
        if (r < 0)
                return r;
        back = r > 0;
        iommu = m->ownership.ops->iommu_fd(&m->ownership, d);
        if (iommu < 0)
                return sd_bus_error_set_errnof(error, -iommu, "%s has no IOMMU context: %m", address);
        /* Where the caller claims nothing of the group yet, the group gets an
         * address space of its own (cdev: a new IOAS; legacy: its container),
         * unless the caller is its peer from before a restart: that one gets
         * back the address space it had. */
        {
                struct device *moved[16];
                char why[512] = "";

                r = m->ownership.ops->take(&m->ownership, d,
                                           !back && !peer_claiming_group(&m->peers, m->devices, m->n_devices,
                                                                         d->fn.iommu_group, NULL),
                                           moved, ELEMENTSOF(moved), why, sizeof(why));
                for (size_t i = 0; moved[i]; i++)
                        manager_emit_device_changed(m, moved[i], (const char *[]) { "IommufdIoasId", NULL });
                if (r < 0)
                        return sd_bus_error_setf(error, VRD_ERROR_IOMMU_FAILED, "Cannot take %s: %s", address, why);
        }
        r = get_peer(m, sender, &p);
        if (r < 0)
                return r;
        r = peer_add_claim(&m->peers, p, &d->fn.address);
        if (r < 0)
                return r;
        if (r > 0) {
                log_info("Peer %s took %s", sender, address);
                manager_emit_peers_changed(m, &d->fn.address);
        }
        r = arbiter_peer_joined(&m->arbiter, s, sender);
        if (r < 0)
                return r;
        /* sd-bus duplicates the fds into the reply: the daemon keeps its own. */
        return sd_bus_reply_method_return(msg, "hhb", d->device_fd, iommu, arbiter_holds_peers_paused(s));
}

static int drop(sd_bus_message *msg, struct manager *m, bool claim, sd_bus_error *error) {
        const char *address, *sender = sd_bus_message_get_sender(msg);
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
        p = peer_find(&m->peers, sender);
        had = p && (claim ? peer_drop_claim(&m->peers, p, &a) : peer_drop_watch(&m->peers, p, &a));
        if (!had)
                return sd_bus_error_setf(error, SD_BUS_ERROR_INVALID_ARGS, "%s did not %s %s", sender,
                                         claim ? "take" : "watch", address);
        peer_gc(&m->peers, p);
        manager_emit_peers_changed(m, &a);
        arbiter_peer_left(&m->arbiter, sender);
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
        struct dev_set *s;
        struct device *d;
        struct peer *p;
        int r;

        r = begin(msg, m, method_watch, &d, &s, error);
        if (r <= 0)
                return r < 0 ? r : 1;
        r = get_peer(m, sd_bus_message_get_sender(msg), &p);
        if (r < 0)
                return r;
        r = peer_add_watch(&m->peers, p, &d->fn.address);
        if (r < 0)
                return r;
        if (r > 0)
                manager_emit_peers_changed(m, &d->fn.address);
        r = arbiter_peer_joined(&m->arbiter, s, p->name);
        if (r < 0)
                return r;
        return sd_bus_reply_method_return(msg, NULL);
}
