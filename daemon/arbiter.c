/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The dev_set reset state machine (see arbiter.h). Read it in this order:
 * the transition table, reset_enter() (the one place a state changes), then
 * the events: arbiter_request, arbiter_pause_complete, arbiter_peer_joined,
 * arbiter_peer_left, arbiter_device_gone, arbiter_dev_set_gone, arbiter_stop,
 * and the three the loop delivers: on_deadline, on_job_done, on_resumed. */
#include <assert.h>
#include <errno.h>
#include <fcntl.h>
#include <search.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "arbiter.h"
#include "log.h"
#include "macro.h"
#include "strv.h"
#include "reset-worker.h"

static const bool transitions[_DEV_SET_STATE_MAX][_DEV_SET_STATE_MAX] = {
        [DEV_SET_IDLE]      = { [DEV_SET_QUIESCING] = true },
        [DEV_SET_QUIESCING] = { [DEV_SET_RESETTING] = true, [DEV_SET_RESUMING] = true },
        [DEV_SET_RESETTING] = { [DEV_SET_RESUMING] = true },
        [DEV_SET_RESUMING]  = { [DEV_SET_IDLE] = true },
};

static const char *const state_names[_DEV_SET_STATE_MAX] = {
        [DEV_SET_IDLE] = "idle",
        [DEV_SET_QUIESCING] = "quiescing",
        [DEV_SET_RESETTING] = "resetting",
        [DEV_SET_RESUMING] = "resuming",
};

static const char *const result_names[_RESET_RESULT_MAX] = {
        [RESET_DONE] = "done",
        [RESET_QUIESCE_TIMEOUT] = "quiesce-timeout",
        [RESET_FAILED] = "failed",
        [RESET_DEVICE_GONE] = "device-gone",
        [RESET_STOPPING] = "daemon-stopping",
        [RESET_NOT_OWNED] = "not-owned",
        [RESET_QUIESCE_FAILED] = "quiesce-failed",
        [RESET_BORROW_FAILED] = "borrow-failed",
};

/* The journal fields of every line about reset r (log_struct's "FIELD=format", arguments). */
#define RESET_FIELDS(r) "VFIO_DEVSET=%s", (r)->set_id, "VFIO_RESET_ID=%" PRIu64, (r)->id

/* How long letting a holder run again may take (ThawUnit; SIGCONT is at once). */
#define RESUME_TIMEOUT_USEC (10 * USEC_PER_SEC)

/* Where a borrowed reset's quiesce target is. */
enum target_state {
        TARGET_IDLE,                    /* not asked yet */
        TARGET_STOPPING,
        TARGET_STOPPED,
        TARGET_FAILED,
        TARGET_RESUMING,
        TARGET_RESUMED,
};

/* A peer sent this reset's pause. */
struct reset_peer {
        char *name;
        bool acked;                     /* completed the pause, or left */
};

struct reset {
        struct arbiter *arbiter;
        struct dev_set *set;            /* NULL once the set vanished mid-reset */
        char *set_path;
        char *set_id;
        struct pci_address *devices;    /* the members when it began: no two kernel resets of one overlap */
        size_t n_devices;
        uint64_t id;                    /* 0 until it begins */
        enum dev_set_state state;       /* the set's state while this is its reset */
        struct reset_options options;
        uint64_t start_usec;            /* CLOCK_MONOTONIC */

        void **requests;                /* answered together */
        size_t n_requests;
        struct reset_peer **peers;
        size_t n_peers;
        size_t n_pending;               /* peers not acked: O(1) to know when all are */
        void *peer_index;               /* tsearch(3) tree of the peers by name: O(log n) per ack */
        sd_event_source *deadline;
        bool peers_forced;              /* the deadline passed with Force: silent peers are not waited for */
        bool waits_for_overlap;         /* quiesced, but another reset still resets one of its devices */

        struct borrow *borrow;          /* with Borrow: the holders' plan, their quiesce targets */
        enum target_state *targets;     /* one per borrow->targets[] */
        size_t n_targets_pending;       /* stops not reported yet */
        size_t n_resumed;               /* targets resumed, from the last one back */

        struct reset_job *job;
        sd_event_source *job_source;
        bool job_done;
        char *gone;                     /* a member removed while the kernel worked */

        enum reset_result result;
        char *message;
        uint64_t duration_usec;
        sd_event_source *resumed;

        struct reset *prev, *next;      /* in arbiter.active */
};

const char *dev_set_state_to_string(enum dev_set_state s) {
        return s >= 0 && s < _DEV_SET_STATE_MAX ? state_names[s] : "unknown";
}

const char *reset_result_to_string(enum reset_result r) {
        return r >= 0 && r < _RESET_RESULT_MAX ? result_names[r] : "unknown";
}

bool dev_set_transition_allowed(enum dev_set_state from, enum dev_set_state to) {
        return from >= 0 && from < _DEV_SET_STATE_MAX && to >= 0 && to < _DEV_SET_STATE_MAX && transitions[from][to];
}

static void changed(struct reset *r, const char *const *properties) {
        if (r->set && r->set->reset == r)
                r->arbiter->ops->changed(r->arbiter->userdata, r->set, properties);
}

/* The one place a state changes. An impossible transition is a bug: logged,
 * refused, and fatal where VFIO_RESETD_ABORT_ON_BUG is set (the tests). */
