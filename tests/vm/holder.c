/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* holder: a program that holds one vfio-pci function the way QEMU or a DPDK
 * app does, and has never heard of vfio-resetd (no D-Bus): the VM tests'
 * stand-in for the holders a borrowed reset quiesces and borrows from.
 *
 * It opens the function's IOMMU group /dev/vfio/N and a container
 * /dev/vfio/vfio with VFIO_TYPE1_IOMMU, gets the device fd, maps BAR0, writes
 * the igb's TDBAL (BAR0 + 0x3800, cleared by any reset: see bar-peer.c) with
 * a pattern, then reads it every --interval-ms (10) and says so each time
 * what it reads changes. Its fds and mapping stay as they are whatever
 * happens to the device: after someone else's reset it reads the reset value
 * through the same mapping.
 *
 * Lines on stdout (line-buffered), each beginning with the address:
 *   ADDR ready pid=P group=N group_fd=G container_fd=C device_fd=D bar0_size=S
 *   ADDR wrote TDBAL 0x5a5a5a00 readback=0x5a5a5a00
 *   ADDR TDBAL 0x5a5a5a00 -> 0x00000000         (a change it read; not with --quiet)
 *   ADDR continued n=N                           (each SIGCONT: someone stopped it)
 *   ADDR status alive value=0xV loops=N changes=N conts=N max_gap_ms=M   (on SIGUSR1)
 *   ADDR rewrote TDBAL 0x5a5a5a00 readback=0xR   (on SIGUSR2: the mapping still writes)
 *   ADDR error WHAT: WHY                         (and exit status 1)
 *   ADDR peeked TDBAL 0xV                        (--peek: read once, wrote nothing, exited)
 * max_gap_ms is the longest time between two of its reads: a stopped holder
 * shows its stop there. A stop sent before it ran the handler of the last
 * SIGCONT discards that SIGCONT: back-to-back stops may count once.
 *
 * With --peek it is the next user of a function instead: it opens the same
 * way, reads the register once and exits, to show what a former user left.
 *
 * With --inherit it opens nothing: the device fd is the one vfio-resetctl hold
 * passed it ($VFIO_RESETD_DEVICE_FD_DDDD_BB_SS_F), and hold is the daemon's
 * peer for it (it stops and continues the holder for each reset).
 *
 * Usage: holder [--pattern V] [--reg OFFSET] [--interval-ms N] [--quiet] [--peek] [--inherit] ADDR
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <time.h>
#include <unistd.h>

#include "vfio-test.h"

static volatile sig_atomic_t want_status, want_rewrite, conts, stop;

static void on_signal(int sig)
{
        if (sig == SIGUSR1)
                want_status = 1;
        else if (sig == SIGUSR2)
                want_rewrite = 1;
        else if (sig == SIGCONT)
                conts++;
        else
                stop = 1;
}

static const char *addr = "?";

static void fail(const char *what, const char *why)
{
        printf("%s error %s: %s\n", addr, what, why);
        exit(1);
}

static void usage(void)
{
        fprintf(stderr, "usage: holder [--pattern V] [--reg OFFSET] [--interval-ms N] [--quiet] [--peek] [--inherit] ADDR\n");
        exit(2);
}

