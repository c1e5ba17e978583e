/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <assert.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <systemd/sd-event.h>

#include "log.h"
#include "macro.h"
#include "polkit.h"

#define POLKIT_NAME  "org.freedesktop.PolicyKit1"
#define POLKIT_PATH  "/org/freedesktop/PolicyKit1/Authority"
#define POLKIT_IFACE "org.freedesktop.PolicyKit1.Authority"
#define POLKIT_INTERACTIVE_TIMEOUT_USEC (5 * 60 * UINT64_C(1000000))

/* What polkit said about one action; failure is set when it could not be asked. */
struct polkit_answer {
        char *action;
        bool allowed;
        bool challenge;         /* allowed after authentication, which we did not offer */
        char *failure;
};

/* One method call message on its way through authorization: asked about one
 * action at a time, dispatched again after each answer, and freed once a
 * dispatch has passed without a new question. */
struct polkit_query {
        struct polkit_registry *registry;
        struct polkit_query *prev, *next;
        sd_bus_message *request;
        uid_t uid;
        char *action;                   /* asked about, while slot is set */
        sd_bus_slot *slot;              /* the CheckAuthorization call in flight */
        sd_event_source *idle;          /* after the second dispatch: free or keep */
        struct polkit_answer *answers;
        size_t n_answers;
};

/* The callers' effective uids, by unique bus name. The bus driver gives a
 * connection's credentials as they were when it connected, and never gives
 * a unique name twice (D-Bus specification, "Bus names"), so an entry stays
 * true: it only costs room, and the table starts over when full. Without
 * it every call would wait for a GetConnectionCredentials round trip. */
#define EUID_CACHE_SIZE 256

struct euid_entry {
        char name[32];
        uid_t euid;
};

struct polkit_registry {
        struct polkit_query *queries;
        size_t n_queries;
        struct euid_entry euids[EUID_CACHE_SIZE];
        size_t n_euids;
};

static struct polkit_query *query_free(struct polkit_query *q) {
        if (!q)
                return NULL;
        if (q->prev)
                q->prev->next = q->next;
        else
                q->registry->queries = q->next;
        if (q->next)
                q->next->prev = q->prev;
        q->registry->n_queries--;

        sd_bus_slot_unref(q->slot);
        sd_event_source_disable_unref(q->idle);
        sd_bus_message_unref(q->request);
        for (size_t i = 0; i < q->n_answers; i++) {
                free(q->answers[i].action);
                free(q->answers[i].failure);
        }
        free(q->answers);
        free(q->action);
        free(q);
        return NULL;
}

struct polkit_registry *polkit_registry_free(struct polkit_registry *r) {
        if (!r)
                return NULL;
        while (r->queries)
                query_free(r->queries);
        free(r);
        return NULL;
}

size_t polkit_registry_size(const struct polkit_registry *r) {
        return r ? r->n_queries : 0;
}

static struct polkit_query *query_new(struct polkit_registry *r, sd_bus_message *request, uid_t uid) {
        struct polkit_query *q = calloc(1, sizeof(*q));

        if (!q)
                return NULL;
        *q = (struct polkit_query) {
                .registry = r,
                .next = r->queries,
                .request = sd_bus_message_ref(request),
                .uid = uid,
        };
        if (r->queries)
                r->queries->prev = q;
        r->queries = q;
        r->n_queries++;
        return q;
}

/* Keyed by the message itself: sd-bus hands the same object to the second dispatch. */
static struct polkit_query *registry_find(struct polkit_registry *r, sd_bus_message *request) {
        for (struct polkit_query *q = r ? r->queries : NULL; q; q = q->next)
                if (q->request == request)
                        return q;
        return NULL;
}

static const struct polkit_answer *query_find_answer(const struct polkit_query *q, const char *action) {
        for (size_t i = 0; i < q->n_answers; i++)
                if (strcmp(q->answers[i].action, action) == 0)
                        return &q->answers[i];
        return NULL;
}

static const char *sender_or_unknown(sd_bus_message *m) {
        return sd_bus_message_get_sender(m) ?: "(no bus name)";
}

