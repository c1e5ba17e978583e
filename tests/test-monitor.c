/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* vfio-resetctl monitor against the daemon with the kernel test double on a
 * private bus over the fake lab sysfs (lab-harness): the lines of a reset in
 * the daemon's order, peers and holders coming and going, --json one object
 * a line, ADDRESS showing its own set only, and a daemon that leaves and
 * comes back. */
#include <check.h>
#include <json-c/json.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "bus-names.h"
#include "check-run.h"
#include "lab-harness.h"
#include "macro.h"

static const char *ctl(void) {
        return getenv("VRD_CTL");
}

/* The monitor's next line, without its time ("12:00:01.234 "), whose format is checked. */
static char *next_line(struct harness_child *c) {
        char *line = harness_expect(c, "", 10000), *text;

        ck_assert_msg(line, "the monitor said nothing more (before: %s)", c->skipped);
        ck_assert_msg(strlen(line) > 13 && line[2] == ':' && line[5] == ':' && line[8] == '.' && line[12] == ' ',
                      "no time in '%s'", line);
        text = strdup(line + 13);
        free(line);
        return text;
}

/* text is want, where each "..." in want stands for any text. */
static bool matches(const char *text, const char *want) {
        const char *dots = strstr(want, "...");

        if (!dots)
                return strcmp(text, want) == 0;
        if (strncmp(text, want, (size_t) (dots - want)) != 0)
                return false;
        text += dots - want;
        want = dots + 3;
        if (!*want)
                return true;
        for (; *text; text++)
                if (matches(text, want))
                        return true;
        return false;
}

/* The next line is want ("..." for any text). */
static void expect_line(struct harness_child *c, const char *want) {
        char *text = next_line(c);

        ck_assert_msg(matches(text, want), "'%s', not '%s'", text, want);
        free(text);
}

/* Lines up to one that has needle (polled holders come when they come). */
static void expect_eventually(struct harness_child *c, const char *needle) {
        for (int i = 0; i < 20; i++) {
                char *text = next_line(c);
                bool found = strstr(text, needle) != NULL;

                free(text);
                if (found)
                        return;
        }
        ck_abort_msg("the monitor never said '%s'", needle);
}

static void stop_monitor(struct harness_child *c, int sig) {
        ck_assert_int_eq(kill(c->pid, sig), 0);
        ck_assert_int_eq(harness_child_wait(c, 5000), 0);
        harness_child_stop(c);
}

START_TEST(test_monitor_a_reset) {
        struct harness_child mon, holder;
        struct peer p;
        struct call call;
        char line[128];

        harness_spawn(&mon, (const char *const[]) { ctl(), "monitor", NULL });
        expect_line(&mon, "vfio-resetd is on the bus (...");
        peer_start(&p, "--take", "0000:04:00.0", NULL);
        snprintf(line, sizeof(line), "bus_0000_04: peer %s joined", p.name);
        expect_line(&mon, line);

        reset_sync(&call, "04:00.1", "");
        ck_assert_str_eq(call.result, "done");
        expect_line(&mon, "bus_0000_04: reset 1 started");
        expect_line(&mon, "bus_0000_04: quiescing: 1 peer to pause");
        snprintf(line, sizeof(line), "bus_0000_04: %s paused (1 of 1)", p.name);
        expect_line(&mon, line);
        expect_line(&mon, "bus_0000_04: resetting");
        expect_line(&mon, "bus_0000_04: resuming");
        expect_line(&mon, "bus_0000_04: idle");
        expect_line(&mon, "bus_0000_04: reset 1 finished: done after ...");

        /* No signal says so: the monitor's poll once a second does. */
        harness_spawn(&holder, (const char *const[]) { "/bin/sh", "-c", "exec sleep 30 3</dev/vfio/9", NULL });
        snprintf(line, sizeof(line), "slot_0000_03_3: pid %d (sleep, uid %d...", (int) holder.pid, (int) getuid());
        expect_line(&mon, line);
        harness_child_stop(&holder);
        expect_eventually(&mon, "no longer holds 0000:03:00.1");

        peer_stop(&p);
        snprintf(line, sizeof(line), "bus_0000_04: peer %s left", p.name);
        expect_line(&mon, line);
        stop_monitor(&mon, SIGINT);
}
END_TEST

static json_object *next_json(struct harness_child *c) {
        char *line = harness_expect(c, "", 10000);
        json_object *o;

        ck_assert_msg(line, "the monitor said nothing more (before: %s)", c->skipped);
        o = json_tokener_parse(line);
        ck_assert_msg(o && json_object_is_type(o, json_type_object), "not a JSON object: %s", line);
        free(line);
        return o;
}

static const char *member(json_object *o, const char *key) {
        json_object *v = NULL;

        ck_assert_msg(json_object_object_get_ex(o, key, &v), "no '%s' in %s", key, json_object_to_json_string(o));
        return json_object_get_string(v);
}

static const char *field(json_object *o, const char *key) {
        json_object *f = NULL;

        ck_assert(json_object_object_get_ex(o, "fields", &f));
        return member(f, key);
}

/* One object a line, of this type and set; returned for more questions. */
static json_object *expect_json(struct harness_child *c, const char *type, const char *devset) {
        json_object *o = next_json(c);
        const char *time = member(o, "time");

        ck_assert_str_eq(member(o, "type"), type);
        ck_assert_msg(streq_ptr(member(o, "devset"), devset), "devset %s, not %s", member(o, "devset"), devset);
        /* 2026-11-25T12:00:01.234567Z */
        ck_assert_msg(strlen(time) == 27 && time[4] == '-' && time[10] == 'T' && time[26] == 'Z', "time %s", time);
        return o;
}

