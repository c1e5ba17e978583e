/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The libvirt quiesce adapter (quiesce.h): a holder that is the QEMU of a
 * running libvirt domain is stopped by suspending the domain
 * (virDomainSuspend) and let run by virDomainResume. A domain that was paused
 * when the reset came stays paused; two resets that need one domain at once
 * suspend it once and resume it when the last lets go.
 *
 * Which domain a holder is: its pid is the one in the domain's pid file
 * (NAME.pid in /run/libvirt/qemu, where the qemu driver writes it). The
 * holder's machine scope (machine-qemu\x2dID\x2dNAME.scope) and the domain's
 * <hostdev type='pci'> sources are cross-checks, logged when they disagree.
 * applies() never asks libvirt: it reads a cache of the running domains
 * (name, UUID, id, pid, hostdev addresses), rebuilt when the connection
 * opens and on libvirt's lifecycle and device events.
 *
 * Threads. Every libvirt call is made on one thread of the adapter's own,
 * which runs libvirt's default event loop (virEventRunDefaultImpl) and makes
 * the calls from it: requests reach it through a queue and an eventfd the
 * loop watches (virEventAddHandle), outcomes and caches come back through a
 * queue and an eventfd that sd-event watches. The daemon's loop only ever
 * takes a mutex held for a few pointer moves. libvirt lets several threads
 * share a virConnectPtr (its API is thread-safe, "Thread safety" in its
 * docs), but ours has this one thread alone: a call that libvirtd does not
 * answer holds nothing else. Its event loop is the process's, so there is
 * one adapter per process. free() waits JOIN_TIMEOUT_SEC for the thread,
 * then leaves it, detached, in its call. A libvirtd that is down or
 * restarts: the connection is opened at start and retried every
 * RETRY_MS; a closed one (virConnectRegisterCloseCallback) is dropped and
 * opened again; meanwhile the cache is empty and the adapter applies to
 * nothing.
 *
 * A call that libvirtd does not answer: each stop and resume has a deadline,
 * kept by a timer on the daemon's loop, which reports -ETIMEDOUT when it
 * passes, whatever the thread is doing. The calls behind a hung one wait
 * their turn in the queue (one connection, one call at a time): a stop whose
 * report went out before it ran is skipped, one that ran late is undone at
 * once (the domain resumed); a resume is never dropped, since that would
 * leave a domain suspended: it runs when libvirt answers again, its -ETIMEDOUT
 * long reported. A resume that fails because libvirt is unreachable is owed,
 * and made when the connection opens again. Keepalives (virConnectSetKeepAlive)
 * make libvirt close a connection whose daemon stopped answering, which
 * ends a hung call. */
#include <assert.h>
#include <errno.h>
#include <signal.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <time.h>
#include <libvirt/libvirt.h>
#include <libvirt/virterror.h>
#include <libxml/parser.h>
#include <libxml/tree.h>
#include <libxml/xpath.h>
#include <systemd/sd-event.h>

#include "log.h"
#include "macro.h"
#include "quiesce.h"

#define PID_DIR_DEFAULT "/run/libvirt/qemu"
#define RETRY_MS 3000                   /* between attempts to connect */
#define KEEPALIVE_INTERVAL_SEC 5        /* libvirt closes the connection after */
#define KEEPALIVE_COUNT 3               /* (3 + 1) * 5 s without an answer */
#define JOIN_TIMEOUT_SEC 2              /* what free waits for the thread */
#define DRAIN_MS 50

/* --- what the thread and the loop share --------------------------------------- */

/* One running domain. */
struct domain {
        char *name;
        char uuid[VIR_UUID_STRING_BUFLEN];
        int id;
        pid_t pid;                      /* of its pid file, 0 when none could be read */
        struct pci_address *hostdevs;   /* the sources of its <hostdev type='pci'> */
        size_t n_hostdevs;
};

struct cache {
        struct domain *domains;
        size_t n_domains;
        bool connected;
};

/* One target's suspension, shared by the loop's target and its requests. */
struct hold {
        atomic_int ref;
        char uuid[VIR_UUID_STRING_BUFLEN];
        char name[sizeof(((struct quiesce_target *) NULL)->name)];     /* "libvirt domain vm1 (UUID)" */
        /* the thread's alone */
        bool holding;                   /* counts in its domain's suspension */
        bool found_paused;              /* the last stop found the domain paused by someone else */
};

/* Per domain, the thread's alone: how many holds keep it suspended. */
struct suspension {
        struct suspension *next;
        char uuid[VIR_UUID_STRING_BUFLEN];
        char name[sizeof(((struct hold *) NULL)->name)];
        unsigned holds;
        bool resume_owed;               /* the last hold let go while libvirt could not be reached */
};

enum request_kind {
        REQUEST_STOP,
        REQUEST_RESUME,
        REQUEST_TEST,
};

struct libvirt_target;

struct request {
        struct request *next;
        enum request_kind kind;
        struct hold *hold;
        uint64_t stall_usec;                    /* quiesce_libvirt_test_stall() */
        void (*fn)(void *conn, void *userdata); /* quiesce_libvirt_test_call() */
        void (*fn_done)(void *userdata);
        void *fn_userdata;

        /* under the lock */
        bool cancelled;                 /* a stop nobody waits for: skipped, or undone once it ran */
        bool completed;                 /* on the done list: the outcome below is final */

        /* the outcome, written by the thread before it is completed */
        int error;
        int level;
        bool held;                      /* a stop that suspended the domain for this hold */
        char message[512];

        /* the loop's alone */
        struct libvirt_target *target;  /* who hears the outcome; NULL once nobody does */
};

struct shared {
        atomic_int ref;
        pthread_mutex_t lock;
        int wake_thread;                /* eventfd: requests queued, or quit */
        int wake_loop;                  /* eventfd: outcomes or a cache for the loop */
        char *uri;
        char *pid_dir;

        /* under the lock */
        struct request *queue, **queue_tail;
        struct request *done, **done_tail;
        struct cache *cache;            /* the newest, not taken by the loop yet */
        bool quit;
        bool loop_gone;                 /* free() left the thread behind: it frees what it completes */