static int reset_enter(struct reset *r, enum dev_set_state to) {
        if (!dev_set_transition_allowed(r->state, to)) {
                r->arbiter->bugs++;
                log_struct(LOG_ERR, RESET_FIELDS(r),
                           "MESSAGE=BUG: reset %" PRIu64 " of %s: no transition %s -> %s, refused", r->id, r->set_id,
                           dev_set_state_to_string(r->state), dev_set_state_to_string(to), NULL);
                if (getenv("VFIO_RESETD_ABORT_ON_BUG"))
                        abort();
                return -EPROTO;
        }
        log_struct(LOG_DEBUG, RESET_FIELDS(r), "MESSAGE=dev_set %s: %s -> %s", r->set_id,
                   dev_set_state_to_string(r->state), dev_set_state_to_string(to), NULL);
        r->state = to;
        changed(r, (const char *[]) { "State", NULL });
        return 0;
}

/* The tree only indexes: its entries are freed with their arrays. */
static void noop_free(void *p) {
}

static int compare_peers(const void *a, const void *b) {
        return strcmp(((const struct reset_peer *) a)->name, ((const struct reset_peer *) b)->name);
}

static struct reset_peer *reset_find_peer(const struct reset *r, const char *name) {
        struct reset_peer key = { .name = (char *) name }, **found = tfind(&key, &r->peer_index, compare_peers);

        return found ? *found : NULL;
}

static int reset_add_peer(struct reset *r, const char *name, bool acked) {
        struct reset_peer **v = realloc(r->peers, sizeof(*v) * (r->n_peers + 1)), *p;

        if (!v)
                return -ENOMEM;
        r->peers = v;
        p = calloc(1, sizeof(*p));
        if (!p)
                return -ENOMEM;
        p->name = strdup(name);
        p->acked = acked;
        if (!p->name || !tsearch(p, &r->peer_index, compare_peers)) {
                free(p->name);
                free(p);
                return -ENOMEM;
        }
        r->peers[r->n_peers++] = p;
        if (!acked)
                r->n_pending++;
        return 0;
}

static struct reset *reset_new(struct arbiter *a, struct dev_set *s, const struct reset_options *o) {
        struct reset *r = calloc(1, sizeof(*r));

        if (!r)
                return NULL;
        *r = (struct reset) {
                .arbiter = a,
                .set = s,
                .options = *o,
                .state = DEV_SET_IDLE,
                .set_path = strdup(s->path),
                .set_id = strdup(s->id),
        };
        if (!r->set_path || !r->set_id) {
                free(r->set_path);
                free(r->set_id);
                free(r);
                return NULL;
        }
        return r;
}

static void reset_free(struct reset *r) {
        if (!r)
                return;
        assert(r->n_requests == 0);
        free(r->requests);
        tdestroy(r->peer_index, noop_free);
        for (size_t i = 0; i < r->n_peers; i++) {
                free(r->peers[i]->name);
                free(r->peers[i]);
        }
        free(r->peers);
        sd_event_source_disable_unref(r->deadline);
        sd_event_source_disable_unref(r->job_source);
        sd_event_source_disable_unref(r->resumed);
        borrow_free(r->borrow);
        free(r->targets);
        if (r->job && !r->job_done)
                /* The kernel never returned: the thread still owns the job. */
                log_struct(LOG_WARNING, RESET_FIELDS(r),
                           "MESSAGE=Reset %" PRIu64 " of %s: leaving the kernel reset running", r->id, r->set_id,
                           NULL);
        else
                reset_job_free(r->job);
        free(r->devices);
        free(r->set_path);
        free(r->set_id);
        free(r->gone);
        free(r->message);
        free(r);
}

static int reset_add_request(struct reset *r, void *request) {
        void **n = realloc(r->requests, sizeof(*n) * (r->n_requests + 1));

        if (!n)
                return -ENOMEM;
        r->requests = n;
        n[r->n_requests++] = request;
        return 0;
}

static void reset_outcome(const struct reset *r, struct reset_outcome *ret) {
        *ret = (struct reset_outcome) {
                .set_path = r->set_path,
                .set_id = r->set_id,
                .reset_id = r->id,
                .result = r->result,
                .message = r->message,
                .duration_usec = r->duration_usec,
        };
}

static void reset_answer(struct reset *r) {
        struct reset_outcome o;

        reset_outcome(r, &o);
        for (size_t i = 0; i < r->n_requests; i++)
                r->arbiter->ops->reply(r->arbiter->userdata, r->requests[i], &o);
        r->n_requests = 0;
}

/* Answer a reset that never began (queued behind one that could not finish). */
static void reset_refuse(struct reset *r, enum reset_result result, const char *message) {
        assert(r->state == DEV_SET_IDLE);
        r->result = result;
        r->message = strdup(message);
        reset_answer(r);
        reset_free(r);
}

static void active_add(struct arbiter *a, struct reset *r) {
        r->next = a->active;
        if (a->active)
                a->active->prev = r;
        a->active = r;
}

static void active_remove(struct arbiter *a, struct reset *r) {
        if (r->prev)
                r->prev->next = r->next;
        else
                a->active = r->next;
        if (r->next)
                r->next->prev = r->prev;
        r->prev = r->next = NULL;
}

/* "name (pid 123, qemu-system-x86)" from what the peer registry knows: never a bus round trip. */
static void describe_peer(struct arbiter *a, const char *name, char *buf, size_t size) {
        struct peer *p = peer_find(a->peers, name);
        char path[64], comm[17] = "?";
        _cleanup_(fclosep) FILE *f = NULL;

        if (!p || p->pid <= 0) {
                snprintf(buf, size, "%s", name);
                return;
        }
        snprintf(path, sizeof(path), "/proc/%d/comm", (int) p->pid);
        f = fopen(path, "re");
        if (f && fgets(comm, sizeof(comm), f))
                comm[strcspn(comm, "\n")] = '\0';
        snprintf(buf, size, "%s (pid %d, %s)", name, (int) p->pid, comm);
}

