/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The client side end to end: libvfio-resetd, the peer of its man page,
 * vfio-resetctl reset and hold, against the daemon with the kernel test
 * double on a private bus over the fake lab sysfs. */
#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <json-c/json.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "bus-harness.h"
#include "check-run.h"
#include "bus-names.h"
#include "macro.h"
#include "strv.h"
#include "testbed.h"
#include "vfio-resetd.h"

#define SET04 VRD_DEVSET_PATH_PREFIX "/bus_0000_04"
#define DEV04_0 VRD_DEVICE_PATH_PREFIX "/pci_0000_04_00_0"

static UMockdevTestbed *tb;
static struct harness h;
static char kernel_spec[128];

static void set_kernel(const char *spec) {
        FILE *f = fopen(kernel_spec, "we");

        ck_assert_ptr_nonnull(f);
        fprintf(f, "%s\n", spec);
        fclose(f);
}

static void setup(void) {
        char config[128];
        FILE *f;

        tb = testbed_new("lab");
        harness_start_bus(&h);
        h.daemon = getenv("VRD_FAKE_DAEMON");
        snprintf(kernel_spec, sizeof(kernel_spec), "%s/kernel.spec", h.dir);
        set_kernel("delay_ms=20");
        setenv("VRD_FAKE_KERNEL_FILE", kernel_spec, 1);
        snprintf(config, sizeof(config), "%s/vfio-resetd.conf", h.dir);
        f = fopen(config, "we");
        ck_assert_ptr_nonnull(f);
        /* bus_0000_04: two devices in two groups. 03:00.x stays unmanaged. */
        fputs("[Manage]\nDevice=0000:04:00.0 0000:04:00.1\n[Reset]\nQuiesceTimeoutSec=10\n", f);
        fclose(f);
        harness_start_daemon(&h, (const char *const[]) { "--uevents=udev", "--config", config, NULL });
}

static void teardown(void) {
        harness_stop(&h);
        g_object_unref(tb);
}

static const char *ctl(void) {
        return getenv("VRD_CTL");
}

static char **get_peers(const char *path, const char *iface) {
        sd_bus_error e = SD_BUS_ERROR_NULL;
        char **l = NULL;

        ck_assert_msg(sd_bus_get_property_strv(h.bus, VRD_BUS_NAME, path, iface, "Peers", &e, &l) >= 0, "%s: %s",
                      path, e.message);
        return l;
}

/* Waits until the set has n peers (the daemon learns of a closed connection asynchronously). */
static void assert_set_peers(size_t n) {
        size_t k = 0;

        for (int i = 0; i < 200; i++, usleep(10000)) {
                char **l = get_peers(SET04, VRD_DEVSET_IFACE);

                k = strv_length(l);
                strv_free(l);
                if (k == n)
                        return;
        }
        ck_abort_msg("bus_0000_04 has %zu peers, not %zu", k, n);
}



static const char *unique_name(vrd_peer *p) {
        const char *name = NULL;

        ck_assert_int_ge(sd_bus_get_unique_name(vrd_peer_get_bus(p), &name), 0);
        return name;
}

static char process_state(pid_t pid) {
        char *out = NULL, state;

        ck_assert_int_eq(harness_run(&out, "sed 's/.*) //' /proc/%d/stat", (int) pid), 0);
        state = out[0];
        free(out);
        return state;
}

/* Stopped, or (dash vfork()s its commands) asleep in the kernel until a
 * child stopped before its exec goes on: either way it cannot run. */
static bool held_still(pid_t pid) {
        char *wchan = NULL, state = process_state(pid);
        bool vfork_wait;

        if (state != 'D')
                return state == 'T';
        ck_assert_int_eq(harness_run(&wchan, "cat /proc/%d/wchan", (int) pid), 0);
        vfork_wait = strstr(wchan, "clone") || strstr(wchan, "fork");
        free(wchan);
        return vfork_wait;
}

static pid_t expect_pid(struct harness_child *c) {
        char *line = harness_expect(c, "pid ", 10000);
        pid_t pid;

        ck_assert_msg(line, "the command never said its pid");
        pid = atoi(line + 4);
        free(line);
        return pid;
}


/* --- the library ------------------------------------------------------------ */

