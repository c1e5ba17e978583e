/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* The arbiter: one reset state machine per dev_set (arbiter.c, its table of
 * transitions at the top). It knows nothing of D-Bus: requests come in as
 * opaque handles with parsed options, and everything it tells the world goes
 * out through struct arbiter_ops, which the bus face (arbiter-dbus.c) fills.
 *
 *     idle -> quiescing -> resetting -> resuming -> idle
 *                  \__________________/
 *                 (timeout, device gone, stop)
 *
 * quiescing: every peer of the set got a unicast Pause; the arbiter waits for
 *   each PauseComplete (or for the peer to leave) until the deadline; then,
 *   without Force, the reset is abandoned (quiesce-timeout), with Force the
 *   silent peers get Pause "force" and it goes on.
 *   With Borrow, the outside holders are stopped meanwhile, each through its
 *   quiesce adapter (quiesce.h); one that cannot be stopped in time ends the
 *   reset whatever Force says.
 * resetting: a worker thread runs D0, the kernel reset and the read-back
 *   (with Borrow, on group fds borrowed just before; closed when it ends).
 * resuming: every peer got Resume, and the holders are let run again one
 *   after the other in reverse order; the reset ends (its requests are
 *   answered) once everything that was quiesced runs again.
 *
 * A request while quiescing joins the reset under way; while resetting or
 * resuming it queues one follow-up reset (a request is always answered by a
 * reset that began after it arrived), which later requests join. */

#include <stdbool.h>
#include <stdint.h>
#include <systemd/sd-event.h>

#include "borrow.h"
#include "devset.h"
#include "kernel.h"
#include "ownership.h"
#include "peer.h"
#include "quiesce.h"

enum dev_set_state {
        DEV_SET_IDLE,
        DEV_SET_QUIESCING,
        DEV_SET_RESETTING,
        DEV_SET_RESUMING,
        _DEV_SET_STATE_MAX,
};

enum reset_result {
        RESET_DONE,
        RESET_QUIESCE_TIMEOUT,
        RESET_FAILED,
        RESET_DEVICE_GONE,
        RESET_STOPPING,         /* the daemon stops */
        RESET_NOT_OWNED,        /* Borrow: a holder no adapter may stop */
        RESET_QUIESCE_FAILED,   /* Borrow: an adapter could not stop a holder */
        RESET_BORROW_FAILED,    /* Borrow: a holder's group could not be borrowed or a free one opened */
        _RESET_RESULT_MAX,
};

/* MESSAGE_ID= of the journal entries that begin and end a reset, with
 * VFIO_DEVSET=, VFIO_RESET_ID= and (at the end) VFIO_RESULT= (vfio-resetd(8),
 * JOURNAL). Fixed for good: journalctl MESSAGE_ID=... finds them. */
#define RESET_STARTED_MESSAGE_ID  "452da3bd6b0a40a4b30022478afea2b0"
#define RESET_FINISHED_MESSAGE_ID "5dc1080f7e454114a4cfd92d5bcac311"

struct reset_options {
        uint64_t quiesce_timeout_usec;
        bool force;
        bool borrow;            /* also stop outside holders and borrow their groups (borrow.h) */
        bool no_wait;           /* the caller is answered once the reset is accepted (the bus face's) */
};

struct reset_outcome {
        const char *set_path;
        const char *set_id;
        uint64_t reset_id;              /* 0: refused before it began */
        enum reset_result result;
        const char *message;            /* why it did not succeed; NULL when done */
        uint64_t duration_usec;
};

/* What the arbiter says, in the order it says it. userdata is arbiter.userdata. */
struct arbiter_ops {
        void (*pause)(void *userdata, const char *peer, const char *set_path, uint64_t reset_id, const char *type,
                      uint64_t deadline_usec, char **addresses);
        void (*resume)(void *userdata, const char *peer, const char *set_path, uint64_t reset_id,
                       const char *result);
        void (*started)(void *userdata, const char *set_path, uint64_t reset_id);
        void (*finished)(void *userdata, const struct reset_outcome *o);
        /* Answer one request: called exactly once for every request handed in. */
        void (*reply)(void *userdata, void *request, const struct reset_outcome *o);
        void (*changed)(void *userdata, struct dev_set *s, const char *const *properties);
};

struct reset;

struct arbiter {
        sd_event *event;
        const struct kernel_ops *kernel;
        struct ownership *ownership;
        struct peer_registry *peers;
        const struct arbiter_ops *ops;
        void *userdata;
        /* Borrow: the outside holders of vfio devices now, and the adapters
         * that may stop them, in order of preference. */
        int (*holders)(void *userdata, const struct device_holder **ret, size_t *n_ret);
        void *holders_userdata;
        struct quiesce_adapter **adapters;
        size_t n_adapters;

        uint64_t last_reset_id;
        struct reset *active;           /* every reset begun and not ended, those whose set vanished too */
        bool stopping;
        uint64_t stop_timeout_usec;     /* how long a stop waits for a kernel reset */
        sd_event_source *stop_timer;
        void (*stopped)(void *userdata);        /* called once nothing is under way any more */
        void *stopped_userdata;
        unsigned bugs;                  /* impossible transitions refused */
};

const char *dev_set_state_to_string(enum dev_set_state s);
const char *reset_result_to_string(enum reset_result r);
/* The transition table. */
bool dev_set_transition_allowed(enum dev_set_state from, enum dev_set_state to);

/* The events that enter the machine. */

/* Start, join or queue a reset of the set; the request is answered through
 * ops->reply when that reset ends. The set must be managed, or the options
 * say Borrow. -ESHUTDOWN once stopping. */
int arbiter_request(struct arbiter *a, struct dev_set *s, void *request, const struct reset_options *o);
/* Could a reset with these options (Borrow) begin now? -EPERM with
 * *ret_message naming the holders no adapter may stop and what would allow
 * it; 0 when it could. Nothing is stopped. */
int arbiter_borrow_check(struct arbiter *a, struct dev_set *s, const struct reset_options *o, char **ret_message);
/* -EACCES: the sender was not sent a pause with this id. */
int arbiter_pause_complete(struct arbiter *a, const char *sender, uint64_t reset_id);
/* A peer took or watched a device of the set: mid-reset it counts as paused and hears the Resume. */
int arbiter_peer_joined(struct arbiter *a, struct dev_set *s, const char *peer);
/* A peer left the bus, or released everything it had in some set. */
void arbiter_peer_left(struct arbiter *a, const char *name);
/* A member is about to disappear (udev remove, unbind, the kernel asks for
 * it back): Pause "gone" to its peers, which lose it; its set's reset ends. */
void arbiter_device_gone(struct arbiter *a, struct device *d);
/* The set object is about to be freed: its reset goes on without it. */
void arbiter_dev_set_gone(struct arbiter *a, struct dev_set *s);
/* Refuse new requests, end what waits, let a kernel reset finish (up to
 * stop_timeout_usec), resume every peer, answer every request; then call
 * stopped(userdata), from the event loop or from this call. */
void arbiter_stop(struct arbiter *a, void (*stopped)(void *userdata), void *userdata);
/* Free everything; requests still open are answered as if stopping. */
void arbiter_done(struct arbiter *a);

/* What the bus shows. */
enum dev_set_state arbiter_state(const struct dev_set *s);
/* Does a reset hold the set's peers paused now (they will hear a Resume)? */
bool arbiter_holds_peers_paused(const struct dev_set *s);
/* The peers that acknowledged the pause under way, as a new strv. */
int arbiter_paused_peers(const struct dev_set *s, char ***ret);
