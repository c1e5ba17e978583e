/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <check.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "pci-address.h"
#include "check-run.h"

static const struct {
        const char *in;
        const char *canonical;
} good[] = {
        { "0000:00:00.0", "0000:00:00.0" },
        { "0000:04:00.1", "0000:04:00.1" },
        { "04:00.1", "0000:04:00.1" },
        { "ff:1f.7", "0000:ff:1f.7" },
        { "ABCD:EF:1F.7", "abcd:ef:1f.7" },
        { "10000:e0:00.0", "10000:e0:00.0" },   /* VMD domains */
        { "ffffffff:00:00.0", "ffffffff:00:00.0" },
};

static const struct {
        const char *in;
        const char *why;        /* a word the error message must contain */
} bad[] = {
        { "", "empty" },
        { "0000:04:00", "not a PCI address" },
        { "04:00", "not a PCI address" },
        { "0000:04:00:1", "not a PCI address" },
        { "0000:0000:04:00.1", "not a PCI address" },
        { "0000:04:20.0", "out of range" },
        { "0000:04:00.8", "out of range" },
        { "0000:04:00.10", "function" },
        { "0000:4:00.0", "bus" },
        { "0000:004:00.0", "bus" },
        { "000:04:00.0", "domain" },
        { "123456789:04:00.0", "domain" },
        { "0000:04:0.0", "slot" },
        { "0000:04:000.0", "slot" },
        { "0000:g4:00.0", "bus" },
        { "0000:04:00.", "function" },
        { "0000:04:00.0 ", "function" },
        { " 0000:04:00.0", "domain" },
        { "+000:04:00.0", "domain" },
        { "0x00:04:00.0", "domain" },
        { "0000:-4:00.0", "bus" },
        { "0000:04:00.0\n", "function" },
        { "pci_0000_04_00_0", "not a PCI address" },
        { "0000:04:00.0/../..", "function" },
        { ":04:00.0", "domain" },
        { "0000::00.0", "bus" },
};

START_TEST(test_good) {
        struct pci_address a;
        char buf[PCI_ADDRESS_STRLEN], err[160] = "";

        ck_assert_int_eq(pci_address_parse(good[_i].in, &a, err, sizeof(err)), 0);
        ck_assert_str_eq(err, "");
        ck_assert_str_eq(pci_address_format(&a, buf), good[_i].canonical);
}
END_TEST

START_TEST(test_bad) {
        struct pci_address a = { .domain = 7 };
        char err[160] = "";

        ck_assert_int_eq(pci_address_parse(bad[_i].in, &a, err, sizeof(err)), -EINVAL);
        ck_assert_msg(strstr(err, bad[_i].why), "'%s': message '%s' lacks '%s'", bad[_i].in, err, bad[_i].why);
        ck_assert_uint_eq(a.domain, 7);         /* untouched on failure */
        if (*bad[_i].in && strlen(bad[_i].in) < 40 && strcmp(bad[_i].in, " 0000:04:00.0") != 0)
                ck_assert_msg(strstr(err, bad[_i].in) || strstr(err, "not a PCI address"),
                              "message '%s' does not name the input", err);
}
END_TEST

START_TEST(test_null_and_long) {
        char longer[200], err[160];

        memset(longer, '0', sizeof(longer) - 1);
        longer[sizeof(longer) - 1] = '\0';
        ck_assert_int_eq(pci_address_parse(NULL, NULL, err, sizeof(err)), -EINVAL);
        ck_assert_int_eq(pci_address_parse(longer, NULL, err, sizeof(err)), -EINVAL);
        ck_assert_ptr_nonnull(strstr(err, "too long"));
        /* no message buffer: still refuses */
        ck_assert_int_eq(pci_address_parse("zz", NULL, NULL, 0), -EINVAL);
}
END_TEST

START_TEST(test_compare) {
        struct pci_address a, b;

        ck_assert_int_eq(pci_address_parse("0000:04:00.0", &a, NULL, 0), 0);
        ck_assert_int_eq(pci_address_parse("04:00.0", &b, NULL, 0), 0);
        ck_assert(pci_address_equal(&a, &b));
        ck_assert_int_eq(pci_address_parse("0000:04:00.1", &b, NULL, 0), 0);
        ck_assert_int_lt(pci_address_compare(&a, &b), 0);
        ck_assert_int_eq(pci_address_parse("0001:00:00.0", &b, NULL, 0), 0);
        ck_assert_int_lt(pci_address_compare(&a, &b), 0);
}
END_TEST

int main(void) {
        Suite *s = suite_create("pci-address");
        TCase *tc = tcase_create("parse");

        tcase_add_loop_test(tc, test_good, 0, sizeof(good) / sizeof(good[0]));
        tcase_add_loop_test(tc, test_bad, 0, sizeof(bad) / sizeof(bad[0]));
        tcase_add_test(tc, test_null_and_long);
        tcase_add_test(tc, test_compare);
        suite_add_tcase(s, tc);
        return check_run(s);
}
