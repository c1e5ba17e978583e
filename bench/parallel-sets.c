/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Independent dev_sets reset together against one alone: the daemon with the
 * kernel test double (each reset takes --kernel-ms in the kernel) over a fake
 * sysfs of S bus sets of two functions (bench/gen-topology.sh writes it; its
 * folder is TOPOLOGY_DIR, its name "sets"), every device managed, no peers.
 * Alternating, R times each:
 *   - alone: ResetDevice of the first set's first function, until its reply;
 *   - together: ResetDevice of every set's first function at once, until the
 *     last reply.
 * Prints the medians and together / alone: 1.0 when the kernel resets of
 * independent sets overlap completely.
 * BENCH_DAEMON_WRAP="/usr/bin/valgrind --tool=callgrind ..." runs the daemon under that
 * command (its words split at spaces), to count its instructions.
 * Usage: parallel-sets -s SETS [-r ROUNDS] [--kernel-ms MS]  (run by bench/parallel-sets.sh) */
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
static size_t sets = 64, rounds = 5, answered, expected;
static bool all_answered;
static unsigned kernel_ms = 100;
static int status;

static int on_reply(sd_bus_message *m, void *userdata, sd_bus_error *error) {
        const sd_bus_error *e = sd_bus_message_get_error(m);

        ck_assert_msg(!e, "ResetDevice: %s: %s", e ? e->name : "", e ? e->message : "");
        all_answered = ++answered == expected;
        return 0;
}

/* The first function of set i (bus i + 1). */
static void address_of(size_t i, char *buf, size_t size) {
        snprintf(buf, size, "0000:%02x:00.0", (unsigned) (i + 1) & 0xff);
}

static uint64_t reset_sets(size_t k) {
        uint64_t t = monotonic_usec();

        answered = 0;
        expected = k;
        all_answered = false;
        for (size_t i = 0; i < k; i++) {
                char a[32];

                address_of(i, a, sizeof(a));
                ck_assert_int_ge(sd_bus_call_method_async(h.bus, NULL, VRD_BUS_NAME, VRD_ROOT_PATH, VRD_MANAGER_IFACE,
                                                          "ResetDevice", on_reply, NULL, "sa{sv}", a, 0),
                                 0);
        }
        ck_assert_msg(harness_wait(&h, &all_answered, 60000), "%zu of %zu resets answered", answered, k);
        return monotonic_usec() - t;
}

START_TEST(bench) {
        uint64_t alone[rounds], together[rounds];
        UMockdevTestbed *tb = testbed_new("sets");
        char config[160], spec[32];
        FILE *f;

        harness_start_bus(&h);
        h.daemon = getenv("VRD_FAKE_DAEMON");
        snprintf(config, sizeof(config), "%s/vfio-resetd.conf", h.dir);
        f = fopen(config, "we");
        ck_assert_ptr_nonnull(f);
        fputs("[Manage]\n", f);
        for (size_t i = 0; i < sets; i++)
                fprintf(f, "Device=0000:%02zx:00.0 0000:%02zx:00.1\n", i + 1, i + 1);
        fclose(f);
        snprintf(spec, sizeof(spec), "delay_ms=%u", kernel_ms);
        setenv("VRD_FAKE_KERNEL", spec, 1);
        /* BENCH_DAEMON_WRAP: a command the daemon runs under (perf record, valgrind --tool=callgrind) */
        if (getenv("BENCH_DAEMON_WRAP")) {
                static char *wrap[16];
                char *copy = strdup(getenv("BENCH_DAEMON_WRAP")), *save = NULL;
                size_t k = 0;

                for (char *w = strtok_r(copy, " ", &save); w && k < 15; w = strtok_r(NULL, " ", &save))
                        wrap[k++] = w;
                h.wrapper = (const char *const *) wrap;
        }
        harness_start_daemon(&h, (const char *const[]) { "--uevents=udev", "--config", config, NULL });

        for (size_t r = 0; r < rounds; r++) {
                alone[r] = reset_sets(1);
                together[r] = reset_sets(sets);
                ck_assert_msg(harness_daemon_alive(&h), "the daemon died");
        }
        {
                uint64_t a = bench_median(alone, rounds), t = bench_median(together, rounds);

                printf("sets=%zu rounds=%zu kernel_ms=%u alone_ms=%.1f together_ms=%.1f ratio=%.2f\n", sets, rounds,
                       kernel_ms, a / 1e3, t / 1e3, (double) t / (double) a);
        }
        harness_stop(&h);
        g_object_unref(tb);
        status = 0;
}
END_TEST

int main(int argc, char *argv[]) {
        static const struct option options[] = {
                { "kernel-ms", required_argument, NULL, 'k' },
                {}
        };
        int c;

        while ((c = getopt_long(argc, argv, "s:r:", options, NULL)) >= 0)
                switch (c) {
                case 's':
                        sets = strtoul(optarg, NULL, 10);
                        break;
                case 'r':
                        rounds = strtoul(optarg, NULL, 10);
                        break;
                case 'k':
                        kernel_ms = (unsigned) strtoul(optarg, NULL, 10);
                        break;
                default:
                        fprintf(stderr, "usage: %s -s SETS [-r ROUNDS] [--kernel-ms MS]\n", argv[0]);
                        return 2;
                }
        if (sets == 0 || sets > 255 || rounds == 0 || rounds > 1000 || !getenv("VRD_FAKE_DAEMON")) {
                fprintf(stderr, "%s: need 1 to 255 sets, 1 to 1000 rounds, and $VRD_FAKE_DAEMON\n", argv[0]);
                return 2;
        }
        status = 1;
        return bench_run("parallel-sets", bench, &status);
}
