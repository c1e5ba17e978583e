/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>

#include "holders.h"
#include "macro.h"

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

static int add_holder(struct holder **v, size_t *n, size_t target, pid_t pid) {
        struct holder *nv;

        for (size_t i = 0; i < *n; i++)
                if ((*v)[i].target == target && (*v)[i].pid == pid)
                        return 0;
        nv = realloc(*v, sizeof(**v) * (*n + 1));
        if (!nv)
                return -ENOMEM;
        nv[*n] = (struct holder) { .target = target, .pid = pid };
        read_comm(pid, nv[*n].comm);
        *v = nv;
        (*n)++;
        return 0;
}

int holders_scan(const struct holder_target *targets, size_t n_targets, pid_t exclude,
                 struct holder **ret, size_t *n_ret) {
        _cleanup_(closedirp) DIR *proc = NULL;
        _cleanup_free_ struct holder *v = NULL;
        struct dirent *de;
        size_t n = 0;
        int r;

        *ret = NULL;
        *n_ret = 0;
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
                if (!fds)
                        continue;       /* exited, or not ours to look at */
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
                        if (statx(AT_FDCWD, path, AT_STATX_DONT_SYNC, STATX_TYPE, &sx) < 0 || !S_ISCHR(sx.stx_mode))
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
        return 0;
}
