/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The cdev ownership model against the kernel double: bus_0000_04 of the
 * lab gets vfio cdevs in sysfs and the double a /dev/iommu, so the daemon
 * binds both functions to one iommufd context of the set; peers get it as
 * their `iommu` fd and an IOAS each; resets go with an empty group list after
 * the hot-reset info said the context owns the set. Sets without cdevs stay
 * legacy in the same daemon; config keeps a set (or all) on legacy. Every
 * failure (bind EINVAL, IOAS alloc, attach, NOT_OWNED, stall, a device lost)
 * comes back as a D-Bus error naming the address. */
#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "bus-names.h"
#include "check-run.h"
#include "lab-harness.h"
#include "macro.h"
#include "service-manager.h"
#include "vfio-resetd.h"

#define DEV04_0 VRD_DEVICE_PATH_PREFIX "/pci_0000_04_00_0"
#define DEV04_1 VRD_DEVICE_PATH_PREFIX "/pci_0000_04_00_1"
#define DEV00_2 VRD_DEVICE_PATH_PREFIX "/pci_0000_00_02_0"
#define CDEV_SPEC "delay_ms=20,iommufd=1"

static const char *extra_config;        /* appended to the lab's config before the daemon starts */
static char base_config[4096];          /* the lab's config as setup() wrote it, "" until read */
static bool nodes_added;                /* the unmanaged slot 3 pair's cdev nodes, once per testbed */

static void add_cdev(const char *device, const char *cdev) {
        gchar *sys = umockdev_testbed_get_sys_dir(tb);
        char *path = NULL;

        ck_assert_int_ge(asprintf(&path, "%s/devices/pci0000:00/0000:00:07.0/%s/vfio-dev/%s", sys, device, cdev), 0);
        ck_assert_int_eq(g_mkdir_with_parents(path, 0755), 0);
        free(path);
        g_free(sys);
}

static void start_cdev_daemon(void) {
        FILE *f;

        add_cdev("0000:04:00.0", "vfio10");
        add_cdev("0000:04:00.1", "vfio11");
        /* The unmanaged slot 3 pair gets cdev nodes too, for holders to open. */
        for (int fn = 0; fn < 2 && !nodes_added; fn++) {
                char *rec = NULL;

                ck_assert_int_ge(asprintf(&rec, "P: /devices/pci0000:00/0000:00:06.0/0000:03:00.%d/vfio-dev/vfio%d\n"
                                          "N: vfio/devices/vfio%d\nE: SUBSYSTEM=vfio-dev\n"
                                          "E: DEVNAME=/dev/vfio/devices/vfio%d\nE: MAJOR=511\nE: MINOR=%d\n"
                                          "A: dev=511:%d\n", fn, 8 + fn, 8 + fn, 8 + fn, 8 + fn, 8 + fn), 0);
                ck_assert(umockdev_testbed_add_from_string(tb, rec, NULL));
                free(rec);
        }
        nodes_added = true;
        /* The lab's config as setup() wrote it, then this start's lines. */
        if (!base_config[0]) {
                f = fopen(config, "re");
                ck_assert_ptr_nonnull(f);
                base_config[fread(base_config, 1, sizeof(base_config) - 1, f)] = '\0';
                fclose(f);
        }
        f = fopen(config, "we");
        ck_assert_ptr_nonnull(f);
        fputs(base_config, f);
        fputs(extra_config ?: "", f);
        fclose(f);
        harness_start_daemon(&h, lab_daemon_args);
}

static void setup_cdev(void) {
        base_config[0] = '\0';
        nodes_added = false;
        lab_kernel_spec = CDEV_SPEC;
        lab_start_daemon = start_cdev_daemon;
        setup();
}

/* The daemon again, with this kernel and config: what it binds at start. */
static void restart_with(const char *spec, const char *config_text) {
        ck_assert_int_eq(harness_terminate_daemon(&h, 5000), 0);
        set_kernel(spec);
        extra_config = config_text;
        start_cdev_daemon();
        extra_config = NULL;
}

static uint32_t get_u32(const char *path, const char *prop) {
        sd_bus_error e = SD_BUS_ERROR_NULL;
        uint32_t v = 0;

        ck_assert_msg(sd_bus_get_property_trivial(h.bus, VRD_BUS_NAME, path, VRD_DEVICE_IFACE, prop, &e, 'u', &v) >= 0,
                      "%s.%s: %s", path, prop, e.message);
        return v;
}

