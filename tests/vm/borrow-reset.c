/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* borrow-reset: the kernel mechanism of a borrowed reset, raw, without the
 * daemon. Programs that never heard of vfio-resetd (tests/vm/holder.c, QEMU,
 * DPDK) each hold part of a dev_set; this program, as root with
 * CAP_SYS_PTRACE, resets the set on their behalf:
 *   1. SIGSTOP every holder (through a pidfd) and wait until each is stopped;
 *   2. find each holder's group fd (the entry of /proc/PID/fd whose st_rdev is
 *      /dev/vfio/N's) and duplicate it with pidfd_getfd(2);
 *   3. VFIO_GROUP_GET_DEVICE_FD on each borrowed group fd: a device fd of our
 *      own for each function, so that we know which function each fd is;
 *   4. VFIO_DEVICE_GET_PCI_HOT_RESET_INFO, then VFIO_DEVICE_PCI_HOT_RESET
 *      with the borrowed group fds;
 *   5. read vendor and device IDs back through each new device fd's config
 *      region and compare them with sysfs;
 *   6. close everything borrowed, SIGCONT every holder.
 * It is what the VM scenario borrow-raw.sh proves the kernel allows, and the
 * floor bench/vm-borrow.sh compares the daemon's borrowed reset with.
 *
 * Usage: borrow-reset [-n N] [--no-reset] PID=ADDR...
 *   PID=ADDR  a holder and the function whose group it holds
 *   -n        runs (default 1), each the whole cycle above
 *   --no-reset  everything but step 4: the holders' registers must not change
 * Lines (guest CLOCK_MONOTONIC, microseconds):
 *   borrowed PID ADDR group=N holder_fd=F fd=B           (first run)
 *   device-fd ADDR fd=D | device-fd ADDR error=ENAME (message)
 *   set ADDR,ADDR groups=N,N
 *   hot-reset ok ioctl_us=T | hot-reset error=ENAME (message)
 *   ids ADDR config=VVVV:DDDD sysfs=VVVV:DDDD match=yes|no
 *   run I ok|failed total_us=T stop_us=T borrow_us=T ioctl_us=T after_us=T
 *   summary n=N ok=K total_min_us=T total_median_us=T ioctl_min_us=T ioctl_median_us=T
 *           stop_median_us=T borrow_median_us=T after_median_us=T
 * total: from the first SIGSTOP to the last SIGCONT; stop: until every holder
 * was stopped; borrow: finding and duplicating the group fds and getting the
 * device fds; ioctl: the hot reset; after: the ID read-back and the closes.
 * Exit status 0 when every run succeeded and every ID matched.
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/pidfd.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "vfio-test.h"

#define MAX_HOLDERS 8

struct holder {
        pid_t pid;
        const char *addr;
        int pidfd;
        int group;
        dev_t rdev;             /* /dev/vfio/GROUP */
        int holder_fd;          /* its group fd's number in the holder */
        int group_fd;           /* our duplicate */
        int device_fd;          /* ours, from the duplicate */
};

static struct holder holders[MAX_HOLDERS];
static size_t n_holders;
static bool verbose = true;     /* the first run says what it did */

/* The process state letter of /proc/PID/stat ('T': stopped); 0 when gone. */
static char proc_state(pid_t pid)
{
        char path[64], buf[512], *p;
        ssize_t n;
        int fd;

        snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
        fd = open(path, O_RDONLY | O_CLOEXEC);
        if (fd < 0)
                return 0;
        n = read(fd, buf, sizeof(buf) - 1);
        close(fd);
        if (n <= 0)
                return 0;
        buf[n] = '\0';
        p = strrchr(buf, ')');
        return p && p[1] == ' ' ? p[2] : 0;
}

