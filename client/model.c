/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bus-names.h"
#include "holder-name.h"
#include "macro.h"
#include "strv.h"
#include "model.h"


static int read_string(sd_bus_message *m, const char *type, char **ret) {
        const char *s;
        int r = sd_bus_message_read(m, "v", type, &s);

        if (r < 0)
                return r;
        free(*ret);
        *ret = strdup(s);
        return *ret ? 0 : -ENOMEM;
}

static int read_strv(sd_bus_message *m, const char *type, char ***ret) {
        int r = sd_bus_message_enter_container(m, 'v', type);

        if (r < 0)
                return r;
        strv_free(*ret);
        *ret = NULL;
        r = sd_bus_message_read_strv(m, ret);
        if (r < 0)
                return r;
        return sd_bus_message_exit_container(m);
}

/* Into the variant and the array of a property of type "a" + element; leave_array() leaves both. */
static int enter_array(sd_bus_message *m, const char *element) {
        char type[16];
        int r;

        snprintf(type, sizeof(type), "a%s", element);
        r = sd_bus_message_enter_container(m, 'v', type);
        return r < 0 ? r : sd_bus_message_enter_container(m, 'a', element);
}

static int leave_array(sd_bus_message *m, int r) {
        if (r < 0)
                return r;
        r = sd_bus_message_exit_container(m);
        return r < 0 ? r : sd_bus_message_exit_container(m);
}

void ctl_dev_set_clear_holders(struct ctl_dev_set *s) {
        for (size_t j = 0; j < s->n_holders; j++) {
                free(s->holders[j].address);
                free(s->holders[j].command);
                free(s->holders[j].unit);
        }
        s->holders = mfree(s->holders);
        s->n_holders = 0;
}

/* HolderDetails (a(suuss)) when the daemon has it, whichever of the two comes
 * first; else Holders (a(sus)), without uid and unit. Either replaces what
 * was read before. */
static int read_holders(sd_bus_message *m, struct ctl_dev_set *s, bool details) {
        const char *type = details ? "(suuss)" : "(sus)", *a, *c, *u = NULL;
        uint32_t pid, uid = HOLDER_UID_UNKNOWN;
        int r;

        if (s->holder_details && !details)
                return sd_bus_message_skip(m, "v");
        ctl_dev_set_clear_holders(s);
        s->holder_details = details;
        r = enter_array(m, type);
        while (r >= 0 && (r = details ? sd_bus_message_read(m, type, &a, &pid, &uid, &c, &u)
                                      : sd_bus_message_read(m, type, &a, &pid, &c)) > 0) {
                struct ctl_holder *n = realloc(s->holders, sizeof(*n) * (s->n_holders + 1));

                if (!n)
                        return -ENOMEM;
                s->holders = n;
                n = &n[s->n_holders++];
                *n = (struct ctl_holder) { .address = strdup(a), .pid = pid, .command = strdup(c), .uid = uid,
                                           .unit = u ? strdup(u) : NULL };
                if (!n->address || !n->command || (u && !n->unit))
                        return -ENOMEM;
        }
        return leave_array(m, r);
}

static void clear_domains(struct ctl_dev_set *s) {
        for (size_t j = 0; j < s->n_domains; j++) {
                free(s->domains[j].address);
                free(s->domains[j].name);
                free(s->domains[j].uuid);
        }
        s->domains = mfree(s->domains);
        s->n_domains = 0;
}

static int read_domains(sd_bus_message *m, struct ctl_dev_set *s) {
        const char *a, *name, *uuid;
        uint32_t pid;
        int r;

        clear_domains(s);
        r = enter_array(m, "(suss)");
        while (r >= 0 && (r = sd_bus_message_read(m, "(suss)", &a, &pid, &name, &uuid)) > 0) {
                struct ctl_domain *n = realloc(s->domains, sizeof(*n) * (s->n_domains + 1));

                if (!n)
                        return -ENOMEM;
                s->domains = n;
                n = &n[s->n_domains++];
                *n = (struct ctl_domain) { .address = strdup(a), .pid = pid, .name = strdup(name),
                                           .uuid = strdup(uuid) };
                if (!n->address || !n->name || !n->uuid)
                        return -ENOMEM;
        }
        return leave_array(m, r);
}

const struct ctl_domain *ctl_dev_set_domain(const struct ctl_dev_set *s, const struct ctl_holder *h) {
        for (size_t i = 0; i < s->n_domains; i++)
                if (s->domains[i].pid == h->pid && streq_ptr(s->domains[i].address, h->address))
                        return &s->domains[i];
        return NULL;
}

bool ctl_dev_set_holds_cdev(const struct ctl_dev_set *s, const struct ctl_holder *h) {
        for (size_t i = 0; i < s->n_cdev_holders; i++)
                if (s->cdev_holders[i].pid == h->pid && streq_ptr(s->cdev_holders[i].address, h->address))
                        return true;
        return false;
}

