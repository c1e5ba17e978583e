/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* vfio-resetctl hold ADDRESS... -- COMMAND [ARGS...]: the peer for a program
 * that does not speak the protocol. It takes the devices, runs COMMAND in a
 * process group of its own with their fds, stops that group while a reset
 * needs the devices quiet (acknowledging once every member is stopped),
 * continues it after, and exits with COMMAND's status. Should the daemon leave
 * the bus meanwhile, the command runs on without claims and hold with it,
 * until a daemon takes the name again (a restart): the library takes the
 * devices again from it, and hold is their peer as before. */
#include <ctype.h>
#include <dirent.h>
#include <fcntl.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <systemd/sd-event.h>
#include <unistd.h>

#include "hold.h"
#include "proc-state.h"
#include "macro.h"
#include "strv.h"
#include "vfio-resetctl.h"

#define STOP_POLL_USEC 2000

/* A reset that needs the command stopped: a Pause, or a take that found the set paused. */
struct pause {
        char *devset;
        uint64_t reset_id;      /* 0 for a take that found the set paused */
        bool acked;             /* or needs no acknowledgement */
};

struct hold {
        vrd_peer *peer;
        sd_event *event;
        struct held_device *devices;
        size_t n_devices;
        char **command;
        char **environment;
        pid_t child;            /* also its process group; 0 until it runs */
        bool terminal;          /* we gave the child the terminal's foreground */
        struct pause *pauses;
        size_t n_pauses;
        sd_event_source *stop_poll;
        bool daemon_gone;       /* our claims went with it: nothing to give back */
};

/* waitid() sees our child only; the command's own children are in its
 * process group, so the group's members are read from /proc. */
static bool group_stopped(pid_t pgid) {
        _cleanup_(closedirp) DIR *d = opendir("/proc");
        struct dirent *de;

        if (!d)
                return false;
        while ((de = readdir(d))) {
                char dir[sizeof("/proc/") + sizeof(de->d_name)], state;
                pid_t pgrp;

                if (!isdigit((unsigned char) de->d_name[0]))
                        continue;
                snprintf(dir, sizeof(dir), "/proc/%s", de->d_name);
                if (proc_stat_read(dir, &state, NULL, &pgrp) >= 0 && pgrp == pgid && !proc_dir_stopped(dir, state))
                        return false;
        }
        return true;
}

static void ack_stopped(struct hold *h) {
        for (size_t i = 0; i < h->n_pauses; i++) {
                struct pause *x = &h->pauses[i];

                if (x->acked)
                        continue;
                x->acked = true;
                if (vrd_peer_pause_complete(h->peer, x->reset_id) < 0)
                        fprintf(stderr, "%s: cannot complete pause %" PRIu64 " of %s: %s\n",
                                program_invocation_short_name, x->reset_id, x->devset,
                                vrd_peer_error_message(h->peer));
        }
}

static int on_stop_poll(sd_event_source *s, uint64_t usec, void *userdata) {
        struct hold *h = userdata;

        if (h->child > 0 && !group_stopped(h->child))
                return sd_event_source_set_time_relative(s, STOP_POLL_USEC) < 0 ? 0 :
                       sd_event_source_set_enabled(s, SD_EVENT_ONESHOT);
        ack_stopped(h);
        return 0;
}

/* Acknowledge the pauses once the command's group has stopped. */
static void ack_when_stopped(struct hold *h) {
        if (h->child <= 0 || group_stopped(h->child)) {
                ack_stopped(h);
                return;
        }
        if (!h->stop_poll &&
            sd_event_add_time_relative(h->event, &h->stop_poll, CLOCK_MONOTONIC, STOP_POLL_USEC, 0, on_stop_poll,
                                       h) < 0)
                return;
        (void) sd_event_source_set_time_relative(h->stop_poll, STOP_POLL_USEC);
        (void) sd_event_source_set_enabled(h->stop_poll, SD_EVENT_ONESHOT);
}

static int add_pause(struct hold *h, const char *devset, uint64_t reset_id, bool acked) {
        struct pause *n;

        for (size_t i = 0; i < h->n_pauses; i++)
                if (strcmp(h->pauses[i].devset, devset) == 0 && h->pauses[i].reset_id == reset_id) {
                        h->pauses[i].acked = h->pauses[i].acked || acked;
                        return 0;
                }
        n = realloc(h->pauses, sizeof(*n) * (h->n_pauses + 1));
        if (!n)
                return -ENOMEM;
        h->pauses = n;
        n[h->n_pauses] = (struct pause) { .devset = strdup(devset), .reset_id = reset_id, .acked = acked };
        if (!n[h->n_pauses].devset)
                return -ENOMEM;
        h->n_pauses++;
        return 0;
}

