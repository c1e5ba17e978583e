/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The libvirt hook (client/hook-libvirt.c) run as libvirtd runs it: arguments
 * NAME OPERATION SUBOPERATION EXTRA, the domain XML on stdin, against the
 * daemon with the kernel double. On release it asks for a borrowed reset of
 * each managed='no' hostdev's set and returns at once; everything else, and
 * every kind of bad input, is exit 0 and a line, nothing more. */
#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
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

#define XML_OF(managed, bus, fn)                                                                             \
        "<domain type='qemu'><name>vm1</name><uuid>6c1e0b3a-8f2d-4d0e-9a55-2f0e3c9b7a11</uuid><devices>"     \
        "<hostdev mode='subsystem' type='pci' managed='" managed "'><source>"                                \
        "<address domain='0x0000' bus='" bus "' slot='0x00' function='" fn "'/></source></hostdev>"          \
        "<interface type='user'/></devices></domain>"

static char hook_config[160];

struct hook_run {
        int status;
        uint64_t usec;
        char err[4096];
};

/* Run the hook with these arguments and this stdin (len bytes of it; NULL: stdin closed at once). */
static void run_hook(struct hook_run *o, const char *const *args, const char *input, size_t len) {
        int in[2], err[2];
        uint64_t t0 = monotonic_usec();
        size_t off = 0, n_err = 0;
        pid_t pid;

        ck_assert_int_eq(pipe2(in, O_CLOEXEC), 0);
        ck_assert_int_eq(pipe2(err, O_CLOEXEC), 0);
        pid = fork();
        ck_assert_int_ge(pid, 0);
        if (pid == 0) {
                char path[512];
                const char *argv[8] = { "vfio-resetd" };

                for (size_t i = 0; args[i] && i < 6; i++)
                        argv[i + 1] = args[i];
                dup2(in[0], STDIN_FILENO);
                dup2(err[1], STDERR_FILENO);
                setenv("VFIO_RESETD_HOOK_STDERR", "1", 1);
                setenv("VFIO_RESETD_HOOK_CONFIG", hook_config, 1);
                snprintf(path, sizeof(path), "%s/client/vfio-resetd-libvirt-hook", getenv("BUILDDIR"));
                execv(path, (char **) argv);
                _exit(127);
        }
        close(in[0]);
        close(err[1]);
        signal(SIGPIPE, SIG_IGN);
        while (input && off < len) {
                ssize_t k = write(in[1], input + off, len - off);

                ck_assert_msg(k > 0, "the hook stopped reading its stdin after %zu of %zu bytes: %m", off, len);
                off += (size_t) k;
        }
        close(in[1]);
        for (;;) {
                ssize_t k = read(err[0], o->err + n_err, sizeof(o->err) - 1 - n_err);

                if (k <= 0)
                        break;
                n_err += (size_t) k;
        }
        o->err[n_err] = '\0';
        close(err[0]);
        ck_assert_int_eq(waitpid(pid, &o->status, 0), pid);
        o->usec = monotonic_usec() - t0;
        ck_assert_msg(WIFEXITED(o->status) && WEXITSTATUS(o->status) == 0, "hook status %d: %s", o->status, o->err);
}

static void write_config(const char *hook_section) {
        FILE *f = fopen(hook_config, "we");

        ck_assert_ptr_nonnull(f);
        fprintf(f, "[Hook]\n%s\n", hook_section);
        fclose(f);
}

static void setup_hook(void) {
        setup();
        snprintf(hook_config, sizeof(hook_config), "%s/hook.conf", h.dir);
        write_config("");
}

/* Wait up to ms for n kernel resets with this text. */
static bool wait_resets(const char *text, int n, unsigned ms) {
        for (uint64_t end = monotonic_usec() + ms * 1000ULL; monotonic_usec() < end; usleep(20000))
                if (count_resets(text) >= n)
                        return true;
        return count_resets(text) >= n;
}

static const char *const RELEASE[] = { "vm1", "release", "end", "-", NULL };

START_TEST(test_release_scrubs_and_returns_at_once) {
        static const char xml[] = XML_OF("no", "0x03", "0x1");
        struct hook_run o;

        set_kernel("delay_ms=1500");
        run_hook(&o, RELEASE, xml, strlen(xml));
        ck_assert_msg(strstr(o.err, "asked vfio-resetd to scrub the dev_set of 0000:03:00.1"), "%s", o.err);
        /* it did not wait for the reset, which takes 1.5 s in the kernel */
        ck_assert_int_eq(count_resets("0000:03:00.0"), 0);
        ck_assert_uint_lt(o.usec, 1000000);
        /* the daemon did it: both groups opened for the reset, nobody held them */
        ck_assert(wait_resets("hot-reset 0000:03:00.0 groups=2 group_ids=8+9 result=0", 1, 10000));
}
END_TEST

START_TEST(test_other_phases_do_nothing) {
        static const char xml[] = XML_OF("no", "0x03", "0x1");
        static const char *const phases[][5] = {
                { "vm1", "prepare", "begin", "-", NULL }, { "vm1", "started", "begin", "-", NULL },
                { "vm1", "stopped", "end", "-", NULL },   { "vm1", "reconnect", "begin", "-", NULL },
        };
        struct hook_run o;

        for (size_t i = 0; i < ELEMENTSOF(phases); i++) {
                run_hook(&o, phases[i], xml, strlen(xml));
                ck_assert_msg(!*o.err, "%s: %s", phases[i][1], o.err);
        }
        run_hook(&o, (const char *const[]) { "vm1", "frobnicate", "begin", "-", NULL }, xml, strlen(xml));
        ck_assert_msg(strstr(o.err, "unknown hook operation 'frobnicate'"), "%s", o.err);
        usleep(300000);
        ck_assert_int_eq(count_resets("0000:03"), 0);
}
END_TEST

