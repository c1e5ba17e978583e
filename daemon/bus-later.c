/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <stdlib.h>
#include <string.h>

#include "bus-later.h"

static int flush_later(sd_event_source *source, void *userdata) {
        bus_later_flush(userdata, NULL);
        return 0;
}

void bus_later_flush(struct manager *m, const char *set_path) {
        size_t k = 0;

        for (size_t i = 0; i < m->n_bus_later; i++) {
                struct bus_later *l = &m->bus_later[i];

                if (set_path && strcmp(l->set_path, set_path) != 0) {
                        m->bus_later[k++] = *l;
                        continue;
                }
                if (m->bus)
                        (void) sd_bus_send(m->bus, l->msg, NULL);
                sd_bus_message_unref(l->msg);
                free(l->set_path);
        }
        m->n_bus_later = k;
        if (k == 0 && m->bus_later_flush)
                (void) sd_event_source_set_enabled(m->bus_later_flush, SD_EVENT_OFF);
}

void bus_later_send(struct manager *m, const char *set_path, sd_bus_message *msg) {
        struct bus_later *v;
        char *p;

        /* A defer source just below the bus's priority runs once the bus has
         * nothing more to dispatch: after the replies and unicast signals sent
         * on the way (sd-event(3): lower priority values dispatch first). */
        if (m->event && !m->bus_later_flush &&
            sd_event_add_defer(m->event, &m->bus_later_flush, flush_later, m) >= 0)
                (void) sd_event_source_set_priority(m->bus_later_flush, SD_EVENT_PRIORITY_NORMAL + 1);
        p = strdup(set_path);
        v = p && m->bus_later_flush ? reallocarray(m->bus_later, m->n_bus_later + 1, sizeof(*v)) : NULL;
        if (!v) {
                free(p);
                bus_later_flush(m, NULL);
                (void) sd_bus_send(m->bus, msg, NULL);
                sd_bus_message_unref(msg);
                return;
        }
        m->bus_later = v;
        v[m->n_bus_later++] = (struct bus_later) { .msg = msg, .set_path = p };
        (void) sd_event_source_set_enabled(m->bus_later_flush, SD_EVENT_ONESHOT);
}