static int on_pause(vrd_peer *p, const struct vrd_pause *pause, void *userdata) {
        struct hold *h = userdata;

        if (strcmp(pause->type, "gone") == 0) {
                for (const char *const *a = pause->addresses; a && *a; a++)
                        fprintf(stderr, "%s: %s is gone\n", program_invocation_short_name, *a);
                return -1;
        }
        /* "force": the reset goes on without us, yet the command must not touch the devices meanwhile. */
        if (add_pause(h, pause->devset, pause->reset_id, strcmp(pause->type, "force") == 0) < 0) {
                fprintf(stderr, "%s: out of memory\n", program_invocation_short_name);
                return -1;
        }
        if (h->child > 0 && kill(-h->child, SIGSTOP) < 0)
                fprintf(stderr, "%s: cannot stop process group %d: %m\n", program_invocation_short_name,
                        (int) h->child);
        ack_when_stopped(h);
        return 1;
}

static int start_child(struct hold *h);

/* No Resume will come from a daemon that left: the library ends its pauses.
 * Stopped for good would be worse than running unguarded, so the command goes
 * on, without claims until a daemon is back (on_rejoin), and hold stays with
 * it to exit with its status: killing it would lose its work to a daemon's
 * crash. A command not started yet is not started. */
static void warn_daemon_gone(struct hold *h, const struct vrd_resume *resume, bool last) {
        const char *name = program_invocation_short_name;

        if (resume->reset_id == 0)
                fprintf(stderr, "%s: vfio-resetd left the bus during a reset of %s", name, resume->devset);
        else
                fprintf(stderr, "%s: vfio-resetd left the bus during reset %" PRIu64, name, resume->reset_id);
        if (!last)
                fputs("\n", stderr);
        else if (h->child <= 0)
                fprintf(stderr, "; not starting %s\n", h->command[0]);
        else
                fprintf(stderr, "; resuming %s (pid %d)\n"
                        "%s: its claims went with it: %s keeps the devices, and no reset will stop it until "
                        "vfio-resetd is back\n", h->command[0], (int) h->child, name, h->command[0]);
}

static void on_resume(vrd_peer *p, const struct vrd_resume *resume, void *userdata) {
        bool gone = strcmp(resume->result, VRD_RESUME_DAEMON_GONE) == 0;
        struct hold *h = userdata;
        size_t n = 0;

        if (gone)
                h->daemon_gone = true;
        else if (strcmp(resume->result, "done") != 0)
                fprintf(stderr, "%s: reset %" PRIu64 " of %s ended: %s\n", program_invocation_short_name,
                        resume->reset_id, resume->devset, resume->result);
        /* Every reset of the set is over, the one a take found under way included. */
        for (size_t i = 0; i < h->n_pauses; i++)
                if (strcmp(h->pauses[i].devset, resume->devset) == 0)
                        free(h->pauses[i].devset);
                else
                        h->pauses[n++] = h->pauses[i];
        if (n == h->n_pauses)
                return;
        h->n_pauses = n;
        if (gone)
                warn_daemon_gone(h, resume, n == 0);
        if (n > 0)
                return;
        /* A group still stopping when the pause ended has nothing left to acknowledge. */
        if (h->stop_poll)
                (void) sd_event_source_set_enabled(h->stop_poll, SD_EVENT_OFF);
        if (h->child > 0)
                (void) kill(-h->child, SIGCONT);
        else if (gone || start_child(h) < 0)
                (void) sd_event_exit(h->event, CTL_EXIT_FAILURE);
}

/* A restarted daemon took the name, and the library took our devices again
 * from it: we are their peer again. A set it is resetting right now stops the
 * command until its Resume, as a take that found it paused would. */
