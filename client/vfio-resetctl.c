/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bus-names.h"
#include "holder-name.h"
#include "macro.h"
#include "pci-address.h"
#include "verdict.h"
#include "vfio-resetctl.h"


static const struct verb {
        const char *name;
        int (*run)(struct ctl *c, int argc, char *argv[]);
        bool own_options;       /* parses its options itself; main only takes --json */
        const char *usage;
} verbs[] = {
        { "list", cmd_list, false, "list                 Show every vfio dev_set, its devices, groups and holders" },
        { "status", cmd_status, false, "status ADDRESS       Show a device and its dev_set" },
        { "explain", cmd_explain, false, "explain ADDRESS      Say whether the device's dev_set can be reset now, and why not" },
        { "reset", cmd_reset, true, "reset ADDRESS        Reset the device's dev_set with its peers' consent, showing each phase\n"
                                    "    [--timeout=SEC]    how long peers get to pause (default: the daemon's)\n"
                                    "    [--force]          reset even when peers miss the deadline\n"
                                    "    [--borrow]         reset even though processes outside the daemon hold members" },
        { "monitor", cmd_monitor, false, "monitor [ADDRESS]    Show what happens to the dev_sets (of ADDRESS only) as it happens, until\n"
                                         "                       interrupted: resets, states, pauses, peers, devices, and holders\n"
                                         "                       (read once a second: they have no change signal)" },
        { "hold", cmd_hold, true, "hold ADDRESS... -- COMMAND [ARGS...]\n"
                                  "                       Take the devices and run COMMAND with their fds, stopping it\n"
                                  "                       while their dev_sets are reset" },
};

static void help(void) {
        printf("%s [OPTIONS...] COMMAND ...\n\n"
               "Inspect and reset the vfio dev_sets of vfio-resetd, and run programs on its devices.\n\nCommands:\n",
               program_invocation_short_name);
        for (size_t i = 0; i < ELEMENTSOF(verbs); i++)
                printf("  %s\n", verbs[i].usage);
        printf("\nOptions:\n"
               "  -h --help     Show this help\n"
               "     --version  Show the version\n"
               "     --json     Print JSON (monitor: one object a line)\n\n"
               "ADDRESS is a PCI address, DDDD:BB:SS.F or BB:SS.F.\n");
}

int ctl_connect(struct ctl *c) {
        int r;

        if (c->bus)
                return 0;
        r = sd_bus_open_system(&c->bus);
        if (r < 0) {
                fprintf(stderr, "%s: cannot connect to the system bus: %s\n", program_invocation_short_name,
                        strerror(-r));
                return -CTL_EXIT_FAILURE;
        }
        return 0;
}

int ctl_peer(struct ctl *c, vrd_peer **ret) {
        int r = ctl_connect(c);

        if (r < 0)
                return r;
        r = vrd_peer_new_with_bus(ret, c->bus);
        if (r < 0) {
                fprintf(stderr, "%s: %s\n", program_invocation_short_name, strerror(-r));
                return -CTL_EXIT_FAILURE;
        }
        return 0;
}

int ctl_parse_address(const char *arg, char canonical[static PCI_ADDRESS_STRLEN]) {
        struct pci_address a;
        char err[160];

        if (pci_address_parse(arg, &a, err, sizeof(err)) < 0) {
                fprintf(stderr, "%s: %s\n", program_invocation_short_name, err);
                return -CTL_EXIT_USAGE;
        }
        pci_address_format(&a, canonical);
        return 0;
}

int ctl_resolve(struct ctl *c, const char *arg, char **ret_device_path, char **ret_dev_set_path) {
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *reply = NULL;
        sd_bus_error error = SD_BUS_ERROR_NULL;
        char canonical[PCI_ADDRESS_STRLEN];
        const char *path;
        int r;

        r = ctl_parse_address(arg, canonical);
        if (r >= 0)
                r = ctl_connect(c);
        if (r < 0)
                return r;
        for (int pass = 0; pass < 2; pass++) {
                char **ret = pass == 0 ? ret_device_path : ret_dev_set_path;

                if (!ret)
                        continue;
                reply = sd_bus_message_unref(reply);
                r = sd_bus_call_method(c->bus, VRD_BUS_NAME, VRD_ROOT_PATH, VRD_MANAGER_IFACE,
                                       pass == 0 ? "GetDevice" : "GetDevSet", &error, &reply, "s", canonical);
                if (r < 0) {
                        fprintf(stderr, "%s: %s\n", program_invocation_short_name,
                                error.message ?: strerror(-r));
                        sd_bus_error_free(&error);
                        return -CTL_EXIT_FAILURE;
                }
                r = sd_bus_message_read(reply, "o", &path);
                if (r < 0 || !(*ret = strdup(path)))
                        return -CTL_EXIT_FAILURE;
        }
        return 0;
}

