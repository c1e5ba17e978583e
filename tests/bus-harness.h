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
        const char *daemon;     /* the daemon binary: $VRD_DAEMON unless set */
};

/* Starts dbus-daemon and exports DBUS_SYSTEM_BUS_ADDRESS. */
void harness_start_bus(struct harness *h);
/* Starts h->daemon (or $VRD_DAEMON) with extra args (NULL-terminated) and waits for its name. */
void harness_start_daemon(struct harness *h, const char *const *args);
void harness_stop(struct harness *h);
bool harness_daemon_alive(struct harness *h);

/* Runs a shell command; returns its exit status and what it printed (stdout and stderr). */
int harness_run(char **ret_output, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Processes bus messages until *done or timeout_ms passes; false on timeout. */
bool harness_wait(struct harness *h, const bool *done, unsigned timeout_ms);

/* A process whose output (stdout and stderr) the test reads line by line. */
struct harness_child {
        pid_t pid;
        int fd;
        char buf[8192];
        size_t len;
};

/* Runs argv (argv[0] a path; NULL-terminated). */
void harness_spawn(struct harness_child *c, const char *const *argv);
/* The next line that starts with prefix (earlier lines are consumed), or NULL on timeout. */
char *harness_expect(struct harness_child *c, const char *prefix, unsigned timeout_ms);
/* Waits for the process to end: its exit status, 128 + signal if killed, -1 on timeout. */
int harness_child_wait(struct harness_child *c, unsigned timeout_ms);
/* SIGKILLs it if it still runs, reaps it, closes its pipe. */
void harness_child_stop(struct harness_child *c);
