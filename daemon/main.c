/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>


#include "log.h"
#include "macro.h"
#include "strv.h"
#include "main.h"
#include "manager-dbus.h"

DEFINE_TRIVIAL_CLEANUP_FUNC(struct manager *, manager_free)

static void help(void) {
        printf("%s [OPTIONS...]\n\n"
               "Coordinates resets of VFIO PCI dev_sets between the programs that use them.\n\n"
               "  -h --help             Show this help\n"
               "     --version          Show the version\n"
               "  -d --debug            Log debug messages\n"
               "     --config=PATH      Read PATH instead of " CONFIG_FILE_PATH "\n"
               "     --vfio-driver=NAME Treat driver NAME as a vfio-pci variant (repeatable)\n"
               "     --uevents=SOURCE   Follow 'udev' or 'kernel' uevents (default: udev when\n"
               "                        systemd-udevd runs, else kernel)\n",
               program_invocation_short_name);
}

static int parse_argv(int argc, char *argv[], struct manager *m) {
        enum { ARG_VERSION = 0x100, ARG_VFIO_DRIVER, ARG_UEVENTS, ARG_CONFIG };
        static const struct option options[] = {
                { "help", no_argument, NULL, 'h' },
                { "version", no_argument, NULL, ARG_VERSION },
                { "debug", no_argument, NULL, 'd' },
                { "vfio-driver", required_argument, NULL, ARG_VFIO_DRIVER },
                { "uevents", required_argument, NULL, ARG_UEVENTS },
                { "config", required_argument, NULL, ARG_CONFIG },
                {}
        };
        int c;

        opterr = 0;
        while ((c = getopt_long(argc, argv, ":hd", options, NULL)) >= 0)
                switch (c) {
                case 'h':
                        help();
                        return 0;
                case ARG_VERSION:
                        puts(PACKAGE_STRING);
                        return 0;
                case 'd':
                        log_set_max_level(LOG_DEBUG);
                        break;
                case ARG_VFIO_DRIVER:
                        if (!*optarg)
                                return log_error_errno(EINVAL, "--vfio-driver= needs a driver name");
                        if (strv_extend(&m->topology_options.extra_vfio_drivers, optarg) < 0)
                                return log_oom();
                        break;
                case ARG_UEVENTS:
                        if (strcmp(optarg, "udev") == 0)
                                m->uevent_source = UEVENT_SOURCE_UDEV;
                        else if (strcmp(optarg, "kernel") == 0)
                                m->uevent_source = UEVENT_SOURCE_KERNEL;
                        else
                                return log_error_errno(EINVAL, "--uevents=%s: expected 'udev' or 'kernel'", optarg);
                        break;
                case ARG_CONFIG:
                        free(m->config_path);
                        m->config_path = strdup(optarg);
                        if (!m->config_path)
                                return log_oom();
                        break;
                case ':':
                        return log_error_errno(EINVAL, "Option %s needs a value", argv[optind - 1]);
                default:
                        return log_error_errno(EINVAL, "Unknown option %s (see --help)", argv[optind - 1]);
                }
        if (optind < argc)
                return log_error_errno(EINVAL, "Unexpected argument '%s' (see --help)", argv[optind]);
        return 1;
}

int vfio_resetd_main(int argc, char *argv[], const struct kernel_ops *kernel) {
        _cleanup_(manager_freep) struct manager *m = NULL;
        int r;

        r = manager_new(kernel, &m);
        if (r < 0) {
                log_error_errno(r, "Failed to set up: %m");
                return EXIT_FAILURE;
        }
        r = parse_argv(argc, argv, m);
        if (r <= 0)
                return r < 0 ? 2 : EXIT_SUCCESS;

        r = manager_bus_start(m);
        if (r >= 0)
                r = manager_start(m);
        if (r >= 0)
                r = manager_bus_request_name(m);
        if (r < 0)
                return EXIT_FAILURE;
        r = manager_run(m);
        if (r < 0) {
                log_error_errno(r, "Event loop failed: %m");
                return EXIT_FAILURE;
        }
        if (r > 0) {    /* sd-bus ends the loop with 1 when the bus goes away */
                log_error("Lost the connection to the system bus, exiting.");
                return EXIT_FAILURE;
        }
        return EXIT_SUCCESS;
}