static void assert_ownership(const char *path, const char *want) {
        char *v = get_string(path, VRD_DEVICE_IFACE, "Ownership");

        ck_assert_msg(strcmp(v, want) == 0, "%s is owned by model '%s', not '%s'", path, v, want);
        free(v);
}

/* "took ... iommu=TARGET": the fd the peer got as `iommu`. */
static char *took_iommu(struct peer *p) {
        char *line = peer_expect(p, "took", 10000), *at, *r;

        ck_assert_msg(line, "peer %s took nothing", p->name);
        ck_assert_msg(strstr(line, "paused=0 fds=OK"), "%s", line);
        at = strstr(line, "iommu=");
        ck_assert_ptr_nonnull(at);
        r = strdup(at + 6);
        free(line);
        return r;
}

START_TEST(test_take_and_reset_through_the_context) {
        _cleanup_free_ char *ia = NULL, *ib = NULL;
        struct peer a, b;
        struct call c;
        uint32_t ioas_a, ioas_b;

        assert_ownership(DEV04_0, "cdev");
        assert_ownership(DEV04_1, "cdev");
        assert_ownership(DEV00_2, "legacy");            /* no cdev in sysfs: the same daemon, the old model */
        ck_assert_int_eq(count_opens("cdev-bind 0000:04:00.0 vfio10 result=0"), 1);
        ck_assert_int_eq(count_opens("cdev-bind 0000:04:00.1 vfio11 result=0"), 1);
        ck_assert_int_eq(count_opens("group-open 10 "), 0);    /* its groups are never opened */
        ck_assert_int_eq(count_opens("group-open 11 "), 0);
        ck_assert_uint_gt(get_u32(DEV04_0, "IommufdDevId"), 0);
        ck_assert_uint_ne(get_u32(DEV04_0, "IommufdDevId"), get_u32(DEV04_1, "IommufdDevId"));
        ck_assert_uint_eq(get_u32(DEV04_0, "IommufdIoasId"), 0);       /* nobody took it yet */

        peer_start(&a, "--keep", "--take", "0000:04:00.0", NULL);
        peer_start(&b, "--keep", "--take", "0000:04:00.1", NULL);
        ia = took_iommu(&a);
        ib = took_iommu(&b);
        /* Both get the set's one context: the kernel's proof for the reset. */
        ck_assert_msg(strstr(ia, "vfio-fake-iommufd-"), "the iommu fd is %s", ia);
        ck_assert_str_eq(ia, ib);
        ioas_a = get_u32(DEV04_0, "IommufdIoasId");
        ioas_b = get_u32(DEV04_1, "IommufdIoasId");
        ck_assert_uint_gt(ioas_a, 0);
        ck_assert_uint_gt(ioas_b, 0);
        ck_assert_uint_ne(ioas_a, ioas_b);                      /* an IOAS of its own each */
        {
                /* What the library tells a peer is the property. */
                vrd_peer *lp = NULL;
                uint32_t v = 42;

                ck_assert_int_eq(vrd_peer_new(&lp), 0);
                ck_assert_int_eq(vrd_peer_get_ioas(lp, "04:00.1", &v), 0);
                ck_assert_uint_eq(v, ioas_b);
                ck_assert_int_eq(vrd_peer_get_ioas(lp, "00:02.0", &v), 0);
                ck_assert_uint_eq(v, 0);                        /* legacy */
                ck_assert_int_eq(vrd_peer_get_ioas(lp, "0f:00.0", &v), -ENODEV);
                ck_assert_str_eq(vrd_peer_error_name(lp), VRD_ERROR_NO_SUCH_DEVICE);
                vrd_peer_unref(lp);
        }
        ck_assert_int_eq(count_opens("ioas-attach 0000:04:00.0"), 1);
        {
                char *out = NULL, want[128];

                harness_run(&out, "%s status 04:00.0", getenv("VRD_CTL"));
                snprintf(want, sizeof(want), "Managed: yes, through its cdev bound to the set's iommufd context "
                         "(IOAS %u)", ioas_a);
                ck_assert_msg(strstr(out, want), "%s", out);
                free(out);
        }

        reset_sync(&c, "04:00.1", NULL);
        ck_assert_msg(!*c.error, "%s: %s", c.error, c.message);
        ck_assert_str_eq(c.result, "done");
        assert_peer_says(&a, "pause", "pause 0000:04:00.0");
        assert_peer_says(&b, "pause", "pause 0000:04:00.1");
        assert_peer_says(&a, "resume", "done");
        assert_peer_says(&b, "resume", "done");
        ck_assert_int_eq(count_resets("hot-reset 0000:04:00.0 groups=0 "), 1);   /* the empty list */
        ck_assert_int_eq(count_resets("groups=2"), 0);
        assert_idle(SET04);
        /* The peers keep their IOAS across the reset. */
        ck_assert_uint_eq(get_u32(DEV04_0, "IommufdIoasId"), ioas_a);
        peer_stop(&a);
        peer_stop(&b);
}
END_TEST

