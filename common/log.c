/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Logging to stderr, and structured entries to the journal (log.h). */
#include <errno.h>
#include <printf.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <systemd/sd-journal.h>

#include "log.h"

static int max_level = LOG_INFO;

log_sendv_t log_journal_sendv = sd_journal_sendv;

void log_set_max_level(int level) {
        max_level = level;
}

int log_get_max_level(void) {
        return max_level;
}

bool log_stderr_is_journal(void) {
        const char *e = getenv("JOURNAL_STREAM");
        unsigned long long dev, ino;
        struct stat st;
        int end = 0;

        if (!e || sscanf(e, "%llu:%llu%n", &dev, &ino, &end) != 2 || e[end] || fstat(STDERR_FILENO, &st) < 0)
                return false;
        return st.st_dev == (dev_t) dev && st.st_ino == (ino_t) ino;
}

int log_internal(int level, int error, const char *fmt, ...) {
        va_list ap;

        /* One line at a time: the libvirt adapter's thread logs too. */
        flockfile(stderr);
        if (log_stderr_is_journal())
                fprintf(stderr, "<%d>", level);
        errno = abs(error);
        va_start(ap, fmt);
        vfprintf(stderr, fmt, ap);
        va_end(ap);
        fputc('\n', stderr);
        funlockfile(stderr);
        return -abs(error);
}

/* Past the arguments of one printf format (glibc's parse_printf_format). */
static int skip_arguments(const char *format, va_list *ap) {
        int types[16];
        size_t n = parse_printf_format(format, ELEMENTSOF(types), types);

        if (n > ELEMENTSOF(types))
                return -E2BIG;
        for (size_t i = 0; i < n; i++) {
                int flags = types[i] & PA_FLAG_MASK;

                if (flags & PA_FLAG_PTR) {
                        (void) va_arg(*ap, void *);
                        continue;
                }
                switch (types[i] & ~PA_FLAG_MASK) {
                case PA_INT:
                case PA_CHAR:
                case PA_WCHAR:
                        if (flags & PA_FLAG_LONG_LONG)
                                (void) va_arg(*ap, long long);
                        else if (flags & PA_FLAG_LONG)
                                (void) va_arg(*ap, long);
                        else
                                (void) va_arg(*ap, int);
                        break;
                case PA_STRING:
                case PA_WSTRING:
                case PA_POINTER:
                        (void) va_arg(*ap, void *);
                        break;
                case PA_FLOAT:
                case PA_DOUBLE:
                        if (flags & PA_FLAG_LONG_DOUBLE)
                                (void) va_arg(*ap, long double);
                        else
                                (void) va_arg(*ap, double);
                        break;
                default:
                        return -EINVAL;
                }
        }
        return 0;
}

int log_struct_internal(int level, int error, const char *format, ...) {
        char buf[LOG_STRUCT_SIZE], priority[sizeof("PRIORITY=") + 12], identifier[96];
        struct iovec iov[LOG_STRUCT_FIELDS_MAX + 2];
        const char *message = NULL;
        size_t used = 0, n = 0;
        bool journal = log_stderr_is_journal();
        va_list ap;

        va_start(ap, format);
        for (const char *f = format; f && n < LOG_STRUCT_FIELDS_MAX && used < sizeof(buf);
             f = va_arg(ap, const char *)) {
                size_t room = sizeof(buf) - used, len;
                va_list aq;
                int k;

                errno = abs(error);
                va_copy(aq, ap);
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wformat-nonliteral"
                k = vsnprintf(buf + used, room, f, aq);
#pragma GCC diagnostic pop
                va_end(aq);
                if (skip_arguments(f, &ap) < 0)
                        break;          /* a format we cannot step over: what follows is not ours to read */
                if (k < 0)
                        continue;
                len = (size_t) k < room ? (size_t) k : room - 1;
                iov[n++] = (struct iovec) { .iov_base = buf + used, .iov_len = len };
                if (strncmp(buf + used, "MESSAGE=", 8) == 0)
                        message = buf + used + 8;
                used += len + 1;
        }
        va_end(ap);

        if (journal) {
                snprintf(priority, sizeof(priority), "PRIORITY=%d", level);
                snprintf(identifier, sizeof(identifier), "SYSLOG_IDENTIFIER=%s", program_invocation_short_name);
                iov[n++] = (struct iovec) { .iov_base = priority, .iov_len = strlen(priority) };
                iov[n++] = (struct iovec) { .iov_base = identifier, .iov_len = strlen(identifier) };
                if (log_journal_sendv(iov, (int) n) >= 0)
                        return -abs(error);
        }
        if (message) {
                flockfile(stderr);
                if (journal)
                        fprintf(stderr, "<%d>", level);
                fprintf(stderr, "%s\n", message);
                funlockfile(stderr);
        }
        return -abs(error);
}
