/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <stdbool.h>

#include "macro.h"
#include "strv.h"

void strv_free(char **l) {
        if (!l)
                return;
        for (char **i = l; *i; i++)
                free(*i);
        free(l);
}

size_t strv_length(char * const *l) {
        size_t n = 0;

        if (l)
                while (l[n])
                        n++;
        return n;
}

bool strv_contains(char * const *l, const char *s) {
        if (l)
                for (char * const *i = l; *i; i++)
                        if (streq_ptr(*i, s))
                                return true;
        return false;
}

bool strv_equal(char * const *a, char * const *b) {
        size_t n = strv_length(a);

        if (n != strv_length(b))
                return false;
        for (size_t i = 0; i < n; i++)
                if (!streq_ptr(a[i], b[i]))
                        return false;
        return true;
}

int strv_extend(char ***l, const char *s) {
        size_t n = strv_length(*l);
        char **nl, *c;

        c = strdup(s);
        if (!c)
                return -ENOMEM;
        nl = realloc(*l, sizeof(char *) * (n + 2));
        if (!nl) {
                free(c);
                return -ENOMEM;
        }
        nl[n] = c;
        nl[n + 1] = NULL;
        *l = nl;
        return 0;
}

char **strv_copy(char * const *l) {
        _cleanup_strv_free_ char **c = calloc(1, sizeof(char *));

        if (!c)
                return NULL;
        if (l)
                for (char * const *i = l; *i; i++)
                        if (strv_extend(&c, *i) < 0)
                                return NULL;
        return TAKE_PTR(c);
}

char **strv_split_whitespace(const char *s) {
        _cleanup_strv_free_ char **l = calloc(1, sizeof(char *));
        _cleanup_free_ char *copy = s ? strdup(s) : NULL;
        char *save = NULL;

        if (!l || (s && !copy))
                return NULL;
        if (copy)
                for (char *w = strtok_r(copy, " \t\n", &save); w; w = strtok_r(NULL, " \t\n", &save))
                        if (strv_extend(&l, w) < 0)
                                return NULL;
        return TAKE_PTR(l);
}