static size_t n_peers(const char *path) {
        sd_bus_error e = SD_BUS_ERROR_NULL;
        char **v = NULL;
        size_t n = 0;

        ck_assert(sd_bus_get_property_strv(h.bus, VRD_BUS_NAME, path, VRD_DEVICE_IFACE, "Peers", &e, &v) >= 0);
        for (char **x = v; x && *x; x++, n++)
                free(*x);
        free(v);
        return n;
}

START_TEST(test_a_new_peer_gets_a_new_ioas) {
        struct peer a, b;
        uint32_t first;
        char line[64];

        peer_start(&a, "--take", "0000:04:00.0", NULL);
        assert_peer_says(&a, "took", "fds=OK");
        first = get_u32(DEV04_0, "IommufdIoasId");
        peer_stop(&a);                                  /* leaves the bus: its claim goes */
        for (int i = 0; i < 500 && n_peers(DEV04_0) > 0; i++)
                usleep(10 * 1000);
        ck_assert_uint_eq(n_peers(DEV04_0), 0);
        peer_start(&b, "--take", "0000:04:00.0", NULL);
        assert_peer_says(&b, "took", "fds=OK");
        ck_assert_uint_gt(get_u32(DEV04_0, "IommufdIoasId"), 0);
        ck_assert_uint_ne(get_u32(DEV04_0, "IommufdIoasId"), first);
        /* The mappings of the one before do not follow the device: its IOAS is gone. */
        snprintf(line, sizeof(line), "ioas-destroy %u result=0", first);
        ck_assert_int_eq(count_opens(line), 1);
        peer_stop(&b);
}
END_TEST

START_TEST(test_not_owned_names_the_device) {
        struct peer a;
        struct call c;

        peer_start(&a, "--take", "0000:04:00.0", NULL);
        assert_peer_says(&a, "took", "fds=OK");
        set_kernel(CDEV_SPEC ",not_owned=0000:04:00.1");
        reset_sync(&c, "04:00.0", NULL);
        ck_assert_str_eq(c.error, VRD_ERROR_RESET_FAILED);
        ck_assert_msg(strstr(c.message, "0000:04:00.1 is not bound") && strstr(c.message, "NOT_OWNED") &&
                      strstr(c.message, "bus_0000_04"), "%s", c.message);
        assert_peer_says(&a, "resume", "failed");
        ck_assert_int_eq(count_resets("hot-reset"), 0);         /* the reset ioctl was never made */
        peer_stop(&a);
}
END_TEST

START_TEST(test_bind_einval_names_the_device) {
        _cleanup_free_ char *said = NULL;
        struct peer a;

        restart_with(CDEV_SPEC ",bind_fail=0000:04:00.1", NULL);
        ck_assert_int_eq(count_opens("cdev-bind 0000:04:00.1 vfio11 result=-22"), 1);
        peer_start(&a, "--take", "0000:04:00.1", NULL);
        said = peer_expect(&a, "error", 10000);
        ck_assert_msg(said && strstr(said, VRD_ERROR_NOT_MANAGED " 0000:04:00.1 is not managed") &&
                      strstr(said, "bound its cdev /dev/vfio/devices/vfio11 to an iommufd context of its own "
                                   "(VFIO_DEVICE_BIND_IOMMUFD: EINVAL)"), "%s", said);
        peer_stop(&a);
        assert_ownership(DEV04_1, "");
}
END_TEST

