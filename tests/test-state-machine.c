/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The arbiter alone, without a bus: the manager over a fake sysfs and the
 * kernel test double, a recorder in place of the bus face. Every event is
 * driven in every state; the next state and what goes out are asserted. Any
 * impossible transition aborts (VFIO_RESETD_ABORT_ON_BUG). Allocations made
 * by the daemon's code can be failed on purpose (the --wrap'ed allocators
 * below), to prove that failures leave nothing half done. The journal
 * fields of its log lines are checked against a fake journal ("journal"). */
#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <dirent.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <signal.h>
#include <systemd/sd-journal.h>
#include <unistd.h>

#include "kernel-fake.h"
#include "log.h"
#include "macro.h"
#include "strv.h"
#include "manager.h"
#include "testbed.h"

/* --- failing allocations ------------------------------------------------------------- */

void *__real_malloc(size_t n);
void *__real_calloc(size_t n, size_t size);
void *__real_realloc(void *p, size_t n);
void *__wrap_malloc(size_t n);
void *__wrap_calloc(size_t n, size_t size);
void *__wrap_realloc(void *p, size_t n);

static long fail_countdown;     /* > 0: the n-th allocation from now fails */
static bool fail_all;           /* every allocation fails */
static long n_failed;

static bool should_fail(void) {
        if (fail_all || (fail_countdown > 0 && --fail_countdown == 0)) {
                n_failed++;
                return true;
        }
        return false;
}

void *__wrap_malloc(size_t n) {
        return should_fail() ? NULL : __real_malloc(n);
}

void *__wrap_calloc(size_t n, size_t size) {
        return should_fail() ? NULL : __real_calloc(n, size);
}

void *__wrap_realloc(void *p, size_t n) {
        return should_fail() ? NULL : __real_realloc(p, n);
}

/* --- the recorder: what the arbiter says ---------------------------------------------- */

static struct {
        char **lines;
        unsigned stopped;
} rec;

static void record(const char *fmt, ...) _printf_(1, 2);
static void record(const char *fmt, ...) {
        long countdown = fail_countdown;      /* the recorder's own allocations never fail */
        bool all = fail_all;
        char *line;
        va_list ap;

        fail_countdown = 0, fail_all = false;
        va_start(ap, fmt);
        if (vasprintf(&line, fmt, ap) < 0 || strv_extend(&rec.lines, line) < 0)
                abort();        /* not ck_assert: Check allocates, and this may run while allocations fail */
        va_end(ap);
        free(line);
        fail_countdown = countdown, fail_all = all;
}

static void on_pause(void *userdata, const char *peer, const char *set_path, uint64_t reset_id, const char *type,
                     uint64_t deadline_usec, char **addresses) {
        char all[256] = "";

        for (char **a = addresses; a && *a; a++)
                snprintf(all + strlen(all), sizeof(all) - strlen(all), " %s", *a);
        record("pause %s %" PRIu64 " %s%s", peer, reset_id, type, all);
}

static void on_resume(void *userdata, const char *peer, const char *set_path, uint64_t reset_id,
                      const char *result) {
        record("resume %s %" PRIu64 " %s", peer, reset_id, result);
}

static void on_started(void *userdata, const char *set_path, uint64_t reset_id) {
        record("started %s %" PRIu64, strrchr(set_path, '/') + 1, reset_id);
}

static void on_finished(void *userdata, const struct reset_outcome *o) {
        record("finished %s %" PRIu64 " %s", o->set_id, o->reset_id, reset_result_to_string(o->result));
}

static void on_reply(void *userdata, void *request, const struct reset_outcome *o) {
        record("reply %s %s%s%s", (const char *) request, reset_result_to_string(o->result), o->message ? ": " : "",
               o->message ?: "");
}

static void on_changed(void *userdata, struct dev_set *s, const char *const *properties) {
        for (const char *const *p = properties; *p; p++)
                if (strcmp(*p, "State") == 0)
                        record("state %s %s", s->id, dev_set_state_to_string(arbiter_state(s)));
}

static const struct arbiter_ops recorder = {
        .pause = on_pause,
        .resume = on_resume,
        .started = on_started,
        .finished = on_finished,
        .reply = on_reply,
        .changed = on_changed,
};

static void on_stopped(void *userdata) {
        rec.stopped++;
}

/* The recorded line that starts with prefix, or NULL. */
static const char *said(const char *prefix) {
        for (char **l = rec.lines; l && *l; l++)
                if (strncmp(*l, prefix, strlen(prefix)) == 0)
                        return *l;
        return NULL;
}

static unsigned count(const char *prefix) {
        unsigned n = 0;

        for (char **l = rec.lines; l && *l; l++)
                n += strncmp(*l, prefix, strlen(prefix)) == 0;
        return n;
}

#define assert_said(prefix) ck_assert_msg(said(prefix), "never said '%s'", prefix)
#define assert_not_said(prefix) ck_assert_msg(!said(prefix), "said '%s'", said(prefix))

static void forget(void) {
        strv_free(rec.lines);
        rec.lines = NULL;
}

/* --- the daemon without its bus -------------------------------------------------------- */

static UMockdevTestbed *tb;
static struct manager *m;
static char dir[64];
static char kernel_log[128];

#define SET04 "bus_0000_04"

static void set_kernel(const char *spec) {
        char buf[256];

        snprintf(buf, sizeof(buf), "%s,log=%s", spec, kernel_log);
        ck_assert_int_ge(kernel_fake_configure(buf), 0);
}

static void setup(void) {
        char config[160];
        FILE *f;

        snprintf(dir, sizeof(dir), "/tmp/test-state-machine.XXXXXX");
        ck_assert_ptr_nonnull(mkdtemp(dir));
        snprintf(kernel_log, sizeof(kernel_log), "%s/kernel.log", dir);
        snprintf(config, sizeof(config), "%s/vfio-resetd.conf", dir);
        f = fopen(config, "we");
        ck_assert_ptr_nonnull(f);
        /* no libvirt adapter: its thread would allocate while allocations are made to fail */
        fputs("[Manage]\nDevice=0000:04:00.0 0000:04:00.1 00:02.0\n[Reset]\nQuiesceTimeoutSec=10\n"
              "[Libvirt]\nURI=none\n", f);
        fclose(f);
        tb = testbed_new("lab");
        set_kernel("delay_ms=20");
        ck_assert_int_ge(manager_new(kernel_fake_ops(), &m), 0);
        m->config_path = strdup(config);
        m->uevent_source = UEVENT_SOURCE_KERNEL;
        m->arbiter.ops = &recorder;
        ck_assert_int_ge(manager_start(m), 0);
        ck_assert(dev_set_is_managed(manager_find_dev_set(m, SET04)));
}

static void teardown(void) {
        fail_all = false, fail_countdown = 0;
        char path[160];

        m = manager_free(m);
        forget();
        g_object_unref(tb);
        snprintf(path, sizeof(path), "%s/kernel.log", dir);
        (void) unlink(path);
        snprintf(path, sizeof(path), "%s/vfio-resetd.conf", dir);
        (void) unlink(path);
        (void) rmdir(dir);
}

static struct dev_set *set04(void) {
        return manager_find_dev_set(m, SET04);
}

static struct pci_address address(const char *s) {
        struct pci_address a;

        ck_assert_int_ge(pci_address_parse(s, &a, NULL, 0), 0);
        return a;
}

