/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The process adapter (quiesce.h): SIGSTOP of one holder, through its pidfd
 * so that a reused pid is never signalled (pidfd_send_signal(2)), stopped
 * once every thread says so in /proc; SIGCONT after. Only with Force: a
 * stopped process may hold locks others wait on, and it is stopped in the
 * middle of whatever it did. A process that was stopped already (a debugger,
 * job control) is left as it was: it is not continued after. */
#include <errno.h>
#include <stdarg.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/pidfd.h>
#include <systemd/sd-event.h>

#include "log.h"
#include "macro.h"
#include "proc-state.h"
#include "quiesce.h"

#define STOP_POLL_USEC (2 * USEC_PER_MSEC)

/* One process the adapter keeps stopped, for however many resets need it
 * (a holder of members of two sets, reset at once): continued when the
 * last one lets go, not when the first does. */
struct process_hold {
        pid_t pid;
        unsigned refs;
        bool sent_stop;                 /* we stopped it; else it was stopped before we came: left so */
};

struct process_adapter {
        struct quiesce_adapter adapter;
        sd_event *event;
        struct process_hold **holds;
        size_t n_holds;
};

struct process_target {
        struct quiesce_target t;
        struct process_adapter *pa;
        sd_event *event;
        pid_t pid;
        int pidfd;                      /* the plan's: not closed here */
        struct process_hold *hold;      /* this target's share of it, while it has one */
        uint64_t deadline;
        sd_event_source *poll;          /* waits for every thread to stop */
        sd_event_source *report;        /* reports from the loop */
        quiesce_done_t done;
        void *userdata;
        int error;
        char message[256];
};

static const char force_hint[] = "Force (it would be stopped with SIGSTOP)";

static bool process_applies(const struct quiesce_adapter *a, const struct quiesce_holder *h, bool force,
                            const char **ret_hint) {
        *ret_hint = force ? NULL : force_hint;
        return force;
}

static bool process_covers(const struct quiesce_target *t, const struct quiesce_holder *h) {
        return ((const struct process_target *) t)->pid == h->holder->pid;
}

static int process_target_new(const struct quiesce_adapter *a, const struct quiesce_holder *h,
                              struct quiesce_target **ret) {
        struct process_target *p = calloc(1, sizeof(*p));
        char name[HOLDER_NAME_MAX];

        if (!p)
                return -ENOMEM;
        p->t.adapter = a;
        snprintf(p->t.name, sizeof(p->t.name), "%s", holder_describe(h->holder, name));
        p->pa = a->data;
        p->event = p->pa->event;
        p->pid = h->holder->pid;
        p->pidfd = h->pidfd;
        *ret = &p->t;
        return 0;
}

static int on_report(sd_event_source *s, void *userdata) {
        struct process_target *p = userdata;
        quiesce_done_t done = p->done;

        p->report = sd_event_source_disable_unref(p->report);
        p->done = NULL;
        if (done)
                done(p->userdata, &p->t, p->error, *p->message ? p->message : NULL);
        return 0;
}

/* Report from the loop, never from the call that asked. */
static int report(struct process_target *p, int error, const char *fmt, ...) _printf_(3, 4);
static int report(struct process_target *p, int error, const char *fmt, ...) {
        va_list ap;

        p->error = error;
        p->message[0] = '\0';
        if (fmt) {
                va_start(ap, fmt);
                vsnprintf(p->message, sizeof(p->message), fmt, ap);
                va_end(ap);
        }
        p->poll = sd_event_source_disable_unref(p->poll);
        if (p->report)
                return 0;
        return sd_event_add_defer(p->event, &p->report, on_report, p);
}

static void send_signal(struct process_target *p, int sig) {
        if (pidfd_send_signal(p->pidfd, sig, NULL, 0) < 0 && errno != ESRCH)
                log_warning_errno(-errno, "Cannot send %s to %s: %m", sig == SIGSTOP ? "SIGSTOP" : "SIGCONT",
                                  p->t.name);
}

static bool gone(const struct process_target *p) {
        return pidfd_send_signal(p->pidfd, 0, NULL, 0) < 0 && errno == ESRCH;
}

static struct process_hold *find_hold(struct process_adapter *pa, pid_t pid) {
        for (size_t i = 0; i < pa->n_holds; i++)
                if (pa->holds[i]->pid == pid)
                        return pa->holds[i];
        return NULL;
}

static int take_hold(struct process_target *p, bool sent_stop) {
        struct process_adapter *pa = p->pa;
        struct process_hold **v, *hold = find_hold(pa, p->pid);

        if (!hold) {
                v = realloc(pa->holds, sizeof(*v) * (pa->n_holds + 1));
                if (!v)
                        return -ENOMEM;
                pa->holds = v;
                hold = calloc(1, sizeof(*hold));
                if (!hold)
                        return -ENOMEM;
                *hold = (struct process_hold) { .pid = p->pid, .sent_stop = sent_stop };
                pa->holds[pa->n_holds++] = hold;
        }
        hold->refs++;
        p->hold = hold;
        return 0;
}

