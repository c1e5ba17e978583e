/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* org.vfioresetd1.DevSet: one object per dev_set with at least one vfio device. */
#include <errno.h>
#include <stdlib.h>

#include "bus-names.h"
#include "log.h"
#include "arbiter-dbus.h"
#include "devset-dbus.h"
#include "peer-dbus.h"
#include "macro.h"
#include "strv.h"

static int property_get_kind(sd_bus *bus, const char *path, const char *interface, const char *property,
                             sd_bus_message *reply, void *userdata, sd_bus_error *error) {
        struct dev_set *s = userdata;

        return sd_bus_message_append(reply, "s", dev_set_kind_to_string(s->kind));
}

static int property_get_devices(sd_bus *bus, const char *path, const char *interface, const char *property,
                                sd_bus_message *reply, void *userdata, sd_bus_error *error) {
        struct dev_set *s = userdata;
        int r;

        r = sd_bus_message_open_container(reply, 'a', "o");
        for (size_t i = 0; r >= 0 && i < s->n_members; i++)
                r = sd_bus_message_append(reply, "o", s->members[i]->path);
        return r < 0 ? r : sd_bus_message_close_container(reply);
}

static int property_get_state(sd_bus *bus, const char *path, const char *interface, const char *property,
                              sd_bus_message *reply, void *userdata, sd_bus_error *error) {
        struct dev_set *s = userdata;

        return sd_bus_message_append(reply, "s", dev_set_state_to_string(arbiter_state(s)));
}

static int property_get_managed(sd_bus *bus, const char *path, const char *interface, const char *property,
                                sd_bus_message *reply, void *userdata, sd_bus_error *error) {
        return sd_bus_message_append(reply, "b", dev_set_is_managed(userdata));
}

/* Peers that took a member or watch the set: from the index of each
 * member's peers, so a Watch's announcement costs the set's peers. */
static int property_get_peers(sd_bus *bus, const char *path, const char *interface, const char *property,
                              sd_bus_message *reply, void *userdata, sd_bus_error *error) {
        struct dev_set *s = userdata;
        int r;

        r = sd_bus_message_open_container(reply, 'a', "s");
        if (r >= 0)
                r = peer_foreach_in_dev_set(&s->manager->peers, s, peer_bus_append_name, reply);
        return r < 0 ? r : sd_bus_message_close_container(reply);
}

static int property_get_paused_peers(sd_bus *bus, const char *path, const char *interface, const char *property,
                                     sd_bus_message *reply, void *userdata, sd_bus_error *error) {
        _cleanup_strv_free_ char **l = NULL;
        int r;

        r = arbiter_paused_peers(userdata, &l);
        return r < 0 ? r : sd_bus_message_append_strv(reply, l);
}

enum holders_view {
        HOLDERS,                /* (address, pid, command) */
        HOLDER_DETAILS,         /* (address, pid, uid, command, unit) */
        HOLDER_CDEVS,           /* (address, pid) of those that hold a member through its cdev */
};

/* Holders, HolderDetails or HolderCdevs, from the one scan. */
static int append_holders(sd_bus_message *reply, struct dev_set *s, enum holders_view view, sd_bus_error *error) {
        const char *type = view == HOLDER_DETAILS ? "(suuss)" : view == HOLDER_CDEVS ? "(su)" : "(sus)";
        const struct device_holder *h;
        size_t n;
        int r;

        r = manager_get_holders(s->manager, &h, &n);
        if (r < 0)
                return sd_bus_error_set_errnof(error, r, "Cannot look up the holders of %s: %m", s->id);
        r = sd_bus_message_open_container(reply, 'a', type);
        for (size_t i = 0; r >= 0 && i < n; i++) {
                const struct holder *p = &h[i].process;
                char buf[PCI_ADDRESS_STRLEN];

                if (h[i].device->dev_set != s || (view == HOLDER_CDEVS && !h[i].cdev))
                        continue;
                pci_address_format(&h[i].device->fn.address, buf);
                if (view == HOLDER_DETAILS)
                        r = sd_bus_message_append(reply, type, buf, (uint32_t) p->pid, (uint32_t) p->uid, p->comm,
                                                  p->unit);
                else if (view == HOLDER_CDEVS)
                        r = sd_bus_message_append(reply, type, buf, (uint32_t) p->pid);
                else
                        r = sd_bus_message_append(reply, type, buf, (uint32_t) p->pid, p->comm);
        }
        return r < 0 ? r : sd_bus_message_close_container(reply);
}

static int property_get_holders(sd_bus *bus, const char *path, const char *interface, const char *property,
                                sd_bus_message *reply, void *userdata, sd_bus_error *error) {
        return append_holders(reply, userdata, HOLDERS, error);
}

