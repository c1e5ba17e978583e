/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* A private system bus (dbus-daemon as our child) and the real daemon on it. */

#include <poll.h>
#include <stdbool.h>
#include <sys/types.h>
#include <systemd/sd-bus.h>

struct harness {
        char dir[64];           /* temporary folder: bus socket, config, daemon log */
        pid_t bus_pid;
        pid_t daemon_pid;
        sd_bus *bus;            /* the test's own connection */
        const char *daemon;     /* the daemon binary: $VRD_DAEMON unless set */
        const char *const *wrapper; /* a command (NULL-terminated) that runs the daemon, e.g. setpriv */
        pid_t polkit_pid;       /* python3-dbusmock's polkitd, when started */
        bool daemon_checked;    /* harness_start_daemon started it: harness_stop fails the test unless it exits 0 */
        /* Runs in the daemon's child just before its exec (tests/service-manager.c). */
        void (*before_exec)(void *userdata);
        void *before_exec_userdata;
};

#define POLKIT_NAME "org.freedesktop.PolicyKit1"
#define POLKIT_PATH "/org/freedesktop/PolicyKit1/Authority"
#define POLKIT_MOCK_IFACE "org.freedesktop.DBus.Mock"
#define SYSTEMD_NAME "org.freedesktop.systemd1"
#define SYSTEMD_PATH "/org/freedesktop/systemd1"

bool harness_name_has_owner(struct harness *h, const char *name);
/* python3-dbusmock's polkitd template on the private bus: it denies until told
 * otherwise (Mock.SetAllowed). Its log goes to h->dir/polkitd-mock.log. */
void harness_start_polkit(struct harness *h);

/* Starts dbus-daemon and exports DBUS_SYSTEM_BUS_ADDRESS. */
void harness_start_bus(struct harness *h);
/* Starts h->daemon (or $VRD_DAEMON) with extra args (NULL-terminated) and waits for its name. */
void harness_start_daemon(struct harness *h, const char *const *args);
/* ms, or ten times it when $VRD_DAEMON_WRAP runs the daemon (valgrind starts
 * and stops it many times slower). */
unsigned harness_daemon_ms(unsigned ms);
/* Stops what was started; a daemon of harness_start_daemon must exit 0 on
 * SIGTERM (a sanitizer's or valgrind's report makes it exit otherwise), or the
 * test fails with its log on stderr. */
void harness_stop(struct harness *h);
bool harness_daemon_alive(struct harness *h);
/* sig to the daemon, and waits for it: its exit status, 128 + signal if killed. */
int harness_kill_daemon(struct harness *h, int sig);
/* SIGTERM to the daemon; its exit status, 128 + signal if killed, -1 if it still ran after timeout_ms. */
int harness_terminate_daemon(struct harness *h, unsigned timeout_ms);

/* Runs a shell command; returns its exit status and what it printed (stdout and stderr). */
int harness_run(char **ret_output, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Runs cmd, checks its exit status and that its output has every needle; returns the output. */
char *harness_assert_run(int want_status, const char *cmd, const char *const *needles);
#define assert_run(want_status, cmd, ...) \
        harness_assert_run((want_status), (cmd), (const char *const[]) { __VA_ARGS__, NULL })
/* Formats into one of a ring of buffers, so that several results live in one call. */
char *cmdf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* A peer on a connection of its own that watches address's set and never
 * acknowledges a pause: it keeps a reset quiescing until its deadline. */
sd_bus *harness_silent_watcher(const char *address);

/* Processes bus messages until *done or timeout_ms passes; false on timeout. */
bool harness_wait(struct harness *h, const bool *done, unsigned timeout_ms);

/* A process whose output (stdout and stderr) the test reads line by line. */
struct harness_child {
        pid_t pid;
        int fd;
        char buf[8192];
        size_t len;
        char skipped[1024];     /* lines harness_expect passed over, quoted */
};

/* Runs argv (argv[0] a path; NULL-terminated). */
void harness_spawn(struct harness_child *c, const char *const *argv);
/* The next line that starts with prefix (earlier lines are consumed), or NULL on timeout. */
char *harness_expect(struct harness_child *c, const char *prefix, unsigned timeout_ms);
/* The next line that starts with prefix, with needle in it (NULL: any); the test fails on timeout. */
void harness_expect_line(struct harness_child *c, const char *prefix, const char *needle);
/* Waits for the process to end: its exit status, 128 + signal if killed, -1 on timeout. */
int harness_child_wait(struct harness_child *c, unsigned timeout_ms);
/* SIGKILLs it if it still runs, reaps it, closes its pipe. */
void harness_child_stop(struct harness_child *c);

/* Many peers in this process, one bus connection each, that watch one device
 * and answer every Pause with PauseComplete at once. */
struct crowd_peer {
        sd_bus *bus;
        uint64_t paused;        /* the last reset id paused */
        uint64_t n_resumed;     /* Resume signals heard */
};

struct crowd {
        struct crowd_peer *peers;
        size_t n;
        struct pollfd *fds;
        bool *queued;
};

/* How many peers the fd limit leaves room for, after raising it as far as it goes. */
size_t crowd_room(void);
/* Connects n peers (at most crowd_room()), each Watch(address). */
void crowd_join(struct crowd *c, size_t n, const char *address);
/* The same, peer i watching addresses[i % n_addresses]. */
void crowd_join_spread(struct crowd *c, size_t n, const char *const *addresses, size_t n_addresses);
/* Processes what every peer and also (may be NULL) has ready, waiting up to 1 ms: one poll(2) for all. */
void crowd_pump(struct crowd *c, sd_bus *also);
/* How many peers heard at least this many Resume signals; paused any pause. */
size_t crowd_resumed(const struct crowd *c, uint64_t at_least);
size_t crowd_paused(const struct crowd *c);
void crowd_leave(struct crowd *c);

/* tests/fake-systemd.py (python3-dbusmock) as org.freedesktop.systemd1 on the
 * private bus, run as child c; parameters: its JSON ({"hang": ..., "fail": ...}). */
void harness_start_systemd(struct harness *h, struct harness_child *c, const char *parameters);
/* The calls it has seen, in order: "FreezeUnit a.scope, ThawUnit a.scope" (a static buffer). */
const char *harness_systemd_calls(struct harness *h);
