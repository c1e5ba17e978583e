/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The reset arbiter end to end: the daemon with the kernel test double on a
 * private bus over the fake lab sysfs, real peer processes (tests/test-peer),
 * and the state machine's every transition and refusal. */
#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include "bus-harness.h"
#include "check-run.h"
#include "bus-names.h"
#include "macro.h"
#include "testbed.h"
#include "lab-harness.h"
#include "service-manager.h"


/* --- tests ------------------------------------------------------------------------ */

START_TEST(test_two_peers_ack) {
        struct peer a, b;
        struct call c;
        char *v;

        peer_start(&a, "--take", "0000:04:00.0", NULL);
        peer_start(&b, "--take", "0000:04:00.1", NULL);
        assert_peer_says(&a, "took", "paused=0 fds=OK");
        assert_peer_says(&b, "took", "paused=0 fds=OK");
        {
                sd_bus_error e = SD_BUS_ERROR_NULL;
                int managed = 0;

                ck_assert_int_ge(sd_bus_get_property_trivial(h.bus, VRD_BUS_NAME, SET04, VRD_DEVSET_IFACE, "Managed",
                                                             &e, 'b', &managed), 0);
                ck_assert(managed);
        }

        reset_sync(&c, "04:00.1", NULL);
        ck_assert_msg(!*c.error, "%s: %s", c.error, c.message);
        ck_assert_str_eq(c.result, "done");
        assert_peer_says(&a, "pause", "pause 0000:04:00.0");       /* its own device only */
        assert_peer_says(&b, "pause", "pause 0000:04:00.1");
        assert_peer_says(&a, "resume", "done");
        assert_peer_says(&b, "resume", "done");
        ck_assert_int_eq(count_resets("hot-reset 0000:04:00.0 groups=2"), 1);  /* a hot reset with both groups */
        ck_assert_uint_eq(get_u64(SET04, "ResetCount"), 1);
        ck_assert_uint_gt(get_u64(SET04, "LastResetUSec"), 0);
        v = get_string(SET04, VRD_DEVSET_IFACE, "LastResult");
        ck_assert_str_eq(v, "done");
        free(v);
        assert_idle(SET04);
        peer_stop(&a);
        peer_stop(&b);
}
END_TEST

START_TEST(test_silent_peer_times_out) {
        struct peer a, quiet;
        struct call c;
        char pid[32];

        peer_start(&a, "--take", "0000:04:00.0", NULL);
        peer_start(&quiet, "--silent", "--take", "0000:04:00.1", NULL);
        reset_sync(&c, "0000:04:00.0", "QuiesceTimeoutUSec=t300000");
        ck_assert_str_eq(c.error, VRD_ERROR_QUIESCE_TIMEOUT);
        snprintf(pid, sizeof(pid), "pid %d", (int) quiet.pid);
        ck_assert_msg(strstr(c.message, quiet.name) && strstr(c.message, pid) && strstr(c.message, "test-peer"),
                      "message does not name the silent peer %s (%s): %s", quiet.name, pid, c.message);
        ck_assert_ptr_null(strstr(c.message, a.name));
        assert_peer_says(&a, "resume", "quiesce-timeout");
        assert_peer_says(&quiet, "resume", "quiesce-timeout");
        ck_assert_int_eq(count_resets("0000:04"), 0);               /* the kernel was never asked */
        assert_idle(SET04);
        peer_stop(&a);
        peer_stop(&quiet);
}
END_TEST

START_TEST(test_force_past_silent_peer) {
        struct peer quiet;
        struct call c;

        peer_start(&quiet, "--silent", "--take", "0000:04:00.1", NULL);
        reset_sync(&c, "0000:04:00.0", "Force=b1,QuiesceTimeoutUSec=t300000");
        ck_assert_msg(!*c.error, "%s: %s", c.error, c.message);
        ck_assert_str_eq(c.result, "done");
        assert_peer_says(&quiet, "pause", "pause");
        /* Like every Pause, the force one names the peer's devices of the set. */
        assert_peer_says(&quiet, "pause", "force 0000:04:00.1");
        assert_peer_says(&quiet, "resume", "done");
        ck_assert_int_eq(count_resets("0000:04:00.0"), 1);
        peer_stop(&quiet);
}
END_TEST

START_TEST(test_killed_peer_ends_the_wait) {
        struct peer quiet;
        struct call c;
        uint64_t t;

        peer_start(&quiet, "--silent", "--take", "0000:04:00.1", NULL);
        reset_async(&c, "0000:04:00.0", NULL);        /* 10 s deadline */
        assert_peer_says(&quiet, "pause", "pause");
        t = monotonic_usec();
        kill(quiet.pid, SIGKILL);
        ck_assert(harness_wait(&h, &c.done, 9000));             /* well before the deadline */
        ck_assert_msg(!*c.error, "%s: %s", c.error, c.message);
        ck_assert_str_eq(c.result, "done");
        ck_assert_uint_lt(monotonic_usec() - t, 9000000);
        peer_stop(&quiet);
}
END_TEST

START_TEST(test_coalescing_100_requests) {
        struct peer slow;
        struct call c[100];
        bool all = false;

        set_kernel("delay_ms=100");
        peer_start(&slow, "--ack-after", "200", "--take", "0000:04:00.0", NULL);
        for (size_t i = 0; i < 100; i++)
                reset_async(&c[i], i % 2 ? "0000:04:00.0" : "04:00.1", NULL);
        for (uint64_t end = monotonic_usec() + 30000000; !all && monotonic_usec() < end;) {
                (void) harness_wait(&h, &all, 100);
                all = true;
                for (size_t i = 0; i < 100; i++)
                        all = all && c[i].done;
        }
        ck_assert_msg(all, "not every request was answered");
        for (size_t i = 0; i < 100; i++) {
                ck_assert_msg(!*c[i].error, "request %zu: %s: %s", i, c[i].error, c[i].message);
                ck_assert_str_eq(c[i].result, "done");
        }
        ck_assert_int_le(count_resets("0000:04:00.0"), 2);
        ck_assert_int_ge(count_resets("0000:04:00.0"), 1);
        assert_idle(SET04);
        peer_stop(&slow);
}
END_TEST

