/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* What the arbiter costs per peer: N peers (bus connections of this process)
 * watch one dev_set of the fake lab sysfs, served by the daemon with the
 * kernel test double (1 ms resets). Two ways, alternating, each R times:
 *   - floor: this process sends each peer one unicast signal, counts the N
 *     method calls they answer with, then sends each a second signal: the
 *     bare messages of a pause, its acks and the resume;
 *   - reset: ResetDevice; each peer answers its Pause with PauseComplete, and
 *     the reply comes after the daemon resumed everyone.
 * Prints the medians and reset / floor, and the daemon's CPU time per reset.
 * Usage: peer-scale [-n PEERS] [-r ROUNDS] [--daemon PATH]  (run by bench/peer-scale.sh) */
#include <check.h>
#include <getopt.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#include "bus-harness.h"
#include "bus-names.h"
#include "macro.h"
#include "testbed.h"

struct peer {
        sd_bus *bus;
        uint64_t paused, resumed;
};

static struct harness h;
static unsigned n_acks;

static int on_pause(sd_bus_message *m, void *userdata, sd_bus_error *error) {
        struct peer *p = userdata;
        const char *path, *type;

        if (sd_bus_message_read(m, "ots", &path, &p->paused, &type) < 0)
                return 0;
        return sd_bus_call_method_async(p->bus, NULL, VRD_BUS_NAME, VRD_ROOT_PATH, VRD_MANAGER_IFACE,
                                        "PauseComplete", NULL, NULL, "t", p->paused);
}

static int on_resume(sd_bus_message *m, void *userdata, sd_bus_error *error) {
        ((struct peer *) userdata)->resumed++;
        return 0;
}

/* The floor's Ping, answered like a Pause. */
static int on_ping(sd_bus_message *m, void *userdata, sd_bus_error *error) {
        struct peer *p = userdata;
        const char *me;

        (void) sd_bus_get_unique_name(h.bus, &me);
        return sd_bus_call_method_async(p->bus, NULL, me, "/bench", "org.vfioresetd1.Bench", "Ack", NULL, NULL,
                                        "t", (uint64_t) 1);
}

static int on_done(sd_bus_message *m, void *userdata, sd_bus_error *error) {
        ((struct peer *) userdata)->resumed++;
        return 0;
}

static void send_each(struct peer *peers, size_t n, const char *member) {
        for (size_t i = 0; i < n; i++) {
                const char *dest;
                sd_bus_message *s = NULL;

                ck_assert_int_ge(sd_bus_get_unique_name(peers[i].bus, &dest), 0);
                ck_assert_int_ge(sd_bus_message_new_signal(h.bus, &s, "/bench", "org.vfioresetd1.Bench", member), 0);
                ck_assert_int_ge(sd_bus_message_set_destination(s, dest), 0);
                ck_assert_int_ge(sd_bus_send(h.bus, s, NULL), 0);
                sd_bus_message_unref(s);
        }
}

static size_t n_resumed(struct peer *peers, size_t n, uint64_t at_least) {
        size_t k = 0;

        for (size_t i = 0; i < n; i++)
                k += peers[i].resumed >= at_least;
        return k;
}

static int method_ack(sd_bus_message *m, void *userdata, sd_bus_error *error) {
        n_acks++;
        return sd_bus_reply_method_return(m, NULL);
}

static const sd_bus_vtable bench_vtable[] = {
        SD_BUS_VTABLE_START(0),
        SD_BUS_METHOD("Ack", "t", "", method_ack, 0),
        SD_BUS_VTABLE_END
};

/* Process what every connection has: one poll(2) over all of them, so that
 * this side's cost stays the same for both ways. */
static void pump(struct peer *peers, size_t n) {
        static struct pollfd *fds;
        static bool *queued;
        bool any = false;

        if (!fds) {
                fds = calloc(n + 1, sizeof(*fds));
                queued = calloc(n + 1, sizeof(bool));
                ck_assert(fds && queued);
        }
        for (size_t i = 0; i <= n; i++) {
                sd_bus *b = i < n ? peers[i].bus : h.bus;
                uint64_t timeout = UINT64_MAX;

                fds[i] = (struct pollfd) { .fd = sd_bus_get_fd(b), .events = (short) sd_bus_get_events(b) };
                /* a message read already (during a call) waits in sd-bus, not in the socket */
                queued[i] = sd_bus_get_timeout(b, &timeout) >= 0 && timeout == 0;
                any = any || queued[i];
        }
        (void) poll(fds, n + 1, any ? 0 : 1);
        for (size_t i = 0; i <= n; i++)
                if (fds[i].revents || queued[i])
                        while (sd_bus_process(i < n ? peers[i].bus : h.bus, NULL) > 0)
                                ;
}