static void clear_cdev_holders(struct ctl_dev_set *s) {
        for (size_t j = 0; j < s->n_cdev_holders; j++)
                free(s->cdev_holders[j].address);
        s->cdev_holders = mfree(s->cdev_holders);
        s->n_cdev_holders = 0;
}

static int read_cdev_holders(sd_bus_message *m, struct ctl_dev_set *s) {
        const char *a;
        uint32_t pid;
        int r;

        clear_cdev_holders(s);
        r = enter_array(m, "(su)");
        while (r >= 0 && (r = sd_bus_message_read(m, "(su)", &a, &pid)) > 0) {
                struct ctl_holder *n = realloc(s->cdev_holders, sizeof(*n) * (s->n_cdev_holders + 1));

                if (!n)
                        return -ENOMEM;
                s->cdev_holders = n;
                n[s->n_cdev_holders++] = (struct ctl_holder) { .address = strdup(a), .pid = pid };
        }
        return leave_array(m, r);
}

static void clear_uninspected(struct ctl_dev_set *s) {
        for (size_t j = 0; j < s->n_uninspected; j++)
                free(s->uninspected[j].command);
        s->uninspected = mfree(s->uninspected);
        s->n_uninspected = 0;
}

static void clear_foreign(struct ctl_dev_set *s) {
        for (size_t j = 0; j < s->n_foreign; j++) {
                free(s->foreign[j].address);
                free(s->foreign[j].driver);
        }
        s->foreign = mfree(s->foreign);
        s->n_foreign = 0;
}

static int read_uninspected(sd_bus_message *m, struct ctl_dev_set *s) {
        const char *c;
        uint32_t pid;
        int r;

        clear_uninspected(s);
        r = enter_array(m, "(us)");
        while (r >= 0 && (r = sd_bus_message_read(m, "(us)", &pid, &c)) > 0) {
                struct ctl_process *n = realloc(s->uninspected, sizeof(*n) * (s->n_uninspected + 1));

                if (!n)
                        return -ENOMEM;
                s->uninspected = n;
                n[s->n_uninspected++] = (struct ctl_process) { .pid = pid, .command = strdup(c) };
        }
        return leave_array(m, r);
}

static int read_foreign(sd_bus_message *m, struct ctl_dev_set *s) {
        const char *a, *d;
        int r;

        clear_foreign(s);
        r = enter_array(m, "(ss)");
        while (r >= 0 && (r = sd_bus_message_read(m, "(ss)", &a, &d)) > 0) {
                struct ctl_foreign *n = realloc(s->foreign, sizeof(*n) * (s->n_foreign + 1));

                if (!n)
                        return -ENOMEM;
                s->foreign = n;
                n[s->n_foreign++] = (struct ctl_foreign) { .address = strdup(a), .driver = strdup(d) };
        }
        return leave_array(m, r);
}

static int read_device_property(sd_bus_message *m, const char *name, struct ctl_device *d) {
        int b = 0;

        if (strcmp(name, "Address") == 0)
                return read_string(m, "s", &d->address);
        if (strcmp(name, "Driver") == 0)
                return read_string(m, "s", &d->driver);
        if (strcmp(name, "DevSet") == 0)
                return read_string(m, "o", &d->dev_set);
        if (strcmp(name, "PhysicalFunction") == 0)
                return read_string(m, "s", &d->physfn);
        if (strcmp(name, "Ownership") == 0)
                return read_string(m, "s", &d->ownership);
        if (strcmp(name, "IommufdIoasId") == 0)
                return sd_bus_message_read(m, "v", "u", &d->ioas);
        if (strcmp(name, "VendorId") == 0)
                return sd_bus_message_read(m, "v", "q", &d->vendor_id);
        if (strcmp(name, "DeviceId") == 0)
                return sd_bus_message_read(m, "v", "q", &d->device_id);
        if (strcmp(name, "Class") == 0)
                return sd_bus_message_read(m, "v", "u", &d->class);
        if (strcmp(name, "IommuGroup") == 0)
                return sd_bus_message_read(m, "v", "i", &d->iommu_group);
        if (strcmp(name, "ResetMethods") == 0)
                return read_strv(m, "as", &d->reset_methods);
        if (strcmp(name, "Peers") == 0)
                return read_strv(m, "as", &d->peers);
        if (strcmp(name, "Managed") == 0) {
                int r = sd_bus_message_read(m, "v", "b", &b);
                d->managed = b;
                return r;
        }
        return sd_bus_message_skip(m, "v");
}