/* A peer (as if it called TakeDevice, or Watch with take=false). */
static struct peer *peer(const char *name, const char *device, bool take) {
        struct pci_address a = address(device);
        struct peer *p;

        ck_assert_int_ge(peer_get(&m->peers, name, &p), 0);
        p->pid = getpid();
        if (take)
                ck_assert_int_ge(peer_add_claim(&m->peers, p, &a), 0);
        else
                ck_assert_int_ge(peer_add_watch(&m->peers, p, &a), 0);
        return p;
}

static struct reset_options options(uint64_t timeout_ms, bool force) {
        return (struct reset_options) { .quiesce_timeout_usec = timeout_ms * 1000, .force = force };
}

static void request(struct dev_set *s, const char *name, uint64_t timeout_ms, bool force) {
        struct reset_options o = options(timeout_ms, force);

        ck_assert_int_eq(arbiter_request(&m->arbiter, s, (void *) name, &o), 0);
}

static enum dev_set_state state(void) {
        return arbiter_state(set04());
}

/* Turn the loop until prefix was said (or 5 s passed). */
static void run_until_said(const char *prefix) {
        uint64_t end = monotonic_usec() + 5 * USEC_PER_SEC;

        while (!said(prefix) && monotonic_usec() < end)
                ck_assert_int_ge(sd_event_run(m->event, 10 * USEC_PER_MSEC), 0);
        assert_said(prefix);
}

/* Turn the loop one iteration at a time until the set is in this state. */
static void run_until_state(struct dev_set *s, enum dev_set_state want) {
        uint64_t end = monotonic_usec() + 5 * USEC_PER_SEC;

        while (arbiter_state(s) != want && monotonic_usec() < end)
                ck_assert_int_ge(sd_event_run(m->event, 1 * USEC_PER_MSEC), 0);
        ck_assert_str_eq(dev_set_state_to_string(arbiter_state(s)), dev_set_state_to_string(want));
}

static void run_for(uint64_t ms) {
        uint64_t end = monotonic_usec() + ms * USEC_PER_MSEC;

        while (monotonic_usec() < end)
                ck_assert_int_ge(sd_event_run(m->event, 5 * USEC_PER_MSEC), 0);
}

static unsigned kernel_resets(void) {
        char line[256];
        unsigned n = 0;
        FILE *f = fopen(kernel_log, "re");

        while (f && fgets(line, sizeof(line), f))
                n += strncmp(line, "hot-reset", 9) == 0 || strncmp(line, "function-reset", 14) == 0;
        if (f)
                fclose(f);
        return n;
}

/* --- the table ------------------------------------------------------------------------ */

START_TEST(test_transition_table) {
        static const char *const allowed[] = {
                "idle>quiescing", "quiescing>resetting", "quiescing>resuming", "resetting>resuming",
                "resuming>idle", NULL,
        };

        for (int from = 0; from < _DEV_SET_STATE_MAX; from++)
                for (int to = 0; to < _DEV_SET_STATE_MAX; to++) {
                        char pair[64];

                        snprintf(pair, sizeof(pair), "%s>%s", dev_set_state_to_string(from),
                                 dev_set_state_to_string(to));
                        ck_assert_msg(dev_set_transition_allowed(from, to) == strv_contains((char **) allowed, pair),
                                      "%s", pair);
                }
        ck_assert(!dev_set_transition_allowed(-1, DEV_SET_IDLE));
        ck_assert(!dev_set_transition_allowed(DEV_SET_IDLE, _DEV_SET_STATE_MAX));
}
END_TEST

/* --- idle --------------------------------------------------------------------------- */

START_TEST(test_idle) {
        struct peer *a = peer(":1.1", "0000:04:00.0", true);

        /* An ack of nothing, a departure, a stop: nothing moves. */
        ck_assert_int_eq(arbiter_pause_complete(&m->arbiter, ":1.1", 1), -EACCES);
        ck_assert_int_eq(arbiter_pause_complete(&m->arbiter, ":1.1", 0), -EACCES);
        arbiter_peer_left(&m->arbiter, ":1.9");
        ck_assert_int_eq(state(), DEV_SET_IDLE);
        ck_assert(!arbiter_holds_peers_paused(set04()));
        ck_assert_ptr_null(rec.lines);

        /* A member goes: its peer hears "gone" and loses it. */
        arbiter_device_gone(&m->arbiter, manager_find_device(m, &a->claims[0]));
        assert_said("pause :1.1 0 gone 0000:04:00.0");
        ck_assert_ptr_null(peer_find(&m->peers, ":1.1"));
        ck_assert_int_eq(state(), DEV_SET_IDLE);

        arbiter_stop(&m->arbiter, on_stopped, NULL);
        ck_assert_uint_eq(rec.stopped, 1);
        ck_assert_int_eq(arbiter_request(&m->arbiter, set04(), (void *) "late",
                                         &(struct reset_options) { .quiesce_timeout_usec = 1000 }), -ESHUTDOWN);
        ck_assert_uint_eq(m->arbiter.bugs, 0);
}
END_TEST

START_TEST(test_idle_request_without_peers_goes_straight_to_the_kernel) {
        request(set04(), "r1", 1000, false);
        ck_assert_int_eq(state(), DEV_SET_RESETTING);
        assert_said("started bus_0000_04 1");
        assert_said("state bus_0000_04 quiescing");
        assert_said("state bus_0000_04 resetting");
        run_until_said("reply r1 done");
        ck_assert_int_eq(state(), DEV_SET_IDLE);
        assert_said("state bus_0000_04 resuming");
        assert_said("finished bus_0000_04 1 done");
        ck_assert_uint_eq(set04()->reset_count, 1);
        ck_assert_str_eq(set04()->last_result, "done");
        ck_assert_uint_eq(kernel_resets(), 1);
}
END_TEST

/* --- quiescing ---------------------------------------------------------------------- */

START_TEST(test_quiescing_acks_and_joins) {
        _cleanup_strv_free_ char **paused = NULL;

        peer(":1.1", "0000:04:00.0", true);
        peer(":1.2", "0000:04:00.1", true);
        peer(":1.3", "0000:04:00.1", false);    /* watches: hears of every member */
        request(set04(), "r1", 10000, false);
        ck_assert_int_eq(state(), DEV_SET_QUIESCING);
        assert_said("pause :1.1 1 pause 0000:04:00.0");
        assert_said("pause :1.2 1 pause 0000:04:00.1");
        assert_said("pause :1.3 1 pause 0000:04:00.0 0000:04:00.1");
        ck_assert(arbiter_holds_peers_paused(set04()));

        request(set04(), "r2", 10000, false);   /* joins: no second pause */
        ck_assert_uint_eq(count("pause "), 3);
        ck_assert_uint_eq(count("started "), 1);

        ck_assert_int_eq(arbiter_pause_complete(&m->arbiter, ":1.1", 1), 0);
        ck_assert_int_eq(arbiter_pause_complete(&m->arbiter, ":1.1", 1), 0);   /* twice is once */
        ck_assert_int_eq(arbiter_pause_complete(&m->arbiter, ":1.9", 1), -EACCES);     /* never sent it */
        ck_assert_int_eq(arbiter_pause_complete(&m->arbiter, ":1.2", 2), -EACCES);     /* another id */
        ck_assert_int_eq(arbiter_paused_peers(set04(), &paused), 0);
        ck_assert_uint_eq(strv_length(paused), 1);
        ck_assert_str_eq(paused[0], ":1.1");
        ck_assert_int_eq(state(), DEV_SET_QUIESCING);

        /* One leaves the bus (its claims went before the arbiter hears): not waited for. */
        peer_registry_name_lost(&m->peers, ":1.3");
        arbiter_peer_left(&m->arbiter, ":1.3");
        ck_assert_int_eq(state(), DEV_SET_QUIESCING);
        /* One is still in the set: its departure from another set changes nothing. */
        arbiter_peer_left(&m->arbiter, ":1.2");
        ck_assert_int_eq(state(), DEV_SET_QUIESCING);
        ck_assert_int_eq(arbiter_pause_complete(&m->arbiter, ":1.2", 1), 0);
        ck_assert_int_eq(state(), DEV_SET_RESETTING);

        run_until_said("reply r2 done");
        assert_said("reply r1 done");
        assert_said("resume :1.1 1 done");
        assert_said("resume :1.2 1 done");
        assert_not_said("resume :1.3");         /* gone: nobody to tell */
        ck_assert_uint_eq(kernel_resets(), 1);
        ck_assert_uint_eq(m->arbiter.bugs, 0);
}
END_TEST

