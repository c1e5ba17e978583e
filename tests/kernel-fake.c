/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
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
        /* cdev model */
        bool iommufd;                   /* /dev/iommu exists */
        char bind_fail[128];            /* "+ADDR+": VFIO_DEVICE_BIND_IOMMUFD fails EINVAL (bound elsewhere) */
        char not_owned[128];            /* "+ADDR+": hot-reset info says NOT_OWNED (another context's) */
        char attach_fail[128];          /* "+ADDR+": VFIO_DEVICE_ATTACH_IOMMUFD_PT fails EINVAL */
        bool ioas_fail;                 /* IOMMU_IOAS_ALLOC fails ENOMEM */
        unsigned n_contexts;            /* this process's contexts, numbered */
        /* The double's iommufd state: each bound device's id and IOAS, the
         * IOAS that exist. The kernel's outlives the daemon process, so this
         * lives in $VRD_FAKE_KERNEL_FILE.iommufd when that is set (st_lock). */
        struct fake_iommufd {
                struct fake_bound {
                        char address[PCI_ADDRESS_STRLEN];
                        uint32_t devid;
                        uint32_t ioas;
                } bound[64];
                size_t n_bound;
                struct fake_ioas {
                        uint32_t id;
                } ioas[128];
                size_t n_ioas;
                uint32_t next_id;       /* object ids in every context, from 1 (iommufd's XA_FLAGS_ALLOC1) */
        } st;
} fake = { .lock = PTHREAD_MUTEX_INITIALIZER, .delay_ms = 20, .st.next_id = 1 };

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
        fake.iommufd = false, fake.bind_fail[0] = fake.not_owned[0] = fake.attach_fail[0] = '\0';
        fake.ioas_fail = false;
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
                else if (strcmp(kv, "iommufd") == 0)
                        fake.iommufd = atoi(v) > 0;
                else if (strcmp(kv, "bind_fail") == 0)
                        snprintf(fake.bind_fail, sizeof(fake.bind_fail), "+%s+", v);
                else if (strcmp(kv, "not_owned") == 0)
                        snprintf(fake.not_owned, sizeof(fake.not_owned), "+%s+", v);
                else if (strcmp(kv, "attach_fail") == 0)
                        snprintf(fake.attach_fail, sizeof(fake.attach_fail), "+%s+", v);
                else if (strcmp(kv, "ioas_fail") == 0)
                        fake.ioas_fail = atoi(v) > 0;
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
        snprintf(ret, PCI_ADDRESS_STRLEN, "%.*s", (int) strcspn(p + 10, " @#"), p + 10);
        return 0;
}

/* --- cdev model ------------------------------------------------------------
 * A context is a memfd "vfio-fake-iommufd-PID-N@WORLD"; a device bound to it
 * a memfd "vfio-fake-ADDR#iommufd-PID-N@WORLD", so that any process can tell
 * by the name which device is bound where, as the kernel knows. Ids and
 * IOAS are in fake.st, under st_lock(). */

/* fake.st, locked and as the last process left it. */
static void st_lock(void) {
        const char *spec = getenv("VRD_FAKE_KERNEL_FILE");
        char path[PATH_MAX];
        FILE *f;

        pthread_mutex_lock(&fake.lock);
        if (!spec)
                return;
        snprintf(path, sizeof(path), "%s.iommufd", spec);
        f = fopen(path, "re");
        if (f && fread(&fake.st, sizeof(fake.st), 1, f) != 1)
                fake.st = (struct fake_iommufd) { .next_id = 1 };
        if (f)
                fclose(f);
}

static void st_unlock(bool changed) {
        const char *spec = getenv("VRD_FAKE_KERNEL_FILE");
        char path[PATH_MAX], tmp[PATH_MAX + 8];
        FILE *f;

        if (changed && spec) {
                snprintf(path, sizeof(path), "%s.iommufd", spec);
                snprintf(tmp, sizeof(tmp), "%s.new", path);
                f = fopen(tmp, "we");
                if (f && fwrite(&fake.st, sizeof(fake.st), 1, f) == 1 && fclose(f) == 0)
                        (void) rename(tmp, path);
                else if (f)
                        fclose(f);
        }
        pthread_mutex_unlock(&fake.lock);
}

