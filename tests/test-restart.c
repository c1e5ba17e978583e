/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* A restart without loss: the daemon with the kernel test double on the fake
 * lab, started as systemd starts it (tests/service-manager.c: $NOTIFY_SOCKET,
 * the fd store, $LISTEN_FDS), killed or stopped in each state and started
 * again with what the store kept. Peers are vfio-resetctl hold processes
 * (libvfio-resetd, which takes their devices again on its own), raw test-peer
 * processes and, in this process, a vrd_peer. */
#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "bus-names.h"
#include "check-run.h"
#include "lab-harness.h"
#include "macro.h"
#include "service-manager.h"
#include "strv.h"
#include "vfio-resetd.h"

#define SET02 VRD_DEVSET_PATH_PREFIX "/slot_0000_02_1"
#define DEV02_0 VRD_DEVICE_PATH_PREFIX "/pci_0000_02_00_0"
#define DEV02_1 VRD_DEVICE_PATH_PREFIX "/pci_0000_02_00_1"
#define SLOT02 "/sys/devices/pci0000:00/0000:00:04.0/0000:02:00."

static struct service_manager sm;

static void start_daemon(void) {
        service_manager_start_daemon(&sm, &h, lab_daemon_args);
}

static void start_with_store(void) {
        service_manager_start(&sm, h.dir, 256);
        start_daemon();
}

static void setup_restart(void) {
        lab_start_daemon = start_with_store;
        setup();
}

static void teardown_restart(void) {
        teardown();
        service_manager_stop(&sm);
}

/* --- what the test looks at ------------------------------------------------------ */

static bool daemon_said(const char *text) {
        char *out = NULL;
        bool found;

        harness_run(&out, "cat '%s/daemon.log'", h.dir);
        found = strstr(out, text) != NULL;
        free(out);
        return found;
}

static void assert_daemon_said(const char *text) {
        char *out = NULL;

        for (int i = 0; i < 200 && !daemon_said(text); i++)
                usleep(10000);
        if (daemon_said(text))
                return;
        harness_run(&out, "tail -n 30 '%s/daemon.log'", h.dir);
        ck_abort_msg("the daemon never said '%s'; its log ends:\n%s", text, out);
}

static void assert_told_store(const char *text) {
        char *said;

        if (service_manager_wait_said(&sm, text, 5000))
                return;
        said = service_manager_said(&sm);
        ck_abort_msg("the daemon never told the service manager '%s'; it said:\n%s", text, said);
}

static size_t n_peers(const char *path) {
        sd_bus_error e = SD_BUS_ERROR_NULL;
        char **l = NULL;
        size_t n;

        ck_assert_msg(sd_bus_get_property_strv(h.bus, VRD_BUS_NAME, path, VRD_DEVSET_IFACE, "Peers", &e, &l) >= 0,
                      "%s: %s", path, e.message);
        n = strv_length(l);
        strv_free(l);
        return n;
}

/* Waits until the set has n peers (they come back on their own after a restart). */
static void assert_peers(const char *path, size_t n) {
        for (int i = 0; i < 500 && n_peers(path) != n; i++)
                usleep(10000);
        ck_assert_uint_eq(n_peers(path), n);
}

static bool managed(const char *path, const char *iface) {
        sd_bus_error e = SD_BUS_ERROR_NULL;
        int v = 0;

        ck_assert_msg(sd_bus_get_property_trivial(h.bus, VRD_BUS_NAME, path, iface, "Managed", &e, 'b', &v) >= 0,
                      "%s: %s", path, e.message);
        return v;
}

/* No set of the daemon is in any state but idle. */
static void assert_all_idle(void) {
        char *out = NULL;

        ck_assert_int_eq(harness_run(&out, "'%s' list", getenv("VRD_CTL")), 0);
        ck_assert_msg(!strstr(out, "quiescing") && !strstr(out, "resetting") && !strstr(out, "resuming"),
                      "a set is not idle:\n%s", out);
        ck_assert_msg(strstr(out, "bus_0000_04") && strstr(out, "idle"), "%s", out);
        free(out);
}

/* --- the daemon's life ------------------------------------------------------------- */

static void kill_daemon(int sig) {
        int status = harness_kill_daemon(&h, sig);

        if (sig == SIGTERM)
                ck_assert_msg(status == 0, "status %d after SIGTERM", status);
}