/* The devices of the set this peer took; a peer that only watches gets them all. */
static char **pause_addresses(const struct peer *p, const struct dev_set *s) {
        _cleanup_strv_free_ char **l = calloc(1, sizeof(char *));
        bool watcher_only = true;

        if (!l)
                return NULL;
        for (size_t i = 0; p && i < s->n_members; i++)
                watcher_only = watcher_only && !peer_claims(p, &s->members[i]->fn.address);
        for (size_t i = 0; i < s->n_members; i++) {
                char address[PCI_ADDRESS_STRLEN];

                if (!watcher_only && !peer_claims(p, &s->members[i]->fn.address))
                        continue;
                if (strv_extend(&l, pci_address_format(&s->members[i]->fn.address, address)) < 0)
                        return NULL;
        }
        return TAKE_PTR(l);
}

static void send_pause(struct reset *r, const char *peer, const char *type, uint64_t deadline) {
        struct arbiter *a = r->arbiter;
        _cleanup_strv_free_ char **addresses = r->set ? pause_addresses(peer_find(a->peers, peer), r->set) : NULL;

        a->ops->pause(a->userdata, peer, r->set_path, r->id, type, deadline, addresses);
}

static void reset_begin(struct reset *r);
static void reset_quiesced(struct reset *r);

static int on_resumed(sd_event_source *source, void *userdata);

static size_t target_index(const struct reset *r, const struct quiesce_target *t) {
        for (size_t i = 0; r->borrow && i < r->borrow->n_targets; i++)
                if (r->borrow->targets[i] == t)
                        return i;
        return SIZE_MAX;
}

static void resume_next(struct reset *r);

static void on_target_resumed(void *userdata, struct quiesce_target *t, int error, const char *message) {
        struct reset *r = userdata;
        size_t i = target_index(r, t);

        if (i == SIZE_MAX || r->targets[i] != TARGET_RESUMING)
                return;
        if (error < 0)
                log_struct(LOG_ERR, RESET_FIELDS(r), "MESSAGE=Reset %" PRIu64 " of %s: %s", r->id, r->set_id,
                           message ?: strerror(-error), NULL);
        r->targets[i] = TARGET_RESUMED;
        r->n_resumed++;
        resume_next(r);
}

/* The holders run again one after the other, the last one stopped first;
 * then the reset ends, on a later turn of the loop. */
static void resume_next(struct reset *r) {
        struct arbiter *a = r->arbiter;
        int k;

        while (r->borrow && r->n_resumed < r->borrow->n_targets) {
                size_t i = r->borrow->n_targets - 1 - r->n_resumed;
                struct quiesce_target *t = r->borrow->targets[i];

                r->targets[i] = TARGET_RESUMING;
                k = t->adapter->resume(t, monotonic_usec() + RESUME_TIMEOUT_USEC, on_target_resumed, r);
                if (k >= 0)
                        return;         /* goes on in on_target_resumed */
                log_struct_errno(LOG_ERR, k, RESET_FIELDS(r),
                                 "MESSAGE=Reset %" PRIu64 " of %s: cannot let %s run again: %m", r->id, r->set_id,
                                 t->name, NULL);
                r->targets[i] = TARGET_RESUMED;
                r->n_resumed++;
        }
        k = sd_event_add_defer(a->event, &r->resumed, on_resumed, r);
        if (k < 0) {
                log_struct_errno(LOG_ERR, k, RESET_FIELDS(r),
                                 "MESSAGE=Cannot schedule the end of reset %" PRIu64 ": %m", r->id, NULL);
                on_resumed(NULL, r);
        }
}

/* quiescing or resetting -> resuming: every peer hears the result, then
 * every holder that was stopped runs again. */
static void reset_end(struct reset *r, enum reset_result result, const char *message) {
        struct arbiter *a = r->arbiter;

        if (reset_enter(r, DEV_SET_RESUMING) < 0)
                return;
        r->deadline = sd_event_source_disable_unref(r->deadline);
        r->job_source = sd_event_source_disable_unref(r->job_source);
        r->waits_for_overlap = false;
        r->result = result;
        r->message = message ? strdup(message) : NULL;
        r->duration_usec = monotonic_usec() - r->start_usec;
        for (size_t i = 0; i < r->n_peers; i++)
                if (peer_find(a->peers, r->peers[i]->name))
                        a->ops->resume(a->userdata, r->peers[i]->name, r->set_path, r->id,
                                       reset_result_to_string(result));
        log_struct(LOG_INFO, "MESSAGE_ID=" RESET_FINISHED_MESSAGE_ID, RESET_FIELDS(r),
                   "VFIO_RESULT=%s", reset_result_to_string(result),
                   "MESSAGE=Reset %" PRIu64 " of %s: %s after %.1f ms%s%s", r->id, r->set_id,
                   reset_result_to_string(result), r->duration_usec / 1000.0, message ? ": " : "", message ?: "",
                   NULL);
        resume_next(r);
}

static void reset_endf(struct reset *r, enum reset_result result, const char *fmt, ...) _printf_(3, 4);
static void reset_endf(struct reset *r, enum reset_result result, const char *fmt, ...) {
        _cleanup_free_ char *msg = NULL;
        va_list ap;

        va_start(ap, fmt);
        if (vasprintf(&msg, fmt, ap) < 0)
                msg = NULL;
        va_end(ap);
        reset_end(r, result, msg ?: "out of memory");
}

