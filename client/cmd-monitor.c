/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* vfio-resetctl monitor [ADDRESS]: what happens on the bus as it happens, one
 * line each, in a person's words (or with --json one object a line): resets
 * started and finished, the states of dev_sets, pauses acknowledged, peers
 * joining and leaving, holders (Holders has no change signal: polled once a
 * second, for the sets shown only), devices and dev_sets added and removed,
 * drivers bound. With ADDRESS, only that device and its dev_set. It runs
 * until SIGINT or SIGTERM; when the daemon leaves the bus it says so, waits
 * for it to come back (without activating it) and goes on. */
#include <inttypes.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "bus-names.h"
#include "holder-name.h"
#include "macro.h"
#include "strv.h"
#include "vfio-resetctl.h"

#define POLL_USEC USEC_PER_SEC
#define PROPERTIES_IFACE "org.freedesktop.DBus.Properties"
#define OBJECT_MANAGER_IFACE "org.freedesktop.DBus.ObjectManager"

struct monitor {
        sd_bus *bus;
        sd_event *event;
        bool json;
        char address[PCI_ADDRESS_STRLEN];       /* "": every set */
        char device_path[128];                  /* the object of address */
        char *set_path;                         /* address's dev_set, NULL while it is in none */
        struct ctl_model *model;                /* NULL while the daemon is away */
        char *owner;                            /* the daemon's unique name */
        bool said_absent;
        sd_bus_slot *load, *poll;
        char *poll_path;                        /* the set a Get of its holders went to */
        bool old_holders;                       /* a daemon without HolderDetails: poll Holders */
        sd_event_source *timer;
};

/* key, value, ..., NULL: a JSON object (the values are taken). */
static json_object *fields(const char *key, ...) _sentinel_;
static json_object *fields(const char *key, ...) {
        json_object *o = json_object_new_object();
        va_list ap;

        va_start(ap, key);
        for (const char *k = key; k; k = va_arg(ap, const char *))
                json_object_object_add(o, k, va_arg(ap, json_object *));
        va_end(ap);
        return o;
}

static json_object *jstr(const char *s) {
        return json_object_new_string(s ?: "");
}

/* "12:00:01.234 bus_0000_04: text", or {"type","time","devset","fields"}; fields is taken. */
static void emit(struct monitor *m, const char *type, const char *set_path, json_object *f, const char *fmt, ...)
        _printf_(5, 6);
static void emit(struct monitor *m, const char *type, const char *set_path, json_object *f, const char *fmt, ...) {
        struct timespec ts;
        struct tm tm;
        char when[64];
        va_list ap;

        clock_gettime(CLOCK_REALTIME, &ts);
        if (m->json) {
                json_object *o = json_object_new_object();

                strftime(when, sizeof(when), "%Y-%m-%dT%H:%M:%S", gmtime_r(&ts.tv_sec, &tm));
                snprintf(when + strlen(when), sizeof(when) - strlen(when), ".%06ldZ", ts.tv_nsec / 1000);
                json_object_object_add(o, "type", json_object_new_string(type));
                json_object_object_add(o, "time", json_object_new_string(when));
                json_object_object_add(o, "devset", set_path ? jstr(ctl_devset_id(set_path)) : NULL);
                json_object_object_add(o, "fields", f);
                puts(json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE));
                json_object_put(o);
        } else {
                json_object_put(f);
                strftime(when, sizeof(when), "%H:%M:%S", localtime_r(&ts.tv_sec, &tm));
                printf("%s.%03ld ", when, ts.tv_nsec / 1000000);
                if (set_path && strncmp(type, "daemon-", 7) != 0)     /* those name the set themselves */
                        printf("%s: ", ctl_devset_id(set_path));
                va_start(ap, fmt);
                vprintf(fmt, ap);
                va_end(ap);
                putchar('\n');
        }
        fflush(stdout);
}

static bool shown(const struct monitor *m, const char *set_path) {
        return !*m->address || (m->model && streq_ptr(set_path, m->set_path));
}

static bool device_shown(const struct monitor *m, const struct ctl_device *d) {
        return !*m->address || streq_ptr(d->address, m->address);
}

/* The dev_set ADDRESS is in now. */
static void follow_address(struct monitor *m) {
        const struct ctl_device *d = *m->address && m->model ? ctl_model_device(m->model, m->device_path) : NULL;

        free(m->set_path);
        m->set_path = d && d->dev_set ? strdup(d->dev_set) : NULL;
}

