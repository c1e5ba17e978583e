/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* A scriptable peer process for the tests: takes or watches devices, then
 * answers pauses as told, and reports every event as one line on stdout:
 *   took ADDR paused=B fds=OK iommu=WHAT | watching ADDR | error NAME MESSAGE
 *   pause ID TYPE ADDR... | acked ID | resume ID RESULT
 * "ready NAME" comes once every take and watch is answered.
 * Usage: test-peer [--keep] [--take ADDR]... [--watch ADDR]... [--silent] [--ack-after MS]
 * --keep holds on to the fds it took (else they close with the reply), as a
 * peer that uses them does. SIGUSR1 takes every --take device again (as a
 * peer does when a restarted daemon comes back). */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <systemd/sd-bus.h>
#include <systemd/sd-event.h>

#include "bus-names.h"

static sd_bus *bus;
static sd_event *event;
static bool silent, keep;
static uint64_t ack_after_usec;
static const char *takes[16];
static size_t n_takes;

static int ack(uint64_t id) {
        sd_bus_error e = SD_BUS_ERROR_NULL;
        int r = sd_bus_call_method(bus, VRD_BUS_NAME, VRD_ROOT_PATH, VRD_MANAGER_IFACE, "PauseComplete", &e, NULL,
                                   "t", id);

        if (r < 0)
                printf("error %s %s\n", e.name, e.message);
        else
                printf("acked %llu\n", (unsigned long long) id);
        sd_bus_error_free(&e);
        return 0;
}

static int on_ack_timer(sd_event_source *s, uint64_t usec, void *userdata) {
        ack((uint64_t) (uintptr_t) userdata);
        sd_event_source_unref(s);
        return 0;
}

static int on_pause(sd_bus_message *m, void *userdata, sd_bus_error *error) {
        const char *set, *type;
        uint64_t id, deadline;
        char **addresses = NULL;

        if (sd_bus_message_read(m, "otst", &set, &id, &type, &deadline) < 0 ||
            sd_bus_message_read_strv(m, &addresses) < 0)
                return 0;
        printf("pause %llu %s", (unsigned long long) id, type);
        for (char **a = addresses; a && *a; a++)
                printf(" %s", *a);
        printf("\n");
        for (char **a = addresses; a && *a; a++)
                free(*a);
        free(addresses);
        if (silent || strcmp(type, "pause") != 0)
                return 0;
        if (ack_after_usec == 0)
                return ack(id);
        return sd_event_add_time_relative(event, NULL, CLOCK_MONOTONIC, ack_after_usec, 0, on_ack_timer,
                                          (void *) (uintptr_t) id);
}

static int on_resume(sd_bus_message *m, void *userdata, sd_bus_error *error) {
        const char *set, *result;
        uint64_t id;

        if (sd_bus_message_read(m, "ots", &set, &id, &result) >= 0)
                printf("resume %llu %s\n", (unsigned long long) id, result);
        return 0;
}

static int call(const char *method, const char *address) {
        sd_bus_error e = SD_BUS_ERROR_NULL;
        sd_bus_message *reply = NULL;
        int device, iommu, paused, r;
        struct stat a, b;

        r = sd_bus_call_method(bus, VRD_BUS_NAME, VRD_ROOT_PATH, VRD_MANAGER_IFACE, method, &e, &reply, "s", address);
        if (r < 0)
                printf("error %s %s\n", e.name, e.message);
        else if (strcmp(method, "TakeDevice") == 0 && sd_bus_message_read(reply, "hhb", &device, &iommu, &paused) >= 0) {
                char path[64], target[256] = "?";
                ssize_t n;

                snprintf(path, sizeof(path), "/proc/self/fd/%d", iommu);
                n = readlink(path, target, sizeof(target) - 1);
                target[n > 0 ? n : 1] = '\0';
                printf("took %s paused=%d fds=%s iommu=%s\n", address, paused,
                       fstat(device, &a) == 0 && fstat(iommu, &b) == 0 ? "OK" : "BAD", target);
                if (keep && (fcntl(device, F_DUPFD_CLOEXEC, 3) < 0 || fcntl(iommu, F_DUPFD_CLOEXEC, 3) < 0))
                        printf("error keep %m\n");
        }
        else
                printf("watching %s\n", address);
        sd_bus_error_free(&e);
        sd_bus_message_unref(reply);
        return r;
}

static int on_usr1(sd_event_source *s, const struct signalfd_siginfo *si, void *userdata) {
        for (size_t i = 0; i < n_takes; i++)
                call("TakeDevice", takes[i]);
        return 0;
}

int main(int argc, char *argv[]) {
        static const struct option options[] = {
                { "take", required_argument, NULL, 't' },
                { "watch", required_argument, NULL, 'w' },
                { "silent", no_argument, NULL, 's' },
                { "ack-after", required_argument, NULL, 'a' },
                { "keep", no_argument, NULL, 'k' },
                {}
        };
        int c;

        setvbuf(stdout, NULL, _IOLBF, 0);
        if (sd_event_default(&event) < 0 || sd_bus_open_system(&bus) < 0 ||
            sd_bus_attach_event(bus, event, 0) < 0)
                return 1;
        /* Subscribe before taking: a pause may follow the reply at once. */
        if (sd_bus_match_signal(bus, NULL, VRD_BUS_NAME, VRD_ROOT_PATH, VRD_MANAGER_IFACE, "Pause", on_pause, NULL) < 0 ||
            sd_bus_match_signal(bus, NULL, VRD_BUS_NAME, VRD_ROOT_PATH, VRD_MANAGER_IFACE, "Resume", on_resume, NULL) < 0)
                return 1;
        const char *unique = NULL;

        while ((c = getopt_long(argc, argv, "", options, NULL)) >= 0)
                switch (c) {
                case 't':
                        call("TakeDevice", optarg);
                        if (n_takes < sizeof(takes) / sizeof(takes[0]))
                                takes[n_takes++] = optarg;
                        break;
                case 'w':
                        call("Watch", optarg);
                        break;
                case 's':
                        silent = true;
                        break;
                case 'a':
                        ack_after_usec = (uint64_t) atoi(optarg) * 1000;
                        break;
                case 'k':
                        keep = true;
                        break;
                default:
                        return 2;
                }
        {
                sigset_t usr1;

                sigemptyset(&usr1);
                sigaddset(&usr1, SIGUSR1);
                if (sigprocmask(SIG_BLOCK, &usr1, NULL) < 0 || sd_event_add_signal(event, NULL, SIGUSR1, on_usr1, NULL) < 0)
                        return 1;
        }
        (void) sd_bus_get_unique_name(bus, &unique);
        printf("ready %s\n", unique);
        (void) sd_bus_set_exit_on_disconnect(bus, true);
        return sd_event_loop(event) < 0;
}