static bool listed(const char *list, const char *address) {
        char key[PCI_ADDRESS_STRLEN + 2];
        bool r;

        snprintf(key, sizeof(key), "+%s+", address);
        pthread_mutex_lock(&fake.lock);
        r = strstr(list, key) != NULL;
        pthread_mutex_unlock(&fake.lock);
        return r;
}

static bool fake_iommufd_offered(void *data) {
        bool r;

        reload();
        pthread_mutex_lock(&fake.lock);
        r = fake.iommufd;
        pthread_mutex_unlock(&fake.lock);
        return r;
}

static int fake_iommufd_open(void *data, int *ret_iommufd) {
        char what[64], name[300];
        unsigned n;
        int fd;

        if (!fake_iommufd_offered(data))
                return -ENOENT;
        pthread_mutex_lock(&fake.lock);
        n = ++fake.n_contexts;
        pthread_mutex_unlock(&fake.lock);
        snprintf(what, sizeof(what), "iommufd-%d-%u", (int) getpid(), n);
        fake_name(name, sizeof(name), what);
        fd = memfd_create(name, MFD_CLOEXEC);
        if (fd < 0)
                return -errno;
        *ret_iommufd = fd;
        return 0;
}

/* "iommufd-PID-N" of a context's fd, or of the context a cdev fd is bound to. */
static int context_of(int fd, char ret[static 64]) {
        char target[512], *p;

        if (fd_target(fd, target, sizeof(target)) < 0)
                return -EBADF;
        p = strstr(target, "vfio-fake-iommufd-");
        if (p)
                p += 10;
        else if ((p = strstr(target, "vfio-fake-")) && (p = strchr(p, '#')))
                p++;
        else
                return -EBADF;
        snprintf(ret, 64, "%.*s", (int) strcspn(p, "@ "), p);
        return 0;
}

static void cdev_file_name(const char *address, const char *context, char *buf, size_t size) {
        char what[128];

        snprintf(what, sizeof(what), "%s#%s", address, context);
        fake_name(buf, size, what);
}

/* Does sysfs give the function this cdev (/sys/bus/pci/devices/ADDR/vfio-dev/CDEV)? */
static bool has_cdev(const char *address, const char *cdev) {
        char path[256];
        struct stat st;

        snprintf(path, sizeof(path), "/sys/bus/pci/devices/%s/vfio-dev/%s", address, cdev);
        return stat(path, &st) >= 0;
}

static struct fake_bound *find_bound(const char *address) {
        for (size_t i = 0; i < fake.st.n_bound; i++)
                if (strcmp(fake.st.bound[i].address, address) == 0)
                        return &fake.st.bound[i];
        return NULL;
}

static int fake_cdev_bind(void *data, const char *cdev, const struct pci_address *a, int iommufd,
                          int *ret_device_fd, uint32_t *ret_devid, bool *ret_can_reset) {
        char address[PCI_ADDRESS_STRLEN], context[64], name[300], methods[128] = "";
        struct fake_bound *b;
        int fd, r = 0;

        reload();
        pci_address_format(a, address);
        if (context_of(iommufd, context) < 0 || !strstr(context, "iommufd-"))
                return -EBADF;
        if (!has_cdev(address, cdev))
                r = -ENODEV;
        else if (listed(fake.bind_fail, address))
                r = -EINVAL;    /* as the kernel: bound in another context */
        else {
                cdev_file_name(address, context, name, sizeof(name));
                /* One bind per device (vfio_df_open): a live file of it here. */
                st_lock();
                b = find_bound(address);
                st_unlock(false);
                if (b && open_files(name) > 0)
                        r = -EINVAL;
        }
        append_line(fake.open_log, "cdev-bind %s %s result=%d", address, cdev, r);
        if (r < 0)
                return r;
        fd = memfd_create(name, MFD_CLOEXEC);
        if (fd < 0)
                return -errno;
        st_lock();
        b = find_bound(address);
        if (!b && fake.st.n_bound < ELEMENTSOF(fake.st.bound))
                b = &fake.st.bound[fake.st.n_bound++];
        if (b)
                *b = (struct fake_bound) { .devid = fake.st.next_id++ };
        if (b)
                snprintf(b->address, sizeof(b->address), "%s", address);
        *ret_devid = b ? b->devid : 0;
        st_unlock(true);
        *ret_can_reset = sysfs_read(a, "reset_method", methods, sizeof(methods)) >= 0 && methods[0];
        *ret_device_fd = fd;
        return 0;
}

