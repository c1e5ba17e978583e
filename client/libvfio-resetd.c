/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* libvfio-resetd: the peer's side of the protocol in docs/dbus-api.md. */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include "bus-names.h"
#include "log.h"
#include "macro.h"
#include "pci-address.h"
#include "strv.h"
#include "vfio-resetd.h"

/* A reset that paused this peer: from its Pause (or from a take that found the
 * set paused) to its Resume. Kept after that only when the daemon left the bus
 * instead, so that a late PauseComplete of it gets a clear answer. */
struct paused_set {
        char *devset;
        uint64_t reset_id;              /* 0 for a take that found the set paused */
        char *daemon;                   /* the unique name that paused us */
        bool daemon_gone;               /* the pause ended with the daemon, not with a Resume */
};

/* A TakeDevice or Watch to a daemon that took the name after a restart. */
struct rejoin_call {
        vrd_peer *peer;
        sd_bus_slot *slot;
        struct pci_address address;
        bool watch;
        char *daemon;
        struct rejoin_call *next;
};

struct vrd_peer {
        unsigned n_ref;
        sd_bus *bus;
        bool own_bus;
        sd_bus_slot *pause_slot;
        sd_bus_slot *resume_slot;
        sd_bus_slot *ack_slot;          /* the last PauseComplete sent from a handler's 0 */
        sd_bus_slot *owner_slot;        /* NameOwnerChanged of org.vfioresetd1 */
        char *daemon;                   /* unique name of the daemon, as last looked up */
        sd_bus_error error;             /* the last failure */
        struct paused_set *paused;
        size_t n_paused;
        /* Taken or watched and not given back: a daemon that restarted knows
         * nothing of them, so the library takes them again from it. */
        struct pci_address *claims;
        size_t n_claims;
        struct pci_address *watches;
        size_t n_watches;
        struct rejoin_call *rejoins;    /* under way */

        vrd_pause_handler_t on_pause;
        void *pause_userdata;
        vrd_resume_handler_t on_resume;
        void *resume_userdata;
        vrd_progress_handler_t on_progress;
        void *progress_userdata;
        vrd_rejoin_handler_t on_rejoin;
        void *rejoin_userdata;
};

static const struct {
        const char *name;
        int error;
} error_map[] = {
        { VRD_ERROR_NO_SUCH_DEVICE, ENODEV },
        { VRD_ERROR_DEVICE_GONE, ENODEV },
        { VRD_ERROR_NOT_MANAGED, EOPNOTSUPP },
        { VRD_ERROR_BUSY, EBUSY },
        { VRD_ERROR_NOT_OWNED, EBUSY },
        { VRD_ERROR_QUIESCE_TIMEOUT, ETIMEDOUT },
        { VRD_ERROR_RESET_FAILED, EIO },
        { VRD_PEER_ERROR_DAEMON_GONE, ENOTCONN },
};

/* Remembers a failure for vrd_peer_error_*(): the daemon's error when there is
 * one (moved out of e), else the errno's. Returns the negative errno. */
static int fail(vrd_peer *p, int r, sd_bus_error *e) {
        sd_bus_error_free(&p->error);
        if (!e || !sd_bus_error_is_set(e))
                return sd_bus_error_set_errno(&p->error, r);
        r = -sd_bus_error_get_errno(e);
        for (size_t i = 0; i < ELEMENTSOF(error_map); i++)
                if (sd_bus_error_has_name(e, error_map[i].name))
                        r = -error_map[i].error;
        sd_bus_error_move(&p->error, e);
        return r;
}

static int call(vrd_peer *p, const char *method, sd_bus_message **ret_reply, const char *types, ...) {
        _cleanup_(sd_bus_error_free) sd_bus_error e = SD_BUS_ERROR_NULL;
        va_list ap;
        int r;

        va_start(ap, types);
        r = sd_bus_call_methodv(p->bus, VRD_BUS_NAME, VRD_ROOT_PATH, VRD_MANAGER_IFACE, method, &e, ret_reply,
                                types, ap);
        va_end(ap);
        return r < 0 ? fail(p, r, &e) : 0;
}

/* Anyone on the bus may send us a unicast signal: only the owner of
 * org.vfioresetd1 counts. Unique names are never reused, so this looks the
 * owner up once per daemon start (and once per stray message). */
static bool from_daemon(vrd_peer *p, sd_bus_message *m) {
        _cleanup_(sd_bus_creds_unrefp) sd_bus_creds *creds = NULL;
        const char *sender = sd_bus_message_get_sender(m), *owner;

        if (!sender)
                return false;
        if (streq_ptr(sender, p->daemon))
                return true;
        if (sd_bus_get_name_creds(p->bus, VRD_BUS_NAME, SD_BUS_CREDS_UNIQUE_NAME, &creds) < 0 ||
            sd_bus_creds_get_unique_name(creds, &owner) < 0)
                return false;
        free(p->daemon);
        p->daemon = strdup(owner);
        return streq_ptr(sender, p->daemon);
}