/* A request that arrives while the kernel resets is answered by a reset that begins after it. */
START_TEST(test_request_during_reset_queues_one_more) {
        struct call first, second, third;

        set_kernel("delay_ms=400");
        reset_async(&first, "0000:04:00.0", NULL);
        for (int i = 0; i < 100 && count_resets("0000:04") == 0; i++) {
                char *state = get_string(SET04, VRD_DEVSET_IFACE, "State");
                bool resetting = strcmp(state, "resetting") == 0;

                free(state);
                if (resetting)
                        break;
                usleep(10000);
        }
        reset_async(&second, "0000:04:00.1", NULL);
        reset_async(&third, "0000:04:00.0", NULL);
        ck_assert(harness_wait(&h, &first.done, 10000));
        ck_assert(harness_wait(&h, &second.done, 10000));
        ck_assert(harness_wait(&h, &third.done, 10000));
        ck_assert_str_eq(first.result, "done");
        ck_assert_str_eq(second.result, "done");
        ck_assert_str_eq(third.result, "done");
        ck_assert_int_eq(count_resets("0000:04:00.0"), 2);
        ck_assert_uint_eq(get_u64(SET04, "ResetCount"), 2);
}
END_TEST

struct order {
        int started, finished_before_both_started;
};

static int on_started(sd_bus_message *m, void *userdata, sd_bus_error *error) {
        ((struct order *) userdata)->started++;
        return 0;
}

static int on_finished(sd_bus_message *m, void *userdata, sd_bus_error *error) {
        struct order *o = userdata;

        if (o->started < 2)
                o->finished_before_both_started++;
        return 0;
}

START_TEST(test_independent_sets_in_parallel) {
        struct call a, b;
        struct order o = {};
        uint64_t a_start, a_end, b_start, b_end;

        /* Long enough that two resets run one after the other cannot overlap
         * however the requests' arrival is spread, and that two running at
         * once surely do. */
        set_kernel("delay_ms=500");
        ck_assert_int_ge(sd_bus_match_signal(h.bus, NULL, VRD_BUS_NAME, VRD_ROOT_PATH, VRD_MANAGER_IFACE,
                                             "ResetStarted", on_started, &o), 0);
        ck_assert_int_ge(sd_bus_match_signal(h.bus, NULL, VRD_BUS_NAME, VRD_ROOT_PATH, VRD_MANAGER_IFACE,
                                             "ResetFinished", on_finished, &o), 0);
        reset_async(&a, "0000:04:00.0", NULL);
        reset_async(&b, "0000:01:01.0", NULL);
        ck_assert(harness_wait(&h, &a.done, 10000));
        ck_assert(harness_wait(&h, &b.done, 10000));
        ck_assert_str_eq(a.result, "done");
        ck_assert_str_eq(b.result, "done");
        /* both kernel resets were under way at once: neither finished before both started */
        ck_assert_int_eq(o.started, 2);
        ck_assert_int_eq(o.finished_before_both_started, 0);
        /* and in the kernel: each set's reset call began before the other's returned */
        reset_span("hot-reset 0000:04:00.0 ", &a_start, &a_end);
        reset_span("hot-reset 0000:01:01.0 ", &b_start, &b_end);
        ck_assert_msg(a_start < b_end && b_start < a_end,
                      "the kernel resets did not overlap: 04 set %" PRIu64 "-%" PRIu64 ", 01 set %" PRIu64 "-%" PRIu64
                      " usec", a_start, a_end, b_start, b_end);
}
END_TEST

/* The spans of every kernel reset whose line has this text, in log order; returns how many. */
static int reset_spans(const char *text, uint64_t start[], uint64_t end[], int max) {
        FILE *f = fopen(kernel_log, "re");
        char line[512];
        int n = 0;

        ck_assert_ptr_nonnull(f);
        while (n < max && fgets(line, sizeof(line), f)) {
                const char *t = strstr(line, " start_usec=");

                if (strstr(line, text) && t &&
                    sscanf(t, " start_usec=%" SCNu64 " end_usec=%" SCNu64, &start[n], &end[n]) == 2)
                        n++;
        }
        fclose(f);
        return n;
}

/* A port's hotplug driver appears while the kernel resets its bus: the set
 * becomes a slot set with the same devices. A reset of the new set must wait
 * for the old one to leave the kernel: no two resets of a device overlap. */
START_TEST(test_set_rebuilt_mid_reset_waits_for_the_old_reset) {
        struct call old, new;
        uint64_t start[4], end[4];
        char *state = NULL;
        bool rebuilt = false;

        set_kernel("delay_ms=1000");
        reset_async(&old, "0000:04:00.0", NULL);
        for (int i = 0; i < 500 && !(state && strcmp(state, "resetting") == 0); i++) {
                free(state);
                usleep(10 * 1000);
                state = get_string(SET04, VRD_DEVSET_IFACE, "State");
        }
        ck_assert_str_eq(state, "resetting");
        free(state);
        testbed_write(tb, "bus/pci/slots/7/address", "0000:04:00");
        ck_assert(umockdev_testbed_add_from_string(tb,
                "P: /devices/pci0000:00/0000:00:07.0/0000:00:07.0:pcie004\nE: SUBSYSTEM=pci_express\n"
                "L: driver=../../../../bus/pci_express/drivers/pciehp\n", NULL));
        umockdev_testbed_uevent(tb, "/sys/devices/pci0000:00/0000:00:07.0/0000:04:00.0", "change");
        for (int i = 0; i < 200 && !rebuilt; i++) {
                sd_bus_message *reply = NULL;
                const char *path = "";

                usleep(10 * 1000);
                if (sd_bus_call_method(h.bus, VRD_BUS_NAME, VRD_ROOT_PATH, VRD_MANAGER_IFACE, "GetDevSet", NULL,
                                       &reply, "s", "04:00.0") >= 0)
                        (void) sd_bus_message_read(reply, "o", &path);
                rebuilt = strstr(path, "slot_0000_04_7") != NULL;
                sd_bus_message_unref(reply);
        }
        ck_assert_msg(rebuilt, "04:00.0 never moved to a slot set");
        reset_async(&new, "0000:04:00.0", NULL);
        ck_assert(harness_wait(&h, &old.done, 10000));
        ck_assert(harness_wait(&h, &new.done, 10000));
        ck_assert_msg(!*new.error, "%s: %s", new.error, new.message);
        ck_assert_str_eq(new.result, "done");
        /* the old one ends as the kernel's did, its set gone */
        ck_assert_msg(!*old.error || strcmp(old.error, VRD_ERROR_DEVICE_GONE) == 0, "%s: %s", old.error, old.message);
        ck_assert_int_eq(reset_spans("hot-reset 0000:04:00.0 ", start, end, 4), 2);
        ck_assert_msg(end[0] <= start[1] || end[1] <= start[0],
                      "two kernel resets of 0000:04:00.0 overlapped: %" PRIu64 "-%" PRIu64 " and %" PRIu64 "-%" PRIu64,
                      start[0], end[0], start[1], end[1]);
}
END_TEST