START_TEST(test_take_release) {
        vrd_peer *a, *b;
        int device = -1, iommu = -1;
        bool paused = true;
        char *devset = NULL, **l;

        ck_assert_int_eq(vrd_peer_new(&a), 0);
        ck_assert_int_eq(vrd_peer_new(&b), 0);
        ck_assert_ptr_null(vrd_peer_error_name(a));
        ck_assert_int_eq(vrd_peer_take(a, "04:00.0", &device, &iommu, &paused), 0);
        ck_assert_int_ge(device, 3);
        ck_assert_int_ge(iommu, 3);
        ck_assert(!paused);
        ck_assert(fcntl(device, F_GETFD) & FD_CLOEXEC);         /* the caller's own copies */
        ck_assert(fcntl(iommu, F_GETFD) & FD_CLOEXEC);
        l = get_peers(DEV04_0, VRD_DEVICE_IFACE);
        ck_assert(strv_length(l) == 1 && strcmp(l[0], unique_name(a)) == 0);
        strv_free(l);

        /* the daemon's refusals, as errno and as its words */
        ck_assert_int_eq(vrd_peer_take(b, "0000:04:00.0", NULL, NULL, NULL), -EBUSY);
        ck_assert_str_eq(vrd_peer_error_name(b), VRD_ERROR_BUSY);
        ck_assert_ptr_nonnull(strstr(vrd_peer_error_message(b), "0000:04:00.0"));
        ck_assert_int_eq(vrd_peer_take(b, "03:00.0", NULL, NULL, NULL), -EOPNOTSUPP);
        ck_assert_str_eq(vrd_peer_error_name(b), VRD_ERROR_NOT_MANAGED);
        ck_assert_int_eq(vrd_peer_take(b, "0f:00.0", NULL, NULL, NULL), -ENODEV);
        ck_assert_str_eq(vrd_peer_error_name(b), VRD_ERROR_NO_SUCH_DEVICE);
        ck_assert_int_eq(vrd_peer_take(b, "04:00", NULL, NULL, NULL), -EINVAL);
        ck_assert_str_eq(vrd_peer_error_name(b), SD_BUS_ERROR_INVALID_ARGS);
        ck_assert_int_eq(vrd_peer_pause_complete(b, 4242), -EACCES);
        ck_assert_str_eq(vrd_peer_error_name(b), SD_BUS_ERROR_ACCESS_DENIED);

        /* a watcher is a peer of the set without fds */
        ck_assert_int_eq(vrd_peer_watch(b, "04:00.1"), 0);
        assert_set_peers(2);
        ck_assert_int_eq(vrd_peer_unwatch(b, "04:00.1"), 0);
        assert_set_peers(1);
        ck_assert_int_eq(vrd_peer_get_devset(a, "0000:04:00.1", &devset), 0);
        ck_assert_str_eq(devset, SET04);
        free(devset);
        {
                uint32_t ioas = 42;

                ck_assert_int_eq(vrd_peer_get_ioas(a, "04:00.0", &ioas), 0);
                ck_assert_uint_eq(ioas, 0);             /* the legacy model: the iommu fd is the container */
                ck_assert_int_eq(vrd_peer_get_ioas(a, "04:00", &ioas), -EINVAL);
                ck_assert_str_eq(vrd_peer_error_name(a), SD_BUS_ERROR_INVALID_ARGS);
        }

        /* released, the group is free for the next peer; its claims end with its connection */
        ck_assert_int_eq(vrd_peer_release(a, "04:00.0"), 0);
        assert_set_peers(0);
        ck_assert_int_eq(vrd_peer_take(b, "04:00.0", NULL, NULL, NULL), 0);
        assert_set_peers(1);
        ck_assert_ptr_null(vrd_peer_unref(b));
        assert_set_peers(0);
        close(device);
        close(iommu);
        vrd_peer_unref(a);
}
END_TEST

struct events {
        int pauses, resumes;
        bool defer;
        char type[16], devset[128], addresses[128], result[32], states[256], last_state[16];
        uint64_t reset_id, deadline;
};

static int on_pause(vrd_peer *p, const struct vrd_pause *pause, void *userdata) {
        struct events *ev = userdata;

        ev->pauses++;
        snprintf(ev->type, sizeof(ev->type), "%s", pause->type);
        snprintf(ev->devset, sizeof(ev->devset), "%s", pause->devset);
        ev->addresses[0] = '\0';
        for (const char *const *a = pause->addresses; *a; a++)
                snprintf(ev->addresses + strlen(ev->addresses), sizeof(ev->addresses) - strlen(ev->addresses),
                         "%s ", *a);
        ev->reset_id = pause->reset_id;
        ev->deadline = pause->deadline_usec;
        return ev->defer ? 1 : 0;
}

static void on_resume(vrd_peer *p, const struct vrd_resume *resume, void *userdata) {
        struct events *ev = userdata;

        ev->resumes++;
        ck_assert_uint_eq(resume->reset_id, ev->reset_id);
        snprintf(ev->result, sizeof(ev->result), "%s", resume->result);
}

