/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The dev_set reset state machine (see arbiter.h). */
#include <assert.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "arbiter.h"
#include "bus-names.h"
#include "log.h"
#include "macro.h"
#include "manager.h"
#include "ownership.h"
#include "peer.h"
#include "reset-worker.h"

static struct reset *reset_new(struct dev_set *s, const struct reset_options *o) {
        struct reset *r = calloc(1, sizeof(*r));

        if (!r)
                return NULL;
        r->manager = s->manager;
        r->set = s;
        r->options = *o;
        r->set_path = strdup(s->path);
        r->set_id = strdup(s->id);
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
        for (size_t i = 0; i < r->n_requests; i++)
                sd_bus_message_unref(r->requests[i]);
        free(r->requests);
        strv_free(r->sent);
        strv_free(r->acked);
        sd_event_source_disable_unref(r->deadline);
        sd_event_source_disable_unref(r->job_source);
        reset_job_free(r->job);         /* joins: the job is done by the time we get here */
        free(r->set_path);
        free(r->set_id);
        free(r->gone);
        free(r);
}

static int reset_add_request(struct reset *r, sd_bus_message *msg) {
        sd_bus_message **n = realloc(r->requests, sizeof(*n) * (r->n_requests + 1));

        if (!n)
                return -ENOMEM;
        r->requests = n;
        n[r->n_requests++] = sd_bus_message_ref(msg);
        return 0;
}

static void set_state(struct dev_set *s, enum dev_set_state state) {
        if (s->state == state)
                return;
        log_debug("dev_set %s: %s -> %s", s->id, dev_set_state_to_string(s->state), dev_set_state_to_string(state));
        s->state = state;
        (void) dev_set_bus_emit_changed(s, (const char *[]) { "State", NULL });
}

/* "pid 123 (qemu-system-x86)" for a peer, as well as the bus can tell. */
static void describe_peer(struct manager *m, const char *name, char *buf, size_t size) {
        sd_bus_creds *c = NULL;
        const char *comm = NULL;
        pid_t pid = 0;

        if (sd_bus_get_name_creds(m->bus, name, SD_BUS_CREDS_PID | SD_BUS_CREDS_COMM | SD_BUS_CREDS_AUGMENT, &c) >= 0) {
                (void) sd_bus_creds_get_pid(c, &pid);
                (void) sd_bus_creds_get_comm(c, &comm);
        }
        if (pid > 0)
                snprintf(buf, size, "%s (pid %d, %s)", name, (int) pid, comm ?: "?");
        else
                snprintf(buf, size, "%s", name);
        sd_bus_creds_unref(c);
}

/* Reply to one request with the reset's outcome. */
static void reply(sd_bus_message *msg, const char *set_path, const char *result, uint64_t duration,
                  const char *error_name, const char *error_message) {
        int r;

        if (error_name)
                r = sd_bus_reply_method_errorf(msg, error_name, "%s", error_message);
        else if (strcmp(sd_bus_message_get_member(msg), "ResetDevice") == 0)
                r = sd_bus_reply_method_return(msg, "ost", set_path, result, duration);
        else
                r = sd_bus_reply_method_return(msg, "st", result, duration);
        if (r < 0)
                log_debug_errno(r, "Cannot answer %s (it may have left): %m", sd_bus_message_get_sender(msg) ?: "?");
}

/* Answer a reset that never started (queued behind one that could not finish). */
static void reset_refuse(struct reset *r, const char *error_name, const char *error_message) {
        for (size_t i = 0; i < r->n_requests; i++)
                reply(r->requests[i], r->set_path, NULL, 0, error_name, error_message);
        reset_free(r);
}

static void reset_start(struct reset *r);

