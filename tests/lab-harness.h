/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* The arbiter tests' daemon, peers and calls (lab-harness.c). */

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>
#include <umockdev.h>

#include "bus-harness.h"

#define SET03 VRD_DEVSET_PATH_PREFIX "/slot_0000_03_3"
#define SET04 VRD_DEVSET_PATH_PREFIX "/bus_0000_04"
#define DEV_04_1 "/sys/devices/pci0000:00/0000:00:07.0/0000:04:00.1"

extern UMockdevTestbed *tb;
extern struct harness h;
extern char kernel_log[128], kernel_spec[128], config[128], open_log[128];
/* The double's spec while setup() starts the daemon; "delay_ms=20" when NULL. */
extern const char *lab_kernel_spec;
/* The daemon's arguments in the lab. */
extern const char *const lab_daemon_args[];
/* How setup() starts the daemon once the bus is up: harness_start_daemon() when NULL. */
extern void (*lab_start_daemon)(void);

/* --- the daemon --- */
/* The kernel double's spec for the next resets ("delay_ms=20,fail=EIO"; see kernel-fake.h). */
void set_kernel(const char *spec);
/* Check fixture: fake lab, private bus, the daemon. */
void setup(void);
void teardown(void);
/* Kernel resets logged by the double whose line has this text. */
int count_resets(const char *text);
/* The double's group and device opens (open_log) whose line has this text. */
int count_opens(const char *text);
/* When the double's (only) kernel reset whose line has this text began and
 * ended, CLOCK_MONOTONIC microseconds. */
void reset_span(const char *text, uint64_t *ret_start, uint64_t *ret_end);

/* --- peer processes (tests/test-peer) --- */
struct peer {
        pid_t pid;
        int fd;
        char buf[8192];
        size_t len;
        char name[64];
};

/* test-peer with these arguments (NULL-terminated), once it said "ready". */
void peer_start(struct peer *p, ...);
/* The first line not yet taken that starts with prefix (it is taken; the
 * others stay for later questions), or NULL on timeout. */
char *peer_expect(struct peer *p, const char *prefix, int timeout_ms);
void assert_peer_says(struct peer *p, const char *prefix, const char *needle);
void peer_stop(struct peer *p);

/* --- calls --- */
struct call {
        bool done;
        char error[64];
        char message[512];
        char result[32];
        uint64_t duration;
};

/* ResetDevice, answered later. Options: "Force=b1,QuiesceTimeoutUSec=t300000" (s: a string, for refusals). */
void reset_async(struct call *c, const char *address, const char *options);
void reset_sync(struct call *c, const char *address, const char *options);
char *get_string(const char *path, const char *iface, const char *prop);
uint64_t get_u64(const char *path, const char *prop);
void assert_idle(const char *path);

/* A process that knows nothing of the daemon (sleep) and holds /dev/vfio/GROUP open, once exec'd. */
pid_t hold_group(int group);
/* The same for any node: /dev/vfio/devices/vfioN. */
pid_t hold_node(const char *node);
/* /proc/PID/stat's state: R, S, T (stopped), ...; 0 when gone. */
char lab_state_of(pid_t pid);
