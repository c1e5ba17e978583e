/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "uninspected.h"

int uninspected_append(char **list, size_t i, size_t n, uint32_t pid, const char *comm) {
        char *old = *list, *s = NULL;
        int r;

        if (i >= UNINSPECTED_MAX_NAMED && i + 1 < n)
                return 0;       /* counted in " and K more" */
        if (i >= UNINSPECTED_MAX_NAMED)
                r = asprintf(&s, "%s and %zu more", old ?: "", n - UNINSPECTED_MAX_NAMED);
        else
                r = asprintf(&s, "%s%spid %u (%s)", old ?: "", old ? ", " : "", pid, comm);
        if (r < 0)
                return -ENOMEM;
        free(old);
        *list = s;
        return 0;
}