START_TEST(test_ioas_failures_name_the_device) {
        struct peer a;

        set_kernel(CDEV_SPEC ",ioas_fail=1");
        peer_start(&a, "--take", "0000:04:00.0", NULL);
        assert_peer_says(&a, "error", VRD_ERROR_IOMMU_FAILED " Cannot take 0000:04:00.0: cannot give 0000:04:00.0 "
                                      "an IO address space of its own");
        peer_stop(&a);
        set_kernel(CDEV_SPEC ",attach_fail=0000:04:00.0");
        peer_start(&a, "--take", "0000:04:00.0", NULL);
        assert_peer_says(&a, "error", "cannot attach 0000:04:00.0 to IOAS");
        peer_stop(&a);
        /* Refused takes leave no claim: the next one works. */
        set_kernel(CDEV_SPEC);
        peer_start(&a, "--take", "0000:04:00.0", NULL);
        assert_peer_says(&a, "took", "fds=OK");
        ck_assert_uint_gt(get_u32(DEV04_0, "IommufdIoasId"), 0);
        peer_stop(&a);
}
END_TEST

START_TEST(test_stall_and_lost_device) {
        struct peer a;
        struct call c;

        peer_start(&a, "--take", "0000:04:00.0", NULL);
        assert_peer_says(&a, "took", "fds=OK");
        set_kernel(CDEV_SPEC ",stall_ms=1500");
        reset_sync(&c, "04:00.0", NULL);
        ck_assert_msg(!*c.error, "%s: %s", c.error, c.message);
        ck_assert_uint_ge(c.duration, 1500000);
        assert_peer_says(&a, "resume", "done");
        set_kernel(CDEV_SPEC ",lose=0000:04:00.1");
        reset_sync(&c, "04:00.0", NULL);
        ck_assert_str_eq(c.error, VRD_ERROR_RESET_FAILED);
        ck_assert_msg(strstr(c.message, "0000:04:00.1 did not come back") && strstr(c.message, "ffff:ffff"), "%s",
                      c.message);
        assert_peer_says(&a, "resume", "failed");
        ck_assert_int_eq(count_resets("hot-reset 0000:04:00.0 groups=0 "), 2);
        peer_stop(&a);
}
END_TEST

START_TEST(test_config_keeps_a_set_on_legacy) {
        struct call c;

        restart_with(CDEV_SPEC, "[DevSet bus_0000_04]\nModel=legacy\n");
        assert_ownership(DEV04_0, "legacy");
        assert_ownership(DEV04_1, "legacy");
        ck_assert_uint_eq(get_u32(DEV04_0, "IommufdDevId"), 0);
        reset_sync(&c, "04:00.0", NULL);
        ck_assert_msg(!*c.error, "%s: %s", c.error, c.message);
        ck_assert_int_eq(count_resets("hot-reset 0000:04:00.0 groups=2 group_ids=10+11"), 1);

        restart_with(CDEV_SPEC, "[Ownership]\nModel=legacy\n[DevSet bus_0000_04]\nModel=auto\n");
        assert_ownership(DEV04_0, "cdev");              /* the set's own line wins */

        /* Without /dev/iommu, auto is legacy. */
        restart_with("delay_ms=20", NULL);
        assert_ownership(DEV04_1, "legacy");
}
END_TEST

/* Two programs each hold one member through its cdev: explain says why
 * borrowing cannot join them and what would; Borrow is refused naming them. */
START_TEST(test_cdev_holders_cannot_be_borrowed) {
        pid_t v[2] = { hold_node("/dev/vfio/devices/vfio8"), hold_node("/dev/vfio/devices/vfio9") };
        char *out = NULL, pid[32];
        struct call c;
        int status;

        status = harness_run(&out, "%s explain 03:00.0", getenv("VRD_CTL"));
        snprintf(pid, sizeof(pid), "pid %d", (int) v[1]);
        ck_assert_msg(strstr(out, "0000:03:00.1 is held open through its cdev") && strstr(out, pid) &&
                      strstr(out, "borrowing cannot help") && strstr(out, "a device binds to one context only") &&
                      strstr(out, "release their members"), "%d: %s", status, out);
        free(out);

        reset_sync(&c, "03:00.0", "Borrow=b1,Force=b1");
        ck_assert_str_eq(c.error, VRD_ERROR_NOT_OWNED);
        ck_assert_msg(strstr(c.message, "0000:03:00.0 is held by") && strstr(c.message, "through its cdev") &&
                      strstr(c.message, "must release the device"), "%s", c.message);
        ck_assert_int_eq(count_resets("0000:03"), 0);
        ck_assert_msg(lab_state_of(v[0]) != 'T' && lab_state_of(v[1]) != 'T', "a holder was stopped");
        for (size_t i = 0; i < 2; i++) {
                kill(v[i], SIGKILL);
                waitpid(v[i], NULL, 0);
        }
}
END_TEST