static bool reply_done;

static int on_reply(sd_bus_message *m, void *userdata, sd_bus_error *error) {
        const sd_bus_error *e = sd_bus_message_get_error(m);

        if (e)
                fprintf(stderr, "ResetDevice: %s: %s\n", e->name, e->message);
        reply_done = true;
        return 0;
}

static uint64_t daemon_cpu_usec(void) {
        char path[64], buf[1024], *p;
        unsigned long utime = 0, stime = 0;
        FILE *f;

        snprintf(path, sizeof(path), "/proc/%d/stat", (int) h.daemon_pid);
        f = fopen(path, "re");
        if (!f || !fgets(buf, sizeof(buf), f)) {
                if (f)
                        fclose(f);
                return 0;
        }
        fclose(f);
        p = strrchr(buf, ')');
        if (p)
                (void) sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %lu %lu", &utime, &stime);
        return (uint64_t) (utime + stime) * USEC_PER_SEC / (uint64_t) sysconf(_SC_CLK_TCK);
}

static int compare(const void *a, const void *b) {
        uint64_t x = *(const uint64_t *) a, y = *(const uint64_t *) b;

        return x < y ? -1 : x > y;
}

static uint64_t median(uint64_t *v, size_t n) {
        qsort(v, n, sizeof(*v), compare);
        return v[n / 2];
}

static size_t n = 1000, rounds = 5;
static const char *daemon_path;
static int status;

