/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* What every quiesce adapter shares (see quiesce.h); each adapter is a quiesce-*.c. */
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <systemd/sd-event.h>

#include "log.h"
#include "quiesce.h"

struct quiesce_adapter *quiesce_adapter_free(struct quiesce_adapter *a) {
        if (a)
                a->free(a);
        return NULL;
}

bool quiesce_identify(struct quiesce_adapter *const *adapters, size_t n_adapters, const struct quiesce_holder *h,
                      char *buf, size_t size) {
        for (size_t i = 0; i < n_adapters; i++)
                if (adapters[i]->identify && adapters[i]->identify(adapters[i], h, buf, size))
                        return true;
        return false;
}

void quiesce_owed_begin(struct quiesce_owed *o, enum quiesce_op op, quiesce_done_t done, void *userdata) {
        o->op = op;
        o->done = done;
        o->userdata = userdata;
}

void quiesce_owed_pay(struct quiesce_owed *o, int level, int error, const char *message) {
        quiesce_done_t done = o->done;
        void *userdata = o->userdata;

        log_full_errno(level, 0, "quiesce: %s", message);
        quiesce_owed_cancel(o);
        done(userdata, o->target, error, message);
}

static int on_known(sd_event_source *s, void *userdata) {
        struct quiesce_owed *o = userdata;

        quiesce_owed_pay(o, o->known_level, o->known_error, o->known_message);
        return 0;
}

int quiesce_owed_known(struct quiesce_owed *o, enum quiesce_op op, quiesce_done_t done, void *userdata, int level,
                       int error, const char *fmt, ...) {
        va_list ap;
        int r;

        va_start(ap, fmt);
        vsnprintf(o->known_message, sizeof(o->known_message), fmt, ap);
        va_end(ap);
        o->known_level = level;
        o->known_error = error;
        if (!o->defer) {
                r = sd_event_add_defer(o->event, &o->defer, on_known, o);
                if (r < 0)
                        return r;
                (void) sd_event_source_set_description(o->defer, o->description);
        }
        r = sd_event_source_set_enabled(o->defer, SD_EVENT_ONESHOT);
        if (r < 0)
                return r;
        quiesce_owed_begin(o, op, done, userdata);
        return 0;
}

void quiesce_owed_cancel(struct quiesce_owed *o) {
        if (o->defer)
                (void) sd_event_source_set_enabled(o->defer, SD_EVENT_OFF);
        o->op = QUIESCE_OP_NONE;
        o->done = NULL;
        o->userdata = NULL;
}

void quiesce_owed_done(struct quiesce_owed *o) {
        o->defer = sd_event_source_disable_unref(o->defer);
}