static bool daemon_said(const char *text) {
        char *out = NULL;
        bool r;

        harness_run(&out, "grep -cF -- '%s' '%s/daemon.log' || true", text, h.dir);
        r = atoi(out) > 0;
        free(out);
        return r;
}

#define FDSTORE_NAME 96

/* The name a device's cdev has in the fd store now: its dev id and IOAS. */
static char *cdev_name(char buf[static FDSTORE_NAME], const char *address, const char *path) {
        uint32_t ioas = get_u32(path, "IommufdIoasId");
        int n = snprintf(buf, FDSTORE_NAME, "cdev-pci_%s.dev-%u", address, get_u32(path, "IommufdDevId"));

        if (ioas)
                snprintf(buf + n, FDSTORE_NAME - (size_t) n, ".ioas-%u", ioas);
        return buf;
}

/* Under a service manager the context and the bound cdevs are parked in the
 * fd store; a restart takes them back (a cdev binds once: the stored file is
 * the device), checked, and refuses what is not what its name says. */
START_TEST(test_restart_takes_the_context_back) {
        struct service_manager sm;
        char name[FDSTORE_NAME];
        struct peer a;
        struct call c;
        int null;

        ck_assert_int_eq(harness_terminate_daemon(&h, 5000), 0);
        service_manager_start(&sm, h.dir, 64);
        service_manager_start_daemon(&sm, &h, lab_daemon_args);
        ck_assert(service_manager_wait_said(&sm, "FDNAME=cdev-pci_0000_04_00_1", 5000));
        ck_assert_uint_eq(service_manager_count(&sm, "iommufd-bus_0000_04"), 1);
        ck_assert_uint_eq(service_manager_count(&sm, cdev_name(name, "0000_04_00_0", DEV04_0)), 1);
        peer_start(&a, "--keep", "--take", "0000:04:00.0", NULL);
        assert_peer_says(&a, "took", "fds=OK");

        ck_assert_int_eq(harness_kill_daemon(&h, SIGKILL), 128 + SIGKILL);
        service_manager_start_daemon(&sm, &h, lab_daemon_args);
        ck_assert_msg(daemon_said("Took iommufd-bus_0000_04 back from the fd store") &&
                      daemon_said("Took cdev-pci_0000_04_00_0.dev-"), "nothing taken back");
        ck_assert(!daemon_said("Refusing"));
        /* Bound by setup()'s daemon and by the first under the store, not again. */
        ck_assert_int_eq(count_opens("cdev-bind 0000:04:00.0"), 2);
        assert_ownership(DEV04_0, "cdev");
        peer_stop(&a);
        peer_start(&a, "--take", "0000:04:00.0", NULL);
        assert_peer_says(&a, "took", "fds=OK");
        reset_sync(&c, "04:00.0", NULL);
        ck_assert_msg(!*c.error, "%s: %s", c.error, c.message);
        ck_assert_int_eq(count_resets("hot-reset 0000:04:00.0 groups=0 "), 1);
        peer_stop(&a);

        /* A stored fd that is not the cdev its name says is refused and closed. */
        ck_assert_int_eq(harness_terminate_daemon(&h, 5000), 0);
        service_manager_flush(&sm);
        null = open("/dev/null", O_RDWR | O_CLOEXEC);
        ck_assert_int_ge(null, 0);
        service_manager_store(&sm, "cdev-pci_0000_04_00_1", null);
        service_manager_start_daemon(&sm, &h, lab_daemon_args);
        ck_assert_msg(daemon_said("Refusing cdev-pci_0000_04_00_1") &&
                      daemon_said("the device fd is /dev/null, not /dev/vfio/devices/vfio11"), "not refused");
        ck_assert_int_eq(count_opens("cdev-bind 0000:04:00.1 vfio11 result=0"), 3);     /* bound afresh */
        assert_ownership(DEV04_1, "cdev");
        ck_assert_int_eq(harness_terminate_daemon(&h, 5000), 0);
        service_manager_stop(&sm);
}
END_TEST