static int property_get_holder_details(sd_bus *bus, const char *path, const char *interface, const char *property,
                                       sd_bus_message *reply, void *userdata, sd_bus_error *error) {
        return append_holders(reply, userdata, HOLDER_DETAILS, error);
}

/* HolderCdevs: the kernel's proof for them is an iommufd context, which
 * borrowing cannot give the daemon. */
static int property_get_holder_cdevs(sd_bus *bus, const char *path, const char *interface, const char *property,
                                     sd_bus_message *reply, void *userdata, sd_bus_error *error) {
        return append_holders(reply, userdata, HOLDER_CDEVS, error);
}

/* HolderDomains: the holders of Holders that an adapter knows as a virtual
 * machine (address, pid, domain name, UUID), from the same scan. */
static int property_get_holder_domains(sd_bus *bus, const char *path, const char *interface, const char *property,
                                       sd_bus_message *reply, void *userdata, sd_bus_error *error) {
        struct dev_set *s = userdata;
        struct manager *m = s->manager;
        const struct device_holder *h;
        size_t n;
        int r;

        r = manager_get_holders(m, &h, &n);
        if (r < 0)
                return sd_bus_error_set_errnof(error, r, "Cannot look up the holders of %s: %m", s->id);
        r = sd_bus_message_open_container(reply, 'a', "(suss)");
        for (size_t i = 0; r >= 0 && i < n; i++) {
                const struct quiesce_holder q = { .holder = &h[i].process, .pidfd = -EBADF };
                char buf[PCI_ADDRESS_STRLEN];

                if (h[i].device->dev_set != s)
                        continue;
                for (size_t a = 0; a < m->n_adapters; a++) {
                        const char *name, *uuid;

                        if (!m->adapters[a]->domain_of || !m->adapters[a]->domain_of(m->adapters[a], &q, &name, &uuid))
                                continue;
                        r = sd_bus_message_append(reply, "(suss)", pci_address_format(&h[i].device->fn.address, buf),
                                                  (uint32_t) h[i].process.pid, name, uuid);
                        break;
                }
        }
        return r < 0 ? r : sd_bus_message_close_container(reply);
}

static int property_get_uninspected(sd_bus *bus, const char *path, const char *interface, const char *property,
                                    sd_bus_message *reply, void *userdata, sd_bus_error *error) {
        struct dev_set *s = userdata;
        const struct holder *u;
        size_t n;
        int r;

        r = manager_get_uninspected(s->manager, s, &u, &n);
        if (r < 0)
                return sd_bus_error_set_errnof(error, r, "Cannot look up the holders of %s: %m", s->id);
        r = sd_bus_message_open_container(reply, 'a', "(us)");
        for (size_t i = 0; r >= 0 && i < n; i++)
                r = sd_bus_message_append(reply, "(us)", (uint32_t) u[i].pid, u[i].comm);
        return r < 0 ? r : sd_bus_message_close_container(reply);
}

static int property_get_foreign(sd_bus *bus, const char *path, const char *interface, const char *property,
                                sd_bus_message *reply, void *userdata, sd_bus_error *error) {
        struct dev_set *s = userdata;
        int r;

        r = sd_bus_message_open_container(reply, 'a', "(ss)");
        for (size_t i = 0; r >= 0 && i < s->n_foreign; i++) {
                char buf[PCI_ADDRESS_STRLEN];

                r = sd_bus_message_append(reply, "(ss)", pci_address_format(&s->foreign[i].address, buf),
                                          s->foreign[i].driver ?: "");
        }
        return r < 0 ? r : sd_bus_message_close_container(reply);
}