/* Killed with sig, started again with the store as it is: an automatic
 * restart (Restart=), or systemctl restart, which keeps the store while its
 * job runs (systemd.service(5), FileDescriptorStoreMax=). */
static void restart(int sig) {
        kill_daemon(sig);
        start_daemon();
}

/* --- peers --------------------------------------------------------------------------- */

/* vfio-resetctl hold ADDR -- sh: the command says its pid and its device fd. */
struct holder {
        struct harness_child hold;
        pid_t pid;
        int fd;
};


static void holder_start(struct holder *x, const char *address) {
        char script[256], *line;

        snprintf(script, sizeof(script), "echo pid $$ fd $VFIO_RESETD_DEVICE_FD_%.4s_%.2s_%.2s_%.1s; exec sleep 60",
                 address, address + 5, address + 8, address + 11);
        harness_spawn(&x->hold, (const char *const[]) { getenv("VRD_CTL"), "hold", address, "--", "sh", "-c",
                                                        script, NULL });
        line = harness_expect(&x->hold, "pid ", 10000);
        ck_assert_msg(line && sscanf(line, "pid %d fd %d", &x->pid, &x->fd) == 2, "hold said '%s' (passed over: %s)",
                      line, x->hold.skipped);
        free(line);
}

static void holder_stop(struct holder *x) {
        kill(x->pid, SIGKILL);
        harness_child_stop(&x->hold);
}

/* Which open file the command's device fd is. */
static ino_t holder_file(const struct holder *x, char target[static 256]) {
        char path[64];
        struct stat st;
        ssize_t n;

        snprintf(path, sizeof(path), "/proc/%d/fd/%d", (int) x->pid, x->fd);
        n = readlink(path, target, 255);
        ck_assert_int_gt(n, 0);
        target[n] = '\0';
        ck_assert_int_eq(stat(path, &st), 0);
        return st.st_ino;
}

static void wait_state(pid_t pid, bool stopped) {
        for (int i = 0; i < 500 && (lab_state_of(pid) == 'T') != stopped; i++)
                usleep(10000);
        ck_assert_msg((lab_state_of(pid) == 'T') == stopped, "pid %d is %c, %s", (int) pid, lab_state_of(pid),
                      stopped ? "not stopped" : "still stopped");
}


static void wait_set_state(const char *path, const char *want) {
        char *state = NULL;

        for (int i = 0; i < 500; i++, usleep(10000)) {
                free(state);
                state = get_string(path, VRD_DEVSET_IFACE, "State");
                if (strcmp(state, want) == 0)
                        break;
        }
        ck_assert_str_eq(state, want);
        free(state);
}

/* --- the store ------------------------------------------------------------------------- */

START_TEST(test_every_owned_fd_is_stored_by_name) {
        assert_told_store("FDSTORE=1 FDNAME=group-10 FDPOLL=0 fds=1");
        assert_told_store("FDSTORE=1 FDNAME=container-10 FDPOLL=0 fds=1");
        assert_told_store("FDSTORE=1 FDNAME=device-pci_0000_04_00_0 FDPOLL=0 fds=1");
        assert_told_store("READY=1");
        ck_assert_uint_eq(service_manager_count(&sm, "group-11"), 1);
        ck_assert_uint_eq(service_manager_count(&sm, "container-11"), 1);
        ck_assert_uint_eq(service_manager_count(&sm, "device-pci_0000_04_00_1"), 1);
        ck_assert_uint_eq(service_manager_count(&sm, "group-7"), 1);   /* the udev-tagged slot pair's */
        ck_assert_uint_eq(service_manager_count(&sm, "device-pci_0000_02_00_0"), 1);
        ck_assert_uint_eq(service_manager_count(&sm, "device-pci_0000_02_00_1"), 1);
        ck_assert_uint_eq(service_manager_count(&sm, "group-8"), 0);   /* 03:00.x is not managed */
}
END_TEST

