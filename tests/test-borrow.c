/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Borrowed resets against the kernel double: sets that processes outside the
 * daemon hold (here: sleep with a fake /dev/vfio/N open as fd 3), stopped
 * with SIGSTOP under Force, their groups borrowed with pidfd_getfd(2) and
 * checked by the double (it logs which groups a hot reset got), resumed
 * after; mixed sets with protocol peers; holders that exit; refusals. */
#include <check.h>
#include <dirent.h>
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "bus-names.h"
#include "check-run.h"
#include "lab-harness.h"
#include "macro.h"

static void unhold(pid_t pid) {
        kill(pid, SIGKILL);
        waitpid(pid, NULL, 0);
}

/* The daemon's open fds, but sockets: umockdev connects one to its ioctl
 * emulation for every open of a fake /dev node (the daemon's holder scans
 * open each /dev/vfio/N with O_PATH), and keeps it. What a reset borrows or
 * opens is a pty (a fake group node), a memfd (the double's groups and
 * devices) or an eventfd (its containers). */
static size_t daemon_fds(void) {
        char path[64];
        struct dirent *de;
        size_t n = 0;
        DIR *d;

        snprintf(path, sizeof(path), "/proc/%d/fd", (int) h.daemon_pid);
        d = opendir(path);
        ck_assert_ptr_nonnull(d);
        while ((de = readdir(d))) {
                char fd[sizeof(path) + 256], target[256] = "";

                if (de->d_name[0] == '.')
                        continue;
                snprintf(fd, sizeof(fd), "%s/%s", path, de->d_name);
                if (readlink(fd, target, sizeof(target) - 1) > 0 && strncmp(target, "socket:", 7) != 0)
                        n++;
        }
        closedir(d);
        return n;
}

/* Run the loop until the call is answered, noting every holder seen stopped meanwhile. */
static void wait_watching(struct call *c, const pid_t *holders, size_t n, bool *ret_seen_stopped) {
        for (size_t i = 0; i < n; i++)
                ret_seen_stopped[i] = false;
        for (int k = 0; k < 3000 && !c->done; k++) {
                for (size_t i = 0; i < n; i++)
                        ret_seen_stopped[i] = ret_seen_stopped[i] || lab_state_of(holders[i]) == 'T';
                (void) harness_wait(&h, &c->done, 10);
        }
        ck_assert_msg(c->done, "ResetDevice got no answer");
}

static void assert_running(pid_t pid) {
        char s = 0;

        /* SIGCONT takes effect at once, but give the scheduler a moment */
        for (int i = 0; i < 100 && (s = lab_state_of(pid)) == 'T'; i++)
                usleep(10000);
        ck_assert_msg(s && s != 'T', "holder %d is %s", (int) pid, s ? "still stopped" : "gone");
}

START_TEST(test_without_borrow_names_the_holders) {
        pid_t a = hold_group(8), b = hold_group(9);
        char pa[32], pb[32];
        struct call c;

        reset_sync(&c, "0000:03:00.0", NULL);
        ck_assert_str_eq(c.error, VRD_ERROR_NOT_OWNED);
        snprintf(pa, sizeof(pa), "pid %d (sleep", (int) a);
        snprintf(pb, sizeof(pb), "pid %d (sleep", (int) b);
        ck_assert_msg(strstr(c.message, pa) && strstr(c.message, pb) && strstr(c.message, "reset with Borrow"), "%s",
                      c.message);
        unhold(a);
        unhold(b);
}
END_TEST

START_TEST(test_borrow_without_force_stops_nobody) {
        pid_t v[2] = { hold_group(8), hold_group(9) };
        bool stopped[2];
        char pid[32];
        struct call c;

        reset_async(&c, "0000:03:00.0", "Borrow=b1");
        wait_watching(&c, v, 2, stopped);
        ck_assert_str_eq(c.error, VRD_ERROR_NOT_OWNED);
        snprintf(pid, sizeof(pid), "pid %d (sleep", (int) v[1]);
        ck_assert_msg(strstr(c.message, pid) && strstr(c.message, "without Force"), "%s", c.message);
        ck_assert(!stopped[0] && !stopped[1]);
        ck_assert_int_eq(count_resets("0000:03:00"), 0);
        assert_idle(SET03);
        unhold(v[0]);
        unhold(v[1]);
}
END_TEST