        /* the thread's alone */
        virConnectPtr conn;
        bool closed;                    /* libvirt said the connection closed */
        int callbacks[3];               /* domain event callback ids, -1 when none */
        int retry_timer, refresh_timer;
        struct suspension *suspensions;
        bool failing;                   /* connecting failed last time, which was logged */
};

/* libvirt's event loop is the process's: one adapter, one thread, at a time. */
static atomic_bool thread_running;

static void hold_unref(struct hold *h) {
        if (h && atomic_fetch_sub(&h->ref, 1) == 1)
                free(h);
}

static struct hold *hold_ref(struct hold *h) {
        atomic_fetch_add(&h->ref, 1);
        return h;
}

static void request_free(struct request *r) {
        if (!r)
                return;
        hold_unref(r->hold);
        free(r);
}

static void cache_free(struct cache *c) {
        if (!c)
                return;
        for (size_t i = 0; i < c->n_domains; i++) {
                free(c->domains[i].name);
                free(c->domains[i].hostdevs);
        }
        free(c->domains);
        free(c);
}

static struct shared *shared_unref(struct shared *s) {
        if (!s || atomic_fetch_sub(&s->ref, 1) > 1)
                return NULL;
        for (struct request *r = s->queue, *n; r; r = n) {
                n = r->next;
                request_free(r);
        }
        for (struct request *r = s->done, *n; r; r = n) {
                n = r->next;
                request_free(r);
        }
        cache_free(s->cache);
        closep(&s->wake_thread);
        closep(&s->wake_loop);
        pthread_mutex_destroy(&s->lock);
        free(s->uri);
        free(s->pid_dir);
        free(s);
        return NULL;
}

static void wake(int fd) {
        /* Fails only when the counter would overflow: then it is readable anyway. */
        (void) eventfd_write(fd, 1);
}

static void drain(int fd) {
        eventfd_t n;

        (void) eventfd_read(fd, &n);
}

/* --- the thread: the connection and the cache ----------------------------------- */

static void ignore_error(void *userdata, virErrorPtr e) {
        /* libvirt prints every error to stderr unless told otherwise; the
         * adapter reports them itself, with what it was doing. */
}

static const char *last_error(void) {
        return virGetLastErrorMessage();
}

/* A libvirt error as a negative errno; -ETIMEDOUT is kept for deadlines. */
static int last_errno(void) {
        switch (virGetLastErrorCode()) {
        case VIR_ERR_NO_DOMAIN:
                return -ENOENT;
        case VIR_ERR_OPERATION_INVALID:
                return -EINVAL;
        case VIR_ERR_AUTH_FAILED:
        case VIR_ERR_AUTH_CANCELLED:
        case VIR_ERR_ACCESS_DENIED:
                return -EACCES;
        case VIR_ERR_NO_SUPPORT:
                return -EOPNOTSUPP;
        case VIR_ERR_NO_CONNECT:
                return -ENOTCONN;
        default:
                return -EIO;
        }
}

/* The thread posts; the loop takes it on its next turn. */
static void post_cache(struct shared *s, struct cache *c) {
        pthread_mutex_lock(&s->lock);
        cache_free(s->cache);
        s->cache = c;
        pthread_mutex_unlock(&s->lock);
        wake(s->wake_loop);
}

static pid_t read_pid(const char *dir, const char *name) {
        _cleanup_(fclosep) FILE *f = NULL;
        char path[4096];
        int pid;

        snprintf(path, sizeof(path), "%s/%s.pid", dir, name);
        f = fopen(path, "re");
        if (!f || fscanf(f, "%d", &pid) != 1 || pid <= 0)
                return 0;
        return pid;
}

static bool parse_hex(xmlNode *n, const char *attribute, unsigned long max, unsigned long *ret) {
        xmlChar *v = xmlGetProp(n, (const xmlChar *) attribute);
        char *end;
        bool ok;

        if (!v)
                return false;
        errno = 0;
        *ret = strtoul((const char *) v, &end, 0);
        ok = errno == 0 && end != (char *) v && !*end && *ret <= max;
        xmlFree(v);
        return ok;
}

/* The source addresses of the domain's PCI hostdevs (formatdomain: <hostdev
 * mode='subsystem' type='pci'><source><address domain= bus= slot= function=/>). */
static int parse_hostdevs(const char *xml, struct domain *d) {
        xmlDoc *doc = xmlReadMemory(xml, (int) strlen(xml), "domain.xml", NULL,
                                    XML_PARSE_NONET | XML_PARSE_NOERROR | XML_PARSE_NOWARNING);
        xmlXPathContext *ctx = doc ? xmlXPathNewContext(doc) : NULL;
        xmlXPathObject *o = ctx ? xmlXPathEvalExpression((const xmlChar *)
                "/domain/devices/hostdev[@mode='subsystem'][@type='pci']/source/address", ctx) : NULL;
        int r = o ? 0 : -EINVAL;
        int n = o && o->nodesetval ? o->nodesetval->nodeNr : 0;

        if (n > 0) {
                d->hostdevs = calloc((size_t) n, sizeof(*d->hostdevs));
                if (!d->hostdevs)
                        r = -ENOMEM;
        }
        for (int i = 0; d->hostdevs && i < n; i++) {
                xmlNode *a = o->nodesetval->nodeTab[i];
                unsigned long dom, bus, slot, fn;

                if (parse_hex(a, "domain", UINT32_MAX, &dom) && parse_hex(a, "bus", 0xff, &bus) &&
                    parse_hex(a, "slot", 0x1f, &slot) && parse_hex(a, "function", 7, &fn))
                        d->hostdevs[d->n_hostdevs++] = (struct pci_address) {
                                .domain = (uint32_t) dom, .bus = (uint8_t) bus, .slot = (uint8_t) slot,
                                .function = (uint8_t) fn,
                        };
        }
        xmlXPathFreeObject(o);
        xmlXPathFreeContext(ctx);
        xmlFreeDoc(doc);
        return r;
}

