/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* Quiesce adapters: how the daemon stops a program that holds a member of a
 * dev_set without speaking the protocol (QEMU, a DPDK app), for the length of
 * one borrowed reset, and lets it run again. One file per adapter, each
 * filling struct quiesce_adapter:
 *
 *   quiesce-libvirt.c  the libvirt domain the holder is: virDomainSuspend / virDomainResume
 *   quiesce-systemd.c  the holder's systemd unit: FreezeUnit / ThawUnit
 *   quiesce-process.c  the holder process: SIGSTOP / SIGCONT, only with Force
 *
 * The borrow plan (borrow.c) asks the adapters in order of preference which
 * one applies to each holder; the arbiter stops the targets while it
 * quiesces the peers, and resumes them in reverse order once the borrowed fds
 * are closed. Every call is asynchronous and reports once, from the event
 * loop: nothing here may block the daemon. */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "holders.h"
#include "macro.h"
#include "pci-address.h"

/* A holder, pinned: pidfd refers to the process seen by the scan even if its
 * pid is reused later (pidfd_open(2)); signals go through it. */
struct quiesce_holder {
        const struct holder *holder;
        int pidfd;
        /* The members of the set to be reset, for an adapter that cross-checks
         * what it knows of the holder (libvirt: the domain's <hostdev>s); none
         * where no reset is planned. */
        const struct pci_address *members;
        size_t n_members;
};

/* What identify writes at most: "libvirt domain " + a name + " (" + a UUID + ")". */
#define QUIESCE_IDENTITY_MAX 320

struct quiesce_adapter;

/* What one adapter stops for one reset: a unit (every holder in it at once)
 * or one process. The adapter allocates it with its own state after it. */
struct quiesce_target {
        const struct quiesce_adapter *adapter;
        char name[HOLDER_NAME_MAX + 16];        /* "unit qemu-vm1.scope", "pid 12 (qemu, uid 0)" */
        bool stopped;                           /* a stop succeeded and no resume began since */
};

/* done(userdata, 0 or a negative errno, a sentence naming the target and why).
 * Called once per stop or resume, from the event loop, never from within the
 * call that started it, and never after the target was freed. */
typedef void (*quiesce_done_t)(void *userdata, struct quiesce_target *t, int error, const char *message);

struct quiesce_adapter {
        const char *name;               /* "systemd", "process" */

        /* Can it stop this holder, with or without Force? When it cannot and
         * something would allow it, *ret_hint says what ("with Force: SIGSTOP
         * of the process"); else NULL. */
        bool (*applies)(const struct quiesce_adapter *a, const struct quiesce_holder *h, bool force,
                        const char **ret_hint);
        /* Does t (one of this adapter's) already stop h? (Two holders in one unit.) */
        bool (*covers)(const struct quiesce_target *t, const struct quiesce_holder *h);
        int (*target_new)(const struct quiesce_adapter *a, const struct quiesce_holder *h,
                          struct quiesce_target **ret);
        /* Stop the target before deadline_usec (CLOCK_MONOTONIC); on success
         * t->stopped is set before done runs. A stop that did not finish in
         * time undoes what it did and reports -ETIMEDOUT. */
        int (*stop)(struct quiesce_target *t, uint64_t deadline_usec, quiesce_done_t done, void *userdata);
        /* Let it run again (also after a stop that failed or is still under
         * way: that one is cancelled and undone). A target that was never
         * stopped reports 0 at once (from the loop). */
        int (*resume)(struct quiesce_target *t, uint64_t deadline_usec, quiesce_done_t done, void *userdata);
        /* Free it; anything still under way is cancelled without its done. */
        void (*target_free)(struct quiesce_target *t);
        /* Free the adapter (quiesce_adapter_free calls it); its targets are gone before. */
        void (*free)(struct quiesce_adapter *a);

        /* Optional (NULL when the adapter names nothing): what h is, in a
         * person's words, into buf ("libvirt domain vm1 (6c1e...)"); false
         * when the adapter does not know h. Never blocks. */
        bool (*identify)(const struct quiesce_adapter *a, const struct quiesce_holder *h, char *buf, size_t size);
        /* Optional: the virtual machine h is, as its manager names it (name,
         * UUID), valid until the event loop runs again; false when h is none. */
        bool (*domain_of)(const struct quiesce_adapter *a, const struct quiesce_holder *h, const char **ret_name,
                          const char **ret_uuid);