static bool shares_device(const struct reset *a, const struct reset *b) {
        for (size_t i = 0; i < a->n_devices; i++)
                for (size_t k = 0; k < b->n_devices; k++)
                        if (pci_address_equal(&a->devices[i], &b->devices[k]))
                                return true;
        return false;
}

/* A kernel reset ended: resets that waited for it go on. */
static void kick_overlapping(struct arbiter *a) {
        for (struct reset *x = a->active; x; x = x->next)
                if (x->waits_for_overlap) {
                        x->waits_for_overlap = false;
                        reset_quiesced(x);
                }
}

/* resuming -> idle: requesters hear the result, then the observers. */
static int on_resumed(sd_event_source *source, void *userdata) {
        struct reset *r = userdata;
        struct arbiter *a = r->arbiter;
        struct dev_set *s = r->set;
        struct reset_outcome o;
        struct reset *next = NULL;

        r->resumed = sd_event_source_disable_unref(r->resumed);
        /* Every holder runs again: nothing of theirs is kept past the answer. */
        r->borrow = borrow_free(r->borrow);
        r->targets = mfree(r->targets);
        reset_answer(r);
        if (s && s->reset == r) {
                char *lr = strdup(reset_result_to_string(r->result));

                if (lr) {
                        free(s->last_result);
                        s->last_result = lr;
                }
                s->last_reset_usec = r->duration_usec;
                if (r->result == RESET_DONE)
                        s->reset_count++;
        }
        (void) reset_enter(r, DEV_SET_IDLE);
        changed(r, (const char *[]) { "LastResult", "LastResetUSec", "ResetCount", "PausedPeers", NULL });
        reset_outcome(r, &o);
        a->ops->finished(a->userdata, &o);
        active_remove(a, r);
        if (s && s->reset == r) {
                s->reset = NULL;
                next = TAKE_PTR(s->next);
        }
        reset_free(r);

        if (next && a->stopping)
                reset_refuse(next, RESET_STOPPING, "vfio-resetd is stopping");
        else if (next) {
                s->reset = next;
                reset_begin(next);
        }
        if (a->stopping && !a->active) {
                a->stop_timer = sd_event_source_disable_unref(a->stop_timer);
                a->stopped(a->stopped_userdata);
        }
        return 0;
}

/* What the kernel's work came to, as a sentence (NULL when it succeeded). */
static char *job_outcome(const struct reset *r, enum reset_result *ret) {
        const struct reset_job *j = r->job;
        char *msg = NULL;
        int k = 0;

        *ret = RESET_FAILED;
        if (r->gone) {
                *ret = RESET_DEVICE_GONE;
                k = asprintf(&msg, "%s was removed during the reset of %s", r->gone, r->set_id);
        } else if (j->not_back) {
                const struct reset_job_device *d = NULL;

                for (size_t i = 0; i < j->n_devices; i++)
                        if (strcmp(j->devices[i].address, j->address) == 0)
                                d = &j->devices[i];
                assert(d);
                k = asprintf(&msg,
                             "%s did not come back after the %s of %s: its config space reads %04x:%04x, not %04x:%04x",
                             d->address, j->hot ? "hot reset" : "function reset", r->set_id, d->read_vendor,
                             d->read_device, d->vendor_id, d->device_id);
        } else if (j->not_owned[0])
                k = asprintf(&msg, "%s of %s failed: %s is not bound to the iommufd context that %s is bound to "
                             "(hot-reset info: NOT_OWNED), and the kernel resets a cdev set only for a context that "
                             "holds every member", j->step, r->set_id, j->not_owned, j->address);
        else if (j->error < 0)
                k = asprintf(&msg, "%s of %s failed%s%s: %s (%s)", j->step, r->set_id, j->address ? " on " : "",
                             j->address ?: "", strerror(-j->error), strerrorname_np(-j->error) ?: "?");
        else {
                log_struct(LOG_INFO, RESET_FIELDS(r), "MESSAGE=Reset %" PRIu64 " of %s: %s took %.1f ms in the kernel",
                           r->id, r->set_id, j->hot ? "VFIO_DEVICE_PCI_HOT_RESET" : "VFIO_DEVICE_RESET",
                           j->kernel_usec / 1000.0, NULL);
                *ret = RESET_DONE;
        }
        if (k < 0)
                msg = strdup("out of memory");
        return msg;
}

static int on_job_done(sd_event_source *source, int fd, uint32_t revents, void *userdata) {
        struct reset *r = userdata;
        enum reset_result result;
        _cleanup_free_ char *msg = job_outcome(r, &result);

        /* Every fd of the job closes before anyone resumes: borrowed groups go
         * back to their holders alone, devices opened for the reset close. */
        r->job_done = true;
        r->job_source = sd_event_source_disable_unref(r->job_source);
        r->job = reset_job_free(r->job);
        reset_end(r, result, msg);
        kick_overlapping(r->arbiter);
        return 0;
}