/* This target lets go; the last one continues the process, if we stopped it. */
static void release_hold(struct process_target *p) {
        struct process_adapter *pa = p->pa;
        struct process_hold *hold = p->hold;

        if (!hold)
                return;
        p->hold = NULL;
        if (--hold->refs > 0)
                return;
        if (hold->sent_stop) {
                send_signal(p, SIGCONT);
                log_info("Continued %s with SIGCONT", p->t.name);
        }
        for (size_t i = 0; i < pa->n_holds; i++)
                if (pa->holds[i] == hold) {
                        pa->holds[i] = pa->holds[--pa->n_holds];
                        break;
                }
        free(hold);
}

static int on_poll(sd_event_source *s, uint64_t usec, void *userdata) {
        struct process_target *p = userdata;
        uint64_t now = monotonic_usec();
        pid_t tid = 0;
        char state = '?';

        if (gone(p) || proc_all_threads_stopped(p->pid, &tid, &state)) {
                p->t.stopped = true;
                (void) report(p, 0, NULL);
                return 0;
        }
        if (now >= p->deadline) {
                /* Not stopped in time: let it run as before. */
                release_hold(p);
                (void) report(p, -ETIMEDOUT, "%s did not stop within the deadline: thread %d is in state %c",
                              p->t.name, (int) tid, state);
                return 0;
        }
        if (sd_event_source_set_time(s, now + STOP_POLL_USEC < p->deadline ? now + STOP_POLL_USEC : p->deadline) < 0 ||
            sd_event_source_set_enabled(s, SD_EVENT_ONESHOT) < 0) {
                release_hold(p);
                (void) report(p, -ENOMEM, "cannot wait for %s to stop", p->t.name);
        }
        return 0;
}

static int process_stop(struct quiesce_target *t, uint64_t deadline_usec, quiesce_done_t done, void *userdata) {
        struct process_target *p = (struct process_target *) t;

        int k;

        p->done = done;
        p->userdata = userdata;
        p->deadline = deadline_usec;
        if (p->hold)
                return -EBUSY;          /* a second stop without a resume between */
        if (find_hold(p->pa, p->pid)) {
                /* Another reset of ours stops it already: share that, wait as it does. */
                k = take_hold(p, false);
                return k < 0 ? k : sd_event_add_time(p->event, &p->poll, CLOCK_MONOTONIC, 0, USEC_PER_MSEC, on_poll, p);
        }
        if (proc_all_threads_stopped(p->pid, NULL, NULL)) {
                /* Stopped by someone else, or gone: nothing to undo after. */
                t->stopped = true;
                k = take_hold(p, false);
                return k < 0 ? k : report(p, 0, NULL);
        }
        if (pidfd_send_signal(p->pidfd, SIGSTOP, NULL, 0) < 0) {
                if (errno == ESRCH) {   /* it exited: its fds are closed, nothing to stop */
                        t->stopped = true;
                        return report(p, 0, NULL);
                }
                return report(p, -errno, "cannot stop %s: pidfd_send_signal(SIGSTOP): %s", t->name,
                              strerror(errno));
        }
        k = take_hold(p, true);
        if (k < 0) {
                send_signal(p, SIGCONT);
                return k;
        }
        log_info("Stopped %s with SIGSTOP", t->name);
        return sd_event_add_time(p->event, &p->poll, CLOCK_MONOTONIC, 0, USEC_PER_MSEC, on_poll, p);
}

static int process_resume(struct quiesce_target *t, uint64_t deadline_usec, quiesce_done_t done, void *userdata) {
        struct process_target *p = (struct process_target *) t;

        p->poll = sd_event_source_disable_unref(p->poll);
        p->report = sd_event_source_disable_unref(p->report);   /* a stop's report that did not go out */
        p->done = done;
        p->userdata = userdata;
        t->stopped = false;
        release_hold(p);
        return report(p, 0, NULL);
}

static void process_target_free(struct quiesce_target *t) {
        struct process_target *p = (struct process_target *) t;

        if (!p)
                return;
        release_hold(p);        /* nobody stays stopped for a reset that is gone */
        sd_event_source_disable_unref(p->poll);
        sd_event_source_disable_unref(p->report);
        free(p);
}

static void process_free(struct quiesce_adapter *a) {
        struct process_adapter *pa = a->data;

        for (size_t i = 0; i < pa->n_holds; i++)
                free(pa->holds[i]);     /* their targets, freed before, continued them */
        free(pa->holds);
        sd_event_unref(pa->event);
        free(pa);
}

int quiesce_process_new(sd_event *event, struct quiesce_adapter **ret) {
        struct process_adapter *pa = calloc(1, sizeof(*pa));

        if (!pa)
                return -ENOMEM;
        pa->event = sd_event_ref(event);
        pa->adapter = (struct quiesce_adapter) {
                .name = "process",
                .applies = process_applies,
                .covers = process_covers,
                .target_new = process_target_new,
                .stop = process_stop,
                .resume = process_resume,
                .target_free = process_target_free,
                .free = process_free,
                .data = pa,
        };
        *ret = &pa->adapter;
        return 0;
}