/* A peer's IOAS (its DMA mappings) survives a restart: the cdev's name in
 * the store says which it is, the context still has it, and the group waits
 * for the process that holds the cdev. That one gets its IOAS back as it
 * was; anyone else is Busy, and once it has let go, gets a new IOAS. An id
 * the context does not have is not believed. */
START_TEST(test_restart_keeps_the_peers_ioas) {
        char name[FDSTORE_NAME], old[FDSTORE_NAME], other[FDSTORE_NAME], text[128], pid[40], *line;
        struct service_manager sm;
        uint32_t ioas, devid, attaches;
        struct peer a, b;
        struct call c;
        int fds[3];

        ck_assert_int_eq(harness_terminate_daemon(&h, 5000), 0);
        service_manager_start(&sm, h.dir, 64);
        service_manager_start_daemon(&sm, &h, lab_daemon_args);
        ck_assert(service_manager_wait_said(&sm, "FDNAME=cdev-pci_0000_04_00_1", 5000));
        cdev_name(old, "0000_04_00_0", DEV04_0);
        peer_start(&a, "--keep", "--take", "0000:04:00.0", NULL);
        assert_peer_says(&a, "took", "fds=OK");
        ioas = get_u32(DEV04_0, "IommufdIoasId");
        devid = get_u32(DEV04_0, "IommufdDevId");
        ck_assert_uint_gt(ioas, 0);
        ck_assert_uint_gt(devid, 0);
        cdev_name(name, "0000_04_00_0", DEV04_0);
        snprintf(text, sizeof(text), "FDNAME=%s ", name);
        ck_assert_msg(service_manager_wait_said(&sm, text, 5000), "never parked as %s", name);
        ck_assert_uint_eq(service_manager_count(&sm, name), 1);
        ck_assert_uint_eq(service_manager_count(&sm, old), 0);  /* renamed, not stored twice */

        ck_assert_int_eq(harness_kill_daemon(&h, SIGKILL), 128 + SIGKILL);
        service_manager_start_daemon(&sm, &h, lab_daemon_args);
        snprintf(text, sizeof(text), "0000:04:00.0 came back attached to IOAS %u, its peer", ioas);
        ck_assert_msg(daemon_said(text), "not said: %s", text);
        snprintf(pid, sizeof(pid), "pid %d (test-peer", (int) a.pid);
        ck_assert_msg(daemon_said("IOMMU group 10: ") && daemon_said(pid) &&
                      daemon_said("cdev, attached to its IOAS from before the restart"), "the previous peer not named");
        snprintf(text, sizeof(text), "ioas-check %u result=0", ioas);
        ck_assert_int_eq(count_opens(text), 1);
        ck_assert_uint_eq(get_u32(DEV04_0, "IommufdIoasId"), ioas);
        ck_assert_uint_eq(get_u32(DEV04_0, "IommufdDevId"), devid);

        /* Nobody else gets that IOAS while A holds the cdev. */
        peer_start(&b, "--take", "0000:04:00.0", NULL);
        line = peer_expect(&b, "error", 10000);
        ck_assert_msg(line && strstr(line, VRD_ERROR_BUSY) && strstr(line, "IOMMU group 10 of 0000:04:00.0") &&
                      strstr(line, pid), "it said: %s", line);
        free(line);
        peer_stop(&b);
        /* A takes it again: the same IOAS, nothing attached or destroyed. */
        attaches = (uint32_t) count_opens("ioas-attach 0000:04:00.0");
        kill(a.pid, SIGUSR1);
        assert_peer_says(&a, "took", "fds=OK");
        ck_assert_uint_eq(get_u32(DEV04_0, "IommufdIoasId"), ioas);
        ck_assert_uint_eq((uint32_t) count_opens("ioas-attach 0000:04:00.0"), attaches);
        ck_assert_int_eq(count_opens("ioas-destroy"), 0);
        reset_sync(&c, "04:00.0", NULL);
        ck_assert_msg(!*c.error, "%s: %s", c.error, c.message);
        assert_peer_says(&a, "resume", "done");
        ck_assert_uint_eq(get_u32(DEV04_0, "IommufdIoasId"), ioas);

        /* Once A is gone, the next peer gets an IOAS of its own, and A's goes. */
        peer_stop(&a);
        for (int i = 0; i < 500 && n_peers(DEV04_0) > 0; i++)
                usleep(10 * 1000);
        peer_start(&b, "--take", "0000:04:00.0", NULL);
        assert_peer_says(&b, "took", "fds=OK");
        ck_assert_uint_ne(get_u32(DEV04_0, "IommufdIoasId"), ioas);
        snprintf(text, sizeof(text), "ioas-destroy %u result=0", ioas);
        ck_assert_int_eq(count_opens(text), 1);
        peer_stop(&b);

        /* A name with an IOAS the context does not have. */
        cdev_name(name, "0000_04_00_0", DEV04_0);
        cdev_name(other, "0000_04_00_1", DEV04_1);
        ck_assert_int_eq(harness_terminate_daemon(&h, 5000), 0);
        fds[0] = service_manager_dup(&sm, "iommufd-bus_0000_04");
        fds[1] = service_manager_dup(&sm, name);
        fds[2] = service_manager_dup(&sm, other);
        ck_assert_msg(fds[0] >= 0 && fds[1] >= 0 && fds[2] >= 0, "the store lacks %s or %s", name, other);
        service_manager_flush(&sm);
        service_manager_store(&sm, "iommufd-bus_0000_04", fds[0]);
        snprintf(text, sizeof(text), "cdev-pci_0000_04_00_0.dev-%u.ioas-999", devid);
        service_manager_store(&sm, text, fds[1]);
        service_manager_store(&sm, other, fds[2]);
        service_manager_start_daemon(&sm, &h, lab_daemon_args);
        ck_assert(daemon_said("0000:04:00.0 came back attached to IOAS 999, which the iommufd context of "
                              "bus_0000_04 does not have"));
        ck_assert_uint_eq(get_u32(DEV04_0, "IommufdIoasId"), 0);
        ck_assert_uint_eq(get_u32(DEV04_0, "IommufdDevId"), devid);
        snprintf(text, sizeof(text), "cdev-pci_0000_04_00_0.dev-%u", devid);
        ck_assert_uint_eq(service_manager_count(&sm, text), 1);        /* parked again under what is true */
        ck_assert_int_eq(harness_terminate_daemon(&h, 5000), 0);
        service_manager_stop(&sm);
}
END_TEST

