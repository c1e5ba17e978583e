/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The systemd quiesce adapter alone, on a private bus, against a fake systemd
 * Manager (tests/fake-systemd.py, a python3-dbusmock template) that logs its
 * calls and can be made never to answer a unit, or to answer with an error. */
#include <check.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <systemd/sd-bus.h>
#include <systemd/sd-event.h>
#include <systemd/sd-login.h>

#include "bus-harness.h"
#include "check-run.h"
#include "log.h"
#include "macro.h"
#include "quiesce.h"
#include "quiesce-harness.h"

#define NO_SUCH_UNIT "org.freedesktop.systemd1.NoSuchUnit"

/* hang.scope: FreezeUnit never answers. stuck.scope: ThawUnit never answers.
 * gone.scope: both say NoSuchUnit. Any other unit: both succeed at once. */
#define MOCK_PARAMETERS \
        "{\"hang\": {\"FreezeUnit\": [\"hang.scope\"], \"ThawUnit\": [\"stuck.scope\"]}, " \
        "\"fail\": {\"gone.scope\": [\"" NO_SUCH_UNIT "\", \"Unit gone.scope not loaded.\"]}}"

static struct harness h;
static struct harness_child mock = { .fd = -1 };
static sd_bus *bus;             /* the adapter's connection; h.bus drives the mock */

/* --- the fake systemd -------------------------------------------------------- */

static void mock_start(void) {
        harness_start_systemd(&h, &mock, MOCK_PARAMETERS);
}

static void mock_stop(void) {
        harness_child_stop(&mock);
}

static const char *mock_calls(void) {
        return harness_systemd_calls(&h);
}

/* Runs the loop until the mock has seen these calls; false on timeout. */
static bool run_until_calls(const char *want, unsigned ms) {
        for (uint64_t end = monotonic_usec() + ms * USEC_PER_MSEC; strcmp(mock_calls(), want) != 0;) {
                if (monotonic_usec() >= end)
                        return false;
                run_for(10);
        }
        return true;
}

/* --- holders and targets ----------------------------------------------------- */

static struct holder holder_in(const char *unit, pid_t pid) {
        struct holder hd = { .pid = pid, .uid = 0 };

        snprintf(hd.comm, sizeof(hd.comm), "qemu");
        snprintf(hd.unit, sizeof(hd.unit), "%s", unit);
        return hd;
}

static bool applies_to(const char *unit, bool force) {
        struct holder hd = holder_in(unit, getpid());
        const char *hint = "not set";
        bool yes = adapter->applies(adapter, &(struct quiesce_holder) { .holder = &hd, .pidfd = -1 }, force, &hint);

        ck_assert_msg(!hint, "a hint for %s: %s", unit, hint);
        return yes;
}

static struct quiesce_target *target_for(const char *unit) {
        struct holder hd = holder_in(unit, getpid());
        struct quiesce_target *t = NULL;

        ck_assert(applies_to(unit, false));
        ck_assert_int_eq(adapter->target_new(adapter, &(struct quiesce_holder) { .holder = &hd, .pidfd = -1 }, &t), 0);
        ck_assert_ptr_eq(t->adapter, adapter);
        return t;
}

/* One done(0). */
static void assert_done_ok(const struct outcome *o) {
        assert_one_done(o, 5000);
        ck_assert_msg(o->error == 0, "done(%d, %s)", o->error, o->message);
}

/* One done(-ETIMEDOUT) that names the unit, at about the deadline (being early is no failure here). */
static void assert_timed_out(const struct outcome *o, uint64_t deadline, const char *name) {
        assert_one_done(o, 10000);
        ck_assert_int_eq(o->error, -ETIMEDOUT);
        ck_assert_msg(o->at <= deadline + USEC_PER_SEC, "done came %.3f s after the deadline",
                      (double) (o->at - deadline) / USEC_PER_SEC);
        assert_has(o->message, name);
        ck_assert(!o->stopped);
}

/* Runs the loop until the adapter sees systemd come (want) or leave. */
static void wait_applies(bool want, unsigned seconds, const char *what) {
        for (uint64_t end = monotonic_usec() + seconds * USEC_PER_SEC; applies_to("vm1.scope", false) != want;) {
                ck_assert_msg(monotonic_usec() < end, "the adapter did not see systemd %s", what);
                run_for(10);
        }
}

/* --- fixtures ----------------------------------------------------------------------- */