static void on_progress(vrd_peer *p, const struct vrd_reset_progress *progress, void *userdata) {
        struct events *ev = userdata;

        ck_assert_str_eq(progress->devset, SET04);
        if (strcmp(progress->state, ev->last_state) == 0)
                return;
        snprintf(ev->last_state, sizeof(ev->last_state), "%s", progress->state);
        strncat(ev->states, progress->state, sizeof(ev->states) - strlen(ev->states) - 2);
        strcat(ev->states, " ");
}

static bool pump(vrd_peer *p, const int *counter, int want, unsigned timeout_ms) {
        for (unsigned i = 0; i < timeout_ms / 10; i++) {
                ck_assert_int_ge(vrd_peer_process(p), 0);
                if (*counter >= want)
                        return true;
                ck_assert_int_ge(vrd_peer_wait(p, 10000), 0);
        }
        return false;
}

/* A peer asks for a reset of its own set: the wait dispatches its own pause. */
START_TEST(test_reset_own_set) {
        struct events ev = {};
        vrd_peer *p;
        char *devset = NULL;
        uint64_t duration = 0, before;
        struct timespec ts;

        ck_assert_int_eq(vrd_peer_new(&p), 0);
        vrd_peer_on_pause(p, on_pause, &ev);
        vrd_peer_on_resume(p, on_resume, &ev);
        vrd_peer_on_reset_progress(p, on_progress, &ev);
        ck_assert_int_eq(vrd_peer_take(p, "04:00.0", NULL, NULL, NULL), 0);
        clock_gettime(CLOCK_MONOTONIC, &ts);
        before = (uint64_t) ts.tv_sec * 1000000 + (uint64_t) ts.tv_nsec / 1000;

        ck_assert_int_eq(vrd_peer_reset(p, "04:00.1", 2000000, 0, &devset, &duration), 0);
        ck_assert_str_eq(devset, SET04);
        ck_assert_uint_gt(duration, 0);
        ck_assert_int_eq(ev.pauses, 1);
        ck_assert_str_eq(ev.type, "pause");
        ck_assert_str_eq(ev.devset, SET04);
        ck_assert_str_eq(ev.addresses, "0000:04:00.0 ");         /* the devices it took */
        ck_assert_uint_gt(ev.deadline, before);                  /* CLOCK_MONOTONIC, our 2 s away */
        ck_assert_uint_le(ev.deadline, before + 3000000);
        ck_assert_msg(strstr(ev.states, "idle quiescing resetting"), "states seen: %s", ev.states);
        /* the Resume may trail the reply */
        ck_assert(pump(p, &ev.resumes, 1, 5000));
        ck_assert_str_eq(ev.result, "done");
        free(devset);
        vrd_peer_unref(p);
}
END_TEST

/* A handler that returns 1 acknowledges later; only the daemon may pause us. */
START_TEST(test_deferred_ack_and_forged_pause) {
        struct events ev = { .defer = true };
        struct harness_child reset;
        sd_bus_message *m = NULL;
        vrd_peer *p;

        ck_assert_int_eq(vrd_peer_new(&p), 0);
        vrd_peer_on_pause(p, on_pause, &ev);
        vrd_peer_on_resume(p, on_resume, &ev);
        ck_assert_int_eq(vrd_peer_take(p, "04:00.0", NULL, NULL, NULL), 0);

        /* Any client may send a unicast signal; the library drops those not from the daemon. */
        ck_assert_int_ge(sd_bus_message_new_signal(h.bus, &m, VRD_ROOT_PATH, VRD_MANAGER_IFACE, "Pause"), 0);
        ck_assert_int_ge(sd_bus_message_set_destination(m, unique_name(p)), 0);
        ck_assert_int_ge(sd_bus_message_append(m, "otstas", SET04, (uint64_t) 7, "pause", (uint64_t) 0, 1,
                                               "0000:04:00.0"), 0);
        ck_assert_int_ge(sd_bus_send(h.bus, m, NULL), 0);
        sd_bus_message_unref(m);
        ck_assert(!pump(p, &ev.pauses, 1, 300));

        harness_spawn(&reset, (const char *const[]) { ctl(), "reset", "04:00.0", NULL });
        ck_assert(pump(p, &ev.pauses, 1, 10000));
        harness_expect_line(&reset, "quiescing: 0 of 1 peer acked", NULL);
        ck_assert_int_eq(vrd_peer_pause_complete(p, ev.reset_id), 0);
        harness_expect_line(&reset, "quiescing: 1 of 1 peer acked", NULL);
        harness_expect_line(&reset, "done in ", NULL);
        ck_assert_int_eq(harness_child_wait(&reset, 10000), 0);
        ck_assert(pump(p, &ev.resumes, 1, 5000));
        ck_assert_str_eq(ev.result, "done");
        harness_child_stop(&reset);
        vrd_peer_unref(p);
}
END_TEST