/* The daemon's own fds: duplicates of every member's device fd and, for a hot reset, every group's. */
static int fill_own_job(struct reset *r) {
        struct arbiter *a = r->arbiter;
        struct dev_set *s = r->set;
        _cleanup_free_ int *groups = NULL;
        size_t n_groups = 0;
        int k = 0;

        /* A set of several devices, or a lone one without its own reset, needs
         * the bus or slot reset; a lone device with a function reset uses it. */
        r->job->hot = s->n_members > 1 || !s->members[0]->can_function_reset;
        for (size_t i = 0; k >= 0 && i < s->n_members; i++) {
                struct device *d = s->members[i];
                char address[PCI_ADDRESS_STRLEN];
                int fd = fcntl(d->device_fd, F_DUPFD_CLOEXEC, 3);

                k = fd < 0 ? negative_errno() :
                    reset_job_add_device(r->job, pci_address_format(&d->fn.address, address), fd,
                                         d->fn.vendor_id, d->fn.device_id);
        }
        if (k >= 0 && r->job->hot) {
                k = a->ownership->ops->reset_group_fds(a->ownership, s, &groups, &n_groups);
                if (k >= 0 && n_groups == 0)
                        log_struct(LOG_DEBUG, RESET_FIELDS(r), "MESSAGE=Reset %" PRIu64 " of %s: hot reset with an "
                                   "empty group list (cdev)", r->id, r->set_id, NULL);
                else if (k >= 0)
                        log_struct(LOG_DEBUG, RESET_FIELDS(r), "MESSAGE=Reset %" PRIu64 " of %s: hot reset with %zu "
                                   "group fds (legacy)", r->id, r->set_id, n_groups, NULL);
        }
        for (size_t i = 0; k >= 0 && i < n_groups; i++) {
                int fd = fcntl(groups[i], F_DUPFD_CLOEXEC, 3);

                k = fd < 0 ? negative_errno() : reset_job_add_group(r->job, fd);
        }
        return k;
}

/* The job with its fds (own or borrowed), on its thread. On failure the
 * reset ends, and what was borrowed is closed. */
static int reset_start_job(struct reset *r) {
        struct arbiter *a = r->arbiter;
        _cleanup_free_ char *msg = NULL;
        int k;

        k = reset_job_new(a->kernel, true, &r->job);
        if (k >= 0)
                k = r->borrow ? borrow_take(r->borrow, r->set, a->ownership, a->kernel, r->job, &msg) :
                    fill_own_job(r);
        if (k >= 0)
                k = sd_event_add_io(a->event, &r->job_source, r->job->event_fd, EPOLLIN, on_job_done, r);
        if (k >= 0)
                k = reset_job_start(r->job);
        if (k < 0) {
                r->job_source = sd_event_source_disable_unref(r->job_source);
                r->job = reset_job_free(r->job);
                if (r->borrow && msg)
                        reset_end(r, RESET_BORROW_FAILED, msg);
                else
                        reset_endf(r, RESET_FAILED, "cannot start the reset of %s: %s", r->set_id, strerror(-k));
        }
        return k;
}

/* Everything that must be quiet is: every peer acknowledged (or left, or
 * the deadline passed with Force) and every holder stopped. */
static bool quiesce_complete(const struct reset *r) {
        return r->state == DEV_SET_QUIESCING && (r->n_pending == 0 || r->peers_forced) &&
               r->n_targets_pending == 0 && !r->waits_for_overlap;
}

/* quiesce_complete(): reset. */
static void reset_quiesced(struct reset *r) {
        struct arbiter *a = r->arbiter;

        assert(r->state == DEV_SET_QUIESCING && r->set);
        r->deadline = sd_event_source_disable_unref(r->deadline);
        for (struct reset *x = a->active; x; x = x->next)
                if (x != r && x->state == DEV_SET_RESETTING && shares_device(r, x)) {
                        /* The set was rebuilt while the kernel reset its devices under the old one. */
                        log_struct(LOG_INFO, RESET_FIELDS(r),
                                   "MESSAGE=Reset %" PRIu64 " of %s: waiting for reset %" PRIu64 " of %s to leave "
                                   "the kernel", r->id, r->set_id, x->id, x->set_id, NULL);
                        r->waits_for_overlap = true;
                        return;
                }
        if (reset_start_job(r) < 0)
                return;
        /* The kernel is at work before anyone hears of it: the signal costs no time. */
        (void) reset_enter(r, DEV_SET_RESETTING);
}

static void reset_ack(struct reset *r, struct reset_peer *p, const char *why) {
        if (p->acked)
                return;
        p->acked = true;
        r->n_pending--;
        log_struct(LOG_DEBUG, RESET_FIELDS(r), "VFIO_PEER=%s", p->name,
                   "MESSAGE=Reset %" PRIu64 " of %s: %s %s (%zu of %zu)", r->id, r->set_id, p->name, why,
                   r->n_peers - r->n_pending, r->n_peers, NULL);
        changed(r, (const char *[]) { "PausedPeers", NULL });
        if (quiesce_complete(r))
                reset_quiesced(r);
}

static void on_target_stopped(void *userdata, struct quiesce_target *t, int error, const char *message) {
        struct reset *r = userdata;
        size_t i = target_index(r, t);

        if (i == SIZE_MAX || r->targets[i] != TARGET_STOPPING || r->state != DEV_SET_QUIESCING)
                return;         /* a report that lost its race with the end of the reset */
        r->n_targets_pending--;
        if (error < 0) {
                r->targets[i] = TARGET_FAILED;
                reset_endf(r, error == -ETIMEDOUT ? RESET_QUIESCE_TIMEOUT : RESET_QUIESCE_FAILED,
                           "cannot quiesce the holders of %s: %s", r->set_id, message ?: strerror(-error));
                return;
        }
        r->targets[i] = TARGET_STOPPED;
        log_struct(LOG_DEBUG, RESET_FIELDS(r), "MESSAGE=Reset %" PRIu64 " of %s: %s stopped", r->id, r->set_id,
                   t->name, NULL);
        if (quiesce_complete(r))
                reset_quiesced(r);
}

/* Up to 16 names into list (", " between), " and N more" after. */
static void list_name(char *list, size_t size, size_t *n, const char *name) {
        if (++*n > 16)
                return;
        if (*list)
                strncat(list, ", ", size - strlen(list) - 1);
        strncat(list, name, size - strlen(list) - 1);
}