        void *data;
};

struct sd_bus;
struct sd_event;
struct sd_event_source;

/* For adapters: the done a target owes for the stop or resume under way. An
 * outcome known at once is paid from the loop (quiesce_owed_known), never
 * from within the call; any other when it comes (quiesce_owed_pay). */
enum quiesce_op {
        QUIESCE_OP_NONE,
        QUIESCE_OP_STOP,
        QUIESCE_OP_RESUME,
};

struct quiesce_owed {
        struct quiesce_target *target;
        struct sd_event *event;
        const char *description;                /* of the defer source: "quiesce-systemd" */
        enum quiesce_op op;                     /* the one under way, whose done is owed */
        quiesce_done_t done;
        void *userdata;
        struct sd_event_source *defer;          /* pays a known outcome */
        int known_level, known_error;
        char known_message[512];
};

/* op begins; its outcome comes later, through quiesce_owed_pay(). */
void quiesce_owed_begin(struct quiesce_owed *o, enum quiesce_op op, quiesce_done_t done, void *userdata);
/* op begins, and its outcome is known: done runs from the loop. A negative
 * errno when it cannot be arranged (no done will come). */
int quiesce_owed_known(struct quiesce_owed *o, enum quiesce_op op, quiesce_done_t done, void *userdata, int level,
                       int error, const char *fmt, ...) _printf_(7, 8);
/* Owes nothing any more: logs the sentence at level and tells done, the last
 * thing that touches the target (it may free it). */
void quiesce_owed_pay(struct quiesce_owed *o, int level, int error, const char *message);
/* Owes nothing any more, done untold. */
void quiesce_owed_cancel(struct quiesce_owed *o);
/* The target goes: frees the defer source. */
void quiesce_owed_done(struct quiesce_owed *o);

/* virDomainSuspend/virDomainResume through libvirt at uri (qemu:///system).
 * Applies, with or without Force, to a holder whose pid is a running
 * domain's QEMU (its pid file, NAME.pid in /run/libvirt/qemu, or in
 * $VRD_LIBVIRT_PID_DIR), while libvirt is connected. Every libvirt call runs
 * on a thread of the adapter's own. One per process (libvirt's event loop
 * is the process's): -EBUSY for a second. */
int quiesce_libvirt_new(struct sd_event *event, const char *uri, struct quiesce_adapter **ret);
/* For tests: fn(conn, userdata) runs on the libvirt thread, in turn with the
 * adapter's calls, conn being its virConnectPtr (NULL while disconnected);
 * then done(userdata) runs from the event loop. */
int quiesce_libvirt_test_call(struct quiesce_adapter *a, void (*fn)(void *conn, void *userdata),
                              void (*done)(void *userdata), void *userdata);
/* For tests: t's next stop or resume holds the libvirt thread for usec
 * before its libvirt calls, as a libvirtd that does not answer would. */
void quiesce_libvirt_test_stall(struct quiesce_target *t, uint64_t usec);

/* FreezeUnit/ThawUnit through org.freedesktop.systemd1 on bus. Applies to a
 * holder in a service or scope unit other than the daemon's own, a login
 * session's, init.scope, user@.service and the bus's (dbus.service,
 * dbus-broker.service), while systemd owns its name. */
int quiesce_systemd_new(struct sd_bus *bus, struct sd_event *event, struct quiesce_adapter **ret);
/* SIGSTOP/SIGCONT through the pidfd; stopped once every thread says so in
 * /proc/PID/task/TID/stat. Applies with Force only. */
int quiesce_process_new(struct sd_event *event, struct quiesce_adapter **ret);
struct quiesce_adapter *quiesce_adapter_free(struct quiesce_adapter *a);

/* What the first of adapters that knows h says it is (identify), into buf;
 * false when none does. */
bool quiesce_identify(struct quiesce_adapter *const *adapters, size_t n_adapters, const struct quiesce_holder *h,
                      char *buf, size_t size);
