/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* vfio-resetctl reset ADDRESS [--timeout=SEC] [--force] [--borrow]: reset a
 * device's dev_set with its peers' consent, showing each phase as the daemon
 * announces it. */
#include <getopt.h>
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "macro.h"
#include "strv.h"
#include "vfio-resetctl.h"


/* What was printed last, so that each phase shows once. */
struct shown {
        bool header;
        uint64_t reset_id;
        char line[80];
};

static void on_progress(vrd_peer *p, const struct vrd_reset_progress *progress, void *userdata) {
        size_t n_peers = strv_length((char *const *) progress->peers);
        size_t n_paused = strv_length((char *const *) progress->paused_peers);
        struct shown *shown = userdata;
        char line[sizeof(shown->line)] = "";

        /* Nothing has begun (a refusal is coming, or the first signals): say nothing yet. */
        if (progress->reset_id == 0 && strcmp(progress->state, "idle") == 0)
                return;
        if (!shown->header) {
                printf("Resetting dev_set %s (%zu peer%s)\n", ctl_devset_id(progress->devset), n_peers,
                       n_peers == 1 ? "" : "s");
                shown->header = true;
        }
        if (progress->reset_id != shown->reset_id) {
                printf("reset %" PRIu64 " started\n", progress->reset_id);
                shown->reset_id = progress->reset_id;
        }
        if (strcmp(progress->state, "quiescing") == 0)
                snprintf(line, sizeof(line), "quiescing: %zu of %zu peer%s acked", n_paused, n_peers,
                         n_peers == 1 ? "" : "s");
        else if (strcmp(progress->state, "idle") != 0)
                snprintf(line, sizeof(line), "%s", progress->state);
        if (*line && strcmp(line, shown->line) != 0)
                puts(line);
        snprintf(shown->line, sizeof(shown->line), "%s", line);
        fflush(stdout);
}

static int parse_timeout(const char *s, uint64_t *ret) {
        char *end;
        double sec;

        errno = 0;
        sec = strtod(s, &end);
        if (errno != 0 || end == s || *end || !isfinite(sec) || sec <= 0 || sec > 86400 * 365) {
                fprintf(stderr, "%s: invalid --timeout '%s': expected a number of seconds above 0, e.g. 5 or 0.5\n",
                        program_invocation_short_name, s);
                return -CTL_EXIT_USAGE;
        }
        *ret = (uint64_t) (sec * 1e6 + 0.5) ?: 1;
        return 0;
}

static void print_json(const char *address, const char *devset, vrd_peer *p, uint64_t duration) {
        json_object *o = json_object_new_object();

        json_object_object_add(o, "address", json_object_new_string(address));
        if (devset) {
                json_object_object_add(o, "devset", json_object_new_string(ctl_devset_id(devset)));
                json_object_object_add(o, "result", json_object_new_string("done"));
                json_object_object_add(o, "duration_usec", json_object_new_int64((int64_t) duration));
        } else {
                json_object_object_add(o, "result", json_object_new_string("error"));
                json_object_object_add(o, "error", json_object_new_string(vrd_peer_error_name(p) ?: ""));
                json_object_object_add(o, "message", json_object_new_string(vrd_peer_error_message(p) ?: ""));
        }
        ctl_print_json(o);
        json_object_put(o);
}

int cmd_reset(struct ctl *c, int argc, char *argv[]) {
        enum { ARG_TIMEOUT = 0x100, ARG_FORCE, ARG_BORROW };
        static const struct option options[] = {
                { "timeout", required_argument, NULL, ARG_TIMEOUT },
                { "force", no_argument, NULL, ARG_FORCE },
                { "borrow", no_argument, NULL, ARG_BORROW },
                {}
        };
        _cleanup_(vrd_peer_unrefp) vrd_peer *p = NULL;
        _cleanup_free_ char *devset = NULL;
        char address[PCI_ADDRESS_STRLEN], duration_text[32];
        uint64_t timeout = 0, flags = 0, duration = 0;
        struct shown shown = {};
        int opt, r;

        optind = 0;
        while ((opt = getopt_long(argc, argv, "", options, NULL)) >= 0)
                switch (opt) {
                case ARG_TIMEOUT:
                        r = parse_timeout(optarg, &timeout);
                        if (r < 0)
                                return -r;
                        break;
                case ARG_FORCE:
                        flags |= VRD_RESET_FORCE;
                        break;
                case ARG_BORROW:
                        flags |= VRD_RESET_BORROW;
                        break;
                default:
                        if (optopt == ARG_TIMEOUT)
                                fprintf(stderr, "%s: --timeout needs a value\n", program_invocation_short_name);
                        else
                                fprintf(stderr, "%s: unknown option %s for reset\n", program_invocation_short_name,
                                        argv[optind - 1]);
                        return CTL_EXIT_USAGE;
                }
        if (argc - optind != 1) {
                fprintf(stderr, "%s: reset takes one PCI address\n", program_invocation_short_name);
                return CTL_EXIT_USAGE;
        }
        r = ctl_parse_address(argv[optind], address);
        if (r >= 0)
                r = ctl_peer(c, &p);
        if (r < 0)
                return -r;
        if (!c->json)
                vrd_peer_on_reset_progress(p, on_progress, &shown);

        r = vrd_peer_reset(p, address, timeout, flags, &devset, &duration);
        if (c->json)
                print_json(address, r < 0 ? NULL : devset, p, duration);
        if (r < 0) {
                fprintf(stderr, "%s: cannot reset %s: %s\n", program_invocation_short_name, address,
                        vrd_peer_error_message(p) ?: strerror(-r));
                return CTL_EXIT_FAILURE;
        }
        if (!c->json)
                printf("done in %s\n", ctl_format_duration(duration, duration_text));
        return 0;
}
