/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>

#include "log.h"

static int max_level = LOG_INFO;

void log_set_max_level(int level) {
        max_level = level;
}

int log_get_max_level(void) {
        return max_level;
}

int log_internal(int level, int error, const char *fmt, ...) {
        static _Atomic int journal = -1;    /* the libvirt adapter's thread logs too */
        va_list ap;

        if (journal < 0)
                journal = getenv("JOURNAL_STREAM") != NULL;
        /* One line at a time: the libvirt adapter's thread logs too. */
        flockfile(stderr);
        if (journal)
                fprintf(stderr, "<%d>", level);
        errno = abs(error);
        va_start(ap, fmt);
        vfprintf(stderr, fmt, ap);
        va_end(ap);
        fputc('\n', stderr);
        funlockfile(stderr);
        return -abs(error);
}