static void paused_set_done(struct paused_set *x) {
        free(x->devset);
        free(x->daemon);
}

static struct paused_set *paused_find(vrd_peer *p, uint64_t reset_id, bool daemon_gone) {
        for (size_t i = 0; i < p->n_paused; i++)
                if (p->paused[i].reset_id == reset_id && p->paused[i].daemon_gone == daemon_gone)
                        return &p->paused[i];
        return NULL;
}

/* Keeps the entries for which drop() is false. */
static void paused_filter(vrd_peer *p, bool (*drop)(const struct paused_set *x, const void *arg), const void *arg) {
        size_t n = 0;

        for (size_t i = 0; i < p->n_paused; i++)
                if (drop(&p->paused[i], arg))
                        paused_set_done(&p->paused[i]);
                else
                        p->paused[n++] = p->paused[i];
        p->n_paused = n;
}

static bool ended_with_daemon(const struct paused_set *x, const void *reset_id) {
        return x->daemon_gone && x->reset_id == *(const uint64_t *) reset_id;
}

static bool resumed_by(const struct paused_set *x, const void *devset) {
        return !x->daemon_gone && strcmp(x->devset, devset) == 0;
}

static int paused_add(vrd_peer *p, const char *devset, uint64_t reset_id, const char *daemon) {
        struct paused_set *n;

        /* A new daemon counts its resets from 1 again: an old one's id means nothing now. */
        paused_filter(p, ended_with_daemon, &reset_id);
        for (size_t i = 0; i < p->n_paused; i++)
                if (p->paused[i].reset_id == reset_id && strcmp(p->paused[i].devset, devset) == 0)
                        return 0;
        n = realloc(p->paused, sizeof(*n) * (p->n_paused + 1));
        if (!n)
                return -ENOMEM;
        p->paused = n;
        n += p->n_paused;
        *n = (struct paused_set) { .devset = strdup(devset), .reset_id = reset_id, .daemon = strdup(daemon) };
        if (!n->devset || !n->daemon) {
                paused_set_done(n);
                return -ENOMEM;
        }
        p->n_paused++;
        return 0;
}

/* What the peer took or watched, by canonical address, to take it again from
 * a restarted daemon; forgotten once given back or gone. */
static void remember(vrd_peer *p, bool watch, const char *address, bool keep) {
        struct pci_address **v = watch ? &p->watches : &p->claims;
        size_t *n = watch ? &p->n_watches : &p->n_claims;
        struct pci_address a;

        if (pci_address_parse(address, &a, NULL, 0) < 0)
                return;
        if (!keep)
                (void) pci_address_set_remove(*v, n, &a);
        else if (pci_address_set_add(v, n, &a) < 0)
                log_warning("libvfio-resetd: out of memory: %s will not be %s again should vfio-resetd restart",
                            address, watch ? "watched" : "taken");
}

static int on_ack_reply(sd_bus_message *m, void *userdata, sd_bus_error *ret_error) {
        vrd_peer *p = userdata;
        sd_bus_error e = SD_BUS_ERROR_NULL;

        p->ack_slot = sd_bus_slot_unref(p->ack_slot);
        if (sd_bus_message_is_method_error(m, NULL)) {
                sd_bus_error_copy(&e, sd_bus_message_get_error(m));
                (void) fail(p, -EIO, &e);
        }
        return 0;
}

static int on_pause_signal(sd_bus_message *m, void *userdata, sd_bus_error *ret_error) {
        _cleanup_strv_free_ char **addresses = NULL;
        vrd_peer *p = userdata;
        struct vrd_pause pause = {};
        int r;

        if (!from_daemon(p, m))
                return 0;
        if (sd_bus_message_read(m, "otst", &pause.devset, &pause.reset_id, &pause.type, &pause.deadline_usec) < 0 ||
            sd_bus_message_read_strv(m, &addresses) < 0)
                return 0;
        pause.addresses = (const char *const *) addresses;
        /* The daemon dropped the claims and watches of a device that went. */
        for (char **a = addresses; strcmp(pause.type, "gone") == 0 && *a; a++) {
                remember(p, false, *a, false);
                remember(p, true, *a, false);
        }
        /* Remembered so that a daemon leaving the bus can end it (a "gone" has no Resume to wait for). */
        if (strcmp(pause.type, "gone") != 0 &&
            paused_add(p, pause.devset, pause.reset_id, sd_bus_message_get_sender(m)) < 0)
                (void) fail(p, -ENOMEM, NULL);

        if (!p->on_pause)
                return 0;
        vrd_peer_ref(p);
        r = p->on_pause(p, &pause, p->pause_userdata);
        if (r == 0 && strcmp(pause.type, "pause") == 0) {
                /* Asynchronous: the handler runs inside sd_bus_process(). */
                p->ack_slot = sd_bus_slot_unref(p->ack_slot);
                r = sd_bus_call_method_async(p->bus, &p->ack_slot, VRD_BUS_NAME, VRD_ROOT_PATH, VRD_MANAGER_IFACE,
                                             "PauseComplete", on_ack_reply, p, "t", pause.reset_id);
                if (r < 0)
                        (void) fail(p, r, NULL);
        }
        vrd_peer_unref(p);
        return 0;
}