START_TEST(test_pause_complete_only_from_its_peer) {
        struct peer quiet, other;
        struct call c;
        sd_bus_error e = SD_BUS_ERROR_NULL;
        char *line;
        unsigned long long id;
        int r;

        peer_start(&quiet, "--silent", "--take", "0000:04:00.1", NULL);
        peer_start(&other, "--silent", "--take", "0000:01:01.0", NULL);
        reset_async(&c, "0000:04:00.0", "QuiesceTimeoutUSec=t3000000");
        line = peer_expect(&quiet, "pause ", 5000);
        ck_assert_ptr_nonnull(line);
        ck_assert_int_eq(sscanf(line, "pause %llu", &id), 1);
        free(line);
        /* the test's own connection was not sent this pause */
        r = sd_bus_call_method(h.bus, VRD_BUS_NAME, VRD_ROOT_PATH, VRD_MANAGER_IFACE, "PauseComplete", &e, NULL,
                               "t", (uint64_t) id);
        ck_assert_int_lt(r, 0);
        ck_assert_msg(sd_bus_error_has_name(&e, SD_BUS_ERROR_ACCESS_DENIED), "%s", e.name);
        ck_assert_ptr_nonnull(strstr(e.message, "was not sent a pause"));
        sd_bus_error_free(&e);
        r = sd_bus_call_method(h.bus, VRD_BUS_NAME, VRD_ROOT_PATH, VRD_MANAGER_IFACE, "PauseComplete", &e, NULL,
                               "t", (uint64_t) 999999);
        ck_assert(sd_bus_error_has_name(&e, SD_BUS_ERROR_ACCESS_DENIED));
        sd_bus_error_free(&e);
        ck_assert(harness_wait(&h, &c.done, 10000));
        ck_assert_str_eq(c.error, VRD_ERROR_QUIESCE_TIMEOUT);  /* the impostor's ack did not count */
        peer_stop(&quiet);
        peer_stop(&other);
}
END_TEST

START_TEST(test_take_errors_name_the_device) {
        struct peer a, b;
        char *l;

        peer_start(&a, "--take", "0000:05:00.0", NULL);
        assert_peer_says(&a, "took", NULL);
        peer_start(&b, "--take", "0000:05:00.1", "--take", "0000:05:00.2", "--take", "0000:03:00.0",
                   "--take", "0000:06:00.1", "--take", "0000:04:00.9", NULL);
        l = peer_expect(&b, "error", 5000);
        ck_assert_msg(l && strstr(l, VRD_ERROR_BUSY) && strstr(l, "group 12") && strstr(l, a.name), "%s", l);
        free(l);
        assert_peer_says(&b, "took 0000:05:00.2", "fds=OK");           /* group 13 is free */
        l = peer_expect(&b, "error", 5000);
        ck_assert_msg(l && strstr(l, VRD_ERROR_NOT_MANAGED) && strstr(l, "0000:03:00.0"), "%s", l);
        free(l);
        l = peer_expect(&b, "error", 5000);
        ck_assert_msg(l && strstr(l, VRD_ERROR_NO_SUCH_DEVICE) && strstr(l, "bound to igb"), "%s", l);
        free(l);
        l = peer_expect(&b, "error", 5000);
        ck_assert_msg(l && strstr(l, SD_BUS_ERROR_INVALID_ARGS) && strstr(l, "0000:04:00.9"), "%s", l);
        free(l);
        peer_stop(&a);
        peer_stop(&b);
}
END_TEST

START_TEST(test_taken_during_quiesce_is_paused) {
        struct peer quiet, late;
        struct call c;

        peer_start(&quiet, "--silent", "--take", "0000:04:00.1", NULL);
        reset_async(&c, "0000:04:00.0", "QuiesceTimeoutUSec=t2000000");
        assert_peer_says(&quiet, "pause", NULL);
        peer_start(&late, "--take", "0000:04:00.0", NULL);
        assert_peer_says(&late, "took", "paused=1");
        ck_assert(harness_wait(&h, &c.done, 10000));
        peer_stop(&quiet);
        peer_stop(&late);
}
END_TEST

START_TEST(test_kernel_failures) {
        static const struct {
                const char *spec, *needle;
        } cases[] = {
                { "fail=EIO", "hot reset of bus_0000_04 failed: Input/output error (EIO)" },
                { "fail=EBUSY", "Device or resource busy (EBUSY)" },
                { "lose=0000:04:00.1", "0000:04:00.1 did not come back after the hot reset of bus_0000_04: its "
                                       "config space reads ffff:ffff" },
        };
        struct peer a;

        peer_start(&a, "--take", "0000:04:00.0", NULL);
        for (size_t i = 0; i < ELEMENTSOF(cases); i++) {
                struct call c;
                char *v;

                set_kernel(cases[i].spec);
                reset_sync(&c, "0000:04:00.0", NULL);
                ck_assert_str_eq(c.error, VRD_ERROR_RESET_FAILED);
                ck_assert_msg(strstr(c.message, cases[i].needle), "%s: %s", cases[i].spec, c.message);
                assert_peer_says(&a, "resume", "failed");
                assert_idle(SET04);
                v = get_string(SET04, VRD_DEVSET_IFACE, "LastResult");
                ck_assert_str_eq(v, "failed");
                free(v);
        }
        ck_assert_uint_eq(get_u64(SET04, "ResetCount"), 0);
        /* and it recovers */
        set_kernel("delay_ms=10");
        {
                struct call c;

                reset_sync(&c, "0000:04:00.0", NULL);
                ck_assert_str_eq(c.result, "done");
        }
        peer_stop(&a);
}
END_TEST