static void reset_end(struct reset *r, const char *result, const char *error_name, const char *error_message) {
        struct manager *m = r->manager;
        struct dev_set *s = r->set;
        uint64_t duration = monotonic_usec() - r->start_usec;
        struct reset *next = NULL;

        if (s)
                set_state(s, DEV_SET_RESUMING);
        for (char **p = r->sent; p && *p; p++)
                if (peer_find(m, *p))
                        (void) arbiter_send_resume(m, *p, r->set_path, r->id, result);
        log_info("Reset %" PRIu64 " of %s: %s after %.1f ms%s%s", r->id, r->set_id, result, duration / 1000.0,
                 error_message ? ": " : "", error_message ?: "");

        /* Requesters next, then the observers' properties: the answer is what someone waits for. */
        for (size_t i = 0; i < r->n_requests; i++)
                reply(r->requests[i], r->set_path, result, duration, error_name, error_message);

        if (s) {
                char *lr = strdup(result);

                if (lr) {
                        free(s->last_result);
                        s->last_result = lr;
                }
                s->last_reset_usec = duration;
                if (!error_name)
                        s->reset_count++;
                s->reset = NULL;
                next = TAKE_PTR(s->next);
                set_state(s, DEV_SET_IDLE);
                (void) dev_set_bus_emit_changed(s, (const char *[]) {
                        "LastResult", "LastResetUSec", "ResetCount", "PausedPeers", NULL });
        } else
                for (size_t i = 0; i < m->n_orphans; i++)
                        if (m->orphans[i] == r) {
                                m->orphans[i] = m->orphans[--m->n_orphans];
                                break;
                        }

        (void) arbiter_emit_finished(m, r->set_path, r->id, result, duration);
        reset_free(r);

        if (next) {
                s->reset = next;
                reset_start(next);
        }
}

static void reset_endf(struct reset *r, const char *result, const char *error_name, const char *fmt, ...)
        _printf_(4, 5);
static void reset_endf(struct reset *r, const char *result, const char *error_name, const char *fmt, ...) {
        _cleanup_free_ char *msg = NULL;
        va_list ap;

        va_start(ap, fmt);
        if (vasprintf(&msg, fmt, ap) < 0)
                msg = NULL;
        va_end(ap);
        reset_end(r, result, error_name, msg ?: "out of memory");
}

static int on_job_done(sd_event_source *source, int fd, uint32_t revents, void *userdata) {
        struct reset *r = userdata;
        struct reset_job *j = r->job;

        if (r->gone)
                reset_endf(r, "device-gone", VRD_ERROR_DEVICE_GONE, "%s was removed during the reset of %s",
                           r->gone, r->set_id);
        else if (j->not_back) {
                const struct reset_job_device *d = NULL;

                for (size_t i = 0; i < j->n_devices; i++)
                        if (strcmp(j->devices[i].address, j->address) == 0)
                                d = &j->devices[i];
                assert(d);
                reset_endf(r, "failed", VRD_ERROR_RESET_FAILED,
                           "%s did not come back after the %s of %s: its config space reads %04x:%04x, not %04x:%04x",
                           d->address, j->hot ? "hot reset" : "function reset", r->set_id, d->read_vendor,
                           d->read_device, d->vendor_id, d->device_id);
        } else if (j->error < 0)
                reset_endf(r, "failed", VRD_ERROR_RESET_FAILED, "%s of %s failed%s%s: %s (%s)", j->step, r->set_id,
                           j->address ? " on " : "", j->address ?: "", strerror(-j->error),
                           strerrorname_np(-j->error) ?: "?");
        else {
                log_info("Reset %" PRIu64 " of %s: %s took %.1f ms in the kernel", r->id, r->set_id,
                         j->hot ? "VFIO_DEVICE_PCI_HOT_RESET" : "VFIO_DEVICE_RESET", j->kernel_usec / 1000.0);
                reset_end(r, "done", NULL, NULL);
        }
        return 0;
}