static int domain_fill(struct shared *s, virDomainPtr dom, struct domain *d) {
        const char *name = virDomainGetName(dom);
        _cleanup_free_ char *xml = NULL;
        int r;

        if (!name || virDomainGetUUIDString(dom, d->uuid) < 0)
                return -EIO;
        d->name = strdup(name);
        if (!d->name)
                return -ENOMEM;
        d->id = virDomainGetID(dom) == (unsigned) -1 ? -1 : (int) virDomainGetID(dom);
        d->pid = read_pid(s->pid_dir, name);
        xml = virDomainGetXMLDesc(dom, 0);
        if (!xml) {
                log_debug("quiesce: cannot read the XML of libvirt domain %s: %s", name, last_error());
                return 0;       /* gone just now, or not ours to read: it has no hostdevs we know of */
        }
        r = parse_hostdevs(xml, d);
        if (r == -EINVAL)
                log_debug("quiesce: cannot parse the XML of libvirt domain %s", name);
        return r == -ENOMEM ? r : 0;
}

/* The running domains, posted to the loop. */
static void refresh(struct shared *s) {
        struct cache *c = calloc(1, sizeof(*c));
        virDomainPtr *doms = NULL;
        int n = -1, r = 0;

        if (!c) {
                log_oom();
                return;
        }
        c->connected = s->conn && !s->closed;
        if (c->connected)
                n = virConnectListAllDomains(s->conn, &doms, VIR_CONNECT_LIST_DOMAINS_ACTIVE);
        if (c->connected && n < 0)
                log_warning("quiesce: libvirt cannot list the running domains: %s", last_error());
        if (n > 0) {
                c->domains = calloc((size_t) n, sizeof(*c->domains));
                r = c->domains ? 0 : -ENOMEM;
        }
        for (int i = 0; i < n; i++) {
                struct domain *d = r >= 0 ? &c->domains[c->n_domains] : NULL;

                if (d && (r = domain_fill(s, doms[i], d)) >= 0)
                        c->n_domains++;
                else if (d) {
                        free(d->name);
                        free(d->hostdevs);
                        *d = (struct domain) {};
                        r = r == -ENOMEM ? r : 0;       /* gone meanwhile: left out */
                }
                virDomainFree(doms[i]);
        }
        free(doms);
        if (r < 0)
                log_oom();
        log_debug("quiesce: %zu running libvirt domains", c->n_domains);
        post_cache(s, c);
}

static void on_refresh(int timer, void *userdata) {
        struct shared *s = userdata;

        virEventUpdateTimeout(timer, -1);
        refresh(s);
}

/* Events coalesce into one refresh, made from the loop rather than from the
 * event callback. */
static void refresh_soon(struct shared *s) {
        virEventUpdateTimeout(s->refresh_timer, 0);
}

static int on_lifecycle(virConnectPtr conn, virDomainPtr dom, int event, int detail, void *userdata) {
        if (event == VIR_DOMAIN_EVENT_STARTED || event == VIR_DOMAIN_EVENT_STOPPED ||
            event == VIR_DOMAIN_EVENT_CRASHED)
                refresh_soon(userdata);
        return 0;
}

static void on_device_changed(virConnectPtr conn, virDomainPtr dom, const char *alias, void *userdata) {
        refresh_soon(userdata);
}

/* libvirt: the close callback is called from its event loop; no libvirt call
 * is made here, only the retry is brought forward, to drop the connection. */
static void on_close(virConnectPtr conn, int reason, void *userdata) {
        struct shared *s = userdata;

        s->closed = true;
        virEventUpdateTimeout(s->retry_timer, 0);
}

static void disconnect(struct shared *s) {
        if (!s->conn)
                return;
        for (size_t i = 0; i < ELEMENTSOF(s->callbacks); i++)
                if (s->callbacks[i] >= 0)
                        (void) virConnectDomainEventDeregisterAny(s->conn, s->callbacks[i]);
        (void) virConnectUnregisterCloseCallback(s->conn, on_close);
        (void) virConnectClose(s->conn);
        s->conn = NULL;
        s->closed = false;
}

static int resume_domain(struct shared *s, const char *uuid, const char *name, char *message, size_t size);

/* Resumes owed since libvirt went away, now that it is back. */
static void pay_owed_resumes(struct shared *s) {
        for (struct suspension **p = &s->suspensions; *p;) {
                struct suspension *x = *p;
                char message[512];

                if (!x->resume_owed || x->holds > 0) {
                        p = &x->next;
                        continue;
                }
                if (resume_domain(s, x->uuid, x->name, message, sizeof(message)) == -ENOTCONN) {
                        p = &x->next;
                        continue;
                }
                log_info("quiesce: resuming what libvirt could not resume before: %s", message);
                *p = x->next;
                free(x);
        }
}

static void connect_libvirt(struct shared *s) {
        static const int ids[] = {
                VIR_DOMAIN_EVENT_ID_LIFECYCLE, VIR_DOMAIN_EVENT_ID_DEVICE_ADDED, VIR_DOMAIN_EVENT_ID_DEVICE_REMOVED,
        };
        static const virConnectDomainEventGenericCallback callbacks[] = {
                VIR_DOMAIN_EVENT_CALLBACK(on_lifecycle), VIR_DOMAIN_EVENT_CALLBACK(on_device_changed),
                VIR_DOMAIN_EVENT_CALLBACK(on_device_changed),
        };

        /* Read-write: a read-only connection may not suspend. */
        s->conn = virConnectOpen(s->uri);
        if (!s->conn) {
                log_full_errno(s->failing ? LOG_DEBUG : LOG_INFO, 0,
                               "quiesce: cannot connect to libvirt at %s (%s); trying again every %d s, libvirt "
                               "domains are not suspended meanwhile", s->uri, last_error(), RETRY_MS / 1000);
                s->failing = true;
                virEventUpdateTimeout(s->retry_timer, RETRY_MS);
                return;
        }
        s->failing = false;
        s->closed = false;
        if (virConnectRegisterCloseCallback(s->conn, on_close, s, NULL) < 0)
                log_debug("quiesce: libvirt cannot tell when %s closes: %s", s->uri, last_error());
        /* 1: the other side does not support them; -1: this driver has no
         * persistent connection to watch (test:///). */
        if (virConnectSetKeepAlive(s->conn, KEEPALIVE_INTERVAL_SEC, KEEPALIVE_COUNT) < 0)
                log_debug("quiesce: no keepalives on %s: %s", s->uri, last_error());
        for (size_t i = 0; i < ELEMENTSOF(ids); i++) {
                s->callbacks[i] = virConnectDomainEventRegisterAny(s->conn, NULL, ids[i], callbacks[i], s, NULL);
                if (s->callbacks[i] < 0)
                        log_warning("quiesce: libvirt at %s cannot send domain events (%s): domains started "
                                    "later may not be seen", s->uri, last_error());
        }
        log_info("quiesce: connected to libvirt at %s", s->uri);
        refresh(s);
        pay_owed_resumes(s);
}

