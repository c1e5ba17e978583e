/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The systemd quiesce adapter: a holder in a service or scope unit is stopped
 * by FreezeUnit of its unit (systemd freezes the unit's cgroup) and let run
 * by ThawUnit, both through org.freedesktop.systemd1 on the daemon's bus.
 * Whether systemd is on that bus is followed from NameOwnerChanged, never
 * asked in a blocking call. A FreezeUnit that is not answered by the
 * deadline (systemd's freezer can wait on a KVM process for ever) is undone
 * with a ThawUnit, so that no unit stays half frozen. */
#include <assert.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <systemd/sd-bus.h>
#include <systemd/sd-event.h>
#include <systemd/sd-login.h>

#include "log.h"
#include "macro.h"
#include "quiesce.h"

#define SYSTEMD_NAME  "org.freedesktop.systemd1"
#define SYSTEMD_PATH  "/org/freedesktop/systemd1"
#define SYSTEMD_IFACE "org.freedesktop.systemd1.Manager"

struct systemd_quiesce {
        struct quiesce_adapter adapter;
        sd_bus *bus;
        sd_event *event;
        sd_bus_slot *owner_changed;     /* the NameOwnerChanged match for SYSTEMD_NAME */
        sd_bus_slot *owner_query;       /* GetNameOwner, at start */
        bool systemd_present;
        char *own_unit;                 /* the daemon's unit, NULL outside one */
        struct systemd_target **targets;        /* every live target: one unit may be two resets' */
        size_t n_targets;
};

struct systemd_target {
        struct quiesce_target base;
        struct systemd_quiesce *q;
        char unit[HOLDER_UNIT_MAX];
        struct quiesce_owed owed;       /* the done of the stop or resume under way */
        uint64_t deadline;
        uint64_t timeout;               /* what the call was given, for the message */
        sd_bus_slot *call;              /* its FreezeUnit or ThawUnit */
        bool maybe_frozen;              /* a FreezeUnit went out, and no ThawUnit succeeded since */
};

static bool endswith(const char *s, const char *suffix) {
        size_t n = strlen(s), k = strlen(suffix);

        return n >= k && strcmp(s + n - k, suffix) == 0;
}

static bool startswith(const char *s, const char *prefix) {
        return strncmp(s, prefix, strlen(prefix)) == 0;
}

/* --- whether systemd is on the bus ---------------------------------------- */

static void set_present(struct systemd_quiesce *q, bool present) {
        if (present != q->systemd_present)
                log_debug("systemd (" SYSTEMD_NAME ") %s the bus", present ? "is on" : "is not on");
        q->systemd_present = present;
}

/* The bus driver sends replies and signals in order, and sd-bus dispatches
 * them in order: whichever comes last says how it is now. */
static int on_owner_changed(sd_bus_message *m, void *userdata, sd_bus_error *ret_error) {
        const char *name, *old_owner, *new_owner;

        if (sd_bus_message_read(m, "sss", &name, &old_owner, &new_owner) >= 0 && strcmp(name, SYSTEMD_NAME) == 0)
                set_present(userdata, *new_owner != '\0');
        return 0;
}

static int on_match_installed(sd_bus_message *m, void *userdata, sd_bus_error *ret_error) {
        const sd_bus_error *e = sd_bus_message_get_error(m);

        if (e)
                log_warning("Cannot follow whether systemd is on the bus (AddMatch: %s): units may not be "
                            "frozen as it comes and goes", e->message ?: e->name);
        return 0;
}

static int on_owner_query(sd_bus_message *m, void *userdata, sd_bus_error *ret_error) {
        struct systemd_quiesce *q = userdata;
        const sd_bus_error *e = sd_bus_message_get_error(m);

        q->owner_query = sd_bus_slot_unref(q->owner_query);
        if (e && !sd_bus_error_has_name(e, "org.freedesktop.DBus.Error.NameHasNoOwner"))
                log_debug("Cannot ask whether systemd is on the bus: %s", e->message ?: e->name);
        set_present(q, !e);
        return 0;
}

/* --- the adapter ----------------------------------------------------------- */

static struct systemd_quiesce *quiesce_of(const struct quiesce_adapter *a) {
        return a->data;
}

static struct systemd_target *target_of(struct quiesce_target *t) {
        return (struct systemd_target *) t;
}

static bool systemd_applies(const struct quiesce_adapter *a, const struct quiesce_holder *h, bool force,
                            const char **ret_hint) {
        const struct systemd_quiesce *q = quiesce_of(a);
        const char *unit = h->holder->unit;

        /* Nothing else would make systemd help: no hint, with or without Force. */
        if (ret_hint)
                *ret_hint = NULL;
        if (!q->systemd_present)
                return false;
        if (!endswith(unit, ".service") && !endswith(unit, ".scope"))
                return false;           /* also "": no unit */
        /* The daemon itself, PID 1, a person's session or user manager: all of
         * it would stop, not just the holder. */
        if (streq_ptr(unit, q->own_unit) || strcmp(unit, "init.scope") == 0)
                return false;
        if (startswith(unit, "session-") && endswith(unit, ".scope"))
                return false;
        if (startswith(unit, "user@") && endswith(unit, ".service"))
                return false;
        /* The bus the thaw would come through. */
        if (strcmp(unit, "dbus.service") == 0 || strcmp(unit, "dbus-broker.service") == 0)
                return false;
        return true;
}

static bool systemd_covers(const struct quiesce_target *t, const struct quiesce_holder *h) {
        const struct systemd_target *st = (const struct systemd_target *) t;

        return strcmp(st->unit, h->holder->unit) == 0;
}

static int systemd_target_new(const struct quiesce_adapter *a, const struct quiesce_holder *h,
                              struct quiesce_target **ret) {
        struct systemd_target *t;

        if (!h->holder->unit[0])
                return -EINVAL;
        t = calloc(1, sizeof(*t));
        if (!t)
                return -ENOMEM;
        t->base.adapter = a;
        t->q = quiesce_of(a);
        snprintf(t->unit, sizeof(t->unit), "%s", h->holder->unit);
        snprintf(t->base.name, sizeof(t->base.name), "unit %s", t->unit);
        t->owed = (struct quiesce_owed) { .target = &t->base, .event = t->q->event, .description = "quiesce-systemd" };
        {
                struct systemd_target **v = realloc(t->q->targets, sizeof(*v) * (t->q->n_targets + 1));

                if (!v) {
                        free(t);
                        return -ENOMEM;
                }
                t->q->targets = v;
                v[t->q->n_targets++] = t;
        }
        *ret = &t->base;
        return 0;
}

/* Another reset's target keeps the unit frozen: thawing is the last one's job. */
static bool frozen_for_another(const struct systemd_target *t) {
        for (size_t i = 0; i < t->q->n_targets; i++) {
                const struct systemd_target *o = t->q->targets[i];

                if (o != t && o->maybe_frozen && strcmp(o->unit, t->unit) == 0)
                        return true;
        }
        return false;
}

/* Owes nothing any more; logs the sentence done is told. done is the last
 * thing that touches t (it may free it). */
_printf_(4, 5)
static void finish(struct systemd_target *t, int level, int error, const char *fmt, ...) {
        char message[sizeof(t->owed.known_message) + 64];
        va_list ap;

        va_start(ap, fmt);
        vsnprintf(message, sizeof(message), fmt, ap);
        va_end(ap);
        quiesce_owed_pay(&t->owed, level, error, message);
}

/* FreezeUnit or ThawUnit, which the call's own timeout ends at the deadline
 * with a NoReply that sd-bus makes up. The outcome goes to callback, or to
 * done from the loop if it cannot even be sent. */
static int begin_call(struct systemd_target *t, enum quiesce_op op, const char *method, const char *verb,
                      uint64_t deadline, sd_bus_message_handler_t callback, quiesce_done_t done, void *userdata) {
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *m = NULL;
        uint64_t now = monotonic_usec();
        int r;

        t->deadline = deadline;
        t->timeout = deadline > now ? deadline - now : 1;     /* 0 would be sd-bus's default of 25 s */
        r = sd_bus_message_new_method_call(t->q->bus, &m, SYSTEMD_NAME, SYSTEMD_PATH, SYSTEMD_IFACE, method);
        if (r >= 0)
                r = sd_bus_message_append(m, "s", t->unit);
        if (r >= 0)
                r = sd_bus_call_async(t->q->bus, &t->call, m, callback, t, t->timeout);
        if (r < 0)
                return quiesce_owed_known(&t->owed, op, done, userdata, LOG_WARNING, r,
                                          "cannot ask systemd to %s %s: %s", verb, t->base.name, strerror(-r));
        log_debug("Asking systemd to %s %s, within %.3f s", verb, t->base.name, (double) t->timeout / USEC_PER_SEC);
        quiesce_owed_begin(&t->owed, op, done, userdata);
        return 0;
}

static bool timed_out(const struct systemd_target *t, const sd_bus_error *e) {
        /* A NoReply before the deadline is systemd gone in the middle: an error of its own. */
        return sd_bus_error_has_names(e, SD_BUS_ERROR_NO_REPLY, SD_BUS_ERROR_TIMEOUT) &&
               monotonic_usec() >= t->deadline;
}

/* -ETIMEDOUT is kept for the deadline: a NoReply before it (systemd gone) is -EIO. */
static int error_errno(const sd_bus_error *e) {
        int r = sd_bus_error_get_errno(e);

        return r > 0 && r != ETIMEDOUT ? -r : -EIO;
}

static int on_undo_thaw(sd_bus_message *m, void *userdata, sd_bus_error *ret_error) {
        const char *unit = userdata;
        const sd_bus_error *e = sd_bus_message_get_error(m);

        if (e)
                log_warning("systemd could not thaw unit %s, which may be frozen: %s: %s", unit, e->name,
                            e->message ?: "");
        else
                log_info("Thawed unit %s", unit);
        return 0;
}

/* ThawUnit on its own, when no done waits for it: a floating call that logs how it went. */
static int send_thaw(struct systemd_target *t) {
        _cleanup_(sd_bus_slot_unrefp) sd_bus_slot *slot = NULL;
        char *unit = strdup(t->unit);
        int r;

        if (!unit)
                return -ENOMEM;
        r = sd_bus_call_method_async(t->q->bus, &slot, SYSTEMD_NAME, SYSTEMD_PATH, SYSTEMD_IFACE, "ThawUnit",
                                     on_undo_thaw, unit, "s", unit);
        if (r < 0) {
                free(unit);
                return r;
        }
        (void) sd_bus_slot_set_destroy_callback(slot, free);
        return sd_bus_slot_set_floating(slot, 1);
}

static int on_freeze_reply(sd_bus_message *m, void *userdata, sd_bus_error *ret_error) {
        struct systemd_target *t = userdata;
        const sd_bus_error *e = sd_bus_message_get_error(m);
        double s = (double) t->timeout / USEC_PER_SEC;
        int r;

        t->call = sd_bus_slot_unref(t->call);
        if (!e) {
                t->base.stopped = true;
                finish(t, LOG_INFO, 0, "%s frozen", t->base.name);
        } else if (timed_out(t, e)) {
                r = send_thaw(t);
                if (r < 0)
                        finish(t, LOG_WARNING, -ETIMEDOUT, "systemd did not freeze %s within %.3f s; could not "
                               "thaw it: %s", t->base.name, s, strerror(-r));
                else
                        finish(t, LOG_WARNING, -ETIMEDOUT, "systemd did not freeze %s within %.3f s; thawed it",
                               t->base.name, s);
        } else
                finish(t, LOG_WARNING, error_errno(e), "systemd could not freeze %s: %s: %s", t->base.name,
                       e->name, e->message ?: "");
        return 0;
}

static int on_thaw_reply(sd_bus_message *m, void *userdata, sd_bus_error *ret_error) {
        struct systemd_target *t = userdata;
        const sd_bus_error *e = sd_bus_message_get_error(m);

        t->call = sd_bus_slot_unref(t->call);
        if (!e) {
                t->maybe_frozen = false;
                finish(t, LOG_INFO, 0, "%s thawed", t->base.name);
        } else if (timed_out(t, e))
                finish(t, LOG_WARNING, -ETIMEDOUT, "systemd did not thaw %s within %.3f s", t->base.name,
                       (double) t->timeout / USEC_PER_SEC);
        else
                finish(t, LOG_WARNING, error_errno(e), "systemd could not thaw %s: %s: %s", t->base.name,
                       e->name, e->message ?: "");
        return 0;
}

/* Ends the operation under way without its done. */
static void cancel(struct systemd_target *t) {
        t->call = sd_bus_slot_unref(t->call);
        quiesce_owed_cancel(&t->owed);
}

static int systemd_stop(struct quiesce_target *qt, uint64_t deadline_usec, quiesce_done_t done, void *userdata) {
        struct systemd_target *t = target_of(qt);
        int r;

        assert(done);
        if (t->owed.op != QUIESCE_OP_NONE)
                return -EBUSY;
        r = begin_call(t, QUIESCE_OP_STOP, "FreezeUnit", "freeze", deadline_usec, on_freeze_reply, done, userdata);
        if (r < 0)
                return r;
        t->maybe_frozen = t->maybe_frozen || t->call;
        return 0;
}

static int systemd_resume(struct quiesce_target *qt, uint64_t deadline_usec, quiesce_done_t done, void *userdata) {
        struct systemd_target *t = target_of(qt);
        int r;

        assert(done);
        if (t->owed.op == QUIESCE_OP_RESUME)
                return -EBUSY;
        /* A freeze under way is dropped unanswered: this thaw undoes it. */
        cancel(t);
        t->base.stopped = false;
        if (t->maybe_frozen && frozen_for_another(t)) {
                t->maybe_frozen = false;
                r = quiesce_owed_known(&t->owed, QUIESCE_OP_RESUME, done, userdata, LOG_DEBUG, 0,
                                       "%s stays frozen for another reset", t->base.name);
        } else if (t->maybe_frozen)
                r = begin_call(t, QUIESCE_OP_RESUME, "ThawUnit", "thaw", deadline_usec, on_thaw_reply, done,
                               userdata);
        else
                r = quiesce_owed_known(&t->owed, QUIESCE_OP_RESUME, done, userdata, LOG_DEBUG, 0,
                                       "%s was never frozen", t->base.name);
        return r < 0 ? r : 0;
}

static void systemd_target_free(struct quiesce_target *qt) {
        struct systemd_target *t = target_of(qt);
        int r;

        if (!t)
                return;
        cancel(t);
        for (size_t i = 0; i < t->q->n_targets; i++)
                if (t->q->targets[i] == t) {
                        t->q->targets[i] = t->q->targets[--t->q->n_targets];
                        break;
                }
        /* Freed while frozen, or while a freeze may still happen: never leave a unit so
         * (unless another reset still needs it frozen). */
        if (t->maybe_frozen && !frozen_for_another(t)) {
                r = send_thaw(t);
                if (r < 0)
                        log_warning_errno(r, "Cannot thaw %s, which may be frozen: %m", t->base.name);
        }
        quiesce_owed_done(&t->owed);
        free(t);
}

static void systemd_free(struct quiesce_adapter *a) {
        struct systemd_quiesce *q = quiesce_of(a);

        sd_bus_slot_unref(q->owner_changed);
        sd_bus_slot_unref(q->owner_query);
        sd_bus_unref(q->bus);
        sd_event_unref(q->event);
        free(q->own_unit);
        free(q->targets);
        free(q);
}

int quiesce_systemd_new(sd_bus *bus, sd_event *event, struct quiesce_adapter **ret) {
        struct systemd_quiesce *q;
        int r;

        assert(bus);
        assert(event);
        q = calloc(1, sizeof(*q));
        if (!q)
                return -ENOMEM;
        q->adapter = (struct quiesce_adapter) {
                .name = "systemd",
                .applies = systemd_applies,
                .covers = systemd_covers,
                .target_new = systemd_target_new,
                .stop = systemd_stop,
                .resume = systemd_resume,
                .target_free = systemd_target_free,
                .free = systemd_free,
                .data = q,
        };
        q->bus = sd_bus_ref(bus);
        q->event = sd_event_ref(event);
        /* -ENODATA outside every unit (a test), or without systemd's cgroups */
        (void) sd_pid_get_unit(0, &q->own_unit);

        r = sd_bus_add_match_async(bus, &q->owner_changed,
                                   "type='signal',sender='org.freedesktop.DBus',path='/org/freedesktop/DBus',"
                                   "interface='org.freedesktop.DBus',member='NameOwnerChanged',"
                                   "arg0='" SYSTEMD_NAME "'", on_owner_changed, on_match_installed, q);
        if (r >= 0)
                r = sd_bus_call_method_async(bus, &q->owner_query, "org.freedesktop.DBus", "/org/freedesktop/DBus",
                                             "org.freedesktop.DBus", "GetNameOwner", on_owner_query, q, "s",
                                             SYSTEMD_NAME);
        if (r < 0) {
                systemd_free(&q->adapter);
                return r;
        }
        log_debug("quiesce: systemd units can be frozen while systemd is on the bus%s%s", q->own_unit ? ", except the daemon's own " : "",
                  q->own_unit ?: "");
        *ret = &q->adapter;
        return 0;
}
