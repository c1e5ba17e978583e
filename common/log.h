/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include <stdbool.h>
#include <sys/uio.h>
#include <syslog.h>

#include "macro.h"

/* stderr logging; under journald (stderr is the stream JOURNAL_STREAM names)
 * each line carries a <N> syslog prefix so the journal keeps the level.
 * "%m" prints -error. */
void log_set_max_level(int level);
int log_get_max_level(void);
int log_internal(int level, int error, const char *fmt, ...) _printf_(3, 4);

#define log_full_errno(level, error, ...) \
        (log_get_max_level() >= (level) ? log_internal((level), (error), __VA_ARGS__) : -abs(error))
#define log_debug(...)   log_full_errno(LOG_DEBUG, 0, __VA_ARGS__)
#define log_info(...)    log_full_errno(LOG_INFO, 0, __VA_ARGS__)
#define log_notice(...)  log_full_errno(LOG_NOTICE, 0, __VA_ARGS__)
#define log_warning(...) log_full_errno(LOG_WARNING, 0, __VA_ARGS__)
#define log_error(...)   log_full_errno(LOG_ERR, 0, __VA_ARGS__)
#define log_debug_errno(e, ...)   log_full_errno(LOG_DEBUG, (e), __VA_ARGS__)
#define log_warning_errno(e, ...) log_full_errno(LOG_WARNING, (e), __VA_ARGS__)
#define log_error_errno(e, ...)   log_full_errno(LOG_ERR, (e), __VA_ARGS__)
#define log_oom() log_error_errno(ENOMEM, "Out of memory.")

/* A log entry with fields, in the manner of systemd's log_struct: after the
 * level, "FIELD=format" strings each followed by its arguments, one of them
 * "MESSAGE=...", and NULL at the end:
 *
 *   log_struct(LOG_INFO, "VFIO_DEVSET=%s", id, "VFIO_RESET_ID=%" PRIu64, rid,
 *              "MESSAGE=Reset %" PRIu64 " of %s: done", rid, id, NULL);
 *
 * Under journald every field goes to the journal (sd_journal_sendv(3), with
 * PRIORITY= and SYSLOG_IDENTIFIER=); elsewhere, or when the journal does not
 * take it, MESSAGE is one line on stderr as log_internal() writes it. At most
 * LOG_STRUCT_FIELDS_MAX fields of LOG_STRUCT_SIZE bytes in all (the rest is
 * cut); nothing is allocated. The argument types are not checked by the
 * compiler: each format's own arguments must follow it. */
#define LOG_STRUCT_FIELDS_MAX 16
#define LOG_STRUCT_SIZE 8192
int log_struct_internal(int level, int error, const char *format, ...) _sentinel_;
#define log_struct_errno(level, error, ...) \
        (log_get_max_level() >= (level) ? log_struct_internal((level), (error), __VA_ARGS__) : -abs(error))
#define log_struct(level, ...) log_struct_errno((level), 0, __VA_ARGS__)

/* stderr is the journal stream systemd connected it to (JOURNAL_STREAM,
 * "device:inode", names it; see systemd.exec(5)). */
bool log_stderr_is_journal(void);
/* Where structured entries go under journald: sd_journal_sendv. Tests put a
 * fake journal here. */
typedef int (*log_sendv_t)(const struct iovec *iov, int n);
extern log_sendv_t log_journal_sendv;
