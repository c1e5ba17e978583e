/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <stdarg.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "kernel-fake.h"
#include "macro.h"

static struct {
        pthread_mutex_t lock;
        unsigned delay_ms;
        int fail;
        unsigned stall_ms;
        char lose[PCI_ADDRESS_STRLEN];
        char busy[128];
        char log[256];
        char begin_log[256];            /* a line per reset as it begins */
        char open_log[256];             /* a line per group and device open */
} fake = { .lock = PTHREAD_MUTEX_INITIALIZER, .delay_ms = 20 };

static int errno_from_name(const char *n) {
        static const struct { const char *name; int e; } t[] = {
                { "EIO", EIO }, { "EBUSY", EBUSY }, { "EINVAL", EINVAL }, { "ENODEV", ENODEV },
                { "ENOTTY", ENOTTY }, { "EPERM", EPERM }, { "EAGAIN", EAGAIN },
        };

        for (size_t i = 0; i < ELEMENTSOF(t); i++)
                if (strcmp(n, t[i].name) == 0)
                        return t[i].e;
        return atoi(n);
}

int kernel_fake_configure(const char *spec) {
        _cleanup_free_ char *copy = strdup(spec ?: "");
        char *save = NULL;

        if (!copy)
                return -ENOMEM;
        pthread_mutex_lock(&fake.lock);
        fake.delay_ms = 20, fake.fail = 0, fake.stall_ms = 0, fake.lose[0] = '\0', fake.busy[0] = '\0';
        fake.begin_log[0] = '\0';
        for (char *kv = strtok_r(copy, ",\n", &save); kv; kv = strtok_r(NULL, ",\n", &save)) {
                char *v = strchr(kv, '=');

                if (!v)
                        continue;
                *v++ = '\0';
                if (strcmp(kv, "delay_ms") == 0)
                        fake.delay_ms = (unsigned) atoi(v);
                else if (strcmp(kv, "fail") == 0)
                        fake.fail = errno_from_name(v);
                else if (strcmp(kv, "stall_ms") == 0)
                        fake.stall_ms = (unsigned) atoi(v);
                else if (strcmp(kv, "lose") == 0)
                        snprintf(fake.lose, sizeof(fake.lose), "%s", v);
                else if (strcmp(kv, "busy") == 0)
                        snprintf(fake.busy, sizeof(fake.busy), "+%s+", v);
                else if (strcmp(kv, "log") == 0)
                        snprintf(fake.log, sizeof(fake.log), "%s", v);
                else if (strcmp(kv, "begin_log") == 0)
                        snprintf(fake.begin_log, sizeof(fake.begin_log), "%s", v);
                else if (strcmp(kv, "open_log") == 0)
                        snprintf(fake.open_log, sizeof(fake.open_log), "%s", v);
        }
        pthread_mutex_unlock(&fake.lock);
        return 0;
}

static void reload(void) {
        const char *path = getenv("VRD_FAKE_KERNEL_FILE");
        char buf[512] = "";
        FILE *f;

        if (!path || !(f = fopen(path, "re")))
                return;
        if (!fgets(buf, sizeof(buf), f))
                buf[0] = '\0';
        fclose(f);
        (void) kernel_fake_configure(buf);
}

/* Appends a line to one of the double's logs (the path copied under the lock). */
static void append_line(const char *which, const char *fmt, ...) _printf_(2, 3);
static void append_line(const char *which, const char *fmt, ...) {
        char path[256];
        va_list ap;
        FILE *f;

        pthread_mutex_lock(&fake.lock);
        snprintf(path, sizeof(path), "%s", which);
        pthread_mutex_unlock(&fake.lock);
        if (!*path || !(f = fopen(path, "ae")))
                return;
        va_start(ap, fmt);
        vfprintf(f, fmt, ap);
        va_end(ap);
        fputc('\n', f);
        fclose(f);
}

/* The double's memfds are named "vfio-fake-WHAT@WORLD", WORLD the umockdev
 * testbed's folder: tests that run side by side each see their own kernel. */