START_TEST(test_borrow_and_force_resets_and_resumes) {
        pid_t v[2] = { hold_group(8), hold_group(9) };
        size_t fds;
        bool stopped[2];
        struct call c;
        char *s;

        set_kernel("delay_ms=300");
        fds = daemon_fds();
        reset_async(&c, "0000:03:00.0", "Borrow=b1,Force=b1");
        wait_watching(&c, v, 2, stopped);
        ck_assert_msg(!*c.error, "%s: %s", c.error, c.message);
        ck_assert_str_eq(c.result, "done");
        /* the groups the double got are the holders' own */
        ck_assert_int_eq(count_resets("hot-reset 0000:03:00.0 groups=2 group_ids=8+9 result=0"), 1);
        ck_assert_msg(stopped[0] && stopped[1], "the holders were not seen stopped during the reset");
        assert_running(v[0]);
        assert_running(v[1]);
        ck_assert_uint_eq(daemon_fds(), fds);  /* every borrowed fd closed */
        s = get_string(SET03, VRD_DEVSET_IFACE, "LastResult");
        ck_assert_str_eq(s, "done");
        free(s);
        assert_idle(SET03);

        /* again: nothing of the first one stays behind */
        reset_async(&c, "0000:03:00.0", "Borrow=b1,Force=b1");
        wait_watching(&c, v, 2, stopped);
        ck_assert_msg(!*c.error, "%s: %s", c.error, c.message);
        ck_assert_int_eq(count_resets("group_ids=8+9 result=0"), 2);
        ck_assert_uint_eq(daemon_fds(), fds);
        unhold(v[0]);
        unhold(v[1]);
}
END_TEST

START_TEST(test_a_holder_stopped_before_stays_stopped) {
        pid_t v[2] = { hold_group(8), hold_group(9) };
        struct call c;

        kill(v[0], SIGSTOP);
        for (int i = 0; i < 100 && lab_state_of(v[0]) != 'T'; i++)
                usleep(10000);
        reset_sync(&c, "0000:03:00.0", "Borrow=b1,Force=b1");
        ck_assert_msg(!*c.error, "%s: %s", c.error, c.message);
        usleep(100000);
        ck_assert_int_eq(lab_state_of(v[0]), 'T');  /* not ours to continue */
        assert_running(v[1]);
        unhold(v[0]);
        unhold(v[1]);
}
END_TEST

START_TEST(test_freed_group_is_opened_for_the_reset) {
        pid_t a = hold_group(8), b = hold_group(9);
        size_t fds;
        struct call c;

        unhold(b);      /* its program exited: group 9 is nobody's */
        fds = daemon_fds();
        reset_sync(&c, "0000:03:00.0", "Borrow=b1,Force=b1");
        ck_assert_msg(!*c.error, "%s: %s", c.error, c.message);
        ck_assert_int_eq(count_resets("hot-reset 0000:03:00.0 groups=2 group_ids=8+9 result=0"), 1);
        assert_running(a);
        ck_assert_uint_eq(daemon_fds(), fds);  /* the group it opened is closed again */
        unhold(a);
}
END_TEST

START_TEST(test_unopenable_free_group_fails_cleanly) {
        pid_t a = hold_group(8);
        struct call c;

        set_kernel("busy=9");   /* held by someone the daemon cannot see */
        reset_sync(&c, "0000:03:00.0", "Borrow=b1,Force=b1");
        ck_assert_str_eq(c.error, VRD_ERROR_BORROW_FAILED);
        ck_assert_msg(strstr(c.message, "group 9") && strstr(c.message, "cannot see"), "%s", c.message);
        ck_assert_int_eq(count_resets("0000:03:00"), 0);
        assert_running(a);
        assert_idle(SET03);
        unhold(a);
}
END_TEST

START_TEST(test_kernel_failure_resumes_the_holders) {
        pid_t v[2] = { hold_group(8), hold_group(9) };
        size_t fds = daemon_fds();
        struct call c;

        set_kernel("fail=EIO");
        reset_sync(&c, "0000:03:00.0", "Borrow=b1,Force=b1");
        ck_assert_str_eq(c.error, VRD_ERROR_RESET_FAILED);
        assert_running(v[0]);
        assert_running(v[1]);
        if (daemon_fds() != fds) {
                char *out = NULL;

                harness_run(&out, "ls -l /proc/%d/fd | grep -v socket:", (int) h.daemon_pid);
                fprintf(stderr, "%s", out);
                free(out);
        }
        ck_assert_uint_eq(daemon_fds(), fds);
        unhold(v[0]);
        unhold(v[1]);
}
END_TEST