static int answer_to_result(const struct polkit_query *q, const struct polkit_answer *a, sd_bus_error *error) {
        if (a->failure)
                return sd_bus_error_setf(error, SD_BUS_ERROR_ACCESS_DENIED,
                                         "Access to %s denied for %s (uid %u): cannot ask polkit: %s",
                                         a->action, sender_or_unknown(q->request), (unsigned) q->uid, a->failure);
        if (!a->allowed)
                return sd_bus_error_setf(error, SD_BUS_ERROR_ACCESS_DENIED,
                                         "Access to %s denied for %s (uid %u)%s", a->action,
                                         sender_or_unknown(q->request), (unsigned) q->uid,
                                         a->challenge ? ": authentication is required, and the call did not allow "
                                                        "interactive authorization" : "");
        return 1;
}

/* Called at idle priority, i.e. after sd-bus has dispatched the message we put
 * back into its read queue: the handler has seen its answer by now. */
static int on_idle(sd_event_source *s, void *userdata) {
        struct polkit_query *q = userdata;

        if (!q->slot)   /* else the handler asked about another action: keep the answers */
                query_free(q);
        return 0;
}

static int record_answer(struct polkit_query *q, sd_bus_message *reply) {
        struct polkit_answer *answers, a = {};
        int allowed = 0, challenge = 0, r;

        if (sd_bus_message_is_method_error(reply, NULL)) {
                const sd_bus_error *e = sd_bus_message_get_error(reply);

                a.failure = strdup(e->message ?: e->name);
                if (!a.failure)
                        return -ENOMEM;
                log_warning("Could not ask polkit whether %s (uid %u) may %s: %s", sender_or_unknown(q->request),
                            (unsigned) q->uid, q->action, a.failure);
        } else {
                r = sd_bus_message_enter_container(reply, 'r', "bba{ss}");
                if (r >= 0)
                        r = sd_bus_message_read(reply, "bb", &allowed, &challenge);
                if (r < 0) {
                        if (asprintf(&a.failure, "cannot read its answer: %s", strerror(-r)) < 0)
                                return -ENOMEM;
                        log_warning("Could not understand polkit about %s: %s", q->action, a.failure);
                }
                a.allowed = allowed && !a.failure;
                a.challenge = challenge;
                log_debug("polkit: %s (uid %u) %s %s", sender_or_unknown(q->request), (unsigned) q->uid,
                          a.allowed ? "may" : "may not", q->action);
        }

        answers = realloc(q->answers, (q->n_answers + 1) * sizeof(*answers));
        if (!answers) {
                free(a.failure);
                return -ENOMEM;
        }
        q->answers = answers;
        a.action = TAKE_PTR(q->action);
        q->answers[q->n_answers++] = a;
        return 0;
}

/* Put the request back into the bus's read queue rather than call its handler
 * from here: by now the object it was addressed to may be gone, and a fresh
 * dispatch looks it up again (systemd's fix for CVE-2020-1712). */
static int redispatch(struct polkit_query *q) {
        sd_bus *bus = sd_bus_message_get_bus(q->request);
        int r;

        if (!q->idle) {
                r = sd_event_add_defer(sd_bus_get_event(bus), &q->idle, on_idle, q);
                if (r < 0)
                        return r;
                r = sd_event_source_set_priority(q->idle, SD_EVENT_PRIORITY_IDLE);
                if (r < 0)
                        return r;
                (void) sd_event_source_set_description(q->idle, "polkit-query");
        }
        r = sd_event_source_set_enabled(q->idle, SD_EVENT_ONESHOT);
        if (r < 0)
                return r;
        r = sd_bus_message_rewind(q->request, true);
        if (r < 0)
                return r;
        return sd_bus_enqueue_for_read(bus, q->request);
}

static int on_check_authorization(sd_bus_message *reply, void *userdata, sd_bus_error *ret_error) {
        struct polkit_query *q = userdata;
        int r;

        q->slot = sd_bus_slot_unref(q->slot);
        r = record_answer(q, reply);
        if (r >= 0)
                r = redispatch(q);
        if (r < 0) {
                log_error_errno(r, "Could not finish the authorization of a call from %s: %m",
                                sender_or_unknown(q->request));
                (void) sd_bus_reply_method_errorf(q->request, SD_BUS_ERROR_ACCESS_DENIED,
                                                  "Access denied: authorization failed: %s", strerror(-r));
                query_free(q);
        }
        return 0;
}