START_TEST(test_function_reset_for_a_lone_device) {
        struct call c;

        reset_sync(&c, "0000:00:02.0", NULL);
        ck_assert_str_eq(c.result, "done");
        ck_assert_int_eq(count_resets("function-reset 0000:00:02.0"), 1);
        /* the e1000 pair on bus 01 has no function reset: a hot reset, one group */
        reset_sync(&c, "0000:01:02.0", NULL);
        ck_assert_str_eq(c.result, "done");
        ck_assert_int_eq(count_resets("hot-reset 0000:01:01.0 groups=1"), 1);
}
END_TEST

START_TEST(test_device_removed_mid_reset) {
        struct peer a, b;
        struct call c;

        set_kernel("stall_ms=1500");
        peer_start(&a, "--take", "0000:04:00.0", NULL);
        peer_start(&b, "--take", "0000:04:00.1", NULL);
        reset_async(&c, "0000:04:00.0", NULL);
        assert_peer_says(&b, "acked", NULL);
        usleep(300000);                         /* the kernel is at work now */
        umockdev_testbed_uevent(tb, DEV_04_1, "remove");
        umockdev_testbed_remove_device(tb, DEV_04_1);
        assert_peer_says(&b, "pause", "pause 0000:04:00.1");
        assert_peer_says(&b, "pause", "gone 0000:04:00.1");
        ck_assert(harness_wait(&h, &c.done, 10000));
        ck_assert_str_eq(c.error, VRD_ERROR_DEVICE_GONE);
        ck_assert_ptr_nonnull(strstr(c.message, "0000:04:00.1 was removed during the reset of bus_0000_04"));
        assert_peer_says(&a, "resume", "device-gone");
        assert_idle(SET04);                     /* never stuck */
        /* and the set, now of one, still resets */
        set_kernel("delay_ms=10");
        reset_sync(&c, "0000:04:00.0", NULL);
        ck_assert_str_eq(c.result, "done");
        peer_stop(&a);
        peer_stop(&b);
}
END_TEST

START_TEST(test_not_owned_names_the_holder) {
        struct call c;
        pid_t holder = fork();
        char pid[32];

        if (holder == 0) {
                execl("/bin/sh", "sh", "-c", "exec sleep 60 3</dev/vfio/9", (char *) NULL);
                _exit(127);
        }
        usleep(200000);
        snprintf(pid, sizeof(pid), "pid %d (sleep, uid 0", (int) holder);
        reset_sync(&c, "0000:03:00.0", NULL);
        ck_assert_str_eq(c.error, VRD_ERROR_NOT_OWNED);
        ck_assert_msg(strstr(c.message, "0000:03:00.1 is held by") && strstr(c.message, pid), "%s", c.message);
        kill(holder, SIGKILL);
        waitpid(holder, NULL, 0);
        reset_sync(&c, "0000:03:00.0", NULL);
        ck_assert_str_eq(c.error, VRD_ERROR_NOT_MANAGED);
        ck_assert_ptr_nonnull(strstr(c.message, "does not own 0000:03:00.0"));
}
END_TEST

START_TEST(test_bad_options) {
        struct call c;

        reset_sync(&c, "0000:04:00.0", "Frobnicate=b1");
        ck_assert_str_eq(c.error, SD_BUS_ERROR_INVALID_ARGS);
        ck_assert_ptr_nonnull(strstr(c.message, "Unknown option 'Frobnicate'"));
        reset_sync(&c, "0000:04:00.0", "Force=s0");
        ck_assert_str_eq(c.error, SD_BUS_ERROR_INVALID_ARGS);
        ck_assert_ptr_nonnull(strstr(c.message, "Force must be of type b, not s"));
        reset_sync(&c, "0000:04:00.0", "QuiesceTimeoutUSec=b1");
        ck_assert_ptr_nonnull(strstr(c.message, "QuiesceTimeoutUSec must be of type t"));
        reset_sync(&c, "0000:04:00.0", "QuiesceTimeoutUSec=t0");
        ck_assert_ptr_nonnull(strstr(c.message, "out of range"));
        reset_sync(&c, "0000:04:00", NULL);
        ck_assert_str_eq(c.error, SD_BUS_ERROR_INVALID_ARGS);
        ck_assert_ptr_nonnull(strstr(c.message, "'0000:04:00'"));
        assert_idle(SET04);
        ck_assert(harness_daemon_alive(&h));
}
END_TEST

START_TEST(test_watcher_and_devset_reset) {
        struct peer w;
        sd_bus_error e = SD_BUS_ERROR_NULL;
        sd_bus_message *reply = NULL;
        const char *result;
        uint64_t duration;

        peer_start(&w, "--watch", "0000:04:00.1", NULL);
        assert_peer_says(&w, "watching", NULL);
        ck_assert_int_ge(sd_bus_call_method(h.bus, VRD_BUS_NAME, SET04, VRD_DEVSET_IFACE, "Reset", &e, &reply,
                                            "a{sv}", 0), 0);
        ck_assert_int_ge(sd_bus_message_read(reply, "st", &result, &duration), 0);
        ck_assert_str_eq(result, "done");
        assert_peer_says(&w, "pause", "pause 0000:04:00.0 0000:04:00.1");    /* a watcher hears of all */
        assert_peer_says(&w, "resume", "done");
        sd_bus_message_unref(reply);
        peer_stop(&w);
}
END_TEST