static int on_resume_signal(sd_bus_message *m, void *userdata, sd_bus_error *ret_error) {
        vrd_peer *p = userdata;
        struct vrd_resume resume = {};

        if (!from_daemon(p, m))
                return 0;
        if (sd_bus_message_read(m, "ots", &resume.devset, &resume.reset_id, &resume.result) < 0)
                return 0;
        /* Every reset of the set is over, one a take found under way included. */
        paused_filter(p, resumed_by, resume.devset);
        if (!p->on_resume)
                return 0;
        vrd_peer_ref(p);
        p->on_resume(p, &resume, p->resume_userdata);
        vrd_peer_unref(p);
        return 0;
}

static int take_paused(vrd_peer *p, const char *address, const char *daemon);

static void rejoin_call_free(struct rejoin_call *c) {
        for (struct rejoin_call **x = &c->peer->rejoins; *x; x = &(*x)->next)
                if (*x == c) {
                        *x = c->next;
                        break;
                }
        sd_bus_slot_unref(c->slot);
        free(c->daemon);
        free(c);
}

static void report_rejoin(vrd_peer *p, const struct vrd_rejoin *j, const char *daemon) {
        if (p->on_rejoin)
                p->on_rejoin(p, j, p->rejoin_userdata);
        else if (j->error == 0)
                log_info("libvfio-resetd: vfio-resetd is back (%s): %s %s again%s", daemon,
                         j->watch ? "watching" : "took", j->address,
                         j->paused ? "; its set is being reset, the Resume follows" : "");
        else
                log_warning("libvfio-resetd: cannot %s %s again from vfio-resetd (%s): %s", j->watch ? "watch" : "take",
                            j->address, daemon, j->error_message ?: strerror(-j->error));
}

static int on_rejoin_reply(sd_bus_message *m, void *userdata, sd_bus_error *ret_error) {
        struct rejoin_call *c = userdata;
        vrd_peer *p = c->peer;
        char address[PCI_ADDRESS_STRLEN];
        struct vrd_rejoin j = { .address = pci_address_format(&c->address, address), .watch = c->watch };
        const sd_bus_error *e = sd_bus_message_get_error(m);
        int device, iommu, paused = 0;

        vrd_peer_ref(p);
        if (e) {
                sd_bus_error copy = SD_BUS_ERROR_NULL;

                (void) sd_bus_error_copy(&copy, e);
                j.error = fail(p, -EIO, &copy);
                j.error_name = p->error.name;
                j.error_message = p->error.message;
                /* Gone again before it answered: the next daemon is asked. */
                if (sd_bus_error_has_names(e, SD_BUS_ERROR_SERVICE_UNKNOWN, SD_BUS_ERROR_NAME_HAS_NO_OWNER,
                                           SD_BUS_ERROR_NO_REPLY, SD_BUS_ERROR_DISCONNECTED))
                        j.error = -ENOTCONN;
                else
                        remember(p, c->watch, address, false);
        } else if (!c->watch && sd_bus_message_read(m, "hhb", &device, &iommu, &paused) >= 0 && paused) {
                /* The reply's fds close with it: the peer has its own. */
                j.paused = true;
                j.error = take_paused(p, address, c->daemon);
                if (j.error < 0) {
                        j.error_name = p->error.name;
                        j.error_message = p->error.message;
                }
        }
        report_rejoin(p, &j, c->daemon);
        rejoin_call_free(c);
        vrd_peer_unref(p);
        return 0;
}

static void rejoin_one(vrd_peer *p, const char *daemon, const struct pci_address *a, bool watch) {
        char address[PCI_ADDRESS_STRLEN];
        struct rejoin_call *c = calloc(1, sizeof(*c));
        int r = c && (c->daemon = strdup(daemon)) ? 0 : -ENOMEM;

        pci_address_format(a, address);
        if (r >= 0) {
                c->peer = p;
                c->address = *a;
                c->watch = watch;
                c->next = p->rejoins;
                /* To the daemon that just took the name, not to whoever owns it by the time it arrives. */
                r = sd_bus_call_method_async(p->bus, &c->slot, daemon, VRD_ROOT_PATH, VRD_MANAGER_IFACE,
                                             watch ? "Watch" : "TakeDevice", on_rejoin_reply, c, "s", address);
        }
        if (r >= 0) {
                p->rejoins = c;
                return;
        }
        if (c)
                free(c->daemon);
        free(c);
        report_rejoin(p, &(struct vrd_rejoin) { .address = address, .watch = watch, .error = fail(p, r, NULL),
                                                .error_message = p->error.message }, daemon);
}

