/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The daemon of the arbiter tests: built with the kernel test double, on a
 * private bus over the fake lab sysfs (03:00.x unmanaged, the rest managed
 * by config or udev tag), with real peer processes (tests/test-peer) and
 * ResetDevice calls from the test. test-arbiter and test-borrow use it. */
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
#include <sys/wait.h>
#include <unistd.h>

#include "bus-names.h"
#include "lab-harness.h"
#include "macro.h"
#include "proc-state.h"
#include "testbed.h"

UMockdevTestbed *tb;
struct harness h;
char kernel_log[128], kernel_spec[128], config[128], open_log[128];
const char *lab_kernel_spec;
const char *const lab_daemon_args[] = { "--uevents=udev", "--config", config, NULL };
void (*lab_start_daemon)(void);

/* --- the daemon ------------------------------------------------------------ */

void set_kernel(const char *spec) {
        FILE *f = fopen(kernel_spec, "we");

        ck_assert_ptr_nonnull(f);
        fprintf(f, "log=%s,open_log=%s,%s\n", kernel_log, open_log, spec);
        fclose(f);
}

void setup(void) {
        FILE *f;

        tb = testbed_new("lab");
        harness_start_bus(&h);
        h.daemon = getenv("VRD_FAKE_DAEMON");
        snprintf(kernel_log, sizeof(kernel_log), "%s/kernel.log", h.dir);
        snprintf(kernel_spec, sizeof(kernel_spec), "%s/kernel.spec", h.dir);
        snprintf(open_log, sizeof(open_log), "%s/opens.log", h.dir);
        snprintf(config, sizeof(config), "%s/vfio-resetd.conf", h.dir);
        set_kernel(lab_kernel_spec ?: "delay_ms=20");
        setenv("VRD_FAKE_KERNEL_FILE", kernel_spec, 1);
        f = fopen(config, "we");
        ck_assert_ptr_nonnull(f);
        /* 03:00.x stays unmanaged: the NotOwned/NotManaged cases use it. */
        fputs("[Manage]\nDevice=0000:04:00.0 0000:04:00.1 00:02.0 01:01.0 01:02.0\n"
              "Device=05:00.0 05:00.1 05:00.2\n[Reset]\nQuiesceTimeoutSec=10\n", f);
        /* The slot 2 pair opts in by udev tag alone. */
        umockdev_testbed_set_property(tb, "/sys/devices/pci0000:00/0000:00:04.0/0000:02:00.0", "CURRENT_TAGS",
                                      ":vfio-resetd:");
        umockdev_testbed_set_property(tb, "/sys/devices/pci0000:00/0000:00:04.0/0000:02:00.1", "CURRENT_TAGS",
                                      ":vfio-resetd:");
        fclose(f);
        if (lab_start_daemon)
                lab_start_daemon();
        else
                harness_start_daemon(&h, lab_daemon_args);
}

void teardown(void) {
        harness_stop(&h);
        g_object_unref(tb);
}

static int count_lines(const char *text, const char *file) {
        char *out = NULL;
        int n;

        harness_run(&out, "grep -c -- '%s' '%s' 2>/dev/null || true", text, file);
        n = atoi(out);
        free(out);
        return n;
}

/* Kernel resets logged by the double whose line has this text. */
int count_resets(const char *text) {
        return count_lines(text, kernel_log);
}

int count_opens(const char *text) {
        return count_lines(text, open_log);
}

/* When the double's (only) kernel reset whose line has this text began and
 * ended, CLOCK_MONOTONIC microseconds. */
void reset_span(const char *text, uint64_t *ret_start, uint64_t *ret_end) {
        FILE *f = fopen(kernel_log, "re");
        char line[512];
        int found = 0;

        ck_assert_ptr_nonnull(f);
        while (fgets(line, sizeof(line), f)) {
                const char *t = strstr(line, " start_usec=");

                if (!strstr(line, text))
                        continue;
                ck_assert_msg(t && sscanf(t, " start_usec=%" SCNu64 " end_usec=%" SCNu64, ret_start, ret_end) == 2,
                              "no times in the kernel log line: %s", line);
                found++;
        }
        fclose(f);
        ck_assert_msg(found == 1, "%d kernel resets logged with '%s'", found, text);
}