/* A watch that joins a reset under way is paused (a dma-buf importer must not
 * map its buffer until the Resume); one on an idle set is not. */
START_TEST(test_watch_paused) {
        struct events ev = { .defer = true }, wev = {};
        struct harness_child reset;
        vrd_peer *p, *w, *x;
        bool paused = false;

        ck_assert_int_eq(vrd_peer_new(&p), 0);
        ck_assert_int_eq(vrd_peer_new(&w), 0);
        ck_assert_int_eq(vrd_peer_new(&x), 0);
        vrd_peer_on_pause(p, on_pause, &ev);
        vrd_peer_on_resume(p, on_resume, &ev);
        vrd_peer_on_pause(w, on_pause, &wev);
        vrd_peer_on_resume(w, on_resume, &wev);
        ck_assert_int_eq(vrd_peer_take(p, "04:00.0", NULL, NULL, NULL), 0);

        paused = true;
        ck_assert_int_eq(vrd_peer_watch_paused(x, "04:00.1", &paused), 0);
        ck_assert(!paused);
        ck_assert_int_eq(vrd_peer_unwatch(x, "04:00.1"), 0);

        harness_spawn(&reset, (const char *const[]) { ctl(), "reset", "04:00.0", NULL });
        ck_assert(pump(p, &ev.pauses, 1, 10000));
        ck_assert_int_eq(vrd_peer_watch_paused(w, "04:00.1", &paused), 0);
        ck_assert(paused);
        ck_assert_int_eq(vrd_peer_pause_complete(p, ev.reset_id), 0);
        harness_expect_line(&reset, "done in ", NULL);
        ck_assert_int_eq(harness_child_wait(&reset, 10000), 0);
        /* The Resume of the reset it joined, without a Pause before it. */
        wev.reset_id = ev.reset_id;
        ck_assert(pump(w, &wev.resumes, 1, 5000));
        ck_assert_int_eq(wev.pauses, 0);
        ck_assert_str_eq(wev.result, "done");
        /* NULL: a plain watch. */
        ck_assert_int_eq(vrd_peer_watch_paused(x, "04:00.1", NULL), 0);
        assert_set_peers(3);
        harness_child_stop(&reset);
        vrd_peer_unref(x);
        vrd_peer_unref(w);
        vrd_peer_unref(p);
}
END_TEST

/* The daemon leaves the bus while this peer is paused: no Resume will come,
 * so the library ends the pause itself, and refuses to acknowledge it. */
START_TEST(test_daemon_gone) {
        struct events ev = { .defer = true };
        struct harness_child reset;
        sd_bus *silent = harness_silent_watcher("04:00.1");
        uint64_t killed;
        vrd_peer *p;

        ck_assert_int_eq(vrd_peer_new(&p), 0);
        vrd_peer_on_pause(p, on_pause, &ev);
        vrd_peer_on_resume(p, on_resume, &ev);
        ck_assert_int_eq(vrd_peer_take(p, "04:00.0", NULL, NULL, NULL), 0);
        harness_spawn(&reset, (const char *const[]) { ctl(), "reset", "04:00.0", "--timeout=30", NULL });
        ck_assert(pump(p, &ev.pauses, 1, 10000));
        ck_assert_str_eq(ev.type, "pause");

        harness_kill_daemon(&h, SIGKILL);     /* it cannot send a Resume, nor anything else */
        killed = monotonic_usec();
        ck_assert_msg(pump(p, &ev.resumes, 1, 2000), "no resume within 2 s of the daemon's death");
        ck_assert_str_eq(ev.result, "daemon-gone");
        ck_assert_str_eq(ev.devset, SET04);
        /* local and at once: there is no daemon to wait for */
        ck_assert_int_eq(vrd_peer_pause_complete(p, ev.reset_id), -ENOTCONN);
        ck_assert_str_eq(vrd_peer_error_name(p), VRD_PEER_ERROR_DAEMON_GONE);
        ck_assert_ptr_nonnull(strstr(vrd_peer_error_message(p), "left the bus"));
        ck_assert_uint_lt(monotonic_usec() - killed, 2000000);
        /* nothing more: one end per pause */
        ck_assert(!pump(p, &ev.resumes, 2, 300));
        ck_assert_int_eq(harness_child_wait(&reset, 10000), 1);  /* its requester hears it too, from the bus */
        harness_child_stop(&reset);
        sd_bus_flush_close_unref(silent);
        vrd_peer_unref(p);
}
END_TEST