/* A daemon took the name: what this peer had with the one before, it asks for again. */
static void rejoin(vrd_peer *p, const char *daemon) {
        while (p->rejoins)      /* asked of a daemon that left already */
                rejoin_call_free(p->rejoins);
        for (size_t i = 0; i < p->n_claims; i++)
                rejoin_one(p, daemon, &p->claims[i], false);
        for (size_t i = 0; i < p->n_watches; i++)
                rejoin_one(p, daemon, &p->watches[i], true);
}

/* The daemon left the bus (crashed, stopped, restarted): no Resume will come
 * for the pauses it sent, and this peer's claims and watches went with it.
 * Each of its pauses ends here, as a Resume with "daemon-gone" would end it. */
static int on_owner_changed(sd_bus_message *m, void *userdata, sd_bus_error *ret_error) {
        const char *name, *old_owner, *new_owner;
        vrd_peer *p = userdata;

        if (sd_bus_message_read(m, "sss", &name, &old_owner, &new_owner) < 0)
                return 0;
        if (streq_ptr(old_owner, p->daemon))
                p->daemon = mfree(p->daemon);
        vrd_peer_ref(p);
        /* By index and looked up each time: a handler may take devices, which adds entries. */
        for (size_t i = 0; i < p->n_paused; i++) {
                struct paused_set *x = &p->paused[i];
                struct vrd_resume resume = { .devset = x->devset, .reset_id = x->reset_id,
                                             .result = VRD_RESUME_DAEMON_GONE };

                if (!*old_owner || x->daemon_gone || strcmp(x->daemon, old_owner) != 0)
                        continue;
                x->daemon_gone = true;
                if (p->on_resume)
                        p->on_resume(p, &resume, p->resume_userdata);
                else    /* nobody else can tell whoever stopped using the devices */
                        log_warning("libvfio-resetd: vfio-resetd (%s) left the bus during reset %" PRIu64
                                    " of %s; its pause is over", old_owner, resume.reset_id, resume.devset);
        }
        if (*new_owner)
                rejoin(p, new_owner);
        vrd_peer_unref(p);
        return 0;
}

int vrd_peer_new_with_bus(vrd_peer **ret, sd_bus *bus) {
        vrd_peer *p;
        int r;

        if (!ret || !bus)
                return -EINVAL;
        p = calloc(1, sizeof(*p));
        if (!p)
                return -ENOMEM;
        p->n_ref = 1;
        p->bus = sd_bus_ref(bus);
        /* Before any TakeDevice: a Pause may follow its reply at once. */
        r = sd_bus_match_signal(bus, &p->pause_slot, VRD_BUS_NAME, VRD_ROOT_PATH, VRD_MANAGER_IFACE, "Pause",
                                on_pause_signal, p);
        if (r >= 0)
                r = sd_bus_match_signal(bus, &p->resume_slot, VRD_BUS_NAME, VRD_ROOT_PATH, VRD_MANAGER_IFACE,
                                        "Resume", on_resume_signal, p);
        /* One match for the daemon, whatever the number of devices: its name changing hands ends every pause. */
        if (r >= 0)
                r = sd_bus_add_match(bus, &p->owner_slot,
                                     "type='signal',sender='org.freedesktop.DBus',path='/org/freedesktop/DBus',"
                                     "interface='org.freedesktop.DBus',member='NameOwnerChanged',"
                                     "arg0='" VRD_BUS_NAME "'", on_owner_changed, p);
        if (r < 0) {
                vrd_peer_unref(p);
                return r;
        }
        *ret = p;
        return 0;
}

int vrd_peer_new(vrd_peer **ret) {
        sd_bus *bus = NULL;
        int r;

        if (!ret)
                return -EINVAL;
        r = sd_bus_open_system(&bus);
        if (r < 0)
                return r;
        r = vrd_peer_new_with_bus(ret, bus);
        sd_bus_unref(bus);
        if (r < 0)
                return r;
        (*ret)->own_bus = true;
        return 0;
}

vrd_peer *vrd_peer_ref(vrd_peer *p) {
        if (p)
                p->n_ref++;
        return p;
}

vrd_peer *vrd_peer_unref(vrd_peer *p) {
        if (!p || --p->n_ref > 0)
                return NULL;
        sd_bus_slot_unref(p->pause_slot);
        sd_bus_slot_unref(p->resume_slot);
        sd_bus_slot_unref(p->ack_slot);
        sd_bus_slot_unref(p->owner_slot);
        while (p->rejoins)
                rejoin_call_free(p->rejoins);
        if (p->own_bus)
                sd_bus_flush_close_unref(p->bus);
        else
                sd_bus_unref(p->bus);
        free(p->daemon);
        free(p->claims);
        free(p->watches);
        for (size_t i = 0; i < p->n_paused; i++)
                paused_set_done(&p->paused[i]);
        free(p->paused);
        sd_bus_error_free(&p->error);
        free(p);
        return NULL;
}

