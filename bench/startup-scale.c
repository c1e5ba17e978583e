/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* What the daemon's start-up costs on a large host: the daemon (kernel test
 * double, nothing managed) over a fake sysfs of N vfio devices
 * (bench/gen-topology.sh writes it; its folder is TOPOLOGY_DIR, its name
 * "scale"), from its exec to its bus name, against a bare libudev
 * enumeration of the same devices in this process: every PCI device, its
 * driver, IOMMU group, vendor, device and class, what any tool that lists
 * vfio devices reads. Alternating, R times each; prints the medians and
 * daemon / bare.
 * Usage: startup-scale [-r ROUNDS]  (run by bench/startup-scale.sh) */
#include <check.h>
#include <getopt.h>
#include <libudev.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "bench-util.h"
#include "bus-harness.h"
#include "bus-names.h"
#include "macro.h"
#include "testbed.h"

static struct harness h;
static size_t rounds = 5;
static int status;

/* The bare enumeration; returns how many vfio-pci functions it saw. */
static size_t enumerate(void) {
        struct udev *udev = udev_new();
        struct udev_enumerate *e = udev_enumerate_new(udev);
        struct udev_list_entry *entry;
        size_t n = 0;

        ck_assert_ptr_nonnull(e);
        ck_assert_int_ge(udev_enumerate_add_match_subsystem(e, "pci"), 0);
        ck_assert_int_ge(udev_enumerate_scan_devices(e), 0);
        udev_list_entry_foreach(entry, udev_enumerate_get_list_entry(e)) {
                const char *syspath = udev_list_entry_get_name(entry);
                struct udev_device *d = udev_device_new_from_syspath(udev, syspath);
                char link[PATH_MAX], target[PATH_MAX];
                const char *driver;

                if (!d)
                        continue;
                driver = udev_device_get_driver(d);
                snprintf(link, sizeof(link), "%s/iommu_group", syspath);
                if (driver && strcmp(driver, "vfio-pci") == 0 && readlink(link, target, sizeof(target) - 1) > 0 &&
                    udev_device_get_sysattr_value(d, "vendor") && udev_device_get_sysattr_value(d, "device") &&
                    udev_device_get_sysattr_value(d, "class"))
                        n++;
                udev_device_unref(d);
        }
        udev_enumerate_unref(e);
        udev_unref(udev);
        return n;
}

START_TEST(bench) {
        uint64_t bare[rounds], daemon[rounds];
        UMockdevTestbed *tb = testbed_new("scale");
        size_t n = 0;

        harness_start_bus(&h);
        h.daemon = getenv("VRD_FAKE_DAEMON");
        for (size_t r = 0; r < rounds; r++) {
                uint64_t t = monotonic_usec();
                char *v = NULL;

                n = enumerate();
                bare[r] = monotonic_usec() - t;

                t = monotonic_usec();
                harness_start_daemon(&h, (const char *const[]) { "--uevents=udev", NULL });
                daemon[r] = monotonic_usec() - t;
                /* it serves what it found */
                ck_assert_int_ge(sd_bus_get_property_string(h.bus, VRD_BUS_NAME, VRD_DEVICE_PATH_PREFIX "/pci_0000_01_00_0",
                                                            VRD_DEVICE_IFACE, "Driver", NULL, &v), 0);
                ck_assert_str_eq(v, "vfio-pci");
                free(v);
                ck_assert_int_eq(harness_terminate_daemon(&h, 10000), 0);
        }
        {
                uint64_t b = bench_median(bare, rounds), d = bench_median(daemon, rounds);

                printf("devices=%zu rounds=%zu bare_ms=%.1f daemon_ms=%.1f ratio=%.2f\n", n, rounds, b / 1e3, d / 1e3,
                       (double) d / (double) b);
        }
        harness_stop(&h);
        g_object_unref(tb);
        status = 0;
}
END_TEST

int main(int argc, char *argv[]) {
        int c;

        while ((c = getopt(argc, argv, "r:")) >= 0)
                switch (c) {
                case 'r':
                        rounds = strtoul(optarg, NULL, 10);
                        break;
                default:
                        fprintf(stderr, "usage: %s [-r ROUNDS]\n", argv[0]);
                        return 2;
                }
        if (rounds == 0 || rounds > 1000 || !getenv("VRD_FAKE_DAEMON")) {
                fprintf(stderr, "%s: need 1 to 1000 rounds and $VRD_FAKE_DAEMON\n", argv[0]);
                return 2;
        }
        status = 1;
        return bench_run("startup-scale", bench, &status);
}
