/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "macro.h"
#include "proc-state.h"

int proc_stat_read(const char *dir, char *ret_state, pid_t *ret_ppid, pid_t *ret_pgrp) {
        _cleanup_(fclosep) FILE *f = NULL;
        char path[256], buf[1024], *s;
        int ppid, pgrp;

        snprintf(path, sizeof(path), "%s/stat", dir);
        f = fopen(path, "re");
        if (!f)
                return negative_errno();
        /* "pid (comm) state ppid pgrp ...": comm may hold anything, so from the last ')' */
        if (!fgets(buf, sizeof(buf), f) || !(s = strrchr(buf, ')')) ||
            sscanf(s + 1, " %c %d %d", ret_state, &ppid, &pgrp) != 3)
                return -EIO;
        if (ret_ppid)
                *ret_ppid = ppid;
        if (ret_pgrp)
                *ret_pgrp = pgrp;
        return 0;
}

static bool waits_for_vfork_child(const char *dir) {
        _cleanup_(fclosep) FILE *f = NULL;
        char path[256], wchan[64] = "";

        snprintf(path, sizeof(path), "%s/wchan", dir);
        f = fopen(path, "re");
        if (!f || !fgets(wchan, sizeof(wchan), f))
                return false;
        /* kernel_clone (5.10+), _do_fork and do_fork before; wait_for_vfork_done where not inlined */
        return strstr(wchan, "clone") || strstr(wchan, "fork");
}

bool proc_dir_stopped(const char *dir, char state) {
        return strchr("TtZX", state) || (state == 'D' && waits_for_vfork_child(dir));
}

bool proc_all_threads_stopped(pid_t pid, pid_t *ret_running, char *ret_state) {
        _cleanup_(closedirp) DIR *d = NULL;
        char path[64];
        struct dirent *de;

        snprintf(path, sizeof(path), "/proc/%d/task", (int) pid);
        d = opendir(path);
        if (!d)
                return true;    /* gone */
        while ((de = readdir(d))) {
                char dir[sizeof(path) + 256], state;

                if (!isdigit((unsigned char) de->d_name[0]))
                        continue;
                snprintf(dir, sizeof(dir), "%s/%s", path, de->d_name);
                if (proc_stat_read(dir, &state, NULL, NULL) < 0)
                        continue;       /* the thread exited */
                if (!proc_dir_stopped(dir, state)) {
                        if (ret_running)
                                *ret_running = (pid_t) atoi(de->d_name);
                        if (ret_state)
                                *ret_state = state;
                        return false;
                }
        }
        return true;
}