START_TEST(test_holder_killed_while_stopped) {
        pid_t v[2] = { hold_group(8), hold_group(9) };
        bool seen = false;
        struct call c;

        set_kernel("delay_ms=400");
        reset_async(&c, "0000:03:00.0", "Borrow=b1,Force=b1");
        /* once it is stopped (the reset under way), it dies */
        for (int i = 0; i < 300 && !seen; i++) {
                seen = lab_state_of(v[1]) == 'T';
                if (!seen)
                        (void) harness_wait(&h, &c.done, 10);
        }
        ck_assert(seen);
        unhold(v[1]);
        ck_assert(harness_wait(&h, &c.done, 30000));
        ck_assert_msg(!*c.error, "%s: %s", c.error, c.message);
        assert_running(v[0]);
        ck_assert(harness_daemon_alive(&h));
        unhold(v[0]);
}
END_TEST

START_TEST(test_borrow_of_a_managed_set_is_a_plain_reset) {
        struct call c;

        reset_sync(&c, "0000:04:00.0", "Borrow=b1");
        ck_assert_msg(!*c.error, "%s: %s", c.error, c.message);
        ck_assert_int_eq(count_resets("hot-reset 0000:04:00.0 groups=2 group_ids=10+11 result=0"), 1);
}
END_TEST

static bool file_has(const char *path, const char *text) {
        char line[256];
        bool found = false;
        FILE *f = fopen(path, "re");

        while (f && !found && fgets(line, sizeof(line), f))
                found = strstr(line, text) != NULL;
        if (f)
                fclose(f);
        return found;
}

/* One holder of two sets, both reset at once: it runs again only when the
 * second reset is over, not when the first one is. */
START_TEST(test_holder_of_two_sets_stays_stopped_for_both) {
        pid_t holder = fork();
        struct call a, b;
        bool stopped_between = true;
        unsigned n_looked = 0;

        ck_assert_int_ge(holder, 0);
        if (holder == 0) {
                execl("/bin/sh", "sh", "-c", "exec sleep 120 3</dev/vfio/8 4</dev/vfio/19", (char *) NULL);
                _exit(127);
        }
        usleep(300000);
        set_kernel(cmdf("delay_ms=1500,begin_log=%s/begin.log", h.dir));
        reset_async(&a, "0000:03:00.0", "Borrow=b1,Force=b1");
        /* until the first is in the kernel, with its 1.5 s */
        for (int i = 0; i < 3000 && !file_has(cmdf("%s/begin.log", h.dir), "hot-reset 0000:03:00.0"); i++)
                (void) harness_wait(&h, &a.done, 10);
        ck_assert_msg(!a.done, "%s: %s", a.error, a.message);
        set_kernel("delay_ms=3000");    /* the second outlasts the first by 1.5 s */
        reset_async(&b, "0000:07:10.0", "Borrow=b1,Force=b1");
        ck_assert(harness_wait(&h, &a.done, 30000));
        ck_assert_msg(!*a.error, "%s: %s", a.error, a.message);
        /* The first is over; while the second is still in the kernel, the holder stays stopped. The
         * holder is looked at first, the set after: "resetting" then means it was looked at in time. */
        while (!b.done) {
                char s0 = lab_state_of(holder), *state = get_string(VRD_DEVSET_PATH_PREFIX "/dev_0000_07_10_0",
                                                                  VRD_DEVSET_IFACE, "State");

                if (strcmp(state, "resetting") == 0) {
                        n_looked++;
                        stopped_between = stopped_between && s0 == 'T';
                }
                free(state);
                (void) harness_wait(&h, &b.done, 10);
        }
        ck_assert_msg(n_looked > 10, "looked at the holder %u times during the second reset only", n_looked);
        ck_assert_msg(!*b.error, "%s: %s", b.error, b.message);
        ck_assert_msg(stopped_between, "the holder ran between the two resets");
        ck_assert_int_eq(count_resets("function-reset 0000:07:10.0 result=0"), 1);
        assert_running(holder);
        unhold(holder);
}
END_TEST

/* Wait=false: answered once accepted; the reset goes on after the reply. */
START_TEST(test_no_wait) {
        struct call c;

        set_kernel("delay_ms=1500");
        reset_sync(&c, "0000:04:00.0", "Wait=b0");
        ck_assert_msg(!*c.error, "%s: %s", c.error, c.message);
        ck_assert_str_eq(c.result, "accepted");
        ck_assert_int_eq(count_resets("0000:04:00.0"), 0);
        for (int i = 0; i < 500 && count_resets("hot-reset 0000:04:00.0") == 0; i++)
                usleep(10000);
        ck_assert_int_eq(count_resets("hot-reset 0000:04:00.0 groups=2 group_ids=10+11 result=0"), 1);
        /* refusals still come as errors */
        reset_sync(&c, "0000:03:00.0", "Wait=b0");
        ck_assert_str_eq(c.error, VRD_ERROR_NOT_MANAGED);
        ck_assert(harness_daemon_alive(&h));
}
END_TEST

