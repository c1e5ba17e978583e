/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* What vfio-resetctl hold tells its command (vfio-resetctl(1), ENVIRONMENT). */
#include <check.h>
#include <stdlib.h>

#include "hold.h"
#include "check-run.h"
#include "macro.h"
#include "strv.h"

START_TEST(test_two_devices) {
        const struct held_device d[] = {
                { .address = "0000:04:00.0", .device_fd = 5, .iommu_fd = 6 },
                { .address = "0000:04:00.1", .device_fd = 7, .iommu_fd = 8 },
        };
        char **env = hold_environment(d, ELEMENTSOF(d));

        ck_assert_ptr_nonnull(env);
        ck_assert_int_eq(strv_length(env), 5);
        ck_assert(strv_contains(env, "VFIO_RESETD_DEVICES=0000:04:00.0 0000:04:00.1"));
        ck_assert(strv_contains(env, "VFIO_RESETD_DEVICE_FD_0000_04_00_0=5"));
        ck_assert(strv_contains(env, "VFIO_RESETD_IOMMU_FD_0000_04_00_0=6"));
        ck_assert(strv_contains(env, "VFIO_RESETD_DEVICE_FD_0000_04_00_1=7"));
        ck_assert(strv_contains(env, "VFIO_RESETD_IOMMU_FD_0000_04_00_1=8"));
        strv_free(env);
}
END_TEST

/* Domains above 0xffff (VMD) keep every digit; only ':' and '.' change. */
START_TEST(test_wide_domain) {
        const struct held_device d = { .address = "1000a:e1:1f.7", .device_fd = 10, .iommu_fd = 11 };
        char **env = hold_environment(&d, 1);

        ck_assert_ptr_nonnull(env);
        ck_assert(strv_contains(env, "VFIO_RESETD_DEVICES=1000a:e1:1f.7"));
        ck_assert(strv_contains(env, "VFIO_RESETD_DEVICE_FD_1000a_e1_1f_7=10"));
        ck_assert(strv_contains(env, "VFIO_RESETD_IOMMU_FD_1000a_e1_1f_7=11"));
        strv_free(env);
}
END_TEST

int main(void) {
        Suite *s = suite_create("hold-env");
        TCase *tc = tcase_create("env");

        tcase_add_test(tc, test_two_devices);
        tcase_add_test(tc, test_wide_domain);
        suite_add_tcase(s, tc);
        return check_run(s);
}
