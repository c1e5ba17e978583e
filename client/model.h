/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* Everything the daemon exports, read with one GetManagedObjects call, and
 * kept current from its signals (vfio-resetctl monitor). */

#include <stdbool.h>
#include <stdint.h>
#include <systemd/sd-bus.h>

#include "macro.h"

struct ctl_device {
        char *path;
        char *address;
        char *driver;
        char *dev_set;          /* object path */
        char *physfn;
        uint16_t vendor_id;
        uint16_t device_id;
        uint32_t class;
        int32_t iommu_group;
        char **reset_methods;
        bool managed;
        char **peers;
        char *ownership;        /* "legacy", "cdev", ""; NULL from an older daemon */
        uint32_t ioas;          /* cdev: IommufdIoasId, 0 none */
};

struct ctl_holder {
        char *address;
        uint32_t pid;
        char *command;
        uint32_t uid;           /* HOLDER_UID_UNKNOWN from a daemon without HolderDetails */
        char *unit;             /* "" when in none; NULL from a daemon without HolderDetails */
};

/* A process whose fds the daemon could not read: it may hold anything. */
struct ctl_process {
        uint32_t pid;
        char *command;
};

/* A holder that is a libvirt domain's QEMU (HolderDomains). */
struct ctl_domain {
        char *address;
        uint32_t pid;
        char *name;
        char *uuid;
};

struct ctl_foreign {
        char *address;
        char *driver;           /* "" when unbound */
};

struct ctl_dev_set {
        char *path;
        char *id;
        char *kind;
        char *state;
        char *last_result;
        char **devices;         /* object paths */
        bool managed;
        char **peers;
        char **paused_peers;
        uint64_t reset_count;
        uint64_t last_reset_usec;
        struct ctl_holder *holders;     /* HolderDetails, or Holders from a daemon without it */
        size_t n_holders;
        bool holder_details;
        struct ctl_domain *domains;     /* HolderDomains; none from a daemon without it */
        size_t n_domains;
        struct ctl_foreign *foreign;
        size_t n_foreign;
        struct ctl_process *uninspected;
        size_t n_uninspected;
        struct ctl_holder *cdev_holders;        /* HolderCdevs: .address and .pid only; none from an older daemon */
        size_t n_cdev_holders;
};

struct ctl_model {
        struct ctl_device *devices;
        size_t n_devices;
        struct ctl_dev_set *dev_sets;
        size_t n_dev_sets;
};

int ctl_model_load(sd_bus *bus, struct ctl_model **ret);
/* From a GetManagedObjects reply (a{oa{sa{sv}}}). */
int ctl_model_from_reply(sd_bus_message *reply, struct ctl_model **ret);
struct ctl_model *ctl_model_free(struct ctl_model *m);
DEFINE_TRIVIAL_CLEANUP_FUNC(struct ctl_model *, ctl_model_free)

/* The object at path from InterfacesAdded's a{sa{sv}}, in place of one there was. */
int ctl_model_add(struct ctl_model *m, const char *path, sd_bus_message *msg);
/* PropertiesChanged's a{sv} of iface into the object at path: 1, or 0 when there is none. */
int ctl_model_update(struct ctl_model *m, const char *path, const char *iface, sd_bus_message *msg);
/* One property's value (the "v" of a Get reply) into the object at path: 1, or 0 when there is none. */
int ctl_model_update_property(struct ctl_model *m, const char *path, const char *name, sd_bus_message *msg);
void ctl_model_remove(struct ctl_model *m, const char *path);

const struct ctl_device *ctl_model_device(const struct ctl_model *m, const char *path);
const struct ctl_dev_set *ctl_model_dev_set(const struct ctl_model *m, const char *path);
struct ctl_device *ctl_model_find_device(struct ctl_model *m, const char *path);
struct ctl_dev_set *ctl_model_find_dev_set(struct ctl_model *m, const char *path);
void ctl_dev_set_clear_holders(struct ctl_dev_set *s);
/* Does h hold its member through the member's cdev (HolderCdevs)? */
bool ctl_dev_set_holds_cdev(const struct ctl_dev_set *s, const struct ctl_holder *h);

/* The libvirt domain that holder h of s is, or NULL. */
const struct ctl_domain *ctl_dev_set_domain(const struct ctl_dev_set *s, const struct ctl_holder *h);