static void setup(void) {
        harness_start_bus(&h);
        ck_assert_int_ge(sd_event_new(&event), 0);
        ck_assert_int_ge(sd_bus_open_system(&bus), 0);
        ck_assert_int_ge(sd_bus_attach_event(bus, event, SD_EVENT_PRIORITY_NORMAL), 0);
        ck_assert_int_eq(quiesce_systemd_new(bus, event, &adapter), 0);
        ck_assert_str_eq(adapter->name, "systemd");
}

/* The fake systemd on the bus, and the adapter has seen it come. */
static void setup_with_systemd(void) {
        setup();
        mock_start();
        wait_applies(true, 5, "come");
}

static void teardown(void) {
        adapter->free(adapter);
        adapter = NULL;
        bus = sd_bus_flush_close_unref(bus);
        event = sd_event_unref(event);
        mock_stop();
        harness_stop(&h);
}

/* --- tests ----------------------------------------------------------------------------- */

/* Which holders it takes, and that it follows systemd leaving and coming back. */
START_TEST(test_applies) {
        char *own = NULL;

        run_for(200);   /* GetNameOwner answered: no owner */
        ck_assert(!applies_to("vm1.scope", false));
        ck_assert(!applies_to("vm1.scope", true));

        mock_start();
        wait_applies(true, 2, "come");
        ck_assert(applies_to("vm1.scope", true));       /* Force changes nothing */
        ck_assert(applies_to("foo.service", false));
        ck_assert(applies_to("machine-qemu\\x2d1\\x2dvm1.scope", false));
        ck_assert(!applies_to("session-3.scope", false));
        ck_assert(!applies_to("session-3.scope", true));
        ck_assert(!applies_to("dbus.service", true));         /* the bus a thaw comes through */
        ck_assert(!applies_to("init.scope", false));
        ck_assert(!applies_to("user@1000.service", false));
        ck_assert(!applies_to("user@1000.service", true));
        ck_assert(!applies_to("", false));                  /* no unit */
        ck_assert(!applies_to("machine.slice", false));     /* neither service nor scope */
        ck_assert(!applies_to("foo.socket", false));
        /* The daemon's own unit, here the test's: where the test runs outside
         * any unit (a container without systemd) there is nothing to exclude. */
        if (sd_pid_get_unit(0, &own) >= 0 && own[0])
                ck_assert_msg(!applies_to(own, false), "the adapter would freeze its own unit %s", own);
        free(own);
        ck_assert_str_eq(mock_calls(), "");     /* applies asks systemd nothing */

        mock_stop();
        wait_applies(false, 2, "leave");
        mock_start();
        wait_applies(true, 2, "come back");
}
END_TEST

START_TEST(test_stop_resume) {
        struct quiesce_target *t = target_for("vm1.scope");
        struct outcome stopped = {}, resumed = {};

        ck_assert_str_eq(t->name, "unit vm1.scope");
        ck_assert(!t->stopped);
        stop(t, 5000, &stopped);
        assert_done_ok(&stopped);
        ck_assert(stopped.stopped);     /* set before done ran */
        ck_assert(t->stopped);
        assert_has(stopped.message, "unit vm1.scope");
        ck_assert_str_eq(mock_calls(), "FreezeUnit vm1.scope");

        resume(t, 5000, &resumed);
        ck_assert(!t->stopped);         /* a resume began */
        assert_done_ok(&resumed);
        assert_has(resumed.message, "unit vm1.scope");
        ck_assert_str_eq(mock_calls(), "FreezeUnit vm1.scope, ThawUnit vm1.scope");
        adapter->target_free(t);
        run_for(100);
        ck_assert_str_eq(mock_calls(), "FreezeUnit vm1.scope, ThawUnit vm1.scope");    /* nothing on free */
}
END_TEST

/* Two resets freeze one unit: the first to end leaves it frozen for the other. */
START_TEST(test_two_resets_one_unit) {
        struct quiesce_target *a = target_for("vm1.scope"), *b = target_for("vm1.scope");
        struct outcome sa = {}, sb = {}, ra = {}, rb = {};

        stop(a, 5000, &sa);
        assert_done_ok(&sa);
        stop(b, 5000, &sb);
        assert_done_ok(&sb);
        resume(a, 5000, &ra);
        assert_done_ok(&ra);
        assert_has(ra.message, "stays frozen for another reset");
        ck_assert_str_eq(mock_calls(), "FreezeUnit vm1.scope, FreezeUnit vm1.scope");
        adapter->target_free(a);        /* and freeing the first does not thaw it either */
        run_for(100);
        ck_assert_str_eq(mock_calls(), "FreezeUnit vm1.scope, FreezeUnit vm1.scope");
        resume(b, 5000, &rb);
        assert_done_ok(&rb);
        ck_assert_str_eq(mock_calls(), "FreezeUnit vm1.scope, FreezeUnit vm1.scope, ThawUnit vm1.scope");
        adapter->target_free(b);
}
END_TEST