START_TEST(test_bus_responsive_during_reset) {
        struct call c;
        char *state;
        uint64_t t;

        set_kernel("stall_ms=1500");
        reset_async(&c, "0000:04:00.0", NULL);
        do {
                (void) harness_wait(&h, &c.done, 20);
                state = get_string(SET04, VRD_DEVSET_IFACE, "State");
        } while (strcmp(state, "resetting") != 0 && (free(state), true));
        free(state);
        /* the kernel is stalled in the worker; the bus answers meanwhile */
        t = monotonic_usec();
        free(get_string(VRD_DEVICE_PATH_PREFIX "/pci_0000_00_02_0", VRD_DEVICE_IFACE, "Address"));
        ck_assert_uint_lt(monotonic_usec() - t, 1000000);
        state = get_string(SET04, VRD_DEVSET_IFACE, "State");
        ck_assert_str_eq(state, "resetting");
        free(state);
        ck_assert(harness_wait(&h, &c.done, 10000));
        ck_assert_str_eq(c.result, "done");
}
END_TEST

START_TEST(test_departed_peer_loses_its_claims) {
        struct peer a, b;

        peer_start(&a, "--take", "0000:05:00.0", NULL);
        assert_peer_says(&a, "took", NULL);
        peer_stop(&a);                          /* SIGKILL: it never released */
        usleep(200000);
        peer_start(&b, "--take", "0000:05:00.1", NULL);       /* same IOMMU group 12 */
        assert_peer_says(&b, "took", "fds=OK");
        peer_stop(&b);
}
END_TEST

struct states {
        char seen[256];
};

static int on_props(sd_bus_message *m, void *userdata, sd_bus_error *error) {
        struct states *st = userdata;
        const char *iface, *name, *value;

        if (sd_bus_message_read(m, "s", &iface) < 0 || sd_bus_message_enter_container(m, 'a', "{sv}") < 0)
                return 0;
        while (sd_bus_message_enter_container(m, 'e', "sv") > 0) {
                if (sd_bus_message_read(m, "s", &name) < 0)
                        return 0;
                if (strcmp(name, "State") == 0 && sd_bus_message_read(m, "v", "s", &value) >= 0) {
                        strcat(st->seen, value);
                        strcat(st->seen, " ");
                } else
                        (void) sd_bus_message_skip(m, "v");
                (void) sd_bus_message_exit_container(m);
        }
        return 0;
}

START_TEST(test_states_and_signals) {
        struct states st = {};
        struct order o = {};
        struct peer a;
        struct call c;

        ck_assert_int_ge(sd_bus_match_signal(h.bus, NULL, VRD_BUS_NAME, SET04, "org.freedesktop.DBus.Properties",
                                             "PropertiesChanged", on_props, &st), 0);
        ck_assert_int_ge(sd_bus_match_signal(h.bus, NULL, VRD_BUS_NAME, VRD_ROOT_PATH, VRD_MANAGER_IFACE,
                                             "ResetStarted", on_started, &o), 0);
        peer_start(&a, "--ack-after", "100", "--take", "0000:04:00.0", NULL);
        reset_sync(&c, "0000:04:00.0", NULL);
        ck_assert_str_eq(c.result, "done");
        (void) harness_wait(&h, &(bool) { false }, 300);
        ck_assert_str_eq(st.seen, "quiescing resetting resuming idle ");
        ck_assert_int_eq(o.started, 1);
        peer_stop(&a);
}
END_TEST

/* ResetDevice or TakeDevice as uid 65534 in a child: "done", "took", or the error name and message. */
static char *call_as_nobody(const char *method, const char *address) {
        int pipefd[2];
        char buf[1024] = "";
        ssize_t n;
        pid_t pid;

        ck_assert_int_eq(pipe(pipefd), 0);
        pid = fork();
        ck_assert_int_ge(pid, 0);
        if (pid == 0) {
                sd_bus_error e = SD_BUS_ERROR_NULL;
                sd_bus_message *reply = NULL;
                sd_bus *b = NULL;
                int r;

                close(pipefd[0]);
                if (setresgid(65534, 65534, 65534) < 0 || setresuid(65534, 65534, 65534) < 0)
                        _exit(1);
                if (sd_bus_open_system(&b) < 0)
                        _exit(1);
                if (strcmp(method, "ResetDevice") == 0)
                        r = sd_bus_call_method(b, VRD_BUS_NAME, VRD_ROOT_PATH, VRD_MANAGER_IFACE, method, &e, &reply,
                                               "sa{sv}", address, 0);
                else if (strcmp(method, "ResetDevice+Borrow") == 0)
                        r = sd_bus_call_method(b, VRD_BUS_NAME, VRD_ROOT_PATH, VRD_MANAGER_IFACE, "ResetDevice", &e,
                                               &reply, "sa{sv}", address, 1, "Borrow", "b", 1);
                else
                        r = sd_bus_call_method(b, VRD_BUS_NAME, VRD_ROOT_PATH, VRD_MANAGER_IFACE, method, &e, &reply,
                                               "s", address);
                dprintf(pipefd[1], "%s %s", r >= 0 ? "ok" : e.name, r >= 0 ? "" : e.message);
                _exit(0);
        }
        close(pipefd[1]);
        n = read(pipefd[0], buf, sizeof(buf) - 1);
        buf[n > 0 ? n : 0] = '\0';
        close(pipefd[0]);
        waitpid(pid, NULL, 0);
        return strdup(buf);
}

