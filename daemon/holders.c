/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/sysmacros.h>
#include <linux/kcmp.h>
#include <systemd/sd-login.h>

#include "holders.h"
#include "macro.h"
#include "uninspected.h"

#define PF_KTHREAD 0x00200000   /* include/linux/sched.h */

int holder_target_from_path(const char *path, struct holder_target *ret) {
        _cleanup_close_ int fd = -EBADF;
        struct stat st;

        /* O_PATH never reaches the driver's open(): looking cannot take the
         * group away from anyone. fstat gives the device an opener's fd has. */
        fd = open(path, O_PATH | O_CLOEXEC);
        if (fd < 0 || fstat(fd, &st) < 0)
                return negative_errno();
        if (!S_ISCHR(st.st_mode))
                return -ENODEV;
        *ret = (struct holder_target) { .rdev = st.st_rdev };
        return 0;
}

static void read_comm(pid_t pid, char comm[17]) {
        char path[64];
        _cleanup_(fclosep) FILE *f = NULL;

        strcpy(comm, "?");
        snprintf(path, sizeof(path), "/proc/%d/comm", (int) pid);
        f = fopen(path, "re");
        if (f && fgets(comm, 17, f))
                comm[strcspn(comm, "\n")] = '\0';
}

/* The real uid: the owner of /proc/<pid> is the effective one, or root for a
 * non-dumpable process (proc(5)). */
static uid_t read_uid(pid_t pid) {
        _cleanup_(fclosep) FILE *f = NULL;
        char path[64], line[256];
        unsigned uid;

        snprintf(path, sizeof(path), "/proc/%d/status", (int) pid);
        f = fopen(path, "re");
        while (f && fgets(line, sizeof(line), f))
                if (sscanf(line, "Uid: %u", &uid) == 1)
                        return (uid_t) uid;
        return (uid_t) -1;
}

static void read_unit(pid_t pid, char unit[HOLDER_UNIT_MAX]) {
        _cleanup_free_ char *u = NULL;

        /* Any error means no unit to name: -ENODATA outside every unit, -ENOENT or
         * -ENOMEDIUM with no cgroup hierarchy on /sys/fs/cgroup (no systemd), -ESRCH gone. */
        unit[0] = '\0';
        if (sd_pid_get_unit(pid, &u) >= 0)
                snprintf(unit, HOLDER_UNIT_MAX, "%s", u);
}

static int add_holder(struct holder **v, size_t *n, size_t target, pid_t pid) {
        struct holder *nv;

        for (size_t i = 0; i < *n; i++)
                if ((*v)[i].target == target && (*v)[i].pid == pid)
                        return 0;
        nv = realloc(*v, sizeof(**v) * (*n + 1));
        if (!nv)
                return -ENOMEM;
        nv[*n] = (struct holder) { .target = target, .pid = pid, .uid = read_uid(pid) };
        read_comm(pid, nv[*n].comm);
        read_unit(pid, nv[*n].unit);
        *v = nv;
        (*n)++;
        return 0;
}

/* Kernel threads and zombies have no fds to hold: not worth a report when
 * their fd folders are closed to us (/proc/PID/stat is open to all). */
static bool holds_nothing(pid_t pid) {
        _cleanup_(fclosep) FILE *f = NULL;
        char path[64], line[1024], state = 0, *p;
        unsigned flags = 0;

        snprintf(path, sizeof(path), "/proc/%d/stat", (int) pid);
        f = fopen(path, "re");
        if (!f || !fgets(line, sizeof(line), f) || !(p = strrchr(line, ')')))
                return true;    /* gone */
        if (sscanf(p + 1, " %c %*d %*d %*d %*d %*d %u", &state, &flags) != 2)
                return false;
        return (flags & PF_KTHREAD) || state == 'Z' || state == 'X';
}

static int add_uninspected(struct holder **v, size_t *n, pid_t pid) {
        if (holds_nothing(pid))
                return 0;
        return add_holder(v, n, SIZE_MAX, pid);
}