START_TEST(test_quiescing_deadline) {
        char pid[64];

        peer(":1.1", "0000:04:00.0", true);
        peer(":1.2", "0000:04:00.1", true);
        request(set04(), "r1", 100, false);
        ck_assert_int_eq(arbiter_pause_complete(&m->arbiter, ":1.1", 1), 0);
        run_until_said("resume :1.2 1 quiesce-timeout");
        ck_assert_int_eq(state(), DEV_SET_RESUMING);
        ck_assert_ptr_null(said("reply r1"));
        run_until_said("reply r1");
        /* Named from what the registry knows: the arbiter has no bus to ask. */
        snprintf(pid, sizeof(pid), ":1.2 (pid %d, ", (int) getpid());
        ck_assert_ptr_nonnull(strstr(said("reply r1"), "quiesce-timeout: peers did not acknowledge the pause"));
        ck_assert_ptr_nonnull(strstr(said("reply r1"), pid));
        ck_assert_ptr_null(strstr(said("reply r1"), ":1.1"));
        assert_said("resume :1.1 1 quiesce-timeout");
        ck_assert_int_eq(state(), DEV_SET_IDLE);
        ck_assert_uint_eq(kernel_resets(), 0);
        ck_assert_str_eq(set04()->last_result, "quiesce-timeout");
        ck_assert_uint_eq(set04()->reset_count, 0);
}
END_TEST

START_TEST(test_quiescing_deadline_with_force) {
        peer(":1.1", "0000:04:00.0", true);
        peer(":1.2", "0000:04:00.1", true);
        request(set04(), "r1", 100, false);
        request(set04(), "r2", 100, true);      /* a joiner's Force carries over */
        ck_assert_int_eq(arbiter_pause_complete(&m->arbiter, ":1.1", 1), 0);
        run_until_said("pause :1.2 1 force");
        /* Like every Pause, the force one carries the peer's devices of the set. */
        assert_said("pause :1.2 1 force 0000:04:00.1");
        assert_not_said("pause :1.1 1 force");
        ck_assert_int_eq(state(), DEV_SET_RESETTING);
        run_until_said("reply r1 done");
        assert_said("reply r2 done");
}
END_TEST

START_TEST(test_quiescing_device_gone) {
        struct peer *a = peer(":1.1", "0000:04:00.0", true);

        peer(":1.2", "0000:04:00.1", true);
        request(set04(), "r1", 10000, false);
        arbiter_device_gone(&m->arbiter, manager_find_device(m, &a->claims[0]));
        assert_said("pause :1.1 1 gone 0000:04:00.0");
        ck_assert_int_eq(state(), DEV_SET_RESUMING);
        assert_said("resume :1.2 1 device-gone");
        assert_not_said("resume :1.1");         /* it lost the device and left the registry */
        run_until_said("reply r1 device-gone: 0000:04:00.0 was removed during the reset of bus_0000_04");
        ck_assert_int_eq(state(), DEV_SET_IDLE);
        ck_assert_uint_eq(kernel_resets(), 0);
}
END_TEST

START_TEST(test_quiescing_stop) {
        peer(":1.1", "0000:04:00.0", true);
        request(set04(), "r1", 10000, false);
        arbiter_stop(&m->arbiter, on_stopped, NULL);
        assert_said("resume :1.1 1 daemon-stopping");
        ck_assert_uint_eq(rec.stopped, 0);
        run_until_said("reply r1 daemon-stopping");
        ck_assert_uint_eq(rec.stopped, 1);
        ck_assert_int_eq(state(), DEV_SET_IDLE);
        ck_assert_uint_eq(kernel_resets(), 0);
}
END_TEST

START_TEST(test_quiescing_set_gone) {
        struct dev_set *s = set04();

        peer(":1.1", "0000:04:00.0", true);
        request(s, "r1", 10000, false);
        arbiter_dev_set_gone(&m->arbiter, s);
        ck_assert_ptr_null(s->reset);
        assert_said("resume :1.1 1 device-gone");
        run_until_said("reply r1 device-gone: dev_set bus_0000_04 changed during its reset");
        ck_assert_uint_eq(m->arbiter.bugs, 0);
}
END_TEST

/* --- resetting ---------------------------------------------------------------------- */

START_TEST(test_resetting_queues_one_follow_up) {
        set_kernel("delay_ms=200");
        peer(":1.1", "0000:04:00.0", true);
        request(set04(), "r1", 10000, false);
        ck_assert_int_eq(arbiter_pause_complete(&m->arbiter, ":1.1", 1), 0);
        ck_assert_int_eq(state(), DEV_SET_RESETTING);
        ck_assert(arbiter_holds_peers_paused(set04()));
        request(set04(), "r2", 10000, false);
        request(set04(), "r3", 10000, false);
        ck_assert_int_eq(arbiter_pause_complete(&m->arbiter, ":1.1", 1), 0);   /* late and twice: harmless */
        arbiter_peer_left(&m->arbiter, ":1.1");
        ck_assert_int_eq(state(), DEV_SET_RESETTING);
        run_until_said("reply r1 done");
        ck_assert_ptr_null(said("reply r2"));
        run_until_said("pause :1.1 2 pause");   /* the follow-up began after r2 and r3 arrived */
        ck_assert_int_eq(arbiter_pause_complete(&m->arbiter, ":1.1", 2), 0);
        run_until_said("reply r3 done");
        assert_said("reply r2 done");
        ck_assert_uint_eq(count("started "), 2);
        ck_assert_uint_eq(kernel_resets(), 2);
        ck_assert_uint_eq(set04()->reset_count, 2);
}
END_TEST

START_TEST(test_resetting_failures) {
        set_kernel("fail=EIO");
        request(set04(), "r1", 1000, false);
        run_until_said("reply r1");
        ck_assert_str_eq(said("reply r1"), "reply r1 failed: hot reset of bus_0000_04 failed: "
                                           "Input/output error (EIO)");
        run_until_state(set04(), DEV_SET_IDLE);
        ck_assert_str_eq(set04()->last_result, "failed");

        set_kernel("lose=0000:04:00.1");
        request(set04(), "r2", 1000, false);
        run_until_said("reply r2");
        ck_assert_ptr_nonnull(strstr(said("reply r2"), "failed: 0000:04:00.1 did not come back after the hot reset"));
        ck_assert_uint_eq(set04()->reset_count, 0);
}
END_TEST