static void on_retry(int timer, void *userdata) {
        struct shared *s = userdata;

        virEventUpdateTimeout(timer, -1);
        if (s->conn && s->closed) {
                log_notice("quiesce: the connection to libvirt at %s closed; connecting again", s->uri);
                disconnect(s);
                refresh(s);     /* empty: nothing applies meanwhile */
        }
        if (!s->conn)
                connect_libvirt(s);
}

/* --- the thread: stops and resumes ------------------------------------------------ */

_printf_(4, 5)
static void outcome(struct request *r, int level, int error, const char *fmt, ...) {
        va_list ap;

        va_start(ap, fmt);
        vsnprintf(r->message, sizeof(r->message), fmt, ap);
        va_end(ap);
        r->level = level;
        r->error = error;
}

static struct suspension *suspension_find(struct shared *s, const char *uuid) {
        for (struct suspension *x = s->suspensions; x; x = x->next)
                if (strcmp(x->uuid, uuid) == 0)
                        return x;
        return NULL;
}

static void suspension_drop(struct shared *s, struct suspension *x) {
        for (struct suspension **p = &s->suspensions; *p; p = &(*p)->next)
                if (*p == x) {
                        *p = x->next;
                        free(x);
                        return;
                }
}

static bool unreachable(struct shared *s) {
        return !s->conn || s->closed || virConnectIsAlive(s->conn) != 1;
}

static virDomainPtr lookup(struct shared *s, const char *uuid) {
        return unreachable(s) ? NULL : virDomainLookupByUUIDString(s->conn, uuid);
}

/* -ENOTCONN when libvirt cannot be reached: the resume is owed. */
static int resume_domain(struct shared *s, const char *uuid, const char *name, char *message, size_t size) {
        virDomainPtr dom = lookup(s, uuid);
        int state, reason, r = 0;

        if (!dom && unreachable(s)) {
                snprintf(message, size, "cannot resume %s: libvirt at %s cannot be reached%s%s", name, s->uri,
                         s->conn ? ": " : "", s->conn ? last_error() : "");
                return -ENOTCONN;
        }
        if (!dom) {
                r = last_errno();
                snprintf(message, size, r == -ENOENT ? "%s is gone: nothing to resume" : "cannot resume %s: %s",
                         name, last_error());
                return r == -ENOENT ? 0 : r;
        }
        if (virDomainGetState(dom, &state, &reason, 0) >= 0 && state != VIR_DOMAIN_PAUSED)
                snprintf(message, size, "%s is not paused any more: left running", name);
        else if (virDomainResume(dom) < 0) {
                r = unreachable(s) ? -ENOTCONN : last_errno();
                snprintf(message, size, "libvirt could not resume %s: %s", name, last_error());
        } else
                snprintf(message, size, "%s resumed", name);
        virDomainFree(dom);
        return r;
}

/* The hold lets go of its domain, which resumes when no other hold keeps it. */
static void release(struct shared *s, struct hold *h, struct request *r) {
        struct suspension *x = suspension_find(s, h->uuid);
        int k;

        if (!h->holding) {
                outcome(r, LOG_DEBUG, 0, h->found_paused ? "%s was paused before: it stays paused" :
                        "%s was not suspended: nothing to resume", h->name);
                return;
        }
        h->holding = false;
        assert(x && x->holds > 0);
        if (--x->holds > 0) {
                outcome(r, LOG_INFO, 0, "%s stays suspended for another reset", h->name);
                return;
        }
        k = resume_domain(s, h->uuid, h->name, r->message, sizeof(r->message));
        r->error = k;
        r->level = k < 0 ? LOG_WARNING : LOG_INFO;
        if (k == -ENOTCONN) {
                x->resume_owed = true;
                snprintf(r->message + strlen(r->message), sizeof(r->message) - strlen(r->message),
                         "; it is resumed when libvirt is back");
        } else
                suspension_drop(s, x);
}

static void stop(struct shared *s, struct hold *h, struct request *r) {
        struct suspension *x = suspension_find(s, h->uuid);
        _cleanup_free_ struct suspension *fresh = NULL;
        virDomainPtr dom;
        int state, reason;

        h->found_paused = false;
        if (h->holding) {
                r->held = true;
                outcome(r, LOG_INFO, 0, "%s suspended", h->name);
                return;
        }
        dom = lookup(s, h->uuid);
        if (!dom) {
                if (unreachable(s))
                        outcome(r, LOG_WARNING, -ENOTCONN, "cannot suspend %s: libvirt at %s cannot be reached",
                                h->name, s->uri);
                else
                        outcome(r, LOG_WARNING, last_errno(), "cannot suspend %s: %s", h->name, last_error());
                return;
        }
        /* Paused by someone else: left so. Paused by another reset of ours (or
         * still, a resume being owed): one more hold on it. Running, even
         * where a hold of ours says it should not (virsh resume): suspended. */
        if (!x)
                fresh = calloc(1, sizeof(*fresh));
        if (!x && !fresh)
                outcome(r, LOG_WARNING, -ENOMEM, "cannot suspend %s: out of memory", h->name);
        else if (virDomainGetState(dom, &state, &reason, 0) < 0)
                outcome(r, LOG_WARNING, last_errno(), "cannot suspend %s: libvirt cannot tell its state: %s",
                        h->name, last_error());
        else if (state == VIR_DOMAIN_PAUSED && !x) {
                h->found_paused = true;
                outcome(r, LOG_INFO, 0, "%s was paused already: it stays paused after", h->name);
        } else if (state != VIR_DOMAIN_PAUSED && virDomainSuspend(dom) < 0)
                outcome(r, LOG_WARNING, last_errno(), "libvirt could not suspend %s: %s", h->name, last_error());
        else {
                outcome(r, LOG_INFO, 0, "%s suspended%s", h->name,
                        x && state == VIR_DOMAIN_PAUSED ? " (already, for another reset)" : "");
                if (!x) {
                        x = TAKE_PTR(fresh);
                        snprintf(x->uuid, sizeof(x->uuid), "%s", h->uuid);
                        snprintf(x->name, sizeof(x->name), "%s", h->name);
                        x->next = s->suspensions;
                        s->suspensions = x;
                }
                x->holds++;
                x->resume_owed = false;
                h->holding = r->held = true;
        }
        virDomainFree(dom);
}

