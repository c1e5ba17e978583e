/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* The arbiter: one reset state machine per dev_set,
 *
 *     idle -> quiescing -> resetting -> resuming -> idle
 *
 * quiescing: every peer of the set got a unicast Pause and the daemon waits
 *   for each PauseComplete (or for the peer to leave the bus) until the
 *   deadline; then, without Force, the reset is abandoned (QuiesceTimeout),
 *   with Force the silent peers get Pause "force" and it goes on.
 * resetting: a worker thread runs D0, the kernel reset and the read-back.
 * resuming: every peer gets Resume, every joined request the same reply.
 *
 * A request while quiescing joins the reset under way; while resetting or
 * resuming it queues one follow-up reset (a request is always answered by a
 * reset that began after it arrived), which later requests join. */

#include <stdbool.h>
#include <stdint.h>
#include <systemd/sd-bus.h>
#include <systemd/sd-event.h>

struct manager;
struct dev_set;
struct device;
struct reset_job;

struct reset_options {
        uint64_t quiesce_timeout_usec;
        bool force;
};

struct reset {
        struct manager *manager;
        struct dev_set *set;            /* NULL once the set is gone mid-reset */
        char *set_path;
        char *set_id;
        uint64_t id;                    /* 0 until it starts */
        struct reset_options options;
        uint64_t start_usec;            /* CLOCK_MONOTONIC */

        sd_bus_message **requests;      /* joined method calls, answered together */
        size_t n_requests;
        char **sent;                    /* peers sent this pause */
        char **acked;                   /* peers that completed it or left */
        sd_event_source *deadline;

        struct reset_job *job;
        sd_event_source *job_source;
        char *gone;                     /* a member removed mid-reset */
};

/* Parse ResetDevice's a{sv}; InvalidArgs naming the bad option. */
int reset_options_parse(struct manager *m, sd_bus_message *msg, struct reset_options *ret, sd_bus_error *error);

/* Start, join or queue a reset of the set for this method call; the call is
 * answered when that reset ends. Refusals fill error (NotManaged, NotOwned). */
int arbiter_request(struct dev_set *s, sd_bus_message *msg, const struct reset_options *o, sd_bus_error *error);
int arbiter_pause_complete(struct manager *m, const char *sender, uint64_t reset_id, sd_bus_error *error);
/* Whether a peer of the set should consider itself paused now. */
bool arbiter_paused(const struct dev_set *s);
/* A peer that joins the set mid-reset is paused already and gets the Resume. */
int arbiter_joined_paused(struct dev_set *s, const char *peer);

/* Hooks the rest of the daemon calls. */
/* A peer left the bus, or released everything it had in some set. */
void arbiter_peer_gone(struct manager *m, const char *name);
/* A member is about to disappear (udev remove or unbind): Pause "gone" to its peers, end the reset. */
void arbiter_device_gone(struct manager *m, struct device *d);
/* The set object is about to be freed: detach its resets. */
void arbiter_dev_set_gone(struct dev_set *s);
void arbiter_free_all(struct manager *m);

/* Signals, in arbiter-dbus.c. */
int arbiter_send_pause(struct manager *m, const char *peer, const char *set_path, uint64_t reset_id,
                       const char *type, uint64_t deadline_usec, char **addresses);
int arbiter_send_resume(struct manager *m, const char *peer, const char *set_path, uint64_t reset_id,
                        const char *result);
int arbiter_emit_started(struct manager *m, const char *set_path, uint64_t reset_id);
int arbiter_emit_finished(struct manager *m, const char *set_path, uint64_t reset_id, const char *result,
                          uint64_t duration_usec);