int ctl_load(struct ctl *c, struct ctl_model **ret) {
        int r = ctl_connect(c);

        if (r < 0)
                return r;
        return ctl_model_load(c->bus, ret) < 0 ? -CTL_EXIT_FAILURE : 0;
}

const char *ctl_devset_id(const char *path) {
        const char *slash = path ? strrchr(path, '/') : NULL;

        return slash ? slash + 1 : path ?: "";
}

const char *ctl_format_duration(uint64_t usec, char buf[static 32]) {
        if (usec < 1000)
                snprintf(buf, 32, "%" PRIu64 " us", usec);
        else if (usec < 10 * 1000000)
                snprintf(buf, 32, "%" PRIu64 " ms", (usec + 500) / 1000);
        else
                snprintf(buf, 32, "%.1f s", (double) usec / 1e6);
        return buf;
}

void ctl_print_json(json_object *o) {
        puts(json_object_to_json_string_ext(o, JSON_C_TO_STRING_PRETTY | JSON_C_TO_STRING_NOSLASHESCAPE));
}

char *ctl_join_addresses(const struct ctl_model *m, char **paths, const char *sep) {
        size_t len = 1;
        char *r;

        for (char **p = paths; p && *p; p++)
                len += PCI_ADDRESS_STRLEN + strlen(sep);
        r = calloc(1, len);
        if (!r)
                return NULL;
        for (char **p = paths; p && *p; p++) {
                const struct ctl_device *d = ctl_model_device(m, *p);

                if (p != paths)
                        strcat(r, sep);
                strcat(r, d && d->address ? d->address : "?");
        }
        return r;
}

json_object *ctl_device_to_json(const struct ctl_device *d) {
        json_object *o = json_object_new_object(), *methods = json_object_new_array();

        for (char **m = d->reset_methods; m && *m; m++)
                json_object_array_add(methods, json_object_new_string(*m));
        json_object_object_add(o, "address", json_object_new_string(d->address ?: ""));
        json_object_object_add(o, "vendor_id", json_object_new_int(d->vendor_id));
        json_object_object_add(o, "device_id", json_object_new_int(d->device_id));
        json_object_object_add(o, "class", json_object_new_int64(d->class));
        json_object_object_add(o, "driver", json_object_new_string(d->driver ?: ""));
        json_object_object_add(o, "iommu_group", json_object_new_int(d->iommu_group));
        json_object_object_add(o, "reset_methods", methods);
        json_object_object_add(o, "physical_function", json_object_new_string(d->physfn ?: ""));
        json_object_object_add(o, "managed", json_object_new_boolean(d->managed));
        if (d->ownership)
                json_object_object_add(o, "ownership", json_object_new_string(d->ownership));
        return o;
}

void ctl_holder_add_json(json_object *o, const struct ctl_holder *h) {
        json_object_object_add(o, "pid", json_object_new_int64(h->pid));
        json_object_object_add(o, "command", json_object_new_string(h->command));
        /* null: not known (a daemon without HolderDetails, or the process was gone) */
        json_object_object_add(o, "uid", h->uid == HOLDER_UID_UNKNOWN ? NULL : json_object_new_int64(h->uid));
        json_object_object_add(o, "unit", h->unit ? json_object_new_string(h->unit) : NULL);
}

json_object *ctl_uninspected_to_json(const struct ctl_dev_set *s) {
        json_object *a = json_object_new_array();

        for (size_t i = 0; i < s->n_uninspected; i++) {
                json_object *p = json_object_new_object();

                json_object_object_add(p, "pid", json_object_new_int64(s->uninspected[i].pid));
                json_object_object_add(p, "command", json_object_new_string(s->uninspected[i].command ?: "?"));
                json_object_array_add(a, p);
        }
        return a;
}

