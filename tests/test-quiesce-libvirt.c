/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The libvirt quiesce adapter alone, against libvirt's test driver: a
 * test:///DIR/node.xml URI whose node file defines three running domains
 * (vm1, vm2, and vm3, paused from the start) with PCI hostdevs. The test
 * driver runs no QEMU and writes no pid files: the test writes DIR/NAME.pid
 * for each, naming a child process of its own, and points the adapter at DIR
 * with VRD_LIBVIRT_PID_DIR. Domain states are read on the adapter's own
 * connection (each test:///FILE connection is a driver of its own), through
 * quiesce_libvirt_test_call(); a libvirtd that does not answer is played by
 * quiesce_libvirt_test_stall(). */
#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>
#include <libvirt/libvirt.h>
#include <systemd/sd-event.h>

#include "check-run.h"
#include "log.h"
#include "macro.h"
#include "quiesce.h"
#include "quiesce-harness.h"

#define UUID1 "6c1e2b3a-0000-4000-8000-000000000001"
#define UUID2 "6c1e2b3a-0000-4000-8000-000000000002"
#define UUID3 "6c1e2b3a-0000-4000-8000-000000000003"

#define DOMAIN(name, uuid, extra, bus)                                                                            \
        "  <domain type='test'>\n"                                                                                \
        "    <name>" name "</name>\n"                                                                             \
        "    <uuid>" uuid "</uuid>\n"                                                                             \
        "    <memory>65536</memory>\n"                                                                            \
        "    <os><type>hvm</type></os>\n"                                                                         \
        extra                                                                                                     \
        "    <devices>\n"                                                                                         \
        "      <hostdev mode='subsystem' type='pci' managed='no'>\n"                                              \
        "        <source><address domain='0x0000' bus='" bus "' slot='0x00' function='0x0'/></source>\n"          \
        "      </hostdev>\n"                                                                                      \
        "    </devices>\n"                                                                                        \
        "  </domain>\n"

static const char node_xml[] =
        "<node xmlns:test='http://libvirt.org/schemas/domain/test/1.0'>\n"
        DOMAIN("vm1", UUID1, "", "0x04")
        DOMAIN("vm2", UUID2, "", "0x05")
        DOMAIN("vm3", UUID3, "    <test:runstate>3</test:runstate>\n", "0x06")   /* VIR_DOMAIN_PAUSED */
        "</node>\n";

static const char *const names[] = { "vm1", "vm2", "vm3" };
static char dir[64];
static pid_t qemu[3];           /* what the pid files name */
static pid_t stranger;          /* a process no pid file names */

/* --- the loop ------------------------------------------------------------- */

static bool run_until(const bool *flag, unsigned ms) {
        for (uint64_t end = monotonic_usec() + ms * USEC_PER_MSEC; !*flag;) {
                if (monotonic_usec() >= end)
                        return false;
                ck_assert_int_ge(sd_event_run(event, 10 * USEC_PER_MSEC), 0);
        }
        return true;
}

/* --- the domains, as the adapter's connection sees them ------------------------ */

struct on_thread {
        const char *name;
        int act;                /* 1: virDomainSuspend it first, -1: virDomainResume */
        int acted;              /* what that returned */
        int state;              /* virDomainGetState, -1 when it failed */
        bool connected;
        bool done;
};

static void on_thread_call(void *conn, void *userdata) {
        struct on_thread *c = userdata;
        virDomainPtr d = conn ? virDomainLookupByName(conn, c->name) : NULL;
        int reason;

        c->connected = conn;
        c->state = -1;
        if (!d)
                return;
        /* no ck_assert on this thread: the test's thread checks */
        if (c->act > 0)
                c->acted = virDomainSuspend(d);
        if (c->act < 0)
                c->acted = virDomainResume(d);
        if (virDomainGetState(d, &c->state, &reason, 0) < 0)
                c->state = -1;
        virDomainFree(d);
}

static void on_thread_done(void *userdata) {
        ((struct on_thread *) userdata)->done = true;
}

/* Behind the adapter's back, on its own connection: act, then its state. */
static int on_thread(const char *name, int act) {
        struct on_thread c = { .name = name, .act = act };

        ck_assert_int_eq(quiesce_libvirt_test_call(adapter, on_thread_call, on_thread_done, &c), 0);
        ck_assert_msg(run_until(&c.done, 5000), "the libvirt thread did not run the test's call");
        ck_assert(c.connected);
        ck_assert_int_eq(c.acted, 0);
        return c.state;
}

static int state_of(const char *name) {
        return on_thread(name, 0);
}

static void assert_state(const char *name, int want) {
        int state = state_of(name);

        ck_assert_msg(state == want, "domain %s is in state %d, want %d (%s)", name, state, want,
                      want == VIR_DOMAIN_PAUSED ? "paused" : "running");
}

/* --- holders and targets ----------------------------------------------------- */

static struct holder holder_of(pid_t pid, const char *unit) {
        struct holder hd = { .pid = pid, .uid = 0 };

        snprintf(hd.comm, sizeof(hd.comm), "qemu-system-x86");
        snprintf(hd.unit, sizeof(hd.unit), "%s", unit);
        return hd;
}

static bool applies_to(pid_t pid, bool force) {
        struct holder hd = holder_of(pid, "");
        const char *hint = "not set";
        bool yes = adapter->applies(adapter, &(struct quiesce_holder) { .holder = &hd, .pidfd = -1 }, force, &hint);

        ck_assert_msg(!hint, "a hint for pid %d: %s", (int) pid, hint);
        return yes;
}

static struct quiesce_target *target_for(pid_t pid) {
        struct holder hd = holder_of(pid, "");
        struct quiesce_target *t = NULL;

        ck_assert(applies_to(pid, false));
        ck_assert_int_eq(adapter->target_new(adapter, &(struct quiesce_holder) { .holder = &hd, .pidfd = -1 }, &t), 0);
        ck_assert_ptr_eq(t->adapter, adapter);
        return t;
}

static void assert_done_ok(const struct outcome *o, const char *name) {
        assert_one_done(o, 5000);
        ck_assert_msg(o->error == 0, "done(%d, %s)", o->error, o->message);
        assert_has(o->message, name);
}

/* One done(-ETIMEDOUT) naming the domain, at the deadline (500 ms late at most,
 * for a loaded machine: the stalls it is tested against are longer). */
static void assert_timed_out(const struct outcome *o, uint64_t deadline, const char *name) {
        assert_one_done(o, 5000);
        ck_assert_int_eq(o->error, -ETIMEDOUT);
        ck_assert_msg(o->at + 20 * USEC_PER_MSEC >= deadline, "done came %.3f s before the deadline",
                      (double) (deadline - o->at) / USEC_PER_SEC);
        ck_assert_msg(o->at <= deadline + 500 * USEC_PER_MSEC, "done came %.3f s after the deadline",
                      (double) (o->at - deadline) / USEC_PER_SEC);
        assert_has(o->message, name);
        ck_assert(!o->stopped);
}

/* applies() with stderr captured: what it logged. */
static char *applies_logged(const struct holder *hd, const struct pci_address *members, size_t n_members) {
        FILE *log = tmpfile();
        int saved = dup(STDERR_FILENO);
        const char *hint = "not set";
        char *text;
        long size;
        bool yes;

        ck_assert_ptr_nonnull(log);
        fflush(stderr);
        ck_assert_int_ge(dup2(fileno(log), STDERR_FILENO), 0);
        yes = adapter->applies(adapter, &(struct quiesce_holder) {
                .holder = hd, .pidfd = -1, .members = members, .n_members = n_members,
        }, false, &hint);
        fflush(stderr);
        dup2(saved, STDERR_FILENO);
        close(saved);
        ck_assert(yes);
        ck_assert_ptr_null(hint);
        size = ftell(log);
        ck_assert_int_ge(size, 0);
        text = calloc(1, (size_t) size + 1);
        rewind(log);
        ck_assert_int_eq(fread(text, 1, (size_t) size, log), (size_t) size);
        fclose(log);
        return text;
}

static int harness_rm_rf(const char *path) {
        char cmd[160];

        snprintf(cmd, sizeof(cmd), "rm -rf '%s'", path);
        return system(cmd);
}

/* --- fixtures ----------------------------------------------------------------------- */

static pid_t spawn(void) {
        pid_t pid = fork();

        ck_assert_int_ge(pid, 0);
        if (pid == 0) {
                pause();
                _exit(0);
        }
        return pid;
}

static void write_file(const char *name, const char *text) {
        char path[128];
        FILE *f;

        snprintf(path, sizeof(path), "%s/%s", dir, name);
        f = fopen(path, "we");
        ck_assert_ptr_nonnull(f);
        fputs(text, f);
        ck_assert_int_eq(fclose(f), 0);
}

static void new_adapter(const char *uri) {
        int r;

        /* -EBUSY: the thread of the last one is still in a call to a libvirtd
         * that stopped answering (CK_FORK=no), and goes when that returns */
        for (uint64_t end = monotonic_usec() + 10 * USEC_PER_SEC;
             (r = quiesce_libvirt_new(event, uri, &adapter)) == -EBUSY && monotonic_usec() < end;)
                usleep(20000);
        ck_assert_int_eq(r, 0);
        ck_assert_str_eq(adapter->name, "libvirt");
}

static void setup_files(void) {
        char pid[32];

        snprintf(dir, sizeof(dir), "/tmp/test-quiesce-libvirt.XXXXXX");
        ck_assert_ptr_nonnull(mkdtemp(dir));
        write_file("node.xml", node_xml);
        for (size_t i = 0; i < ELEMENTSOF(qemu); i++) {
                char file[32];

                qemu[i] = spawn();
                snprintf(file, sizeof(file), "%s.pid", names[i]);
                snprintf(pid, sizeof(pid), "%d", (int) qemu[i]);
                write_file(file, pid);
        }
        stranger = spawn();
        ck_assert_int_eq(setenv("VRD_LIBVIRT_PID_DIR", dir, 1), 0);
        ck_assert_int_ge(sd_event_new(&event), 0);
}

/* The adapter on the node file, and its cache filled. */
static void setup(void) {
        char uri[128];

        setup_files();
        snprintf(uri, sizeof(uri), "test://%s/node.xml", dir);
        new_adapter(uri);
        for (uint64_t end = monotonic_usec() + 5 * USEC_PER_SEC; !applies_to(qemu[0], false);) {
                ck_assert_msg(monotonic_usec() < end, "the adapter did not see domain vm1");
                run_for(10);
        }
}

static void teardown(void) {
        char path[128];

        adapter = quiesce_adapter_free(adapter);
        event = sd_event_unref(event);
        for (size_t i = 0; i <= ELEMENTSOF(qemu); i++) {
                pid_t pid = i < ELEMENTSOF(qemu) ? qemu[i] : stranger;

                kill(pid, SIGKILL);
                waitpid(pid, NULL, 0);
                if (i < ELEMENTSOF(qemu)) {
                        snprintf(path, sizeof(path), "%s/%s.pid", dir, names[i]);
                        (void) unlink(path);
                }
        }
        snprintf(path, sizeof(path), "%s/node.xml", dir);
        (void) unlink(path);
        (void) rmdir(dir);
}

/* --- tests ----------------------------------------------------------------------------- */

/* A domain's pid, not another; Force or not; and what it is called. */
START_TEST(test_applies) {
        struct holder vm1 = holder_of(qemu[0], "machine-qemu\\x2d1\\x2dvm1.scope"), other = holder_of(stranger, "");
        const struct quiesce_holder h = { .holder = &vm1, .pidfd = -1 }, o = { .holder = &other, .pidfd = -1 };
        const char *name, *uuid;
        char what[QUIESCE_IDENTITY_MAX], *log;

        ck_assert(applies_to(qemu[0], false));
        ck_assert(applies_to(qemu[0], true));
        ck_assert(applies_to(qemu[1], false));
        ck_assert(applies_to(qemu[2], false));        /* paused: still one of libvirt's */
        ck_assert(!applies_to(stranger, false));
        ck_assert(!applies_to(stranger, true));
        ck_assert(!applies_to(getpid(), true));

        ck_assert(adapter->identify(adapter, &h, what, sizeof(what)));
        ck_assert_str_eq(what, "libvirt domain vm1 (" UUID1 ")");
        ck_assert(!adapter->identify(adapter, &o, what, sizeof(what)));
        ck_assert(quiesce_identify(&adapter, 1, &h, what, sizeof(what)));
        ck_assert(!quiesce_identify(&adapter, 1, &o, what, sizeof(what)));
        ck_assert(adapter->domain_of(adapter, &h, &name, &uuid));
        ck_assert_str_eq(name, "vm1");
        ck_assert_str_eq(uuid, UUID1);
        ck_assert(!adapter->domain_of(adapter, &o, &name, &uuid));

        /* a holder of a set the domain has a hostdev of (0000:04:00.0, from
         * its XML) in its own scope: no word; in another machine's scope, or
         * of a set the domain has no hostdev of: the pid decides, and the
         * disagreement is logged */
        log = applies_logged(&vm1, (struct pci_address[]) { { .bus = 3 }, { .bus = 4 } }, 2);
        ck_assert_msg(!strstr(log, "vm1"), "the adapter complains: %s", log);
        free(log);
        vm1 = holder_of(qemu[0], "machine-qemu\\x2d7\\x2dother.scope");
        log = applies_logged(&vm1, (struct pci_address[]) { { .bus = 9 } }, 1);
        assert_has(log, "has no <hostdev> of the set");
        assert_has(log, "runs in machine-qemu\\x2d7\\x2dother.scope, not in a machine-qemu\\x2d1\\x2d*.scope");
        free(log);
        ck_assert_int_eq(adapter->target_new(adapter, &o, &(struct quiesce_target *) { NULL }), -ENOENT);
}
END_TEST

START_TEST(test_stop_resume) {
        struct quiesce_target *t = target_for(qemu[0]);
        struct outcome stopped = {}, resumed = {};

        ck_assert_str_eq(t->name, "libvirt domain vm1 (" UUID1 ")");
        ck_assert(!t->stopped);
        assert_state("vm1", VIR_DOMAIN_RUNNING);
        stop(t, 5000, &stopped);
        ck_assert_uint_eq(stopped.calls, 0);
        assert_done_ok(&stopped, "libvirt domain vm1");
        assert_has(stopped.message, "suspended");
        ck_assert(stopped.stopped);     /* set before done ran */
        ck_assert(t->stopped);
        assert_state("vm1", VIR_DOMAIN_PAUSED);
        assert_state("vm2", VIR_DOMAIN_RUNNING);

        resume(t, 5000, &resumed);
        ck_assert(!t->stopped);         /* a resume began */
        ck_assert_uint_eq(resumed.calls, 0);
        assert_done_ok(&resumed, "libvirt domain vm1");
        assert_has(resumed.message, "resumed");
        assert_state("vm1", VIR_DOMAIN_RUNNING);
        adapter->target_free(t);
        run_for(100);
        assert_state("vm1", VIR_DOMAIN_RUNNING);
}
END_TEST

/* Paused before we came (by its node file, or behind the adapter's back): paused after. */
START_TEST(test_already_paused) {
        struct quiesce_target *t3 = target_for(qemu[2]), *t1 = target_for(qemu[0]);
        struct outcome stopped = {}, resumed = {}, stopped1 = {}, resumed1 = {};

        assert_state("vm3", VIR_DOMAIN_PAUSED);
        stop(t3, 5000, &stopped);
        assert_done_ok(&stopped, "libvirt domain vm3");
        assert_has(stopped.message, "paused already");
        ck_assert(t3->stopped);
        resume(t3, 5000, &resumed);
        assert_done_ok(&resumed, "libvirt domain vm3");
        assert_state("vm3", VIR_DOMAIN_PAUSED);

        ck_assert_int_eq(on_thread("vm1", 1), VIR_DOMAIN_PAUSED);
        stop(t1, 5000, &stopped1);
        assert_done_ok(&stopped1, "libvirt domain vm1");
        resume(t1, 5000, &resumed1);
        assert_done_ok(&resumed1, "libvirt domain vm1");
        assert_state("vm1", VIR_DOMAIN_PAUSED);
        adapter->target_free(t3);
        adapter->target_free(t1);
        run_for(100);
        assert_state("vm1", VIR_DOMAIN_PAUSED);
        assert_state("vm3", VIR_DOMAIN_PAUSED);
}
END_TEST

/* Two holders of one domain (its QEMU holds two groups): one target. */
START_TEST(test_covers) {
        struct holder a = holder_of(qemu[0], ""), b = holder_of(qemu[0], ""), c = holder_of(qemu[1], ""),
                      d = holder_of(stranger, "");
        struct quiesce_target *t = NULL;

        ck_assert_int_eq(adapter->target_new(adapter, &(struct quiesce_holder) { .holder = &a, .pidfd = -1 }, &t), 0);
        ck_assert(adapter->covers(t, &(struct quiesce_holder) { .holder = &a, .pidfd = -1 }));
        ck_assert(adapter->covers(t, &(struct quiesce_holder) { .holder = &b, .pidfd = -1 }));
        ck_assert(!adapter->covers(t, &(struct quiesce_holder) { .holder = &c, .pidfd = -1 }));
        ck_assert(!adapter->covers(t, &(struct quiesce_holder) { .holder = &d, .pidfd = -1 }));
        adapter->target_free(t);
}
END_TEST

/* Two resets that need one domain at once (targets of two plans): it stays
 * suspended until the second lets go. */
START_TEST(test_two_targets_one_domain) {
        struct quiesce_target *t = target_for(qemu[0]), *u = target_for(qemu[0]);
        struct outcome st = {}, su = {}, rt = {}, ru = {};

        stop(t, 5000, &st);
        assert_done_ok(&st, "vm1");
        stop(u, 5000, &su);
        assert_done_ok(&su, "vm1");
        ck_assert(u->stopped);
        resume(t, 5000, &rt);
        assert_done_ok(&rt, "vm1");
        assert_has(rt.message, "stays suspended");
        assert_state("vm1", VIR_DOMAIN_PAUSED);
        resume(u, 5000, &ru);
        assert_done_ok(&ru, "vm1");
        assert_state("vm1", VIR_DOMAIN_RUNNING);

        /* resumed behind our back while one reset holds it: the other's stop suspends it again */
        st = su = rt = ru = (struct outcome) {};
        stop(t, 5000, &st);
        assert_done_ok(&st, "vm1");
        ck_assert_int_eq(on_thread("vm1", -1), VIR_DOMAIN_RUNNING);
        stop(u, 5000, &su);
        assert_done_ok(&su, "vm1");
        assert_state("vm1", VIR_DOMAIN_PAUSED);
        resume(u, 5000, &ru);
        assert_done_ok(&ru, "vm1");
        assert_state("vm1", VIR_DOMAIN_PAUSED);
        resume(t, 5000, &rt);
        assert_done_ok(&rt, "vm1");
        assert_state("vm1", VIR_DOMAIN_RUNNING);
        adapter->target_free(t);
        adapter->target_free(u);
}
END_TEST

/* Nothing was suspended, nothing is resumed: 0 from the loop. */
START_TEST(test_resume_never_stopped) {
        struct quiesce_target *t = target_for(qemu[1]);
        struct outcome resumed = {};

        resume(t, 5000, &resumed);
        ck_assert_uint_eq(resumed.calls, 0);
        assert_done_ok(&resumed, "libvirt domain vm2");
        assert_state("vm2", VIR_DOMAIN_RUNNING);
        adapter->target_free(t);
}
END_TEST

/* The loop goes on while the libvirt thread is in a long call: a stop returns
 * at once, timers keep firing, and the stop is answered once the thread is free. */
static int on_tick(sd_event_source *s, uint64_t usec, void *userdata) {
        (*(unsigned *) userdata)++;
        ck_assert_int_ge(sd_event_source_set_time(s, usec + 10 * USEC_PER_MSEC), 0);
        return 0;
}

START_TEST(test_loop_not_blocked) {
        struct quiesce_target *t = target_for(qemu[0]), *u = target_for(qemu[1]);
        struct outcome st = {}, su = {};
        sd_event_source *tick = NULL;
        unsigned ticks = 0;
        uint64_t before, took;

        quiesce_libvirt_test_stall(t, 500 * USEC_PER_MSEC);
        stop(t, 5000, &st);
        run_for(50);    /* the thread is in t's stop now */
        before = monotonic_usec();
        stop(u, 5000, &su);
        took = monotonic_usec() - before;
        ck_assert_msg(took < 50 * USEC_PER_MSEC, "stop took %.3f ms with the libvirt thread busy",
                      (double) took / USEC_PER_MSEC);
        ck_assert_int_ge(sd_event_add_time(event, &tick, CLOCK_MONOTONIC, monotonic_usec() + 10 * USEC_PER_MSEC,
                                           USEC_PER_MSEC, on_tick, &ticks), 0);
        ck_assert_int_ge(sd_event_source_set_enabled(tick, SD_EVENT_ON), 0);
        run_for(300);
        ck_assert_msg(ticks >= 15, "a 10 ms timer fired %u times in 300 ms while the libvirt thread was busy", ticks);
        ck_assert_uint_eq(st.calls, 0);
        ck_assert_uint_eq(su.calls, 0);
        sd_event_source_disable_unref(tick);

        assert_done_ok(&st, "vm1");
        assert_done_ok(&su, "vm2");
        ck_assert(su.at >= st.at);      /* in turn */
        assert_state("vm1", VIR_DOMAIN_PAUSED);
        assert_state("vm2", VIR_DOMAIN_PAUSED);
        adapter->target_free(t);
        adapter->target_free(u);
        run_for(100);
        assert_state("vm1", VIR_DOMAIN_RUNNING);        /* freed while suspended: resumed */
        assert_state("vm2", VIR_DOMAIN_RUNNING);
}
END_TEST

/* libvirtd does not answer a suspend: -ETIMEDOUT at the deadline while the
 * call is still stuck; when it goes through after all, it is undone. */
START_TEST(test_stop_hangs) {
        struct quiesce_target *t = target_for(qemu[0]);
        struct outcome stopped = {}, resumed = {};

        quiesce_libvirt_test_stall(t, 1500 * USEC_PER_MSEC);
        assert_timed_out(&stopped, stop(t, 100, &stopped), "libvirt domain vm1");
        assert_has(stopped.message, "within 0.1");
        assert_has(stopped.message, "undone");
        ck_assert(!t->stopped);
        /* the thread is still in the call: past it, vm1 runs */
        assert_state("vm1", VIR_DOMAIN_RUNNING);

        resume(t, 5000, &resumed);      /* nothing stays to be undone */
        ck_assert_uint_eq(resumed.calls, 0);
        assert_done_ok(&resumed, "vm1");
        assert_state("vm1", VIR_DOMAIN_RUNNING);
        adapter->target_free(t);
}
END_TEST

/* A stop queued behind a hung call times out, and is never made. */
START_TEST(test_queued_behind_hang) {
        struct quiesce_target *t = target_for(qemu[0]), *u = target_for(qemu[1]);
        struct outcome st = {}, su = {}, ru = {};

        quiesce_libvirt_test_stall(t, 1500 * USEC_PER_MSEC);
        stop(t, 5000, &st);
        assert_timed_out(&su, stop(u, 100, &su), "libvirt domain vm2");
        ck_assert_uint_eq(st.calls, 0);
        assert_done_ok(&st, "vm1");
        assert_state("vm2", VIR_DOMAIN_RUNNING);
        resume(u, 5000, &ru);
        assert_done_ok(&ru, "vm2");
        assert_state("vm2", VIR_DOMAIN_RUNNING);
        adapter->target_free(t);
        adapter->target_free(u);
}
END_TEST

/* libvirtd does not answer a resume: -ETIMEDOUT at the deadline, and the
 * domain is resumed all the same once the call goes through. */
START_TEST(test_resume_hangs) {
        struct quiesce_target *t = target_for(qemu[0]);
        struct outcome stopped = {}, resumed = {};

        stop(t, 5000, &stopped);
        assert_done_ok(&stopped, "vm1");
        quiesce_libvirt_test_stall(t, 1500 * USEC_PER_MSEC);
        assert_timed_out(&resumed, resume(t, 100, &resumed), "libvirt domain vm1");
        assert_has(resumed.message, "resumed once libvirt answers");
        assert_state("vm1", VIR_DOMAIN_RUNNING);
        adapter->target_free(t);
}
END_TEST

/* Freed with a stop in the thread: no done, ever, and no domain left suspended. */
START_TEST(test_free_in_flight) {
        struct quiesce_target *t = target_for(qemu[0]), *u = target_for(qemu[1]);
        struct outcome st = {}, su = {}, ru = {};

        quiesce_libvirt_test_stall(t, 300 * USEC_PER_MSEC);
        stop(t, 5000, &st);
        run_for(50);
        adapter->target_free(t);
        run_for(500);
        ck_assert_uint_eq(st.calls, 0);
        assert_state("vm1", VIR_DOMAIN_RUNNING);

        /* freed with a resume in the thread: it goes through, unanswered */
        stop(u, 5000, &su);
        assert_done_ok(&su, "vm2");
        quiesce_libvirt_test_stall(u, 300 * USEC_PER_MSEC);
        resume(u, 5000, &ru);
        run_for(50);
        adapter->target_free(u);
        run_for(500);
        ck_assert_uint_eq(ru.calls, 0);
        assert_state("vm2", VIR_DOMAIN_RUNNING);
}
END_TEST

/* A resume while the stop waits in the queue: the stop is dropped, unanswered. */
START_TEST(test_resume_during_stop) {
        struct quiesce_target *t = target_for(qemu[0]), *u = target_for(qemu[1]);
        struct outcome st = {}, su = {}, ru = {};

        quiesce_libvirt_test_stall(t, 300 * USEC_PER_MSEC);
        stop(t, 5000, &st);
        stop(u, 5000, &su);
        ck_assert_int_eq(adapter->stop(u, monotonic_usec() + 5 * USEC_PER_SEC, on_done, &su), -EBUSY);
        resume(u, 5000, &ru);
        assert_done_ok(&ru, "vm2");
        assert_done_ok(&st, "vm1");
        ck_assert_uint_eq(su.calls, 0);
        assert_state("vm2", VIR_DOMAIN_RUNNING);
        adapter->target_free(t);
        adapter->target_free(u);
}
END_TEST

/* A URI that cannot be opened: nothing applies, nothing hangs, and it goes quickly. */
START_TEST(test_bad_uri) {
        char uri[128];
        uint64_t before;

        setup_files();
        snprintf(uri, sizeof(uri), "test://%s/no-such-node.xml", dir);
        new_adapter(uri);
        for (int i = 0; i < 30; i++) {
                ck_assert(!applies_to(qemu[0], false));
                run_for(10);
        }
        before = monotonic_usec();
        adapter = quiesce_adapter_free(adapter);
        ck_assert_msg(monotonic_usec() - before < 1000 * USEC_PER_MSEC, "free took %.3f s",
                      (double) (monotonic_usec() - before) / USEC_PER_SEC);
        ck_assert_int_eq(quiesce_libvirt_new(event, "bogus+driver:///nowhere", &adapter), 0);
        run_for(200);
        ck_assert(!applies_to(qemu[0], false));
}
END_TEST

/* One adapter at a time: libvirt's event loop is the process's. */
START_TEST(test_one_per_process) {
        struct quiesce_adapter *second = NULL;

        ck_assert_int_eq(quiesce_libvirt_new(event, "test:///default", &second), -EBUSY);
        ck_assert_ptr_null(second);
}
END_TEST

static void on_thread_call_disconnected(void *conn, void *userdata) {
        *(bool *) userdata = conn == NULL;
}

static void on_nothing(void *userdata) {
}

/* The thread call of a disconnected adapter gets no connection. */
START_TEST(test_test_call_disconnected) {
        bool disconnected = false;

        setup_files();
        new_adapter("test:///no/such/node.xml");
        ck_assert_int_eq(quiesce_libvirt_test_call(adapter, on_thread_call_disconnected, on_nothing, &disconnected),
                         0);
        run_for(200);
        ck_assert(disconnected);
}
END_TEST

/* --- a real libvirtd, restarted and hung ---------------------------------------- */

/* libvirtd serves the test driver to remote clients as well
 * (test+unix:///DIR/node.xml?socket=...): run as nobody, in session mode,
 * its socket in DIR/run. Only with libvirtd installed (libvirt-daemon). */
#define LIBVIRTD "/usr/sbin/libvirtd"

static pid_t libvirtd;

static void libvirtd_start(void) {
        char sock[160];

        libvirtd = fork();
        ck_assert_int_ge(libvirtd, 0);
        if (libvirtd == 0) {
                char home[96], run[96], log[96];
                int fd;

                snprintf(home, sizeof(home), "%s/home", dir);
                snprintf(run, sizeof(run), "%s/run", dir);
                snprintf(log, sizeof(log), "%s/libvirtd.log", dir);
                fd = open(log, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
                dup2(fd, STDOUT_FILENO);
                dup2(fd, STDERR_FILENO);
                setenv("HOME", home, 1);
                setenv("XDG_RUNTIME_DIR", run, 1);
                unsetenv("XDG_CONFIG_HOME");
                unsetenv("XDG_CACHE_HOME");
                execl("/usr/bin/setpriv", "setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", LIBVIRTD,
                      "--timeout", "0", (char *) NULL);
                _exit(127);
        }
        snprintf(sock, sizeof(sock), "%s/run/libvirt/libvirt-sock", dir);
        for (uint64_t end = monotonic_usec() + 30 * USEC_PER_SEC; access(sock, F_OK) < 0;) {
                ck_assert_msg(monotonic_usec() < end, "libvirtd did not make %s; see %s/libvirtd.log", sock, dir);
                ck_assert_msg(waitpid(libvirtd, NULL, WNOHANG) == 0, "libvirtd exited; see %s/libvirtd.log", dir);
                usleep(20000);
        }
}

static void libvirtd_stop(void) {
        char sock[160];

        if (libvirtd <= 0)
                return;
        kill(libvirtd, SIGCONT);
        kill(libvirtd, SIGTERM);
        for (int i = 0; i < 500 && waitpid(libvirtd, NULL, WNOHANG) == 0; i++)
                usleep(10000);
        kill(libvirtd, SIGKILL);
        waitpid(libvirtd, NULL, 0);
        libvirtd = 0;
        snprintf(sock, sizeof(sock), "%s/run/libvirt/libvirt-sock", dir);
        (void) unlink(sock);
}

static void wait_applies(bool want, unsigned seconds, const char *what) {
        for (uint64_t end = monotonic_usec() + seconds * USEC_PER_SEC; applies_to(qemu[0], false) != want;) {
                ck_assert_msg(monotonic_usec() < end, "the adapter did not %s within %u s", what, seconds);
                run_for(20);
        }
}

static void setup_libvirtd(void) {
        char uri[256];

        setup_files();
        ck_assert_int_eq(chmod(dir, 0755), 0);
        for (const char *const *d = (const char *const[]) { "home", "run", NULL }; *d; d++) {
                char path[96];

                snprintf(path, sizeof(path), "%s/%s", dir, *d);
                ck_assert_int_eq(mkdir(path, 0777), 0);
                ck_assert_int_eq(chmod(path, 0777), 0);
        }
        libvirtd_start();
        snprintf(uri, sizeof(uri), "test+unix://%s/node.xml?socket=%s/run/libvirt/libvirt-sock", dir, dir);
        new_adapter(uri);
        wait_applies(true, 10, "connect to libvirtd");
}

static void teardown_libvirtd(void) {
        adapter = quiesce_adapter_free(adapter);
        libvirtd_stop();
        ck_assert_int_eq(harness_rm_rf(dir), 0);
        teardown();
}

/* libvirtd goes: nothing applies; it comes back: the adapter connects again. */
START_TEST(test_libvirtd_restart) {
        struct quiesce_target *t = target_for(qemu[0]);
        struct outcome stopped = {}, resumed = {};

        stop(t, 5000, &stopped);
        assert_done_ok(&stopped, "vm1");
        assert_state("vm1", VIR_DOMAIN_PAUSED);
        resume(t, 5000, &resumed);
        assert_done_ok(&resumed, "vm1");
        adapter->target_free(t);

        libvirtd_stop();
        wait_applies(false, 5, "see libvirtd go");
        libvirtd_start();
        wait_applies(true, 10, "connect to libvirtd again");
        t = target_for(qemu[0]);
        stopped = resumed = (struct outcome) {};
        stop(t, 5000, &stopped);
        assert_done_ok(&stopped, "vm1");
        assert_state("vm1", VIR_DOMAIN_PAUSED);
        resume(t, 5000, &resumed);
        assert_done_ok(&resumed, "vm1");
        assert_state("vm1", VIR_DOMAIN_RUNNING);
        adapter->target_free(t);
}
END_TEST

/* libvirtd stopped (SIGSTOP) in the middle: the suspend reports -ETIMEDOUT at
 * its deadline while the call hangs; once libvirtd goes on, the suspend it
 * made is undone. */
START_TEST(test_libvirtd_hangs) {
        struct quiesce_target *t = target_for(qemu[0]);
        struct outcome stopped = {}, resumed = {};
        uint64_t deadline;

        ck_assert_int_eq(kill(libvirtd, SIGSTOP), 0);
        deadline = stop(t, 300, &stopped);
        assert_timed_out(&stopped, deadline, "libvirt domain vm1");
        ck_assert_int_eq(kill(libvirtd, SIGCONT), 0);
        assert_state("vm1", VIR_DOMAIN_RUNNING);
        resume(t, 5000, &resumed);
        assert_done_ok(&resumed, "vm1");
        assert_state("vm1", VIR_DOMAIN_RUNNING);
        adapter->target_free(t);

        /* freed with the thread in a hung call: free does not wait for libvirtd */
        t = target_for(qemu[0]);
        stopped = (struct outcome) {};
        ck_assert_int_eq(kill(libvirtd, SIGSTOP), 0);
        stop(t, 5000, &stopped);
        run_for(100);
        adapter->target_free(t);
        deadline = monotonic_usec();
        adapter = quiesce_adapter_free(adapter);
        ck_assert_msg(monotonic_usec() - deadline < 3 * USEC_PER_SEC, "free waited %.3f s for a hung libvirtd",
                      (double) (monotonic_usec() - deadline) / USEC_PER_SEC);
        ck_assert_uint_eq(stopped.calls, 0);
}
END_TEST

int main(void) {
        Suite *s = suite_create("quiesce-libvirt");
        TCase *tc = tcase_create("test driver"), *bad = tcase_create("no libvirt");

        log_set_max_level(LOG_DEBUG);
        tcase_add_checked_fixture(tc, setup, teardown);
        tcase_set_timeout(tc, 60);
        tcase_add_test(tc, test_applies);
        tcase_add_test(tc, test_stop_resume);
        tcase_add_test(tc, test_already_paused);
        tcase_add_test(tc, test_covers);
        tcase_add_test(tc, test_two_targets_one_domain);
        tcase_add_test(tc, test_resume_never_stopped);
        tcase_add_test(tc, test_loop_not_blocked);
        tcase_add_test(tc, test_stop_hangs);
        tcase_add_test(tc, test_queued_behind_hang);
        tcase_add_test(tc, test_resume_hangs);
        tcase_add_test(tc, test_free_in_flight);
        tcase_add_test(tc, test_resume_during_stop);
        tcase_add_test(tc, test_one_per_process);
        suite_add_tcase(s, tc);

        if (access(LIBVIRTD, X_OK) == 0) {
                TCase *daemon = tcase_create("libvirtd");

                tcase_add_checked_fixture(daemon, setup_libvirtd, teardown_libvirtd);
                tcase_set_timeout(daemon, 120);
                tcase_add_test(daemon, test_libvirtd_restart);
                tcase_add_test(daemon, test_libvirtd_hangs);
                suite_add_tcase(s, daemon);
        } else
                fprintf(stderr, "No %s (libvirt-daemon): not testing a libvirtd that restarts or hangs\n", LIBVIRTD);

        tcase_add_checked_fixture(bad, NULL, teardown);
        tcase_set_timeout(bad, 60);
        tcase_add_test(bad, test_bad_uri);
        tcase_add_test(bad, test_test_call_disconnected);
        suite_add_tcase(s, bad);

        return check_run(s);
}