static void sleep_usec(uint64_t usec) {
        struct timespec ts = { .tv_sec = (time_t) (usec / USEC_PER_SEC),
                               .tv_nsec = (long) (usec % USEC_PER_SEC) * 1000 };

        while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
                ;
}

/* Puts r on the done list; a stop cancelled while it ran is undone first. */
static void complete(struct shared *s, struct request *r) {
        pthread_mutex_lock(&s->lock);
        while (r->kind == REQUEST_STOP && r->cancelled && r->held) {
                char what[sizeof(r->message)];

                pthread_mutex_unlock(&s->lock);
                release(s, r->hold, r);
                snprintf(what, sizeof(what), "%s", r->message);
                outcome(r, r->level, r->error, "undid a suspend that came too late: %s", what);
                r->held = false;
                pthread_mutex_lock(&s->lock);
        }
        if (s->loop_gone) {
                pthread_mutex_unlock(&s->lock);
                request_free(r);
                return;
        }
        r->completed = true;
        *s->done_tail = r;
        s->done_tail = &r->next;
        pthread_mutex_unlock(&s->lock);
        wake(s->wake_loop);
}

static void execute(struct shared *s, struct request *r, bool cancelled) {
        if (cancelled) {
                outcome(r, LOG_DEBUG, -ECANCELED, "not suspending %s: nobody waits for it any more", r->hold->name);
                return;
        }
        if (r->stall_usec > 0)
                sleep_usec(r->stall_usec);
        switch (r->kind) {
        case REQUEST_STOP:
                stop(s, r->hold, r);
                break;
        case REQUEST_RESUME:
                release(s, r->hold, r);
                break;
        case REQUEST_TEST:
                r->fn(s->conn, r->fn_userdata);
                break;
        }
}

static void on_wake_thread(int watch, int fd, int events, void *userdata) {
        struct shared *s = userdata;

        drain(fd);
        for (;;) {
                struct request *r;
                bool cancelled = false;

                pthread_mutex_lock(&s->lock);
                r = s->queue;
                if (r) {
                        s->queue = r->next;
                        if (!s->queue)
                                s->queue_tail = &s->queue;
                        r->next = NULL;
                        cancelled = r->cancelled;
                }
                pthread_mutex_unlock(&s->lock);
                if (!r)
                        return;
                execute(s, r, cancelled);
                complete(s, r);
        }
}

static bool quitting(struct shared *s) {
        bool quit;

        pthread_mutex_lock(&s->lock);
        quit = s->quit && !s->queue;
        pthread_mutex_unlock(&s->lock);
        return quit;
}

static void on_drained(int timer, void *userdata) {
        *(bool *) userdata = true;
}

static void quiet_xml(void *userdata, const char *fmt, ...) {
        /* libxml2's messages on parse errors (the test driver's node file):
         * libvirt reports the error itself. */
}

static void *thread_main(void *userdata) {
        struct shared *s = userdata;
        bool drained = false;
        int watch, t;

        xmlSetGenericErrorFunc(NULL, quiet_xml);        /* this thread's */
        /* libvirt: once an event implementation is registered, "the application
         * has to invoke virEventRunDefaultImpl() in a loop" (virevent.c), or
         * connections and their keepalives stall: this thread does, and makes
         * every call of the adapter from the loop's callbacks. */
        watch = virEventAddHandle(s->wake_thread, VIR_EVENT_HANDLE_READABLE, on_wake_thread, s, NULL);
        s->retry_timer = virEventAddTimeout(0, on_retry, s, NULL);      /* connect at once */
        s->refresh_timer = virEventAddTimeout(-1, on_refresh, s, NULL);
        if (watch < 0 || s->retry_timer < 0 || s->refresh_timer < 0)
                log_error("quiesce: cannot watch libvirt's event loop: %s", last_error());
        else
                while (!quitting(s))
                        if (virEventRunDefaultImpl() < 0)
                                log_debug("quiesce: libvirt's event loop: %s", last_error());

        disconnect(s);
        if (watch >= 0)
                virEventRemoveHandle(watch);
        if (s->retry_timer >= 0)
                virEventRemoveTimeout(s->retry_timer);
        if (s->refresh_timer >= 0)
                virEventRemoveTimeout(s->refresh_timer);
        while (s->suspensions) {
                struct suspension *x = s->suspensions;

                if (x->resume_owed)
                        log_warning("quiesce: stopping while libvirt could not resume %s: it may stay paused "
                                    "(virsh resume %s)", x->name, x->uuid);
                s->suspensions = x->next;
                free(x);
        }
        /* libvirt: "callbacks may remain registered for a short time even after
         * calling virConnectClose ..., so it is not safe to stop running the
         * event loop immediately after closing the connection" (virevent.c). */
        t = virEventAddTimeout(DRAIN_MS, on_drained, &drained, NULL);
        while (t >= 0 && !drained)
                (void) virEventRunDefaultImpl();
        if (t >= 0)
                virEventRemoveTimeout(t);
        shared_unref(s);
        atomic_store(&thread_running, false);
        return NULL;
}

/* --- the loop: the adapter --------------------------------------------------------- */

struct libvirt_quiesce {
        struct quiesce_adapter adapter;
        sd_event *event;
        sd_event_source *wake_source;
        pthread_t thread;
        struct shared *s;
        struct cache *cache;            /* what applies() reads: the last the thread posted */
};

