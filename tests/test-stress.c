/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The fault and load suite: the daemon with the kernel test double on a
 * private bus over the fake lab sysfs, pushed where the protocol tests do not
 * go. Each case asserts that nothing is lost: every requester gets an
 * answer, every peer keeps or cleanly loses its claim, every set returns to
 * idle and the daemon keeps serving. Sizes and latencies are reported on
 * stdout ("stress: ..."), never asserted as times. */
#include <check.h>
#include <dirent.h>
#include <errno.h>
#include <inttypes.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "bus-harness.h"
#include "bus-names.h"
#include "check-run.h"
#include "lab-harness.h"
#include "macro.h"
#include "testbed.h"

#define UNMANAGED_03_1_REL "devices/pci0000:00/0000:00:06.0/0000:03:00.1"

/* Under AddressSanitizer freed memory waits in a quarantine (256 MiB by
 * default) before it is reused, so RSS says nothing of leaks there; its
 * LeakSanitizer does, at the daemon's exit. */
#if defined(__SANITIZE_ADDRESS__)
#define RSS_MEANINGFUL false
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define RSS_MEANINGFUL false
#endif
#endif
#ifndef RSS_MEANINGFUL
#define RSS_MEANINGFUL true
#endif

/* --- what the daemon costs -------------------------------------------------------- */

static size_t daemon_fds(void) {
        char path[64];
        size_t n = 0;
        DIR *d;

        snprintf(path, sizeof(path), "/proc/%d/fd", (int) h.daemon_pid);
        d = opendir(path);
        ck_assert_ptr_nonnull(d);
        for (struct dirent *de; (de = readdir(d));)
                n += de->d_name[0] != '.';
        closedir(d);
        return n;
}

static unsigned long daemon_rss_kib(void) {
        char path[64], line[256];
        unsigned long kib = 0;
        FILE *f;

        snprintf(path, sizeof(path), "/proc/%d/status", (int) h.daemon_pid);
        f = fopen(path, "re");
        ck_assert_ptr_nonnull(f);
        while (fgets(line, sizeof(line), f))
                if (sscanf(line, "VmRSS: %lu kB", &kib) == 1)
                        break;
        fclose(f);
        return kib;
}

/* --- clients of their own: one bus connection each, pumped together --------------- */

struct client {
        sd_bus *bus;
        size_t sent, in_flight;
};

static struct client *clients_new(size_t n) {
        struct client *v = calloc(n, sizeof(*v));

        ck_assert_ptr_nonnull(v);
        for (size_t i = 0; i < n; i++)
                ck_assert_int_ge(sd_bus_open_system(&v[i].bus), 0);
        return v;
}

static void clients_free(struct client *v, size_t n) {
        for (size_t i = 0; i < n; i++)
                sd_bus_flush_close_unref(v[i].bus);
        free(v);
}

/* Processes what every client bus and h.bus have ready, waiting up to 1 ms. */
static void clients_pump(struct client *v, size_t n) {
        struct pollfd fds[n + 1];

        for (size_t i = 0; i <= n; i++) {
                sd_bus *b = i < n ? v[i].bus : h.bus;

                fds[i] = (struct pollfd) { .fd = sd_bus_get_fd(b), .events = (short) sd_bus_get_events(b) };
        }
        (void) poll(fds, n + 1, 1);
        for (size_t i = 0; i <= n; i++)
                while (sd_bus_process(i < n ? v[i].bus : h.bus, NULL) > 0)
                        ;
}

/* --- a storm of requests ------------------------------------------------------------ */

struct storm {
        size_t answered, done, errors;
        char first_error[256];
};

struct storm_call {
        struct storm *storm;
        struct client *client;
};

static int on_storm_reply(sd_bus_message *m, void *userdata, sd_bus_error *error) {
        struct storm_call *sc = userdata;
        struct storm *s = sc->storm;
        const sd_bus_error *e = sd_bus_message_get_error(m);
        const char *path, *result;
        uint64_t duration;

        s->answered++;
        sc->client->in_flight--;
        if (e) {
                if (!s->errors++)
                        snprintf(s->first_error, sizeof(s->first_error), "%s: %s", e->name, e->message ?: "");
        } else if (sd_bus_message_read(m, "ost", &path, &result, &duration) >= 0 && streq_ptr(result, "done"))
                s->done++;
        else if (!s->errors++)
                snprintf(s->first_error, sizeof(s->first_error), "result %s", result ?: "?");
        free(sc);
        return 0;
}

