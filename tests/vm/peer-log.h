/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* What a VM test peer says: a line on stdout (after --prefix TEXT), the
 * same line in --log FILE, and in --times FILE after the guest's
 * CLOCK_MONOTONIC, so that a scenario can order what several processes did.
 * For bar-peer and dmabuf-importer. */
#pragma once

#include <stdarg.h>
#include <stdio.h>
#include <time.h>

static FILE *logf, *timesf;
static const char *prefix = "";

static void say(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void say(const char *fmt, ...)
{
	char line[1024];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
	printf("%s%s%s\n", prefix, *prefix ? " " : "", line);
	fflush(stdout);
	if (logf) {
		fprintf(logf, "%s\n", line);
		fflush(logf);
	}
	if (timesf) {
		struct timespec ts;

		clock_gettime(CLOCK_MONOTONIC, &ts);
		fprintf(timesf, "%lld.%06ld %s\n", (long long)ts.tv_sec, ts.tv_nsec / 1000, line);
		fflush(timesf);
	}
}
