/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The daemon's memory with many peers: the daemon with the kernel test
 * double over a fake sysfs of S bus sets of two functions
 * (bench/gen-topology.sh, TOPOLOGY_DIR, name "sets"), every device managed.
 * N peers (a crowd of bus connections in this process, tests/bus-harness.h)
 * join in STEPS steps, spread evenly over the sets; after each step the
 * daemon's VmRSS (proc(5), /proc/PID/status) is read. Then the first set
 * is reset (each of its peers acks its Pause) and the RSS read again.
 * One connection takes an fd here and one in dbus-daemon: N peers need N
 * fds of each process's RLIMIT_NOFILE (raised to the hard limit,
 * getrlimit(2)). When the hard limit cannot hold N, as many as fit join and
 * the RSS at N is extrapolated from a least-squares line through the steps.
 * The daemon runs under umockdev's preload, which maps GLib and umockdev
 * into it: at the end the same daemon starts once more outside the preload
 * on this host's sysfs (no vfio device: nothing to serve) on a bus of its
 * own, and its RSS is the start-up's without the preload.
 * Prints each step, the line (KiB + bytes per peer), the RSS at N and the
 * RSS at N with the start-up outside the preload.
 * Usage: rss-scale -s SETS [-n PEERS] [--steps STEPS]  (run by bench/rss-scale.sh) */
#include <check.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bench-util.h"
#include "bus-harness.h"
#include "bus-names.h"
#include "macro.h"
#include "testbed.h"

static struct harness h;
static size_t sets = 64, n = 10000, steps = 4, answered;
static int status;

static int on_reply(sd_bus_message *m, void *userdata, sd_bus_error *error) {
        const sd_bus_error *e = sd_bus_message_get_error(m);

        ck_assert_msg(!e, "ResetDevice: %s: %s", e ? e->name : "", e ? e->message : "");
        answered++;
        return 0;
}

/* A field of the daemon's /proc/PID/status (proc(5)), KiB: VmRSS is
 * RssAnon (its heap and stacks) + RssFile (the pages of its binary and its
 * libraries it touched, shared with every process that maps them) + RssShmem. */
static uint64_t daemon_status_kib(const char *field) {
        char path[64], line[256];
        unsigned long long kib = 0;
        size_t l = strlen(field);
        FILE *f;

        snprintf(path, sizeof(path), "/proc/%d/status", (int) h.daemon_pid);
        f = fopen(path, "re");
        ck_assert_ptr_nonnull(f);
        while (fgets(line, sizeof(line), f))
                if (strncmp(line, field, l) == 0 && line[l] == ':' && sscanf(line + l + 1, "%llu", &kib) == 1)
                        break;
        fclose(f);
        return kib;
}

static uint64_t daemon_rss_kib(void) {
        return daemon_status_kib("VmRSS");
}

static void print_rss(const char *what) {
        printf("%s rss_kib=%" PRIu64 " anon_kib=%" PRIu64 " file_kib=%" PRIu64 "\n", what, daemon_rss_kib(),
               daemon_status_kib("RssAnon"), daemon_status_kib("RssFile"));
}