static int wait_stopped(void)
{
        const struct timespec nap = { .tv_nsec = 100000 };

        for (int tries = 0; tries < 50000; tries++) {
                size_t stopped = 0;

                for (size_t i = 0; i < n_holders; i++) {
                        char s = proc_state(holders[i].pid);
                        if (s == 0)
                                return -ESRCH;
                        stopped += s == 'T' || s == 't';
                }
                if (stopped == n_holders)
                        return 0;
                nanosleep(&nap, NULL);
        }
        return -ETIMEDOUT;
}

static void signal_all(int sig)
{
        for (size_t i = 0; i < n_holders; i++)
                if (pidfd_send_signal(holders[i].pidfd, sig, NULL, 0) < 0)
                        printf("signal %d pid %d: %s\n", sig, (int)holders[i].pid, strerror(errno));
}

/* The number of the holder's fd on /dev/vfio/GROUP, or -errno. Reading
 * /proc/PID/fd needs ptrace read access (PTRACE_MODE_READ_FSCREDS). */
static int find_group_fd(const struct holder *h)
{
        char path[64];
        struct dirent *e;
        int found = -ENOENT;
        DIR *d;

        snprintf(path, sizeof(path), "/proc/%d/fd", (int)h->pid);
        d = opendir(path);
        if (!d)
                return -errno;
        while ((e = readdir(d))) {
                struct stat st;

                if (e->d_name[0] == '.')
                        continue;
                if (fstatat(dirfd(d), e->d_name, &st, 0) < 0)
                        continue;
                if (S_ISCHR(st.st_mode) && st.st_rdev == h->rdev) {
                        found = atoi(e->d_name);
                        break;
                }
        }
        closedir(d);
        return found;
}

static void give_back(void)
{
        for (size_t i = 0; i < n_holders; i++) {
                if (holders[i].device_fd >= 0)
                        close(holders[i].device_fd);
                if (holders[i].group_fd >= 0)
                        close(holders[i].group_fd);
                holders[i].device_fd = holders[i].group_fd = -1;
        }
}

static int borrow(void)
{
        for (size_t i = 0; i < n_holders; i++) {
                struct holder *h = &holders[i];
                int fd = find_group_fd(h);

                if (fd < 0) {
                        printf("borrowed %d %s error=%s (no fd on /dev/vfio/%d in /proc/%d/fd)\n", (int)h->pid,
                               h->addr, vt_errname(-fd), h->group, (int)h->pid);
                        return -1;
                }
                h->holder_fd = fd;
                /* pidfd_getfd(2): needs PTRACE_MODE_ATTACH_REALCREDS over the
                 * holder (CAP_SYS_PTRACE here; Yama may ask for it too); the new
                 * fd refers to the holder's own open file of the group. */
                h->group_fd = pidfd_getfd(h->pidfd, fd, 0);
                if (h->group_fd < 0) {
                        printf("borrowed %d %s error=%s (pidfd_getfd of fd %d: %m)\n", (int)h->pid, h->addr,
                               vt_errname(errno), fd);
                        return -1;
                }
                if (verbose)
                        printf("borrowed %d %s group=%d holder_fd=%d fd=%d\n", (int)h->pid, h->addr, h->group, fd,
                               h->group_fd);
                /* drivers/vfio/vfio_main.c (6.1), vfio_device_open(): a device fd
                 * needs the group in a container with an IOMMU model (the
                 * holder's), and every open only adds to device->open_count: the
                 * first open calls the driver's open_device, the last close its
                 * close_device (vfio-pci disables and resets the device then). So
                 * a second fd is allowed, and closing ours leaves the holder's be. */
                h->device_fd = ioctl(h->group_fd, VFIO_GROUP_GET_DEVICE_FD, h->addr);
                if (h->device_fd < 0) {
                        printf("device-fd %s error=%s (%m)\n", h->addr, vt_errname(errno));
                        return -1;
                }
                if (verbose)
                        printf("device-fd %s fd=%d\n", h->addr, h->device_fd);
        }
        return 0;
}