START_TEST(test_polkit_decides_for_others) {
        sd_bus_error e = SD_BUS_ERROR_NULL;
        char *out;

        ck_assert_int_eq(chmod(h.dir, 0755), 0);       /* nobody must reach the bus socket */
        harness_start_polkit(&h);
        out = call_as_nobody("ResetDevice", "0000:04:00.0");
        ck_assert_msg(strstr(out, SD_BUS_ERROR_ACCESS_DENIED) && strstr(out, "org.vfioresetd1.reset"), "%s", out);
        free(out);
        out = call_as_nobody("TakeDevice", "0000:04:00.0");
        ck_assert_msg(strstr(out, SD_BUS_ERROR_ACCESS_DENIED) && strstr(out, "org.vfioresetd1.take"), "%s", out);
        free(out);
        ck_assert_int_eq(count_resets("0000:04"), 0);

        ck_assert_int_ge(sd_bus_call_method(h.bus, POLKIT_NAME, POLKIT_PATH, POLKIT_MOCK_IFACE, "SetAllowed", &e,
                                            NULL, "as", 1, "org.vfioresetd1.reset"), 0);
        out = call_as_nobody("ResetDevice", "0000:04:00.0");
        ck_assert_msg(strncmp(out, "ok", 2) == 0, "%s", out);
        free(out);
        ck_assert_int_eq(count_resets("0000:04:00.0"), 1);
        out = call_as_nobody("TakeDevice", "0000:04:00.0");    /* still not allowed to take */
        ck_assert_msg(strstr(out, SD_BUS_ERROR_ACCESS_DENIED), "%s", out);
        free(out);
        /* Borrow is a right of its own, asked for after reset */
        out = call_as_nobody("ResetDevice+Borrow", "0000:04:00.0");
        ck_assert_msg(strstr(out, SD_BUS_ERROR_ACCESS_DENIED) && strstr(out, "org.vfioresetd1.borrow"), "%s", out);
        free(out);
        ck_assert_int_eq(count_resets("0000:04:00.0"), 1);
        ck_assert_int_ge(sd_bus_call_method(h.bus, POLKIT_NAME, POLKIT_PATH, POLKIT_MOCK_IFACE, "SetAllowed", &e,
                                            NULL, "as", 2, "org.vfioresetd1.reset", "org.vfioresetd1.borrow"), 0);
        out = call_as_nobody("ResetDevice+Borrow", "0000:04:00.0");
        ck_assert_msg(strncmp(out, "ok", 2) == 0, "%s", out);
        free(out);
        ck_assert_int_eq(count_resets("0000:04:00.0"), 2);
        /* reading stays open to all */
        out = call_as_nobody("GetDevice", "0000:04:00.0");
        ck_assert_msg(strncmp(out, "ok", 2) == 0, "%s", out);
        free(out);
}
END_TEST

START_TEST(test_udev_tag_opts_in) {
        struct call c;
        int managed = 0;

        ck_assert_int_ge(sd_bus_get_property_trivial(h.bus, VRD_BUS_NAME, VRD_DEVSET_PATH_PREFIX "/slot_0000_02_1",
                                                     VRD_DEVSET_IFACE, "Managed", NULL, 'b', &managed), 0);
        ck_assert(managed);
        reset_sync(&c, "0000:02:00.1", NULL);
        ck_assert_str_eq(c.result, "done");
        ck_assert_int_eq(count_resets("hot-reset 0000:02:00.0 groups=1"), 1);      /* one group, a slot reset */
}
END_TEST


/* How many scans the daemon's log reports so far ("Topology: ..."). */
static unsigned scans_logged(void) {
        _cleanup_free_ char *log = NULL;
        unsigned n = 0;

        ck_assert_int_eq(harness_run(&log, "cat %s/daemon.log", h.dir), 0);
        for (const char *p = log; (p = strstr(p, "Topology: ")); p++)
                n++;
        return n;
}

static int devset_managed(const char *id) {
        _cleanup_free_ char *path = NULL;
        int managed = -1;

        ck_assert_int_ge(asprintf(&path, VRD_DEVSET_PATH_PREFIX "/%s", id), 0);
        ck_assert_int_ge(sd_bus_get_property_trivial(h.bus, VRD_BUS_NAME, path, VRD_DEVSET_IFACE, "Managed", NULL,
                                                     'b', &managed), 0);
        return managed;
}

/* The unit's daemon follows the kernel's uevents (udevd's do not reach its
 * network namespace), which come before udevd has run its rules: a tag a
 * rule gives must still be seen, once udevd's queue runs empty. The daemon
 * runs with a /run of its own where the test plays udevd's part:
 * /run/udev/control (udevd runs) and /run/udev/queue (events in hand),
 * reached through /proc/PID/root. */
START_TEST(test_kernel_uevents_wait_for_udevd) {
        static const char *const private_run[] = {
                "/usr/bin/unshare", "--mount", "/bin/sh", "-c",
                "mount -t tmpfs tmpfs /run && mkdir /run/udev && : >/run/udev/control && : >/run/udev/queue && "
                "exec \"$0\" \"$@\"", NULL };
        const char *const fns[] = { "/sys/devices/pci0000:00/0000:00:04.0/0000:02:00.0",
                                    "/sys/devices/pci0000:00/0000:00:04.0/0000:02:00.1" };
        char queue[64];
        unsigned scans;

        ck_assert_int_eq(harness_terminate_daemon(&h, 5000), 0);
        for (size_t i = 0; i < ELEMENTSOF(fns); i++)
                umockdev_testbed_set_property(tb, fns[i], "CURRENT_TAGS", ":other:");
        h.wrapper = private_run;
        harness_start_daemon(&h, (const char *const[]) { "--uevents=kernel", "--config", config, NULL });
        ck_assert_int_eq(devset_managed("slot_0000_02_1"), 0);
        free(assert_run(0, cmdf("cat %s/daemon.log", h.dir), "Following kernel uevents for PCI devices, and udevd's queue"));

        /* the kernel's event, and the daemon's scan of it, before udevd's rules ran */
        scans = scans_logged();
        umockdev_testbed_uevent(tb, fns[0], "change");
        for (uint64_t end = monotonic_usec() + 5 * USEC_PER_SEC; scans_logged() == scans;) {
                ck_assert_msg(monotonic_usec() < end, "no scan after the kernel's uevent");
                usleep(20 * 1000);
        }
        /* udevd's rules tag the set: nothing tells the daemon yet */
        for (size_t i = 0; i < ELEMENTSOF(fns); i++)
                umockdev_testbed_set_property(tb, fns[i], "CURRENT_TAGS", ":vfio-resetd:");
        usleep(300 * 1000);
        ck_assert_int_eq(devset_managed("slot_0000_02_1"), 0);
        /* udevd's queue runs empty: the daemon scans again and sees the tags */
        snprintf(queue, sizeof(queue), "/proc/%d/root/run/udev/queue", (int) h.daemon_pid);
        ck_assert_int_eq(unlink(queue), 0);
        for (uint64_t end = monotonic_usec() + 5 * USEC_PER_SEC; devset_managed("slot_0000_02_1") != 1;) {
                ck_assert_msg(monotonic_usec() < end, "the tagged set is not managed after udevd's queue ran empty");
                usleep(20 * 1000);
        }
        /* and only after a kernel uevent: udevd's queue running empty alone starts no scan */
        scans = scans_logged();
        ck_assert_int_eq(close(open(queue, O_CREAT | O_WRONLY | O_CLOEXEC, 0644)), 0);
        ck_assert_int_eq(unlink(queue), 0);
        usleep(300 * 1000);
        ck_assert_uint_eq(scans_logged(), scans);
}
END_TEST