/* "0000:04:00.0" from "/org/vfioresetd1/device/pci_0000_04_00_0" */
static const char *path_address(const struct ctl_model *model, const char *path, char buf[static 64]) {
        const struct ctl_device *d = ctl_model_device(model, path);
        const char *p = strstr(path, "/pci_");
        int n = 0;

        if (d && d->address)
                return d->address;
        snprintf(buf, 64, "%s", p ? p + 5 : path);
        for (char *c = strrchr(buf, '_'); c; c = strrchr(buf, '_'), n++)
                *c = n == 0 ? '.' : ':';
        return buf;
}

/* A method call that does not start the daemon: an observer waits for it. */
static int call_async(struct monitor *m, sd_bus_slot **slot, const char *path, const char *iface,
                      const char *member, sd_bus_message_handler_t callback, const char *types, ...) {
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *call = NULL;
        va_list ap;
        int r;

        r = sd_bus_message_new_method_call(m->bus, &call, VRD_BUS_NAME, path, iface, member);
        if (r >= 0)
                r = sd_bus_message_set_auto_start(call, false);
        if (r >= 0 && types) {
                va_start(ap, types);
                r = sd_bus_message_appendv(call, types, ap);
                va_end(ap);
        }
        if (r >= 0)
                r = sd_bus_call_async(m->bus, slot, call, callback, m, 0);
        return r;
}

static void daemon_gone(struct monitor *m) {
        m->model = ctl_model_free(m->model);
        m->owner = mfree(m->owner);
        m->set_path = mfree(m->set_path);
        m->poll = sd_bus_slot_unref(m->poll);
}

static int on_loaded(sd_bus_message *reply, void *userdata, sd_bus_error *ret_error) {
        struct monitor *m = userdata;
        size_t n_sets;
        int r;

        m->load = sd_bus_slot_unref(m->load);
        if (sd_bus_message_is_method_error(reply, NULL)) {
                if (!m->said_absent)
                        emit(m, "daemon-down", NULL, json_object_new_object(),
                             "vfio-resetd is not on the bus; waiting for it");
                m->said_absent = true;
                return 0;
        }
        daemon_gone(m);
        r = ctl_model_from_reply(reply, &m->model);
        if (r < 0) {
                fprintf(stderr, "%s: cannot read the daemon's objects: %s\n", program_invocation_short_name,
                        strerror(-r));
                return sd_event_exit(m->event, CTL_EXIT_FAILURE);
        }
        m->owner = strdup(sd_bus_message_get_sender(reply) ?: "");
        m->said_absent = false;
        follow_address(m);
        n_sets = m->model->n_dev_sets;
        if (!*m->address)
                emit(m, "daemon-up", NULL,
                     fields("name", jstr(m->owner), "devsets", json_object_new_int64((int64_t) n_sets), "devices",
                            json_object_new_int64((int64_t) m->model->n_devices), NULL),
                     "vfio-resetd is on the bus (%s): %zu dev_set%s, %zu device%s", m->owner, n_sets,
                     n_sets == 1 ? "" : "s", m->model->n_devices, m->model->n_devices == 1 ? "" : "s");
        else if (m->set_path)
                emit(m, "daemon-up", m->set_path, fields("name", jstr(m->owner), "address", jstr(m->address), NULL),
                     "vfio-resetd is on the bus (%s): %s is in dev_set %s", m->owner, m->address,
                     ctl_devset_id(m->set_path));
        else
                emit(m, "daemon-up", NULL, fields("name", jstr(m->owner), "address", jstr(m->address), NULL),
                     "vfio-resetd is on the bus (%s): %s is not a vfio device now", m->owner, m->address);
        return 0;
}

static void load(struct monitor *m) {
        int r;

        m->load = sd_bus_slot_unref(m->load);
        r = call_async(m, &m->load, VRD_ROOT_PATH, OBJECT_MANAGER_IFACE, "GetManagedObjects", on_loaded, NULL);
        if (r < 0)
                fprintf(stderr, "%s: cannot ask for the daemon's objects: %s\n", program_invocation_short_name,
                        strerror(-r));
}