static void list_end(char *list, size_t size, size_t n) {
        char more[64];

        if (n <= 16)
                return;
        snprintf(more, sizeof(more), " and %zu more", n - 16);
        strncat(list, more, size - strlen(list) - 1);
}

static int on_deadline(sd_event_source *source, uint64_t usec, void *userdata) {
        struct reset *r = userdata;
        char silent[1024] = "", stopping[1024] = "", who[256];
        size_t n_silent = 0, n_stopping = 0;

        assert(r->state == DEV_SET_QUIESCING);
        for (size_t i = 0; i < r->n_peers; i++) {
                struct reset_peer *p = r->peers[i];

                if (p->acked)
                        continue;
                describe_peer(r->arbiter, p->name, who, sizeof(who));
                list_name(silent, sizeof(silent), &n_silent, who);
                if (n_silent <= 16)     /* as many as the list names */
                        log_struct(LOG_WARNING, RESET_FIELDS(r), "VFIO_PEER=%s", p->name,
                                   "MESSAGE=Reset %" PRIu64 " of %s: peer %s did not acknowledge the pause within "
                                   "%.3f s%s", r->id, r->set_id, who, r->options.quiesce_timeout_usec / 1e6,
                                   r->options.force ? ", forcing past it" : "", NULL);
                if (r->options.force)
                        send_pause(r, p->name, "force", usec);
        }
        list_end(silent, sizeof(silent), n_silent);
        for (size_t i = 0; r->borrow && i < r->borrow->n_targets; i++)
                if (r->targets[i] == TARGET_STOPPING)
                        list_name(stopping, sizeof(stopping), &n_stopping, r->borrow->targets[i]->name);
        list_end(stopping, sizeof(stopping), n_stopping);
        /* A holder still running cannot be borrowed from, Force or not. */
        if (n_stopping > 0) {
                reset_endf(r, RESET_QUIESCE_TIMEOUT, "holders of %s did not stop within %.3f s: %s%s%s", r->set_id,
                           r->options.quiesce_timeout_usec / 1e6, stopping,
                           n_silent && !r->options.force ? "; peers did not acknowledge the pause: " : "",
                           n_silent && !r->options.force ? silent : "");
                return 0;
        }
        if (!r->options.force) {
                reset_endf(r, RESET_QUIESCE_TIMEOUT, "peers did not acknowledge the pause of %s within %.3f s: %s",
                           r->set_id, r->options.quiesce_timeout_usec / 1e6, silent);
                return 0;
        }
        log_struct(LOG_WARNING, RESET_FIELDS(r), "MESSAGE=Reset %" PRIu64 " of %s: forcing past silent peers %s",
                   r->id, r->set_id, silent, NULL);
        r->peers_forced = true;
        reset_quiesced(r);
        return 0;
}

/* With Borrow: who holds the set, and what stops each. */
static int plan_borrow(struct arbiter *a, struct dev_set *s, const struct reset_options *o, struct borrow **ret,
                       char **ret_message) {
        const struct device_holder *h = NULL;
        size_t n = 0;
        int k;

        *ret_message = NULL;
        k = a->holders ? a->holders(a->holders_userdata, &h, &n) : 0;
        if (k < 0) {
                if (asprintf(ret_message, "cannot look up the holders of %s: %s", s->id, strerror(-k)) < 0)
                        *ret_message = NULL;
                return k;
        }
        return borrow_plan(s, a->ownership, h, n, a->adapters, a->n_adapters, o->force, ret, ret_message);
}

/* Ask every target to stop; false when the reset ended meanwhile. */
static bool stop_targets(struct reset *r, uint64_t deadline) {
        for (size_t i = 0; r->borrow && i < r->borrow->n_targets; i++) {
                struct quiesce_target *t = r->borrow->targets[i];
                int k;

                r->targets[i] = TARGET_STOPPING;
                r->n_targets_pending++;
                k = t->adapter->stop(t, deadline, on_target_stopped, r);
                if (k < 0) {
                        r->targets[i] = TARGET_FAILED;
                        r->n_targets_pending--;
                        reset_endf(r, RESET_QUIESCE_FAILED, "cannot quiesce %s for the reset of %s: %s", t->name,
                                   r->set_id, strerror(-k));
                        return false;
                }
        }
        return true;
}

/* idle -> quiescing: every peer of the set hears the pause, every holder is
 * asked to stop (with Borrow). */