/* The fds of a reply belong to the message: the caller gets its own copies. */
static int dup_fd(int fd, int *ret) {
        *ret = fcntl(fd, F_DUPFD_CLOEXEC, 3);
        return *ret < 0 ? negative_errno() : 0;
}

/* A take that found the set paused: the set's Resume ends that pause, and so
 * must the daemon's leaving, for which the set's path is needed now. */
static int take_paused(vrd_peer *p, const char *address, const char *daemon) {
        _cleanup_free_ char *devset = NULL;
        int r;

        r = vrd_peer_get_devset(p, address, &devset);
        if (r < 0)
                return r;
        r = paused_add(p, devset, 0, daemon);
        return r < 0 ? fail(p, r, NULL) : 0;
}

int vrd_peer_take(vrd_peer *p, const char *address, int *ret_device_fd, int *ret_iommu_fd, bool *ret_paused) {
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *reply = NULL;
        _cleanup_close_ int device = -EBADF, iommu = -EBADF;
        int device_fd, iommu_fd, paused, r;

        if (!p)
                return -EINVAL;
        if (!address)
                return fail(p, -EINVAL, NULL);
        r = call(p, "TakeDevice", &reply, "s", address);
        if (r < 0)
                return r;
        r = sd_bus_message_read(reply, "hhb", &device_fd, &iommu_fd, &paused);
        if (r < 0)
                return fail(p, r, NULL);
        if (paused) {
                r = take_paused(p, address, sd_bus_message_get_sender(reply));
                if (r < 0)
                        return r;
        }
        if (ret_device_fd)
                r = dup_fd(device_fd, &device);
        if (r >= 0 && ret_iommu_fd)
                r = dup_fd(iommu_fd, &iommu);
        if (r < 0)
                return fail(p, r, NULL);
        if (ret_device_fd)
                *ret_device_fd = TAKE_FD(device);
        if (ret_iommu_fd)
                *ret_iommu_fd = TAKE_FD(iommu);
        if (ret_paused)
                *ret_paused = paused;
        remember(p, false, address, true);
        return 0;
}

/* Given back is forgotten whatever the daemon says: one that restarted knows
 * nothing of it anyway. */
static int call_with_address(vrd_peer *p, const char *method, const char *address, bool watch, bool keep) {
        int r;

        if (!p)
                return -EINVAL;
        if (!address)
                return fail(p, -EINVAL, NULL);
        if (!keep)
                remember(p, watch, address, false);
        r = call(p, method, NULL, "s", address);
        if (r >= 0 && keep)
                remember(p, watch, address, true);
        return r;
}

int vrd_peer_release(vrd_peer *p, const char *address) {
        return call_with_address(p, "ReleaseDevice", address, false, false);
}

int vrd_peer_watch(vrd_peer *p, const char *address) {
        return call_with_address(p, "Watch", address, true, true);
}

/* Watch doesn't say whether the set was being reset (its reply is empty, and
 * the daemon's contract keeps it so); the set's PausedPeers does: a watcher
 * that joins a reset counts as one that acknowledged its pause
 * (arbiter_peer_joined), for as long as the reset holds its peers paused
 * (quiescing, resetting). The daemon answers one connection's calls in order,
 * so the property is read after the Watch took effect: if this peer is in
 * it, a Resume is to come; if not, either no reset holds the set or its
 * Resume was sent before this reply, and no Pause for that reset will come. */
int vrd_peer_watch_paused(vrd_peer *p, const char *address, bool *ret_paused) {
        _cleanup_(sd_bus_error_free) sd_bus_error e = SD_BUS_ERROR_NULL;
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *reply = NULL;
        _cleanup_strv_free_ char **paused = NULL;
        _cleanup_free_ char *devset = NULL;
        const char *me = NULL;
        bool in = false;
        int r;

        r = vrd_peer_watch(p, address);
        if (r < 0 || !ret_paused)
                return r;
        r = vrd_peer_get_devset(p, address, &devset);
        if (r < 0)
                return r;
        r = sd_bus_call_method(p->bus, VRD_BUS_NAME, devset, "org.freedesktop.DBus.Properties", "Get", &e, &reply,
                               "ss", "org.vfioresetd1.DevSet", "PausedPeers");
        if (r < 0)
                return fail(p, r, &e);
        r = sd_bus_message_enter_container(reply, 'v', "as");
        if (r >= 0)
                r = sd_bus_message_read_strv(reply, &paused);
        if (r >= 0)
                r = sd_bus_get_unique_name(p->bus, &me);
        if (r < 0)
                return fail(p, r, NULL);
        in = strv_contains(paused, me);
        /* So that the daemon leaving the bus ends this pause too (daemon-gone). */
        if (in) {
                r = paused_add(p, devset, 0, sd_bus_message_get_sender(reply));
                if (r < 0)
                        return fail(p, r, NULL);
        }
        *ret_paused = in;
        return 0;
}

