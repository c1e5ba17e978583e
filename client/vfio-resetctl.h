/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include <stdbool.h>
#include <json-c/json.h>
#include <systemd/sd-bus.h>

#include "model.h"
#include "pci-address.h"
#include "vfio-resetd.h"

/* Exit codes: 0 done, 1 the daemon or the system said no, 2 bad usage or input. */
#define CTL_EXIT_FAILURE 1
#define CTL_EXIT_USAGE   2

struct ctl {
        sd_bus *bus;            /* opened by ctl_connect() */
        bool json;
};

DEFINE_TRIVIAL_CLEANUP_FUNC(vrd_peer *, vrd_peer_unref)

/* Each prints what went wrong and returns -CTL_EXIT_* on failure. */
int ctl_connect(struct ctl *c);
/* A libvfio-resetd peer on the command's connection. */
int ctl_peer(struct ctl *c, vrd_peer **ret);
/* A PCI address argument in its canonical form; exit code 2 with a message naming it when bad. */
int ctl_parse_address(const char *arg, char canonical[static PCI_ADDRESS_STRLEN]);

/* Check an address argument (exit code 2 with a message naming it when bad),
 * then ask the daemon for the device and its set (exit 1 with its message). */
int ctl_resolve(struct ctl *c, const char *arg, char **ret_device_path, char **ret_dev_set_path);
int ctl_load(struct ctl *c, struct ctl_model **ret);
void ctl_print_json(json_object *o);
/* "bus_0000_04" from "/org/vfioresetd1/devset/bus_0000_04" */
const char *ctl_devset_id(const char *path);
/* "183 ms", "950 us", "12.4 s" */
const char *ctl_format_duration(uint64_t usec, char buf[static 32]);

/* "0000:04:00.0,0000:04:00.1" from a set's device paths */
char *ctl_join_addresses(const struct ctl_model *m, char **paths, const char *sep);

int cmd_list(struct ctl *c, int argc, char *argv[]);
int cmd_status(struct ctl *c, int argc, char *argv[]);
int cmd_explain(struct ctl *c, int argc, char *argv[]);
int cmd_reset(struct ctl *c, int argc, char *argv[]);
int cmd_hold(struct ctl *c, int argc, char *argv[]);
int cmd_monitor(struct ctl *c, int argc, char *argv[]);

json_object *ctl_dev_set_to_json(const struct ctl_model *m, const struct ctl_dev_set *s);
json_object *ctl_device_to_json(const struct ctl_device *d);
/* A holder's "pid", "command", "uid" and "unit" into o (uid and unit null when the daemon did not say). */
void ctl_holder_add_json(json_object *o, const struct ctl_holder *h);
/* [{"pid":..,"command":..}] of the processes the daemon could not inspect. */
json_object *ctl_uninspected_to_json(const struct ctl_dev_set *s);