START_TEST(bench) {
        UMockdevTestbed *tb = testbed_new("sets");
        struct crowd crowds[steps];
        uint64_t rss[steps + 1];
        size_t joined[steps + 1], room = crowd_room(), fit = n < room ? n : room;
        char config[160], **addresses = calloc(sets, sizeof(char *));
        double sx = 0, sy = 0, sxx = 0, sxy = 0, slope, intercept;
        uint64_t t;
        FILE *f;

        ck_assert_ptr_nonnull(addresses);
        harness_start_bus(&h);
        h.daemon = getenv("VRD_FAKE_DAEMON");
        snprintf(config, sizeof(config), "%s/vfio-resetd.conf", h.dir);
        f = fopen(config, "we");
        ck_assert_ptr_nonnull(f);
        fputs("[Manage]\n", f);
        for (size_t i = 0; i < sets; i++) {
                fprintf(f, "Device=0000:%02zx:00.0 0000:%02zx:00.1\n", i + 1, i + 1);
                ck_assert_int_ge(asprintf(&addresses[i], "0000:%02zx:00.0", i + 1), 0);
        }
        fputs("[Reset]\nQuiesceTimeoutSec=120\n", f);
        fclose(f);
        setenv("VRD_FAKE_KERNEL", "delay_ms=0", 1);
        harness_start_daemon(&h, (const char *const[]) { "--uevents=udev", "--config", config, NULL });

        joined[0] = 0;
        rss[0] = daemon_rss_kib();
        print_rss("peers=0");
        for (size_t s = 0; s < steps; s++) {
                size_t want = fit * (s + 1) / steps;

                t = monotonic_usec();
                crowd_join_spread(&crowds[s], want - joined[s], (const char *const *) addresses, sets);
                joined[s + 1] = want;
                rss[s + 1] = daemon_rss_kib();
                printf("join_s=%.1f ", (monotonic_usec() - t) / 1e6);
                print_rss(cmdf("peers=%zu", want));
                fflush(stdout);
        }

        /* A reset of the first set, its peers acking. Not of every set: with
         * ten thousand peers dbus-daemon matches each of the ten thousand
         * Pause and Resume against every peer's match rules (tens of
         * seconds), and the daemon's RSS would tell nothing more. */
        t = monotonic_usec();
        answered = 0;
        ck_assert_int_ge(sd_bus_call_method_async(h.bus, NULL, VRD_BUS_NAME, VRD_ROOT_PATH, VRD_MANAGER_IFACE,
                                                  "ResetDevice", on_reply, NULL, "sa{sv}", addresses[0], 0), 0);
        for (bool all = false; !all;) {
                all = answered == 1;
                for (size_t s = 0; s < steps; s++) {
                        crowd_pump(&crowds[s], s == 0 ? h.bus : NULL);
                        /* peer i of each crowd watches addresses[i % sets] */
                        for (size_t i = 0; all && i < crowds[s].n; i += sets)
                                all = crowds[s].peers[i].n_resumed >= 1;
                }
                ck_assert_msg(monotonic_usec() - t < 300 * USEC_PER_SEC, "the reset was not answered");
        }
        ck_assert_msg(harness_daemon_alive(&h), "the daemon died");
        printf("reset_s=%.1f ", (monotonic_usec() - t) / 1e6);
        print_rss(cmdf("peers=%zu sets=%zu after a reset of one set:", fit, sets));

        for (size_t s = 0; s <= steps; s++) {
                sx += (double) joined[s];
                sy += (double) rss[s];
                sxx += (double) joined[s] * (double) joined[s];
                sxy += (double) joined[s] * (double) rss[s];
        }
        slope = (sxy - sx * sy / (double) (steps + 1)) / (sxx - sx * sx / (double) (steps + 1));
        intercept = (sy - slope * sx) / (double) (steps + 1);
        printf("fit: rss_kib = %.0f + %.3f * peers (%.0f bytes per peer); peers=%zu%s rss_kib=%.0f (%.2f MiB)\n",
               intercept, slope, slope * 1024, n, fit < n ? " extrapolated" : "", intercept + slope * (double) n,
               (intercept + slope * (double) n) / 1024);
        for (size_t s = 0; s < steps; s++)
                crowd_leave(&crowds[s]);
        harness_stop(&h);

        /* the start-up's RSS outside the preload: the host's sysfs, nothing managed */
        harness_start_bus(&h);
        h.daemon = getenv("VRD_FAKE_DAEMON");
        unsetenv("LD_PRELOAD");
        harness_start_daemon(&h, (const char *const[]) { "--uevents=udev", NULL });
        usleep(500000);
        {
                uint64_t bare = daemon_rss_kib(), anon = daemon_status_kib("RssAnon");

                print_rss("outside the preload, no sets:");
                printf("with the fitted cost of %zu peers: rss_kib=%.0f (%.2f MiB) anon_kib=%.0f (%.2f MiB)\n", n,
                       (double) bare + slope * (double) n, ((double) bare + slope * (double) n) / 1024,
                       (double) anon + slope * (double) n, ((double) anon + slope * (double) n) / 1024);
        }
        harness_stop(&h);
        for (size_t i = 0; i < sets; i++)
                free(addresses[i]);
        free(addresses);
        g_object_unref(tb);
        status = 0;
}
END_TEST

int main(int argc, char *argv[]) {
        static const struct option options[] = {
                { "steps", required_argument, NULL, 't' },
                {}
        };
        int c;

        while ((c = getopt_long(argc, argv, "s:n:", options, NULL)) >= 0)
                switch (c) {
                case 's':
                        sets = strtoul(optarg, NULL, 10);
                        break;
                case 'n':
                        n = strtoul(optarg, NULL, 10);
                        break;
                case 't':
                        steps = strtoul(optarg, NULL, 10);
                        break;
                default:
                        fprintf(stderr, "usage: %s -s SETS [-n PEERS] [--steps STEPS]\n", argv[0]);
                        return 2;
                }
        if (sets == 0 || sets > 255 || n < sets || steps < 2 || steps > 100 || !getenv("VRD_FAKE_DAEMON")) {
                fprintf(stderr, "%s: need 1 to 255 sets, at least one peer per set, 2 to 100 steps, and "
                        "$VRD_FAKE_DAEMON\n", argv[0]);
                return 2;
        }
        status = 1;
        return bench_run("rss-scale", bench, &status);
}