/* The man page's example is this file from its first #include on. */
static void assert_man_page_shows(const char *file) {
        char *man = NULL, *src = NULL, *line;
        size_t k = 0;

        ck_assert_int_eq(harness_run(&man, "sed -e 's/\\\\-/-/g' -e 's/\\\\e/\\\\/g' -e \"s/\\\\\\\\(aq/'/g\" "
                                     "'%s/../docs/libvfio-resetd.3'", getenv("TESTS_DIR")), 0);
        ck_assert_int_eq(harness_run(&src, "sed -n '/^#include/,$p' '%s/%s'", getenv("TESTS_DIR"), file), 0);
        for (char *save = NULL, *s = src; (line = strtok_r(s, "\n", &save)); s = NULL, k++)
                ck_assert_msg(strstr(man, line), "docs/libvfio-resetd.3 lacks this line of tests/%s:\n%s", file,
                              line);
        ck_assert_uint_gt(k, 20);
        free(man);
        free(src);
}

START_TEST(test_example_peer) {
        struct harness_child peer;
        char path[512], *out;
        json_object *o, *v;

        assert_man_page_shows("example-peer.c");
        snprintf(path, sizeof(path), "%s/example-peer", getenv("TESTS_BUILDDIR"));
        harness_spawn(&peer, (const char *const[]) { path, "0000:04:00.0", NULL });
        harness_expect_line(&peer, "took", "0000:04:00.0");

        free(assert_run(0, cmdf("%s reset 04:00.1", ctl()), "Resetting dev_set bus_0000_04 (1 peer)\n", "reset 1 started\n",
                        "quiescing: 1 of 1 peer acked\n", "resetting\n", "resuming\n",
                        "done in "));
        harness_expect_line(&peer, "pause", "pause pause");
        harness_expect_line(&peer, "resume", "resume done");

        out = assert_run(0, cmdf("%s --json reset 0000:04:00.0 --timeout=5", ctl()), "\"result\"");
        o = json_tokener_parse(out);
        ck_assert_msg(o, "not JSON: %s", out);
        ck_assert(json_object_object_get_ex(o, "devset", &v));
        ck_assert_str_eq(json_object_get_string(v), "bus_0000_04");
        ck_assert(json_object_object_get_ex(o, "result", &v));
        ck_assert_str_eq(json_object_get_string(v), "done");
        ck_assert(json_object_object_get_ex(o, "duration_usec", &v));
        ck_assert_int_gt(json_object_get_int64(v), 0);
        ck_assert_ptr_null(strstr(out, "quiescing"));            /* JSON only */
        json_object_put(o);
        free(out);
        harness_expect_line(&peer, "resume", "resume done");
        harness_child_stop(&peer);
}
END_TEST

/* --- vfio-resetctl reset -------------------------------------------------------- */

START_TEST(test_reset_exit_codes) {
        vrd_peer *silent;
        char *out;
        json_object *o, *v;

        /* a peer that never answers: this process, blocked in the command */
        ck_assert_int_eq(vrd_peer_new(&silent), 0);
        ck_assert_int_eq(vrd_peer_take(silent, "04:00.1", NULL, NULL, NULL), 0);
        free(assert_run(1, cmdf("%s reset 04:00.0 --timeout=0.3", ctl()), "quiescing: 0 of 1 peer acked",
                        "cannot reset 0000:04:00.0: ", unique_name(silent)));
        out = assert_run(1, cmdf("%s reset --json --timeout 0.3 04:00.0", ctl()), VRD_ERROR_QUIESCE_TIMEOUT);
        o = json_tokener_parse(strchr(out, '{'));
        ck_assert_msg(o, "no JSON in: %s", out);
        ck_assert(json_object_object_get_ex(o, "message", &v));
        ck_assert_ptr_nonnull(strstr(json_object_get_string(v), unique_name(silent)));
        json_object_put(o);
        free(out);
        free(assert_run(0, cmdf("%s reset 04:00.0 --timeout=0.3 --force", ctl()), "resetting", "done in "));
        vrd_peer_unref(silent);

        free(assert_run(1, cmdf("%s reset 0f:00.0", ctl()), "No PCI device 0000:0f:00.0"));
        free(assert_run(2, cmdf("%s reset 04:00", ctl()), "'04:00'", "not a PCI address"));
        free(assert_run(2, cmdf("%s reset 04:00.0 --timeout=soon", ctl()), "--timeout 'soon'"));
        free(assert_run(2, cmdf("%s reset 04:00.0 --timeout=-1", ctl()), "--timeout '-1'"));
        free(assert_run(2, cmdf("%s reset 04:00.0 --frob", ctl()), "unknown option --frob for reset"));
        free(assert_run(2, cmdf("%s reset", ctl()), "one PCI address"));
}
END_TEST