START_TEST(test_resetting_device_gone) {
        struct pci_address a = address("0000:04:00.1");

        set_kernel("delay_ms=200");
        peer(":1.1", "0000:04:00.1", true);
        request(set04(), "r1", 1000, false);
        ck_assert_int_eq(arbiter_pause_complete(&m->arbiter, ":1.1", 1), 0);
        ck_assert_int_eq(state(), DEV_SET_RESETTING);
        request(set04(), "r2", 1000, false);    /* the queued one is refused at once */
        arbiter_device_gone(&m->arbiter, manager_find_device(m, &a));
        assert_said("pause :1.1 1 gone 0000:04:00.1");
        assert_said("reply r2 device-gone: a device of the set was removed");
        ck_assert_int_eq(state(), DEV_SET_RESETTING);   /* the kernel is at work: it finishes */
        run_until_said("reply r1 device-gone: 0000:04:00.1 was removed during the reset of bus_0000_04");
}
END_TEST

START_TEST(test_resetting_stop_waits_for_the_kernel) {
        set_kernel("delay_ms=200");
        peer(":1.1", "0000:04:00.0", true);
        request(set04(), "r1", 1000, false);
        ck_assert_int_eq(arbiter_pause_complete(&m->arbiter, ":1.1", 1), 0);
        request(set04(), "r2", 1000, false);
        arbiter_stop(&m->arbiter, on_stopped, NULL);
        assert_said("reply r2 daemon-stopping");        /* queued: never begins */
        ck_assert_uint_eq(rec.stopped, 0);
        run_until_said("reply r1 done");
        assert_said("resume :1.1 1 done");
        run_for(20);
        ck_assert_uint_eq(rec.stopped, 1);
        ck_assert_uint_eq(kernel_resets(), 1);
}
END_TEST

START_TEST(test_resetting_stop_gives_up_on_a_stalled_kernel) {
        uint64_t t;

        set_kernel("stall_ms=3000");
        m->arbiter.stop_timeout_usec = 200 * USEC_PER_MSEC;
        peer(":1.1", "0000:04:00.0", true);
        request(set04(), "r1", 1000, false);
        ck_assert_int_eq(arbiter_pause_complete(&m->arbiter, ":1.1", 1), 0);
        t = monotonic_usec();
        arbiter_stop(&m->arbiter, on_stopped, NULL);
        run_until_said("reply r1 daemon-stopping");
        ck_assert_ptr_nonnull(strstr(said("reply r1"), "did not return within 0.2 s"));
        assert_said("resume :1.1 1 daemon-stopping");
        run_for(20);
        ck_assert_uint_eq(rec.stopped, 1);
        ck_assert_uint_lt(monotonic_usec() - t, 2 * USEC_PER_SEC);     /* not the 3 s of the stall */
}
END_TEST

/* The set is rebuilt while the kernel resets it: the reset ends without it,
 * and nothing of it needs memory (it once needed a realloc, whose failure
 * left the reset writing into the freed set). */
START_TEST(test_resetting_set_gone_needs_no_memory) {
        struct dev_set *s = set04(), saved;

        set_kernel("delay_ms=200");
        request(s, "r1", 1000, false);
        ck_assert_int_eq(state(), DEV_SET_RESETTING);
        fail_all = true;
        arbiter_dev_set_gone(&m->arbiter, s);
        fail_all = false;
        ck_assert_ptr_null(s->reset);
        saved = *s;
        memset(s, 0x6b, sizeof(*s));            /* as good as freed: nothing may write here now */
        run_until_said("reply r1 done");
        assert_said("finished bus_0000_04 1 done");
        ck_assert_uint_eq(m->arbiter.bugs, 0);
        for (size_t i = 0; i < sizeof(*s); i++)
                ck_assert_uint_eq(((unsigned char *) s)[i], 0x6b);
        *s = saved;
}
END_TEST

/* The same devices under a new set id while the old reset is in the kernel:
 * the new reset waits, so no two kernel resets of one device overlap. */
START_TEST(test_orphan_blocks_a_reset_of_its_devices) {
        struct dev_set *old = set04(), *new;
        struct dev_set_update u = { .n_members = old->n_members };

        set_kernel("delay_ms=300");
        request(old, "r1", 1000, false);
        ck_assert_int_eq(arbiter_state(old), DEV_SET_RESETTING);
        arbiter_dev_set_gone(&m->arbiter, old);

        ck_assert_int_ge(dev_set_new(m, "slot_0000_04_7", DEV_SET_SLOT, &new), 0);
        u.members = calloc(old->n_members, sizeof(*u.members));
        u.foreign = calloc(1, sizeof(*u.foreign));
        memcpy(u.members, old->members, sizeof(*u.members) * old->n_members);
        {
                bool a, b;

                dev_set_update_apply(new, &u, &a, &b);
        }
        request(new, "r2", 1000, false);
        ck_assert_int_eq(arbiter_state(new), DEV_SET_QUIESCING);
        run_for(100);
        ck_assert_int_eq(arbiter_state(new), DEV_SET_QUIESCING);        /* still waits */
        ck_assert_uint_eq(kernel_resets(), 0);
        run_until_said("reply r1 done");
        run_until_said("reply r2 done");
        ck_assert_uint_eq(kernel_resets(), 2);
        /* new is not the manager's: take it apart by hand. */
        for (size_t i = 0; i < new->n_members; i++)
                new->members[i]->dev_set = old;
        dev_set_free(new);
}
END_TEST

/* --- resuming ----------------------------------------------------------------------- */

START_TEST(test_resuming) {
        peer(":1.1", "0000:04:00.0", true);
        request(set04(), "r1", 1000, false);
        ck_assert_int_eq(arbiter_pause_complete(&m->arbiter, ":1.1", 1), 0);
        run_until_state(set04(), DEV_SET_RESUMING);
        assert_said("resume :1.1 1 done");
        ck_assert_ptr_null(said("reply r1"));           /* answered when it is over */
        ck_assert(!arbiter_holds_peers_paused(set04()));        /* a peer joining now is not paused */
        ck_assert_int_eq(arbiter_peer_joined(&m->arbiter, set04(), ":1.7"), 0);
        ck_assert_int_eq(arbiter_pause_complete(&m->arbiter, ":1.1", 1), 0);   /* late: harmless */
        request(set04(), "r2", 1000, false);    /* queued */
        arbiter_stop(&m->arbiter, on_stopped, NULL);
        assert_said("reply r2 daemon-stopping");
        run_until_said("reply r1 done");
        run_for(20);
        ck_assert_uint_eq(rec.stopped, 1);
        ck_assert_uint_eq(count("started "), 1);
        assert_not_said("resume :1.7");
}
END_TEST

START_TEST(test_joined_mid_reset_hears_the_resume) {
        request(set04(), "r1", 1000, false);
        ck_assert_int_eq(state(), DEV_SET_RESETTING);
        peer(":1.5", "0000:04:00.1", true);
        ck_assert_int_eq(arbiter_peer_joined(&m->arbiter, set04(), ":1.5"), 0);
        ck_assert_int_eq(arbiter_peer_joined(&m->arbiter, set04(), ":1.5"), 0);        /* once */
        run_until_said("reply r1 done");
        ck_assert_uint_eq(count("resume :1.5 1 done"), 1);
}
END_TEST