static void on_rejoin(vrd_peer *p, const struct vrd_rejoin *rejoin, void *userdata) {
        const char *name = program_invocation_short_name;
        _cleanup_free_ char *devset = NULL;
        struct hold *h = userdata;

        if (rejoin->error < 0) {
                fprintf(stderr, "%s: cannot take %s again from the restarted vfio-resetd: %s\n", name, rejoin->address,
                        rejoin->error_message ?: strerror(-rejoin->error));
                return;
        }
        h->daemon_gone = false;
        fprintf(stderr, "%s: vfio-resetd is back: took %s again%s\n", name, rejoin->address,
                rejoin->paused ? "; its set is being reset" : "");
        if (!rejoin->paused)
                return;
        if (vrd_peer_get_devset(p, rejoin->address, &devset) < 0 || add_pause(h, devset, 0, true) < 0) {
                fprintf(stderr, "%s: cannot wait for the reset of %s: %s\n", name, rejoin->address,
                        vrd_peer_error_message(p) ?: "out of memory");
                return;
        }
        if (h->child > 0)
                (void) kill(-h->child, SIGSTOP);
}

static int on_child_exit(sd_event_source *s, const siginfo_t *si, void *userdata) {
        struct hold *h = userdata;

        return sd_event_exit(h->event, si->si_code == CLD_EXITED ? si->si_status : 128 + si->si_status);
}

static int on_signal(sd_event_source *s, const struct signalfd_siginfo *si, void *userdata) {
        struct hold *h = userdata;

        if (h->child > 0)
                (void) kill(-h->child, (int) si->ssi_signo);
        else
                (void) sd_event_exit(h->event, 128 + (int) si->ssi_signo);
        return 0;
}

static _Noreturn void exec_child(struct hold *h) {
        sigset_t none;

        (void) setpgid(0, 0);
        for (size_t i = 0; i < h->n_devices; i++) {
                (void) fcntl(h->devices[i].device_fd, F_SETFD, 0);
                (void) fcntl(h->devices[i].iommu_fd, F_SETFD, 0);
        }
        for (char **e = h->environment; *e; e++)
                (void) putenv(*e);
        sigemptyset(&none);
        (void) sigprocmask(SIG_SETMASK, &none, NULL);
        execvp(h->command[0], h->command);
        fprintf(stderr, "%s: cannot run %s: %m\n", program_invocation_short_name, h->command[0]);
        _exit(errno == ENOENT ? 127 : 126);
}

static int start_child(struct hold *h) {
        int r;

        fflush(NULL);
        h->child = fork();
        if (h->child < 0) {
                fprintf(stderr, "%s: cannot fork: %m\n", program_invocation_short_name);
                return -CTL_EXIT_FAILURE;
        }
        if (h->child == 0)
                exec_child(h);
        /* Both sides set the group, so that it exists whichever runs first. */
        (void) setpgid(h->child, h->child);
        /* An interactive command keeps the terminal, as it would without us. */
        if (isatty(STDIN_FILENO) && tcgetpgrp(STDIN_FILENO) == getpgrp())
                h->terminal = tcsetpgrp(STDIN_FILENO, h->child) >= 0;
        r = sd_event_add_child(h->event, NULL, h->child, WEXITED, on_child_exit, h);
        if (r < 0) {
                fprintf(stderr, "%s: cannot watch pid %d: %s\n", program_invocation_short_name, (int) h->child,
                        strerror(-r));
                return -CTL_EXIT_FAILURE;
        }
        return 0;
}

static void take_back_terminal(struct hold *h) {
        if (!h->terminal)
                return;
        /* We are in the background now: tcsetpgrp() would stop us with SIGTTOU. */
        signal(SIGTTOU, SIG_IGN);
        (void) tcsetpgrp(STDIN_FILENO, getpgrp());
        signal(SIGTTOU, SIG_DFL);
}

/* Takes every device; a set found under reset holds back the start. */
static int take_all(struct hold *h) {
        for (size_t i = 0; i < h->n_devices; i++) {
                struct held_device *d = &h->devices[i];
                _cleanup_free_ char *devset = NULL;
                bool paused;

                if (vrd_peer_take(h->peer, d->address, &d->device_fd, &d->iommu_fd, &paused) < 0) {
                        fprintf(stderr, "%s: cannot take %s: %s\n", program_invocation_short_name, d->address,
                                vrd_peer_error_message(h->peer));
                        return -CTL_EXIT_FAILURE;
                }
                if (paused && (vrd_peer_get_devset(h->peer, d->address, &devset) < 0 ||
                               add_pause(h, devset, 0, true) < 0)) {
                        fprintf(stderr, "%s: cannot wait for the reset of %s: %s\n", program_invocation_short_name,
                                d->address, vrd_peer_error_message(h->peer) ?: "out of memory");
                        return -CTL_EXIT_FAILURE;
                }
        }
        return 0;
}

