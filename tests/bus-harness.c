/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "bus-harness.h"
#include "bus-names.h"

static uint64_t now_ms(void) {
        struct timespec ts;

        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (uint64_t) ts.tv_sec * 1000 + (uint64_t) ts.tv_nsec / 1000000;
}

/* The soft fd limit up to the hard one: a process without CAP_SYS_RESOURCE goes no further. */
static rlim_t raise_fd_limit(void) {
        struct rlimit rl;

        if (getrlimit(RLIMIT_NOFILE, &rl) < 0)
                return 0;
        rl.rlim_cur = rl.rlim_max;
        (void) setrlimit(RLIMIT_NOFILE, &rl);
        return rl.rlim_max;
}

void harness_start_bus(struct harness *h) {
        char conf[128], address[128], cmd[512];

        *h = (struct harness) {};
        strcpy(h->dir, "/tmp/vrd-test.XXXXXX");
        ck_assert_ptr_nonnull(mkdtemp(h->dir));
        snprintf(conf, sizeof(conf), "%s/bus.conf", h->dir);
        snprintf(cmd, sizeof(cmd), "sed 's|@SOCKET@|%s/bus|' '%s/private-bus.conf' > '%s'",
                 h->dir, getenv("TESTS_DIR") ?: "tests", conf);
        ck_assert_msg(system(cmd) == 0, "cannot write %s", conf);

        h->bus_pid = fork();
        ck_assert_int_ge(h->bus_pid, 0);
        if (h->bus_pid == 0) {
                int null = open("/dev/null", O_WRONLY);

                raise_fd_limit();       /* dbus-daemon's own raise to 65536 needs CAP_SYS_RESOURCE */
                dup2(null, STDERR_FILENO);      /* "Failed to set fd limit" is harmless noise */
                execl(getenv("DBUS_DAEMON") ?: "/usr/bin/dbus-daemon", "dbus-daemon", "--nofork",
                      "--config-file", conf, (char *) NULL);
                _exit(127);
        }
        snprintf(address, sizeof(address), "unix:path=%s/bus", h->dir);
        setenv("DBUS_SYSTEM_BUS_ADDRESS", address, 1);
        for (uint64_t end = now_ms() + 10000; now_ms() < end; usleep(20000)) {
                sd_bus *b = NULL;

                if (sd_bus_open_system(&b) >= 0 && sd_bus_get_unique_name(b, &(const char *) { NULL }) >= 0) {
                        h->bus = b;
                        return;
                }
                sd_bus_unref(b);
        }
        ck_abort_msg("private dbus-daemon did not come up");
}

bool harness_name_has_owner(struct harness *h, const char *name) {
        sd_bus_error e = SD_BUS_ERROR_NULL;
        sd_bus_message *reply = NULL;
        int has = 0;

        if (sd_bus_call_method(h->bus, "org.freedesktop.DBus", "/org/freedesktop/DBus", "org.freedesktop.DBus",
                               "NameHasOwner", &e, &reply, "s", name) >= 0)
                (void) sd_bus_message_read(reply, "b", &has);
        sd_bus_message_unref(reply);
        sd_bus_error_free(&e);
        return has;
}

void harness_start_polkit(struct harness *h) {
        const char *python = getenv("PYTHON3") ?: "/usr/bin/python3";
        char log[128];

        snprintf(log, sizeof(log), "%s/polkitd-mock.log", h->dir);
        h->polkit_pid = fork();
        ck_assert_int_ge(h->polkit_pid, 0);
        if (h->polkit_pid == 0) {
                int fd = open(log, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);

                dup2(fd, STDOUT_FILENO);
                dup2(fd, STDERR_FILENO);
                execl(python, python, "-m", "dbusmock", "--system", "--template", "polkitd", (char *) NULL);
                _exit(127);
        }
        for (uint64_t end = now_ms() + 30000; now_ms() < end; usleep(20000)) {
                if (harness_name_has_owner(h, POLKIT_NAME))
                        return;
                ck_assert_msg(waitpid(h->polkit_pid, NULL, WNOHANG) == 0,
                              "the polkitd mock exited (is python3-dbusmock installed?); see %s", log);
        }
        ck_abort_msg("the polkitd mock did not take " POLKIT_NAME "; see %s", log);
}

/* $VRD_DAEMON_WRAP: words (split at spaces) that run the daemon, such as
 * "valgrind --error-exitcode=99 ..." (make check-valgrind); NULL when unset. */
static const char *daemon_wrap(void) {
        const char *w = getenv("VRD_DAEMON_WRAP");

        return w && *w ? w : NULL;
}

