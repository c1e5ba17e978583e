/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include <stdbool.h>
#include <stddef.h>

#include "macro.h"

/* NULL-terminated string vectors */
void strv_free(char **l);
DEFINE_TRIVIAL_CLEANUP_FUNC(char **, strv_free)
#define _cleanup_strv_free_ _cleanup_(strv_freep)
size_t strv_length(char * const *l);
bool strv_contains(char * const *l, const char *s);
bool strv_equal(char * const *a, char * const *b);
char **strv_copy(char * const *l);
/* Appends a copy of s; returns -ENOMEM on failure. */
int strv_extend(char ***l, const char *s);
/* Splits on spaces and tabs, dropping empty fields. */
char **strv_split_whitespace(const char *s);