/* A device no longer managed (its udev tag went) leaves the store with its group. */
START_TEST(test_unmanaged_device_leaves_the_store) {
        for (int f = 0; f < 2; f++) {
                char path[128];

                snprintf(path, sizeof(path), SLOT02 "%d", f);
                umockdev_testbed_set_property(tb, path, "CURRENT_TAGS", ":other:");
                umockdev_testbed_uevent(tb, path, "change");
        }
        for (int i = 0; i < 500 && (managed(DEV02_0, VRD_DEVICE_IFACE) || managed(DEV02_1, VRD_DEVICE_IFACE)); i++)
                usleep(10000);
        ck_assert(!managed(SET02, VRD_DEVSET_IFACE));
        assert_told_store("FDSTOREREMOVE=1 FDNAME=device-pci_0000_02_00_0 fds=0");
        assert_told_store("FDSTOREREMOVE=1 FDNAME=device-pci_0000_02_00_1 fds=0");
        assert_told_store("FDSTOREREMOVE=1 FDNAME=group-7 fds=0");
        assert_told_store("FDSTOREREMOVE=1 FDNAME=container-7 fds=0");
        ck_assert_uint_eq(service_manager_count(&sm, "group-7"), 0);
        ck_assert_uint_eq(service_manager_count(&sm, "container-7"), 0);
        ck_assert_uint_eq(service_manager_count(&sm, "device-pci_0000_02_00_0"), 0);
        ck_assert_uint_eq(service_manager_count(&sm, "group-10"), 1);  /* the others stay */
        /* after a restart it stays unmanaged, and nothing of it comes back */
        restart(SIGKILL);
        ck_assert(!managed(SET02, VRD_DEVSET_IFACE));
        ck_assert(managed(SET04, VRD_DEVSET_IFACE));
        ck_assert_int_eq(count_opens("group-open 7 "), 1);     /* the first start's */
}
END_TEST

/* --- restarts while idle ---------------------------------------------------------------- */

static void on_rejoin(vrd_peer *p, const struct vrd_rejoin *rejoin, void *userdata) {
        char *said = userdata;

        snprintf(said + strlen(said), 256 - strlen(said), "%s %s error=%d paused=%d;", rejoin->watch ? "watch" : "take",
                 rejoin->address, rejoin->error, rejoin->paused);
}

/* Killed while idle with peers: started again, it takes its groups, containers
 * and devices back from the store; nothing is opened a second time, nothing
 * reset; the peers still have their fds and take their devices again on their
 * own; the next reset pauses them and works. */
static void check_restart_while_idle(int sig) {
        struct holder a, b;
        char before[256], after[256], rejoined[256] = "";
        ino_t file;
        vrd_peer *w;
        int group_opens, first_opens, device_opens;

        holder_start(&a, "0000:04:00.0");
        holder_start(&b, "0000:04:00.1");
        ck_assert_int_eq(vrd_peer_new(&w), 0);
        vrd_peer_on_rejoin(w, on_rejoin, rejoined);
        ck_assert_int_eq(vrd_peer_watch(w, "02:00.0"), 0);
        assert_peers(SET04, 2);
        assert_peers(SET02, 1);
        file = holder_file(&a, before);
        ck_assert_msg(strstr(before, "vfio-fake-0000:04:00.0@"), "the command's fd is %s", before);
        group_opens = count_opens("group-open");
        first_opens = count_opens("first=1");
        device_opens = count_opens("device-open");
        ck_assert_int_ge(group_opens, 5);

        restart(sig);
        /* the kernel saw no second open of a group, and no first open of a
         * device (where it resets it) */
        ck_assert_int_eq(count_opens("group-open"), group_opens);
        ck_assert_int_gt(count_opens("device-open"), device_opens);
        ck_assert_int_eq(count_opens("first=1"), first_opens);
        ck_assert_int_eq(count_resets("reset"), 0);
        assert_daemon_said("Took IOMMU group 10 and its container back from the fd store");
        assert_daemon_said("Took IOMMU group 11 and its container back from the fd store");
        assert_daemon_said("device-pci_0000_04_00_0 stayed open across the restart in the fd store");
        ck_assert(!daemon_said("Refusing"));
        ck_assert(!daemon_said("not needed any more"));
        ck_assert(managed(SET04, VRD_DEVSET_IFACE));
        ck_assert(managed(SET02, VRD_DEVSET_IFACE));
        /* one fd of each name: the device fds were replaced, not added to */
        ck_assert_uint_eq(service_manager_count(&sm, "device-pci_0000_04_00_0"), 1);
        ck_assert_uint_eq(service_manager_count(&sm, "group-10"), 1);

        /* the peers' fds are as they were, and they are peers again */
        ck_assert_uint_eq(holder_file(&a, after), file);
        ck_assert_str_eq(after, before);
        harness_expect_line(&a.hold, "vfio-resetctl: vfio-resetd is back: took 0000:04:00.0 again", NULL);
        harness_expect_line(&b.hold, "vfio-resetctl: vfio-resetd is back: took 0000:04:00.1 again", NULL);
        assert_peers(SET04, 2);
        for (int i = 0; i < 500 && !*rejoined; i++) {
                ck_assert_int_ge(vrd_peer_process(w), 0);
                ck_assert_int_ge(vrd_peer_wait(w, 10000), 0);
        }
        ck_assert_str_eq(rejoined, "watch 0000:02:00.0 error=0 paused=0;");
        assert_peers(SET02, 1);
        assert_all_idle();

        /* a reset after the restart stops both commands, with the adopted groups */
        set_kernel("delay_ms=300");
        struct call c;
        reset_async(&c, "0000:04:00.0", NULL);
        wait_state(a.pid, true);
        wait_state(b.pid, true);
        ck_assert(harness_wait(&h, &c.done, 10000));
        ck_assert_msg(!*c.error, "%s: %s", c.error, c.message);
        ck_assert_str_eq(c.result, "done");
        ck_assert_int_eq(count_resets("hot-reset 0000:04:00.0 groups=2 group_ids=10+11 result=0"), 1);
        wait_state(a.pid, false);
        wait_state(b.pid, false);
        holder_stop(&a);
        holder_stop(&b);
        vrd_peer_unref(w);
}

