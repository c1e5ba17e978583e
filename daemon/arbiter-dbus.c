/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The arbiter's bus face: ResetDevice, DevSet.Reset, PauseComplete and the
 * Pause/Resume/ResetStarted/ResetFinished signals. */
#include <errno.h>

#include "arbiter.h"
#include "bus-names.h"
#include "log.h"
#include "macro.h"
#include "manager.h"
#include "polkit.h"

int arbiter_send_pause(struct manager *m, const char *peer, const char *set_path, uint64_t reset_id,
                       const char *type, uint64_t deadline_usec, char **addresses) {
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
        return r;
}

int arbiter_send_resume(struct manager *m, const char *peer, const char *set_path, uint64_t reset_id,
                        const char *result) {
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
        return r;
}

int arbiter_emit_started(struct manager *m, const char *set_path, uint64_t reset_id) {
        return sd_bus_emit_signal(m->bus, VRD_ROOT_PATH, VRD_MANAGER_IFACE, "ResetStarted", "ot", set_path, reset_id);
}

int arbiter_emit_finished(struct manager *m, const char *set_path, uint64_t reset_id, const char *result,
                          uint64_t duration_usec) {
        return sd_bus_emit_signal(m->bus, VRD_ROOT_PATH, VRD_MANAGER_IFACE, "ResetFinished", "otst", set_path,
                                  reset_id, result, duration_usec);
}

/* Both reset methods: authorize, parse the options, hand over to the arbiter. */
static int request_reset(struct manager *m, struct dev_set *s, sd_bus_message *msg,
                         sd_bus_message_handler_t handler, void *userdata, sd_bus_error *error) {
        struct reset_options o;
        int r;

        r = reset_options_parse(m, msg, &o, error);
        if (r < 0)
                return r;
        r = polkit_verify(&m->polkit, msg, VRD_ACTION_RESET, handler, userdata, error);
        if (r <= 0)
                return r < 0 ? r : 1;   /* 0: asked polkit; the call comes back */
        return arbiter_request(s, msg, &o, error);
}

int method_reset_device(sd_bus_message *msg, void *userdata, sd_bus_error *error) {
        struct manager *m = userdata;
        struct device *d;
        int r;

        r = manager_read_device(m, msg, &d, error);
        if (r < 0)
                return r;
        return request_reset(m, d->dev_set, msg, method_reset_device, userdata, error);
}

int method_dev_set_reset(sd_bus_message *msg, void *userdata, sd_bus_error *error) {
        struct dev_set *s = userdata;

        return request_reset(s->manager, s, msg, method_dev_set_reset, userdata, error);
}

int method_pause_complete(sd_bus_message *msg, void *userdata, sd_bus_error *error) {
        struct manager *m = userdata;
        uint64_t id;
        int r;

        r = sd_bus_message_read(msg, "t", &id);
        if (r < 0)
                return r;
        r = arbiter_pause_complete(m, sd_bus_message_get_sender(msg), id, error);
        if (r < 0)
                return r;
        return sd_bus_reply_method_return(msg, NULL);
}