static void fake_name(char *buf, size_t size, const char *what) {
        const char *dir = getenv("UMOCKDEV_DIR"), *slash = dir ? strrchr(dir, '/') : NULL;

        snprintf(buf, size, "vfio-fake-%s%s%s", what, dir ? "@" : "", slash ? slash + 1 : dir ?: "");
}

/* How many open files (not fds: dups count once) of the memfd named name any
 * process of this world holds: the kernel's count of a group's or a device's
 * openers, where another process (the fd store) may hold them. */
static unsigned open_files(const char *name) {
        char want[300];
        ino_t seen[64];
        unsigned n = 0;
        struct dirent *pe;
        DIR *proc = opendir("/proc");

        snprintf(want, sizeof(want), "/memfd:%s (deleted)", name);
        while (proc && (pe = readdir(proc))) {
                char dir[sizeof("/proc//fd") + sizeof(pe->d_name)];
                struct dirent *fe;
                DIR *fds;

                if (pe->d_name[0] < '0' || pe->d_name[0] > '9')
                        continue;
                snprintf(dir, sizeof(dir), "/proc/%s/fd", pe->d_name);
                fds = opendir(dir);
                while (fds && (fe = readdir(fds))) {
                        char path[sizeof(dir) + 256], target[sizeof(want)];
                        struct stat st;
                        bool dup = false;
                        ssize_t k;

                        snprintf(path, sizeof(path), "%s/%s", dir, fe->d_name);
                        k = readlink(path, target, sizeof(target) - 1);
                        if (k <= 0)
                                continue;
                        target[k] = '\0';
                        if (strcmp(target, want) != 0 || stat(path, &st) < 0)
                                continue;
                        for (unsigned i = 0; i < n && i < ELEMENTSOF(seen); i++)
                                dup = dup || seen[i] == st.st_ino;
                        if (!dup && n < ELEMENTSOF(seen))
                                seen[n++] = st.st_ino;
                }
                if (fds)
                        closedir(fds);
        }
        if (proc)
                closedir(proc);
        return n;
}

static int fake_group_open(void *data, int group, int *ret_group_fd, int *ret_container_fd) {
        char key[16], what[32], name[300];
        bool busy;

        reload();
        snprintf(key, sizeof(key), "+%d+", group);
        pthread_mutex_lock(&fake.lock);
        busy = strstr(fake.busy, key) != NULL;
        pthread_mutex_unlock(&fake.lock);
        snprintf(what, sizeof(what), "group-%d", group);
        fake_name(name, sizeof(name), what);
        /* As the kernel: one open file of a group at a time, whoever holds it. */
        busy = busy || open_files(name) > 0;
        append_line(fake.open_log, "group-open %d result=%d", group, busy ? -EBUSY : 0);
        if (busy)
                return -EBUSY;
        /* A memfd named after the group: any dup of it says which group it is. */
        *ret_group_fd = memfd_create(name, MFD_CLOEXEC);
        *ret_container_fd = eventfd(0, EFD_CLOEXEC);
        return *ret_group_fd < 0 ? -errno : 0;
}

static int fd_target(int fd, char *buf, size_t size) {
        char path[64];
        ssize_t n;

        snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);
        n = readlink(path, buf, size - 1);
        if (n < 0)
                return -errno;
        buf[n] = '\0';
        return 0;
}

/* Which group a group fd is: one the double opened, or a /dev/vfio/N node
 * that a holder in the tests opened and the daemon borrowed: as the kernel,
 * by the char device it is (umockdev's nodes are ptys with the node's
 * device number). */