START_TEST(test_killed_while_idle) {
        check_restart_while_idle(SIGKILL);
}
END_TEST

START_TEST(test_stopped_and_started_while_idle) {
        check_restart_while_idle(SIGTERM);
}
END_TEST

/* A peer from before the restart that does not take its device again keeps
 * its group to itself while it holds the container: nobody else gets that
 * container (its DMA mappings); once it lets go, the device is free. */
START_TEST(test_previous_peer_keeps_its_group) {
        struct peer old, other, later;
        char pid[32], *line;

        peer_start(&old, "--keep", "--take", "0000:04:00.1", NULL);
        assert_peer_says(&old, "took", "fds=OK");
        restart(SIGKILL);
        snprintf(pid, sizeof(pid), "pid %d (test-peer", (int) old.pid);
        assert_daemon_said("IOMMU group 11: ");
        assert_daemon_said(pid);
        /* Another process (not this one: it is the service manager, whose
         * store holds the container too) is refused, and told who has it;
         * the group nobody held is its to take. */
        peer_start(&other, "--take", "0000:04:00.1", "--take", "0000:04:00.0", NULL);
        line = peer_expect(&other, "error", 10000);
        ck_assert_msg(line && strstr(line, VRD_ERROR_BUSY) && strstr(line, "IOMMU group 11 of 0000:04:00.1") &&
                      strstr(line, pid) && strstr(line, "before vfio-resetd restarted"), "it said: %s", line);
        free(line);
        assert_peer_says(&other, "took 0000:04:00.0", "fds=OK");
        peer_stop(&other);
        /* once it let go, anyone may */
        peer_stop(&old);
        peer_start(&later, "--take", "0000:04:00.1", NULL);
        assert_peer_says(&later, "took 0000:04:00.1", "fds=OK");
        peer_stop(&later);
}
END_TEST

/* --- killed mid-reset -------------------------------------------------------------------- */

/* After SIGKILL nobody sends a Resume: the library ends the pause on its own
 * and hold continues its command; the requester hears from the bus. Started
 * again, every set is idle, the peer is back, and a reset works. */
static void check_killed_mid_reset(struct holder *a, struct call *c) {
        kill_daemon(SIGKILL);
        ck_assert(harness_wait(&h, &c->done, 5000));
        ck_assert_msg(*c->error, "the reset was answered %s", c->result);
        wait_state(a->pid, false);
        harness_expect_line(&a->hold, "vfio-resetctl: vfio-resetd left the bus during reset 1; resuming sh", NULL);

        set_kernel("delay_ms=20");
        start_daemon();
        assert_daemon_said("Took IOMMU group 10 and its container back from the fd store");
        harness_expect_line(&a->hold, "vfio-resetctl: vfio-resetd is back: took 0000:04:00.0 again", NULL);
        assert_peers(SET04, 1);
        assert_all_idle();
        ck_assert_uint_eq(get_u64(SET04, "ResetCount"), 0);
        reset_async(c, "0000:04:00.0", NULL);
        ck_assert(harness_wait(&h, &c->done, 10000));
        ck_assert_msg(!*c->error, "%s: %s", c->error, c->message);
        ck_assert_str_eq(c->result, "done");
        assert_all_idle();
        wait_state(a->pid, false);
}