static int query_ask(struct polkit_query *q, const char *action) {
        sd_bus_message *request = q->request;
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *call = NULL;
        sd_bus *bus = sd_bus_message_get_bus(request);
        uint32_t flags = sd_bus_message_get_allow_interactive_authorization(request) > 0 ? 1 : 0;
        int r;

        assert(!q->slot);

        if (!sd_bus_get_event(bus))
                return -EOPNOTSUPP;     /* nothing would dispatch the answer */
        q->action = strdup(action);
        if (!q->action)
                return -ENOMEM;
        r = sd_bus_message_new_method_call(bus, &call, POLKIT_NAME, POLKIT_PATH, POLKIT_IFACE, "CheckAuthorization");
        if (r < 0)
                return r;
        r = sd_bus_message_append(call, "(sa{sv})sa{ss}us", "system-bus-name", 1, "name", "s",
                                  sd_bus_message_get_sender(request), action, 0, flags, "");
        if (r < 0)
                return r;
        /* Interactive authentication waits for a person typing a password. */
        r = sd_bus_call_async(bus, &q->slot, call, on_check_authorization, q,
                              flags ? POLKIT_INTERACTIVE_TIMEOUT_USEC : 0);
        if (r < 0)
                return r;
        log_debug("polkit: asking whether %s (uid %u) may %s", sd_bus_message_get_sender(request),
                  (unsigned) q->uid, action);
        return 0;
}

static int sender_euid(struct polkit_registry *registry, sd_bus_message *m, uid_t *ret) {
        _cleanup_(sd_bus_creds_unrefp) sd_bus_creds *creds = NULL;
        const char *sender = sd_bus_message_get_sender(m);
        bool cacheable = sender && strlen(sender) < sizeof(registry->euids[0].name);
        int r;

        for (size_t i = 0; cacheable && i < registry->n_euids; i++)
                if (strcmp(registry->euids[i].name, sender) == 0) {
                        *ret = registry->euids[i].euid;
                        return 0;
                }
        /* On a bus the euid comes from the bus driver (SO_PEERCRED), not /proc. */
        r = sd_bus_query_sender_creds(m, SD_BUS_CREDS_EUID | SD_BUS_CREDS_AUGMENT, &creds);
        if (r < 0)
                return r;
        r = sd_bus_creds_get_euid(creds, ret);
        if (r < 0 || !cacheable)
                return r;
        if (registry->n_euids == EUID_CACHE_SIZE)
                registry->n_euids = 0;
        registry->euids[registry->n_euids] = (struct euid_entry) { .euid = *ret };
        strcpy(registry->euids[registry->n_euids++].name, sender);
        return 0;
}

int polkit_verify(struct polkit_registry **registry, sd_bus_message *msg, const char *action,
                  sd_bus_message_handler_t handler, void *userdata, sd_bus_error *error) {
        const char *sender = sd_bus_message_get_sender(msg);
        struct polkit_query *q;
        uid_t uid;
        int r;

        assert(registry);
        assert(msg);
        assert(action);

        q = registry_find(*registry, msg);
        if (q) {
                const struct polkit_answer *a = query_find_answer(q, action);

                uid = q->uid;
                if (a)
                        return answer_to_result(q, a, error);
                if (q->slot)    /* asking about another action of this call; we come back */
                        return 0;
                r = query_ask(q, action);
                if (r < 0) {
                        q->action = mfree(q->action);
                        goto cannot_ask;
                }
                return 0;
        }

        if (!*registry) {
                *registry = calloc(1, sizeof(**registry));
                if (!*registry)
                        return sd_bus_error_set_errno(error, ENOMEM);
        }
        r = sender_euid(*registry, msg, &uid);
        if (r < 0)
                return sd_bus_error_setf(error, SD_BUS_ERROR_ACCESS_DENIED,
                                         "Access to %s denied: cannot identify the caller %s: %s", action,
                                         sender ?: "(no bus name)", strerror(-r));
        if (uid == 0)
                return 1;
        if (!sender)
                return sd_bus_error_setf(error, SD_BUS_ERROR_ACCESS_DENIED,
                                         "Access to %s denied for uid %u: the call has no sender name to ask polkit about",
                                         action, (unsigned) uid);

        q = query_new(*registry, msg, uid);
        if (!q)
                return sd_bus_error_set_errno(error, ENOMEM);
        r = query_ask(q, action);
        if (r < 0) {
                query_free(q);
                goto cannot_ask;
        }
        return 0;

cannot_ask:
        log_warning_errno(r, "Could not ask polkit whether %s (uid %u) may %s: %m", sender ?: "?", (unsigned) uid, action);
        return sd_bus_error_setf(error, SD_BUS_ERROR_ACCESS_DENIED,
                                 "Access to %s denied for %s (uid %u): cannot ask polkit: %s", action,
                                 sender ?: "(no bus name)", (unsigned) uid, strerror(-r));
}