START_TEST(test_covers) {
        struct holder a = holder_in("vm1.scope", 100), b = holder_in("vm1.scope", 101), c = holder_in("vm2.scope", 102);
        struct quiesce_target *t = NULL;

        ck_assert_int_eq(adapter->target_new(adapter, &(struct quiesce_holder) { .holder = &a, .pidfd = -1 }, &t), 0);
        ck_assert(adapter->covers(t, &(struct quiesce_holder) { .holder = &a, .pidfd = -1 }));
        ck_assert(adapter->covers(t, &(struct quiesce_holder) { .holder = &b, .pidfd = -1 }));
        ck_assert(!adapter->covers(t, &(struct quiesce_holder) { .holder = &c, .pidfd = -1 }));
        adapter->target_free(t);
}
END_TEST

/* FreezeUnit hangs: -ETIMEDOUT at the deadline, and the unit is thawed. */
START_TEST(test_freeze_hangs) {
        struct quiesce_target *t = target_for("hang.scope");
        struct outcome stopped = {}, resumed = {};

        assert_timed_out(&stopped, stop(t, 500, &stopped), "unit hang.scope");
        assert_has(stopped.message, "within 0.5");
        assert_has(stopped.message, "thawed it");
        ck_assert(!t->stopped);
        ck_assert_msg(run_until_calls("FreezeUnit hang.scope, ThawUnit hang.scope", 5000), "calls: %s",
                      mock_calls());

        /* a stop that failed is thawed again on resume: it may have half happened */
        resume(t, 5000, &resumed);
        assert_done_ok(&resumed);
        ck_assert_str_eq(mock_calls(), "FreezeUnit hang.scope, ThawUnit hang.scope, ThawUnit hang.scope");
        adapter->target_free(t);
}
END_TEST

/* ThawUnit hangs: -ETIMEDOUT at the deadline. */
START_TEST(test_thaw_hangs) {
        struct quiesce_target *t = target_for("stuck.scope");
        struct outcome stopped = {}, resumed = {};

        stop(t, 5000, &stopped);
        assert_done_ok(&stopped);
        assert_timed_out(&resumed, resume(t, 300, &resumed), "unit stuck.scope");
        assert_has(resumed.message, "did not thaw");
        ck_assert(!t->stopped);
        ck_assert_str_eq(mock_calls(), "FreezeUnit stuck.scope, ThawUnit stuck.scope");
        adapter->target_free(t);
}
END_TEST

/* systemd says no: the error reaches done, named. */
START_TEST(test_error_reply) {
        struct quiesce_target *t = target_for("gone.scope");
        struct outcome stopped = {}, resumed = {};

        stop(t, 5000, &stopped);
        assert_one_done(&stopped, 5000);
        ck_assert_int_lt(stopped.error, 0);
        ck_assert_int_eq(stopped.error, -ENOENT);      /* libsystemd maps NoSuchUnit */
        assert_has(stopped.message, "unit gone.scope");
        assert_has(stopped.message, NO_SUCH_UNIT);
        assert_has(stopped.message, "Unit gone.scope not loaded.");
        ck_assert(!t->stopped);
        ck_assert_str_eq(mock_calls(), "FreezeUnit gone.scope");

        resume(t, 5000, &resumed);
        assert_one_done(&resumed, 5000);
        ck_assert_int_lt(resumed.error, 0);
        assert_has(resumed.message, "unit gone.scope");
        assert_has(resumed.message, NO_SUCH_UNIT);
        ck_assert_str_eq(mock_calls(), "FreezeUnit gone.scope, ThawUnit gone.scope");
        adapter->target_free(t);
}
END_TEST

/* Nothing was frozen, nothing is thawed: 0 from the loop. */
START_TEST(test_resume_never_stopped) {
        struct quiesce_target *t = target_for("vm1.scope");
        struct outcome resumed = {};

        resume(t, 5000, &resumed);
        ck_assert_uint_eq(resumed.calls, 0);
        assert_done_ok(&resumed);
        assert_has(resumed.message, "unit vm1.scope");
        run_for(100);
        ck_assert_str_eq(mock_calls(), "");
        adapter->target_free(t);
}
END_TEST

