/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The dev_set rule against hand-made topologies: every branch of the kernel's rule. */
#include <check.h>
#include <stdlib.h>
#include <string.h>

#include "devset-rule.h"
#include "check-run.h"

#define MAXF 16

struct fixture {
        struct topology t;
        struct pci_function f[MAXF];
        char *empty[1];
};

static struct pci_address addr(const char *s) {
        struct pci_address a;

        ck_assert_int_eq(pci_address_parse(s, &a, NULL, 0), 0);
        return a;
}

/* Functions must be added in address order, as topology_scan leaves them. */
static struct pci_function *add(struct fixture *x, const char *address, const char *parent, const char *driver) {
        struct pci_function *f = &x->f[x->t.n_functions];

        ck_assert_int_lt(x->t.n_functions, MAXF);
        *f = (struct pci_function) {
                .address = addr(address),
                .driver = (char *) driver,
                .vfio = driver && strcmp(driver, "vfio-pci") == 0,
                .iommu_group = (int) x->t.n_functions,
                .root_bus = !parent,
                .has_parent = !!parent,
                .reset_methods = x->empty,
        };
        if (parent)
                f->parent = addr(parent);
        if (x->t.n_functions > 0)
                ck_assert_int_lt(pci_address_compare(&x->f[x->t.n_functions - 1].address, &f->address), 0);
        x->t.functions = x->f;
        x->t.n_functions++;
        return f;
}

static const struct dev_set_spec *find(const struct dev_set_specs *s, const char *id) {
        for (size_t i = 0; i < s->n_sets; i++)
                if (strcmp(s->sets[i].id, id) == 0)
                        return &s->sets[i];
        ck_abort_msg("no dev_set %s", id);
        return NULL;
}

/* "0000:05:00.0 0000:05:00.1" -> the spec's members (or foreign) are exactly these */
static void assert_list(const struct fixture *x, const size_t *idx, size_t n, const char *want) {
        char got[512] = "", buf[PCI_ADDRESS_STRLEN];

        for (size_t i = 0; i < n; i++) {
                if (i)
                        strcat(got, " ");
                strcat(got, pci_address_format(&x->f[idx[i]].address, buf));
        }
        ck_assert_str_eq(got, want);
}

static struct dev_set_specs *apply(struct fixture *x) {
        struct dev_set_specs *s = NULL;

        ck_assert_int_eq(dev_set_rule_apply(&x->t, &s), 0);
        ck_assert_ptr_nonnull(s);
        return s;
}

START_TEST(test_root_bus_alone) {
        struct fixture x = {};
        struct dev_set_specs *s;

        add(&x, "0000:00:02.0", NULL, "vfio-pci");
        add(&x, "0000:00:03.0", NULL, "vfio-pci");
        s = apply(&x);
        ck_assert_uint_eq(s->n_sets, 2);
        ck_assert_int_eq(find(s, "dev_0000_00_02_0")->kind, DEV_SET_SINGLE);
        assert_list(&x, find(s, "dev_0000_00_02_0")->members, 1, "0000:00:02.0");
        ck_assert_uint_eq(find(s, "dev_0000_00_03_0")->n_foreign, 0);
        dev_set_specs_free(s);
}
END_TEST

START_TEST(test_bus_set_across_groups) {
        struct fixture x = {};
        struct dev_set_specs *s;
        const struct dev_set_spec *b;

        add(&x, "0000:00:1c.0", NULL, "pcieport");
        add(&x, "0000:05:00.0", "0000:00:1c.0", "vfio-pci")->iommu_group = 12;
        add(&x, "0000:05:00.1", "0000:00:1c.0", "vfio-pci")->iommu_group = 12;
        add(&x, "0000:05:00.2", "0000:00:1c.0", "vfio-pci")->iommu_group = 13;
        s = apply(&x);
        ck_assert_uint_eq(s->n_sets, 1);
        b = find(s, "bus_0000_05");
        ck_assert_int_eq(b->kind, DEV_SET_BUS);
        assert_list(&x, b->members, b->n_members, "0000:05:00.0 0000:05:00.1 0000:05:00.2");
        ck_assert_uint_eq(b->n_foreign, 0);     /* the bridge is above the bus, not on it */
        dev_set_specs_free(s);
}
END_TEST

START_TEST(test_slot_resettable_or_not) {
        struct fixture x = {};
        struct dev_set_specs *s;
        struct pci_function *f;

        add(&x, "0000:00:04.0", NULL, "pcieport");
        add(&x, "0000:00:05.0", NULL, "pcieport");
        f = add(&x, "0000:02:00.0", "0000:00:04.0", "vfio-pci");
        f->slot = (char *) "1", f->slot_resettable = true;
        f = add(&x, "0000:02:00.1", "0000:00:04.0", "vfio-pci");
        f->slot = (char *) "1", f->slot_resettable = true;
        /* a slot exists but its hotplug driver cannot reset it (acpiphp): the bus */
        f = add(&x, "0000:03:00.0", "0000:00:05.0", "vfio-pci");
        f->slot = (char *) "Slot 3", f->slot_resettable = false;
        s = apply(&x);
        ck_assert_uint_eq(s->n_sets, 2);
        ck_assert_int_eq(find(s, "slot_0000_02_1")->kind, DEV_SET_SLOT);
        assert_list(&x, find(s, "slot_0000_02_1")->members, 2, "0000:02:00.0 0000:02:00.1");
        ck_assert_int_eq(find(s, "bus_0000_03")->kind, DEV_SET_BUS);
        dev_set_specs_free(s);
}
END_TEST

