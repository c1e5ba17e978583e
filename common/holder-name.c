/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <inttypes.h>
#include <stdio.h>

#include "holder-name.h"

char *holder_name(char *buf, size_t size, uint32_t pid, const char *comm, uint32_t uid, const char *unit) {
        char u[32] = "";

        if (uid != HOLDER_UID_UNKNOWN)
                snprintf(u, sizeof(u), ", uid %" PRIu32, uid);
        snprintf(buf, size, "pid %" PRIu32 " (%s%s%s%s)", pid, comm ?: "?", u, unit && *unit ? ", unit " : "",
                 unit ?: "");
        return buf;
}
