/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The daemon's instructions per reset, counted by callgrind: the daemon with
 * the kernel test double (resets that take no time) runs under
 * valgrind --tool=callgrind (valgrind(1), callgrind in the Valgrind manual),
 * N peers (a crowd of bus connections in this process, tests/bus-harness.h)
 * watch one dev_set of the fake lab sysfs and ack every Pause. After one
 * reset to warm up (first allocations, caches), callgrind_control(1) --zero
 * sets the counters to 0, R resets are done one after the other, and
 * callgrind_control --dump writes what they cost to OUT/callgrind.out.*:
 * start-up, the peers' joining and the warm-up count nothing.
 * Prints the dump's path and the instructions per reset; the top functions
 * are for callgrind_annotate(1) (bench/reset-instructions.sh prints them).
 * $VALGRIND: the valgrind binary (its path: the harness does not search $PATH).
 * Usage: reset-instructions -o OUT [-n PEERS] [-r RESETS]  (run by bench/reset-instructions.sh) */
#include <check.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "bench-util.h"
#include "bus-harness.h"
#include "bus-names.h"
#include "macro.h"
#include "testbed.h"

static struct harness h;
static struct crowd crowd;
static bool reply_done;
static size_t n = 1, resets = 10;
static const char *out;
static int status;

static int on_reply(sd_bus_message *m, void *userdata, sd_bus_error *error) {
        const sd_bus_error *e = sd_bus_message_get_error(m);

        ck_assert_msg(!e, "ResetDevice: %s: %s", e ? e->name : "", e ? e->message : "");
        reply_done = true;
        return 0;
}

/* One ResetDevice, until its reply and every peer's Resume (the k-th) are in. */
static void reset_once(uint64_t k) {
        reply_done = false;
        ck_assert_int_ge(sd_bus_call_method_async(h.bus, NULL, VRD_BUS_NAME, VRD_ROOT_PATH, VRD_MANAGER_IFACE,
                                                  "ResetDevice", on_reply, NULL, "sa{sv}", "0000:04:00.0", 0),
                         0);
        while (!reply_done || crowd_resumed(&crowd, k) < n)
                crowd_pump(&crowd, h.bus);
}

/* callgrind_control(1) COMMAND to the daemon; the pump goes on meanwhile,
 * as the command waits for the daemon to take it (vgdb(1)). */
static void callgrind_control(const char *command) {
        char *output = NULL;
        int r = harness_run(&output, "env -u LD_PRELOAD callgrind_control %s %d", command, (int) h.daemon_pid);

        ck_assert_msg(r == 0, "callgrind_control %s: %s", command, output ?: "");
        free(output);
}

/* The totals of the newest dump in out: the instructions counted. */
static uint64_t dump_total(char **ret_path) {
        char *path = NULL;
        unsigned long long total = 0;
        char line[256];
        FILE *f;

        ck_assert_int_eq(harness_run(&path, "ls -t %s/callgrind.out.* | head -1", out), 0);
        path[strcspn(path, "\n")] = '\0';
        f = fopen(path, "re");
        ck_assert_msg(f, "no callgrind dump in %s", out);
        while (fgets(line, sizeof(line), f))
                if (sscanf(line, "totals: %llu", &total) == 1 || sscanf(line, "summary: %llu", &total) == 1)
                        break;
        fclose(f);
        *ret_path = path;
        return total;
}

START_TEST(bench) {
        UMockdevTestbed *tb = testbed_new("lab");
        char config[160], *wrap, *path;
        uint64_t total;
        FILE *f;

        harness_start_bus(&h);
        h.daemon = getenv("VRD_FAKE_DAEMON");
        snprintf(config, sizeof(config), "%s/vfio-resetd.conf", h.dir);
        f = fopen(config, "we");
        ck_assert_ptr_nonnull(f);
        fputs("[Manage]\nDevice=0000:04:00.0 0000:04:00.1\n[Reset]\nQuiesceTimeoutSec=600\n", f);
        fclose(f);
        setenv("VRD_FAKE_KERNEL", "delay_ms=0", 1);
        /* the harness runs the daemon under $VRD_DAEMON_WRAP, with its start-up's and stop's waits for a wrapped one */
        ck_assert_int_ge(asprintf(&wrap, "%s --tool=callgrind --callgrind-out-file=%s/callgrind.out.%%p "
                                  "--suppressions=%s/valgrind.supp", getenv("VALGRIND") ?: "/usr/bin/valgrind", out,
                                  getenv("TESTS_DIR") ?: "tests"), 0);
        setenv("VRD_DAEMON_WRAP", wrap, 1);
        harness_start_daemon(&h, (const char *const[]) { "--uevents=udev", "--config", config, NULL });
        crowd_join(&crowd, n, "0000:04:00.0");

        reset_once(1);
        callgrind_control("--zero");
        for (size_t r = 0; r < resets; r++)
                reset_once(r + 2);
        callgrind_control("--dump=resets");
        ck_assert_msg(harness_daemon_alive(&h), "the daemon died");
        total = dump_total(&path);
        ck_assert_uint_gt(total, 0);
        printf("peers=%zu resets=%zu instructions=%" PRIu64 " instructions_per_reset=%" PRIu64 " dump=%s\n", n,
               resets, total, total / resets, path);
        free(path);

        crowd_leave(&crowd);
        harness_stop(&h);
        free(wrap);
        g_object_unref(tb);
        status = 0;
}
END_TEST

int main(int argc, char *argv[]) {
        int c;

        while ((c = getopt(argc, argv, "o:n:r:")) >= 0)
                switch (c) {
                case 'o':
                        out = optarg;
                        break;
                case 'n':
                        n = strtoul(optarg, NULL, 10);
                        break;
                case 'r':
                        resets = strtoul(optarg, NULL, 10);
                        break;
                default:
                        fprintf(stderr, "usage: %s -o OUT [-n PEERS] [-r RESETS]\n", argv[0]);
                        return 2;
                }
        if (!out || n == 0 || resets == 0 || resets > 10000 || !getenv("VRD_FAKE_DAEMON")) {
                fprintf(stderr, "%s: need -o OUT, 1 or more peers, 1 to 10000 resets, and $VRD_FAKE_DAEMON\n",
                        argv[0]);
                return 2;
        }
        status = 1;
        return bench_run("reset-instructions", bench, &status);
}
