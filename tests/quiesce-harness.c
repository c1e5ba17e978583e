/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Driving one quiesce adapter in its unit test (see quiesce-harness.h). */
#include <check.h>
#include <stdio.h>
#include <string.h>

#include "macro.h"
#include "quiesce-harness.h"

sd_event *event;
struct quiesce_adapter *adapter;
static bool inside;             /* in a call to stop or resume */

void on_done(void *userdata, struct quiesce_target *t, int error, const char *message) {
        struct outcome *o = userdata;

        o->calls++;
        o->error = error;
        snprintf(o->message, sizeof(o->message), "%s", message ?: "");
        o->at = monotonic_usec();
        o->stopped = t->stopped;
        o->from_inside = o->from_inside || inside;
}

void run_for(unsigned ms) {
        for (uint64_t end = monotonic_usec() + ms * USEC_PER_MSEC; monotonic_usec() < end;)
                ck_assert_int_ge(sd_event_run(event, 10 * USEC_PER_MSEC), 0);
}

bool run_until_done(const struct outcome *o, unsigned want, unsigned ms) {
        for (uint64_t end = monotonic_usec() + ms * USEC_PER_MSEC; o->calls < want;) {
                if (monotonic_usec() >= end)
                        return false;
                ck_assert_int_ge(sd_event_run(event, 10 * USEC_PER_MSEC), 0);
        }
        return true;
}

typedef int (*operation_t)(struct quiesce_target *t, uint64_t deadline_usec, quiesce_done_t done, void *userdata);

static uint64_t start(operation_t op, struct quiesce_target *t, unsigned ms, struct outcome *o) {
        uint64_t deadline = monotonic_usec() + ms * USEC_PER_MSEC;

        inside = true;
        ck_assert_int_eq(op(t, deadline, on_done, o), 0);
        inside = false;
        return deadline;
}

uint64_t stop(struct quiesce_target *t, unsigned ms, struct outcome *o) {
        return start(adapter->stop, t, ms, o);
}

uint64_t resume(struct quiesce_target *t, unsigned ms, struct outcome *o) {
        return start(adapter->resume, t, ms, o);
}

void assert_one_done(const struct outcome *o, unsigned ms) {
        ck_assert_msg(run_until_done(o, 1, ms), "no done within %u ms", ms);
        run_for(50);
        ck_assert_uint_eq(o->calls, 1);
        ck_assert_msg(!o->from_inside, "done ran from within stop or resume");
}

void assert_has(const char *message, const char *needle) {
        ck_assert_msg(strstr(message, needle), "'%s' lacks '%s'", message, needle);
}
