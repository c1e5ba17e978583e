/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Holders on a host with many processes: N real processes (sleep(1),
 * spawned by this process) of which K hold the IOMMU group of 0000:04:00.0
 * of the fake lab sysfs open, served by the daemon with the kernel test
 * double, nothing managed. Alternating, R times each:
 *   - floor: a bare walk of /proc/PID/fd of every process in this process,
 *     with fstatat(2) of each fd and a compare of its st_rdev: what any
 *     scan by device number must do (proc(5));
 *   - floor without the preload: the same walk in a process of its own
 *     (this program with --walk) outside umockdev's preload, which wraps
 *     every call that takes a path: what the walk costs on a real host;
 *   - holders: a read of the Holders property of bus_0000_04 on the bus
 *     (one scan of the daemon's, see daemon/holders.c, and a round trip).
 * The group's node in the fake sysfs is made a symlink to /dev/full, as
 * tests/test-daemon.c's private-/dev holder does: the holders open the real
 * /dev/full, a character device whose st_rdev the daemon matches.
 * The daemon runs under the preload (it reads the fake sysfs), so the first
 * floor is its own. Prints the medians, holders / each floor, and each per
 * process seen.
 * Usage: holders-scale [-n PROCESSES] [-k HOLDERS] [-r ROUNDS]  (run by bench/holders-scale.sh) */
#include <check.h>
#include <dirent.h>
#include <fcntl.h>
#include <getopt.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "bench-util.h"
#include "bus-harness.h"
#include "bus-names.h"
#include "macro.h"
#include "testbed.h"

#define SET_PATH VRD_DEVSET_PATH_PREFIX "/bus_0000_04"

extern char **environ;

static struct harness h;
static size_t n = 2000, k = 4, rounds = 9;
static int status;

/* The environment of the children: this one without umockdev's preload,
 * which sleep(1) does not need. */
static char **child_environ(void) {
        size_t len = 0, j = 0;
        char **v;

        while (environ[len])
                len++;
        v = calloc(len + 1, sizeof(*v));
        ck_assert_ptr_nonnull(v);
        for (size_t i = 0; i < len; i++)
                if (strncmp(environ[i], "LD_PRELOAD=", 11) != 0)
                        v[j++] = environ[i];
        return v;
}

/* sleep 3600, with fd (when >= 0) as its fd 3; posix_spawn(3). */
static pid_t spawn_sleep(char **envp, int fd) {
        posix_spawn_file_actions_t fa;
        pid_t pid;

        ck_assert_int_eq(posix_spawn_file_actions_init(&fa), 0);
        if (fd >= 0)
                ck_assert_int_eq(posix_spawn_file_actions_adddup2(&fa, fd, 3), 0);
        ck_assert_int_eq(posix_spawn(&pid, "/bin/sleep", &fa, NULL, (char *[]) { "sleep", "3600", NULL }, envp), 0);
        posix_spawn_file_actions_destroy(&fa);
        return pid;
}

/* The floor: every /proc/PID/fd, each fd fstatat(2)'d (following the link to
 * the open file, as stat(2) of /proc/PID/fd/N does), matched by st_rdev.
 * Counts the processes and the matches. */
static void bare_walk(dev_t rdev, size_t *ret_procs, size_t *ret_matches) {
        DIR *proc = opendir("/proc");
        struct dirent *de;
        size_t procs = 0, matches = 0;

        *ret_procs = *ret_matches = 0;
        if (!proc)
                return;
        while ((de = readdir(proc))) {
                struct dirent *fe;
                char *end;
                int dfd;
                DIR *fds;

                if (strtol(de->d_name, &end, 10) <= 0 || *end)
                        continue;
                procs++;
                dfd = openat(dirfd(proc), de->d_name, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
                if (dfd < 0)
                        continue;
                fds = fdopendir(openat(dfd, "fd", O_RDONLY | O_DIRECTORY | O_CLOEXEC));
                close(dfd);
                if (!fds)
                        continue;
                while ((fe = readdir(fds))) {
                        struct stat st;

                        if (fe->d_name[0] != '.' && fstatat(dirfd(fds), fe->d_name, &st, 0) >= 0 &&
                            S_ISCHR(st.st_mode) && st.st_rdev == rdev)
                                matches++;
                }
                closedir(fds);
        }
        closedir(proc);
        *ret_procs = procs;
        *ret_matches = matches;
}

/* The walk in a child outside the preload: its time in microseconds. */
static uint64_t bare_walk_unwrapped(char **envp, dev_t rdev) {
        posix_spawn_file_actions_t fa;
        char arg[32], buf[128] = "";
        unsigned long long usec = 0;
        int p[2], st;
        pid_t pid;
        ssize_t l;

        ck_assert_int_eq(pipe2(p, O_CLOEXEC), 0);
        snprintf(arg, sizeof(arg), "%llu", (unsigned long long) rdev);
        ck_assert_int_eq(posix_spawn_file_actions_init(&fa), 0);
        ck_assert_int_eq(posix_spawn_file_actions_adddup2(&fa, p[1], STDOUT_FILENO), 0);
        ck_assert_int_eq(posix_spawn(&pid, "/proc/self/exe", &fa, NULL,
                                     (char *[]) { "holders-scale", "--walk", arg, NULL }, envp), 0);
        posix_spawn_file_actions_destroy(&fa);
        close(p[1]);
        l = read(p[0], buf, sizeof(buf) - 1);
        close(p[0]);
        ck_assert_int_eq(waitpid(pid, &st, 0), pid);
        ck_assert_msg(l > 0 && WIFEXITED(st) && WEXITSTATUS(st) == 0 && sscanf(buf, "%llu", &usec) == 1,
                      "the walk outside the preload failed");
        return usec;
}

/* Holders of bus_0000_04: how many entries. */
static size_t read_holders(void) {
        sd_bus_error e = SD_BUS_ERROR_NULL;
        sd_bus_message *reply = NULL;
        size_t count = 0;
        const char *address, *comm;
        uint32_t pid;
        int r;

        r = sd_bus_get_property(h.bus, VRD_BUS_NAME, SET_PATH, VRD_DEVSET_IFACE, "Holders", &e, &reply, "a(sus)");
        ck_assert_msg(r >= 0, "Holders: %s", e.message);
        ck_assert_int_ge(sd_bus_message_enter_container(reply, 'a', "(sus)"), 0);
        while ((r = sd_bus_message_read(reply, "(sus)", &address, &pid, &comm)) > 0)
                count++;
        ck_assert_int_ge(r, 0);
        sd_bus_message_unref(reply);
        return count;
}

START_TEST(bench) {
        uint64_t floor_usec[rounds], unwrapped_usec[rounds], holders_usec[rounds];
        UMockdevTestbed *tb = testbed_new("lab");
        g_autofree gchar *root = umockdev_testbed_get_root_dir(tb);
        char node[PATH_MAX], **envp = child_environ();
        pid_t *pids = calloc(n, sizeof(*pids));
        size_t procs = 0, matches = 0;
        struct stat full;
        int fd;

        ck_assert_ptr_nonnull(pids);
        ck_assert_int_eq(stat("/dev/full", &full), 0);
        snprintf(node, sizeof(node), "%s/dev/vfio/10", root);
        ck_assert_msg(unlink(node) == 0 && symlink("/dev/full", node) == 0, "cannot replace %s: %m", node);

        harness_start_bus(&h);
        h.daemon = getenv("VRD_FAKE_DAEMON");
        setenv("VRD_FAKE_KERNEL", "delay_ms=0", 1);
        harness_start_daemon(&h, (const char *const[]) { "--uevents=udev", NULL });

        fd = open("/dev/full", O_RDONLY | O_CLOEXEC);
        ck_assert_int_ge(fd, 0);
        for (size_t i = 0; i < n; i++)
                pids[i] = spawn_sleep(envp, i < k ? fd : -1);
        close(fd);
        /* every holder has exec'd with the node open */
        for (int i = 0; i < 500; i++, usleep(10000)) {
                bare_walk(full.st_rdev, &procs, &matches);
                if (matches >= k && read_holders() >= k)
                        break;
        }
        ck_assert_msg(matches >= k, "%zu of %zu holders seen by the walk", matches, k);
        ck_assert_uint_eq(read_holders(), matches);

        for (size_t r = 0; r < rounds; r++) {
                uint64_t t = monotonic_usec();

                bare_walk(full.st_rdev, &procs, &matches);
                floor_usec[r] = monotonic_usec() - t;
                unwrapped_usec[r] = bare_walk_unwrapped(envp, full.st_rdev);
                t = monotonic_usec();
                ck_assert_uint_eq(read_holders(), matches);
                holders_usec[r] = monotonic_usec() - t;
        }
        {
                uint64_t fl = bench_median(floor_usec, rounds), un = bench_median(unwrapped_usec, rounds);
                uint64_t ho = bench_median(holders_usec, rounds);

                printf("spawned=%zu holders=%zu processes=%zu rounds=%zu floor_ms=%.1f floor_unwrapped_ms=%.1f "
                       "holders_ms=%.1f ratio=%.2f ratio_unwrapped=%.2f us_per_process: floor=%.1f "
                       "floor_unwrapped=%.1f holders=%.1f\n", n, k, procs, rounds, fl / 1e3, un / 1e3, ho / 1e3,
                       (double) ho / (double) fl, (double) ho / (double) un, (double) fl / (double) procs,
                       (double) un / (double) procs, (double) ho / (double) procs);
        }
        for (size_t i = 0; i < n; i++) {
                kill(pids[i], SIGKILL);
                waitpid(pids[i], NULL, 0);
        }
        free(pids);
        free(envp);
        harness_stop(&h);
        g_object_unref(tb);
        status = 0;
}
END_TEST

int main(int argc, char *argv[]) {
        int c;

        if (argc == 3 && strcmp(argv[1], "--walk") == 0) {
                size_t procs, matches;
                uint64_t t = monotonic_usec();

                bare_walk((dev_t) strtoull(argv[2], NULL, 10), &procs, &matches);
                printf("%" PRIu64 " %zu %zu\n", monotonic_usec() - t, procs, matches);
                return procs > 0 ? 0 : 1;
        }

        while ((c = getopt(argc, argv, "n:k:r:")) >= 0)
                switch (c) {
                case 'n':
                        n = strtoul(optarg, NULL, 10);
                        break;
                case 'k':
                        k = strtoul(optarg, NULL, 10);
                        break;
                case 'r':
                        rounds = strtoul(optarg, NULL, 10);
                        break;
                default:
                        fprintf(stderr, "usage: %s [-n PROCESSES] [-k HOLDERS] [-r ROUNDS]\n", argv[0]);
                        return 2;
                }
        if (n == 0 || k == 0 || k > n || rounds == 0 || rounds > 1000 || !getenv("VRD_FAKE_DAEMON")) {
                fprintf(stderr, "%s: need 1 or more processes, 1 to that many holders, 1 to 1000 rounds, and "
                        "$VRD_FAKE_DAEMON\n", argv[0]);
                return 2;
        }
        status = 1;
        return bench_run("holders-scale", bench, &status);
}