static const sd_bus_vtable dev_set_vtable[] = {
        SD_BUS_VTABLE_START(0),
        SD_BUS_PROPERTY("Id", "s", NULL, offsetof(struct dev_set, id), SD_BUS_VTABLE_PROPERTY_CONST),
        SD_BUS_PROPERTY("Kind", "s", property_get_kind, 0, SD_BUS_VTABLE_PROPERTY_CONST),
        SD_BUS_PROPERTY("Devices", "ao", property_get_devices, 0, SD_BUS_VTABLE_PROPERTY_EMITS_CHANGE),
        SD_BUS_PROPERTY("State", "s", property_get_state, 0, SD_BUS_VTABLE_PROPERTY_EMITS_CHANGE),
        SD_BUS_PROPERTY("Managed", "b", property_get_managed, 0, SD_BUS_VTABLE_PROPERTY_EMITS_CHANGE),
        /* read from /proc when asked, never polled: no change signal */
        SD_BUS_PROPERTY("Holders", "a(sus)", property_get_holders, 0, 0),
        SD_BUS_PROPERTY("Peers", "as", property_get_peers, 0, SD_BUS_VTABLE_PROPERTY_EMITS_CHANGE),
        SD_BUS_PROPERTY("ResetCount", "t", NULL, offsetof(struct dev_set, reset_count), SD_BUS_VTABLE_PROPERTY_EMITS_CHANGE),
        SD_BUS_PROPERTY("LastResult", "s", NULL, offsetof(struct dev_set, last_result), SD_BUS_VTABLE_PROPERTY_EMITS_CHANGE),
        SD_BUS_PROPERTY("LastResetUSec", "t", NULL, offsetof(struct dev_set, last_reset_usec), SD_BUS_VTABLE_PROPERTY_EMITS_CHANGE),
        /* beyond DESIGN.md section 5: functions the set's reset reaches that are
         * not in it (address, driver or ""); the kernel refuses a hot reset while any is there */
        SD_BUS_PROPERTY("ForeignDevices", "a(ss)", property_get_foreign, 0, SD_BUS_VTABLE_PROPERTY_EMITS_CHANGE),
        /* beyond DESIGN.md section 5: the peers that acknowledged the pause under way */
        SD_BUS_PROPERTY("PausedPeers", "as", property_get_paused_peers, 0, SD_BUS_VTABLE_PROPERTY_EMITS_CHANGE),
        /* beyond DESIGN.md section 5: processes whose fds the daemon cannot read
         * (pid, command), so Holders may miss them; read with Holders, no change signal */
        SD_BUS_PROPERTY("UninspectedProcesses", "a(us)", property_get_uninspected, 0, 0),
        /* beyond DESIGN.md section 5: Holders with each holder's uid and systemd
         * unit (address, pid, uid, command, unit); the same scan, no change signal */
        SD_BUS_PROPERTY("HolderDetails", "a(suuss)", property_get_holder_details, 0, 0),
        /* beyond DESIGN.md section 5: the holders that are virtual machines, as
         * their manager names them (address, pid, domain name, UUID); libvirt's
         * domains for now; the same scan, no change signal */
        SD_BUS_PROPERTY("HolderDomains", "a(suss)", property_get_holder_domains, 0, 0),
        /* beyond DESIGN.md section 5: the holders of Holders that hold a member
         * through its cdev (address, pid); the same scan, no change signal */
        SD_BUS_PROPERTY("HolderCdevs", "a(su)", property_get_holder_cdevs, 0, 0),
        SD_BUS_METHOD_WITH_NAMES("Reset", "a{sv}", SD_BUS_PARAM(options), "st", SD_BUS_PARAM(result)
                                 SD_BUS_PARAM(duration_usec), method_dev_set_reset, SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_VTABLE_END
};

static int dev_set_object_find(sd_bus *bus, const char *path, const char *interface, void *userdata,
                               void **found, sd_bus_error *error) {
        struct manager *m = userdata;
        const char *prefix = VRD_DEVSET_PATH_PREFIX "/";
        struct dev_set *s;

        if (strncmp(path, prefix, strlen(prefix)) != 0)
                return 0;
        s = manager_find_dev_set(m, path + strlen(prefix));
        if (!s)
                return 0;
        *found = s;
        return 1;
}

static int dev_set_node_enumerator(sd_bus *bus, const char *path, void *userdata, char ***nodes, sd_bus_error *error) {
        struct manager *m = userdata;
        _cleanup_strv_free_ char **l = calloc(m->n_dev_sets + 1, sizeof(char *));

        if (!l)
                return -ENOMEM;
        for (size_t i = 0; i < m->n_dev_sets; i++)
                if (!(l[i] = strdup(m->dev_sets[i]->path)))
                        return -ENOMEM;
        *nodes = TAKE_PTR(l);
        return 1;
}

int dev_set_bus_register(struct manager *m) {
        int r;

        r = sd_bus_add_fallback_vtable(m->bus, NULL, VRD_DEVSET_PATH_PREFIX, VRD_DEVSET_IFACE,
                                       dev_set_vtable, dev_set_object_find, m);
        if (r < 0)
                return r;
        return sd_bus_add_node_enumerator(m->bus, NULL, VRD_DEVSET_PATH_PREFIX, dev_set_node_enumerator, m);
}

int dev_set_bus_emit_changed(struct dev_set *s, const char *const *properties) {
        if (!s->manager->bus)
                return 0;
        return sd_bus_emit_properties_changed_strv(s->manager->bus, s->path, VRD_DEVSET_IFACE, (char **) properties);
}