unsigned harness_daemon_ms(unsigned ms) {
        return daemon_wrap() ? ms * 10 : ms;
}

void harness_start_daemon(struct harness *h, const char *const *args) {
        const char *daemon = h->daemon ?: getenv("VRD_DAEMON");
        char log[128];

        ck_assert_msg(daemon, "VRD_DAEMON is not set: run the tests with make check");
        snprintf(log, sizeof(log), "%s/daemon.log", h->dir);
        h->daemon_checked = true;
        h->daemon_pid = fork();
        ck_assert_int_ge(h->daemon_pid, 0);
        if (h->daemon_pid == 0) {
                const char *argv[40];
                size_t n = 0;
                int fd = open(log, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
                char *wrap = daemon_wrap() ? strdup(daemon_wrap()) : NULL, *save = NULL;

                for (const char *const *w = h->wrapper; w && *w && n < 8; w++)
                        argv[n++] = *w;
                for (char *w = wrap ? strtok_r(wrap, " ", &save) : NULL; w && n < 24; w = strtok_r(NULL, " ", &save))
                        argv[n++] = w;
                argv[n++] = daemon;
                argv[n++] = "--debug";
                for (; args && *args && n < 39; args++)
                        argv[n++] = *args;
                argv[n] = NULL;
                dup2(fd, STDERR_FILENO);
                if (h->before_exec)
                        h->before_exec(h->before_exec_userdata);
                execv(argv[0], (char **) argv);
                _exit(127);
        }
        for (uint64_t end = now_ms() + harness_daemon_ms(10000); now_ms() < end; usleep(20000)) {
                if (harness_name_has_owner(h, VRD_BUS_NAME))
                        return;
                ck_assert_msg(harness_daemon_alive(h), "vfio-resetd exited while starting; see %s", log);
        }
        ck_abort_msg("vfio-resetd did not take its bus name; see %s", log);
}

bool harness_daemon_alive(struct harness *h) {
        return h->daemon_pid > 0 && waitpid(h->daemon_pid, NULL, WNOHANG) == 0;
}

int harness_kill_daemon(struct harness *h, int sig) {
        int status;

        ck_assert_int_eq(kill(h->daemon_pid, sig), 0);
        ck_assert_int_eq(waitpid(h->daemon_pid, &status, 0), h->daemon_pid);
        h->daemon_pid = 0;
        return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

int harness_terminate_daemon(struct harness *h, unsigned timeout_ms) {
        int status;

        if (h->daemon_pid <= 0 || kill(h->daemon_pid, SIGTERM) < 0)
                return -1;
        for (uint64_t end = now_ms() + harness_daemon_ms(timeout_ms); now_ms() < end; usleep(10000))
                if (waitpid(h->daemon_pid, &status, WNOHANG) == h->daemon_pid) {
                        h->daemon_pid = 0;
                        return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
                }
        return -1;
}

/* SIGTERM, then SIGKILL after timeout_ms; its wait status, or -1 if it had to be killed. */
static int stop(pid_t *pid, unsigned timeout_ms) {
        int status = 0;

        if (*pid <= 0)
                return 0;
        kill(*pid, SIGTERM);
        for (uint64_t end = now_ms() + timeout_ms; now_ms() < end; usleep(10000)) {
                pid_t r = waitpid(*pid, &status, WNOHANG);

                if (r == *pid || (r < 0 && errno == ECHILD)) {  /* ECHILD: reaped already */
                        *pid = 0;
                        return r < 0 ? 0 : status;
                }
        }
        kill(*pid, SIGKILL);
        waitpid(*pid, NULL, 0);
        *pid = 0;
        return -1;
}

void harness_stop(struct harness *h) {
        char cmd[512];
        bool checked;
        int status;

        h->bus = sd_bus_flush_close_unref(h->bus);
        checked = h->daemon_checked && h->daemon_pid > 0;
        /* LeakSanitizer's and memcheck's leak search at exit takes seconds */
        status = stop(&h->daemon_pid, harness_daemon_ms(10000));
        stop(&h->polkit_pid, 2000);
        stop(&h->bus_pid, 2000);
        /* The daemon exits 0 on SIGTERM unless a sanitizer or the wrapper found
         * errors (LSan's exitcode, valgrind's --error-exitcode): its log goes to
         * stderr, the test fails. */
        if (checked && status != 0 && h->dir[0]) {
                snprintf(cmd, sizeof(cmd), "cat '%s/daemon.log' >&2", h->dir);
                (void) system(cmd);
        }
        if (h->dir[0]) {
                snprintf(cmd, sizeof(cmd), "rm -rf '%s'", h->dir);
                (void) system(cmd);
        }
        ck_assert_msg(!checked || status >= 0, "vfio-resetd%s%s still ran %u s after SIGTERM (its log is above)",
                      daemon_wrap() ? " under " : "", daemon_wrap() ?: "", harness_daemon_ms(10000) / 1000);
        ck_assert_msg(!checked || status == 0, "vfio-resetd%s%s %s %d on SIGTERM (its log is above)",
                      daemon_wrap() ? " under " : "", daemon_wrap() ?: "",
                      WIFEXITED(status) ? "exited with status" : "was killed by signal",
                      WIFEXITED(status) ? WEXITSTATUS(status) : WTERMSIG(status));
}

int harness_run(char **ret_output, const char *fmt, ...) {
        char *cmd = NULL, *full = NULL, buf[4096];
        size_t len = 0;
        va_list ap;
        FILE *p;
        int status;

        va_start(ap, fmt);
        ck_assert_int_ge(vasprintf(&cmd, fmt, ap), 0);
        va_end(ap);
        ck_assert_int_ge(asprintf(&full, "( %s ) 2>&1", cmd), 0);
        p = popen(full, "r");
        ck_assert_ptr_nonnull(p);
        *ret_output = calloc(1, 1);
        while (fgets(buf, sizeof(buf), p)) {
                *ret_output = realloc(*ret_output, len + strlen(buf) + 1);
                strcpy(*ret_output + len, buf);
                len += strlen(buf);
        }
        status = pclose(p);
        free(cmd);
        free(full);
        return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

char *harness_assert_run(int want_status, const char *cmd, const char *const *needles) {
        char *out = NULL;
        int status = harness_run(&out, "%s", cmd);

        ck_assert_msg(status == want_status, "'%s' exited %d, not %d:\n%s", cmd, status, want_status, out);
        for (; *needles; needles++)
                ck_assert_msg(strstr(out, *needles), "'%s' printed no '%s':\n%s", cmd, *needles, out);
        return out;
}

char *cmdf(const char *fmt, ...) {
        static char ring[8][1024];
        static unsigned next;
        char *buf = ring[next++ % 8];
        va_list ap;

        va_start(ap, fmt);
        vsnprintf(buf, sizeof(ring[0]), fmt, ap);
        va_end(ap);
        return buf;
}

sd_bus *harness_silent_watcher(const char *address) {
        sd_bus_error e = SD_BUS_ERROR_NULL;
        sd_bus *b = NULL;

        ck_assert_int_ge(sd_bus_open_system(&b), 0);
        ck_assert_msg(sd_bus_call_method(b, VRD_BUS_NAME, VRD_ROOT_PATH, VRD_MANAGER_IFACE, "Watch", &e, NULL, "s",
                                         address) >= 0, "Watch %s: %s", address, e.message);
        return b;
}

bool harness_wait(struct harness *h, const bool *done, unsigned timeout_ms) {
        uint64_t end = now_ms() + timeout_ms;

        while (!*done) {
                int r = sd_bus_process(h->bus, NULL);

                ck_assert_int_ge(r, 0);
                if (r > 0)
                        continue;
                if (now_ms() >= end)
                        return false;
                (void) sd_bus_wait(h->bus, (end - now_ms()) * 1000);
        }
        return true;
}

void harness_spawn(struct harness_child *c, const char *const *argv) {
        int pipefd[2];

        ck_assert_int_eq(pipe2(pipefd, O_CLOEXEC), 0);
        *c = (struct harness_child) { .fd = pipefd[0] };
        c->pid = fork();
        ck_assert_int_ge(c->pid, 0);
        if (c->pid == 0) {
                dup2(pipefd[1], STDOUT_FILENO);
                dup2(pipefd[1], STDERR_FILENO);
                execv(argv[0], (char **) argv);
                _exit(127);
        }
        close(pipefd[1]);
}

char *harness_expect(struct harness_child *c, const char *prefix, unsigned timeout_ms) {
        uint64_t end = now_ms() + timeout_ms;

        for (;;) {
                struct pollfd pfd = { .fd = c->fd, .events = POLLIN };
                char *nl;
                ssize_t k;

                while ((nl = memchr(c->buf, '\n', c->len))) {
                        char *line = strndup(c->buf, (size_t) (nl - c->buf));

                        c->len -= (size_t) (nl - c->buf) + 1;
                        memmove(c->buf, nl + 1, c->len);
                        if (strncmp(line, prefix, strlen(prefix)) == 0)
                                return line;
                        /* the lines passed over, for the message of a test that fails */
                        if (strlen(c->skipped) + strlen(line) + 3 < sizeof(c->skipped))
                                strcat(strcat(strcat(c->skipped, "'"), line), "' ");
                        free(line);
                }
                if (now_ms() >= end || poll(&pfd, 1, (int) (end - now_ms()) + 1) <= 0)
                        return NULL;
                k = read(c->fd, c->buf + c->len, sizeof(c->buf) - c->len - 1);
                if (k <= 0)
                        return NULL;
                c->len += (size_t) k;
        }
}

void harness_expect_line(struct harness_child *c, const char *prefix, const char *needle) {
        char *line = harness_expect(c, prefix, 10000);

        ck_assert_msg(line, "never saw a line '%s...' (passed over: %s)", prefix, c->skipped);
        if (needle)
                ck_assert_msg(strstr(line, needle), "'%s' lacks '%s'", line, needle);
        free(line);
}

int harness_child_wait(struct harness_child *c, unsigned timeout_ms) {
        uint64_t end = now_ms() + timeout_ms;
        int status;

        for (;;) {
                pid_t r = waitpid(c->pid, &status, WNOHANG);

                ck_assert_int_ge(r, 0);
                if (r > 0)
                        break;
                if (now_ms() >= end)
                        return -1;
                usleep(10000);
        }
        c->pid = 0;
        return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

void harness_child_stop(struct harness_child *c) {
        if (c->pid > 0) {
                kill(c->pid, SIGKILL);
                waitpid(c->pid, NULL, 0);
                c->pid = 0;
        }
        if (c->fd >= 0)
                close(c->fd);
        c->fd = -1;
}

static int on_crowd_pause(sd_bus_message *m, void *userdata, sd_bus_error *error) {
        struct crowd_peer *p = userdata;
        const char *path, *type;

        if (sd_bus_message_read(m, "ots", &path, &p->paused, &type) < 0)
                return 0;
        return sd_bus_call_method_async(p->bus, NULL, VRD_BUS_NAME, VRD_ROOT_PATH, VRD_MANAGER_IFACE,
                                        "PauseComplete", NULL, NULL, "t", p->paused);
}

static int on_crowd_resume(sd_bus_message *m, void *userdata, sd_bus_error *error) {
        ((struct crowd_peer *) userdata)->n_resumed++;
        return 0;
}

size_t crowd_room(void) {
        rlim_t max = raise_fd_limit();

        /* one fd per peer here and one in dbus-daemon, which has the same hard limit; the rest
         * (harness, daemon, the bus's own sockets) fits in 64 */
        return max == RLIM_INFINITY ? SIZE_MAX : max > 64 ? (size_t) (max - 64) : 0;
}

void crowd_join(struct crowd *c, size_t n, const char *address) {
        crowd_join_spread(c, n, &address, 1);
}

void crowd_join_spread(struct crowd *c, size_t n, const char *const *addresses, size_t n_addresses) {
        ck_assert_msg(n <= crowd_room(), "%zu peers do not fit under the fd limit (room for %zu)", n, crowd_room());
        *c = (struct crowd) {
                .peers = calloc(n, sizeof(*c->peers)),
                .n = n,
                .fds = calloc(n + 1, sizeof(*c->fds)),
                .queued = calloc(n + 1, sizeof(bool)),
        };
        ck_assert(c->peers && c->fds && c->queued);
        for (size_t i = 0; i < n; i++) {
                struct crowd_peer *p = &c->peers[i];
                const char *address = addresses[i % n_addresses];
                sd_bus_error e = SD_BUS_ERROR_NULL;

                ck_assert_int_ge(sd_bus_open_system(&p->bus), 0);
                ck_assert_int_ge(sd_bus_match_signal(p->bus, NULL, VRD_BUS_NAME, VRD_ROOT_PATH, VRD_MANAGER_IFACE,
                                                     "Pause", on_crowd_pause, p), 0);
                ck_assert_int_ge(sd_bus_match_signal(p->bus, NULL, VRD_BUS_NAME, VRD_ROOT_PATH, VRD_MANAGER_IFACE,
                                                     "Resume", on_crowd_resume, p), 0);
                ck_assert_msg(sd_bus_call_method(p->bus, VRD_BUS_NAME, VRD_ROOT_PATH, VRD_MANAGER_IFACE, "Watch", &e,
                                                 NULL, "s", address) >= 0,
                              "peer %zu: Watch(%s): %s", i, address, e.message);
        }
}

void crowd_pump(struct crowd *c, sd_bus *also) {
        bool any = false;

        for (size_t i = 0; i <= c->n; i++) {
                sd_bus *b = i < c->n ? c->peers[i].bus : also;
                uint64_t timeout = UINT64_MAX;

                c->fds[i] = (struct pollfd) { .fd = b ? sd_bus_get_fd(b) : -1, .events = b ? (short) sd_bus_get_events(b) : 0 };
                /* a message read already (during a call) waits in sd-bus, not in the socket */
                c->queued[i] = b && sd_bus_get_timeout(b, &timeout) >= 0 && timeout == 0;
                any = any || c->queued[i];
        }
        (void) poll(c->fds, c->n + 1, any ? 0 : 1);
        for (size_t i = 0; i <= c->n; i++)
                if (c->fds[i].revents || c->queued[i])
                        while (sd_bus_process(i < c->n ? c->peers[i].bus : also, NULL) > 0)
                                ;
}

size_t crowd_resumed(const struct crowd *c, uint64_t at_least) {
        size_t k = 0;

        for (size_t i = 0; i < c->n; i++)
                k += c->peers[i].n_resumed >= at_least;
        return k;
}

size_t crowd_paused(const struct crowd *c) {
        size_t k = 0;

        for (size_t i = 0; i < c->n; i++)
                k += c->peers[i].paused > 0;
        return k;
}

void crowd_leave(struct crowd *c) {
        for (size_t i = 0; i < c->n; i++)
                sd_bus_flush_close_unref(c->peers[i].bus);
        free(c->peers);
        free(c->fds);
        free(c->queued);
        *c = (struct crowd) {};
}

/* tests/fake-systemd.py (python3-dbusmock) as org.freedesktop.systemd1 on the
 * private bus, run as child c; parameters: its JSON. */
void harness_start_systemd(struct harness *h, struct harness_child *c, const char *parameters) {
        char template[512];
        const char *python = getenv("PYTHON3") ?: "/usr/bin/python3";

        snprintf(template, sizeof(template), "%s/fake-systemd.py", getenv("TESTS_DIR") ?: "tests");
        harness_spawn(c, (const char *const[]) { python, "-m", "dbusmock", "--system", "--template", template,
                                                  "-p", parameters, NULL });
        for (uint64_t end = now_ms() + 30000; now_ms() < end; usleep(20000)) {
                if (harness_name_has_owner(h, SYSTEMD_NAME))
                        return;
                if (harness_child_wait(c, 0) >= 0) {
                        (void) harness_expect(c, "\x01", 1000);      /* no such line: all go to skipped */
                        ck_abort_msg("the fake systemd exited (is python3-dbusmock installed?): %s", c->skipped);
                }
        }
        ck_abort_msg("the fake systemd did not take " SYSTEMD_NAME);
}

const char *harness_systemd_calls(struct harness *h) {
        static char buf[4096];
        sd_bus_error e = SD_BUS_ERROR_NULL;
        sd_bus_message *reply = NULL;
        const char *method, *arg;
        uint64_t stamp;

        buf[0] = '\0';
        ck_assert_msg(sd_bus_call_method(h->bus, SYSTEMD_NAME, SYSTEMD_PATH, POLKIT_MOCK_IFACE, "GetCalls", &e, &reply,
                                         NULL) >= 0, "GetCalls: %s", e.message);
        ck_assert_int_ge(sd_bus_message_enter_container(reply, 'a', "(tsav)"), 0);
        while (sd_bus_message_enter_container(reply, 'r', "tsav") > 0) {
                ck_assert_int_ge(sd_bus_message_read(reply, "ts", &stamp, &method), 0);
                snprintf(buf + strlen(buf), sizeof(buf) - strlen(buf), "%s%s", buf[0] ? ", " : "", method);
                ck_assert_int_ge(sd_bus_message_enter_container(reply, 'a', "v"), 0);
                while (sd_bus_message_enter_container(reply, 'v', "s") > 0) {
                        ck_assert_int_ge(sd_bus_message_read(reply, "s", &arg), 0);
                        snprintf(buf + strlen(buf), sizeof(buf) - strlen(buf), " %s", arg);
                        ck_assert_int_ge(sd_bus_message_exit_container(reply), 0);
                }
                ck_assert_int_ge(sd_bus_message_exit_container(reply), 0);
                ck_assert_int_ge(sd_bus_message_exit_container(reply), 0);
        }
        sd_bus_message_unref(reply);
        return buf;
}