int vrd_peer_unwatch(vrd_peer *p, const char *address) {
        return call_with_address(p, "Unwatch", address, true, false);
}

/* The object path a Manager method (GetDevSet, GetDevice) gives for address; free() it. */
static int object_of(vrd_peer *p, const char *method, const char *address, char **ret_path) {
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *reply = NULL;
        const char *path;
        int r;

        if (!p)
                return -EINVAL;
        if (!address || !ret_path)
                return fail(p, -EINVAL, NULL);
        r = call(p, method, &reply, "s", address);
        if (r < 0)
                return r;
        r = sd_bus_message_read(reply, "o", &path);
        if (r < 0)
                return fail(p, r, NULL);
        *ret_path = strdup(path);
        return *ret_path ? 0 : fail(p, -ENOMEM, NULL);
}

int vrd_peer_get_devset(vrd_peer *p, const char *address, char **ret_devset) {
        return object_of(p, "GetDevSet", address, ret_devset);
}

int vrd_peer_get_ioas(vrd_peer *p, const char *address, uint32_t *ret_ioas) {
        _cleanup_(sd_bus_error_free) sd_bus_error e = SD_BUS_ERROR_NULL;
        _cleanup_free_ char *path = NULL;
        int r;

        if (p && !ret_ioas)
                return fail(p, -EINVAL, NULL);
        r = object_of(p, "GetDevice", address, &path);
        if (r < 0)
                return r;
        r = sd_bus_get_property_trivial(p->bus, VRD_BUS_NAME, path, "org.vfioresetd1.Device", "IommufdIoasId", &e,
                                        'u', ret_ioas);
        return r < 0 ? fail(p, r, &e) : 0;
}

int vrd_peer_on_pause(vrd_peer *p, vrd_pause_handler_t handler, void *userdata) {
        if (!p)
                return -EINVAL;
        p->on_pause = handler;
        p->pause_userdata = userdata;
        return 0;
}

int vrd_peer_on_resume(vrd_peer *p, vrd_resume_handler_t handler, void *userdata) {
        if (!p)
                return -EINVAL;
        p->on_resume = handler;
        p->resume_userdata = userdata;
        return 0;
}

int vrd_peer_on_reset_progress(vrd_peer *p, vrd_progress_handler_t handler, void *userdata) {
        if (!p)
                return -EINVAL;
        p->on_progress = handler;
        p->progress_userdata = userdata;
        return 0;
}

int vrd_peer_on_rejoin(vrd_peer *p, vrd_rejoin_handler_t handler, void *userdata) {
        if (!p)
                return -EINVAL;
        p->on_rejoin = handler;
        p->rejoin_userdata = userdata;
        return 0;
}

static int fail_daemon_gone(vrd_peer *p, const struct paused_set *x) {
        _cleanup_(sd_bus_error_free) sd_bus_error e = SD_BUS_ERROR_NULL;

        (void) sd_bus_error_setf(&e, VRD_PEER_ERROR_DAEMON_GONE,
                                 "vfio-resetd (%s) left the bus during reset %" PRIu64 " of %s: that pause is over",
                                 x->daemon, x->reset_id, x->devset);
        return fail(p, -ENOTCONN, &e);
}

int vrd_peer_pause_complete(vrd_peer *p, uint64_t reset_id) {
        _cleanup_(sd_bus_error_free) sd_bus_error e = SD_BUS_ERROR_NULL;
        const struct paused_set *x;
        int r;

        if (!p)
                return -EINVAL;
        x = paused_find(p, reset_id, false);
        if (!x) {
                x = paused_find(p, reset_id, true);
                /* An id we never paused for goes to the daemon, which says what it makes of it. */
                return x ? fail_daemon_gone(p, x) : call(p, "PauseComplete", NULL, "t", reset_id);
        }
        /* To the daemon that paused us, not to the name: if it left and we have
         * not heard yet, the bus answers at once instead of starting another. */
        r = sd_bus_call_method(p->bus, x->daemon, VRD_ROOT_PATH, VRD_MANAGER_IFACE, "PauseComplete", &e, NULL, "t",
                               reset_id);
        if (r >= 0)
                return 0;
        if (sd_bus_error_has_names(&e, SD_BUS_ERROR_SERVICE_UNKNOWN, SD_BUS_ERROR_NAME_HAS_NO_OWNER))
                return fail_daemon_gone(p, x);
        return fail(p, r, &e);
}

/* --- ResetDevice, with the set's progress --------------------------------- */

struct reset_call {
        vrd_peer *peer;
        char *devset;                   /* known before the reply only when progress is followed */
        char *state;
        char **peers;
        char **paused_peers;
        uint64_t reset_id;
        sd_bus_message *reply;
};

static void reset_call_done(struct reset_call *c) {
        free(c->devset);
        free(c->state);
        strv_free(c->peers);
        strv_free(c->paused_peers);
        sd_bus_message_unref(c->reply);
}