static int group_of(int fd) {
        char target[512], *p;
        struct stat st, node;
        struct dirent *de;
        DIR *d;

        if (fd_target(fd, target, sizeof(target)) < 0)
                return -EBADF;
        if ((p = strstr(target, "vfio-fake-group-")))
                return atoi(p + 16);
        if (fstat(fd, &st) < 0 || !S_ISCHR(st.st_mode))
                return -EBADF;
        /* Only the nodes there are: umockdev leaks two fds for every open of one that is not. */
        d = opendir("/dev/vfio");
        while (d && (de = readdir(d))) {
                char path[300];
                int nfd;
                bool same;

                if (de->d_name[0] < '0' || de->d_name[0] > '9')
                        continue;
                /* fstat of an O_PATH fd, as the daemon looks: umockdev's stat() tells its record's numbers */
                snprintf(path, sizeof(path), "/dev/vfio/%s", de->d_name);
                nfd = open(path, O_PATH | O_CLOEXEC);
                if (nfd < 0)
                        continue;
                same = fstat(nfd, &node) >= 0 && S_ISCHR(node.st_mode) && node.st_rdev == st.st_rdev;
                close(nfd);
                if (same) {
                        int g = atoi(de->d_name);

                        closedir(d);
                        return g;
                }
        }
        if (d)
                closedir(d);
        return -EBADF;
}

/* As the real check (kernel-vfio.c): the group fd must be that group (the
 * double's memfd of it, or its node), the container one of the double's
 * (an eventfd). */
static int fake_group_check(void *data, int group, int group_fd, int container_fd, char *why, size_t why_size) {
        char target[512] = "?", ctarget[512] = "?";

        (void) fd_target(group_fd, target, sizeof(target));
        if (group_of(group_fd) != group) {
                snprintf(why, why_size, "the group fd is %s, not IOMMU group %d", target, group);
                return -EBADF;
        }
        (void) fd_target(container_fd, ctarget, sizeof(ctarget));
        if (strcmp(ctarget, "anon_inode:[eventfd]") != 0) {
                snprintf(why, why_size, "the container fd is %s, not a VFIO container", ctarget);
                return -EBADF;
        }
        return 0;
}

static int sysfs_read(const struct pci_address *a, const char *attr, char *buf, size_t size) {
        char path[128], name[PCI_ADDRESS_STRLEN];
        FILE *f;

        snprintf(path, sizeof(path), "/sys/bus/pci/devices/%s/%s", pci_address_format(a, name), attr);
        f = fopen(path, "re");
        if (!f)
                return -errno;
        if (!fgets(buf, (int) size, f))
                buf[0] = '\0';
        fclose(f);
        buf[strcspn(buf, "\n")] = '\0';
        return 0;
}

static int fake_device_open(void *data, int group_fd, const struct pci_address *a, int *ret_device_fd,
                            bool *ret_can_reset) {
        char methods[128] = "", name[300], address[PCI_ADDRESS_STRLEN], link[256], path[128], *slash;
        ssize_t n;
        int fd;

        reload();
        /* As the kernel: a group gives out only its own devices. */
        snprintf(path, sizeof(path), "/sys/bus/pci/devices/%s/iommu_group", pci_address_format(a, address));
        n = readlink(path, link, sizeof(link) - 1);
        if (n < 0)
                return -errno;
        link[n] = '\0';
        slash = strrchr(link, '/');
        if (!slash || group_of(group_fd) != atoi(slash + 1))
                return -EINVAL;

        /* A memfd named after the device: any dup of it says which device it is.
         * The kernel resets a function on its first open (vfio_pci_core_enable):
         * the log says whether this one is. */
        fake_name(name, sizeof(name), pci_address_format(a, address));
        append_line(fake.open_log, "device-open %s first=%d", address, open_files(name) == 0);
        fd = memfd_create(name, MFD_CLOEXEC);
        if (fd < 0)
                return -errno;
        /* VFIO_DEVICE_FLAGS_RESET: the kernel has a function reset for it */
        *ret_can_reset = sysfs_read(a, "reset_method", methods, sizeof(methods)) >= 0 && methods[0];
        *ret_device_fd = fd;
        return 0;
}

static int address_of(int fd, char ret[static PCI_ADDRESS_STRLEN]) {
        char path[64], target[256], *p;
        ssize_t n;

        snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);
        n = readlink(path, target, sizeof(target) - 1);
        if (n < 0)
                return -errno;
        target[n] = '\0';
        p = strstr(target, "vfio-fake-");
        if (!p)
                return -EBADF;
        snprintf(ret, PCI_ADDRESS_STRLEN, "%.*s", (int) strcspn(p + 10, " @"), p + 10);
        return 0;
}

