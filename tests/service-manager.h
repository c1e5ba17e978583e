/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* The part of systemd a service talks to, for the tests (sd_notify(3),
 * sd_pid_notify_with_fds(3), sd_listen_fds(3)):
 *  - a datagram socket for $NOTIFY_SOCKET with SO_PASSCRED, read by a thread
 *    of its own as PID 1 reads it all the time (a service blocks in sendmsg
 *    once the socket's queue is full);
 *  - the fd store: FDSTORE=1 keeps the message's fds under FDNAME= ("stored"
 *    without one), one open file once (sd_notify(3): duplicates are dropped),
 *    at most max_fds (FileDescriptorStoreMax=; the rest is refused);
 *    FDSTOREREMOVE=1 closes every fd of that FDNAME=; BARRIER=1 closes its fd;
 *    the fds of any other message are closed;
 *  - the start of the daemon with what the store holds: its fds from 3 on,
 *    $LISTEN_FDS, $LISTEN_FDNAMES (colon-separated) and $LISTEN_PID, which
 *    must be the daemon's own pid: set in the forked child before its exec. */

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>

#include "bus-harness.h"

struct service_manager {
        int sock;
        char path[108];
        pthread_t thread;
        bool running;
        pthread_mutex_t lock;
        struct stored_fd {
                char name[256];
                int fd;
        } *fds;
        size_t n_fds, max_fds;
        /* every message, one a line, its fields space-separated, then "fds=N
         * at=USEC": how many fds came with it, when it was read (CLOCK_MONOTONIC) */
        char *said;
        size_t said_len;
        bool stop;
        /* for the child of the next start */
        int *pass;
        size_t n_pass;
        char listen_fds[16], *listen_names;
};

/* Binds dir/notify and starts reading it. */
void service_manager_start(struct service_manager *s, const char *dir, size_t max_fds);
/* Stops reading, closes the store. */
void service_manager_stop(struct service_manager *s);
/* harness_start_daemon(h, args), the daemon told $NOTIFY_SOCKET and given the store. */
void service_manager_start_daemon(struct service_manager *s, struct harness *h, const char *const *args);

/* Puts fd into the store under name, as a message would have (the store owns it). */
void service_manager_store(struct service_manager *s, const char *name, int fd);
/* Closes every stored fd, as stopping the unit does. */
void service_manager_flush(struct service_manager *s);
/* How many fds the store holds under name (NULL: in all). */
size_t service_manager_count(struct service_manager *s, const char *name);
/* A duplicate of the first fd stored under name (the caller's), -1 if none. */
int service_manager_dup(struct service_manager *s, const char *name);

/* Everything the daemon said so far (a copy: free() it). */
char *service_manager_said(struct service_manager *s);
/* Waits until a message had text in it; false after timeout_ms. */
bool service_manager_wait_said(struct service_manager *s, const char *text, unsigned timeout_ms);