/* --- scale -------------------------------------------------------------------------- */

START_TEST(test_a_thousand_peers) {
        char name[32];

        for (int i = 0; i < 1000; i++) {
                snprintf(name, sizeof(name), ":1.%d", 100 + i);
                peer(name, i % 2 ? "0000:04:00.1" : "0000:04:00.0", i % 3 != 0);
        }
        request(set04(), "r1", 10000, false);
        ck_assert_uint_eq(count("pause "), 1000);
        for (int i = 999; i >= 0; i--) {
                snprintf(name, sizeof(name), ":1.%d", 100 + i);
                ck_assert_int_eq(state(), DEV_SET_QUIESCING);
                ck_assert_int_eq(arbiter_pause_complete(&m->arbiter, name, 1), 0);
        }
        ck_assert_int_eq(state(), DEV_SET_RESETTING);
        run_until_said("reply r1 done");
        ck_assert_uint_eq(count("resume "), 1000);
}
END_TEST

/* --- the refresh ----------------------------------------------------------------------- */

static void assert_whole(void) {
        for (size_t i = 0; i < m->n_devices; i++) {
                struct device *d = m->devices[i];
                bool listed = false;

                ck_assert_msg(d->dev_set, "%s has no dev_set", d->path);
                for (size_t k = 0; k < m->n_dev_sets; k++)
                        listed = listed || m->dev_sets[k] == d->dev_set;
                ck_assert_msg(listed, "%s is in a dev_set the manager does not list", d->path);
        }
        for (size_t k = 0; k < m->n_dev_sets; k++)
                for (size_t i = 0; i < m->dev_sets[k]->n_members; i++)
                        ck_assert_ptr_eq(m->dev_sets[k]->members[i]->dev_set, m->dev_sets[k]);
}

/* Fail the first, second, ... allocation of a refresh that adds a device:
 * each failed refresh leaves everything as it was. */
START_TEST(test_refresh_completes_or_changes_nothing) {
        size_t n_devices = m->n_devices, n_sets = m->n_dev_sets;
        long attempts;
        int r = -ENOMEM;

        ck_assert(umockdev_testbed_add_from_string(tb,
                "P: /devices/pci0000:00/0000:00:07.0/0000:04:00.2\nE: SUBSYSTEM=pci\nA: vendor=0x8086\n"
                "A: device=0x10c9\nA: class=0x020000\nA: reset_method=flr\n"
                "L: driver=../../../../bus/pci/drivers/vfio-pci\n"
                "L: iommu_group=../../../../kernel/iommu_groups/21\n", NULL));
        for (attempts = 1; attempts < 10000 && r < 0; attempts++) {
                n_failed = 0;
                fail_countdown = attempts;
                r = manager_refresh(m);
                fail_countdown = 0;
                assert_whole();
                if (r < 0) {
                        ck_assert_uint_eq(n_failed, 1);
                        ck_assert_uint_eq(m->n_devices, n_devices);
                        ck_assert_uint_eq(m->n_dev_sets, n_sets);
                        ck_assert_uint_eq(set04()->n_members, 2);
                }
        }
        ck_assert_int_ge(r, 0);
        ck_assert_uint_gt(attempts, 10);        /* it did fail at many points on the way */
        ck_assert_uint_eq(m->n_devices, n_devices + 1);
        ck_assert_uint_eq(set04()->n_members, 3);
}
END_TEST

/* --- borrowing: holders stopped by a scripted adapter ---------------------------------- */

/* An adapter whose stops the test answers by hand (script_report), and whose
 * resumes answer 0 on the next loop turn unless resume_error says otherwise. */
struct script_target {
        struct quiesce_target t;
        pid_t pid;
        quiesce_done_t done;
        void *userdata;
        sd_event_source *report;
        int error;
};

static struct {
        bool applies;
        int stop_error;                 /* stop() fails at once with it */
        int resume_error;
        struct script_target *targets[8];
        size_t n_targets;
} script;

static bool script_applies(const struct quiesce_adapter *a, const struct quiesce_holder *h, bool force,
                           const char **ret_hint) {
        *ret_hint = script.applies ? NULL : "the script's blessing";
        return script.applies;
}

static bool script_covers(const struct quiesce_target *t, const struct quiesce_holder *h) {
        return ((const struct script_target *) t)->pid == h->holder->pid;
}

static int script_target_new(const struct quiesce_adapter *a, const struct quiesce_holder *h,
                             struct quiesce_target **ret) {
        struct script_target *t = calloc(1, sizeof(*t));

        if (!t)
                return -ENOMEM;
        t->t.adapter = a;
        t->pid = h->holder->pid;
        snprintf(t->t.name, sizeof(t->t.name), "pid %d", (int) t->pid);
        /* no ck_assert here: Check allocates in it, and this may run while allocations fail */
        if (script.n_targets >= ELEMENTSOF(script.targets))
                abort();
        script.targets[script.n_targets++] = t;
        *ret = &t->t;
        return 0;
}

static int on_script_report(sd_event_source *s, void *userdata) {
        struct script_target *t = userdata;

        t->report = sd_event_source_disable_unref(t->report);
        t->done(t->userdata, &t->t, t->error, t->error ? "the script says no" : NULL);
        return 0;
}

static int script_stop(struct quiesce_target *qt, uint64_t deadline, quiesce_done_t done, void *userdata) {
        struct script_target *t = (struct script_target *) qt;

        record("stop %s", qt->name);
        if (script.stop_error)
                return script.stop_error;
        t->done = done, t->userdata = userdata;
        return 0;       /* the test answers: script_report() */
}

static dev_t holder_rdev[2];    /* the device numbers of the holders' groups */

/* How many fds of this process are a holder's group: borrowed ones (not the
 * O_PATH lookups of the double's worker, which tells groups by their node). */
static unsigned borrowed_open(void) {
        DIR *d = opendir("/proc/self/fd");
        struct dirent *de;
        unsigned n = 0;

        while (d && (de = readdir(d))) {
                int fd = atoi(de->d_name), fl = fcntl(fd, F_GETFL);
                struct stat st;

                if (de->d_name[0] != '.' && fl >= 0 && !(fl & O_PATH) && fstat(fd, &st) >= 0 && S_ISCHR(st.st_mode) &&
                    (st.st_rdev == holder_rdev[0] || st.st_rdev == holder_rdev[1]))
                        n++;
        }
        if (d)
                closedir(d);
        return n;
}

static int script_resume(struct quiesce_target *qt, uint64_t deadline, quiesce_done_t done, void *userdata) {
        struct script_target *t = (struct script_target *) qt;

        /* Nothing borrowed may stay open once anyone runs again. */
        record("resume-holder %s borrowed-open=%u", qt->name, borrowed_open());
        qt->stopped = false;
        t->report = sd_event_source_disable_unref(t->report);
        t->done = done, t->userdata = userdata, t->error = script.resume_error;
        return done ? sd_event_add_defer(m->event, &t->report, on_script_report, t) : 0;
}

static void script_target_free(struct quiesce_target *qt) {
        struct script_target *t = (struct script_target *) qt;

        for (size_t i = 0; i < script.n_targets; i++)
                if (script.targets[i] == t)
                        script.targets[i] = NULL;
        sd_event_source_disable_unref(t->report);
        free(t);
}

static void script_free(struct quiesce_adapter *a) {
}