static int hot_reset(double *ioctl_us)
{
        struct vfio_pci_hot_reset_info *info = NULL;
        struct vfio_pci_hot_reset *reset;
        int ids[MAX_HOLDERS], r;
        size_t n_ids, size;
        double t0;

        r = vt_hot_reset_info(holders[0].device_fd, &info);
        if (r < 0) {
                printf("hot-reset error=%s (VFIO_DEVICE_GET_PCI_HOT_RESET_INFO)\n", vt_errname(-r));
                return -1;
        }
        n_ids = vt_set_groups(info, ids, MAX_HOLDERS);
        if (verbose) {
                printf("set ");
                for (size_t i = 0; i < info->count; i++) {
                        char dep[16];
                        vt_format_dep(&info->devices[i], dep, sizeof(dep));
                        printf("%s%s", i ? "," : "", dep);
                }
                printf(" groups=");
                for (size_t i = 0; i < n_ids; i++)
                        printf("%s%d", i ? "," : "", ids[i]);
                printf("\n");
        }
        free(info);
        size = sizeof(*reset) + n_ids * sizeof(reset->group_fds[0]);
        reset = calloc(1, size);
        if (!reset)
                abort();
        reset->argsz = size;
        reset->count = n_ids;
        for (size_t i = 0; i < n_ids; i++) {
                size_t j = 0;
                while (j < n_holders && holders[j].group != ids[i])
                        j++;
                if (j == n_holders) {
                        printf("hot-reset error=ENOENT (no holder of group %d was named)\n", ids[i]);
                        free(reset);
                        return -1;
                }
                reset->group_fds[i] = holders[j].group_fd;
        }
        /* drivers/vfio/pci/vfio_pci_core.c, vfio_pci_dev_set_hot_reset(): every
         * device of the dev_set must be in one of the groups passed
         * (vfio_dev_in_groups, else EINVAL); the kernel looks at the group
         * files, not at who opened them. It zaps every member's BAR mappings
         * for the reset: the holders' next access faults them back in. */
        t0 = vt_now_us();
        r = ioctl(holders[0].device_fd, VFIO_DEVICE_PCI_HOT_RESET, reset);
        *ioctl_us = vt_now_us() - t0;
        free(reset);
        if (r < 0) {
                printf("hot-reset error=%s (%m)\n", vt_errname(errno));
                return -1;
        }
        if (verbose)
                printf("hot-reset ok ioctl_us=%.0f\n", *ioctl_us);
        return 0;
}

static unsigned sysfs_hex(const char *addr, const char *what)
{
        char path[128];
        unsigned v = 0;
        FILE *f;

        snprintf(path, sizeof(path), "/sys/bus/pci/devices/%s/%s", addr, what);
        f = fopen(path, "re");
        if (f) {
                if (fscanf(f, "%x", &v) != 1)
                        v = 0;
                fclose(f);
        }
        return v;
}

/* The IDs through each borrowed device fd's config region, against sysfs. */
static int read_back(void)
{
        int bad = 0;

        for (size_t i = 0; i < n_holders; i++) {
                const struct holder *h = &holders[i];
                uint16_t ids[2] = { 0, 0 };
                unsigned sv = sysfs_hex(h->addr, "vendor"), sd = sysfs_hex(h->addr, "device");
                bool match;

                if (vt_config_read(h->device_fd, PCI_VENDOR_ID, ids, sizeof(ids)) < 0)
                        ids[0] = ids[1] = 0xffff;
                match = ids[0] == sv && ids[1] == sd;
                bad |= !match;
                if (verbose || !match)
                        printf("ids %s config=%04x:%04x sysfs=%04x:%04x match=%s\n", h->addr, ids[0], ids[1], sv, sd,
                               match ? "yes" : "no");
        }
        return bad ? -1 : 0;
}

static void usage(void)
{
        fprintf(stderr, "usage: borrow-reset [-n N] [--no-reset] PID=ADDR...\n");
        exit(2);
}

