/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* How the daemon and vfio-resetctl name the processes whose /proc/PID/fd the
 * daemon could not read (proc(5): it takes PTRACE_MODE_READ, so
 * CAP_SYS_PTRACE for processes of other users or with more capabilities). */

#include <stddef.h>
#include <stdint.h>

#define UNINSPECTED_HINT "the daemon needs CAP_SYS_PTRACE (and no sandbox in the way) to read their fds"
#define UNINSPECTED_MAX_NAMED 5

/* Appends entry i of n, "pid P (comm)", to the list in *list (", " between
 * entries, " and K more" after the last one named). Returns 0 or -ENOMEM. */
int uninspected_append(char **list, size_t i, size_t n, uint32_t pid, const char *comm);