/* Freed with a stop or resume under way: no done, ever, and no unit left frozen. */
START_TEST(test_free_in_flight) {
        struct quiesce_target *t = target_for("hang.scope"), *u = target_for("stuck.scope");
        struct outcome stopped = {}, stopped_u = {}, resumed_u = {};

        stop(t, 300, &stopped);
        ck_assert(run_until_calls("FreezeUnit hang.scope", 5000));
        adapter->target_free(t);
        run_for(800);   /* past the deadline */
        ck_assert_uint_eq(stopped.calls, 0);
        ck_assert_str_eq(mock_calls(), "FreezeUnit hang.scope, ThawUnit hang.scope");

        stop(u, 5000, &stopped_u);
        assert_done_ok(&stopped_u);
        resume(u, 300, &resumed_u);
        ck_assert(run_until_calls("FreezeUnit hang.scope, ThawUnit hang.scope, FreezeUnit stuck.scope, "
                                  "ThawUnit stuck.scope", 5000));
        adapter->target_free(u);        /* the thaw did not answer: it may be frozen still */
        ck_assert(run_until_calls("FreezeUnit hang.scope, ThawUnit hang.scope, FreezeUnit stuck.scope, "
                                  "ThawUnit stuck.scope, ThawUnit stuck.scope", 5000));
        run_for(800);
        ck_assert_uint_eq(resumed_u.calls, 0);
}
END_TEST

/* A resume while the freeze is under way drops the freeze, unanswered, and thaws. */
START_TEST(test_resume_during_stop) {
        struct quiesce_target *t = target_for("hang.scope");
        struct outcome stopped = {}, resumed = {};

        stop(t, 5000, &stopped);
        ck_assert_int_eq(adapter->stop(t, monotonic_usec() + 5000 * USEC_PER_MSEC, on_done, &stopped), -EBUSY);
        ck_assert(run_until_calls("FreezeUnit hang.scope", 5000));
        resume(t, 5000, &resumed);
        assert_done_ok(&resumed);
        ck_assert_str_eq(mock_calls(), "FreezeUnit hang.scope, ThawUnit hang.scope");
        ck_assert_uint_eq(stopped.calls, 0);
        adapter->target_free(t);
}
END_TEST

/* A call that cannot even be sent reports from the loop, not from stop. */
START_TEST(test_failure_reported_from_loop) {
        struct quiesce_target *t = target_for("vm1.scope");
        struct outcome stopped = {}, resumed = {};

        sd_bus_close(bus);
        stop(t, 5000, &stopped);
        ck_assert_uint_eq(stopped.calls, 0);
        assert_one_done(&stopped, 5000);
        ck_assert_int_lt(stopped.error, 0);
        assert_has(stopped.message, "unit vm1.scope");
        ck_assert(!t->stopped);

        resume(t, 5000, &resumed);      /* no FreezeUnit went out: nothing to thaw */
        ck_assert_uint_eq(resumed.calls, 0);
        assert_done_ok(&resumed);
        ck_assert_str_eq(mock_calls(), "");
        adapter->target_free(t);
}
END_TEST

int main(void) {
        Suite *s = suite_create("quiesce-systemd");
        TCase *alone = tcase_create("without systemd at first"), *with = tcase_create("with systemd");

        log_set_max_level(LOG_DEBUG);
        tcase_add_checked_fixture(alone, setup, teardown);
        tcase_set_timeout(alone, 120);
        tcase_add_test(alone, test_applies);
        tcase_add_test(alone, test_covers);
        suite_add_tcase(s, alone);

        tcase_add_checked_fixture(with, setup_with_systemd, teardown);
        tcase_set_timeout(with, 120);
        tcase_add_test(with, test_stop_resume);
        tcase_add_test(with, test_two_resets_one_unit);
        tcase_add_test(with, test_freeze_hangs);
        tcase_add_test(with, test_thaw_hangs);
        tcase_add_test(with, test_error_reply);
        tcase_add_test(with, test_resume_never_stopped);
        tcase_add_test(with, test_free_in_flight);
        tcase_add_test(with, test_resume_during_stop);
        tcase_add_test(with, test_failure_reported_from_loop);
        suite_add_tcase(s, with);

        return check_run(s);
}
