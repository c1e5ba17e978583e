/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>
#include <linux/kcmp.h>

#include "macro.h"
#include "service-manager.h"

#define MAX_MESSAGE_FDS 253     /* SCM_MAX_FD */
#define PASS_FD_BASE 512        /* where the fds for the child wait, clear of 3.. */

static bool same_file(int a, int b) {
        return syscall(SYS_kcmp, getpid(), getpid(), KCMP_FILE, a, b) == 0;
}

/* Under the lock. */
static void say(struct service_manager *s, const char *line) {
        size_t n = strlen(line);
        char *x = realloc(s->said, s->said_len + n + 2);

        ck_assert_ptr_nonnull(x);
        s->said = x;
        memcpy(s->said + s->said_len, line, n);
        s->said_len += n;
        s->said[s->said_len++] = '\n';
        s->said[s->said_len] = '\0';
}

/* Under the lock. */
static void store(struct service_manager *s, const char *name, int fd) {
        struct stored_fd *n;
        char line[320];

        for (size_t i = 0; i < s->n_fds; i++)
                if (same_file(s->fds[i].fd, fd)) {
                        close(fd);
                        return;
                }
        if (s->n_fds >= s->max_fds) {
                snprintf(line, sizeof(line), "(refused %s: the store is full)", name);
                say(s, line);
                close(fd);
                return;
        }
        n = realloc(s->fds, sizeof(*n) * (s->n_fds + 1));
        ck_assert_ptr_nonnull(n);
        s->fds = n;
        snprintf(n[s->n_fds].name, sizeof(n[s->n_fds].name), "%s", name);
        n[s->n_fds++].fd = fd;
}

/* Under the lock. */
static void remove_named(struct service_manager *s, const char *name) {
        size_t k = 0;

        for (size_t i = 0; i < s->n_fds; i++)
                if (strcmp(s->fds[i].name, name) == 0)
                        close(s->fds[i].fd);
                else
                        s->fds[k++] = s->fds[i];
        s->n_fds = k;
}

static const char *field(char *const *fields, size_t n, const char *key) {
        size_t k = strlen(key);

        for (size_t i = 0; i < n; i++)
                if (strncmp(fields[i], key, k) == 0 && fields[i][k] == '=')
                        return fields[i] + k + 1;
        return NULL;
}

static void handle(struct service_manager *s, char *text, int *fds, size_t n_fds) {
        char *fields[32], line[4096] = "", *save = NULL;
        struct timespec now;
        const char *name;
        size_t n = 0;

        for (char *f = strtok_r(text, "\n", &save); f && n < ELEMENTSOF(fields); f = strtok_r(NULL, "\n", &save))
                fields[n++] = f;
        for (size_t i = 0; i < n; i++)
                snprintf(line + strlen(line), sizeof(line) - strlen(line), "%s ", fields[i]);
        clock_gettime(CLOCK_MONOTONIC, &now);
        snprintf(line + strlen(line), sizeof(line) - strlen(line), "fds=%zu at=%lld", n_fds,
                 (long long) now.tv_sec * 1000000 + now.tv_nsec / 1000);
        pthread_mutex_lock(&s->lock);
        say(s, line);
        name = field(fields, n, "FDNAME");
        if (streq_ptr(field(fields, n, "FDSTORE"), "1")) {
                for (size_t i = 0; i < n_fds; i++)
                        store(s, name ?: "stored", fds[i]);
                n_fds = 0;
        }
        if (streq_ptr(field(fields, n, "FDSTOREREMOVE"), "1") && name)
                remove_named(s, name);
        pthread_mutex_unlock(&s->lock);
        for (size_t i = 0; i < n_fds; i++)      /* BARRIER=1's and strays: closed, as PID 1 does */
                close(fds[i]);
}

static void *reader(void *userdata) {
        struct service_manager *s = userdata;

        for (;;) {
                union {
                        struct cmsghdr h;
                        char buf[CMSG_SPACE(sizeof(int) * MAX_MESSAGE_FDS) + CMSG_SPACE(sizeof(struct ucred))];
                } control;
                char text[4096];
                struct iovec iov = { .iov_base = text, .iov_len = sizeof(text) - 1 };
                struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1, .msg_control = &control,
                                     .msg_controllen = sizeof(control) };
                struct pollfd p = { .fd = s->sock, .events = POLLIN };
                int fds[MAX_MESSAGE_FDS];
                size_t n_fds = 0;
                bool stop;
                ssize_t k;

                pthread_mutex_lock(&s->lock);
                stop = s->stop;
                pthread_mutex_unlock(&s->lock);
                if (stop)
                        return NULL;
                if (poll(&p, 1, 50) <= 0)
                        continue;
                k = recvmsg(s->sock, &mh, MSG_DONTWAIT | MSG_CMSG_CLOEXEC);
                if (k < 0)
                        continue;
                text[k] = '\0';
                for (struct cmsghdr *c = CMSG_FIRSTHDR(&mh); c; c = CMSG_NXTHDR(&mh, c))
                        if (c->cmsg_level == SOL_SOCKET && c->cmsg_type == SCM_RIGHTS) {
                                size_t m = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);

                                memcpy(fds + n_fds, CMSG_DATA(c), m * sizeof(int));
                                n_fds += m;
                        }
                handle(s, text, fds, n_fds);
        }
}