/* --- stopping ------------------------------------------------------------------------- */

/* The daemon again, as systemd starts it: $NOTIFY_SOCKET read all along. */
static void restart_daemon_with_notify(struct service_manager *sm) {
        ck_assert_int_eq(harness_terminate_daemon(&h, 5000), 0);
        service_manager_start(sm, h.dir, 64);
        service_manager_start_daemon(sm, &h, (const char *const[]) { "--uevents=udev", "--config", config, NULL });
}

START_TEST(test_stop_mid_quiesce) {
        struct service_manager sm;
        struct peer a, quiet;
        struct call c;
        char *said;

        restart_daemon_with_notify(&sm);
        peer_start(&a, "--take", "0000:04:00.0", NULL);
        peer_start(&quiet, "--silent", "--take", "0000:04:00.1", NULL);
        reset_async(&c, "0000:04:00.0", NULL);         /* a 10 s deadline: the stop comes first */
        assert_peer_says(&quiet, "pause", "pause");
        assert_peer_says(&a, "acked", NULL);
        kill(h.daemon_pid, SIGTERM);
        ck_assert(harness_wait(&h, &c.done, 5000));
        ck_assert_str_eq(c.error, VRD_ERROR_SHUTTING_DOWN);
        ck_assert_msg(strstr(c.message, "stopping"), "%s", c.message);
        assert_peer_says(&a, "resume", "daemon-stopping");
        assert_peer_says(&quiet, "resume", "daemon-stopping");
        ck_assert_int_eq(harness_terminate_daemon(&h, 5000), 0);        /* exited 0 by itself */
        said = service_manager_said(&sm);
        ck_assert_msg(strstr(said, "READY=1") && strstr(said, "STOPPING=1"), "told systemd: %s", said);
        free(said);
        ck_assert_int_eq(count_resets("0000:04"), 0);
        service_manager_stop(&sm);
        peer_stop(&a);
        peer_stop(&quiet);
}
END_TEST

START_TEST(test_stop_lets_the_kernel_finish) {
        struct service_manager sm;
        struct peer a;
        struct call c;

        restart_daemon_with_notify(&sm);
        set_kernel("delay_ms=800");
        peer_start(&a, "--take", "0000:04:00.0", NULL);
        reset_async(&c, "0000:04:00.0", NULL);
        assert_peer_says(&a, "acked", NULL);
        usleep(200 * 1000);                     /* the kernel is at work */
        kill(h.daemon_pid, SIGTERM);
        ck_assert(harness_wait(&h, &c.done, 5000));
        ck_assert_msg(!*c.error, "%s: %s", c.error, c.message);
        ck_assert_str_eq(c.result, "done");
        assert_peer_says(&a, "resume", "done");
        ck_assert_int_eq(count_resets("0000:04:00.0"), 1);
        ck_assert_int_eq(harness_terminate_daemon(&h, 5000), 0);
        service_manager_stop(&sm);
        peer_stop(&a);
}
END_TEST

/* --- the watchdog ---------------------------------------------------------------------- */

/* The times (CLOCK_MONOTONIC usec) at which the service manager read a
 * WATCHDOG=1, after since; returns how many, at most max kept. */
static size_t watchdog_pings(struct service_manager *sm, uint64_t since, uint64_t *at, size_t max) {
        _cleanup_free_ char *said = service_manager_said(sm);
        size_t n = 0;

        for (const char *l = said; l && *l && n < max; l = strchr(l, '\n') ? strchr(l, '\n') + 1 : "") {
                const char *end = strchr(l, '\n') ?: l + strlen(l), *t = strstr(l, " at=");
                uint64_t when;

                if (!t || t > end || strncmp(l, "WATCHDOG=1 ", 11) != 0)
                        continue;
                when = strtoull(t + 4, NULL, 10);
                if (when > since)
                        at[n++] = when;
        }
        return n;
}

/* Under WatchdogSec= systemd kills the service when no WATCHDOG=1 comes for
 * WATCHDOG_USEC: the event loop sends one every half to three quarters of it,
 * and none while it does not run (a stuck loop; here stopped with SIGSTOP). */