static int on_owner_changed(sd_bus_message *msg, void *userdata, sd_bus_error *ret_error) {
        struct monitor *m = userdata;
        const char *name, *old, *new;

        if (sd_bus_message_read(msg, "sss", &name, &old, &new) < 0 || strcmp(name, VRD_BUS_NAME) != 0)
                return 0;
        if (*old && streq_ptr(old, m->owner)) {
                daemon_gone(m);
                emit(m, "daemon-down", NULL, fields("name", jstr(old), NULL),
                     "vfio-resetd left the bus; waiting for it to come back");
                m->said_absent = true;
        }
        if (*new && !streq_ptr(new, m->owner))
                load(m);
        return 0;
}

static int on_reset_started(sd_bus_message *msg, void *userdata, sd_bus_error *ret_error) {
        struct monitor *m = userdata;
        const char *path;
        uint64_t id;

        if (sd_bus_message_read(msg, "ot", &path, &id) < 0 || !shown(m, path))
                return 0;
        emit(m, "reset-started", path, fields("reset_id", json_object_new_int64((int64_t) id), NULL),
             "reset %" PRIu64 " started", id);
        return 0;
}

static int on_reset_finished(sd_bus_message *msg, void *userdata, sd_bus_error *ret_error) {
        struct monitor *m = userdata;
        const char *path, *result;
        uint64_t id, usec;
        char duration[32];

        if (sd_bus_message_read(msg, "otst", &path, &id, &result, &usec) < 0 || !shown(m, path))
                return 0;
        emit(m, "reset-finished", path,
             fields("reset_id", json_object_new_int64((int64_t) id), "result", jstr(result), "duration_usec",
                    json_object_new_int64((int64_t) usec), NULL),
             "reset %" PRIu64 " finished: %s after %s", id, result, ctl_format_duration(usec, duration));
        return 0;
}

static int on_interfaces_added(sd_bus_message *msg, void *userdata, sd_bus_error *ret_error) {
        struct monitor *m = userdata;
        const struct ctl_dev_set *s;
        const struct ctl_device *d;
        const char *path;

        if (!m->model || sd_bus_message_read(msg, "o", &path) < 0 || ctl_model_add(m->model, path, msg) < 0)
                return 0;
        follow_address(m);
        d = ctl_model_device(m->model, path);
        if (d && device_shown(m, d))
                emit(m, "device-added", d->dev_set,
                     fields("address", jstr(d->address), "driver", jstr(d->driver), "iommu_group",
                            json_object_new_int(d->iommu_group), NULL),
                     "%s added: bound to %s, IOMMU group %d", d->address, d->driver, d->iommu_group);
        s = ctl_model_dev_set(m->model, path);
        if (s && (!*m->address || strv_contains(s->devices, m->device_path))) {
                json_object *devices = json_object_new_array();
                char list[512] = "", buf[64];

                for (char **p = s->devices; p && *p; p++) {
                        const char *a = path_address(m->model, *p, buf);

                        json_object_array_add(devices, jstr(a));
                        snprintf(list + strlen(list), sizeof(list) - strlen(list), "%s%s", *list ? ", " : "", a);
                }
                emit(m, "devset-added", path, fields("kind", jstr(s->kind), "devices", devices, NULL),
                     "dev_set added (%s): %s", s->kind ?: "?", list);
        }
        return 0;
}

static int on_interfaces_removed(sd_bus_message *msg, void *userdata, sd_bus_error *ret_error) {
        struct monitor *m = userdata;
        const struct ctl_device *d;
        const char *path;

        if (!m->model || sd_bus_message_read(msg, "o", &path) < 0)
                return 0;
        d = ctl_model_device(m->model, path);
        if (d && device_shown(m, d))
                emit(m, "device-removed", d->dev_set, fields("address", jstr(d->address), NULL),
                     "%s removed: unbound from %s, or gone", d->address, d->driver);
        if (ctl_model_dev_set(m->model, path) && shown(m, path))
                emit(m, "devset-removed", path, json_object_new_object(), "dev_set removed");
        ctl_model_remove(m->model, path);
        follow_address(m);
        return 0;
}