void service_manager_start(struct service_manager *s, const char *dir, size_t max_fds) {
        struct sockaddr_un sa = { .sun_family = AF_UNIX };
        int one = 1;

        *s = (struct service_manager) { .max_fds = max_fds, .lock = PTHREAD_MUTEX_INITIALIZER };
        snprintf(s->path, sizeof(s->path), "%s/notify", dir);
        snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", s->path);
        s->sock = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
        ck_assert_int_ge(s->sock, 0);
        (void) unlink(s->path);
        ck_assert_int_eq(bind(s->sock, (struct sockaddr *) &sa, sizeof(sa)), 0);
        ck_assert_int_eq(setsockopt(s->sock, SOL_SOCKET, SO_PASSCRED, &one, sizeof(one)), 0);
        ck_assert_int_eq(pthread_create(&s->thread, NULL, reader, s), 0);
        s->running = true;
}

void service_manager_stop(struct service_manager *s) {
        if (s->running) {
                pthread_mutex_lock(&s->lock);
                s->stop = true;
                pthread_mutex_unlock(&s->lock);
                pthread_join(s->thread, NULL);
                s->running = false;
        }
        service_manager_flush(s);
        free(s->fds);
        s->fds = NULL;
        free(s->said);
        s->said = NULL;
        s->said_len = 0;
        if (s->sock >= 0)
                close(s->sock);
        s->sock = -1;
}

/* In the forked child, before its exec: nothing here may take a lock. */
static void before_exec(void *userdata) {
        struct service_manager *s = userdata;
        char pid[16];

        for (size_t i = 0; i < s->n_pass; i++)
                (void) dup2(s->pass[i], 3 + (int) i);          /* dup2 clears FD_CLOEXEC */
        snprintf(pid, sizeof(pid), "%d", (int) getpid());
        setenv("NOTIFY_SOCKET", s->path, 1);
        if (s->n_pass == 0)
                return;
        setenv("LISTEN_PID", pid, 1);
        setenv("LISTEN_FDS", s->listen_fds, 1);
        setenv("LISTEN_FDNAMES", s->listen_names, 1);
}

void service_manager_start_daemon(struct service_manager *s, struct harness *h, const char *const *args) {
        size_t len = 1;

        pthread_mutex_lock(&s->lock);
        s->n_pass = s->n_fds;
        s->pass = calloc(s->n_fds + 1, sizeof(int));
        for (size_t i = 0; i < s->n_fds; i++)
                len += strlen(s->fds[i].name) + 1;
        s->listen_names = calloc(1, len);
        ck_assert(s->pass && s->listen_names);
        for (size_t i = 0; i < s->n_fds; i++) {
                s->pass[i] = fcntl(s->fds[i].fd, F_DUPFD_CLOEXEC, PASS_FD_BASE);
                ck_assert_int_ge(s->pass[i], PASS_FD_BASE);
                if (i > 0)
                        strcat(s->listen_names, ":");
                strcat(s->listen_names, s->fds[i].name);
        }
        snprintf(s->listen_fds, sizeof(s->listen_fds), "%zu", s->n_fds);
        pthread_mutex_unlock(&s->lock);

        h->before_exec = before_exec;
        h->before_exec_userdata = s;
        harness_start_daemon(h, args);
        h->before_exec = NULL;
        for (size_t i = 0; i < s->n_pass; i++)
                close(s->pass[i]);
        free(s->pass);
        s->pass = NULL;
        s->n_pass = 0;
        free(s->listen_names);
        s->listen_names = NULL;
}

void service_manager_store(struct service_manager *s, const char *name, int fd) {
        pthread_mutex_lock(&s->lock);
        store(s, name, fd);
        pthread_mutex_unlock(&s->lock);
}

void service_manager_flush(struct service_manager *s) {
        pthread_mutex_lock(&s->lock);
        for (size_t i = 0; i < s->n_fds; i++)
                close(s->fds[i].fd);
        s->n_fds = 0;
        pthread_mutex_unlock(&s->lock);
}

size_t service_manager_count(struct service_manager *s, const char *name) {
        size_t n = 0;

        pthread_mutex_lock(&s->lock);
        for (size_t i = 0; i < s->n_fds; i++)
                n += !name || strcmp(s->fds[i].name, name) == 0;
        pthread_mutex_unlock(&s->lock);
        return n;
}

int service_manager_dup(struct service_manager *s, const char *name) {
        int fd = -1;

        pthread_mutex_lock(&s->lock);
        for (size_t i = 0; fd < 0 && i < s->n_fds; i++)
                if (strcmp(s->fds[i].name, name) == 0)
                        fd = fcntl(s->fds[i].fd, F_DUPFD_CLOEXEC, 3);
        pthread_mutex_unlock(&s->lock);
        return fd;
}

char *service_manager_said(struct service_manager *s) {
        char *copy;

        pthread_mutex_lock(&s->lock);
        copy = strdup(s->said ?: "");
        pthread_mutex_unlock(&s->lock);
        ck_assert_ptr_nonnull(copy);
        return copy;
}

bool service_manager_wait_said(struct service_manager *s, const char *text, unsigned timeout_ms) {
        for (unsigned i = 0; i <= timeout_ms / 10; i++) {
                char *said = service_manager_said(s);
                bool found = strstr(said, text) != NULL;

                free(said);
                if (found)
                        return true;
                usleep(10000);
        }
        return false;
}
