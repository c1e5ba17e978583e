/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* Whether a process or thread is stopped, as /proc says (proc(5): the state
 * field of /proc/PID/stat and /proc/PID/task/TID/stat). vfio-resetctl hold
 * waits for its command to stop; the daemon's process adapter for a holder. */

#include <stdbool.h>
#include <sys/types.h>

/* State, parent and process group from DIR/stat (DIR: "/proc/PID" or
 * "/proc/PID/task/TID"). -errno when it cannot be read (ENOENT: gone). */
int proc_stat_read(const char *dir, char *ret_state, pid_t *ret_ppid, pid_t *ret_pgrp);

/* Stopped, or as good as stopped: T (SIGSTOP), t (traced), a zombie, or D in
 * the kernel waiting for a vfork child that was stopped before it exec'd
 * (dash runs every command so): that one cannot run before its child does. */
bool proc_dir_stopped(const char *dir, char state);

/* Every thread of pid is stopped (proc_dir_stopped); a process that is gone
 * counts as stopped. *ret_running, if not NULL, gets a thread that is not. */
bool proc_all_threads_stopped(pid_t pid, pid_t *ret_running, char *ret_state);