static int read_dev_set_property(sd_bus_message *m, const char *name, struct ctl_dev_set *s) {
        int b = 0;

        if (strcmp(name, "Id") == 0)
                return read_string(m, "s", &s->id);
        if (strcmp(name, "Kind") == 0)
                return read_string(m, "s", &s->kind);
        if (strcmp(name, "State") == 0)
                return read_string(m, "s", &s->state);
        if (strcmp(name, "LastResult") == 0)
                return read_string(m, "s", &s->last_result);
        if (strcmp(name, "Devices") == 0)
                return read_strv(m, "ao", &s->devices);
        if (strcmp(name, "Peers") == 0)
                return read_strv(m, "as", &s->peers);
        if (strcmp(name, "PausedPeers") == 0)
                return read_strv(m, "as", &s->paused_peers);
        if (strcmp(name, "ResetCount") == 0)
                return sd_bus_message_read(m, "v", "t", &s->reset_count);
        if (strcmp(name, "LastResetUSec") == 0)
                return sd_bus_message_read(m, "v", "t", &s->last_reset_usec);
        if (strcmp(name, "Holders") == 0)
                return read_holders(m, s, false);
        if (strcmp(name, "HolderDetails") == 0)
                return read_holders(m, s, true);
        if (strcmp(name, "HolderDomains") == 0)
                return read_domains(m, s);
        if (strcmp(name, "ForeignDevices") == 0)
                return read_foreign(m, s);
        if (strcmp(name, "UninspectedProcesses") == 0)
                return read_uninspected(m, s);
        if (strcmp(name, "HolderCdevs") == 0)
                return read_cdev_holders(m, s);
        if (strcmp(name, "Managed") == 0) {
                int r = sd_bus_message_read(m, "v", "b", &b);
                s->managed = b;
                return r;
        }
        return sd_bus_message_skip(m, "v");
}

/* One interface's a{sv} into d or s. */
static int read_properties(sd_bus_message *m, struct ctl_device *d, struct ctl_dev_set *s) {
        const char *name;
        int r;

        r = sd_bus_message_enter_container(m, 'a', "{sv}");
        if (r < 0)
                return r;
        while ((r = sd_bus_message_enter_container(m, 'e', "sv")) > 0) {
                r = sd_bus_message_read(m, "s", &name);
                if (r >= 0)
                        r = d ? read_device_property(m, name, d) : read_dev_set_property(m, name, s);
                if (r >= 0)
                        r = sd_bus_message_exit_container(m);
                if (r < 0)
                        return r;
        }
        return r < 0 ? r : sd_bus_message_exit_container(m);
}

static void device_done(struct ctl_device *d) {
        free(d->path);
        free(d->address);
        free(d->driver);
        free(d->dev_set);
        free(d->physfn);
        free(d->ownership);
        strv_free(d->reset_methods);
        strv_free(d->peers);
}

static void dev_set_done(struct ctl_dev_set *s) {
        free(s->path);
        free(s->id);
        free(s->kind);
        free(s->state);
        free(s->last_result);
        strv_free(s->devices);
        strv_free(s->peers);
        strv_free(s->paused_peers);
        ctl_dev_set_clear_holders(s);
        clear_domains(s);
        clear_foreign(s);
        clear_uninspected(s);
        clear_cdev_holders(s);
}

int ctl_model_add(struct ctl_model *model, const char *path, sd_bus_message *m) {
        const char *iface;
        int r;

        ctl_model_remove(model, path);
        r = sd_bus_message_enter_container(m, 'a', "{sa{sv}}");
        if (r < 0)
                return r;
        while ((r = sd_bus_message_enter_container(m, 'e', "sa{sv}")) > 0) {
                struct ctl_device *d = NULL;
                struct ctl_dev_set *s = NULL;

                r = sd_bus_message_read(m, "s", &iface);
                if (r < 0)
                        return r;
                if (strcmp(iface, VRD_DEVICE_IFACE) == 0) {
                        d = realloc(model->devices, sizeof(*d) * (model->n_devices + 1));
                        if (!d)
                                return -ENOMEM;
                        model->devices = d;
                        d = &d[model->n_devices++];
                        *d = (struct ctl_device) { .path = strdup(path), .iommu_group = -1 };
                        if (!d->path)
                                return -ENOMEM;
                } else if (strcmp(iface, VRD_DEVSET_IFACE) == 0) {
                        s = realloc(model->dev_sets, sizeof(*s) * (model->n_dev_sets + 1));
                        if (!s)
                                return -ENOMEM;
                        model->dev_sets = s;
                        s = &s[model->n_dev_sets++];
                        *s = (struct ctl_dev_set) { .path = strdup(path) };
                        if (!s->path)
                                return -ENOMEM;
                }
                r = d || s ? read_properties(m, d, s) : sd_bus_message_skip(m, "a{sv}");
                if (r >= 0)
                        r = sd_bus_message_exit_container(m);
                if (r < 0)
                        return r;
        }
        return r < 0 ? r : sd_bus_message_exit_container(m);
}