/* What changed in a set: peers first, then pauses, then the state they lead to. */
static void dev_set_changed(struct monitor *m, const struct ctl_dev_set *s, const char *old_state, char **old_peers,
                            char **old_paused, bool old_managed) {
        size_t n_paused = strv_length(old_paused), n_peers = strv_length(s->peers);

        for (char **p = s->peers; p && *p; p++)
                if (!strv_contains(old_peers, *p))
                        emit(m, "peer-joined", s->path, fields("peer", jstr(*p), NULL), "peer %s joined", *p);
        for (char **p = old_peers; p && *p; p++)
                if (!strv_contains(s->peers, *p))
                        emit(m, "peer-left", s->path, fields("peer", jstr(*p), NULL), "peer %s left", *p);
        for (char **p = s->paused_peers; p && *p; p++) {
                size_t of = n_peers > strv_length(s->paused_peers) ? n_peers : strv_length(s->paused_peers);

                if (strv_contains(old_paused, *p))
                        continue;
                n_paused++;
                emit(m, "paused", s->path,
                     fields("peer", jstr(*p), "paused", json_object_new_int64((int64_t) n_paused), "peers",
                            json_object_new_int64((int64_t) of), NULL),
                     "%s paused (%zu of %zu)", *p, n_paused, of);
        }
        if (s->managed != old_managed)
                emit(m, "managed", s->path, fields("managed", json_object_new_boolean(s->managed), NULL),
                     s->managed ? "managed by vfio-resetd now" : "no longer managed by vfio-resetd");
        if (!streq_ptr(old_state, s->state)) {
                if (streq_ptr(s->state, "quiescing"))
                        emit(m, "state", s->path,
                             fields("state", jstr(s->state), "previous", jstr(old_state), NULL),
                             "quiescing: %zu peer%s to pause", n_peers, n_peers == 1 ? "" : "s");
                else
                        emit(m, "state", s->path, fields("state", jstr(s->state), "previous", jstr(old_state), NULL),
                             "%s", s->state ?: "?");
        }
}

static void device_changed(struct monitor *m, const struct ctl_device *d, const char *old_driver,
                           const char *old_set) {
        if (!streq_ptr(old_driver, d->driver))
                emit(m, "device-driver", d->dev_set,
                     fields("address", jstr(d->address), "driver", jstr(d->driver), "previous", jstr(old_driver),
                            NULL),
                     "%s bound to %s (was %s)", d->address, d->driver, old_driver ?: "?");
        if (!streq_ptr(old_set, d->dev_set))
                emit(m, "device-moved", d->dev_set,
                     fields("address", jstr(d->address), "previous", jstr(ctl_devset_id(old_set)), NULL),
                     "%s moved here from dev_set %s", d->address, ctl_devset_id(old_set));
}

static int on_properties_changed(sd_bus_message *msg, void *userdata, sd_bus_error *ret_error) {
        struct monitor *m = userdata;
        const char *path = sd_bus_message_get_path(msg), *iface;
        struct ctl_dev_set *s;
        struct ctl_device *d;

        if (!m->model || !path || sd_bus_message_read(msg, "s", &iface) < 0)
                return 0;
        if ((s = ctl_model_find_dev_set(m->model, path)) && strcmp(iface, VRD_DEVSET_IFACE) == 0) {
                _cleanup_strv_free_ char **peers = strv_copy(s->peers), **paused = strv_copy(s->paused_peers);
                _cleanup_free_ char *state = s->state ? strdup(s->state) : NULL;
                bool managed = s->managed;

                if (ctl_model_update(m->model, path, iface, msg) > 0 && shown(m, path))
                        dev_set_changed(m, s, state, peers, paused, managed);
        } else if ((d = ctl_model_find_device(m->model, path)) && strcmp(iface, VRD_DEVICE_IFACE) == 0) {
                _cleanup_free_ char *driver = d->driver ? strdup(d->driver) : NULL;
                _cleanup_free_ char *set = d->dev_set ? strdup(d->dev_set) : NULL;

                if (ctl_model_update(m->model, path, iface, msg) > 0 && device_shown(m, d))
                        device_changed(m, d, driver, set);
                follow_address(m);
        }
        return 0;
}

static void swap_holders(struct ctl_dev_set *a, struct ctl_dev_set *b) {
        struct ctl_dev_set t = *a;

        a->holders = b->holders, a->n_holders = b->n_holders, a->holder_details = b->holder_details;
        b->holders = t.holders, b->n_holders = t.n_holders, b->holder_details = t.holder_details;
}