/* --- peer processes ---------------------------------------------------------- */


void peer_start(struct peer *p, ...) {
        const char *argv[16] = { "test-peer" };
        size_t n = 1;
        int pipefd[2];
        va_list ap;
        char *line;

        va_start(ap, p);
        while (n < 15 && (argv[n] = va_arg(ap, const char *)))
                n++;
        va_end(ap);
        ck_assert_int_eq(pipe2(pipefd, O_CLOEXEC), 0);
        *p = (struct peer) { .fd = pipefd[0] };
        p->pid = fork();
        ck_assert_int_ge(p->pid, 0);
        if (p->pid == 0) {
                char path[512];

                dup2(pipefd[1], STDOUT_FILENO);
                snprintf(path, sizeof(path), "%s/test-peer", getenv("TESTS_BUILDDIR"));
                execv(path, (char **) argv);
                _exit(127);
        }
        close(pipefd[1]);
        line = peer_expect(p, "ready ", 5000);
        ck_assert_msg(line, "test-peer did not start");
        snprintf(p->name, sizeof(p->name), "%s", line + 6);
        free(line);
}

/* The first line not yet taken that starts with prefix (it is taken; the
 * others stay for later questions), or NULL on timeout. */
char *peer_expect(struct peer *p, const char *prefix, int timeout_ms) {
        uint64_t end = monotonic_usec() + (uint64_t) timeout_ms * 1000;

        for (;;) {
                char *line = p->buf, *nl;

                while ((nl = memchr(line, '\n', p->len - (size_t) (line - p->buf)))) {
                        if (strncmp(line, prefix, strlen(prefix)) == 0) {
                                char *found = strndup(line, (size_t) (nl - line));

                                memmove(line, nl + 1, p->len - (size_t) (nl + 1 - p->buf));
                                p->len -= (size_t) (nl + 1 - line);
                                return found;
                        }
                        line = nl + 1;
                }
                struct pollfd pfd = { .fd = p->fd, .events = POLLIN };
                uint64_t now = monotonic_usec();
                ssize_t k;

                if (now >= end || poll(&pfd, 1, (int) ((end - now) / 1000) + 1) <= 0)
                        return NULL;
                k = read(p->fd, p->buf + p->len, sizeof(p->buf) - p->len - 1);
                if (k <= 0)
                        return NULL;
                p->len += (size_t) k;
        }
}

void assert_peer_says(struct peer *p, const char *prefix, const char *needle) {
        char *line = peer_expect(p, prefix, 10000);

        ck_assert_msg(line, "peer %s never said '%s...'", p->name, prefix);
        if (needle)
                ck_assert_msg(strstr(line, needle), "peer %s said '%s', expected '%s'", p->name, line, needle);
        free(line);
}

void peer_stop(struct peer *p) {
        if (p->pid > 0) {
                kill(p->pid, SIGKILL);
                waitpid(p->pid, NULL, 0);
        }
        close(p->fd);
        p->pid = 0;
}

/* --- calls --------------------------------------------------------------------- */


static int on_reply(sd_bus_message *m, void *userdata, sd_bus_error *error) {
        struct call *c = userdata;
        const sd_bus_error *e = sd_bus_message_get_error(m);
        const char *path, *result;

        if (e) {
                snprintf(c->error, sizeof(c->error), "%s", e->name);
                snprintf(c->message, sizeof(c->message), "%s", e->message ?: "");
        } else if (sd_bus_message_read(m, "ost", &path, &result, &c->duration) >= 0)
                snprintf(c->result, sizeof(c->result), "%s", result);
        c->done = true;
        return 0;
}