struct libvirt_target {
        struct quiesce_target base;
        struct libvirt_quiesce *q;
        struct hold *hold;
        struct quiesce_owed owed;       /* the done of the stop or resume under way */
        struct request *call;           /* its request, until it is answered or abandoned */
        uint64_t timeout;               /* what the call was given, for the message */
        sd_event_source *timer;         /* its deadline */
        bool maybe_held;                /* a stop went to the thread, and no resume since */
        uint64_t stall_usec;
};

static struct libvirt_quiesce *quiesce_of(const struct quiesce_adapter *a) {
        return a->data;
}

static struct libvirt_target *target_of(struct quiesce_target *t) {
        return (struct libvirt_target *) t;
}

static const struct domain *domain_of_pid(const struct libvirt_quiesce *q, pid_t pid) {
        for (size_t i = 0; q->cache && i < q->cache->n_domains; i++)
                if (q->cache->domains[i].pid == pid)
                        return &q->cache->domains[i];
        return NULL;
}

static bool startswith(const char *s, const char *prefix) {
        return strncmp(s, prefix, strlen(prefix)) == 0;
}

/* The pid decides; the unit and the hostdevs only confirm it. */
static void cross_check(const struct domain *d, const struct quiesce_holder *h) {
        const char *unit = h->holder->unit;
        char prefix[64];
        bool found = h->n_members == 0;

        /* systemd's escaping of libvirt's machine name "qemu-ID-NAME" */
        snprintf(prefix, sizeof(prefix), "machine-qemu\\x2d%d\\x2d", d->id);
        if (startswith(unit, "machine-") && !startswith(unit, prefix))
                log_notice("quiesce: pid %d is libvirt domain %s (%s) by its pid file, but runs in %s, not in a "
                           "%s*.scope", (int) h->holder->pid, d->name, d->uuid, unit, prefix);
        for (size_t i = 0; !found && i < d->n_hostdevs; i++)
                for (size_t j = 0; !found && j < h->n_members; j++)
                        found = pci_address_equal(&d->hostdevs[i], &h->members[j]);
        if (!found)
                log_notice("quiesce: libvirt domain %s (%s), pid %d, has no <hostdev> of the set to be reset in "
                           "its XML; suspending it for its pid", d->name, d->uuid, (int) h->holder->pid);
}

static bool libvirt_applies(const struct quiesce_adapter *a, const struct quiesce_holder *h, bool force,
                            const char **ret_hint) {
        const struct domain *d = domain_of_pid(quiesce_of(a), h->holder->pid);

        /* Suspending a domain is safe, Force or not; nothing else would make it apply. */
        if (ret_hint)
                *ret_hint = NULL;
        if (!d)
                return false;
        cross_check(d, h);
        return true;
}

static bool libvirt_identify(const struct quiesce_adapter *a, const struct quiesce_holder *h, char *buf,
                             size_t size) {
        const struct domain *d = domain_of_pid(quiesce_of(a), h->holder->pid);

        if (!d)
                return false;
        snprintf(buf, size, "libvirt domain %s (%s)", d->name, d->uuid);
        return true;
}

static bool libvirt_domain_of(const struct quiesce_adapter *a, const struct quiesce_holder *h,
                              const char **ret_name, const char **ret_uuid) {
        const struct domain *d = domain_of_pid(quiesce_of(a), h->holder->pid);

        if (!d)
                return false;
        *ret_name = d->name;
        *ret_uuid = d->uuid;
        return true;
}

static bool libvirt_covers(const struct quiesce_target *t, const struct quiesce_holder *h) {
        const struct libvirt_target *lt = (const struct libvirt_target *) t;
        const struct domain *d = domain_of_pid(lt->q, h->holder->pid);

        return d && strcmp(d->uuid, lt->hold->uuid) == 0;
}

static int libvirt_target_new(const struct quiesce_adapter *a, const struct quiesce_holder *h,
                              struct quiesce_target **ret) {
        struct libvirt_quiesce *q = quiesce_of(a);
        const struct domain *d = domain_of_pid(q, h->holder->pid);
        struct libvirt_target *t;

        if (!d)
                return -ENOENT;
        t = calloc(1, sizeof(*t));
        if (!t)
                return -ENOMEM;
        t->hold = calloc(1, sizeof(*t->hold));
        if (!t->hold) {
                free(t);
                return -ENOMEM;
        }
        atomic_init(&t->hold->ref, 1);
        snprintf(t->hold->uuid, sizeof(t->hold->uuid), "%s", d->uuid);
        snprintf(t->hold->name, sizeof(t->hold->name), "libvirt domain %s (%s)", d->name, d->uuid);
        t->base.adapter = a;
        t->q = q;
        snprintf(t->base.name, sizeof(t->base.name), "%s", t->hold->name);
        t->owed = (struct quiesce_owed) { .target = &t->base, .event = q->event, .description = "quiesce-libvirt" };
        *ret = &t->base;
        return 0;
}

/* Owes nothing any more; logs the sentence done is told. done is the last
 * thing that touches t (it may free it). */
static void finish(struct libvirt_target *t, int level, int error, const char *message) {
        t->timer = sd_event_source_disable_unref(t->timer);
        quiesce_owed_pay(&t->owed, level, error, message);
}

static int enqueue(struct libvirt_quiesce *q, struct request *r) {
        struct shared *s = q->s;

        pthread_mutex_lock(&s->lock);
        *s->queue_tail = r;
        s->queue_tail = &r->next;
        pthread_mutex_unlock(&s->lock);
        wake(s->wake_thread);
        return 0;
}

static struct request *request_new(struct libvirt_target *t, enum request_kind kind) {
        struct request *r = calloc(1, sizeof(*r));

        if (!r)
                return NULL;
        r->kind = kind;
        r->hold = hold_ref(t->hold);
        r->stall_usec = t->stall_usec;
        t->stall_usec = 0;
        return r;
}

/* A resume that nobody waits for: after a stop that came too late, or when
 * the target goes. Its outcome is logged. */
static void release_detached(struct libvirt_target *t) {
        struct request *r = request_new(t, REQUEST_RESUME);

        if (!r) {
                log_oom();
                log_warning("quiesce: cannot resume %s, which may stay paused", t->base.name);
                return;
        }
        (void) enqueue(t->q, r);
}