static struct quiesce_adapter script_adapter = {
        .name = "script",
        .applies = script_applies,
        .covers = script_covers,
        .target_new = script_target_new,
        .stop = script_stop,
        .resume = script_resume,
        .target_free = script_target_free,
        .free = script_free,
};
static struct quiesce_adapter *script_adapters[] = { &script_adapter };

/* The target that stops pid, of the reset under way. */
static struct script_target *script_target(pid_t pid) {
        for (size_t i = script.n_targets; i > 0; i--)
                if (script.targets[i - 1] && script.targets[i - 1]->pid == pid)
                        return script.targets[i - 1];
        ck_abort_msg("no target for pid %d", (int) pid);
        return NULL;
}

static void script_report(pid_t pid, int error) {
        struct script_target *t = script_target(pid);

        t->error = error;
        if (!error)
                t->t.stopped = true;
        ck_assert_int_ge(sd_event_add_defer(m->event, &t->report, on_script_report, t), 0);
}

#define SET03 "slot_0000_03_3"

static pid_t holders[2];

/* Two processes that hold groups 8 and 9 of set 03 (unmanaged here); the
 * arbiter stops them through the script. */
static void setup_borrow(void) {
        setup();
        script = (typeof(script)) { .applies = true };
        m->arbiter.adapters = script_adapters;
        m->arbiter.n_adapters = 1;
        for (int i = 0; i < 2; i++) {
                char cmd[64];

                holders[i] = fork();
                ck_assert_int_ge(holders[i], 0);
                if (holders[i] == 0) {
                        snprintf(cmd, sizeof(cmd), "exec sleep 60 3</dev/vfio/%d", 8 + i);
                        execl("/bin/sh", "sh", "-c", cmd, (char *) NULL);
                        _exit(127);
                }
        }
        for (int k = 0; k < 200; k++) {
                const struct device_holder *h;
                size_t n = 0, found = 0;

                m->holders_stamp = 0;   /* a fresh scan */
                ck_assert_int_ge(manager_get_holders(m, &h, &n), 0);
                /* both past their exec: a process in execve(2) cannot be looked into for a moment */
                for (size_t i = 0; i < n; i++)
                        found += (h[i].process.pid == holders[0] || h[i].process.pid == holders[1]) &&
                                 strcmp(h[i].process.comm, "sleep") == 0;
                if (found == 2) {
                        for (int i = 0; i < 2; i++) {
                                char path[64];
                                struct stat st;

                                snprintf(path, sizeof(path), "/proc/%d/fd/3", (int) holders[i]);
                                ck_assert_int_eq(stat(path, &st), 0);
                                holder_rdev[i] = st.st_rdev;
                        }
                        return;
                }
                usleep(10000);
        }
        ck_abort_msg("the holders did not start");
}

static void teardown_borrow(void) {
        teardown();
        for (int i = 0; i < 2; i++) {
                kill(holders[i], SIGKILL);
                waitpid(holders[i], NULL, 0);
        }
}

static struct dev_set *set03(void) {
        return manager_find_dev_set(m, SET03);
}

static int try_request_borrow(const char *name, uint64_t timeout_ms) {
        struct reset_options o = { .quiesce_timeout_usec = timeout_ms * 1000, .borrow = true };

        m->holders_stamp = 0;
        return arbiter_request(&m->arbiter, set03(), (void *) name, &o);
}

static void request_borrow(const char *name, uint64_t timeout_ms) {
        ck_assert_int_eq(try_request_borrow(name, timeout_ms), 0);
}

static void assert_order(const char *first, const char *then) {
        ssize_t a = -1, b = -1;

        for (size_t i = 0; rec.lines && rec.lines[i]; i++) {
                if (a < 0 && strncmp(rec.lines[i], first, strlen(first)) == 0)
                        a = (ssize_t) i;
                if (b < 0 && strncmp(rec.lines[i], then, strlen(then)) == 0)
                        b = (ssize_t) i;
        }
        ck_assert_msg(a >= 0 && b > a, "'%s' (line %zd) not before '%s' (line %zd)", first, a, then, b);
}

START_TEST(test_borrow_stops_then_resumes_in_reverse) {
        char s0[32], s1[32], r0[48], r1[48];

        snprintf(s0, sizeof(s0), "stop pid %d", (int) holders[0]);
        snprintf(s1, sizeof(s1), "stop pid %d", (int) holders[1]);
        snprintf(r0, sizeof(r0), "resume-holder pid %d", (int) holders[0]);
        snprintf(r1, sizeof(r1), "resume-holder pid %d", (int) holders[1]);
        request_borrow("r1", 5000);
        ck_assert_int_eq(arbiter_state(set03()), DEV_SET_QUIESCING);
        assert_said(s0);
        assert_said(s1);
        run_for(50);
        ck_assert_int_eq(arbiter_state(set03()), DEV_SET_QUIESCING);   /* until both stopped */
        script_report(holders[1], 0);
        run_for(50);
        ck_assert_int_eq(arbiter_state(set03()), DEV_SET_QUIESCING);
        script_report(holders[0], 0);
        run_until_state(set03(), DEV_SET_RESETTING);
        ck_assert_uint_eq(borrowed_open(), 2);  /* the job holds both borrowed groups */
        run_until_said("reply r1");
        assert_said("reply r1 done");
        ck_assert_uint_eq(borrowed_open(), 0);
        ck_assert_uint_eq(kernel_resets(), 1);
        /* the one stopped last runs first, and the requester hears after both */
        assert_order(s1, r1);
        assert_order(r1, r0);
        assert_order(r0, "reply r1");
        ck_assert_uint_eq(count("resume-holder"), 2);
        for (char **l = rec.lines; l && *l; l++)
                if (strncmp(*l, "resume-holder", 13) == 0)
                        ck_assert_msg(strstr(*l, "borrowed-open=0"), "%s", *l);
        ck_assert_uint_eq(m->arbiter.bugs, 0);
}
END_TEST

START_TEST(test_borrow_refused_before_anyone_is_stopped) {
        struct reset_options o = { .quiesce_timeout_usec = 1000000, .borrow = true };
        _cleanup_free_ char *why = NULL;
        char pid[32];

        script.applies = false;
        m->holders_stamp = 0;
        ck_assert_int_eq(arbiter_borrow_check(&m->arbiter, set03(), &o, &why), -EPERM);
        snprintf(pid, sizeof(pid), "pid %d (sleep", (int) holders[0]);
        ck_assert_msg(why && strstr(why, pid) && strstr(why, "without the script's blessing"), "%s", why);
        /* the same refusal when it comes up only as the reset begins */
        request_borrow("r1", 1000);
        run_until_said("reply r1");
        assert_said("reply r1 not-owned: Cannot reset slot_0000_03_3 with Borrow");
        assert_not_said("stop ");
        ck_assert_uint_eq(kernel_resets(), 0);
        ck_assert_int_eq(arbiter_state(set03()), DEV_SET_IDLE);
}
END_TEST

