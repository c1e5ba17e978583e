/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "hold.h"
#include "macro.h"
#include "strv.h"

/* "0000:04:00.0" -> "0000_04_00_0": a shell variable name may hold neither ':' nor '.' */
static int append_fd(char ***env, const char *prefix, const char *address, int fd) {
        char *s;
        int r;

        if (asprintf(&s, "%s%s=%d", prefix, address, fd) < 0)
                return -ENOMEM;
        for (char *p = s + strlen(prefix); *p != '='; p++)
                if (*p == ':' || *p == '.')
                        *p = '_';
        r = strv_extend(env, s);
        free(s);
        return r;
}

char **hold_environment(const struct held_device *devices, size_t n) {
        _cleanup_strv_free_ char **env = NULL;
        _cleanup_free_ char *list = calloc(n + 1, PCI_ADDRESS_STRLEN + sizeof(HOLD_ENV_DEVICES "="));

        if (!list)
                return NULL;
        strcpy(list, HOLD_ENV_DEVICES "=");
        for (size_t i = 0; i < n; i++) {
                if (i > 0)
                        strcat(list, " ");
                strcat(list, devices[i].address);
                if (append_fd(&env, HOLD_ENV_DEVICE_FD, devices[i].address, devices[i].device_fd) < 0 ||
                    append_fd(&env, HOLD_ENV_IOMMU_FD, devices[i].address, devices[i].iommu_fd) < 0)
                        return NULL;
        }
        if (strv_extend(&env, list) < 0)
                return NULL;
        return TAKE_PTR(env);
}