/* Every peer acknowledged (or left, or the deadline passed with Force): reset. */
static void reset_quiesced(struct reset *r) {
        struct dev_set *s = r->set;
        struct manager *m = r->manager;
        _cleanup_free_ int *groups = NULL;
        size_t n_groups = 0;
        bool hot;
        int k;

        r->deadline = sd_event_source_disable_unref(r->deadline);

        /* A set of several devices, or a lone one without its own reset, needs
         * the bus or slot reset; a lone device with a function reset uses it. */
        hot = s->n_members > 1 || !s->members[0]->can_function_reset;
        k = reset_job_new(m->kernel, hot, &r->job);
        for (size_t i = 0; k >= 0 && i < s->n_members; i++) {
                struct device *d = s->members[i];
                char address[PCI_ADDRESS_STRLEN];
                int fd = fcntl(d->device_fd, F_DUPFD_CLOEXEC, 3);

                k = fd < 0 ? negative_errno() :
                    reset_job_add_device(r->job, pci_address_format(&d->fn.address, address), fd,
                                         d->fn.vendor_id, d->fn.device_id);
        }
        if (k >= 0 && hot)
                k = m->ownership->reset_group_fds(s, &groups, &n_groups);
        for (size_t i = 0; k >= 0 && i < n_groups; i++) {
                int fd = fcntl(groups[i], F_DUPFD_CLOEXEC, 3);

                k = fd < 0 ? negative_errno() : reset_job_add_group(r->job, fd);
        }
        if (k >= 0)
                k = sd_event_add_io(m->event, &r->job_source, r->job->event_fd, EPOLLIN, on_job_done, r);
        if (k >= 0)
                k = reset_job_start(r->job);
        /* The kernel is at work before anyone hears of it: the signal costs no time. */
        set_state(s, DEV_SET_RESETTING);
        if (k < 0) {
                r->job_source = sd_event_source_disable_unref(r->job_source);
                reset_endf(r, "failed", VRD_ERROR_RESET_FAILED, "cannot start the reset of %s: %s", r->set_id,
                           strerror(-k));
        }
}

static bool all_acked(const struct reset *r) {
        for (char **p = r->sent; p && *p; p++)
                if (!strv_contains(r->acked, *p))
                        return false;
        return true;
}

static void reset_check(struct reset *r) {
        if (r->set && r->set->state == DEV_SET_QUIESCING && all_acked(r))
                reset_quiesced(r);
}

static int on_deadline(sd_event_source *source, uint64_t usec, void *userdata) {
        struct reset *r = userdata;
        struct manager *m = r->manager;
        char silent[1024] = "", who[256];

        for (char **p = r->sent; p && *p; p++) {
                if (strv_contains(r->acked, *p))
                        continue;
                describe_peer(m, *p, who, sizeof(who));
                if (*silent)
                        strncat(silent, ", ", sizeof(silent) - strlen(silent) - 1);
                strncat(silent, who, sizeof(silent) - strlen(silent) - 1);
                if (r->options.force)
                        (void) arbiter_send_pause(m, *p, r->set_path, r->id, "force", usec, NULL);
        }
        if (!r->options.force) {
                reset_endf(r, "quiesce-timeout", VRD_ERROR_QUIESCE_TIMEOUT,
                           "peers did not acknowledge the pause of %s within %.3f s: %s", r->set_id,
                           r->options.quiesce_timeout_usec / 1e6, silent);
                return 0;
        }
        log_warning("Reset %" PRIu64 " of %s: forcing past silent peers %s", r->id, r->set_id, silent);
        reset_quiesced(r);
        return 0;
}

