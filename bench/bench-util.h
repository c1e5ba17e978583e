/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* What the benches share: a median, and running the bench as one Check
 * test in this process (so every ck_assert on the way reports). */

#include <check.h>
#include <stdint.h>
#include <stdlib.h>

static inline int bench_compare(const void *a, const void *b) {
        uint64_t x = *(const uint64_t *) a, y = *(const uint64_t *) b;

        return x < y ? -1 : x > y;
}

/* Sorts v. */
static inline uint64_t bench_median(uint64_t *v, size_t k) {
        qsort(v, k, sizeof(*v), bench_compare);
        return v[k / 2];
}

/* Runs test as the only case of a suite named name, without forking; the
 * exit status: *status (the test sets it to 0 at its end), 1 on a failure. */
static inline int bench_run(const char *name, const TTest *test, int *status) {
        Suite *s = suite_create(name);
        TCase *tc = tcase_create("bench");
        SRunner *sr;

        tcase_add_test(tc, test);
        tcase_set_timeout(tc, 600);
        suite_add_tcase(s, tc);
        sr = srunner_create(s);
        srunner_set_fork_status(sr, CK_NOFORK);
        srunner_run_all(sr, CK_SILENT);
        if (srunner_ntests_failed(sr) > 0) {
                srunner_print(sr, CK_NORMAL);
                *status = 1;
        }
        srunner_free(sr);
        return *status;
}