START_TEST(test_borrow_holder_that_does_not_stop) {
        char r0[48];

        snprintf(r0, sizeof(r0), "resume-holder pid %d", (int) holders[0]);
        request_borrow("r1", 100);
        script_report(holders[1], 0);
        run_until_said("reply r1");     /* holders[0] never answers: the deadline ends it */
        assert_said("reply r1 quiesce-timeout: holders of slot_0000_03_3 did not stop within 0.100 s: pid");
        assert_said(r0);                /* the one still stopping is undone too */
        ck_assert_uint_eq(kernel_resets(), 0);
        /* its late answer changes nothing */
        script.targets[0] = NULL;
        ck_assert_int_eq(arbiter_state(set03()), DEV_SET_IDLE);
        ck_assert_uint_eq(m->arbiter.bugs, 0);
}
END_TEST

START_TEST(test_borrow_stop_fails) {
        char r1[48];

        snprintf(r1, sizeof(r1), "resume-holder pid %d", (int) holders[1]);
        request_borrow("r1", 5000);
        script_report(holders[1], 0);
        script_report(holders[0], -EIO);
        run_until_said("reply r1");
        assert_said("reply r1 quiesce-failed: cannot quiesce the holders of slot_0000_03_3: the script says no");
        assert_said(r1);
        ck_assert_uint_eq(kernel_resets(), 0);

        /* a stop that fails at once ends the reset as well */
        forget();
        script.stop_error = -EPERM;
        request_borrow("r2", 5000);
        run_until_said("reply r2");
        assert_said("reply r2 quiesce-failed: cannot quiesce pid");
        ck_assert_int_eq(arbiter_state(set03()), DEV_SET_IDLE);
        ck_assert_uint_eq(m->arbiter.bugs, 0);
}
END_TEST

START_TEST(test_borrow_with_a_peer_waits_for_both) {
        struct peer *a = peer(":1.1", "0000:03:00.0", false);

        request_borrow("r1", 5000);
        assert_said("pause :1.1 1 pause");
        script_report(holders[0], 0);
        script_report(holders[1], 0);
        run_for(50);
        ck_assert_int_eq(arbiter_state(set03()), DEV_SET_QUIESCING);   /* the peer has not acked */
        ck_assert_int_eq(arbiter_pause_complete(&m->arbiter, a->name, 1), 0);
        run_until_said("reply r1");
        assert_said("reply r1 done");
        assert_order("resume :1.1 1 done", "resume-holder");
}
END_TEST

START_TEST(test_borrow_resume_failure_still_answers) {
        request_borrow("r1", 5000);
        script.resume_error = -EIO;
        script_report(holders[0], 0);
        script_report(holders[1], 0);
        run_until_said("reply r1");
        assert_said("reply r1 done");   /* the reset happened; the failed resume is logged */
        ck_assert_uint_eq(count("resume-holder"), 2);
        ck_assert_int_eq(arbiter_state(set03()), DEV_SET_IDLE);
}
END_TEST

START_TEST(test_borrow_daemon_freed_mid_quiesce_resumes) {
        request_borrow("r1", 5000);
        script_report(holders[0], 0);
        run_for(20);
        manager_free(m);        /* a second SIGTERM: no loop any more */
        m = NULL;
        assert_said("reply r1 daemon-stopping");
        ck_assert_uint_eq(count("resume-holder"), 2);
}
END_TEST

/* Fail the first, second, ... allocation of a borrowed reset: every time an
 * answer, no impossible transition, and every holder asked to stop is
 * resumed. */
START_TEST(test_borrow_allocation_failures) {
        long attempts;
        bool done = false;

        for (attempts = 1; attempts < 2000 && !done; attempts++) {
                forget();
                script.n_targets = 0;
                n_failed = 0;
                fail_countdown = attempts;
                if (try_request_borrow("r", 5000) == -ENOMEM) {  /* refused before anything began */
                        fail_countdown = 0;
                        ck_assert_int_eq(arbiter_state(set03()), DEV_SET_IDLE);
                        continue;
                }
                fail_countdown = 0;
                for (size_t i = 0; i < script.n_targets; i++)
                        if (script.targets[i] && script.targets[i]->done && !script.targets[i]->report)
                                script_report(script.targets[i]->pid, 0);
                run_until_said("reply r");
                ck_assert_uint_eq(count("stop "), count("resume-holder"));
                ck_assert_int_eq(arbiter_state(set03()), DEV_SET_IDLE);
                done = said("reply r done") != NULL && n_failed == 0;
        }
        ck_assert(done);
        ck_assert_uint_gt(attempts, 5);
        ck_assert_uint_eq(m->arbiter.bugs, 0);
}
END_TEST

/* --- the journal: the fields of each reset line ----------------------------------------- */

/* A fake journal in place of sd_journal_sendv: each entry is recorded as
 * "journal FIELD=value ... | MESSAGE", its fields in the order sent, without
 * SYSLOG_IDENTIFIER (checked here: the program's name). */
static int fake_journal_sendv(const struct iovec *iov, int n) {
        char line[LOG_STRUCT_SIZE + 256] = "journal", message[LOG_STRUCT_SIZE] = "";
        bool identified = false;

        for (int i = 0; i < n; i++) {
                char field[LOG_STRUCT_SIZE];

                snprintf(field, sizeof(field), "%.*s", (int) iov[i].iov_len, (const char *) iov[i].iov_base);
                if (strncmp(field, "MESSAGE=", 8) == 0)
                        snprintf(message, sizeof(message), "%s", field + 8);
                else if (strncmp(field, "SYSLOG_IDENTIFIER=", 18) == 0)
                        identified = strcmp(field + 18, program_invocation_short_name) == 0;
                else
                        snprintf(line + strlen(line), sizeof(line) - strlen(line), " %s", field);
        }
        if (!identified)
                abort();        /* not ck_assert: this runs inside the daemon's code */
        record("%s | %s", line, message);
        return 0;
}

/* The journal sees what the daemon logs: stderr is "its" stream. */
static void setup_journal(void) {
        struct stat st;
        char stream[64];

        ck_assert_int_eq(fstat(STDERR_FILENO, &st), 0);
        snprintf(stream, sizeof(stream), "%llu:%llu", (unsigned long long) st.st_dev,
                 (unsigned long long) st.st_ino);
        setenv("JOURNAL_STREAM", stream, 1);
        log_journal_sendv = fake_journal_sendv;
        setup();
}

static void teardown_journal(void) {
        teardown();
        unsetenv("JOURNAL_STREAM");
        log_journal_sendv = sd_journal_sendv;
}

/* The entry whose MESSAGE starts with message has exactly these fields (besides MESSAGE). */
static void assert_journal(const char *message, const char *fields) {
        char want[512];

        snprintf(want, sizeof(want), "journal %s | %s", fields, message);
        for (char **l = rec.lines; l && *l; l++)
                if (strncmp(*l, "journal ", 8) == 0 && strstr(*l, " | ") &&
                    strncmp(strstr(*l, " | ") + 3, message, strlen(message)) == 0) {
                        ck_assert_msg(strncmp(*l, want, strlen(want)) == 0, "'%s', not '%s...'", *l, want);
                        return;
                }
        ck_abort_msg("no journal entry '%s...'", message);
}

#define STARTED "MESSAGE_ID=" RESET_STARTED_MESSAGE_ID " "
#define FINISHED "MESSAGE_ID=" RESET_FINISHED_MESSAGE_ID " "
#define RESET1 "VFIO_DEVSET=" SET04 " VFIO_RESET_ID=1"
#define RESET2 "VFIO_DEVSET=" SET04 " VFIO_RESET_ID=2"

