/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The bus floor of a reset with N peers on the system bus (bench/bus-floor.h),
 * for the VM guest: forks the floor server, connects N peers (bus connections
 * of this process) and a requester, and times R rounds of Reset, each until
 * the reply and every peer's Done are in (CLOCK_MONOTONIC, clock_gettime(2)).
 * Prints "floor-round usec=N" per round. tests/vm/scenarios/reset-overhead.sh
 * runs it between the daemon's resets (bar-peer --between).
 * Usage: bus-floor [-n PEERS] [-r ROUNDS] */
#include <errno.h>
#include <inttypes.h>
#include <poll.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "bus-floor.h"

#define MAX_PEERS 64

static bool reply_done;

static uint64_t now_usec(void) {
        struct timespec ts;

        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (uint64_t) ts.tv_sec * 1000000 + (uint64_t) ts.tv_nsec / 1000;
}

static int on_reply(sd_bus_message *m, void *userdata, sd_bus_error *error) {
        const sd_bus_error *e = sd_bus_message_get_error(m);

        if (e) {
                fprintf(stderr, "bus-floor: Reset: %s: %s\n", e->name, e->message);
                exit(1);
        }
        reply_done = true;
        return 0;
}

/* Dispatches every bus until none has work, then waits on all of them. */
static int pump(sd_bus **buses, size_t n) {
        struct pollfd fds[MAX_PEERS + 1];
        bool busy = true;
        int r;

        while (busy) {
                busy = false;
                for (size_t i = 0; i < n; i++) {
                        r = sd_bus_process(buses[i], NULL);
                        if (r < 0)
                                return r;
                        busy |= r > 0;
                }
                if (reply_done)
                        return 0;
        }
        for (size_t i = 0; i < n; i++) {
                fds[i].fd = sd_bus_get_fd(buses[i]);
                r = sd_bus_get_events(buses[i]);
                if (fds[i].fd < 0 || r < 0)
                        return fds[i].fd < 0 ? fds[i].fd : r;
                fds[i].events = (short) r;
        }
        return poll(fds, n, 10000) < 0 ? -errno : 0;
}

int main(int argc, char *argv[]) {
        sd_bus *buses[MAX_PEERS + 1] = {};     /* [0]: the requester */
        uint64_t resumed[MAX_PEERS] = {};
        size_t n = 2, rounds = 1;
        int c, r = 0;
        pid_t pid;

        while ((c = getopt(argc, argv, "n:r:")) >= 0) {
                if (c != 'n' && c != 'r') {
                        fprintf(stderr, "usage: %s [-n PEERS] [-r ROUNDS]\n", argv[0]);
                        return 2;
                }
                *(c == 'n' ? &n : &rounds) = strtoul(optarg, NULL, 10);
        }
        if (n == 0 || n > MAX_PEERS || rounds == 0) {
                fprintf(stderr, "%s: need 1 to %d peers and 1 or more rounds\n", argv[0], MAX_PEERS);
                return 2;
        }
        pid = floor_server_fork();
        if (pid < 0) {
                fprintf(stderr, "bus-floor: fork: %s\n", strerror((int) -pid));
                return 1;
        }
        for (size_t i = 0; r >= 0 && i <= n; i++)
                r = sd_bus_open_system(&buses[i]);
        if (r >= 0)
                r = floor_server_wait(buses[0]);
        for (size_t i = 1; r >= 0 && i <= n; i++)
                r = floor_peer_attach(buses[i], &resumed[i - 1], NULL);
        for (size_t k = 0; r >= 0 && k < rounds; k++) {
                uint64_t t = now_usec();
                size_t done;

                reply_done = false;
                r = floor_reset_async(buses[0], on_reply, NULL);
                do {
                        done = 0;
                        for (size_t i = 0; i < n; i++)
                                done += resumed[i] > k;
                        if (r >= 0 && (!reply_done || done < n))
                                r = pump(buses, n + 1);
                } while (r >= 0 && (!reply_done || done < n));
                if (r >= 0)
                        printf("floor-round usec=%" PRIu64 "\n", now_usec() - t);
        }
        if (r < 0)
                fprintf(stderr, "bus-floor: %s\n", strerror(-r));
        kill(pid, SIGKILL);
        waitpid(pid, NULL, 0);
        for (size_t i = 0; i <= n; i++)
                sd_bus_flush_close_unref(buses[i]);
        return r < 0;
}
