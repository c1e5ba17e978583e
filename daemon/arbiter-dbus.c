/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "arbiter-dbus.h"
#include "bus-address.h"
#include "bus-names.h"
#include "log.h"
#include "macro.h"
#include "strv.h"
#include "polkit.h"

/* One method call waiting for its reset. */
struct bus_request {
        sd_bus_message *msg;
        bool with_devset;               /* ResetDevice answers (ost), DevSet.Reset (st) */
        bool answered;                  /* Wait=false: answered when accepted */
};

static void bus_pause(void *userdata, const char *peer, const char *set_path, uint64_t reset_id, const char *type,
                      uint64_t deadline_usec, char **addresses) {
        struct manager *m = userdata;
        sd_bus_message *s = NULL;
        int r;

        /* Unicast: a pause concerns only the peers of one set (as logind's PauseDevice). */
        r = sd_bus_message_new_signal(m->bus, &s, VRD_ROOT_PATH, VRD_MANAGER_IFACE, "Pause");
        if (r >= 0)
                r = sd_bus_message_set_destination(s, peer);
        if (r >= 0)
                r = sd_bus_message_append(s, "otst", set_path, reset_id, type, deadline_usec);
        if (r >= 0)
                r = sd_bus_message_append_strv(s, addresses);
        if (r >= 0)
                r = sd_bus_send(m->bus, s, NULL);
        sd_bus_message_unref(s);
        if (r < 0)
                log_warning_errno(r, "Cannot send Pause (%s) to %s: %m", type, peer);
}

static void bus_resume(void *userdata, const char *peer, const char *set_path, uint64_t reset_id,
                       const char *result) {
        struct manager *m = userdata;
        sd_bus_message *s = NULL;
        int r;

        r = sd_bus_message_new_signal(m->bus, &s, VRD_ROOT_PATH, VRD_MANAGER_IFACE, "Resume");
        if (r >= 0)
                r = sd_bus_message_set_destination(s, peer);
        if (r >= 0)
                r = sd_bus_message_append(s, "ots", set_path, reset_id, result);
        if (r >= 0)
                r = sd_bus_send(m->bus, s, NULL);
        sd_bus_message_unref(s);
        if (r < 0)
                log_warning_errno(r, "Cannot send Resume to %s: %m", peer);
}

static void bus_started(void *userdata, const char *set_path, uint64_t reset_id) {
        struct manager *m = userdata;

        (void) sd_bus_emit_signal(m->bus, VRD_ROOT_PATH, VRD_MANAGER_IFACE, "ResetStarted", "ot", set_path, reset_id);
}

static void bus_finished(void *userdata, const struct reset_outcome *o) {
        struct manager *m = userdata;

        (void) sd_bus_emit_signal(m->bus, VRD_ROOT_PATH, VRD_MANAGER_IFACE, "ResetFinished", "otst", o->set_path,
                                  o->reset_id, reset_result_to_string(o->result), o->duration_usec);
}

static const char *const result_errors[_RESET_RESULT_MAX] = {
        [RESET_QUIESCE_TIMEOUT] = VRD_ERROR_QUIESCE_TIMEOUT,
        [RESET_FAILED] = VRD_ERROR_RESET_FAILED,
        [RESET_DEVICE_GONE] = VRD_ERROR_DEVICE_GONE,
        [RESET_STOPPING] = VRD_ERROR_SHUTTING_DOWN,
        [RESET_NOT_OWNED] = VRD_ERROR_NOT_OWNED,
        [RESET_QUIESCE_FAILED] = VRD_ERROR_QUIESCE_FAILED,
        [RESET_BORROW_FAILED] = VRD_ERROR_BORROW_FAILED,
};

static void bus_reply(void *userdata, void *request, const struct reset_outcome *o) {
        struct bus_request *q = request;
        int r;

        if (q->answered)
                r = 0;
        else if (o->result != RESET_DONE)
                r = sd_bus_reply_method_errorf(q->msg, result_errors[o->result], "%s",
                                               o->message ?: reset_result_to_string(o->result));
        else if (q->with_devset)
                r = sd_bus_reply_method_return(q->msg, "ost", o->set_path, reset_result_to_string(o->result),
                                               o->duration_usec);
        else
                r = sd_bus_reply_method_return(q->msg, "st", reset_result_to_string(o->result), o->duration_usec);
        if (r < 0)
                log_debug_errno(r, "Cannot answer %s (it may have left): %m",
                                sd_bus_message_get_sender(q->msg) ?: "?");
        sd_bus_message_unref(q->msg);
        free(q);
}

/* PausedPeers changes once per ack; with a thousand peers, emitting each
 * would cost O(n) per ack. They go out at idle priority instead, after the
 * burst of acks that made them. */
static int flush_paused_peers(sd_event_source *source, void *userdata) {
        struct manager *m = userdata;
        _cleanup_strv_free_ char **ids = TAKE_PTR(m->bus_paused_peers_pending);

        (void) sd_event_source_set_enabled(source, SD_EVENT_OFF);
        for (char **id = ids; id && *id; id++) {
                struct dev_set *s = manager_find_dev_set(m, *id);

                if (s)
                        manager_emit_dev_set_changed(m, s, (const char *[]) { "PausedPeers", NULL });
        }
        return 0;
}