static void report(struct reset_call *c) {
        struct vrd_reset_progress progress = {
                .devset = c->devset,
                .state = c->state ?: "idle",
                .peers = (const char *const *) (c->peers ?: (char *[]) { NULL }),
                .paused_peers = (const char *const *) (c->paused_peers ?: (char *[]) { NULL }),
                .reset_id = c->reset_id,
        };

        if (c->peer->on_progress)
                c->peer->on_progress(c->peer, &progress, c->peer->progress_userdata);
}

static int read_strv_variant(sd_bus_message *m, char ***ret) {
        int r = sd_bus_message_enter_container(m, 'v', "as");

        if (r < 0)
                return r;
        strv_free(*ret);
        *ret = NULL;
        r = sd_bus_message_read_strv(m, ret);
        return r < 0 ? r : sd_bus_message_exit_container(m);
}

/* The DevSet properties progress shows, from GetAll or PropertiesChanged. */
static int read_set_properties(sd_bus_message *m, struct reset_call *c) {
        const char *name, *state;
        int r;

        r = sd_bus_message_enter_container(m, 'a', "{sv}");
        if (r < 0)
                return r;
        while ((r = sd_bus_message_enter_container(m, 'e', "sv")) > 0) {
                r = sd_bus_message_read(m, "s", &name);
                if (r < 0)
                        return r;
                if (strcmp(name, "State") == 0) {
                        r = sd_bus_message_read(m, "v", "s", &state);
                        if (r >= 0) {
                                free(c->state);
                                c->state = strdup(state);
                        }
                } else if (strcmp(name, "Peers") == 0)
                        r = read_strv_variant(m, &c->peers);
                else if (strcmp(name, "PausedPeers") == 0)
                        r = read_strv_variant(m, &c->paused_peers);
                else
                        r = sd_bus_message_skip(m, "v");
                if (r >= 0)
                        r = sd_bus_message_exit_container(m);
                if (r < 0)
                        return r;
        }
        return r < 0 ? r : sd_bus_message_exit_container(m);
}

static int on_set_changed(sd_bus_message *m, void *userdata, sd_bus_error *ret_error) {
        struct reset_call *c = userdata;
        const char *iface;

        if (!from_daemon(c->peer, m) || sd_bus_message_read(m, "s", &iface) < 0 ||
            strcmp(iface, VRD_DEVSET_IFACE) != 0 || read_set_properties(m, c) < 0)
                return 0;
        report(c);
        return 0;
}

static int on_reset_started(sd_bus_message *m, void *userdata, sd_bus_error *ret_error) {
        struct reset_call *c = userdata;
        const char *devset;
        uint64_t id;

        if (!from_daemon(c->peer, m) || sd_bus_message_read(m, "ot", &devset, &id) < 0 ||
            strcmp(devset, c->devset) != 0)
                return 0;
        c->reset_id = id;
        report(c);
        return 0;
}

static int on_reset_reply(sd_bus_message *m, void *userdata, sd_bus_error *ret_error) {
        struct reset_call *c = userdata;

        c->reply = sd_bus_message_ref(m);
        return 0;
}

/* Follow the set from before the call: matches first, then its state now. */
static int follow_set(struct reset_call *c, const char *address, sd_bus_slot **changed, sd_bus_slot **started) {
        _cleanup_(sd_bus_error_free) sd_bus_error e = SD_BUS_ERROR_NULL;
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *reply = NULL;
        vrd_peer *p = c->peer;
        int r;

        r = vrd_peer_get_devset(p, address, &c->devset);
        if (r < 0)
                return r;
        r = sd_bus_match_signal(p->bus, changed, VRD_BUS_NAME, c->devset, "org.freedesktop.DBus.Properties",
                                "PropertiesChanged", on_set_changed, c);
        if (r >= 0)
                r = sd_bus_match_signal(p->bus, started, VRD_BUS_NAME, VRD_ROOT_PATH, VRD_MANAGER_IFACE,
                                        "ResetStarted", on_reset_started, c);
        if (r < 0)
                return fail(p, r, NULL);
        r = sd_bus_call_method(p->bus, VRD_BUS_NAME, c->devset, "org.freedesktop.DBus.Properties", "GetAll", &e,
                               &reply, "s", VRD_DEVSET_IFACE);
        if (r < 0)
                return fail(p, r, &e);
        r = read_set_properties(reply, c);
        if (r < 0)
                return fail(p, r, NULL);
        report(c);
        return 0;
}