/* --json with an ADDRESS: the set of 04:00.1 alone, every line an object. */
START_TEST(test_monitor_json_one_set) {
        struct harness_child mon, holder;
        struct call call;
        json_object *o;

        harness_spawn(&mon, (const char *const[]) { ctl(), "--json", "monitor", "0000:04:00.1", NULL });
        o = expect_json(&mon, "daemon-up", "bus_0000_04");
        ck_assert_str_eq(field(o, "address"), "0000:04:00.1");
        json_object_put(o);

        /* Another set's reset and holder first: none of it is shown. */
        harness_spawn(&holder, (const char *const[]) { "/bin/sh", "-c", "exec sleep 30 3</dev/vfio/9", NULL });
        reset_sync(&call, "05:00.0", "");
        ck_assert_str_eq(call.result, "done");
        usleep(1500 * 1000);    /* a poll of the holders passes */
        harness_child_stop(&holder);

        reset_sync(&call, "04:00.0", "");
        ck_assert_str_eq(call.result, "done");
        o = expect_json(&mon, "reset-started", "bus_0000_04");
        ck_assert_str_eq(field(o, "reset_id"), "2");    /* the daemon counts resets of every set */
        json_object_put(o);
        o = expect_json(&mon, "state", "bus_0000_04");
        ck_assert_str_eq(field(o, "state"), "quiescing");
        ck_assert_str_eq(field(o, "previous"), "idle");
        json_object_put(o);
        json_object_put(expect_json(&mon, "state", "bus_0000_04"));
        json_object_put(expect_json(&mon, "state", "bus_0000_04"));
        o = expect_json(&mon, "state", "bus_0000_04");
        ck_assert_str_eq(field(o, "state"), "idle");
        json_object_put(o);
        o = expect_json(&mon, "reset-finished", "bus_0000_04");
        ck_assert_str_eq(field(o, "reset_id"), "2");
        ck_assert_str_eq(field(o, "result"), "done");
        ck_assert_int_gt(atoi(field(o, "duration_usec")), 0);
        json_object_put(o);

        /* A holder of its own set is shown, with the fields of HolderDetails. */
        harness_spawn(&holder, (const char *const[]) { "/bin/sh", "-c", "exec sleep 30 3</dev/vfio/11", NULL });
        o = expect_json(&mon, "holder-appeared", "bus_0000_04");
        ck_assert_str_eq(field(o, "address"), "0000:04:00.1");
        ck_assert_int_eq(atoi(field(o, "pid")), holder.pid);
        ck_assert_str_eq(field(o, "command"), "sleep");
        json_object_put(o);
        harness_child_stop(&holder);
        json_object_put(expect_json(&mon, "holder-gone", "bus_0000_04"));
        stop_monitor(&mon, SIGTERM);
}
END_TEST

/* The daemon leaves: the monitor says so, waits, and follows the new one. */
START_TEST(test_monitor_daemon_restart) {
        struct harness_child mon;
        struct call call;

        harness_spawn(&mon, (const char *const[]) { ctl(), "monitor", "04:00.0", NULL });
        expect_line(&mon, "vfio-resetd is on the bus (...): 0000:04:00.0 is in dev_set bus_0000_04");
        ck_assert_int_eq(harness_terminate_daemon(&h, 5000), 0);
        expect_line(&mon, "vfio-resetd left the bus; waiting for it to come back");
        usleep(300 * 1000);
        ck_assert_ptr_null(harness_expect(&mon, "", 100));     /* nothing more meanwhile */
        harness_start_daemon(&h, (const char *const[]) { "--uevents=udev", "--config", config, NULL });
        expect_line(&mon, "vfio-resetd is on the bus (...): 0000:04:00.0 is in dev_set bus_0000_04");
        reset_sync(&call, "04:00.0", "");
        expect_line(&mon, "bus_0000_04: reset 1 started");
        expect_eventually(&mon, "bus_0000_04: reset 1 finished: done after ");
        stop_monitor(&mon, SIGINT);

        /* Started while the daemon is away: it waits for it. */
        ck_assert_int_eq(harness_terminate_daemon(&h, 5000), 0);
        harness_spawn(&mon, (const char *const[]) { ctl(), "monitor", NULL });
        expect_line(&mon, "vfio-resetd is not on the bus; waiting for it");
        harness_start_daemon(&h, (const char *const[]) { "--uevents=udev", "--config", config, NULL });
        expect_line(&mon, "vfio-resetd is on the bus (...): 9 dev_sets, 15 devices");
        stop_monitor(&mon, SIGTERM);
}
END_TEST

START_TEST(test_monitor_usage) {
        free(assert_run(2, cmdf("%s monitor 4:00.0", ctl()), "'4:00.0'"));
        free(assert_run(2, cmdf("%s monitor 04:00.0 04:00.1", ctl()), "at most one PCI address"));
        free(assert_run(2, cmdf("%s monitor --follow", ctl()), "unknown option --follow"));
}
END_TEST

int main(void) {
        Suite *s = suite_create("monitor");
        TCase *tc = tcase_create("lab");

        tcase_add_checked_fixture(tc, setup, teardown);
        tcase_set_timeout(tc, 60);
        tcase_add_test(tc, test_monitor_a_reset);
        tcase_add_test(tc, test_monitor_json_one_set);
        tcase_add_test(tc, test_monitor_daemon_restart);
        tcase_add_test(tc, test_monitor_usage);
        suite_add_tcase(s, tc);
        return check_run(s);
}