/* ResetDevice, answered later. Options: "Force=b1,QuiesceTimeoutUSec=t300000" (s: a string, for refusals). */
void reset_async(struct call *c, const char *address, const char *options) {
        _cleanup_free_ char *copy = strdup(options ?: "");
        sd_bus_message *m = NULL;
        char *save = NULL;

        *c = (struct call) {};
        ck_assert_int_ge(sd_bus_message_new_method_call(h.bus, &m, VRD_BUS_NAME, VRD_ROOT_PATH, VRD_MANAGER_IFACE,
                                                        "ResetDevice"), 0);
        ck_assert_int_ge(sd_bus_message_append(m, "s", address), 0);
        ck_assert_int_ge(sd_bus_message_open_container(m, 'a', "{sv}"), 0);
        for (char *kv = strtok_r(copy, ",", &save); kv; kv = strtok_r(NULL, ",", &save)) {
                char *v = strchr(kv, '=');

                ck_assert_ptr_nonnull(v);
                *v++ = '\0';
                if (*v == 'b')
                        ck_assert_int_ge(sd_bus_message_append(m, "{sv}", kv, "b", atoi(v + 1)), 0);
                else if (*v == 't')
                        ck_assert_int_ge(sd_bus_message_append(m, "{sv}", kv, "t", strtoull(v + 1, NULL, 10)), 0);
                else
                        ck_assert_int_ge(sd_bus_message_append(m, "{sv}", kv, "s", v + 1), 0);
        }
        ck_assert_int_ge(sd_bus_message_close_container(m), 0);
        ck_assert_int_ge(sd_bus_call_async(h.bus, NULL, m, on_reply, c, 60 * 1000000ULL), 0);
        sd_bus_message_unref(m);
}

void reset_sync(struct call *c, const char *address, const char *options) {
        reset_async(c, address, options);
        ck_assert_msg(harness_wait(&h, &c->done, 30000), "ResetDevice(%s) got no answer", address);
}

char *get_string(const char *path, const char *iface, const char *prop) {
        sd_bus_error e = SD_BUS_ERROR_NULL;
        char *v = NULL;

        ck_assert_msg(sd_bus_get_property_string(h.bus, VRD_BUS_NAME, path, iface, prop, &e, &v) >= 0, "%s.%s: %s",
                      path, prop, e.message);
        return v;
}

uint64_t get_u64(const char *path, const char *prop) {
        sd_bus_error e = SD_BUS_ERROR_NULL;
        uint64_t v = 0;

        ck_assert(sd_bus_get_property_trivial(h.bus, VRD_BUS_NAME, path, VRD_DEVSET_IFACE, prop, &e, 't', &v) >= 0);
        return v;
}

void assert_idle(const char *path) {
        char *state = get_string(path, VRD_DEVSET_IFACE, "State");

        ck_assert_str_eq(state, "idle");
        free(state);
}

/* /proc/PID/stat's state: R, S, T (stopped), ...; 0 when gone. */
char lab_state_of(pid_t pid) {
        char dir[32], state = 0;

        snprintf(dir, sizeof(dir), "/proc/%d", (int) pid);
        return proc_stat_read(dir, &state, NULL, NULL) < 0 ? 0 : state;
}

/* A process that knows nothing of the daemon and holds group N open. */
pid_t hold_group(int group) {
        char node[32];

        snprintf(node, sizeof(node), "/dev/vfio/%d", group);
        return hold_node(node);
}

pid_t hold_node(const char *node) {
        pid_t pid = fork();
        char cmd[160];

        ck_assert_int_ge(pid, 0);
        if (pid == 0) {
                snprintf(cmd, sizeof(cmd), "exec sleep 120 3<%s", node);
                execl("/bin/sh", "sh", "-c", cmd, (char *) NULL);
                _exit(127);
        }
        /* until the exec'd sleep holds it */
        for (int i = 0; i < 200; i++) {
                char path[64], target[256] = "";

                snprintf(path, sizeof(path), "/proc/%d/fd/3", (int) pid);
                if (readlink(path, target, sizeof(target) - 1) > 0) {    /* umockdev's /dev/vfio/N is a pty */
                        char comm[32] = "";
                        FILE *f;

                        snprintf(path, sizeof(path), "/proc/%d/comm", (int) pid);
                        f = fopen(path, "re");
                        if (f && fgets(comm, sizeof(comm), f) && strncmp(comm, "sleep", 5) == 0) {
                                fclose(f);
                                return pid;
                        }
                        if (f)
                                fclose(f);
                }
                usleep(10000);
        }
        {
                char path[64], target[256] = "";

                snprintf(path, sizeof(path), "/proc/%d/fd/3", (int) pid);
                (void) !readlink(path, target, sizeof(target) - 1);
                ck_abort_msg("holder of %s did not start: fd 3 is '%s', state %c", node, target,
                             lab_state_of(pid) ?: '-');
        }
        return -1;
}

