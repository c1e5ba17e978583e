/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* What the arbiter costs per peer: N peers (a crowd of bus connections in
 * this process, tests/bus-harness.h) watch one dev_set of the fake lab sysfs,
 * served by the daemon with the kernel test double (resets that take no
 * time). Two ways, alternating, each R times:
 *   - floor: the bare sd-bus server of bench/bus-floor.h, in a process of
 *     its own, on the same bus: exactly the messages of a reset with N peers;
 *   - reset: ResetDevice; each peer answers its Pause with PauseComplete, and
 *     the reply comes after the daemon resumed everyone.
 * Each ends when the reply and every peer's Resume (Done) are in. Prints the
 * medians and reset / floor, and the daemon's CPU time per reset.
 * Usage: peer-scale [-n PEERS] [-r ROUNDS] [--daemon PATH]  (run by bench/peer-scale.sh) */
#include <check.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <signal.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "bench-util.h"
#include "bus-floor.h"
#include "bus-harness.h"
#include "bus-names.h"
#include "macro.h"
#include "testbed.h"

static struct harness h;
static struct crowd crowd;
static bool reply_done;
static size_t n = 1000, rounds = 5;
static const char *daemon_path;
static int status;

static int on_reply(sd_bus_message *m, void *userdata, sd_bus_error *error) {
        const sd_bus_error *e = sd_bus_message_get_error(m);

        ck_assert_msg(!e, "ResetDevice: %s: %s", e ? e->name : "", e ? e->message : "");
        reply_done = true;
        return 0;
}

static uint64_t daemon_cpu_usec(void) {
        char path[64], buf[1024], *p;
        unsigned long utime = 0, stime = 0;
        FILE *f;

        snprintf(path, sizeof(path), "/proc/%d/stat", (int) h.daemon_pid);
        f = fopen(path, "re");
        if (!f)
                return 0;
        if (!fgets(buf, sizeof(buf), f))
                buf[0] = '\0';
        fclose(f);
        p = strrchr(buf, ')');
        if (p)
                (void) sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %lu %lu", &utime, &stime);
        return (uint64_t) (utime + stime) * USEC_PER_SEC / (uint64_t) sysconf(_SC_CLK_TCK);
}

/* A Check test, run in this process, so that every ck_assert on the way reports. */
START_TEST(bench) {
        uint64_t floor_usec[rounds], reset_usec[rounds], cpu_usec[rounds];
        UMockdevTestbed *tb = testbed_new("lab");
        char config[160];
        pid_t floor_pid;
        FILE *f;

        harness_start_bus(&h);
        h.daemon = daemon_path;
        snprintf(config, sizeof(config), "%s/vfio-resetd.conf", h.dir);
        f = fopen(config, "we");
        ck_assert_ptr_nonnull(f);
        fputs("[Manage]\nDevice=0000:04:00.0 0000:04:00.1\n[Reset]\nQuiesceTimeoutSec=60\n", f);
        fclose(f);
        setenv("VRD_FAKE_KERNEL", "delay_ms=0", 1);
        harness_start_daemon(&h, (const char *const[]) { "--uevents=udev", "--config", config, NULL });
        floor_pid = floor_server_fork();
        ck_assert_int_gt(floor_pid, 0);
        ck_assert_msg(floor_server_wait(h.bus) >= 0, "the floor server did not start");
        crowd_join(&crowd, n, "0000:04:00.0");
        for (size_t i = 0; i < n; i++) {
                sd_bus_error e = SD_BUS_ERROR_NULL;

                ck_assert_msg(floor_peer_attach(crowd.peers[i].bus, &crowd.peers[i].n_resumed, &e) >= 0,
                              "Watch of the floor server: %s", e.message);
        }

        /* Each round resumes every peer twice: once the floor, once the reset. */
        for (size_t r = 0; r < rounds; r++) {
                uint64_t t, cpu;

                reply_done = false;
                t = monotonic_usec();
                ck_assert_int_ge(floor_reset_async(h.bus, on_reply, NULL), 0);
                while (!reply_done || crowd_resumed(&crowd, 2 * r + 1) < n)
                        crowd_pump(&crowd, h.bus);
                floor_usec[r] = monotonic_usec() - t;

                reply_done = false;
                cpu = daemon_cpu_usec();
                t = monotonic_usec();
                ck_assert_int_ge(sd_bus_call_method_async(h.bus, NULL, VRD_BUS_NAME, VRD_ROOT_PATH, VRD_MANAGER_IFACE,
                                                          "ResetDevice", on_reply, NULL, "sa{sv}", "0000:04:00.0", 0),
                                 0);
                while (!reply_done || crowd_resumed(&crowd, 2 * r + 2) < n)
                        crowd_pump(&crowd, h.bus);
                reset_usec[r] = monotonic_usec() - t;
                cpu_usec[r] = daemon_cpu_usec() - cpu;
                ck_assert_msg(harness_daemon_alive(&h), "the daemon died");
        }
        {
                uint64_t fl = bench_median(floor_usec, rounds), re = bench_median(reset_usec, rounds);
                uint64_t cpu = bench_median(cpu_usec, rounds);

                printf("peers=%zu rounds=%zu floor_ms=%.1f reset_ms=%.1f ratio=%.2f daemon_cpu_ms=%.1f "
                       "daemon_cpu_share=%.2f\n", n, rounds, fl / 1e3, re / 1e3, (double) re / (double) fl, cpu / 1e3,
                       (double) cpu / (double) re);
        }
        crowd_leave(&crowd);
        /* SIGKILL: the child inherited Check's SIGTERM handler, which ends the whole process group */
        kill(floor_pid, SIGKILL);
        waitpid(floor_pid, NULL, 0);
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
        if (n == 0 || rounds == 0 || rounds > 1000 || !daemon_path) {
                fprintf(stderr, "%s: need 1 or more peers, 1 to 1000 rounds, and a daemon ($VRD_FAKE_DAEMON or "
                        "--daemon)\n", argv[0]);
                return 2;
        }
        status = 1;
        return bench_run("peer-scale", bench, &status);
}