json_object *ctl_dev_set_to_json(const struct ctl_model *m, const struct ctl_dev_set *s) {
        _cleanup_free_ char *unseen = verdict_uninspected(s);
        json_object *o = json_object_new_object(), *devices = json_object_new_array(),
                    *groups = json_object_new_array(), *holders = json_object_new_array(),
                    *foreign = json_object_new_array();

        for (char **p = s->devices; p && *p; p++) {
                const struct ctl_device *d = ctl_model_device(m, *p);
                bool seen = false;

                if (!d)
                        continue;
                json_object_array_add(devices, json_object_new_string(d->address));
                for (size_t i = 0; i < json_object_array_length(groups); i++)
                        seen = seen || json_object_get_int(json_object_array_get_idx(groups, i)) == d->iommu_group;
                if (!seen)
                        json_object_array_add(groups, json_object_new_int(d->iommu_group));
        }
        for (size_t i = 0; i < s->n_holders; i++) {
                json_object *h = json_object_new_object();

                json_object_object_add(h, "address", json_object_new_string(s->holders[i].address));
                ctl_holder_add_json(h, &s->holders[i]);
                json_object_array_add(holders, h);
        }
        for (size_t i = 0; i < s->n_foreign; i++) {
                json_object *f = json_object_new_object();

                json_object_object_add(f, "address", json_object_new_string(s->foreign[i].address));
                json_object_object_add(f, "driver", json_object_new_string(s->foreign[i].driver));
                json_object_array_add(foreign, f);
        }
        json_object_object_add(o, "id", json_object_new_string(s->id ?: ""));
        json_object_object_add(o, "kind", json_object_new_string(s->kind ?: ""));
        json_object_object_add(o, "devices", devices);
        json_object_object_add(o, "groups", groups);
        json_object_object_add(o, "state", json_object_new_string(s->state ?: ""));
        json_object_object_add(o, "managed", json_object_new_boolean(s->managed));
        json_object_object_add(o, "holders", holders);
        /* holders may be missing when the daemon could not inspect every process */
        json_object_object_add(o, "holders_complete", json_object_new_boolean(s->n_uninspected == 0));
        json_object_object_add(o, "uninspected_processes", ctl_uninspected_to_json(s));
        if (unseen) {
                _cleanup_free_ char *note = NULL;

                if (asprintf(&note, "cannot tell: %s", unseen) >= 0)
                        json_object_object_add(o, "holders_note", json_object_new_string(note));
        }
        json_object_object_add(o, "foreign_devices", foreign);
        json_object_object_add(o, "reset_count", json_object_new_int64((int64_t) s->reset_count));
        json_object_object_add(o, "last_result", json_object_new_string(s->last_result ?: ""));
        json_object_object_add(o, "last_reset_usec", json_object_new_int64((int64_t) s->last_reset_usec));
        return o;
}

int main(int argc, char *argv[]) {
        enum { ARG_VERSION = 0x100, ARG_JSON };
        static const struct option options[] = {
                { "help", no_argument, NULL, 'h' },
                { "version", no_argument, NULL, ARG_VERSION },
                { "json", no_argument, NULL, ARG_JSON },
                {}
        };
        struct ctl c = {};
        const struct verb *verb = NULL;
        int opt, r;

        opterr = 0;
        /* '+' stops at the verb; its own arguments follow it. */
        while ((opt = getopt_long(argc, argv, "+h", options, NULL)) >= 0)
                switch (opt) {
                case 'h':
                        help();
                        return 0;
                case ARG_VERSION:
                        puts(PACKAGE_STRING);
                        return 0;
                case ARG_JSON:
                        c.json = true;
                        break;
                default:
                        fprintf(stderr, "%s: unknown option %s (see --help)\n", program_invocation_short_name,
                                argv[optind - 1]);
                        return CTL_EXIT_USAGE;
                }
        if (optind >= argc) {
                fprintf(stderr, "%s: a command is needed (see --help)\n", program_invocation_short_name);
                return CTL_EXIT_USAGE;
        }
        for (size_t i = 0; i < ELEMENTSOF(verbs); i++)
                if (strcmp(argv[optind], verbs[i].name) == 0)
                        verb = &verbs[i];
        if (!verb) {
                fprintf(stderr, "%s: unknown command '%s' (see --help)\n", program_invocation_short_name,
                        argv[optind]);
                return CTL_EXIT_USAGE;
        }
        /* Options may follow the verb too: vfio-resetctl list --json. What
         * follows "--" is not ours (hold's COMMAND). */
        argc -= optind;
        argv += optind;
        for (int i = 1; i < argc && strcmp(argv[i], "--") != 0; i++)
                if (strcmp(argv[i], "--json") == 0) {
                        c.json = true;
                        memmove(&argv[i], &argv[i + 1], sizeof(char *) * (size_t) (argc - i));
                        argc--, i--;
                } else if (!verb->own_options && argv[i][0] == '-' && argv[i][1] == '-') {
                        fprintf(stderr, "%s: unknown option %s for %s\n", program_invocation_short_name, argv[i],
                                verb->name);
                        return CTL_EXIT_USAGE;
                }

        /* The verb connects (ctl_connect) once its arguments are known to be good. */
        r = verb->run(&c, argc, argv);
        sd_bus_flush_close_unref(c.bus);
        return r;
}