static int run(struct hold *h) {
        static const int forwarded[] = { SIGTERM, SIGINT, SIGHUP };
        sigset_t mask;
        int r;

        sigemptyset(&mask);
        sigaddset(&mask, SIGCHLD);
        for (size_t i = 0; i < ELEMENTSOF(forwarded); i++)
                sigaddset(&mask, forwarded[i]);
        if (sigprocmask(SIG_BLOCK, &mask, NULL) < 0)
                return -CTL_EXIT_FAILURE;
        r = sd_event_new(&h->event);
        for (size_t i = 0; r >= 0 && i < ELEMENTSOF(forwarded); i++)
                r = sd_event_add_signal(h->event, NULL, forwarded[i], on_signal, h);
        if (r >= 0)
                r = vrd_peer_attach_event(h->peer, h->event);
        if (r < 0) {
                fprintf(stderr, "%s: cannot set up the event loop: %s\n", program_invocation_short_name, strerror(-r));
                return -CTL_EXIT_FAILURE;
        }
        vrd_peer_on_pause(h->peer, on_pause, h);
        vrd_peer_on_resume(h->peer, on_resume, h);
        vrd_peer_on_rejoin(h->peer, on_rejoin, h);

        r = take_all(h);
        if (r >= 0 && !(h->environment = hold_environment(h->devices, h->n_devices)))
                r = -CTL_EXIT_FAILURE;
        if (r >= 0 && h->n_pauses == 0)
                r = start_child(h);
        if (r < 0)
                return r;
        r = sd_event_loop(h->event);
        take_back_terminal(h);
        return r < 0 ? -CTL_EXIT_FAILURE : r;
}

static void hold_done(struct hold *h) {
        for (size_t i = 0; i < h->n_devices; i++) {
                if (h->devices[i].device_fd < 0)
                        continue;
                if (!h->daemon_gone && vrd_peer_release(h->peer, h->devices[i].address) < 0)
                        fprintf(stderr, "%s: cannot release %s: %s\n", program_invocation_short_name,
                                h->devices[i].address, vrd_peer_error_message(h->peer));
                closep(&h->devices[i].device_fd);
                closep(&h->devices[i].iommu_fd);
        }
        for (size_t i = 0; i < h->n_pauses; i++)
                free(h->pauses[i].devset);
        free(h->pauses);
        free(h->devices);
        strv_free(h->environment);
        sd_event_source_unref(h->stop_poll);
        vrd_peer_unref(h->peer);
        sd_event_unref(h->event);
}

int cmd_hold(struct ctl *c, int argc, char *argv[]) {
        struct hold h = {};
        int dash = 1, r;

        while (dash < argc && strcmp(argv[dash], "--") != 0)
                dash++;
        if (dash == 1 || dash >= argc - 1) {
                fprintf(stderr, "%s: hold takes PCI addresses, then -- and the command to run\n",
                        program_invocation_short_name);
                return CTL_EXIT_USAGE;
        }
        h.command = argv + dash + 1;
        h.devices = calloc((size_t) dash - 1, sizeof(*h.devices));
        if (!h.devices)
                return CTL_EXIT_FAILURE;
        for (int i = 1; i < dash; i++) {
                struct held_device *d = &h.devices[h.n_devices];

                if (argv[i][0] == '-') {
                        fprintf(stderr, "%s: unknown option %s for hold\n", program_invocation_short_name, argv[i]);
                        r = -CTL_EXIT_USAGE;
                        goto finish;
                }
                r = ctl_parse_address(argv[i], d->address);
                if (r < 0)
                        goto finish;
                for (size_t j = 0; j < h.n_devices; j++)
                        if (strcmp(h.devices[j].address, d->address) == 0) {
                                fprintf(stderr, "%s: %s is named twice\n", program_invocation_short_name, argv[i]);
                                r = -CTL_EXIT_USAGE;
                                goto finish;
                        }
                d->device_fd = d->iommu_fd = -EBADF;
                h.n_devices++;
        }
        r = ctl_peer(c, &h.peer);
        if (r >= 0)
                r = run(&h);
finish:
        hold_done(&h);
        return r < 0 ? -r : r;
}