START_TEST(test_watchdog_keepalive) {
        const uint64_t period = 2 * USEC_PER_SEC;
        struct service_manager sm;
        uint64_t at[64], start, up, stopped;
        size_t n;

        ck_assert_int_eq(harness_terminate_daemon(&h, 5000), 0);
        service_manager_start(&sm, h.dir, 64);
        setenv("WATCHDOG_USEC", "2000000", 1);
        start = monotonic_usec();
        service_manager_start_daemon(&sm, &h, (const char *const[]) { "--uevents=udev", "--config", config, NULL });
        up = monotonic_usec();                  /* it owns its bus name: started */
        unsetenv("WATCHDOG_USEC");

        /* Started, the loop sends one every 1 to 1.5 s: four in 7 s, none more than
         * WATCHDOG_USEC after the start or the one before. The start itself is not
         * timed: under valgrind it can outlast WATCHDOG_USEC (2.6 s on a busy machine). */
        while (monotonic_usec() < up + 7 * USEC_PER_SEC)
                usleep(10 * 1000);
        /* The first came as the loop was set up, before the daemon started: within
         * WATCHDOG_USEC of the fork, ten times that under valgrind, whose own start
         * took 2.1 s once. */
        ck_assert_msg(watchdog_pings(&sm, start, at, 1) == 1 &&
                      at[0] - start < harness_daemon_ms(period / 1000) * 1000ULL,
                      "no WATCHDOG=1 within %u ms of the fork", harness_daemon_ms(period / 1000));
        n = watchdog_pings(&sm, up, at, ELEMENTSOF(at));
        ck_assert_msg(n >= 4, "%zu WATCHDOG=1 in the 7 s after the start with WATCHDOG_USEC=2 s", n);
        ck_assert_msg(at[0] - up < period, "the first WATCHDOG=1 after the start came after %" PRIu64 " ms",
                      (at[0] - up) / 1000);
        for (size_t i = 1; i < n; i++)
                ck_assert_msg(at[i] - at[i - 1] < period, "%" PRIu64 " ms between WATCHDOG=1 %zu and %zu",
                              (at[i] - at[i - 1]) / 1000, i - 1, i);

        /* a loop that does not run keeps silent (what it sent before it stopped read by then) */
        ck_assert_int_eq(kill(h.daemon_pid, SIGSTOP), 0);
        for (uint64_t end = monotonic_usec() + 5 * USEC_PER_SEC; lab_state_of(h.daemon_pid) != 'T';) {
                ck_assert_msg(monotonic_usec() < end, "the daemon did not stop");
                usleep(10 * 1000);
        }
        usleep(200 * 1000);
        stopped = monotonic_usec();
        usleep(period * 3 / 2);
        n = watchdog_pings(&sm, stopped, at, ELEMENTSOF(at));
        ck_assert_msg(n == 0, "%zu WATCHDOG=1 from a stopped daemon", n);

        /* and speaks again once it runs */
        ck_assert_int_eq(kill(h.daemon_pid, SIGCONT), 0);
        usleep(period);
        n = watchdog_pings(&sm, stopped, at, ELEMENTSOF(at));
        ck_assert_msg(n >= 1, "no WATCHDOG=1 within WATCHDOG_USEC after SIGCONT");
        ck_assert(harness_name_has_owner(&h, VRD_BUS_NAME));
        ck_assert_int_eq(harness_terminate_daemon(&h, 5000), 0);
        service_manager_stop(&sm);
}
END_TEST

/* --- many peers ------------------------------------------------------------------------ */

/* Past dbus-daemon's 512 match rules per connection: each peer once cost the
 * daemon one, and the 513th killed it. */
/* More peers than dbus-daemon's default of 512 match rules per connection: a daemon that
 * adds a match per peer dies at the 513th. A thousand where the fd limit has room. */
START_TEST(test_a_thousand_peers_on_a_default_bus) {
        size_t n = crowd_room() < 1000 ? crowd_room() : 1000;
        struct crowd crowd;
        struct call c;

        ck_assert_msg(n >= 600, "the fd hard limit leaves room for %zu peers; this test needs 600", n);
        crowd_join(&crowd, n, "0000:04:00.0");
        ck_assert(harness_daemon_alive(&h));
        reset_async(&c, "0000:04:00.0", NULL);
        for (uint64_t end = monotonic_usec() + 60 * USEC_PER_SEC;
             (!c.done || crowd_resumed(&crowd, 1) < crowd.n) && monotonic_usec() < end;)
                crowd_pump(&crowd, h.bus);
        ck_assert_msg(c.done, "ResetDevice got no answer");
        ck_assert_msg(!*c.error, "%s: %s", c.error, c.message);
        ck_assert_uint_eq(crowd_paused(&crowd), crowd.n);
        ck_assert_uint_eq(crowd_resumed(&crowd, 1), crowd.n);
        ck_assert_int_eq(count_resets("0000:04:00.0"), 1);
        crowd_leave(&crowd);
        ck_assert(harness_daemon_alive(&h));
}
END_TEST

static Suite *suite(void) {
        Suite *s = suite_create("arbiter");
        TCase *tc = tcase_create("fake-kernel");

        tcase_add_checked_fixture(tc, setup, teardown);
        tcase_set_timeout(tc, 90);
        tcase_add_test(tc, test_two_peers_ack);
        tcase_add_test(tc, test_silent_peer_times_out);
        tcase_add_test(tc, test_force_past_silent_peer);
        tcase_add_test(tc, test_killed_peer_ends_the_wait);
        tcase_add_test(tc, test_coalescing_100_requests);
        tcase_add_test(tc, test_request_during_reset_queues_one_more);
        tcase_add_test(tc, test_independent_sets_in_parallel);
        tcase_add_test(tc, test_pause_complete_only_from_its_peer);
        tcase_add_test(tc, test_take_errors_name_the_device);
        tcase_add_test(tc, test_taken_during_quiesce_is_paused);
        tcase_add_test(tc, test_kernel_failures);
        tcase_add_test(tc, test_function_reset_for_a_lone_device);
        tcase_add_test(tc, test_device_removed_mid_reset);
        tcase_add_test(tc, test_not_owned_names_the_holder);
        tcase_add_test(tc, test_bad_options);
        tcase_add_test(tc, test_watcher_and_devset_reset);
        tcase_add_test(tc, test_bus_responsive_during_reset);
        tcase_add_test(tc, test_departed_peer_loses_its_claims);
        tcase_add_test(tc, test_states_and_signals);
        tcase_add_test(tc, test_polkit_decides_for_others);
        tcase_add_test(tc, test_udev_tag_opts_in);
        tcase_add_test(tc, test_kernel_uevents_wait_for_udevd);
        tcase_add_test(tc, test_set_rebuilt_mid_reset_waits_for_the_old_reset);
        tcase_add_test(tc, test_stop_mid_quiesce);
        tcase_add_test(tc, test_stop_lets_the_kernel_finish);
        tcase_add_test(tc, test_watchdog_keepalive);
        tcase_add_test(tc, test_a_thousand_peers_on_a_default_bus);
        suite_add_tcase(s, tc);
        return s;
}

int main(void) {
        return check_run(suite());
}
