/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* One quiesce adapter (daemon/quiesce.h) driven on an sd-event loop of the
 * test's, for the adapters' unit tests: its stops and resumes, and what
 * their done said. */

#include <stdbool.h>
#include <stdint.h>
#include <systemd/sd-event.h>

#include "quiesce.h"

extern sd_event *event;                 /* the test's loop, which the adapter runs on */
extern struct quiesce_adapter *adapter; /* the adapter under test */

/* What one stop's or resume's done said. */
struct outcome {
        unsigned calls;
        int error;
        char message[1024];
        uint64_t at;
        bool stopped;           /* t->stopped as done saw it */
        bool from_inside;       /* called from within stop or resume */
};

/* A quiesce_done_t filling the struct outcome it is given. */
void on_done(void *userdata, struct quiesce_target *t, int error, const char *message);

void run_for(unsigned ms);
/* Runs the loop until o->calls reaches want; false on timeout. */
bool run_until_done(const struct outcome *o, unsigned want, unsigned ms);

/* adapter->stop or ->resume of t within ms, told to o; returns the deadline it gave. */
uint64_t stop(struct quiesce_target *t, unsigned ms, struct outcome *o);
uint64_t resume(struct quiesce_target *t, unsigned ms, struct outcome *o);

/* Waits for exactly one done, not from within the call, and that no second one follows. */
void assert_one_done(const struct outcome *o, unsigned ms);
void assert_has(const char *message, const char *needle);