/* The devices of the set this peer took; a peer that only watches gets them all. */
static char **pause_addresses(const struct peer *p, const struct dev_set *s) {
        _cleanup_strv_free_ char **l = calloc(1, sizeof(char *));
        bool watcher_only = true;

        if (!l)
                return NULL;
        for (size_t i = 0; i < s->n_members; i++)
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

static void reset_start(struct reset *r) {
        struct manager *m = r->manager;
        struct dev_set *s = r->set;
        uint64_t deadline;
        int k;

        r->id = ++m->last_reset_id;
        r->start_usec = monotonic_usec();
        deadline = r->start_usec + r->options.quiesce_timeout_usec;
        (void) arbiter_emit_started(m, r->set_path, r->id);

        for (size_t i = 0; i < m->n_peers; i++) {
                struct peer *p = m->peers[i];
                _cleanup_strv_free_ char **addresses = NULL;

                if (!peer_in_dev_set(p, s))
                        continue;
                addresses = pause_addresses(p, s);
                if (!addresses || strv_extend(&r->sent, p->name) < 0) {
                        reset_endf(r, "failed", VRD_ERROR_RESET_FAILED, "out of memory");
                        return;
                }
                k = arbiter_send_pause(m, p->name, r->set_path, r->id, "pause", deadline, addresses);
                if (k < 0)
                        log_warning_errno(k, "Cannot send Pause to %s: %m", p->name);
        }
        /* Peers hear first; property watchers after. */
        set_state(s, DEV_SET_QUIESCING);
        log_info("Reset %" PRIu64 " of %s: quiescing %zu peers", r->id, r->set_id, strv_length(r->sent));
        (void) dev_set_bus_emit_changed(s, (const char *[]) { "PausedPeers", NULL });
        if (strv_length(r->sent) == 0) {
                reset_quiesced(r);
                return;
        }
        k = sd_event_add_time(m->event, &r->deadline, CLOCK_MONOTONIC, deadline, USEC_PER_MSEC, on_deadline, r);
        if (k < 0)
                reset_endf(r, "failed", VRD_ERROR_RESET_FAILED, "cannot arm the quiesce deadline: %s", strerror(-k));
}

/* Why the daemon cannot reset this set: NotOwned naming the holders, or NotManaged. */
static int refuse_unowned(struct dev_set *s, sd_bus_error *error) {
        const struct device_holder *h;
        const struct holder *u;
        char held[1024] = "", address[PCI_ADDRESS_STRLEN];
        _cleanup_free_ char *unseen = NULL;
        size_t n = 0, n_u = 0;

        if (manager_get_holders(s->manager, &h, &n) >= 0)
                for (size_t i = 0; i < n; i++) {
                        char one[128];

                        if (h[i].device->dev_set != s)
                                continue;
                        snprintf(one, sizeof(one), "%s%s is held by pid %d (%s)", *held ? ", " : "",
                                 pci_address_format(&h[i].device->fn.address, address), (int) h[i].pid, h[i].comm);
                        strncat(held, one, sizeof(held) - strlen(held) - 1);
                }
        /* Holders may be missing: say so rather than let the list pass for complete. */
        if (manager_get_uninspected(s->manager, s, &u, &n_u) >= 0 && n_u > 0) {
                _cleanup_free_ char *what = holders_uninspected_sentence(u, n_u);

                if (what && asprintf(&unseen, "; other holders cannot be told: %s", what) < 0)
                        unseen = NULL;
        }
        if (*held)
                return sd_bus_error_setf(error, VRD_ERROR_NOT_OWNED, "Cannot reset %s: %s%s", s->id, held,
                                         unseen ?: "");
        for (size_t i = 0; i < s->n_members; i++)
                if (s->members[i]->device_fd < 0)
                        return sd_bus_error_setf(error, VRD_ERROR_NOT_MANAGED,
                                                 "Cannot reset %s: vfio-resetd does not own %s (tag it "
                                                 "\"vfio-resetd\" in udev or list it under [Manage] in the config)%s",
                                                 s->id, pci_address_format(&s->members[i]->fn.address, address),
                                                 unseen ?: "");
        return sd_bus_error_setf(error, VRD_ERROR_NOT_MANAGED, "Cannot reset %s: it has no devices", s->id);
}

int arbiter_request(struct dev_set *s, sd_bus_message *msg, const struct reset_options *o, sd_bus_error *error) {
        struct reset *target;

        if (!dev_set_is_managed(s))
                return refuse_unowned(s, error);

        switch (s->state) {
        case DEV_SET_IDLE:
                s->reset = reset_new(s, o);
                if (!s->reset || reset_add_request(s->reset, msg) < 0) {
                        reset_free(TAKE_PTR(s->reset));
                        return -ENOMEM;
                }
                reset_start(s->reset);
                return 1;
        case DEV_SET_QUIESCING:
                target = s->reset;      /* joins the reset under way */
                break;
        case DEV_SET_RESETTING:
        case DEV_SET_RESUMING:
                /* The kernel reset began before this request: one follow-up answers it. */
                if (!s->next && !(s->next = reset_new(s, o)))
                        return -ENOMEM;
                target = s->next;
                break;
        default:
                assert(false);
                return -EINVAL;
        }
        if (reset_add_request(target, msg) < 0)
                return -ENOMEM;
        if (o->force)           /* a joiner's Force carries over */
                target->options.force = true;
        return 1;
}

static struct reset *find_reset(struct manager *m, uint64_t id) {
        for (size_t i = 0; i < m->n_dev_sets; i++)
                if (m->dev_sets[i]->reset && m->dev_sets[i]->reset->id == id)
                        return m->dev_sets[i]->reset;
        for (size_t i = 0; i < m->n_orphans; i++)
                if (m->orphans[i]->id == id)
                        return m->orphans[i];
        return NULL;
}

int arbiter_pause_complete(struct manager *m, const char *sender, uint64_t reset_id, sd_bus_error *error) {
        struct reset *r = reset_id > 0 ? find_reset(m, reset_id) : NULL;

        if (!r || !strv_contains(r->sent, sender))
                return sd_bus_error_setf(error, SD_BUS_ERROR_ACCESS_DENIED,
                                         "%s was not sent a pause with reset id %" PRIu64, sender, reset_id);
        if (strv_contains(r->acked, sender))
                return 0;
        if (strv_extend(&r->acked, sender) < 0)
                return -ENOMEM;
        log_debug("Reset %" PRIu64 " of %s: %s paused (%zu of %zu)", r->id, r->set_id, sender,
                  strv_length(r->acked), strv_length(r->sent));
        if (r->set) {
                (void) dev_set_bus_emit_changed(r->set, (const char *[]) { "PausedPeers", NULL });
                reset_check(r);
        }
        return 0;
}

bool arbiter_paused(const struct dev_set *s) {
        return s->state != DEV_SET_IDLE;
}

int arbiter_joined_paused(struct dev_set *s, const char *peer) {
        struct reset *r = s->reset;

        /* It took or watched the set while a reset is under way: it counts as
         * paused (the reply says so) and hears the Resume like the others. */
        if (!r || strv_contains(r->sent, peer))
                return 0;
        if (strv_extend(&r->sent, peer) < 0 || strv_extend(&r->acked, peer) < 0)
                return -ENOMEM;
        return 0;
}

void arbiter_peer_gone(struct manager *m, const char *name) {
        struct peer *p = peer_find(m, name);

        for (size_t i = 0; i < m->n_dev_sets; i++) {
                struct dev_set *s = m->dev_sets[i];
                struct reset *r = s->reset;

                /* A peer that left the bus or the set cannot touch the devices any
                 * more: stop waiting for it. */
                if (!r || s->state != DEV_SET_QUIESCING || !strv_contains(r->sent, name) ||
                    strv_contains(r->acked, name) || (p && peer_in_dev_set(p, s)))
                        continue;
                if (strv_extend(&r->acked, name) < 0)
                        continue;
                log_info("Reset %" PRIu64 " of %s: peer %s left, not waiting for it", r->id, r->set_id, name);
                (void) dev_set_bus_emit_changed(s, (const char *[]) { "PausedPeers", NULL });
                reset_check(r);
        }
}

void arbiter_device_gone(struct manager *m, struct device *d) {
        struct dev_set *s = d->dev_set;
        char address[PCI_ADDRESS_STRLEN];
        char *one[] = { address, NULL };

        pci_address_format(&d->fn.address, address);
        for (size_t i = 0; i < m->n_peers; i++) {
                struct peer *p = m->peers[i];
                bool claimed = peer_remove(p->claims, &p->n_claims, &d->fn.address);
                bool watched = peer_remove(p->watches, &p->n_watches, &d->fn.address);

                if (claimed || watched)
                        (void) arbiter_send_pause(m, p->name, s ? s->path : "/", s && s->reset ? s->reset->id : 0,
                                                  "gone", 0, one);
        }
        for (size_t i = m->n_peers; i > 0; i--)
                peer_gc(m->peers[i - 1]);
        if (!s)
                return;
        if (s->next)
                reset_refuse(TAKE_PTR(s->next), VRD_ERROR_DEVICE_GONE, "a device of the set was removed");
        if (!s->reset)
                return;
        if (s->state == DEV_SET_QUIESCING)
                reset_endf(s->reset, "device-gone", VRD_ERROR_DEVICE_GONE, "%s was removed during the reset of %s",
                           address, s->id);
        else if (!s->reset->gone)
                s->reset->gone = strdup(address);
}

void arbiter_dev_set_gone(struct dev_set *s) {
        struct manager *m = s->manager;
        struct reset **n;

        if (s->next)
                reset_refuse(TAKE_PTR(s->next), VRD_ERROR_DEVICE_GONE, "the dev_set was removed");
        if (!s->reset)
                return;
        if (s->state == DEV_SET_QUIESCING) {
                reset_endf(s->reset, "device-gone", VRD_ERROR_DEVICE_GONE, "dev_set %s changed during its reset",
                           s->id);
                return;
        }
        /* The kernel is still at work: the reset outlives its set, then answers. */
        n = realloc(m->orphans, sizeof(*n) * (m->n_orphans + 1));
        if (!n) {
                log_oom();
                return;         /* leaks the reset rather than freeing it under the worker */
        }
        m->orphans = n;
        s->reset->set = NULL;
        m->orphans[m->n_orphans++] = TAKE_PTR(s->reset);
}

void arbiter_free_all(struct manager *m) {
        for (size_t i = 0; i < m->n_dev_sets; i++) {
                reset_free(TAKE_PTR(m->dev_sets[i]->reset));
                reset_free(TAKE_PTR(m->dev_sets[i]->next));
        }
        for (size_t i = 0; i < m->n_orphans; i++)
                reset_free(m->orphans[i]);
        free(m->orphans);
        m->orphans = NULL;
        m->n_orphans = 0;
}

int reset_options_parse(struct manager *m, sd_bus_message *msg, struct reset_options *ret, sd_bus_error *error) {
        struct reset_options o = { .quiesce_timeout_usec = m->quiesce_timeout_usec };
        const char *key, *contents;
        int r;

        r = sd_bus_message_enter_container(msg, 'a', "{sv}");
        if (r < 0)
                return r;
        while ((r = sd_bus_message_enter_container(msg, 'e', "sv")) > 0) {
                r = sd_bus_message_read(msg, "s", &key);
                if (r < 0)
                        return r;
                r = sd_bus_message_peek_type(msg, NULL, &contents);
                if (r < 0)
                        return r;
                if (strcmp(key, "QuiesceTimeoutUSec") == 0) {
                        if (strcmp(contents, "t") != 0)
                                return sd_bus_error_setf(error, SD_BUS_ERROR_INVALID_ARGS,
                                                         "Option QuiesceTimeoutUSec must be of type t, not %s", contents);
                        r = sd_bus_message_read(msg, "v", "t", &o.quiesce_timeout_usec);
                } else if (strcmp(key, "Force") == 0) {
                        int b;

                        if (strcmp(contents, "b") != 0)
                                return sd_bus_error_setf(error, SD_BUS_ERROR_INVALID_ARGS,
                                                         "Option Force must be of type b, not %s", contents);
                        r = sd_bus_message_read(msg, "v", "b", &b);
                        o.force = b;
                } else if (strcmp(key, "Borrow") == 0)
                        return sd_bus_error_setf(error, SD_BUS_ERROR_NOT_SUPPORTED,
                                                 "Option Borrow (resetting sets held by other programs) is not "
                                                 "supported by this version of vfio-resetd");
                else
                        return sd_bus_error_setf(error, SD_BUS_ERROR_INVALID_ARGS,
                                                 "Unknown option '%s' (known: QuiesceTimeoutUSec, Force)", key);
                if (r < 0)
                        return r;
                r = sd_bus_message_exit_container(msg);
                if (r < 0)
                        return r;
        }
        if (r < 0)
                return r;
        r = sd_bus_message_exit_container(msg);
        if (r < 0)
                return r;
        if (o.quiesce_timeout_usec == 0 || o.quiesce_timeout_usec > 3600ULL * 1000000)
                return sd_bus_error_setf(error, SD_BUS_ERROR_INVALID_ARGS,
                                         "Option QuiesceTimeoutUSec=%" PRIu64 " out of range (1 us to 1 h)",
                                         o.quiesce_timeout_usec);
        *ret = o;
        return 0;
}