static int reset_message(vrd_peer *p, const char *address, uint64_t quiesce_timeout_usec, uint64_t flags,
                         sd_bus_message **ret) {
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *m = NULL;
        int r;

        r = sd_bus_message_new_method_call(p->bus, &m, VRD_BUS_NAME, VRD_ROOT_PATH, VRD_MANAGER_IFACE,
                                           "ResetDevice");
        if (r >= 0)
                r = sd_bus_message_append(m, "s", address);
        if (r >= 0)
                r = sd_bus_message_open_container(m, 'a', "{sv}");
        if (r >= 0 && quiesce_timeout_usec > 0)
                r = sd_bus_message_append(m, "{sv}", "QuiesceTimeoutUSec", "t", quiesce_timeout_usec);
        if (r >= 0 && (flags & VRD_RESET_FORCE))
                r = sd_bus_message_append(m, "{sv}", "Force", "b", 1);
        if (r >= 0 && (flags & VRD_RESET_BORROW))
                r = sd_bus_message_append(m, "{sv}", "Borrow", "b", 1);
        if (r >= 0)
                r = sd_bus_message_close_container(m);
        if (r < 0)
                return r;
        *ret = TAKE_PTR(m);
        return 0;
}

int vrd_peer_reset(vrd_peer *p, const char *address, uint64_t quiesce_timeout_usec, uint64_t flags,
                   char **ret_devset, uint64_t *ret_duration_usec) {
        _cleanup_(sd_bus_slot_unrefp) sd_bus_slot *call_slot = NULL, *changed = NULL, *started = NULL;
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *m = NULL;
        _cleanup_(sd_bus_error_free) sd_bus_error e = SD_BUS_ERROR_NULL;
        struct reset_call c = { .peer = p };
        const char *devset, *result;
        uint64_t duration;
        int r;

        if (!p)
                return -EINVAL;
        if (!address || (flags & ~(VRD_RESET_FORCE | VRD_RESET_BORROW)))
                return fail(p, -EINVAL, NULL);
        /* The loop below dispatches the bus, which sd-bus refuses inside a handler. */
        if (sd_bus_get_current_message(p->bus))
                return fail(p, -EBUSY, NULL);

        if (p->on_progress) {
                r = follow_set(&c, address, &changed, &started);
                if (r < 0)
                        goto finish;
        }
        r = reset_message(p, address, quiesce_timeout_usec, flags, &m);
        /* No timeout of ours: the daemon answers when the reset is over, or the bus when the daemon leaves. */
        if (r >= 0)
                r = sd_bus_call_async(p->bus, &call_slot, m, on_reset_reply, &c, UINT64_MAX);
        while (r >= 0 && !c.reply) {
                r = sd_bus_process(p->bus, NULL);
                if (r == 0)
                        r = sd_bus_wait(p->bus, UINT64_MAX);
                if (r == -EINTR)
                        r = 0;
        }
        if (r < 0) {
                r = fail(p, r, NULL);
                goto finish;
        }
        if (sd_bus_message_is_method_error(c.reply, NULL)) {
                sd_bus_error_copy(&e, sd_bus_message_get_error(c.reply));
                r = fail(p, -EIO, &e);
                goto finish;
        }
        r = sd_bus_message_read(c.reply, "ost", &devset, &result, &duration);
        if (r >= 0 && ret_devset && !(*ret_devset = strdup(devset)))
                r = -ENOMEM;
        if (r < 0) {
                r = fail(p, r, NULL);
                goto finish;
        }
        if (ret_duration_usec)
                *ret_duration_usec = duration;
        r = 0;
finish:
        reset_call_done(&c);
        return r;
}

/* --- event loop integration ------------------------------------------------ */

int vrd_peer_get_fd(vrd_peer *p) {
        return p ? sd_bus_get_fd(p->bus) : -EINVAL;
}

int vrd_peer_get_events(vrd_peer *p) {
        return p ? sd_bus_get_events(p->bus) : -EINVAL;
}

int vrd_peer_get_timeout(vrd_peer *p, uint64_t *ret_usec) {
        return p ? sd_bus_get_timeout(p->bus, ret_usec) : -EINVAL;
}

int vrd_peer_process(vrd_peer *p) {
        int r;

        if (!p)
                return -EINVAL;
        while ((r = sd_bus_process(p->bus, NULL)) > 0)
                ;
        return r < 0 ? fail(p, r, NULL) : 0;
}

int vrd_peer_wait(vrd_peer *p, uint64_t timeout_usec) {
        int r;

        if (!p)
                return -EINVAL;
        r = sd_bus_wait(p->bus, timeout_usec);
        if (r == -EINTR)
                return 0;
        return r < 0 ? fail(p, r, NULL) : r;
}

int vrd_peer_attach_event(vrd_peer *p, sd_event *e) {
        if (!p)
                return -EINVAL;
        return sd_bus_attach_event(p->bus, e, SD_EVENT_PRIORITY_NORMAL);
}

sd_bus *vrd_peer_get_bus(vrd_peer *p) {
        return p ? p->bus : NULL;
}

const char *vrd_peer_error_name(vrd_peer *p) {
        return p ? p->error.name : NULL;
}

const char *vrd_peer_error_message(vrd_peer *p) {
        return p ? p->error.message : NULL;
}