static bool holds(const struct ctl_dev_set *s, const struct ctl_holder *h) {
        for (size_t i = 0; i < s->n_holders; i++)
                if (s->holders[i].pid == h->pid && streq_ptr(s->holders[i].address, h->address))
                        return true;
        return false;
}

static void emit_holder(struct monitor *m, const char *type, const char *set_path, const struct ctl_holder *h) {
        char name[HOLDER_NAME_MAX];
        json_object *f = fields("address", jstr(h->address), "pid", json_object_new_int64(h->pid), "command",
                                jstr(h->command), NULL);

        ctl_holder_add_json(f, h);
        holder_name(name, sizeof(name), h->pid, h->command, h->uid, h->unit);
        emit(m, type, set_path, f, strcmp(type, "holder-appeared") == 0 ? "%s holds %s" : "%s no longer holds %s",
             name, h->address);
}

/* Holders of s now against before (old). */
static void holders_changed(struct monitor *m, const struct ctl_dev_set *s, const struct ctl_dev_set *old) {
        for (size_t i = 0; i < s->n_holders; i++)
                if (!holds(old, &s->holders[i]))
                        emit_holder(m, "holder-appeared", s->path, &s->holders[i]);
        for (size_t i = 0; i < old->n_holders; i++)
                if (!holds(s, &old->holders[i]))
                        emit_holder(m, "holder-gone", s->path, &old->holders[i]);
}

static int on_polled(sd_bus_message *reply, void *userdata, sd_bus_error *ret_error) {
        struct monitor *m = userdata;
        const sd_bus_error *e = sd_bus_message_get_error(reply);
        _cleanup_(ctl_model_freep) struct ctl_model *now = NULL;
        struct ctl_dev_set *s;

        m->poll = sd_bus_slot_unref(m->poll);
        if (e) {
                /* an old daemon has Holders only */
                m->old_holders = m->old_holders || sd_bus_error_has_name(e, SD_BUS_ERROR_UNKNOWN_PROPERTY) ||
                                 sd_bus_error_has_name(e, SD_BUS_ERROR_INVALID_ARGS);
                return 0;
        }
        if (!m->model)
                return 0;
        if (m->poll_path) {
                struct ctl_dev_set before = {};

                if (!(s = ctl_model_find_dev_set(m->model, m->poll_path)))
                        return 0;
                swap_holders(s, &before);
                (void) ctl_model_update_property(m->model, m->poll_path, m->old_holders ? "Holders" : "HolderDetails",
                                                 reply);
                holders_changed(m, s, &before);
                ctl_dev_set_clear_holders(&before);
                return 0;
        }
        if (ctl_model_from_reply(reply, &now) < 0)
                return 0;
        for (size_t i = 0; i < m->model->n_dev_sets; i++) {
                struct ctl_dev_set *t = ctl_model_find_dev_set(now, m->model->dev_sets[i].path);

                if (!t)
                        continue;
                swap_holders(&m->model->dev_sets[i], t);
                holders_changed(m, &m->model->dev_sets[i], t);
        }
        return 0;
}

/* Once a second: the holders of the sets shown (one /proc scan in the daemon either way). */
static int on_timer(sd_event_source *source, uint64_t usec, void *userdata) {
        struct monitor *m = userdata;
        int r = 0;

        (void) sd_event_source_set_time_relative(source, POLL_USEC);
        (void) sd_event_source_set_enabled(source, SD_EVENT_ONESHOT);
        if (!m->model || m->poll || (*m->address && !m->set_path))
                return 0;
        free(m->poll_path);
        m->poll_path = *m->address ? strdup(m->set_path) : NULL;
        if (*m->address && !m->poll_path)
                return 0;
        if (m->poll_path)
                r = call_async(m, &m->poll, m->poll_path, PROPERTIES_IFACE, "Get", on_polled, "ss", VRD_DEVSET_IFACE,
                               m->old_holders ? "Holders" : "HolderDetails");
        else
                r = call_async(m, &m->poll, VRD_ROOT_PATH, OBJECT_MANAGER_IFACE, "GetManagedObjects", on_polled,
                               NULL);
        if (r < 0)
                fprintf(stderr, "%s: cannot ask for the holders: %s\n", program_invocation_short_name, strerror(-r));
        return 0;
}

static void monitor_done(struct monitor *m) {
        daemon_gone(m);
        sd_bus_slot_unref(m->load);
        free(m->poll_path);
        sd_event_source_disable_unref(m->timer);
        if (m->bus)
                sd_bus_detach_event(m->bus);
        sd_event_unref(m->event);
}