START_TEST(test_bad_input) {
        static const char managed[] = XML_OF("yes", "0x03", "0x1");
        static const char not_domain[] = "<network><name>default</name></network>";
        struct hook_run o;

        run_hook(&o, RELEASE, "garbage<<", 9);
        ck_assert_msg(strstr(o.err, "is not a libvirt domain XML"), "%s", o.err);
        run_hook(&o, RELEASE, not_domain, strlen(not_domain));
        ck_assert_msg(strstr(o.err, "is not a libvirt domain XML"), "%s", o.err);
        run_hook(&o, RELEASE, NULL, 0);
        ck_assert_msg(strstr(o.err, "(0 bytes) is not a libvirt domain XML"), "%s", o.err);
        run_hook(&o, (const char *const[]) { NULL }, NULL, 0);
        ck_assert_msg(strstr(o.err, "not as libvirt calls a hook"), "%s", o.err);
        run_hook(&o, RELEASE, managed, strlen(managed));
        ck_assert_msg(strstr(o.err, "managed='yes': libvirt rebinds it"), "%s", o.err);
        usleep(300000);
        ck_assert_int_eq(count_resets("0000:03"), 0);
        ck_assert(harness_daemon_alive(&h));
}
END_TEST

/* libvirt writes the whole XML: the hook reads to the end, also past what it parses. */
START_TEST(test_reads_all_of_stdin) {
        size_t len = 20u << 20;
        char *big = malloc(len);
        struct hook_run o;

        ck_assert_ptr_nonnull(big);
        memset(big, ' ', len);
        memcpy(big, "<domain", 7);
        run_hook(&o, RELEASE, big, len);        /* asserts every byte was taken */
        free(big);
        ck_assert_msg(strstr(o.err, "is not a libvirt domain XML"), "%s", o.err);
}
END_TEST

START_TEST(test_config) {
        static const char xml[] = XML_OF("no", "0x03", "0x1");
        pid_t holder = hold_group(8);
        struct hook_run o;

        write_config("Scrub=no");
        run_hook(&o, RELEASE, xml, strlen(xml));
        ck_assert_msg(strstr(o.err, "Scrub=no"), "%s", o.err);

        write_config("Device=0000:04:00.0");
        run_hook(&o, RELEASE, xml, strlen(xml));
        ck_assert_msg(strstr(o.err, "0000:03:00.1 is not among [Hook] Device="), "%s", o.err);

        /* another holds the set: left alone unless others may be stopped */
        write_config("SuspendOthers=no\nForce=yes\nFrob=1");
        run_hook(&o, RELEASE, xml, strlen(xml));
        ck_assert_msg(strstr(o.err, "held by others, and [Hook] SuspendOthers=no: left alone"), "%s", o.err);
        ck_assert_msg(strstr(o.err, "unknown key 'Frob' in [Hook]"), "%s", o.err);
        usleep(300000);
        ck_assert_int_eq(count_resets("0000:03"), 0);

        /* a plain process is stopped only with Force: the daemon refuses at once, and says so */
        write_config("SuspendOthers=yes");
        run_hook(&o, RELEASE, xml, strlen(xml));
        ck_assert_msg(strstr(o.err, "did not take the scrub of the dev_set of 0000:03:00.1: "
                                    "org.vfioresetd1.Error.NotOwned") && strstr(o.err, "without Force"), "%s", o.err);

        write_config("SuspendOthers=yes\nForce=yes");
        run_hook(&o, RELEASE, xml, strlen(xml));
        ck_assert_msg(strstr(o.err, "a reset with Borrow and Force"), "%s", o.err);
        ck_assert(wait_resets("hot-reset 0000:03:00.0 groups=2 group_ids=8+9 result=0", 1, 10000));
        usleep(100000);
        {
                char path[64], buf[256] = "", *p;
                FILE *f;

                snprintf(path, sizeof(path), "/proc/%d/stat", (int) holder);
                f = fopen(path, "re");
                ck_assert_ptr_nonnull(f);
                ck_assert_ptr_nonnull(fgets(buf, sizeof(buf), f));
                fclose(f);
                p = strrchr(buf, ')');
                ck_assert_msg(p && p[2] != 'T', "the holder was left stopped: %s", buf);
        }
        kill(holder, SIGKILL);
        waitpid(holder, NULL, 0);
}
END_TEST

static Suite *suite(void) {
        Suite *s = suite_create("hook");
        TCase *tc = tcase_create("libvirt");

        tcase_add_checked_fixture(tc, setup_hook, teardown);
        tcase_set_timeout(tc, 60);
        tcase_add_test(tc, test_release_scrubs_and_returns_at_once);
        tcase_add_test(tc, test_other_phases_do_nothing);
        tcase_add_test(tc, test_bad_input);
        tcase_add_test(tc, test_reads_all_of_stdin);
        tcase_add_test(tc, test_config);
        suite_add_tcase(s, tc);
        return s;
}

int main(void) {
        return check_run(suite());
}