START_TEST(test_slot_name_escaped) {
        struct fixture x = {};
        struct dev_set_specs *s;
        struct pci_function *f;

        add(&x, "0000:00:04.0", NULL, "pcieport");
        f = add(&x, "0000:02:00.0", "0000:00:04.0", "vfio-pci");
        f->slot = (char *) "Slot 1-a", f->slot_resettable = true;
        s = apply(&x);
        ck_assert_str_eq(s->sets[0].id, "slot_0000_02_Slot_201_2da");
        dev_set_specs_free(s);
}
END_TEST

START_TEST(test_slot_reach_is_the_slot) {
        struct fixture x = {};
        struct dev_set_specs *s;
        struct pci_function *f;

        add(&x, "0000:00:04.0", NULL, "pcieport");
        f = add(&x, "0000:02:00.0", "0000:00:04.0", "vfio-pci");
        f->slot = (char *) "1", f->slot_resettable = true;
        f = add(&x, "0000:02:01.0", "0000:00:04.0", "e1000e");        /* another slot on the bus */
        f->slot = (char *) "2", f->slot_resettable = true;
        s = apply(&x);
        ck_assert_uint_eq(s->n_sets, 1);
        ck_assert_uint_eq(find(s, "slot_0000_02_1")->n_foreign, 0);
        dev_set_specs_free(s);
}
END_TEST

START_TEST(test_vfs_alone_and_reached_by_pf_bus) {
        struct fixture x = {};
        struct dev_set_specs *s;
        struct pci_function *f;

        add(&x, "0000:00:0a.0", NULL, "pcieport");
        add(&x, "0000:07:00.0", "0000:00:0a.0", "vfio-pci");
        f = add(&x, "0000:07:10.0", "0000:00:0a.0", "vfio-pci");
        f->virtfn = true, f->physfn = addr("0000:07:00.0");
        f = add(&x, "0000:07:10.1", "0000:00:0a.0", "vfio-pci");
        f->virtfn = true, f->physfn = addr("0000:07:00.0");
        s = apply(&x);
        ck_assert_uint_eq(s->n_sets, 3);
        ck_assert_int_eq(find(s, "dev_0000_07_10_0")->kind, DEV_SET_SINGLE);
        ck_assert_int_eq(find(s, "dev_0000_07_10_1")->kind, DEV_SET_SINGLE);
        /* the PF's bus reset reaches its VFs, which are sets of their own: the
         * kernel refuses it (VM.md: EINVAL from every member) */
        assert_list(&x, find(s, "bus_0000_07")->members, 1, "0000:07:00.0");
        assert_list(&x, find(s, "bus_0000_07")->foreign, 2, "0000:07:10.0 0000:07:10.1");
        dev_set_specs_free(s);
}
END_TEST

START_TEST(test_foreign_siblings_and_below) {
        struct fixture x = {};
        struct dev_set_specs *s;
        const struct dev_set_spec *b;

        add(&x, "0000:00:09.0", NULL, "pcieport");
        add(&x, "0000:06:00.0", "0000:00:09.0", "vfio-pci");
        add(&x, "0000:06:00.1", "0000:00:09.0", "igb");         /* another driver */
        add(&x, "0000:06:00.2", "0000:00:09.0", NULL);          /* no driver */
        add(&x, "0000:06:01.0", "0000:00:09.0", "pcieport");    /* a bridge on the bus */
        add(&x, "0000:08:00.0", "0000:06:01.0", "vfio-pci");    /* below it: a set of its own */
        add(&x, "0000:09:00.0", NULL, "vfio-pci");              /* elsewhere: not reached */
        s = apply(&x);
        b = find(s, "bus_0000_06");
        assert_list(&x, b->members, b->n_members, "0000:06:00.0");
        assert_list(&x, b->foreign, b->n_foreign, "0000:06:00.1 0000:06:00.2 0000:06:01.0 0000:08:00.0");
        assert_list(&x, find(s, "bus_0000_08")->members, 1, "0000:08:00.0");
        ck_assert_uint_eq(find(s, "bus_0000_08")->n_foreign, 0);
        dev_set_specs_free(s);
}
END_TEST

START_TEST(test_no_vfio_no_sets) {
        struct fixture x = {};
        struct dev_set_specs *s;

        add(&x, "0000:00:02.0", NULL, "e1000e");
        add(&x, "0000:00:03.0", NULL, NULL);
        s = apply(&x);
        ck_assert_uint_eq(s->n_sets, 0);
        dev_set_specs_free(s);
}
END_TEST

START_TEST(test_kind_names) {
        ck_assert_str_eq(dev_set_kind_to_string(DEV_SET_SINGLE), "single");
        ck_assert_str_eq(dev_set_kind_to_string(DEV_SET_SLOT), "slot");
        ck_assert_str_eq(dev_set_kind_to_string(DEV_SET_BUS), "bus");
}
END_TEST

int main(void) {
        Suite *s = suite_create("devset-rule");
        TCase *tc = tcase_create("rule");

        tcase_add_test(tc, test_root_bus_alone);
        tcase_add_test(tc, test_bus_set_across_groups);
        tcase_add_test(tc, test_slot_resettable_or_not);
        tcase_add_test(tc, test_slot_name_escaped);
        tcase_add_test(tc, test_slot_reach_is_the_slot);
        tcase_add_test(tc, test_vfs_alone_and_reached_by_pf_bus);
        tcase_add_test(tc, test_foreign_siblings_and_below);
        tcase_add_test(tc, test_no_vfio_no_sets);
        tcase_add_test(tc, test_kind_names);
        suite_add_tcase(s, tc);
        return check_run(s);
}