/* Drops the call under way: its outcome reaches nobody. A stop the thread has
 * not finished is cancelled (skipped, or undone once it ran); true when it had
 * finished and suspended the domain, which is then the caller's to undo. A
 * resume goes on: a domain is never left suspended. */
static bool abandon(struct libvirt_target *t) {
        struct request *r = t->call;
        bool held = false;

        if (!r)
                return false;
        pthread_mutex_lock(&t->q->s->lock);
        if (r->completed)
                held = r->kind == REQUEST_STOP && r->held;
        else
                r->cancelled = r->kind == REQUEST_STOP;
        pthread_mutex_unlock(&t->q->s->lock);
        r->target = NULL;
        t->call = NULL;
        t->timer = sd_event_source_disable_unref(t->timer);
        return held;
}


static int on_deadline(sd_event_source *s, uint64_t usec, void *userdata) {
        struct libvirt_target *t = userdata;
        char message[sizeof(t->owed.known_message) + 128];
        double sec = (double) t->timeout / USEC_PER_SEC;

        if (t->owed.op == QUIESCE_OP_STOP) {
                /* Whatever the thread does with it now, nothing stays suspended. */
                if (abandon(t))
                        release_detached(t);
                t->maybe_held = false;
                snprintf(message, sizeof(message), "libvirt did not suspend %s within %.3f s (libvirtd may not "
                         "answer); a suspend that still comes is undone", t->base.name, sec);
        } else {
                (void) abandon(t);
                snprintf(message, sizeof(message), "libvirt did not resume %s within %.3f s (libvirtd may not "
                         "answer); it is resumed once libvirt answers", t->base.name, sec);
        }
        finish(t, LOG_WARNING, -ETIMEDOUT, message);
        return 0;
}

static int begin_call(struct libvirt_target *t, enum quiesce_op op, uint64_t deadline, quiesce_done_t done,
                      void *userdata) {
        uint64_t now = monotonic_usec();
        struct request *r;
        int k;

        r = request_new(t, op == QUIESCE_OP_STOP ? REQUEST_STOP : REQUEST_RESUME);
        if (!r)
                return -ENOMEM;
        k = sd_event_add_time(t->q->event, &t->timer, CLOCK_MONOTONIC, deadline, USEC_PER_MSEC, on_deadline, t);
        if (k < 0) {
                request_free(r);
                return k;
        }
        (void) sd_event_source_set_description(t->timer, "quiesce-libvirt-deadline");
        t->timeout = deadline > now ? deadline - now : 0;
        r->target = t;
        t->call = r;
        quiesce_owed_begin(&t->owed, op, done, userdata);
        log_debug("Asking libvirt to %s %s, within %.3f s", op == QUIESCE_OP_STOP ? "suspend" : "resume", t->base.name,
                  (double) t->timeout / USEC_PER_SEC);
        return enqueue(t->q, r);
}

static int libvirt_stop(struct quiesce_target *qt, uint64_t deadline_usec, quiesce_done_t done, void *userdata) {
        struct libvirt_target *t = target_of(qt);
        int r;

        assert(done);
        if (t->owed.op != QUIESCE_OP_NONE)
                return -EBUSY;
        r = begin_call(t, QUIESCE_OP_STOP, deadline_usec, done, userdata);
        if (r < 0)
                return r;
        t->maybe_held = true;
        return 0;
}

static int libvirt_resume(struct quiesce_target *qt, uint64_t deadline_usec, quiesce_done_t done, void *userdata) {
        struct libvirt_target *t = target_of(qt);
        int r;

        assert(done);
        if (t->owed.op == QUIESCE_OP_RESUME)
                return -EBUSY;
        /* A stop under way is dropped unanswered: this resume undoes it (it
         * comes after the stop in the thread's queue). */
        if (abandon(t))
                t->maybe_held = true;
        quiesce_owed_cancel(&t->owed);
        t->base.stopped = false;
        if (t->maybe_held)
                r = begin_call(t, QUIESCE_OP_RESUME, deadline_usec, done, userdata);
        else
                r = quiesce_owed_known(&t->owed, QUIESCE_OP_RESUME, done, userdata, LOG_DEBUG, 0,
                                       "%s was not suspended by vfio-resetd: left as it is", t->base.name);
        if (r < 0)
                return r;
        t->maybe_held = false;
        return 0;
}

static void libvirt_target_free(struct quiesce_target *qt) {
        struct libvirt_target *t = target_of(qt);

        if (!t)
                return;
        if (abandon(t))
                t->maybe_held = true;
        quiesce_owed_cancel(&t->owed);
        /* Freed while suspended, or while a suspend may still happen: never leave a domain so. */
        if (t->maybe_held)
                release_detached(t);
        quiesce_owed_done(&t->owed);
        hold_unref(t->hold);
        free(t);
}

/* An outcome from the thread reaches its target, if anyone still waits for it. */
static void deliver(struct request *r) {
        struct libvirt_target *t = r->target;

        if (r->kind == REQUEST_TEST) {
                r->fn_done(r->fn_userdata);
                return;
        }
        if (!t) {
                /* nobody waits for it: a stop skipped (debug), undone, or a resume of a target gone */
                log_full_errno(r->level, 0, "quiesce: %s", r->message);
                return;
        }
        t->call = NULL;
        if (r->kind == REQUEST_STOP) {
                t->base.stopped = r->error == 0;
                t->maybe_held = r->held;
        }
        finish(t, r->level, r->error, r->message);
}

static void take_cache(struct libvirt_quiesce *q, struct cache *c) {
        if (q->cache && q->cache->connected != c->connected)
                log_debug("quiesce: libvirt at %s %s", q->s->uri, c->connected ? "is connected" : "is not connected");
        cache_free(q->cache);
        q->cache = c;
}