static void storm_send(struct storm *s, struct client *c, const char *address) {
        struct storm_call *sc = malloc(sizeof(*sc));

        ck_assert_ptr_nonnull(sc);
        *sc = (struct storm_call) { .storm = s, .client = c };
        ck_assert_int_ge(sd_bus_call_method_async(c->bus, NULL, VRD_BUS_NAME, VRD_ROOT_PATH, VRD_MANAGER_IFACE,
                                                  "ResetDevice", on_storm_reply, sc, "sa{sv}", address, 0),
                         0);
        c->sent++;
        c->in_flight++;
}

struct probe {
        bool done;
        uint64_t sent_usec, worst_usec;
        size_t answered;
};

static int on_probe_reply(sd_bus_message *m, void *userdata, sd_bus_error *error) {
        struct probe *p = userdata;
        uint64_t took = monotonic_usec() - p->sent_usec;

        ck_assert_msg(!sd_bus_message_is_method_error(m, NULL), "GetDevice during the storm: %s",
                      sd_bus_message_get_error(m)->message);
        if (took > p->worst_usec)
                p->worst_usec = took;
        p->answered++;
        p->done = true;
        return 0;
}

/* 10,000 ResetDevice calls on one set from 50 clients (at most 20 in flight
 * each: dbus-daemon caps pending replies per connection), 8 peers acking
 * every Pause, and the Manager asked GetDevice all along. */
START_TEST(test_ten_thousand_requests) {
        enum { N_CLIENTS = 50, PER_CLIENT = 200, IN_FLIGHT = 20, N_PEERS = 8 };
        struct client *clients = clients_new(N_CLIENTS);
        struct storm s = {};
        struct probe p = { .done = true };
        struct crowd peers;
        uint64_t t0, end;
        int kernel_resets;

        set_kernel("delay_ms=0");
        crowd_join(&peers, N_PEERS, "0000:04:00.0");
        t0 = monotonic_usec();
        end = t0 + 120 * USEC_PER_SEC;
        while (s.answered < N_CLIENTS * PER_CLIENT && monotonic_usec() < end) {
                for (size_t i = 0; i < N_CLIENTS; i++)
                        while (clients[i].sent < PER_CLIENT && clients[i].in_flight < IN_FLIGHT)
                                storm_send(&s, &clients[i], i % 2 ? "0000:04:00.0" : "04:00.1");
                if (p.done) {
                        p.done = false;
                        p.sent_usec = monotonic_usec();
                        ck_assert_int_ge(sd_bus_call_method_async(h.bus, NULL, VRD_BUS_NAME, VRD_ROOT_PATH,
                                                                  VRD_MANAGER_IFACE, "GetDevice", on_probe_reply, &p,
                                                                  "s", "0000:04:00.1"),
                                         0);
                }
                crowd_pump(&peers, NULL);
                clients_pump(clients, N_CLIENTS);
        }
        kernel_resets = count_resets("0000:04:00.0");
        /* the Resumes of the last reset may follow its answers */
        for (uint64_t until = monotonic_usec() + 10 * USEC_PER_SEC;
             crowd_resumed(&peers, (uint64_t) kernel_resets) < N_PEERS && monotonic_usec() < until;)
                crowd_pump(&peers, NULL);
        printf("stress: %d requests from %d clients, %d peers: %zu answered in %.2f s, %zu done, %d kernel resets, "
               "%zu GetDevice answered during the storm, the slowest in %.1f ms\n",
               N_CLIENTS * PER_CLIENT, N_CLIENTS, N_PEERS, s.answered, (monotonic_usec() - t0) / 1e6, s.done,
               kernel_resets, p.answered, p.worst_usec / 1e3);
        ck_assert_msg(s.answered == N_CLIENTS * PER_CLIENT, "%zu of %d requests answered", s.answered,
                      N_CLIENTS * PER_CLIENT);
        ck_assert_msg(s.errors == 0, "%zu requests failed, the first: %s", s.errors, s.first_error);
        ck_assert_int_ge(kernel_resets, 1);
        ck_assert_int_le(kernel_resets, N_CLIENTS * PER_CLIENT);
        ck_assert_uint_ge(p.answered, 1);
        /* every peer was paused and resumed once a reset */
        ck_assert_uint_eq(crowd_resumed(&peers, (uint64_t) kernel_resets), N_PEERS);
        assert_idle(SET04);
        crowd_leave(&peers);
        clients_free(clients, N_CLIENTS);
        ck_assert(harness_daemon_alive(&h));
}
END_TEST

/* --- cycles: what stays behind -------------------------------------------------- */