int ctl_model_update(struct ctl_model *model, const char *path, const char *iface, sd_bus_message *m) {
        struct ctl_device *d = strcmp(iface, VRD_DEVICE_IFACE) == 0 ? ctl_model_find_device(model, path) : NULL;
        struct ctl_dev_set *s = strcmp(iface, VRD_DEVSET_IFACE) == 0 ? ctl_model_find_dev_set(model, path) : NULL;
        int r;

        if (!d && !s)
                return sd_bus_message_skip(m, "a{sv}");
        r = read_properties(m, d, s);
        return r < 0 ? r : 1;
}

int ctl_model_update_property(struct ctl_model *model, const char *path, const char *name, sd_bus_message *m) {
        struct ctl_device *d = ctl_model_find_device(model, path);
        struct ctl_dev_set *s = ctl_model_find_dev_set(model, path);
        int r;

        if (!d && !s)
                return sd_bus_message_skip(m, "v");
        r = d ? read_device_property(m, name, d) : read_dev_set_property(m, name, s);
        return r < 0 ? r : 1;
}

void ctl_model_remove(struct ctl_model *model, const char *path) {
        for (size_t i = 0; i < model->n_devices; i++)
                if (streq_ptr(model->devices[i].path, path)) {
                        device_done(&model->devices[i]);
                        memmove(&model->devices[i], &model->devices[i + 1],
                                sizeof(*model->devices) * (--model->n_devices - i));
                        break;
                }
        for (size_t i = 0; i < model->n_dev_sets; i++)
                if (streq_ptr(model->dev_sets[i].path, path)) {
                        dev_set_done(&model->dev_sets[i]);
                        memmove(&model->dev_sets[i], &model->dev_sets[i + 1],
                                sizeof(*model->dev_sets) * (--model->n_dev_sets - i));
                        break;
                }
}

int ctl_model_from_reply(sd_bus_message *reply, struct ctl_model **ret) {
        _cleanup_(ctl_model_freep) struct ctl_model *model = calloc(1, sizeof(*model));
        const char *path;
        int r;

        if (!model)
                return -ENOMEM;
        r = sd_bus_message_enter_container(reply, 'a', "{oa{sa{sv}}}");
        if (r < 0)
                return r;
        while ((r = sd_bus_message_enter_container(reply, 'e', "oa{sa{sv}}")) > 0) {
                r = sd_bus_message_read(reply, "o", &path);
                if (r >= 0)
                        r = ctl_model_add(model, path, reply);
                if (r >= 0)
                        r = sd_bus_message_exit_container(reply);
                if (r < 0)
                        return r;
        }
        if (r < 0)
                return r;
        *ret = TAKE_PTR(model);
        return 0;
}

int ctl_model_load(sd_bus *bus, struct ctl_model **ret) {
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *reply = NULL;
        sd_bus_error error = SD_BUS_ERROR_NULL;
        int r;

        r = sd_bus_call_method(bus, VRD_BUS_NAME, VRD_ROOT_PATH, "org.freedesktop.DBus.ObjectManager",
                               "GetManagedObjects", &error, &reply, "");
        if (r < 0) {
                fprintf(stderr, "Failed to read the daemon's objects: %s\n", error.message ?: strerror(-r));
                sd_bus_error_free(&error);
                return r;
        }
        return ctl_model_from_reply(reply, ret);
}

struct ctl_model *ctl_model_free(struct ctl_model *m) {
        if (!m)
                return NULL;
        for (size_t i = 0; i < m->n_devices; i++)
                device_done(&m->devices[i]);
        for (size_t i = 0; i < m->n_dev_sets; i++)
                dev_set_done(&m->dev_sets[i]);
        free(m->devices);
        free(m->dev_sets);
        free(m);
        return NULL;
}

struct ctl_device *ctl_model_find_device(struct ctl_model *m, const char *path) {
        for (size_t i = 0; i < m->n_devices; i++)
                if (streq_ptr(m->devices[i].path, path))
                        return &m->devices[i];
        return NULL;
}

struct ctl_dev_set *ctl_model_find_dev_set(struct ctl_model *m, const char *path) {
        for (size_t i = 0; i < m->n_dev_sets; i++)
                if (streq_ptr(m->dev_sets[i].path, path))
                        return &m->dev_sets[i];
        return NULL;
}

const struct ctl_device *ctl_model_device(const struct ctl_model *m, const char *path) {
        return ctl_model_find_device((struct ctl_model *) m, path);
}

const struct ctl_dev_set *ctl_model_dev_set(const struct ctl_model *m, const char *path) {
        return ctl_model_find_dev_set((struct ctl_model *) m, path);
}
