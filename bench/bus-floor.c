/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <errno.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "bus-floor.h"

struct floor_server {
        sd_bus *bus;
        char **peers;
        size_t n_peers, n_acks;
        sd_bus_message *request;
};

static void send_each(struct floor_server *f, const char *member) {
        for (size_t i = 0; i < f->n_peers; i++) {
                sd_bus_message *s = NULL;

                if (sd_bus_message_new_signal(f->bus, &s, FLOOR_PATH, FLOOR_IFACE, member) < 0 ||
                    sd_bus_message_set_destination(s, f->peers[i]) < 0 || sd_bus_send(f->bus, s, NULL) < 0)
                        _exit(3);
                sd_bus_message_unref(s);
        }
}

static int method_watch(sd_bus_message *m, void *userdata, sd_bus_error *error) {
        struct floor_server *f = userdata;
        char **v = realloc(f->peers, sizeof(*v) * (f->n_peers + 1));

        if (!v || !(v[f->n_peers] = strdup(sd_bus_message_get_sender(m))))
                _exit(3);
        f->peers = v;
        f->n_peers++;
        return sd_bus_reply_method_return(m, NULL);
}

static int method_reset(sd_bus_message *m, void *userdata, sd_bus_error *error) {
        struct floor_server *f = userdata;

        f->request = sd_bus_message_ref(m);
        f->n_acks = 0;
        send_each(f, "Ping");
        return 1;
}

static int method_ack(sd_bus_message *m, void *userdata, sd_bus_error *error) {
        struct floor_server *f = userdata;
        int r = sd_bus_reply_method_return(m, NULL);

        if (++f->n_acks == f->n_peers && f->request) {
                send_each(f, "Done");
                r = sd_bus_reply_method_return(f->request, NULL);
                f->request = sd_bus_message_unref(f->request);
        }
        return r;
}

static const sd_bus_vtable floor_vtable[] = {
        SD_BUS_VTABLE_START(0),
        SD_BUS_METHOD("Watch", "", "", method_watch, 0),
        SD_BUS_METHOD("Reset", "", "", method_reset, 0),
        SD_BUS_METHOD("Ack", "t", "", method_ack, 0),
        SD_BUS_VTABLE_END
};

pid_t floor_server_fork(void) {
        pid_t pid = fork();

        if (pid == 0) {
                struct floor_server f = {};

                if (sd_bus_open_system(&f.bus) < 0 ||
                    sd_bus_add_object_vtable(f.bus, NULL, FLOOR_PATH, FLOOR_IFACE, floor_vtable, &f) < 0 ||
                    sd_bus_request_name(f.bus, FLOOR_NAME, 0) < 0)
                        _exit(3);
                for (;;)
                        if (sd_bus_process(f.bus, NULL) == 0 && sd_bus_wait(f.bus, UINT64_MAX) < 0)
                                _exit(0);
        }
        return pid < 0 ? -errno : pid;
}

int floor_server_wait(sd_bus *bus) {
        for (int i = 0; i < 500; i++) {
                sd_bus_message *reply = NULL;
                int has = 0, r;

                r = sd_bus_call_method(bus, "org.freedesktop.DBus", "/org/freedesktop/DBus", "org.freedesktop.DBus",
                                       "NameHasOwner", NULL, &reply, "s", FLOOR_NAME);
                if (r >= 0)
                        r = sd_bus_message_read(reply, "b", &has);
                sd_bus_message_unref(reply);
                if (r < 0)
                        return r;
                if (has)
                        return 0;
                usleep(10000);
        }
        return -ETIMEDOUT;
}

/* The floor's Ping, answered as a Pause is; its Done counts as a Resume. */
static int on_ping(sd_bus_message *m, void *userdata, sd_bus_error *error) {
        return sd_bus_call_method_async(sd_bus_message_get_bus(m), NULL, FLOOR_NAME, FLOOR_PATH, FLOOR_IFACE, "Ack",
                                        NULL, NULL, "t", (uint64_t) 1);
}

static int on_done(sd_bus_message *m, void *userdata, sd_bus_error *error) {
        (*(uint64_t *) userdata)++;
        return 0;
}

int floor_peer_attach(sd_bus *bus, uint64_t *n_resumed, sd_bus_error *error) {
        int r;

        r = sd_bus_match_signal(bus, NULL, NULL, FLOOR_PATH, FLOOR_IFACE, "Ping", on_ping, NULL);
        if (r >= 0)
                r = sd_bus_match_signal(bus, NULL, NULL, FLOOR_PATH, FLOOR_IFACE, "Done", on_done, n_resumed);
        if (r >= 0)
                r = sd_bus_call_method(bus, FLOOR_NAME, FLOOR_PATH, FLOOR_IFACE, "Watch", error, NULL, "");
        return r;
}

int floor_reset_async(sd_bus *bus, sd_bus_message_handler_t on_reply, void *userdata) {
        return sd_bus_call_method_async(bus, NULL, FLOOR_NAME, FLOOR_PATH, FLOOR_IFACE, "Reset", on_reply, userdata,
                                        "");
}