/* The libvirt hook resets with Borrow: a set the daemon owns whole through
 * cdev has nobody to borrow from, and is reset as the daemon's own. */
START_TEST(test_borrow_of_an_owned_set) {
        struct call c;

        reset_sync(&c, "04:00.1", "Borrow=b1");
        ck_assert_msg(!*c.error, "%s: %s", c.error, c.message);
        ck_assert_str_eq(c.result, "done");
        ck_assert_int_eq(count_resets("hot-reset 0000:04:00.0 groups=0 "), 1);
        ck_assert_int_eq(count_opens("group-open 10 "), 0);
}
END_TEST

static Suite *suite(void) {
        Suite *s = suite_create("cdev");
        TCase *tc = tcase_create("fake-kernel");

        tcase_add_checked_fixture(tc, setup_cdev, teardown);
        tcase_set_timeout(tc, 90);
        tcase_add_test(tc, test_take_and_reset_through_the_context);
        tcase_add_test(tc, test_a_new_peer_gets_a_new_ioas);
        tcase_add_test(tc, test_not_owned_names_the_device);
        tcase_add_test(tc, test_bind_einval_names_the_device);
        tcase_add_test(tc, test_ioas_failures_name_the_device);
        tcase_add_test(tc, test_stall_and_lost_device);
        tcase_add_test(tc, test_config_keeps_a_set_on_legacy);
        tcase_add_test(tc, test_cdev_holders_cannot_be_borrowed);
        tcase_add_test(tc, test_restart_takes_the_context_back);
        tcase_add_test(tc, test_restart_keeps_the_peers_ioas);
        tcase_add_test(tc, test_borrow_of_an_owned_set);
        suite_add_tcase(s, tc);
        return s;
}

int main(void) {
        return check_run(suite());
}