static int on_wake_loop(sd_event_source *source, int fd, uint32_t revents, void *userdata) {
        struct libvirt_quiesce *q = userdata;
        struct shared *s = q->s;
        struct request *done;
        struct cache *c;

        drain(fd);
        pthread_mutex_lock(&s->lock);
        c = TAKE_PTR(s->cache);
        done = TAKE_PTR(s->done);
        s->done_tail = &s->done;
        pthread_mutex_unlock(&s->lock);
        if (c)
                take_cache(q, c);
        while (done) {
                struct request *r = done;

                done = r->next;
                deliver(r);
                request_free(r);
        }
        return 0;
}

static void libvirt_free(struct quiesce_adapter *a) {
        struct libvirt_quiesce *q = quiesce_of(a);
        struct shared *s = q->s;
        struct timespec until;
        struct request *done;
        int r;

        q->wake_source = sd_event_source_disable_unref(q->wake_source);
        pthread_mutex_lock(&s->lock);
        s->quit = true;
        pthread_mutex_unlock(&s->lock);
        wake(s->wake_thread);

        /* The thread resumes what is queued, then leaves; a call that libvirtd
         * does not answer keeps it, and the daemon does not wait for that. */
        clock_gettime(CLOCK_REALTIME, &until);
        until.tv_sec += JOIN_TIMEOUT_SEC;
        r = pthread_timedjoin_np(q->thread, NULL, &until);
        if (r != 0) {
                log_warning("quiesce: the libvirt thread is still in a call to libvirt at %s after %d s: leaving it "
                            "behind", s->uri, JOIN_TIMEOUT_SEC);
                (void) pthread_detach(q->thread);
        }
        pthread_mutex_lock(&s->lock);
        s->loop_gone = true;
        done = TAKE_PTR(s->done);
        s->done_tail = &s->done;
        cache_free(TAKE_PTR(s->cache));
        pthread_mutex_unlock(&s->lock);
        while (done) {
                struct request *n = done->next;

                request_free(done);
                done = n;
        }
        shared_unref(s);
        cache_free(q->cache);
        sd_event_unref(q->event);
        free(q);
}

int quiesce_libvirt_test_call(struct quiesce_adapter *a, void (*fn)(void *conn, void *userdata),
                              void (*done)(void *userdata), void *userdata) {
        struct request *r = calloc(1, sizeof(*r));

        assert(strcmp(a->name, "libvirt") == 0);
        if (!r)
                return -ENOMEM;
        *r = (struct request) { .kind = REQUEST_TEST, .fn = fn, .fn_done = done, .fn_userdata = userdata };
        return enqueue(quiesce_of(a), r);
}

void quiesce_libvirt_test_stall(struct quiesce_target *t, uint64_t usec) {
        assert(strcmp(t->adapter->name, "libvirt") == 0);
        target_of(t)->stall_usec = usec;
}

int quiesce_libvirt_new(sd_event *event, const char *uri, struct quiesce_adapter **ret) {
        struct libvirt_quiesce *q;
        struct shared *s;
        const char *pid_dir = getenv("VRD_LIBVIRT_PID_DIR");
        int r;

        assert(event);
        assert(uri);
        if (atomic_exchange(&thread_running, true))
                return -EBUSY;
        /* libvirt's client writes to its socket with write(2): a libvirtd that
         * went away would kill the process with SIGPIPE. Every writer of this
         * process copes with EPIPE (sd-bus uses MSG_NOSIGNAL anyway); systemd
         * units ignore it by default (IgnoreSIGPIPE=yes), so also outside one. */
        signal(SIGPIPE, SIG_IGN);
        q = calloc(1, sizeof(*q));
        s = calloc(1, sizeof(*s));
        if (!q || !s) {
                r = -ENOMEM;
                goto fail;
        }
        *s = (struct shared) {
                .wake_thread = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK),
                .wake_loop = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK),
                .uri = strdup(uri),
                .pid_dir = strdup(pid_dir && *pid_dir ? pid_dir : PID_DIR_DEFAULT),
                .callbacks = { -1, -1, -1 },
                .retry_timer = -1,
                .refresh_timer = -1,
        };
        atomic_init(&s->ref, 1);
        pthread_mutex_init(&s->lock, NULL);
        s->queue_tail = &s->queue;
        s->done_tail = &s->done;
        q->s = s;
        if (s->wake_thread < 0 || s->wake_loop < 0) {
                r = -errno;
                goto fail;
        }
        if (!s->uri || !s->pid_dir) {
                r = -ENOMEM;
                goto fail;
        }
        q->adapter = (struct quiesce_adapter) {
                .name = "libvirt",
                .applies = libvirt_applies,
                .covers = libvirt_covers,
                .target_new = libvirt_target_new,
                .stop = libvirt_stop,
                .resume = libvirt_resume,
                .target_free = libvirt_target_free,
                .free = libvirt_free,
                .identify = libvirt_identify,
                .domain_of = libvirt_domain_of,
                .data = q,
        };
        q->event = sd_event_ref(event);
        r = sd_event_add_io(event, &q->wake_source, s->wake_loop, EPOLLIN, on_wake_loop, q);
        if (r < 0)
                goto fail;
        (void) sd_event_source_set_description(q->wake_source, "quiesce-libvirt");

        /* Process-wide, and once: libvirt's error handler (which would print
         * every error to stderr) and its default event loop, which libvirt
         * wants "registered before a connection to the Hypervisor is opened"
         * (virevent.c) for events to be delivered. libxml2 wants its parser
         * initialised before threads use it (xmlInitParser). */
        virSetErrorFunc(NULL, ignore_error);
        xmlInitParser();
        if (virEventRegisterDefaultImpl() < 0) {
                log_error("quiesce: cannot set up libvirt's event loop: %s", last_error());
                r = -EIO;
                goto fail;
        }
        atomic_fetch_add(&s->ref, 1);   /* the thread's */
        r = -pthread_create(&q->thread, NULL, thread_main, s);
        if (r < 0) {
                atomic_fetch_sub(&s->ref, 1);
                goto fail;
        }
        log_debug("quiesce: libvirt domains at %s can be suspended (pid files in %s)", uri, s->pid_dir);
        *ret = &q->adapter;
        return 0;

fail:
        if (q) {
                sd_event_source_disable_unref(q->wake_source);
                sd_event_unref(q->event);
        }
        shared_unref(s);
        free(q);
        atomic_store(&thread_running, false);
        return r;
}