int holders_scan(const struct holder_target *targets, size_t n_targets, pid_t exclude,
                 struct holder **ret, size_t *n_ret, struct holder **ret_uninspected, size_t *n_uninspected) {
        _cleanup_(closedirp) DIR *proc = NULL;
        _cleanup_free_ struct holder *v = NULL, *u = NULL;
        struct dirent *de;
        size_t n = 0, n_u = 0;
        int r;

        *ret = *ret_uninspected = NULL;
        *n_ret = *n_uninspected = 0;
        if (n_targets == 0)
                return 0;
        proc = opendir("/proc");
        if (!proc)
                return negative_errno();

        while ((de = readdir(proc))) {
                _cleanup_(closedirp) DIR *fds = NULL;
                struct dirent *fe;
                char dir[64];
                char *end;
                long pid = strtol(de->d_name, &end, 10);

                if (*end || pid <= 0 || pid == exclude)
                        continue;
                snprintf(dir, sizeof(dir), "/proc/%ld/fd", pid);
                fds = opendir(dir);
                if (!fds) {
                        /* ENOENT: it exited. Else (EACCES: no ptrace access) it may hold anything. */
                        r = errno == ENOENT || errno == ESRCH ? 0 : add_uninspected(&u, &n_u, (pid_t) pid);
                        if (r < 0)
                                return r;
                        continue;
                }
                while ((fe = readdir(fds))) {
                        char path[sizeof(dir) + 256];
                        struct statx sx;

                        if (fe->d_name[0] == '.')
                                continue;
                        snprintf(path, sizeof(path), "%s/%s", dir, fe->d_name);
                        /* Only the device number tells: the path a holder sees may be
                         * in another mount namespace. Pipes, sockets and anon inodes
                         * (vfio device fds) are no char devices. DONT_SYNC: a file on a
                         * dead NFS server cannot hang the scan. */
                        if (statx(AT_FDCWD, path, AT_STATX_DONT_SYNC, STATX_TYPE, &sx) < 0) {
                                if (errno == EACCES || errno == EPERM) {
                                        r = add_uninspected(&u, &n_u, (pid_t) pid);
                                        if (r < 0)
                                                return r;
                                        break;
                                }
                                continue;       /* closed meanwhile */
                        }
                        if (!S_ISCHR(sx.stx_mode))
                                continue;
                        for (size_t t = 0; t < n_targets; t++)
                                if (targets[t].rdev == makedev(sx.stx_rdev_major, sx.stx_rdev_minor)) {
                                        r = add_holder(&v, &n, t, (pid_t) pid);
                                        if (r < 0)
                                                return r;
                                }
                }
        }
        *ret = TAKE_PTR(v);
        *n_ret = n;
        *ret_uninspected = TAKE_PTR(u);
        *n_uninspected = n_u;
        return 0;
}

int holder_fd_of(pid_t pid, dev_t rdev) {
        _cleanup_(closedirp) DIR *fds = NULL;
        struct dirent *fe;
        char dir[64];
        int best = -ENOENT;

        snprintf(dir, sizeof(dir), "/proc/%d/fd", (int) pid);
        fds = opendir(dir);
        if (!fds)
                return negative_errno();
        while ((fe = readdir(fds))) {
                char path[sizeof(dir) + 256];
                struct statx sx;
                int fd = atoi(fe->d_name);

                if (fe->d_name[0] == '.')
                        continue;
                snprintf(path, sizeof(path), "%s/%s", dir, fe->d_name);
                if (statx(AT_FDCWD, path, AT_STATX_DONT_SYNC, STATX_TYPE, &sx) < 0 || !S_ISCHR(sx.stx_mode) ||
                    makedev(sx.stx_rdev_major, sx.stx_rdev_minor) != rdev)
                        continue;
                if (best < 0 || fd < best)
                        best = fd;
        }
        return best;
}

/* Which of our fds (their stat in mine) pid holds the open file of: adds a
 * holder for each. Only its fds on the same inode are compared by the
 * kernel: every container shares the inode of /dev/vfio/vfio. */