static int fake_ioas_alloc(void *data, int iommufd, uint32_t *ret_ioas) {
        char context[64];
        int r = 0;

        reload();
        if (context_of(iommufd, context) < 0)
                return -EBADF;
        st_lock();
        if (fake.ioas_fail || fake.st.n_ioas >= ELEMENTSOF(fake.st.ioas))
                r = -ENOMEM;
        else {
                fake.st.ioas[fake.st.n_ioas++] = (struct fake_ioas) { .id = fake.st.next_id };
                *ret_ioas = fake.st.next_id++;
        }
        st_unlock(r == 0);
        append_line(fake.open_log, "ioas-alloc %s result=%d", context, r);
        return r;
}

static int fake_ioas_destroy(void *data, int iommufd, uint32_t ioas) {
        int r = -ENOENT;

        st_lock();
        for (size_t i = 0; i < fake.st.n_bound; i++)
                if (fake.st.bound[i].ioas == ioas)
                        r = -EBUSY;
        for (size_t i = 0; r == -ENOENT && i < fake.st.n_ioas; i++)
                if (fake.st.ioas[i].id == ioas) {
                        fake.st.ioas[i] = fake.st.ioas[--fake.st.n_ioas];
                        r = 0;
                }
        st_unlock(r == 0);
        append_line(fake.open_log, "ioas-destroy %u result=%d", ioas, r);
        return r;
}

static int fake_ioas_set(int device_fd, uint32_t ioas) {
        char address[PCI_ADDRESS_STRLEN], context[64];
        struct fake_bound *b;
        bool known = ioas == 0;
        int r;

        r = address_of(device_fd, address);
        if (r < 0 || context_of(device_fd, context) < 0)
                return -EINVAL; /* as the kernel: only a bound cdev attaches */
        if (ioas && listed(fake.attach_fail, address))
                return -EINVAL;
        st_lock();
        for (size_t i = 0; i < fake.st.n_ioas; i++)
                known = known || fake.st.ioas[i].id == ioas;
        b = find_bound(address);
        if (!b && fake.st.n_bound < ELEMENTSOF(fake.st.bound)) {     /* bound before a restart */
                b = &fake.st.bound[fake.st.n_bound++];
                *b = (struct fake_bound) {};
                snprintf(b->address, sizeof(b->address), "%s", address);
        }
        r = !known ? -ENOENT : !b ? -ENOMEM : 0;
        if (r >= 0)
                b->ioas = ioas;
        st_unlock(r >= 0);
        if (ioas)
                append_line(fake.open_log, "ioas-attach %s ioas=%u result=%d", address, ioas, r);
        return r;
}

static int fake_ioas_check(void *data, int iommufd, uint32_t ioas) {
        char context[64];
        int r = -ENOENT;

        if (context_of(iommufd, context) < 0)
                return -EBADF;
        st_lock();
        for (size_t i = 0; i < fake.st.n_ioas; i++)
                if (fake.st.ioas[i].id == ioas)
                        r = 0;
        st_unlock(false);
        append_line(fake.open_log, "ioas-check %u result=%d", ioas, r);
        return r;
}

static int fake_ioas_attach(void *data, int device_fd, uint32_t ioas) {
        return fake_ioas_set(device_fd, ioas);
}

static int fake_ioas_detach(void *data, int device_fd) {
        return fake_ioas_set(device_fd, 0);
}

static int fake_iommufd_check(void *data, int iommufd, char *why, size_t why_size) {
        char target[512] = "?", context[64];

        (void) fd_target(iommufd, target, sizeof(target));
        if (context_of(iommufd, context) < 0 || !strstr(target, "vfio-fake-iommufd-")) {
                snprintf(why, why_size, "the iommufd is %s, not /dev/iommu", target);
                return -EBADF;
        }
        return 0;
}