int main(int argc, char **argv)
{
        double *total, *stop, *borrow_t, *ioctl_t, *after;
        bool no_reset = false;
        int n = 1, ok = 0;

        for (int i = 1; i < argc; i++) {
                char *eq = strchr(argv[i], '=');

                if (!strcmp(argv[i], "-n") && i + 1 < argc) {
                        n = atoi(argv[++i]);
                        if (n < 1)
                                usage();
                } else if (!strcmp(argv[i], "--no-reset")) {
                        no_reset = true;
                } else if (eq && vt_valid_bdf(eq + 1) && n_holders < MAX_HOLDERS) {
                        holders[n_holders++] = (struct holder){ .pid = atoi(argv[i]), .addr = eq + 1,
                                                                .group_fd = -1, .device_fd = -1 };
                } else {
                        fprintf(stderr, "borrow-reset: bad argument '%s'\n", argv[i]);
                        usage();
                }
        }
        if (n_holders == 0)
                usage();
        setvbuf(stdout, NULL, _IOLBF, 0);
        for (size_t i = 0; i < n_holders; i++) {
                struct holder *h = &holders[i];
                char path[32];
                struct stat st;

                /* A pidfd pins the process seen here: no signal goes to a reused pid. */
                h->pidfd = pidfd_open(h->pid, 0);
                if (h->pidfd < 0) {
                        printf("pidfd_open %d: %m\n", (int)h->pid);
                        return 1;
                }
                h->group = vt_group_of(h->addr);
                snprintf(path, sizeof(path), "/dev/vfio/%d", h->group);
                if (h->group < 0 || stat(path, &st) < 0) {
                        printf("%s: no IOMMU group (%s)\n", h->addr, path);
                        return 1;
                }
                h->rdev = st.st_rdev;
        }

        total = calloc(n, sizeof(double));
        stop = calloc(n, sizeof(double));
        borrow_t = calloc(n, sizeof(double));
        ioctl_t = calloc(n, sizeof(double));
        after = calloc(n, sizeof(double));
        if (!total || !stop || !borrow_t || !ioctl_t || !after)
                abort();
        for (int run = 0; run < n; run++) {
                double t0, t1, t2, t3, t4, t5, io = 0;
                bool good;
                int r;

                t0 = vt_now_us();
                signal_all(SIGSTOP);
                r = wait_stopped();
                t1 = vt_now_us();
                if (r < 0)
                        printf("stop error=%s\n", vt_errname(-r));
                good = r == 0 && borrow() == 0;
                t2 = vt_now_us();
                good = good && (no_reset || hot_reset(&io) == 0);
                t3 = vt_now_us();
                good = good && read_back() == 0;
                give_back();
                t4 = vt_now_us();
                signal_all(SIGCONT);
                t5 = vt_now_us();
                printf("run %d %s total_us=%.0f stop_us=%.0f borrow_us=%.0f ioctl_us=%.0f after_us=%.0f\n", run + 1,
                       good ? "ok" : "failed", t5 - t0, t1 - t0, t2 - t1, io, t4 - t3);
                if (good) {
                        total[ok] = t5 - t0;
                        stop[ok] = t1 - t0;
                        borrow_t[ok] = t2 - t1;
                        ioctl_t[ok] = io;
                        after[ok++] = t4 - t3;
                }
                verbose = false;
        }
        if (ok > 0) {
                double tmed = vt_median(total, ok), imed = vt_median(ioctl_t, ok);
                printf("summary n=%d ok=%d total_min_us=%.0f total_median_us=%.0f ioctl_min_us=%.0f "
                       "ioctl_median_us=%.0f stop_median_us=%.0f borrow_median_us=%.0f after_median_us=%.0f\n",
                       n, ok, total[0], tmed, ioctl_t[0], imed, vt_median(stop, ok), vt_median(borrow_t, ok),
                       vt_median(after, ok));
        } else
                printf("summary n=%d ok=0\n", n);
        return ok == n ? 0 : 1;
}