static void take_release(sd_bus *bus, const char *address) {
        sd_bus_error e = SD_BUS_ERROR_NULL;
        sd_bus_message *reply = NULL;
        int device, iommu, paused;

        ck_assert_msg(sd_bus_call_method(bus, VRD_BUS_NAME, VRD_ROOT_PATH, VRD_MANAGER_IFACE, "TakeDevice", &e, &reply,
                                         "s", address) >= 0,
                      "TakeDevice(%s): %s", address, e.message);
        ck_assert_int_ge(sd_bus_message_read(reply, "hhb", &device, &iommu, &paused), 0);
        ck_assert_int_ge(device, 0);
        ck_assert_int_ge(iommu, 0);
        sd_bus_message_unref(reply);    /* closes our copies of both fds */
        ck_assert_msg(sd_bus_call_method(bus, VRD_BUS_NAME, VRD_ROOT_PATH, VRD_MANAGER_IFACE, "ReleaseDevice", &e, NULL,
                                         "s", address) >= 0,
                      "ReleaseDevice(%s): %s", address, e.message);
}

/* 10,000 take/release cycles, then 1,000 resets with a peer that acks: the
 * daemon's fds are as many after as before, its RSS grows by little. */
START_TEST(test_cycles_leave_nothing_behind) {
        enum { TAKES = 10000, RESETS = 1000 };
        /* what a heap may keep of its high-water mark, and the double's log buffers */
        const unsigned long rss_slack_kib = 1024;
        sd_bus *peer = NULL;
        struct crowd watcher;
        size_t fds0, fds1, fds2;
        unsigned long rss0, rss1, rss2;
        uint64_t t0;

        set_kernel("delay_ms=0");
        ck_assert_int_ge(sd_bus_open_system(&peer), 0);
        take_release(peer, "0000:04:00.0");     /* the first take opens what the daemon keeps */
        fds0 = daemon_fds();
        rss0 = daemon_rss_kib();
        t0 = monotonic_usec();
        for (int i = 0; i < TAKES; i++)
                take_release(peer, i % 2 ? "0000:04:00.0" : "0000:04:00.1");
        fds1 = daemon_fds();
        rss1 = daemon_rss_kib();
        printf("stress: %d take/release cycles in %.2f s: daemon fds %zu -> %zu, RSS %lu -> %lu KiB\n", TAKES,
               (monotonic_usec() - t0) / 1e6, fds0, fds1, rss0, rss1);

        crowd_join(&watcher, 1, "0000:04:00.0");
        t0 = monotonic_usec();
        for (int i = 0; i < RESETS; i++) {
                struct call c;

                reset_async(&c, "0000:04:00.0", NULL);
                for (uint64_t end = monotonic_usec() + 10 * USEC_PER_SEC; !c.done && monotonic_usec() < end;)
                        crowd_pump(&watcher, h.bus);
                ck_assert_msg(c.done, "reset %d got no answer", i);
                ck_assert_msg(!*c.error, "reset %d: %s: %s", i, c.error, c.message);
                ck_assert_str_eq(c.result, "done");
        }
        crowd_leave(&watcher);
        fds2 = daemon_fds();
        rss2 = daemon_rss_kib();
        printf("stress: %d resets with a peer in %.2f s: daemon fds %zu -> %zu, RSS %lu -> %lu KiB\n", RESETS,
               (monotonic_usec() - t0) / 1e6, fds1, fds2, rss1, rss2);
        ck_assert_int_eq(count_resets("0000:04:00.0"), RESETS);
        ck_assert_uint_eq(fds1, fds0);
        ck_assert_uint_eq(fds2, fds0);
        if (RSS_MEANINGFUL) {
                ck_assert_msg(rss1 <= rss0 + rss_slack_kib, "RSS grew from %lu to %lu KiB over the takes", rss0, rss1);
                ck_assert_msg(rss2 <= rss1 + rss_slack_kib, "RSS grew from %lu to %lu KiB over the resets", rss1,
                              rss2);
        }
        assert_idle(SET04);
        sd_bus_flush_close_unref(peer);
}
END_TEST

/* --- the kernel stalls ---------------------------------------------------------- */

/* The kernel reset stalls past the daemon's stop bound (10 s), and the
 * daemon is asked to stop: it answers the requester and resumes the peer
 * without waiting for the kernel, and exits 0. */
START_TEST(test_kernel_stalls_and_the_daemon_stops) {
        struct peer a;
        struct call c;
        uint64_t t_term, t_answer;
        char *state = NULL;

        set_kernel("delay_ms=30000");
        peer_start(&a, "--take", "0000:04:00.0", NULL);
        reset_async(&c, "0000:04:00.0", NULL);
        assert_peer_says(&a, "acked", NULL);
        for (int i = 0; i < 500; i++) {
                free(state);
                state = get_string(SET04, VRD_DEVSET_IFACE, "State");
                if (streq_ptr(state, "resetting"))
                        break;
                usleep(10000);
        }
        ck_assert_str_eq(state, "resetting");
        free(state);
        t_term = monotonic_usec();
        kill(h.daemon_pid, SIGTERM);
        ck_assert_msg(harness_wait(&h, &c.done, 20000), "no answer after SIGTERM");
        t_answer = monotonic_usec();
        printf("stress: a kernel reset stalled; SIGTERM answered after %.2f s\n", (t_answer - t_term) / 1e6);
        ck_assert_str_eq(c.error, VRD_ERROR_SHUTTING_DOWN);
        ck_assert_msg(strstr(c.message, "did not return"), "%s", c.message);
        assert_peer_says(&a, "resume", "daemon-stopping");
        ck_assert_int_eq(harness_terminate_daemon(&h, 5000), 0);
        peer_stop(&a);
}
END_TEST