/* vfio-resetctl reset --borrow [--force], as an operator types it. */
START_TEST(test_resetctl_borrow) {
        pid_t v[2] = { hold_group(8), hold_group(9) };
        char *out = NULL;
        int status;

        status = harness_run(&out, "%s reset --borrow 03:00.0", getenv("VRD_CTL"));
        ck_assert_msg(status == 1 && strstr(out, "without Force (it would be stopped with SIGSTOP)"), "%d: %s", status,
                      out);
        ck_assert_msg(!strstr(out, "Resetting dev_set"), "a refused reset was announced: %s", out);
        free(out);
        status = harness_run(&out, "%s reset --borrow --force 03:00.0", getenv("VRD_CTL"));
        ck_assert_msg(status == 0 && strstr(out, "done in"), "%d: %s", status, out);
        free(out);
        ck_assert_int_eq(count_resets("hot-reset 0000:03:00.0 groups=2 group_ids=8+9 result=0"), 1);
        assert_running(v[0]);
        assert_running(v[1]);
        unhold(v[0]);
        unhold(v[1]);
}
END_TEST

START_TEST(test_bad_borrow_option) {
        struct call c;

        reset_sync(&c, "0000:03:00.0", "Borrow=s1");
        ck_assert_str_eq(c.error, SD_BUS_ERROR_INVALID_ARGS);
        ck_assert_msg(strstr(c.message, "Borrow must be of type b, not s"), "%s", c.message);
        assert_idle(SET03);
}
END_TEST

/* --- a mixed set: the daemon owns 04:00.0 (a peer takes it), a holder 04:00.1 --- */

static void setup_mixed(void) {
        lab_kernel_spec = "delay_ms=20,busy=11";        /* the daemon cannot take group 11 */
        setup();
        lab_kernel_spec = NULL;
        set_kernel("delay_ms=200");
}

START_TEST(test_mixed_set) {
        pid_t v[1] = { hold_group(11) };
        struct peer p;
        bool stopped[1];
        struct call c;

        peer_start(&p, "--take", "0000:04:00.0", NULL);
        assert_peer_says(&p, "took", "fds=OK");
        reset_sync(&c, "0000:04:00.0", NULL);
        ck_assert_str_eq(c.error, VRD_ERROR_NOT_OWNED);
        ck_assert_msg(strstr(c.message, "0000:04:00.1 is held by"), "%s", c.message);

        reset_async(&c, "0000:04:00.0", "Borrow=b1,Force=b1");
        wait_watching(&c, v, 1, stopped);
        ck_assert_msg(!*c.error, "%s: %s", c.error, c.message);
        assert_peer_says(&p, "pause", NULL);
        assert_peer_says(&p, "resume", "done");
        ck_assert(stopped[0]);
        assert_running(v[0]);
        /* the daemon's group 10 and the holder's group 11 */
        ck_assert_int_eq(count_resets("hot-reset 0000:04:00.0 groups=2 group_ids=10+11 result=0"), 1);
        peer_stop(&p);
        unhold(v[0]);
}
END_TEST

static Suite *suite(void) {
        Suite *s = suite_create("borrow");
        TCase *tc = tcase_create("holders");
        TCase *mixed = tcase_create("mixed");

        tcase_add_checked_fixture(tc, setup, teardown);
        tcase_set_timeout(tc, 60);
        tcase_add_test(tc, test_without_borrow_names_the_holders);
        tcase_add_test(tc, test_borrow_without_force_stops_nobody);
        tcase_add_test(tc, test_borrow_and_force_resets_and_resumes);
        tcase_add_test(tc, test_a_holder_stopped_before_stays_stopped);
        tcase_add_test(tc, test_freed_group_is_opened_for_the_reset);
        tcase_add_test(tc, test_unopenable_free_group_fails_cleanly);
        tcase_add_test(tc, test_kernel_failure_resumes_the_holders);
        tcase_add_test(tc, test_holder_killed_while_stopped);
        tcase_add_test(tc, test_borrow_of_a_managed_set_is_a_plain_reset);
        tcase_add_test(tc, test_bad_borrow_option);
        tcase_add_test(tc, test_no_wait);
        tcase_add_test(tc, test_resetctl_borrow);
        tcase_add_test(tc, test_holder_of_two_sets_stays_stopped_for_both);
        suite_add_tcase(s, tc);

        tcase_add_checked_fixture(mixed, setup_mixed, teardown);
        tcase_set_timeout(mixed, 60);
        tcase_add_test(mixed, test_mixed_set);
        suite_add_tcase(s, mixed);
        return s;
}

int main(void) {
        return check_run(suite());
}