/* Take the set off the idle list; true if it was on it. */
static bool paused_peers_unqueue(struct manager *m, const char *id) {
        for (char **p = m->bus_paused_peers_pending; p && *p; p++)
                if (strcmp(*p, id) == 0) {
                        free(*p);
                        memmove(p, p + 1, sizeof(*p) * strv_length(p + 1) + sizeof(*p));
                        return true;
                }
        return false;
}

static void bus_changed(void *userdata, struct dev_set *s, const char *const *properties) {
        struct manager *m = userdata;
        bool only_paused_peers = properties[0] && strcmp(properties[0], "PausedPeers") == 0 && !properties[1];

        if (only_paused_peers && m->event) {
                if (!m->bus_paused_peers_flush &&
                    sd_event_add_defer(m->event, &m->bus_paused_peers_flush, flush_paused_peers, m) >= 0)
                        (void) sd_event_source_set_priority(m->bus_paused_peers_flush, SD_EVENT_PRIORITY_IDLE);
                if (m->bus_paused_peers_flush && (strv_contains(m->bus_paused_peers_pending, s->id) ||
                                                  strv_extend(&m->bus_paused_peers_pending, s->id) >= 0)) {
                        (void) sd_event_source_set_enabled(m->bus_paused_peers_flush, SD_EVENT_ONESHOT);
                        return;
                }
        }
        /* Anything else of the set goes out after what it queued: the acks before the state they led to. */
        if (!only_paused_peers && paused_peers_unqueue(m, s->id))
                manager_emit_dev_set_changed(m, s, (const char *[]) { "PausedPeers", NULL });
        manager_emit_dev_set_changed(m, s, properties);
}

const struct arbiter_ops arbiter_bus_ops = {
        .pause = bus_pause,
        .resume = bus_resume,
        .started = bus_started,
        .finished = bus_finished,
        .reply = bus_reply,
        .changed = bus_changed,
};

int reset_options_parse(sd_bus_message *msg, uint64_t default_timeout_usec, struct reset_options *ret,
                        sd_bus_error *error) {
        struct reset_options o = { .quiesce_timeout_usec = default_timeout_usec };
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
                } else if (strcmp(key, "Force") == 0 || strcmp(key, "Borrow") == 0 || strcmp(key, "Wait") == 0) {
                        int b;

                        if (strcmp(contents, "b") != 0)
                                return sd_bus_error_setf(error, SD_BUS_ERROR_INVALID_ARGS,
                                                         "Option %s must be of type b, not %s", key, contents);
                        r = sd_bus_message_read(msg, "v", "b", &b);
                        if (key[0] == 'F')
                                o.force = b;
                        else if (key[0] == 'B')
                                o.borrow = b;
                        else
                                o.no_wait = !b;
                } else
                        return sd_bus_error_setf(error, SD_BUS_ERROR_INVALID_ARGS,
                                                 "Unknown option '%s' (known: QuiesceTimeoutUSec, Force, Borrow, "
                                                 "Wait)", key);
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

/* Why the daemon cannot reset this set: NotOwned naming the holders, or NotManaged. */
static int refuse_unowned(struct manager *m, struct dev_set *s, sd_bus_error *error) {
        /* Room kept at the end of held for the cut's tail. */
        static const size_t more_max = sizeof(" and 18446744073709551615 more");
        const struct device_holder *h;
        const struct holder *u;
        char held[1024] = "", address[PCI_ADDRESS_STRLEN];
        _cleanup_free_ char *unseen = NULL;
        size_t n = 0, n_u = 0, n_held = 0, n_named = 0;

        if (manager_get_holders(m, &h, &n) >= 0)
                for (size_t i = 0; i < n; i++) {
                        char one[PCI_ADDRESS_STRLEN + HOLDER_NAME_MAX + QUIESCE_IDENTITY_MAX + 32],
                             name[HOLDER_NAME_MAX], what[QUIESCE_IDENTITY_MAX];
                        const struct quiesce_holder q = { .holder = &h[i].process, .pidfd = -EBADF };

                        if (h[i].device->dev_set != s)
                                continue;
                        n_held++;
                        if (!quiesce_identify(m->adapters, m->n_adapters, &q, what, sizeof(what)))
                                what[0] = '\0';
                        snprintf(one, sizeof(one), "%s%s is held by %s%s%s", *held ? ", " : "",
                                 pci_address_format(&h[i].device->fn.address, address),
                                 holder_describe(&h[i].process, name), what[0] ? ", " : "", what);
                        /* Whole entries only, once one did not fit neither do the next. */
                        if (n_named + 1 < n_held || strlen(held) + strlen(one) + more_max > sizeof(held))
                                continue;
                        strcat(held, one);
                        n_named++;
                }
        if (n_named < n_held)
                snprintf(held + strlen(held), sizeof(held) - strlen(held), " and %zu more", n_held - n_named);
        /* Holders may be missing: say so rather than let the list pass for complete. */
        if (manager_get_uninspected(m, s, &u, &n_u) >= 0 && n_u > 0) {
                _cleanup_free_ char *what = holders_uninspected_sentence(u, n_u);

                if (what && asprintf(&unseen, "; other holders cannot be told: %s", what) < 0)
                        unseen = NULL;
        }
        if (*held)
                return sd_bus_error_setf(error, VRD_ERROR_NOT_OWNED,
                                         "Cannot reset %s: %s; a reset needs every group of the set: stop it, or "
                                         "reset with Borrow%s", s->id, held, unseen ?: "");
        for (size_t i = 0; i < s->n_members; i++)
                if (s->members[i]->device_fd < 0)
                        return sd_bus_error_setf(error, VRD_ERROR_NOT_MANAGED,
                                                 "Cannot reset %s: vfio-resetd does not own %s (tag it "
                                                 "\"vfio-resetd\" in udev or list it under [Manage] in the config)%s",
                                                 s->id, pci_address_format(&s->members[i]->fn.address, address),
                                                 unseen ?: "");
        return sd_bus_error_setf(error, VRD_ERROR_NOT_MANAGED, "Cannot reset %s: it has no devices", s->id);
}