static int add_file_holders(pid_t pid, const int *fds, const struct stat *mine, size_t n_fds, bool *held,
                            struct holder **v, size_t *n) {
        _cleanup_(closedirp) DIR *dir = NULL;
        struct dirent *fe;
        char path[64];
        int r;

        snprintf(path, sizeof(path), "/proc/%d/fd", (int) pid);
        dir = opendir(path);
        if (!dir)
                return errno == ENOENT || errno == ESRCH ? 0 : negative_errno();
        while ((fe = readdir(dir))) {
                char fdpath[sizeof(path) + 256];
                struct stat st;

                if (fe->d_name[0] == '.')
                        continue;
                snprintf(fdpath, sizeof(fdpath), "%s/%s", path, fe->d_name);
                if (stat(fdpath, &st) < 0)
                        continue;
                for (size_t i = 0; i < n_fds; i++) {
                        if (held[i] || st.st_dev != mine[i].st_dev || st.st_ino != mine[i].st_ino ||
                            syscall(SYS_kcmp, getpid(), pid, KCMP_FILE, fds[i], atoi(fe->d_name)) != 0)
                                continue;
                        held[i] = true;
                        if (v) {
                                r = add_holder(v, n, i, pid);
                                if (r < 0)
                                        return r;
                        }
                }
        }
        return 0;
}

int holder_has_file(pid_t pid, int fd) {
        struct stat mine;
        bool held = false;
        int r;

        if (fstat(fd, &mine) < 0)
                return negative_errno();
        r = add_file_holders(pid, &fd, &mine, 1, &held, NULL, NULL);
        return r < 0 ? r : held;
}

int holders_of_files(const int *fds, size_t n_fds, const pid_t *exclude, size_t n_exclude, struct holder **ret,
                     size_t *n_ret) {
        _cleanup_(closedirp) DIR *proc = NULL;
        _cleanup_free_ struct holder *v = NULL;
        _cleanup_free_ struct stat *mine = calloc(n_fds + 1, sizeof(*mine));
        _cleanup_free_ bool *held = calloc(n_fds + 1, sizeof(*held));
        struct dirent *de;
        size_t n = 0;
        int r;

        *ret = NULL;
        *n_ret = 0;
        if (!mine || !held)
                return -ENOMEM;
        for (size_t i = 0; i < n_fds; i++)
                if (fstat(fds[i], &mine[i]) < 0)
                        return negative_errno();
        proc = opendir("/proc");
        if (!proc)
                return negative_errno();
        while ((de = readdir(proc))) {
                char *end;
                long pid = strtol(de->d_name, &end, 10);
                bool skip = *end || pid <= 0;

                for (size_t i = 0; !skip && i < n_exclude; i++)
                        skip = exclude[i] == (pid_t) pid;
                if (skip)
                        continue;
                memset(held, 0, sizeof(*held) * n_fds);
                r = add_file_holders((pid_t) pid, fds, mine, n_fds, held, &v, &n);
                if (r == -ENOMEM)
                        return r;
        }
        *ret = TAKE_PTR(v);
        *n_ret = n;
        return 0;
}

const char *holder_describe(const struct holder *h, char buf[static HOLDER_NAME_MAX]) {
        return holder_name(buf, HOLDER_NAME_MAX, (uint32_t) h->pid, h->comm,
                           h->uid == (uid_t) -1 ? HOLDER_UID_UNKNOWN : (uint32_t) h->uid, h->unit);
}

char *holders_uninspected_sentence(const struct holder *v, size_t n) {
        _cleanup_free_ char *list = NULL;
        char *s = NULL;

        for (size_t i = 0; i < n; i++)
                if (uninspected_append(&list, i, n, (uint32_t) v[i].pid, v[i].comm) < 0)
                        return NULL;
        if (asprintf(&s, "%zu process%s could not be inspected (%s); " UNINSPECTED_HINT, n, n == 1 ? "" : "es",
                     list ?: "") < 0)
                return NULL;
        return s;
}