int main(int argc, char **argv)
{
        enum { O_PATTERN = 0x100, O_REG, O_INTERVAL, O_QUIET, O_PEEK, O_INHERIT };
        static const struct option options[] = {
                { "pattern", required_argument, NULL, O_PATTERN },
                { "reg", required_argument, NULL, O_REG },
                { "interval-ms", required_argument, NULL, O_INTERVAL },
                { "quiet", no_argument, NULL, O_QUIET },
                { "peek", no_argument, NULL, O_PEEK },
                { "inherit", no_argument, NULL, O_INHERIT },
                {}
        };
        static const int signals[] = { SIGUSR1, SIGUSR2, SIGCONT, SIGTERM, SIGINT };
        struct vfio_group_status status = { .argsz = sizeof(status) };
        uint32_t pattern = 0x5a5a5a00, reg = 0x3800, last, v;
        unsigned long loops = 0, changes = 0;
        unsigned interval_ms = 10;
        int group = -1, group_fd = -1, container_fd = -1, device_fd, c, seen_conts = 0;
        double prev_us, max_gap_us = 0;
        struct timespec tick;
        struct sigaction sa;
        struct vt_bar bar;
        bool quiet = false, peek = false, inherit = false;
        char path[64], why[256];

        while ((c = getopt_long(argc, argv, "", options, NULL)) >= 0)
                switch (c) {
                case O_PATTERN:
                        pattern = (uint32_t)strtoul(optarg, NULL, 0);
                        break;
                case O_REG:
                        reg = (uint32_t)strtoul(optarg, NULL, 0) & ~3u;
                        break;
                case O_INTERVAL:
                        interval_ms = (unsigned)strtoul(optarg, NULL, 0) ?: 1;
                        break;
                case O_QUIET:
                        quiet = true;
                        break;
                case O_PEEK:
                        peek = true;
                        break;
                case O_INHERIT:
                        inherit = true;
                        break;
                default:
                        usage();
                }
        if (optind + 1 != argc || !vt_valid_bdf(argv[optind]))
                usage();
        addr = argv[optind];
        setvbuf(stdout, NULL, _IOLBF, 0);

        memset(&sa, 0, sizeof(sa));
        sa.sa_handler = on_signal;
        sigemptyset(&sa.sa_mask);
        /* No SA_RESTART: a signal ends the sleep, and the loop answers it at once. */
        for (size_t i = 0; i < sizeof(signals) / sizeof(signals[0]); i++)
                sigaction(signals[i], &sa, NULL);

        if (inherit) {
                const char *v;

                /* hold's contract (vfio-resetctl(1)): VFIO_RESETD_DEVICE_FD_0000_04_00_0=N */
                snprintf(path, sizeof(path), "VFIO_RESETD_DEVICE_FD_%.4s_%.2s_%.2s_%.1s", addr, addr + 5, addr + 8,
                         addr + 11);
                v = getenv(path);
                if (!v)
                        fail(path, "not set: run it under vfio-resetctl hold");
                device_fd = atoi(v);
                goto map;
        }
        group = vt_group_of(addr);
        if (group < 0)
                fail("iommu_group", strerror(-group));
        snprintf(path, sizeof(path), "/dev/vfio/%d", group);
        /* A group opens once at a time (EBUSY for the next opener): holding it
         * is what keeps everyone else, the daemon included, from resetting the set. */
        group_fd = open(path, O_RDWR | O_CLOEXEC);
        if (group_fd < 0)
                fail(path, strerror(errno));
        /* vfio.h: a group is usable only when viable (every member bound to vfio-pci or nothing). */
        if (ioctl(group_fd, VFIO_GROUP_GET_STATUS, &status) < 0 || !(status.flags & VFIO_GROUP_FLAGS_VIABLE))
                fail("VFIO_GROUP_GET_STATUS", "the group is not viable");
        container_fd = open("/dev/vfio/vfio", O_RDWR | O_CLOEXEC);
        if (container_fd < 0)
                fail("/dev/vfio/vfio", strerror(errno));
        /* vfio.h: VFIO_SET_IOMMU needs a group in the container first. */
        if (ioctl(group_fd, VFIO_GROUP_SET_CONTAINER, &container_fd) < 0)
                fail("VFIO_GROUP_SET_CONTAINER", strerror(errno));
        if (ioctl(container_fd, VFIO_SET_IOMMU, VFIO_TYPE1_IOMMU) < 0)
                fail("VFIO_SET_IOMMU", strerror(errno));
        /* vfio.h: device fds are handed out only once the container has an IOMMU model. */
        device_fd = ioctl(group_fd, VFIO_GROUP_GET_DEVICE_FD, addr);
        if (device_fd < 0)
                fail("VFIO_GROUP_GET_DEVICE_FD", strerror(errno));
map:
        if (vt_map_bar0(device_fd, reg + 4, &bar, why, sizeof(why)) < 0)
                fail("bar0", why);
        printf("%s ready pid=%d group=%d group_fd=%d container_fd=%d device_fd=%d bar0_size=%zu\n", addr,
               (int)getpid(), group, group_fd, container_fd, device_fd, bar.size);
        if (peek) {
                printf("%s peeked TDBAL 0x%08x\n", addr, bar.p[reg / 4]);
                return 0;
        }
        bar.p[reg / 4] = pattern;
        last = bar.p[reg / 4];
        printf("%s wrote TDBAL 0x%08x readback=0x%08x\n", addr, pattern, last);

        tick = (struct timespec){ .tv_sec = interval_ms / 1000, .tv_nsec = (long)(interval_ms % 1000) * 1000000 };
        prev_us = vt_now_us();
        while (!stop) {
                double t;

                /* A read of a BAR the kernel zapped for a reset faults and waits
                 * for the reset to end (vfio_pci_mmap_fault), then reads anew. */
                v = bar.p[reg / 4];
                loops++;
                t = vt_now_us();
                if (t - prev_us > max_gap_us)
                        max_gap_us = t - prev_us;
                prev_us = t;
                if (v != last) {
                        changes++;
                        if (!quiet)
                                printf("%s TDBAL 0x%08x -> 0x%08x\n", addr, last, v);
                        last = v;
                }
                while (seen_conts < conts)
                        printf("%s continued n=%d\n", addr, ++seen_conts);
                if (want_status) {
                        want_status = 0;
                        printf("%s status alive value=0x%08x loops=%lu changes=%lu conts=%d max_gap_ms=%.0f\n", addr, v,
                               loops, changes, (int)conts, max_gap_us / 1000);
                }
                if (want_rewrite) {
                        want_rewrite = 0;
                        bar.p[reg / 4] = pattern;
                        last = bar.p[reg / 4];
                        printf("%s rewrote TDBAL 0x%08x readback=0x%08x\n", addr, pattern, last);
                }
                nanosleep(&tick, NULL);
        }
        munmap((void *)bar.p, bar.size);
        close(device_fd);
        if (!inherit) {
                close(container_fd);
                close(group_fd);
        }
        return 0;
}