/* --- udev storms ------------------------------------------------------------------ */

static bool daemon_has_device(const char *address) {
        sd_bus_error e = SD_BUS_ERROR_NULL;
        int r = sd_bus_call_method(h.bus, VRD_BUS_NAME, VRD_ROOT_PATH, VRD_MANAGER_IFACE, "GetDevice", &e, NULL, "s",
                                   address);

        sd_bus_error_free(&e);
        return r >= 0;
}

/* About 1,000 bind and unbind uevents in bursts, on a function of another
 * set, while resets of the 04 set run one after another: every reset is
 * answered done, the daemon follows each burst's last state of the
 * function, and serves. A burst is 7 uevents: umockdev sends them over a
 * Unix datagram socket, which queues net.unix.max_dgram_qlen (10 by
 * default) before its sender fails (EAGAIN, and umockdev aborts), where the
 * kernel would drop the excess for the reader (ENOBUFS). Odd, so that each
 * burst flips the function and the daemon's catching up shows. */
START_TEST(test_udev_storm_during_resets) {
        enum { BURSTS = 143, BURST = 7 };
        struct crowd watcher;
        size_t resets = 0;
        struct call c;
        bool bound = true;
        uint64_t t0 = monotonic_usec();

        set_kernel("delay_ms=1");
        crowd_join(&watcher, 1, "0000:04:00.0");
        ck_assert(daemon_has_device("0000:03:00.1"));
        reset_async(&c, "0000:04:00.0", NULL);
        for (int i = 0; i < BURSTS; i++) {
                uint64_t end;

                for (int k = 0; k < BURST; k++) {
                        if (bound)
                                testbed_unlink(tb, UNMANAGED_03_1_REL "/driver");
                        else
                                testbed_symlink(tb, UNMANAGED_03_1_REL "/driver",
                                                "../../../../bus/pci/drivers/vfio-pci");
                        bound = !bound;
                        umockdev_testbed_uevent(tb, "/sys/" UNMANAGED_03_1_REL, bound ? "bind" : "unbind");
                }
                for (end = monotonic_usec() + 10 * USEC_PER_SEC;
                     daemon_has_device("0000:03:00.1") != bound && monotonic_usec() < end;)
                        crowd_pump(&watcher, h.bus);
                ck_assert_msg(daemon_has_device("0000:03:00.1") == bound, "burst %d: the daemon still has 0000:03:00.1 %s",
                              i, bound ? "unbound" : "bound");
                for (end = monotonic_usec() + 20 * USEC_PER_MSEC; monotonic_usec() < end;)
                        crowd_pump(&watcher, h.bus);
                if (c.done) {
                        ck_assert_msg(!*c.error, "reset %zu: %s: %s", resets, c.error, c.message);
                        ck_assert_str_eq(c.result, "done");
                        resets++;
                        reset_async(&c, "0000:04:00.0", NULL);
                }
        }
        for (uint64_t end = monotonic_usec() + 30 * USEC_PER_SEC; !c.done && monotonic_usec() < end;)
                crowd_pump(&watcher, h.bus);
        ck_assert_msg(c.done && !*c.error, "the last reset: %s: %s", c.error, c.message);
        resets++;
        printf("stress: %d bind/unbind uevents in %.2f s, %zu resets done meanwhile\n", BURSTS * BURST,
               (monotonic_usec() - t0) / 1e6, resets);
        ck_assert_uint_ge(resets, 2);
        crowd_leave(&watcher);
        assert_idle(SET04);
        ck_assert(harness_daemon_alive(&h));
}
END_TEST

static Suite *suite(void) {
        Suite *s = suite_create("stress");
        TCase *tc = tcase_create("fake-kernel");

        tcase_add_checked_fixture(tc, setup, teardown);
        tcase_set_timeout(tc, 240);
        tcase_add_test(tc, test_ten_thousand_requests);
        tcase_add_test(tc, test_cycles_leave_nothing_behind);
        tcase_add_test(tc, test_kernel_stalls_and_the_daemon_stops);
        tcase_add_test(tc, test_udev_storm_during_resets);
        suite_add_tcase(s, tc);
        return s;
}

int main(void) {
        return check_run(suite());
}