/* --- vfio-resetctl hold --------------------------------------------------------- */

/* The command of hold: reports what it was given, then waits for a file. */
static const char hold_script[] =
        "echo pid $$\n"
        "echo env $VFIO_RESETD_DEVICES\n"
        "for a in $VFIO_RESETD_DEVICES; do\n"
        "        n=$(echo $a | tr :. __)\n"
        "        eval d=\\$VFIO_RESETD_DEVICE_FD_$n i=\\$VFIO_RESETD_IOMMU_FD_$n\n"
        "        echo fds $a $(readlink /proc/$$/fd/$d) $(readlink /proc/$$/fd/$i)\n"
        "done\n"
        "while [ ! -e \"$1\" ]; do sleep 0.02; done\n"
        "exit 7\n";

START_TEST(test_hold) {
        struct harness_child hold, reset;
        char script[128], stop[128];
        pid_t pid;
        FILE *f;

        snprintf(script, sizeof(script), "%s/hold.sh", h.dir);
        snprintf(stop, sizeof(stop), "%s/stop", h.dir);
        f = fopen(script, "we");
        ck_assert_ptr_nonnull(f);
        fputs(hold_script, f);
        fclose(f);

        harness_spawn(&hold, (const char *const[]) { ctl(), "hold", "04:00.0", "0000:04:00.1", "--", "sh", script,
                                                     stop, NULL });
        pid = expect_pid(&hold);
        harness_expect_line(&hold, "env", "env 0000:04:00.0 0000:04:00.1");
        /* the kernel double's device fds are memfds named after their device (and the testbed) */
        harness_expect_line(&hold, "fds 0000:04:00.0 /memfd:vfio-fake-0000:04:00.0@", " (deleted) anon_inode:[eventfd]");
        harness_expect_line(&hold, "fds 0000:04:00.1 /memfd:vfio-fake-0000:04:00.1@", " (deleted) anon_inode:[eventfd]");
        assert_set_peers(1);
        ck_assert_int_ne(process_state(pid), 'T');

        /* While the set is reset the command is stopped, after it it runs again. */
        set_kernel("delay_ms=600");
        harness_spawn(&reset, (const char *const[]) { ctl(), "reset", "04:00.0", NULL });
        harness_expect_line(&reset, "quiescing: 1 of 1 peer acked", NULL);
        harness_expect_line(&reset, "resetting", NULL);
        ck_assert_msg(held_still(pid), "the command runs during the reset: state %c", process_state(pid));
        harness_expect_line(&reset, "done in ", NULL);
        ck_assert_int_eq(harness_child_wait(&reset, 10000), 0);
        for (int i = 0; i < 200 && process_state(pid) == 'T'; i++)
                usleep(10000);
        ck_assert_int_ne(process_state(pid), 'T');

        /* Its exit status is hold's, and the devices go back. */
        close(creat(stop, 0644));
        ck_assert_int_eq(harness_child_wait(&hold, 10000), 7);
        assert_set_peers(0);
        harness_child_stop(&reset);
        harness_child_stop(&hold);
}
END_TEST

/* dash vfork()s every command: a SIGSTOP between the vfork and the exec stops
 * the child and leaves the parent asleep in the kernel, not stopped but
 * unable to run. hold once waited for it until the deadline. */
START_TEST(test_hold_counts_a_vfork_parent_as_stopped) {
        struct harness_child hold;
        char helper[512], *out = NULL;
        pid_t pid;
        int status = -1;

        snprintf(helper, sizeof(helper), "%s/vfork-parent", getenv("TESTS_BUILDDIR"));
        harness_spawn(&hold, (const char *const[]) { ctl(), "hold", "04:00.0", "--", helper, NULL });
        pid = expect_pid(&hold);
        for (int i = 0; i < 500 && process_state(pid) != 'D'; i++)
                usleep(10000);
        ck_assert_int_eq(process_state(pid), 'D');
        status = harness_run(&out, "%s reset --timeout 5 04:00.0", ctl());
        ck_assert_msg(status == 0 && strstr(out, "done in "), "reset exited %d: %s", status, out);
        free(out);
        kill(-pid, SIGKILL);
        ck_assert_int_eq(harness_child_wait(&hold, 10000), 128 + SIGKILL);
        harness_child_stop(&hold);
}
END_TEST