/* The common part of both resets: take a while, then the configured outcome. */
static int reset_outcome(void) {
        unsigned delay, stall;
        int fail;

        pthread_mutex_lock(&fake.lock);
        delay = fake.delay_ms, stall = fake.stall_ms, fail = fake.fail;
        pthread_mutex_unlock(&fake.lock);
        usleep((useconds_t) (stall ?: delay) * 1000);
        return fail ? -fail : 0;
}

static int fake_low_power_exit(void *data, int device_fd) {
        char a[PCI_ADDRESS_STRLEN];

        return address_of(device_fd, a);
}

/* Either reset: find the device, take the configured time and outcome, log it
 * with when it began and ended (CLOCK_MONOTONIC). */
static int fake_reset(int device_fd, const int *group_fds, size_t n_group_fds, bool hot) {
        char a[PCI_ADDRESS_STRLEN], ids[128] = "";
        uint64_t start, end;
        int r;

        reload();
        r = address_of(device_fd, a);
        if (r < 0)
                return r;
        if (hot && n_group_fds == 0)
                return -EINVAL;         /* as the kernel: a hot reset needs the groups */
        for (size_t i = 0; i < n_group_fds; i++) {
                int g = group_of(group_fds[i]);

                if (g < 0)
                        return -EINVAL; /* as the kernel: a non-group fd */
                snprintf(ids + strlen(ids), sizeof(ids) - strlen(ids), "%s%d", i ? "+" : "", g);
        }
        start = monotonic_usec();
        append_line(fake.begin_log, "%s %s", hot ? "hot-reset" : "function-reset", a);
        r = reset_outcome();
        end = monotonic_usec();
        if (hot)
                append_line(fake.log, "hot-reset %s groups=%zu group_ids=%s result=%d start_usec=%" PRIu64 " end_usec=%" PRIu64,
                         a, n_group_fds, ids, r, start, end);
        else
                append_line(fake.log, "function-reset %s result=%d start_usec=%" PRIu64 " end_usec=%" PRIu64, a, r, start,
                         end);
        return r;
}

static int fake_hot_reset(void *data, int device_fd, const int *group_fds, size_t n_group_fds) {
        return fake_reset(device_fd, group_fds, n_group_fds, true);
}

static int fake_function_reset(void *data, int device_fd) {
        return fake_reset(device_fd, NULL, 0, false);
}

static int fake_read_ids(void *data, int device_fd, uint16_t *ret_vendor, uint16_t *ret_device) {
        char a[PCI_ADDRESS_STRLEN], v[32] = "", d[32] = "";
        struct pci_address pa;
        bool lost;
        int r;

        r = address_of(device_fd, a);
        if (r < 0)
                return r;
        pthread_mutex_lock(&fake.lock);
        lost = *fake.lose && strcmp(fake.lose, a) == 0;
        pthread_mutex_unlock(&fake.lock);
        if (lost) {             /* fell off the bus: config space reads all-ones */
                *ret_vendor = *ret_device = 0xffff;
                return 0;
        }
        if (pci_address_parse(a, &pa, NULL, 0) < 0 || sysfs_read(&pa, "vendor", v, sizeof(v)) < 0 ||
            sysfs_read(&pa, "device", d, sizeof(d)) < 0)
                return -ENODEV;
        *ret_vendor = (uint16_t) strtoul(v, NULL, 16);
        *ret_device = (uint16_t) strtoul(d, NULL, 16);
        return 0;
}

static const struct kernel_ops ops = {
        .name = "fake",
        .group_open = fake_group_open,
        .device_open = fake_device_open,
        .group_check = fake_group_check,
        .low_power_exit = fake_low_power_exit,
        .hot_reset = fake_hot_reset,
        .function_reset = fake_function_reset,
        .read_ids = fake_read_ids,
};

const struct kernel_ops *kernel_fake_ops(void) {
        return &ops;
}