START_TEST(test_journal_reset_done) {
        const char *last = "";

        peer(":1.1", "0000:04:00.0", true);
        request(set04(), "r1", 10000, false);
        ck_assert_int_eq(arbiter_pause_complete(&m->arbiter, ":1.1", 1), 0);
        run_until_said("reply r1 done");
        assert_journal("Reset 1 of bus_0000_04: quiescing 1 peers", STARTED RESET1 " PRIORITY=6");
        assert_journal("Reset 1 of bus_0000_04: VFIO_DEVICE_PCI_HOT_RESET took ", RESET1 " PRIORITY=6");
        assert_journal("Reset 1 of bus_0000_04: done after ", FINISHED RESET1 " VFIO_RESULT=done PRIORITY=6");
        ck_assert_uint_eq(count("journal "), 3);
        /* started first, finished last */
        ck_assert_ptr_nonnull(strstr(said("journal "), "MESSAGE_ID=" RESET_STARTED_MESSAGE_ID));
        for (char **l = rec.lines; l && *l; l++)
                if (strncmp(*l, "journal ", 8) == 0)
                        last = *l;
        ck_assert_ptr_nonnull(strstr(last, "MESSAGE_ID=" RESET_FINISHED_MESSAGE_ID));
}
END_TEST

/* A silent peer is named in a line of its own, before the reset ends; with Force too. */
START_TEST(test_journal_silent_peer) {
        peer(":1.1", "0000:04:00.0", true);
        peer(":1.2", "0000:04:00.1", true);
        request(set04(), "r1", 100, false);
        ck_assert_int_eq(arbiter_pause_complete(&m->arbiter, ":1.1", 1), 0);
        run_until_said("reply r1 quiesce-timeout");
        assert_journal("Reset 1 of bus_0000_04: quiescing 2 peers", STARTED RESET1 " PRIORITY=6");
        assert_journal("Reset 1 of bus_0000_04: peer :1.2 (pid ", RESET1 " VFIO_PEER=:1.2 PRIORITY=4");
        assert_journal("Reset 1 of bus_0000_04: quiesce-timeout after ",
                       FINISHED RESET1 " VFIO_RESULT=quiesce-timeout PRIORITY=6");
        ck_assert_ptr_null(strstr(said("journal " RESET1 " VFIO_PEER"), "forcing"));

        forget();
        request(set04(), "r2", 100, true);
        ck_assert_int_eq(arbiter_pause_complete(&m->arbiter, ":1.1", 2), 0);
        run_until_said("reply r2 done");
        assert_journal("Reset 2 of bus_0000_04: quiescing 2 peers", STARTED RESET2 " PRIORITY=6");
        assert_journal("Reset 2 of bus_0000_04: peer :1.2 (pid ", RESET2 " VFIO_PEER=:1.2 PRIORITY=4");
        ck_assert_ptr_nonnull(strstr(said("journal " RESET2 " VFIO_PEER=:1.2"), ", forcing past it"));
        assert_journal("Reset 2 of bus_0000_04: forcing past silent peers :1.2 (pid ", RESET2 " PRIORITY=4");
        assert_journal("Reset 2 of bus_0000_04: done after ", FINISHED RESET2 " VFIO_RESULT=done PRIORITY=6");
}
END_TEST

START_TEST(test_journal_peer_left) {
        peer(":1.1", "0000:04:00.0", true);
        request(set04(), "r1", 10000, false);
        peer_registry_name_lost(&m->peers, ":1.1");
        arbiter_peer_left(&m->arbiter, ":1.1");
        run_until_said("reply r1 done");
        assert_journal("Reset 1 of bus_0000_04: peer :1.1 left, not waiting for it",
                       RESET1 " VFIO_PEER=:1.1 PRIORITY=6");
        assert_journal("Reset 1 of bus_0000_04: done after ", FINISHED RESET1 " VFIO_RESULT=done PRIORITY=6");
}
END_TEST

/* Away from journald (stderr is not the stream JOURNAL_STREAM names) nothing reaches the journal. */
START_TEST(test_journal_only_under_journald) {
        setenv("JOURNAL_STREAM", "1:1", 1);
        request(set04(), "r1", 10000, false);
        run_until_said("reply r1 done");
        ck_assert_uint_eq(count("journal "), 0);
}
END_TEST

static Suite *suite(void) {
        Suite *s = suite_create("state-machine");
        TCase *tc = tcase_create("arbiter"), *borrow, *journal;

        tcase_add_checked_fixture(tc, setup, teardown);
        tcase_set_timeout(tc, 30);
        tcase_add_test(tc, test_transition_table);
        tcase_add_test(tc, test_idle);
        tcase_add_test(tc, test_idle_request_without_peers_goes_straight_to_the_kernel);
        tcase_add_test(tc, test_quiescing_acks_and_joins);
        tcase_add_test(tc, test_quiescing_deadline);
        tcase_add_test(tc, test_quiescing_deadline_with_force);
        tcase_add_test(tc, test_quiescing_device_gone);
        tcase_add_test(tc, test_quiescing_stop);
        tcase_add_test(tc, test_quiescing_set_gone);
        tcase_add_test(tc, test_resetting_queues_one_follow_up);
        tcase_add_test(tc, test_resetting_failures);
        tcase_add_test(tc, test_resetting_device_gone);
        tcase_add_test(tc, test_resetting_stop_waits_for_the_kernel);
        tcase_add_test(tc, test_resetting_stop_gives_up_on_a_stalled_kernel);
        tcase_add_test(tc, test_resetting_set_gone_needs_no_memory);
        tcase_add_test(tc, test_orphan_blocks_a_reset_of_its_devices);
        tcase_add_test(tc, test_resuming);
        tcase_add_test(tc, test_joined_mid_reset_hears_the_resume);
        tcase_add_test(tc, test_a_thousand_peers);
        tcase_add_test(tc, test_refresh_completes_or_changes_nothing);
        suite_add_tcase(s, tc);

        borrow = tcase_create("borrow");
        tcase_add_checked_fixture(borrow, setup_borrow, teardown_borrow);
        tcase_set_timeout(borrow, 60);
        tcase_add_test(borrow, test_borrow_stops_then_resumes_in_reverse);
        tcase_add_test(borrow, test_borrow_refused_before_anyone_is_stopped);
        tcase_add_test(borrow, test_borrow_holder_that_does_not_stop);
        tcase_add_test(borrow, test_borrow_stop_fails);
        tcase_add_test(borrow, test_borrow_with_a_peer_waits_for_both);
        tcase_add_test(borrow, test_borrow_resume_failure_still_answers);
        tcase_add_test(borrow, test_borrow_daemon_freed_mid_quiesce_resumes);
        tcase_add_test(borrow, test_borrow_allocation_failures);
        suite_add_tcase(s, borrow);

        journal = tcase_create("journal");
        tcase_add_checked_fixture(journal, setup_journal, teardown_journal);
        tcase_set_timeout(journal, 30);
        tcase_add_test(journal, test_journal_reset_done);
        tcase_add_test(journal, test_journal_silent_peer);
        tcase_add_test(journal, test_journal_peer_left);
        tcase_add_test(journal, test_journal_only_under_journald);
        suite_add_tcase(s, journal);
        return s;
}

int main(void) {
        SRunner *sr = srunner_create(suite());
        int failed;

        setenv("VFIO_RESETD_ABORT_ON_BUG", "1", 1);
        srunner_run_all(sr, CK_NORMAL);
        failed = srunner_ntests_failed(sr);
        srunner_free(sr);
        return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