START_TEST(test_killed_while_quiescing) {
        sd_bus *silent = harness_silent_watcher("04:00.1");
        struct holder a;
        struct call c;

        holder_start(&a, "0000:04:00.0");
        assert_peers(SET04, 2);
        reset_async(&c, "0000:04:00.0", NULL);
        wait_state(a.pid, true);                /* hold acknowledged; the watcher never will */
        wait_set_state(SET04, "quiescing");
        check_killed_mid_reset(&a, &c);
        ck_assert_int_eq(count_resets("hot-reset 0000:04:00.0"), 1);   /* the new daemon's alone */
        holder_stop(&a);
        sd_bus_flush_close_unref(silent);
}
END_TEST

START_TEST(test_killed_while_resetting) {
        char begin[160], *out = NULL;
        struct holder a;
        struct call c;

        snprintf(begin, sizeof(begin), "%s/begin.log", h.dir);
        set_kernel(cmdf("delay_ms=5000,begin_log=%s", begin));
        holder_start(&a, "0000:04:00.0");
        assert_peers(SET04, 1);
        reset_async(&c, "0000:04:00.0", NULL);
        for (int i = 0; i < 500 && harness_run(&out, "grep -q 'hot-reset 0000:04:00.0' '%s'", begin) != 0; i++) {
                free(out);
                usleep(10000);
        }
        free(out);
        wait_set_state(SET04, "resetting");
        ck_assert_int_eq(lab_state_of(a.pid), 'T');
        check_killed_mid_reset(&a, &c);
        holder_stop(&a);
}
END_TEST

/* SIGTERM mid-quiesce (systemctl restart, or stop): every peer hears Resume
 * daemon-stopping and the requester ShuttingDown before it exits; the store
 * stays (a restart's job is queued), and the next start takes it back. */
START_TEST(test_stopped_while_quiescing) {
        sd_bus *silent = harness_silent_watcher("04:00.1");
        struct holder a;
        struct call c;
        int opens;

        holder_start(&a, "0000:04:00.0");
        assert_peers(SET04, 2);
        reset_async(&c, "0000:04:00.0", NULL);
        wait_state(a.pid, true);
        wait_set_state(SET04, "quiescing");
        opens = count_opens("group-open");
        kill_daemon(SIGTERM);
        ck_assert(harness_wait(&h, &c.done, 5000));
        ck_assert_str_eq(c.error, VRD_ERROR_SHUTTING_DOWN);
        harness_expect_line(&a.hold, "vfio-resetctl: reset 1 of " SET04 " ended: daemon-stopping", NULL);
        wait_state(a.pid, false);
        assert_told_store("STOPPING=1");

        start_daemon();
        harness_expect_line(&a.hold, "vfio-resetctl: vfio-resetd is back: took 0000:04:00.0 again", NULL);
        ck_assert_int_eq(count_opens("group-open"), opens);
        assert_all_idle();
        reset_sync(&c, "0000:04:00.0", NULL);
        ck_assert_str_eq(c.result, "done");
        holder_stop(&a);
        sd_bus_flush_close_unref(silent);
}
END_TEST

/* --- what comes back is checked ----------------------------------------------------------- */

/* A memfd named as the double names its groups, WORLD this test's. */
static int fake_group_fd(int group) {
        const char *dir = getenv("UMOCKDEV_DIR"), *slash = strrchr(dir, '/');
        char name[300];
        int fd;

        snprintf(name, sizeof(name), "vfio-fake-group-%d@%s", group, slash ? slash + 1 : dir);
        fd = memfd_create(name, MFD_CLOEXEC);
        ck_assert_int_ge(fd, 0);
        return fd;
}

static int null_fd(void) {
        int fd = open("/dev/null", O_RDWR | O_CLOEXEC);

        ck_assert_int_ge(fd, 0);
        return fd;
}

/* Stored fds that are not what their names say are refused, each named in
 * the log, closed and dropped from the store; those nothing needs are
 * dropped too; the daemon opens what it needs itself and serves on. */
