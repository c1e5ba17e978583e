/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* topology_scan and the dev_set rule against umockdev's fake sysfs. */
#include <check.h>
#include <libudev.h>
#include <stdlib.h>
#include <string.h>

#include "devset-rule.h"
#include "check-run.h"
#include "testbed.h"
#include "topology.h"

static UMockdevTestbed *tb;
static struct udev *udev;

static void setup(void) {
        tb = testbed_new("lab");
        udev = udev_new();
        ck_assert_ptr_nonnull(udev);
}

static void teardown(void) {
        udev_unref(udev);
        g_object_unref(tb);
}

static const struct pci_function *get(const struct topology *t, const char *address) {
        struct pci_address a;
        const struct pci_function *f;

        ck_assert_int_eq(pci_address_parse(address, &a, NULL, 0), 0);
        f = topology_find(t, &a);
        ck_assert_msg(f, "%s not found", address);
        return f;
}

static struct topology *scan(const struct topology_options *o) {
        struct topology *t = NULL;

        ck_assert_int_eq(topology_scan(udev, o, &t), 0);
        ck_assert_ptr_nonnull(t);
        return t;
}

static char *set_ids(const struct topology *t) {
        struct dev_set_specs *s = NULL;
        static char ids[1024];

        ck_assert_int_eq(dev_set_rule_apply(t, &s), 0);
        ids[0] = '\0';
        for (size_t i = 0; i < s->n_sets; i++) {
                strcat(ids, i ? " " : "");
                strcat(ids, s->sets[i].id);
        }
        dev_set_specs_free(s);
        return ids;
}

START_TEST(test_functions) {
        struct topology *t = scan(NULL);
        const struct pci_function *f;

        ck_assert_uint_eq(t->n_functions, 24);
        f = get(t, "0000:00:02.0");
        ck_assert(f->root_bus);
        ck_assert(f->vfio);
        ck_assert_str_eq(f->driver, "vfio-pci");
        ck_assert_int_eq(f->iommu_group, 1);
        ck_assert_uint_eq(f->vendor_id, 0x8086);
        ck_assert_uint_eq(f->device_id, 0x10d3);
        ck_assert_uint_eq(f->class, 0x020000);
        ck_assert_str_eq(f->reset_methods[0], "pm");
        ck_assert_ptr_null(f->reset_methods[1]);

        f = get(t, "0000:01:01.0");
        ck_assert(!f->root_bus && f->has_parent);
        ck_assert_ptr_null(f->reset_methods[0]);       /* e1000: no function reset */
        ck_assert_ptr_null(f->slot);

        f = get(t, "0000:03:00.1");
        ck_assert_str_eq(f->slot, "3");
        ck_assert(f->slot_resettable);                  /* pciehp on 00:06.0 */
        ck_assert_int_eq(f->iommu_group, 9);

        f = get(t, "0000:05:00.2");
        ck_assert_str_eq(f->slot, "9");
        ck_assert(!f->slot_resettable);                 /* the port has no pciehp */

        f = get(t, "0000:06:00.1");
        ck_assert_str_eq(f->driver, "igb");
        ck_assert(!f->vfio);

        f = get(t, "0000:07:10.1");
        ck_assert(f->virtfn);
        ck_assert_uint_eq(f->physfn.bus, 7);
        ck_assert_uint_eq(f->physfn.slot, 0);

        f = get(t, "0000:00:03.0");                     /* the bridge: no driver */
        ck_assert_ptr_null(f->driver);
        ck_assert_int_eq(f->iommu_group, 2);
        topology_free(t);
}
END_TEST

START_TEST(test_sets_of_the_lab) {
        struct topology *t = scan(NULL);

        ck_assert_str_eq(set_ids(t), "bus_0000_01 bus_0000_04 bus_0000_05 bus_0000_06 dev_0000_00_02_0 "
                                     "dev_0000_07_10_0 dev_0000_07_10_1 slot_0000_02_1 slot_0000_03_3");
        topology_free(t);
}
END_TEST

START_TEST(test_variant_drivers) {
        struct topology_options o = {};
        char *extra[] = { (char *) "my_vfio_stub", NULL };
        struct topology *t;

        /* mlx5_vfio_pci's module depends on vfio_pci_core: a variant */
        ck_assert(umockdev_testbed_add_from_string(tb,
                "P: /devices/pci0000:00/0000:00:0b.0\nE: SUBSYSTEM=pci\nA: vendor=0x15b3\nA: device=0x101e\n"
                "A: class=0x020000\nL: driver=../../../bus/pci/drivers/mlx5_vfio_pci\n"
                "L: iommu_group=../../../kernel/iommu_groups/30\n\n"
                "P: /devices/pci0000:00/0000:00:0c.0\nE: SUBSYSTEM=pci\nA: vendor=0x1af4\nA: device=0x1000\n"
                "A: class=0x020000\nL: driver=../../../bus/pci/drivers/my_vfio_stub\n\n"
                "P: /devices/pci0000:00/0000:00:0d.0\nE: SUBSYSTEM=pci\nA: vendor=0x1af4\nA: device=0x1000\n"
                "A: class=0x020000\nL: driver=../../../bus/pci/drivers/virtio-pci\n", NULL));
        testbed_symlink(tb, "bus/pci/drivers/mlx5_vfio_pci/module", "../../../../module/mlx5_vfio_pci");
        testbed_write(tb, "module/vfio_pci_core/holders/mlx5_vfio_pci", "");
        testbed_symlink(tb, "bus/pci/drivers/virtio-pci/module", "../../../../module/virtio_pci");

        t = scan(&o);
        ck_assert(get(t, "0000:00:0b.0")->vfio);
        ck_assert(!get(t, "0000:00:0c.0")->vfio);       /* not without the option */
        ck_assert(!get(t, "0000:00:0d.0")->vfio);
        topology_free(t);

        o.extra_vfio_drivers = extra;
        t = scan(&o);
        ck_assert(get(t, "0000:00:0c.0")->vfio);
        ck_assert(!get(t, "0000:00:0d.0")->vfio);
        ck_assert(driver_is_vfio("vfio-pci", NULL));
        ck_assert(!driver_is_vfio(NULL, NULL));
        topology_free(t);
}
END_TEST

START_TEST(test_unbind_changes_sets) {
        struct topology *t;

        /* 04:00.1 leaves vfio-pci for igb: the set keeps one member */
        testbed_symlink(tb, "devices/pci0000:00/0000:00:07.0/0000:04:00.1/driver", "../../../../bus/pci/drivers/igb");
        t = scan(NULL);
        ck_assert(!get(t, "0000:04:00.1")->vfio);
        ck_assert_ptr_nonnull(strstr(set_ids(t), "bus_0000_04"));
        topology_free(t);
        /* 04:00.0 goes too: the set is gone */
        testbed_symlink(tb, "devices/pci0000:00/0000:00:07.0/0000:04:00.0/driver", "../../../../bus/pci/drivers/igb");
        t = scan(NULL);
        ck_assert_ptr_null(strstr(set_ids(t), "bus_0000_04"));
        topology_free(t);
}
END_TEST

int main(void) {
        Suite *s = suite_create("topology");
        TCase *tc = tcase_create("lab");

        tcase_add_checked_fixture(tc, setup, teardown);
        tcase_add_test(tc, test_functions);
        tcase_add_test(tc, test_sets_of_the_lab);
        tcase_add_test(tc, test_variant_drivers);
        tcase_add_test(tc, test_unbind_changes_sets);
        suite_add_tcase(s, tc);
        return check_run(s);
}
