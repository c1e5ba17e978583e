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

/* The ids of every dev_set of the testbed, in order, are these. */
static void assert_set_ids(const char *want) {
        struct topology *t = scan(NULL);

        ck_assert_str_eq(set_ids(t), want);
        topology_free(t);
}

START_TEST(test_sets_of_the_lab) {
        assert_set_ids("bus_0000_01 bus_0000_04 bus_0000_05 bus_0000_06 dev_0000_00_02_0 "
                       "dev_0000_07_10_0 dev_0000_07_10_1 slot_0000_02_1 slot_0000_03_3");
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

/* A PCIe switch behind root port 00:09.0 (tests/topologies/switch.umockdev):
 * downstream ports 06:00.0 (pciehp, slot 5), 06:01.0 (no hotplug), 06:02.0
 * (slot 7 of the platform, its hotplug service unbound) and 06:03.0 (pciehp,
 * slot 8, an SR-IOV PF with two VFs). */
static void setup_switch(void) {
        tb = testbed_new("switch");
        udev = udev_new();
        ck_assert_ptr_nonnull(udev);
}

/* "kind: member,member; reaches: function,function" of the set with this id. */
static char *describe_set(const struct topology *t, const char *id) {
        static char text[1024];
        struct dev_set_specs *s = NULL;
        const struct dev_set_spec *set = NULL;
        char a[PCI_ADDRESS_STRLEN];

        ck_assert_int_eq(dev_set_rule_apply(t, &s), 0);
        for (size_t i = 0; i < s->n_sets; i++)
                if (strcmp(s->sets[i].id, id) == 0)
                        set = &s->sets[i];
        ck_assert_msg(set, "no set %s", id);
        snprintf(text, sizeof(text), "%s:", dev_set_kind_to_string(set->kind));
        for (size_t i = 0; i < set->n_members; i++) {
                strcat(text, i ? "," : " ");
                strcat(text, pci_address_format(&t->functions[set->members[i]].address, a));
        }
        strcat(text, "; reaches:");
        for (size_t i = 0; i < set->n_foreign; i++) {
                strcat(text, i ? "," : " ");
                strcat(text, pci_address_format(&t->functions[set->foreign[i]].address, a));
        }
        dev_set_specs_free(s);
        return text;
}

START_TEST(test_switch_sets) {
        assert_set_ids("bus_0000_08 bus_0000_09 dev_0000_0a_10_0 dev_0000_0a_10_2 slot_0000_07_5 slot_0000_0a_8");
}
END_TEST

/* The function's slot (NULL: none) and whether it can be reset, and the
 * description of the set it is in. */
static void assert_in_set(const char *address, const char *slot, bool resettable, const char *set_id,
                          const char *description) {
        struct topology *t = scan(NULL);
        const struct pci_function *f = get(t, address);

        if (slot)
                ck_assert_str_eq(f->slot, slot);
        else
                ck_assert_ptr_null(f->slot);
        ck_assert_msg(f->slot_resettable == resettable, "%s: slot_resettable is %d", address, f->slot_resettable);
        ck_assert_str_eq(describe_set(t, set_id), description);
        topology_free(t);
}

/* The downstream port's hotplug service device is 0000:06:00.0:pcie204, not
 * :pcie004 as on a root port: pciehp on it makes slot 5 resettable. */
START_TEST(test_switch_downstream_port_with_pciehp) {
        assert_in_set("0000:07:00.0", "5", true, "slot_0000_07_5", "slot: 0000:07:00.0,0000:07:00.1; reaches:");
}
END_TEST

/* hotplug=off: no slot, no hotplug service; the bandwidth service bound to
 * its own driver does not count. */
START_TEST(test_switch_downstream_port_without_hotplug) {
        assert_in_set("0000:08:00.0", NULL, false, "bus_0000_08", "bus: 0000:08:00.0,0000:08:00.1; reaches:");
}
END_TEST

/* Both functions of the igb behind the pciehp port are one set across their
 * two groups, and neither of the switch's sets reaches the other port's
 * functions, although both ports sit on the switch's internal bus 06. */
START_TEST(test_multifunction_behind_switch) {
        struct topology *t = scan(NULL);
        char *ids;

        ck_assert_int_eq(get(t, "0000:07:00.0")->iommu_group, 30);
        ck_assert_int_eq(get(t, "0000:07:00.1")->iommu_group, 31);
        ids = set_ids(t);
        ck_assert_ptr_null(strstr(ids, "bus_0000_07"));
        ck_assert_ptr_null(strstr(ids, "bus_0000_06"));
        topology_free(t);
        assert_in_set("0000:07:00.1", "5", true, "slot_0000_07_5", "slot: 0000:07:00.0,0000:07:00.1; reaches:");
        assert_in_set("0000:08:00.1", NULL, false, "bus_0000_08", "bus: 0000:08:00.0,0000:08:00.1; reaches:");
}
END_TEST

/* A PF on vfio-pci with its VFs on vfio-pci, behind a pciehp port: each VF
 * is a dev_set of its own; the PF's set is its slot, which its VFs are not
 * in (their device numbers are not the slot's). */
START_TEST(test_sriov_pf_with_vfs) {
        struct topology *t = scan(NULL);
        const struct pci_function *vf = get(t, "0000:0a:10.2");

        ck_assert(vf->virtfn);
        ck_assert_uint_eq(vf->physfn.bus, 0x0a);
        ck_assert_uint_eq(vf->physfn.slot, 0);
        ck_assert(!get(t, "0000:0a:00.0")->virtfn);
        topology_free(t);
        assert_in_set("0000:0a:00.0", "8", true, "slot_0000_0a_8", "slot: 0000:0a:00.0; reaches:");
        assert_in_set("0000:0a:10.0", NULL, false, "dev_0000_0a_10_0", "single: 0000:0a:10.0; reaches:");
        assert_in_set("0000:0a:10.2", NULL, false, "dev_0000_0a_10_2", "single: 0000:0a:10.2; reaches:");
}
END_TEST

/* Slot 7 is the platform's: the port's hotplug service device exists but no
 * driver took it (pciehp leaves a slot another hotplug driver registered),
 * so the slot cannot be reset and the set is the bus. */
START_TEST(test_slot_without_hotplug_driver) {
        assert_in_set("0000:09:00.0", "7", false, "bus_0000_09", "bus: 0000:09:00.0; reaches:");
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

        tc = tcase_create("switch");
        tcase_add_checked_fixture(tc, setup_switch, teardown);
        tcase_add_test(tc, test_switch_sets);
        tcase_add_test(tc, test_switch_downstream_port_with_pciehp);
        tcase_add_test(tc, test_switch_downstream_port_without_hotplug);
        tcase_add_test(tc, test_multifunction_behind_switch);
        tcase_add_test(tc, test_sriov_pf_with_vfs);
        tcase_add_test(tc, test_slot_without_hotplug_driver);
        suite_add_tcase(s, tc);
        return check_run(s);
}