/* Both reset methods: parse the options, authorize, hand over to the arbiter. */
static int request_reset(struct manager *m, struct dev_set *s, sd_bus_message *msg, bool with_devset,
                         sd_bus_message_handler_t handler, void *userdata, sd_bus_error *error) {
        struct reset_options o;
        struct bus_request *q;
        int r;

        r = reset_options_parse(msg, m->quiesce_timeout_usec, &o, error);
        if (r < 0)
                return r;
        r = polkit_verify(&m->polkit, msg, VRD_ACTION_RESET, handler, userdata, error);
        if (r <= 0)
                return r < 0 ? r : 1;   /* 0: asked polkit; the call comes back */
        if (o.borrow) {
                r = polkit_verify(&m->polkit, msg, VRD_ACTION_BORROW, handler, userdata, error);
                if (r <= 0)
                        return r < 0 ? r : 1;
        }
        if (m->stopping)
                return sd_bus_error_setf(error, VRD_ERROR_SHUTTING_DOWN, "vfio-resetd is stopping; not resetting %s",
                                         s->id);
        if (!o.borrow && !dev_set_is_managed(s))
                return refuse_unowned(m, s, error);
        if (o.borrow) {
                _cleanup_free_ char *why = NULL;

                /* Refused before anyone is stopped: a holder no adapter may stop. */
                r = arbiter_borrow_check(&m->arbiter, s, &o, &why);
                if (r == -EPERM)
                        return sd_bus_error_setf(error, VRD_ERROR_NOT_OWNED, "%s", why);
                if (r < 0)
                        return why ? sd_bus_error_setf(error, VRD_ERROR_BORROW_FAILED, "%s", why) : r;
        }
        q = calloc(1, sizeof(*q));
        if (!q)
                return -ENOMEM;
        *q = (struct bus_request) { .msg = sd_bus_message_ref(msg), .with_devset = with_devset };
        r = arbiter_request(&m->arbiter, s, q, &o);
        if (r < 0) {
                sd_bus_message_unref(q->msg);
                free(q);
                if (r == -ESHUTDOWN)
                        return sd_bus_error_setf(error, VRD_ERROR_SHUTTING_DOWN,
                                                 "vfio-resetd is stopping; not resetting %s", s->id);
                return r;
        }
        if (o.no_wait) {
                /* Accepted: the reset goes on, its result in ResetFinished and the journal. */
                q->answered = true;
                return with_devset ? sd_bus_reply_method_return(msg, "ost", s->path, "accepted", UINT64_C(0)) :
                                     sd_bus_reply_method_return(msg, "st", "accepted", UINT64_C(0));
        }
        return 1;
}

int method_reset_device(sd_bus_message *msg, void *userdata, sd_bus_error *error) {
        struct manager *m = userdata;
        struct dev_set *s;
        struct device *d;
        int r;

        r = bus_read_device(m, msg, &d, error);
        if (r < 0)
                return r;
        r = bus_device_dev_set(d, &s, error);
        if (r < 0)
                return r;
        return request_reset(m, s, msg, true, method_reset_device, userdata, error);
}

int method_dev_set_reset(sd_bus_message *msg, void *userdata, sd_bus_error *error) {
        struct dev_set *s = userdata;

        return request_reset(s->manager, s, msg, false, method_dev_set_reset, userdata, error);
}

int method_pause_complete(sd_bus_message *msg, void *userdata, sd_bus_error *error) {
        struct manager *m = userdata;
        const char *sender = sd_bus_message_get_sender(msg);
        uint64_t id;
        int r;

        r = sd_bus_message_read(msg, "t", &id);
        if (r < 0)
                return r;
        r = arbiter_pause_complete(&m->arbiter, sender, id);
        if (r == -EACCES)
                return sd_bus_error_setf(error, SD_BUS_ERROR_ACCESS_DENIED,
                                         "%s was not sent a pause with reset id %" PRIu64, sender, id);
        if (r < 0)
                return r;
        return sd_bus_reply_method_return(msg, NULL);
}