static void reset_begin(struct reset *r) {
        struct arbiter *a = r->arbiter;
        struct dev_set *s = r->set;
        _cleanup_free_ char *refused = NULL;
        uint64_t deadline;
        size_t n_peers = 0;
        int k = 0;

        active_add(a, r);
        r->id = ++a->last_reset_id;
        r->start_usec = monotonic_usec();
        deadline = r->start_usec + r->options.quiesce_timeout_usec;
        r->devices = calloc(s->n_members + 1, sizeof(*r->devices));
        if (!r->devices) {
                (void) reset_enter(r, DEV_SET_QUIESCING);
                reset_end(r, RESET_FAILED, "out of memory");
                return;
        }
        for (size_t i = 0; i < s->n_members; i++)
                r->devices[r->n_devices++] = s->members[i]->fn.address;
        a->ops->started(a->userdata, r->set_path, r->id);
        for (size_t i = 0; i < a->peers->n_peers; i++)
                n_peers += peer_in_dev_set(a->peers->peers[i], s);
        log_struct(LOG_INFO, "MESSAGE_ID=" RESET_STARTED_MESSAGE_ID, RESET_FIELDS(r),
                   "MESSAGE=Reset %" PRIu64 " of %s: quiescing %zu peers%s", r->id, r->set_id, n_peers,
                   r->options.borrow ? " and the holders" : "", NULL);

        /* Who holds the set is decided before anyone hears of the reset. A
         * set the daemon owns whole has nobody to borrow from (and in the
         * cdev model no group it could open: its cdevs block them). */
        if (r->options.borrow && !dev_set_is_managed(s)) {
                k = plan_borrow(a, s, &r->options, &r->borrow, &refused);
                if (k >= 0 && !(r->targets = calloc(r->borrow->n_targets + 1, sizeof(*r->targets))))
                        k = -ENOMEM;
                if (k < 0) {
                        r->borrow = borrow_free(r->borrow);
                        (void) reset_enter(r, DEV_SET_QUIESCING);
                        reset_end(r, k == -EPERM ? RESET_NOT_OWNED : RESET_FAILED, refused ?: strerror(-k));
                        return;
                }
        }
        for (size_t i = 0; i < a->peers->n_peers; i++) {
                struct peer *p = a->peers->peers[i];

                if (!peer_in_dev_set(p, s))
                        continue;
                if (reset_add_peer(r, p->name, false) < 0) {
                        (void) reset_enter(r, DEV_SET_QUIESCING);
                        reset_end(r, RESET_FAILED, "out of memory");
                        return;
                }
                send_pause(r, p->name, "pause", deadline);
        }
        /* Peers hear first; property watchers after. */
        (void) reset_enter(r, DEV_SET_QUIESCING);
        changed(r, (const char *[]) { "PausedPeers", NULL });
        if (!stop_targets(r, deadline))
                return;
        if (quiesce_complete(r)) {
                reset_quiesced(r);
                return;
        }
        k = sd_event_add_time(a->event, &r->deadline, CLOCK_MONOTONIC, deadline, USEC_PER_MSEC, on_deadline, r);
        if (k < 0)
                reset_endf(r, RESET_FAILED, "cannot arm the quiesce deadline: %s", strerror(-k));
}

int arbiter_borrow_check(struct arbiter *a, struct dev_set *s, const struct reset_options *o, char **ret_message) {
        struct borrow *b = NULL;
        int k;

        *ret_message = NULL;
        if (dev_set_is_managed(s))
                return 0;
        k = plan_borrow(a, s, o, &b, ret_message);
        borrow_free(b);
        return k;
}

int arbiter_request(struct arbiter *a, struct dev_set *s, void *request, const struct reset_options *o) {
        struct reset *target;

        if (a->stopping)
                return -ESHUTDOWN;
        switch (arbiter_state(s)) {
        case DEV_SET_IDLE:
                s->reset = reset_new(a, s, o);
                if (!s->reset)
                        return -ENOMEM;
                if (reset_add_request(s->reset, request) < 0) {
                        reset_free(TAKE_PTR(s->reset));
                        return -ENOMEM;
                }
                reset_begin(s->reset);
                return 0;
        case DEV_SET_QUIESCING:
                target = s->reset;      /* joins the reset under way */
                break;
        case DEV_SET_RESETTING:
        case DEV_SET_RESUMING:
                /* The kernel reset began before this request: one follow-up answers it. */
                if (!s->next && !(s->next = reset_new(a, s, o)))
                        return -ENOMEM;
                target = s->next;
                break;
        default:
                abort();        /* arbiter_state() returns one of the four */
        }
        if (reset_add_request(target, request) < 0)
                return -ENOMEM;
        if (o->force)           /* a joiner's Force and Borrow carry over */
                target->options.force = true;
        if (o->borrow && target->state == DEV_SET_IDLE)
                target->options.borrow = true;
        return 0;
}

static struct reset *find_reset(struct arbiter *a, uint64_t id) {
        for (struct reset *r = a->active; r; r = r->next)
                if (r->id == id)
                        return r;
        return NULL;
}

int arbiter_pause_complete(struct arbiter *a, const char *sender, uint64_t reset_id) {
        struct reset *r = reset_id > 0 ? find_reset(a, reset_id) : NULL;
        struct reset_peer *p = r ? reset_find_peer(r, sender) : NULL;

        if (!p)
                return -EACCES;
        reset_ack(r, p, "paused");
        return 0;
}

int arbiter_peer_joined(struct arbiter *a, struct dev_set *s, const char *peer) {
        struct reset *r = s->reset;

        /* It took or watched the set while a reset holds it: it counts as
         * paused (the reply says so) and hears the Resume like the others. */
        if (!arbiter_holds_peers_paused(s) || reset_find_peer(r, peer))
                return 0;
        return reset_add_peer(r, peer, true);
}

void arbiter_peer_left(struct arbiter *a, const char *name) {
        struct peer *p = peer_find(a->peers, name);

        for (struct reset *r = a->active; r; r = r->next) {
                struct reset_peer *rp;

                /* A peer that left the bus or the set cannot touch the devices any
                 * more: stop waiting for it. */
                if (r->state != DEV_SET_QUIESCING || !r->set || (p && peer_in_dev_set(p, r->set)))
                        continue;
                rp = reset_find_peer(r, name);
                if (rp && !rp->acked) {
                        log_struct(LOG_INFO, RESET_FIELDS(r), "VFIO_PEER=%s", name,
                                   "MESSAGE=Reset %" PRIu64 " of %s: peer %s left, not waiting for it", r->id,
                                   r->set_id, name, NULL);
                        reset_ack(r, rp, "left");
                }
        }
}