START_TEST(test_wrong_fds_are_refused) {
        char target[256] = "";
        int pipefd[2], fd;
        char path[64];
        ssize_t n;

        kill_daemon(SIGTERM);
        service_manager_flush(&sm);
        service_manager_store(&sm, "group-10", null_fd());
        service_manager_store(&sm, "container-10", eventfd(0, EFD_CLOEXEC));
        service_manager_store(&sm, "group-11", fake_group_fd(99));
        service_manager_store(&sm, "container-11", eventfd(0, EFD_CLOEXEC));
        service_manager_store(&sm, "device-pci_0000_04_00_0", null_fd());
        service_manager_store(&sm, "group-8", fake_group_fd(8));
        service_manager_store(&sm, "container-8", eventfd(0, EFD_CLOEXEC));
        service_manager_store(&sm, "group-2", fake_group_fd(2));               /* without its container */
        ck_assert_int_eq(pipe2(pipefd, O_CLOEXEC), 0);
        service_manager_store(&sm, "junk", pipefd[0]);
        close(pipefd[1]);
        start_daemon();

        assert_daemon_said("Refusing group-10 (fd ");
        assert_daemon_said("the group fd is /dev/null, not IOMMU group 10");
        assert_daemon_said("Refusing group-11 (fd ");
        assert_daemon_said("the group fd is /memfd:vfio-fake-group-99@");
        assert_daemon_said("not IOMMU group 11");
        assert_daemon_said("Refusing device-pci_0000_04_00_0 (fd ");
        assert_daemon_said("it is no VFIO device of 0000:04:00.0");
        assert_daemon_said("group-2 came back without container-2");
        assert_daemon_said("Stored fd 'junk' (fd ");
        assert_daemon_said("Stored fd 'group-8' (fd ");
        assert_daemon_said("Stored fd 'container-8' (fd ");
        assert_told_store("FDSTOREREMOVE=1 FDNAME=group-10 fds=0");
        assert_told_store("FDSTOREREMOVE=1 FDNAME=container-11 fds=0");
        assert_told_store("FDSTOREREMOVE=1 FDNAME=junk fds=0");
        assert_told_store("FDSTOREREMOVE=1 FDNAME=group-8 fds=0");
        assert_told_store("FDSTOREREMOVE=1 FDNAME=group-2 fds=0");
        ck_assert_uint_eq(service_manager_count(&sm, "junk"), 0);
        ck_assert_uint_eq(service_manager_count(&sm, "group-8"), 0);

        /* it opened what it needs itself, and stored that */
        ck_assert(harness_daemon_alive(&h));
        ck_assert(managed(SET04, VRD_DEVSET_IFACE));
        ck_assert_int_eq(count_opens("group-open 10 result=0"), 2);
        ck_assert_int_eq(count_opens("group-open 11 result=0"), 2);
        ck_assert_uint_eq(service_manager_count(&sm, "group-10"), 1);
        fd = service_manager_dup(&sm, "group-10");
        snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);
        n = readlink(path, target, sizeof(target) - 1);
        ck_assert_int_gt(n, 0);
        close(fd);
        ck_assert_msg(strstr(target, "vfio-fake-group-10@"), "group-10 in the store is %s", target);
        struct call c;
        reset_sync(&c, "0000:04:00.0", NULL);
        ck_assert_str_eq(c.result, "done");
}
END_TEST

int main(void) {
        Suite *s = suite_create("restart");
        TCase *tc = tcase_create("lab");

        tcase_add_checked_fixture(tc, setup_restart, teardown_restart);
        tcase_set_timeout(tc, 90);
        tcase_add_test(tc, test_every_owned_fd_is_stored_by_name);
        tcase_add_test(tc, test_unmanaged_device_leaves_the_store);
        tcase_add_test(tc, test_killed_while_idle);
        tcase_add_test(tc, test_stopped_and_started_while_idle);
        tcase_add_test(tc, test_previous_peer_keeps_its_group);
        tcase_add_test(tc, test_killed_while_quiescing);
        tcase_add_test(tc, test_killed_while_resetting);
        tcase_add_test(tc, test_stopped_while_quiescing);
        tcase_add_test(tc, test_wrong_fds_are_refused);
        suite_add_tcase(s, tc);
        return check_run(s);
}