START_TEST(test_hold_status_and_signals) {
        struct harness_child hold;
        pid_t pid;

        free(assert_run(3, cmdf("%s hold 04:00.0 -- sh -c 'exit 3'", ctl()), ""));
        free(assert_run(137, cmdf("%s hold 04:00.0 -- sh -c 'kill -KILL $$'", ctl()), ""));
        free(assert_run(127, cmdf("%s hold 04:00.0 -- /nonexistent/command", ctl()), "cannot run /nonexistent"));
        free(assert_run(1, cmdf("%s hold 04:00.0 03:00.0 -- true", ctl()), "cannot take 0000:03:00.0"));
        assert_set_peers(0);    /* 04:00.0, taken first, went back */
        free(assert_run(2, cmdf("%s hold 04:00.0 true", ctl()), "then -- and the command"));
        free(assert_run(2, cmdf("%s hold 04:00.0 4:00.1 -- true", ctl()), "'4:00.1'"));

        /* SIGTERM to hold reaches the command's process group */
        harness_spawn(&hold, (const char *const[]) { ctl(), "hold", "04:00.0", "--", "sh", "-c",
                                                     "echo pid $$; exec sleep 30", NULL });
        pid = expect_pid(&hold);
        ck_assert_int_eq(kill(hold.pid, SIGTERM), 0);
        ck_assert_int_eq(harness_child_wait(&hold, 10000), 128 + SIGTERM);
        ck_assert_int_eq(kill(pid, 0), -1);
        harness_child_stop(&hold);
}
END_TEST

/* A take while the set is being reset says so; hold starts the command after the Resume. */
START_TEST(test_hold_waits_for_reset) {
        struct harness_child hold, reset;
        char *line, *state = NULL;

        set_kernel("delay_ms=800");
        harness_spawn(&reset, (const char *const[]) { ctl(), "reset", "04:00.0", NULL });
        harness_expect_line(&reset, "resetting", NULL);
        harness_spawn(&hold, (const char *const[]) { ctl(), "hold", "04:00.1", "--", "sh", "-c", "echo started",
                                                     NULL });
        line = harness_expect(&hold, "started", 10000);
        ck_assert_msg(line, "the command never started");
        free(line);
        /* 800 ms of resetting would have left time to start it too early */
        ck_assert_int_ge(sd_bus_get_property_string(h.bus, VRD_BUS_NAME, SET04, VRD_DEVSET_IFACE, "State", NULL,
                                                    &state), 0);
        ck_assert_msg(strcmp(state, "resetting") != 0 && strcmp(state, "quiescing") != 0, "started while %s", state);
        free(state);
        ck_assert_int_eq(harness_child_wait(&reset, 10000), 0);
        ck_assert_int_eq(harness_child_wait(&hold, 10000), 0);
        harness_child_stop(&reset);
        harness_child_stop(&hold);
}
END_TEST

/* The daemon dies while hold's command is stopped for a reset: hold continues
 * it, says why, and keeps it running to exit with its status. */
START_TEST(test_hold_daemon_gone) {
        struct harness_child hold, reset;
        sd_bus *silent = harness_silent_watcher("04:00.1");
        char *line;
        pid_t pid;

        harness_spawn(&hold, (const char *const[]) { ctl(), "hold", "04:00.0", "--", "sh", "-c",
                                                     "echo pid $$; exec sleep 30", NULL });
        pid = expect_pid(&hold);
        assert_set_peers(2);
        harness_spawn(&reset, (const char *const[]) { ctl(), "reset", "04:00.0", "--timeout=30", NULL });
        /* hold acknowledged, the silent watcher never will: the reset stays quiescing */
        harness_expect_line(&reset, "quiescing: 1 of 2 peers acked", NULL);
        ck_assert_int_eq(process_state(pid), 'T');

        harness_kill_daemon(&h, SIGKILL);
        for (int i = 0; i < 200 && process_state(pid) == 'T'; i++)
                usleep(10000);
        ck_assert_msg(process_state(pid) != 'T', "the command is still stopped 2 s after the daemon died");
        harness_expect_line(&hold, "vfio-resetctl: vfio-resetd left the bus during reset 1; resuming sh (pid ", NULL);
        ck_assert_int_eq(kill(pid, 0), 0);
        ck_assert_int_eq(harness_child_wait(&hold, 300), -1);   /* hold stays with its command */

        /* The claims went with the daemon: nothing to give back, the command's status is hold's. */
        ck_assert_int_eq(kill(pid, SIGTERM), 0);
        ck_assert_int_eq(harness_child_wait(&hold, 10000), 128 + SIGTERM);
        while ((line = harness_expect(&hold, "", 200))) {
                ck_assert_msg(!strstr(line, "cannot release"), "hold said: %s", line);
                free(line);
        }
        harness_child_stop(&reset);
        harness_child_stop(&hold);
        sd_bus_flush_close_unref(silent);
}
END_TEST