/* A Check test, run in this process, so that every ck_assert on the way reports. */
START_TEST(bench) {
        const char *daemon = daemon_path;
        char config[160], spec[192];
        struct peer *peers;
        struct rlimit rl;
        uint64_t *floor_usec, *reset_usec, *cpu_usec;
        UMockdevTestbed *tb;
        FILE *f;

        ck_assert_int_eq(getrlimit(RLIMIT_NOFILE, &rl), 0);
        rl.rlim_cur = rl.rlim_max;
        ck_assert_int_eq(setrlimit(RLIMIT_NOFILE, &rl), 0);

        tb = testbed_new("lab");
        harness_start_bus(&h);
        h.daemon = daemon;
        snprintf(config, sizeof(config), "%s/vfio-resetd.conf", h.dir);
        f = fopen(config, "we");
        ck_assert_ptr_nonnull(f);
        fputs("[Manage]\nDevice=0000:04:00.0 0000:04:00.1\n[Reset]\nQuiesceTimeoutSec=60\n", f);
        fclose(f);
        snprintf(spec, sizeof(spec), "delay_ms=1");
        setenv("VRD_FAKE_KERNEL", spec, 1);
        harness_start_daemon(&h, (const char *const[]) { "--uevents=udev", "--config", config, NULL });
        ck_assert_int_ge(sd_bus_add_object_vtable(h.bus, NULL, "/bench", "org.vfioresetd1.Bench", bench_vtable, NULL),
                         0);

        peers = calloc(n, sizeof(*peers));
        floor_usec = calloc(rounds, sizeof(uint64_t));
        reset_usec = calloc(rounds, sizeof(uint64_t));
        cpu_usec = calloc(rounds, sizeof(uint64_t));
        ck_assert(peers && floor_usec && reset_usec && cpu_usec);
        for (size_t i = 0; i < n; i++) {
                sd_bus_error e = SD_BUS_ERROR_NULL;

                ck_assert_int_ge(sd_bus_open_system(&peers[i].bus), 0);
                ck_assert_int_ge(sd_bus_match_signal(peers[i].bus, NULL, VRD_BUS_NAME, VRD_ROOT_PATH,
                                                     VRD_MANAGER_IFACE, "Pause", on_pause, &peers[i]), 0);
                ck_assert_int_ge(sd_bus_match_signal(peers[i].bus, NULL, VRD_BUS_NAME, VRD_ROOT_PATH,
                                                     VRD_MANAGER_IFACE, "Resume", on_resume, &peers[i]), 0);
                ck_assert_int_ge(sd_bus_match_signal(peers[i].bus, NULL, NULL, "/bench", "org.vfioresetd1.Bench",
                                                     "Ping", on_ping, &peers[i]), 0);
                ck_assert_int_ge(sd_bus_match_signal(peers[i].bus, NULL, NULL, "/bench", "org.vfioresetd1.Bench",
                                                     "Done", on_done, &peers[i]), 0);
                if (sd_bus_call_method(peers[i].bus, VRD_BUS_NAME, VRD_ROOT_PATH, VRD_MANAGER_IFACE, "Watch", &e,
                                       NULL, "s", "0000:04:00.0") < 0) {
                        ck_abort_msg("peer %zu: Watch: %s", i, e.message);
                }
        }

        for (size_t r = 0; r < rounds; r++) {
                uint64_t t, cpu;

                /* floor: each peer hears Ping, Acks, then hears Done (2 per round: floor and reset) */
                n_acks = 0;
                t = monotonic_usec();
                send_each(peers, n, "Ping");
                while (n_acks < n)
                        pump(peers, n);
                send_each(peers, n, "Done");
                while (n_resumed(peers, n, 2 * r + 1) < n)
                        pump(peers, n);
                floor_usec[r] = monotonic_usec() - t;

                /* reset */
                reply_done = false;
                cpu = daemon_cpu_usec();
                t = monotonic_usec();
                ck_assert_int_ge(sd_bus_call_method_async(h.bus, NULL, VRD_BUS_NAME, VRD_ROOT_PATH, VRD_MANAGER_IFACE,
                                                          "ResetDevice", on_reply, NULL, "sa{sv}", "0000:04:00.0", 0),
                                 0);
                while (!reply_done || n_resumed(peers, n, 2 * r + 2) < n)
                        pump(peers, n);
                reset_usec[r] = monotonic_usec() - t;
                cpu_usec[r] = daemon_cpu_usec() - cpu;
                ck_assert_msg(harness_daemon_alive(&h), "the daemon died");
        }
        {
                uint64_t fl = median(floor_usec, rounds), re = median(reset_usec, rounds), cpu = median(cpu_usec, rounds);

                printf("peers=%zu rounds=%zu floor_ms=%.1f reset_ms=%.1f ratio=%.2f daemon_cpu_ms=%.1f "
                       "daemon_cpu_share=%.2f\n", n, rounds, fl / 1e3, re / 1e3, (double) re / (double) fl, cpu / 1e3,
                       (double) cpu / (double) re);
        }
        for (size_t i = 0; i < n; i++)
                sd_bus_flush_close_unref(peers[i].bus);
        harness_stop(&h);
        g_object_unref(tb);
        status = 0;
}
END_TEST

int main(int argc, char *argv[]) {
        static const struct option options[] = {
                { "daemon", required_argument, NULL, 'd' },
                {}
        };
        Suite *s = suite_create("peer-scale");
        TCase *tc = tcase_create("bench");
        SRunner *sr;
        int c;

        daemon_path = getenv("VRD_FAKE_DAEMON");
        while ((c = getopt_long(argc, argv, "n:r:", options, NULL)) >= 0)
                switch (c) {
                case 'n':
                        n = strtoul(optarg, NULL, 10);
                        break;
                case 'r':
                        rounds = strtoul(optarg, NULL, 10);
                        break;
                case 'd':
                        daemon_path = optarg;
                        break;
                default:
                        fprintf(stderr, "usage: %s [-n PEERS] [-r ROUNDS] [--daemon PATH]\n", argv[0]);
                        return 2;
                }
        if (n == 0 || rounds == 0 || !daemon_path) {
                fprintf(stderr, "%s: need peers and rounds above 0, and a daemon ($VRD_FAKE_DAEMON or --daemon)\n",
                        argv[0]);
                return 2;
        }
        status = 1;
        tcase_add_test(tc, bench);
        tcase_set_timeout(tc, 600);
        suite_add_tcase(s, tc);
        sr = srunner_create(s);
        srunner_set_fork_status(sr, CK_NOFORK);
        srunner_run_all(sr, CK_SILENT);
        if (srunner_ntests_failed(sr) > 0) {
                srunner_print(sr, CK_NORMAL);
                status = 1;
        }
        srunner_free(sr);
        return status;
}