static int subscribe(struct monitor *m) {
        static const struct {
                const char *path, *iface, *member;
                sd_bus_message_handler_t handler;
        } signals[] = {
                { VRD_ROOT_PATH, VRD_MANAGER_IFACE, "ResetStarted", on_reset_started },
                { VRD_ROOT_PATH, VRD_MANAGER_IFACE, "ResetFinished", on_reset_finished },
                { VRD_ROOT_PATH, OBJECT_MANAGER_IFACE, "InterfacesAdded", on_interfaces_added },
                { VRD_ROOT_PATH, OBJECT_MANAGER_IFACE, "InterfacesRemoved", on_interfaces_removed },
        };
        int r;

        for (size_t i = 0; i < ELEMENTSOF(signals); i++) {
                r = sd_bus_match_signal(m->bus, NULL, VRD_BUS_NAME, signals[i].path, signals[i].iface,
                                        signals[i].member, signals[i].handler, m);
                if (r < 0)
                        return r;
        }
        r = sd_bus_add_match(m->bus, NULL,
                             "type='signal',sender='" VRD_BUS_NAME "',interface='" PROPERTIES_IFACE "',"
                             "member='PropertiesChanged',path_namespace='" VRD_ROOT_PATH "'",
                             on_properties_changed, m);
        if (r < 0)
                return r;
        return sd_bus_add_match(m->bus, NULL,
                                "type='signal',sender='org.freedesktop.DBus',interface='org.freedesktop.DBus',"
                                "member='NameOwnerChanged',arg0='" VRD_BUS_NAME "'",
                                on_owner_changed, m);
}

static int on_signal(sd_event_source *source, const struct signalfd_siginfo *si, void *userdata) {
        return sd_event_exit(sd_event_source_get_event(source), 0);
}

int cmd_monitor(struct ctl *c, int argc, char *argv[]) {
        _cleanup_(monitor_done) struct monitor m = { .json = c->json };
        sigset_t mask;
        int r;

        if (argc > 2) {
                fprintf(stderr, "%s: monitor takes at most one PCI address\n", program_invocation_short_name);
                return CTL_EXIT_USAGE;
        }
        if (argc == 2) {
                r = ctl_parse_address(argv[1], m.address);
                if (r < 0)
                        return -r;
                snprintf(m.device_path, sizeof(m.device_path), VRD_DEVICE_PATH_PREFIX "/pci_%s", m.address);
                for (char *p = m.device_path + strlen(VRD_DEVICE_PATH_PREFIX "/pci_"); *p; p++)
                        if (*p == ':' || *p == '.')
                                *p = '_';
        }
        r = ctl_connect(c);
        if (r < 0)
                return -r;
        m.bus = c->bus;

        sigemptyset(&mask);
        sigaddset(&mask, SIGINT);
        sigaddset(&mask, SIGTERM);
        r = sigprocmask(SIG_BLOCK, &mask, NULL) < 0 ? negative_errno() : sd_event_default(&m.event);
        if (r >= 0)
                r = sd_event_add_signal(m.event, NULL, SIGINT, on_signal, NULL);
        if (r >= 0)
                r = sd_event_add_signal(m.event, NULL, SIGTERM, on_signal, NULL);
        if (r >= 0)
                r = sd_bus_attach_event(m.bus, m.event, SD_EVENT_PRIORITY_NORMAL);
        if (r >= 0)
                r = sd_bus_set_exit_on_disconnect(m.bus, true);
        if (r >= 0)
                r = subscribe(&m);      /* before the objects are read: nothing falls between */
        if (r >= 0)
                r = sd_event_add_time_relative(m.event, &m.timer, CLOCK_MONOTONIC, POLL_USEC, 0, on_timer, &m);
        if (r < 0) {
                fprintf(stderr, "%s: cannot monitor the bus: %s\n", program_invocation_short_name, strerror(-r));
                return CTL_EXIT_FAILURE;
        }
        load(&m);
        r = sd_event_loop(m.event);
        if (r != 0) {
                fprintf(stderr, "%s: %s\n", program_invocation_short_name,
                        r < 0 ? strerror(-r) : "the connection to the system bus was lost");
                return CTL_EXIT_FAILURE;
        }
        return 0;
}
