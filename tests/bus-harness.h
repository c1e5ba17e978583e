/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* A private system bus (dbus-daemon as our child) and the real daemon on it. */

#include <stdbool.h>
#include <sys/types.h>
#include <systemd/sd-bus.h>

struct harness {
        char dir[64];           /* temporary folder: bus socket, config, daemon log */
        pid_t bus_pid;
        pid_t daemon_pid;
        sd_bus *bus;            /* the test's own connection */
};

/* Starts dbus-daemon and exports DBUS_SYSTEM_BUS_ADDRESS. */
void harness_start_bus(struct harness *h);
/* Starts $VRD_DAEMON with extra args (NULL-terminated) and waits for its name. */
void harness_start_daemon(struct harness *h, const char *const *args);
void harness_stop(struct harness *h);
bool harness_daemon_alive(struct harness *h);

/* Runs a shell command; returns its exit status and what it printed (stdout and stderr). */
int harness_run(char **ret_output, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Processes bus messages until *done or timeout_ms passes; false on timeout. */
bool harness_wait(struct harness *h, const bool *done, unsigned timeout_ms);