static int fake_cdev_check(void *data, const char *cdev, int device_fd, char *why, size_t why_size) {
        char target[512] = "?", address[PCI_ADDRESS_STRLEN], context[64];

        (void) fd_target(device_fd, target, sizeof(target));
        if (address_of(device_fd, address) < 0 || !has_cdev(address, cdev)) {
                snprintf(why, why_size, "the device fd is %s, not /dev/vfio/devices/%s", target, cdev);
                return -EBADF;
        }
        if (context_of(device_fd, context) < 0) {
                snprintf(why, why_size, "/dev/vfio/devices/%s is not bound to an iommufd", cdev);
                return -EINVAL;
        }
        return 0;
}

/* The functions a reset of this one reaches, as the fake knows them: the
 * vfio-pci functions on its bus. ret gets "+ADDR+" for each. */
static void reached(const char *address, char *ret, size_t size) {
        struct dirent *de;
        DIR *d = opendir("/sys/bus/pci/devices");

        ret[0] = '\0';
        while (d && (de = readdir(d))) {
                char path[300], link[256];
                ssize_t n;

                if (strncmp(de->d_name, address, 7) != 0)       /* DDDD:BB */
                        continue;
                snprintf(path, sizeof(path), "/sys/bus/pci/devices/%s/driver", de->d_name);
                n = readlink(path, link, sizeof(link) - 1);
                if (n <= 0)
                        continue;
                link[n] = '\0';
                if (strcmp(strrchr(link, '/') ? strrchr(link, '/') + 1 : link, "vfio-pci") == 0)
                        snprintf(ret + strlen(ret), size - strlen(ret), "+%s+", de->d_name);
        }
        if (d)
                closedir(d);
}

/* As VFIO_DEVICE_GET_PCI_HOT_RESET_INFO with DEV_ID: is every function the
 * reset reaches bound to this device's context? The first that is not. */
static int fake_hot_reset_owned(void *data, int device_fd, struct pci_address *ret_not_owned) {
        char address[PCI_ADDRESS_STRLEN], context[64], all[1024];
        int r;

        reload();
        r = address_of(device_fd, address);
        if (r < 0)
                return r;
        if (context_of(device_fd, context) < 0) {
                (void) pci_address_parse(address, ret_not_owned, NULL, 0);
                return -EPERM;  /* a group-path device: no DEV_ID flag */
        }
        reached(address, all, sizeof(all));
        for (char *save = NULL, *other = strtok_r(all, "+", &save); other; other = strtok_r(NULL, "+", &save)) {
                char name[300];

                cdev_file_name(other, context, name, sizeof(name));
                if (listed(fake.not_owned, other) || (strcmp(other, address) != 0 && open_files(name) == 0)) {
                        (void) pci_address_parse(other, ret_not_owned, NULL, 0);
                        return -EPERM;
                }
        }
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
        /* As the kernel: "zero-length array is only for cdev opened devices"
         * (vfio_pci_ioctl_pci_hot_reset), which prove ownership by their
         * context holding every device the reset reaches. */
        if (hot) {
                char context[64];
                bool cdev = context_of(device_fd, context) >= 0;

                if (cdev != (n_group_fds == 0))
                        return -EINVAL;
                if (cdev && fake_hot_reset_owned(NULL, device_fd, &(struct pci_address) {}) < 0)
                        return -EINVAL;
        }
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
        .iommufd_offered = fake_iommufd_offered,
        .iommufd_open = fake_iommufd_open,
        .cdev_bind = fake_cdev_bind,
        .ioas_alloc = fake_ioas_alloc,
        .ioas_destroy = fake_ioas_destroy,
        .ioas_check = fake_ioas_check,
        .ioas_attach = fake_ioas_attach,
        .ioas_detach = fake_ioas_detach,
        .iommufd_check = fake_iommufd_check,
        .cdev_check = fake_cdev_check,
        .hot_reset_owned = fake_hot_reset_owned,
        .low_power_exit = fake_low_power_exit,
        .hot_reset = fake_hot_reset,
        .function_reset = fake_function_reset,
        .read_ids = fake_read_ids,
};

const struct kernel_ops *kernel_fake_ops(void) {
        return &ops;
}