void arbiter_device_gone(struct arbiter *a, struct device *d) {
        struct dev_set *s = d->dev_set;
        char address[PCI_ADDRESS_STRLEN];
        char *one[] = { address, NULL };

        pci_address_format(&d->fn.address, address);
        for (size_t i = a->peers->n_peers; i > 0; i--) {
                struct peer *p = a->peers->peers[i - 1];
                bool claimed = peer_drop_claim(a->peers, p, &d->fn.address);
                bool watched = peer_drop_watch(a->peers, p, &d->fn.address);

                if (claimed || watched) {
                        a->ops->pause(a->userdata, p->name, s ? s->path : "/", s && s->reset ? s->reset->id : 0,
                                      "gone", 0, one);
                        peer_gc(a->peers, p);
                }
        }
        if (!s)
                return;
        if (s->next)
                reset_refuse(TAKE_PTR(s->next), RESET_DEVICE_GONE, "a device of the set was removed");
        if (!s->reset)
                return;
        if (s->reset->state == DEV_SET_QUIESCING)
                reset_endf(s->reset, RESET_DEVICE_GONE, "%s was removed during the reset of %s", address, s->id);
        else if (s->reset->state == DEV_SET_RESETTING && !s->reset->gone)
                s->reset->gone = strdup(address);
}

void arbiter_dev_set_gone(struct arbiter *a, struct dev_set *s) {
        struct reset *r = s->reset;

        if (s->next)
                reset_refuse(TAKE_PTR(s->next), RESET_DEVICE_GONE, "the dev_set was removed");
        if (!r)
                return;
        if (r->state == DEV_SET_QUIESCING)
                reset_endf(r, RESET_DEVICE_GONE, "dev_set %s changed during its reset", s->id);
        /* The kernel may still be at work: the reset outlives its set, then
         * answers. It stays in the active list, which costs no allocation. */
        s->reset = NULL;
        r->set = NULL;
}

static int on_stop_timeout(sd_event_source *source, uint64_t usec, void *userdata) {
        struct arbiter *a = userdata;

        for (struct reset *r = a->active; r; r = r->next)
                if (r->state == DEV_SET_RESETTING)
                        reset_endf(r, RESET_STOPPING,
                                   "the kernel reset of %s did not return within %.1f s; vfio-resetd stops without it",
                                   r->set_id, a->stop_timeout_usec / 1e6);
        return 0;
}

void arbiter_stop(struct arbiter *a, void (*stopped)(void *userdata), void *userdata) {
        int k;

        if (a->stopping)
                return;
        a->stopping = true;
        a->stopped = stopped;
        a->stopped_userdata = userdata;
        for (struct reset *r = a->active; r; r = r->next) {
                if (r->set && r->set->next)
                        reset_refuse(TAKE_PTR(r->set->next), RESET_STOPPING, "vfio-resetd is stopping");
                if (r->state == DEV_SET_QUIESCING)
                        reset_endf(r, RESET_STOPPING, "vfio-resetd is stopping during the reset of %s", r->set_id);
        }
        if (!a->active) {
                stopped(userdata);
                return;
        }
        log_info("Stopping: waiting up to %.1f s for resets under way", a->stop_timeout_usec / 1e6);
        k = sd_event_add_time_relative(a->event, &a->stop_timer, CLOCK_MONOTONIC, a->stop_timeout_usec,
                                       USEC_PER_MSEC, on_stop_timeout, a);
        if (k < 0)
                on_stop_timeout(NULL, 0, a);
}

static void forget_resumed(void *userdata, struct quiesce_target *t, int error, const char *message) {
}

void arbiter_done(struct arbiter *a) {
        a->stop_timer = sd_event_source_disable_unref(a->stop_timer);
        while (a->active) {
                struct reset *r = a->active;

                if (r->set) {
                        r->set->reset = NULL;
                        if (r->set->next)
                                reset_refuse(TAKE_PTR(r->set->next), RESET_STOPPING, "vfio-resetd stopped");
                }
                if (r->state != DEV_SET_RESUMING) {     /* a reset that ended keeps its result */
                        r->result = RESET_STOPPING;
                        free(r->message);
                        r->message = strdup("vfio-resetd stopped");
                }
                /* Nobody stays stopped: what resumes at once (SIGCONT) does, what
                 * needs a reply (ThawUnit) is sent, and not waited for. */
                for (size_t i = 0; r->borrow && i < r->borrow->n_targets; i++)
                        if (r->targets[i] != TARGET_IDLE && r->targets[i] != TARGET_RESUMED)
                                (void) r->borrow->targets[i]->adapter->resume(r->borrow->targets[i], 0,
                                                                              forget_resumed, NULL);
                reset_answer(r);
                active_remove(a, r);
                reset_free(r);
        }
}

enum dev_set_state arbiter_state(const struct dev_set *s) {
        return s->reset ? s->reset->state : DEV_SET_IDLE;
}

bool arbiter_holds_peers_paused(const struct dev_set *s) {
        enum dev_set_state state = arbiter_state(s);

        return state == DEV_SET_QUIESCING || state == DEV_SET_RESETTING;
}

int arbiter_paused_peers(const struct dev_set *s, char ***ret) {
        _cleanup_strv_free_ char **l = calloc(1, sizeof(char *));

        if (!l)
                return -ENOMEM;
        for (size_t i = 0; s->reset && arbiter_holds_peers_paused(s) && i < s->reset->n_peers; i++)
                if (s->reset->peers[i]->acked && strv_extend(&l, s->reset->peers[i]->name) < 0)
                        return -ENOMEM;
        *ret = TAKE_PTR(l);
        return 0;
}