/* Other peers' lookups of a set's path, seen by eavesdropping (the private bus
 * allows it; sd-bus's own matches do not know the key, hence AddMatch by hand). */
#define LOOKUPS "type='method_call',interface='" VRD_MANAGER_IFACE "',member='GetDevSet',eavesdrop='true'"

/* Counts them, and keeps them from the object dispatch of a bus they are not for. */
static int count_lookup(sd_bus_message *m, void *userdata, sd_bus_error *ret_error) {
        const char *me = NULL;

        if (!sd_bus_message_is_method_call(m, VRD_MANAGER_IFACE, "GetDevSet") ||
            (sd_bus_get_unique_name(h.bus, &me) >= 0 && streq_ptr(sd_bus_message_get_destination(m), me)))
                return 0;
        (*(unsigned *) userdata)++;
        return 1;
}

/* A take that found the set paused holds the command back; the daemon dying then ends hold. */
START_TEST(test_hold_daemon_gone_before_start) {
        struct harness_child hold, reset;
        sd_bus *silent = harness_silent_watcher("04:00.1");
        sd_bus_slot *slot = NULL;
        unsigned lookups = 0;

        harness_spawn(&reset, (const char *const[]) { ctl(), "reset", "04:00.0", "--timeout=30", NULL });
        harness_expect_line(&reset, "quiescing: 0 of 1 peer acked", NULL);
        /* hold is set up, waiting for the Resume, once the daemon answered both of its
         * lookups of the set's path (the library's and its own); a daemon killed before
         * that fails the take instead */
        ck_assert_int_ge(sd_bus_add_filter(h.bus, &slot, count_lookup, &lookups), 0);
        ck_assert_int_ge(sd_bus_call_method(h.bus, "org.freedesktop.DBus", "/org/freedesktop/DBus",
                                            "org.freedesktop.DBus", "AddMatch", NULL, NULL, "s", LOOKUPS), 0);
        harness_spawn(&hold, (const char *const[]) { ctl(), "hold", "04:00.0", "--", "sh", "-c", "echo started",
                                                     NULL });
        for (int i = 0; i < 1000 && lookups < 2; i++)
                if (sd_bus_process(h.bus, NULL) == 0)
                        (void) sd_bus_wait(h.bus, 10000);
        ck_assert_uint_eq(lookups, 2);
        ck_assert_int_ge(sd_bus_call_method(h.bus, "org.freedesktop.DBus", "/org/freedesktop/DBus",
                                            "org.freedesktop.DBus", "RemoveMatch", NULL, NULL, "s", LOOKUPS), 0);
        sd_bus_slot_unref(slot);
        assert_set_peers(2);    /* a call of ours, answered after hold's */
        harness_kill_daemon(&h, SIGKILL);
        harness_expect_line(&hold, "vfio-resetctl: vfio-resetd left the bus during a reset of " SET04 "; not starting sh", NULL);
        ck_assert_int_eq(harness_child_wait(&hold, 10000), 1);
        ck_assert_ptr_null(harness_expect(&hold, "started", 200));
        harness_child_stop(&reset);
        harness_child_stop(&hold);
        sd_bus_flush_close_unref(silent);
}
END_TEST

int main(void) {
        Suite *s = suite_create("client");
        TCase *tc = tcase_create("lab");

        tcase_add_checked_fixture(tc, setup, teardown);
        tcase_set_timeout(tc, 60);
        tcase_add_test(tc, test_take_release);
        tcase_add_test(tc, test_reset_own_set);
        tcase_add_test(tc, test_deferred_ack_and_forged_pause);
        tcase_add_test(tc, test_watch_paused);
        tcase_add_test(tc, test_daemon_gone);
        tcase_add_test(tc, test_example_peer);
        tcase_add_test(tc, test_reset_exit_codes);
        tcase_add_test(tc, test_hold);
        tcase_add_test(tc, test_hold_counts_a_vfork_parent_as_stopped);
        tcase_add_test(tc, test_hold_status_and_signals);
        tcase_add_test(tc, test_hold_waits_for_reset);
        tcase_add_test(tc, test_hold_daemon_gone);
        tcase_add_test(tc, test_hold_daemon_gone_before_start);
        suite_add_tcase(s, tc);
        return check_run(s);
}
