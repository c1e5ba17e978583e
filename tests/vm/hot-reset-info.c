/* hot-reset-info: what the kernel itself says about VFIO hot-reset sets.
 *
 * The VM tests compare the daemon's dev_sets with this program's output, and
 * the benchmark takes its timings as the floor any reset coordinator adds to.
 * It uses the legacy group + container + type1 interface, which every Debian
 * kernel has (none enables IOMMUFD).
 *
 *   hot-reset-info BDF...
 *     one line per device:
 *       BDF group=N set=BDF1,BDF2 groups=N1,N2
 *       BDF group=N set=single errno=ENODEV
 *       BDF group=N error=WHAT errno=ENAME
 *   hot-reset-info --time-hot-reset BDF... [-n N]
 *     VFIO_DEVICE_PCI_HOT_RESET through each BDF's device fd, with every group
 *     of its set opened here; N times, then min/median/max in microseconds.
 *   hot-reset-info --time-function-reset BDF... [-n N]
 *     the same for VFIO_DEVICE_RESET.
 *   hot-reset-info --cdev BDF...
 *     the cdev + iommufd model (a kernel with IOMMUFD and VFIO_DEVICE_CDEV,
 *     built against its uapi headers): opens each BDF's /dev/vfio/devices/
 *     vfioN, binds them one by one to one iommufd, and after each bind asks
 *     the kernel through the first BDF's cdev what a hot reset would take,
 *     then tries VFIO_DEVICE_PCI_HOT_RESET with no group fds (ownership by
 *     the iommufd context), once:
 *       bind BDF cdev=vfioN devid=N
 *       info BDF bound=K flags=0xF[,DEV_ID][,DEV_ID_OWNED] set=BDF1:DEVID,BDF2:NOT_OWNED
 *       reset BDF bound=K ok|errno=ENAME
 *     where DEVID is the devid of a device bound here, OWNED for one whose
 *     group another device bound here brings, NOT_OWNED otherwise.
 *   hot-reset-info --time-hot-reset --cdev BDF... [-n N]
 *     the raw hot reset of the cdev model, as the daemon's cdev ownership
 *     does it: every BDF's cdev opened and bound to one iommufd (all of them
 *     kept open), then N times VFIO_DEVICE_PCI_HOT_RESET with an empty group
 *     fd list through the first BDF's cdev; one line as --time-hot-reset's:
 *       hot-reset BDF cdev=vfioN,vfioM devids=N,M n=N ok=K min_us=...
 *
 * Exit status: 0 when every device was looked up (ENODEV is an answer) and
 * every timed reset succeeded, 1 otherwise, 2 on bad usage.
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/vfio.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <time.h>
#include <unistd.h>

#include "vfio-test.h"

#define MAX_GROUPS 64
#define MAX_DEVICES 64

struct group {
	int id;
	int fd;
};

struct device {
	char bdf[16];
	int fd;
};

static int container_fd = -1;
static bool iommu_set;
static struct group groups[MAX_GROUPS];
static size_t n_groups;
static struct device devices[MAX_DEVICES];
static size_t n_devices;

/* Open group ID (once per process: a group opens only once) and put it in
 * the shared container. Returns the fd or -errno, *what says which step. */
static int open_group(int id, const char **what)
{
	struct vfio_group_status status = { .argsz = sizeof(status) };
	char path[32];
	int fd;

	for (size_t i = 0; i < n_groups; i++)
		if (groups[i].id == id)
			return groups[i].fd;
	if (n_groups == MAX_GROUPS) {
		*what = "too-many-groups";
		return -E2BIG;
	}
	if (container_fd < 0) {
		container_fd = open("/dev/vfio/vfio", O_RDWR | O_CLOEXEC);
		if (container_fd < 0) {
			*what = "open-container";
			return -errno;
		}
	}
	snprintf(path, sizeof(path), "/dev/vfio/%d", id);
	fd = open(path, O_RDWR | O_CLOEXEC);
	if (fd < 0) {
		*what = "open-group";
		return -errno;
	}
	if (ioctl(fd, VFIO_GROUP_GET_STATUS, &status) < 0) {
		*what = "group-status";
		goto fail;
	}
	/* A group is usable only when viable: every member bound to a vfio
	 * driver, to pci-stub or pcieport, or to nothing. */
	if (!(status.flags & VFIO_GROUP_FLAGS_VIABLE)) {
		*what = "group-not-viable";
		errno = EPERM;
		goto fail;
	}
	if (ioctl(fd, VFIO_GROUP_SET_CONTAINER, &container_fd) < 0) {
		*what = "set-container";
		goto fail;
	}
	/* VFIO_SET_IOMMU needs a group in the container; later groups join it. */
	if (!iommu_set) {
		int type = ioctl(container_fd, VFIO_CHECK_EXTENSION, VFIO_TYPE1v2_IOMMU) > 0
				   ? VFIO_TYPE1v2_IOMMU
				   : VFIO_TYPE1_IOMMU;
		if (ioctl(container_fd, VFIO_SET_IOMMU, type) < 0) {
			*what = "set-iommu";
			goto fail;
		}
		iommu_set = true;
	}
	groups[n_groups++] = (struct group){ .id = id, .fd = fd };
	return fd;
fail:;
	int e = errno;
	close(fd);
	return -e;
}

static int open_device(const char *bdf, int *group, const char **what)
{
	int gfd, fd;

	for (size_t i = 0; i < n_devices; i++)
		if (!strcmp(devices[i].bdf, bdf))
			return devices[i].fd;
	gfd = vt_group_of(bdf);
	if (gfd < 0) {
		*what = "no-iommu-group";
		return gfd;
	}
	*group = gfd;
	gfd = open_group(*group, what);
	if (gfd < 0)
		return gfd;
	if (n_devices == MAX_DEVICES) {
		*what = "too-many-devices";
		return -E2BIG;
	}
	fd = ioctl(gfd, VFIO_GROUP_GET_DEVICE_FD, bdf);
	if (fd < 0) {
		*what = "get-device-fd";
		return -errno;
	}
	snprintf(devices[n_devices].bdf, sizeof(devices[n_devices].bdf), "%s", bdf);
	devices[n_devices++].fd = fd;
	return fd;
}

static int show(const char *bdf)
{
	struct vfio_pci_hot_reset_info *info = NULL;
	const char *what = "";
	int ids[MAX_GROUPS];
	int group = -1, fd, r;
	size_t n;

	fd = open_device(bdf, &group, &what);
	if (fd < 0) {
		printf("%s group=%d error=%s errno=%s\n", bdf, group, what, vt_errname(-fd));
		return -1;
	}
	r = vt_hot_reset_info(fd, &info);
	if (r == -ENODEV) {
		printf("%s group=%d set=single errno=ENODEV\n", bdf, group);
		return 0;
	}
	if (r < 0) {
		printf("%s group=%d error=hot-reset-info errno=%s\n", bdf, group, vt_errname(-r));
		return -1;
	}
	printf("%s group=%d set=", bdf, group);
	for (size_t i = 0; i < info->count; i++) {
		char dep[16];
		vt_format_dep(&info->devices[i], dep, sizeof(dep));
		printf("%s%s", i ? "," : "", dep);
	}
	n = vt_set_groups(info, ids, MAX_GROUPS);
	printf(" groups=");
	for (size_t i = 0; i < n; i++)
		printf("%s%d", i ? "," : "", ids[i]);
	printf("\n");
	free(info);
	return 0;
}

/* Print min/median/max of the successful runs, and the first failure. */
static int report(const char *op, const char *bdf, const char *extra, double *us,
		  int ok, int n, int first_errno)
{
	printf("%s %s%s n=%d ok=%d", op, bdf, extra, n, ok);
	if (ok > 0) {
		double median = vt_median(us, ok);
		printf(" min_us=%.0f median_us=%.0f max_us=%.0f", us[0], median, us[ok - 1]);
	}
	if (first_errno)
		printf(" errno=%s", vt_errname(first_errno));
	printf("\n");
	fflush(stdout);
	return ok == n ? 0 : -1;
}

static int time_hot_reset(const char *bdf, int n)
{
	struct vfio_pci_hot_reset_info *info = NULL;
	struct vfio_pci_hot_reset *reset;
	const char *what = "";
	int ids[MAX_GROUPS], group = -1, fd, r, ok = 0, first_errno = 0;
	char extra[256] = " groups=";
	size_t n_ids;
	double *us;

	fd = open_device(bdf, &group, &what);
	if (fd < 0) {
		printf("hot-reset %s error=%s errno=%s\n", bdf, what, vt_errname(-fd));
		return -1;
	}
	r = vt_hot_reset_info(fd, &info);
	if (r < 0) {
		printf("hot-reset %s error=hot-reset-info errno=%s\n", bdf, vt_errname(-r));
		return -1;
	}
	n_ids = vt_set_groups(info, ids, MAX_GROUPS);
	free(info);
	reset = calloc(1, sizeof(*reset) + n_ids * sizeof(reset->group_fds[0]));
	us = calloc(n, sizeof(*us));
	if (!reset || !us)
		abort();
	reset->argsz = sizeof(*reset) + n_ids * sizeof(reset->group_fds[0]);
	reset->count = n_ids;
	/* vfio.h: with a group fd array, every affected device must belong to
	 * one of the groups passed (else EINVAL), so open all of the set's. */
	for (size_t i = 0; i < n_ids; i++) {
		int gfd = open_group(ids[i], &what);
		if (gfd < 0) {
			printf("hot-reset %s group=%d error=%s errno=%s\n", bdf, ids[i], what,
			       vt_errname(-gfd));
			free(reset);
			free(us);
			return -1;
		}
		reset->group_fds[i] = gfd;
		snprintf(extra + strlen(extra), sizeof(extra) - strlen(extra), "%s%d",
			 i ? "," : "", ids[i]);
	}
	for (int i = 0; i < n; i++) {
		double t0 = vt_now_us();
		if (ioctl(fd, VFIO_DEVICE_PCI_HOT_RESET, reset) == 0)
			us[ok++] = vt_now_us() - t0;
		else if (!first_errno)
			first_errno = errno;
	}
	r = report("hot-reset", bdf, extra, us, ok, n, first_errno);
	free(reset);
	free(us);
	return r;
}

static int time_function_reset(const char *bdf, int n)
{
	struct vfio_device_info dinfo = { .argsz = sizeof(dinfo) };
	const char *what = "";
	int group = -1, fd, ok = 0, first_errno = 0, r;
	double *us;

	fd = open_device(bdf, &group, &what);
	if (fd < 0) {
		printf("function-reset %s error=%s errno=%s\n", bdf, what, vt_errname(-fd));
		return -1;
	}
	if (ioctl(fd, VFIO_DEVICE_GET_INFO, &dinfo) == 0 && !(dinfo.flags & VFIO_DEVICE_FLAGS_RESET))
		printf("# %s: VFIO_DEVICE_FLAGS_RESET is not set\n", bdf);
	us = calloc(n, sizeof(*us));
	if (!us)
		abort();
	for (int i = 0; i < n; i++) {
		double t0 = vt_now_us();
		if (ioctl(fd, VFIO_DEVICE_RESET) == 0)
			us[ok++] = vt_now_us() - t0;
		else if (!first_errno)
			first_errno = errno;
	}
	r = report("function-reset", bdf, "", us, ok, n, first_errno);
	free(us);
	return r;
}

#ifdef VFIO_DEVICE_BIND_IOMMUFD
/* A function's device cdev: the vfioN of /sys/bus/pci/devices/BDF/vfio-dev/
 * (Documentation/driver-api/vfio.rst, "VFIO device cdev"), opened; -errno. */
static int cdev_open(const char *bdf, char *name, size_t len)
{
	char path[PATH_MAX];
	struct dirent *e;
	DIR *dir;
	int fd;

	snprintf(path, sizeof(path), "/sys/bus/pci/devices/%s/vfio-dev", bdf);
	dir = opendir(path);
	if (!dir)
		return -errno;
	name[0] = '\0';
	while ((e = readdir(dir)))
		if (!strncmp(e->d_name, "vfio", 4)) {
			snprintf(name, len, "%s", e->d_name);
			break;
		}
	closedir(dir);
	if (!name[0])
		return -ENOENT;
	snprintf(path, sizeof(path), "/dev/vfio/devices/%s", name);
	fd = open(path, O_RDWR | O_CLOEXEC);
	return fd < 0 ? -errno : fd;
}

/* What VFIO_DEVICE_GET_PCI_HOT_RESET_INFO says through a cdev (vfio.h:
 * devids instead of group ids, flag DEV_ID; DEV_ID_OWNED when every device
 * of the set is owned through the caller's iommufd context). */
static void cdev_info(const char *bdf, int fd, size_t bound)
{
	struct vfio_pci_hot_reset_info *info = NULL;
	int r = vt_hot_reset_info(fd, &info);

	if (r < 0) {
		printf("info %s bound=%zu errno=%s\n", bdf, bound, vt_errname(-r));
		return;
	}
	printf("info %s bound=%zu flags=0x%x%s%s set=", bdf, bound, info->flags,
	       info->flags & VFIO_PCI_HOT_RESET_FLAG_DEV_ID ? ",DEV_ID" : "",
	       info->flags & VFIO_PCI_HOT_RESET_FLAG_DEV_ID_OWNED ? ",DEV_ID_OWNED" : "");
	for (size_t i = 0; i < info->count; i++) {
		char dep[16];
		vt_format_dep(&info->devices[i], dep, sizeof(dep));
		if (info->devices[i].devid == (__u32)VFIO_PCI_DEVID_NOT_OWNED)
			printf("%s%s:NOT_OWNED", i ? "," : "", dep);
		else if (info->devices[i].devid == VFIO_PCI_DEVID_OWNED)
			printf("%s%s:OWNED", i ? "," : "", dep);
		else
			printf("%s%s:%u", i ? "," : "", dep, info->devices[i].devid);
	}
	printf("\n");
	free(info);
}

/* /dev/iommu, opened; -1 after saying why. */
static int iommufd_open(void)
{
	int fd = open("/dev/iommu", O_RDWR | O_CLOEXEC);

	if (fd < 0)
		printf("iommufd error=open-dev-iommu errno=%s\n", vt_errname(errno));
	return fd;
}

/* BDF's cdev opened (its name in NAME) and bound to IOMMUFD, its devid in
 * *DEVID; the fd, or -1 after saying why. */
static int cdev_bind(const char *bdf, int iommufd, char *name, size_t len, __u32 *devid)
{
	struct vfio_device_bind_iommufd bind = { .argsz = sizeof(bind), .iommufd = iommufd };
	int fd = cdev_open(bdf, name, len);

	if (fd < 0) {
		printf("bind %s error=open-cdev errno=%s\n", bdf, vt_errname(-fd));
		return -1;
	}
	if (ioctl(fd, VFIO_DEVICE_BIND_IOMMUFD, &bind) < 0) {
		printf("bind %s cdev=%s error=bind-iommufd errno=%s\n", bdf, name, vt_errname(errno));
		close(fd);
		return -1;
	}
	*devid = bind.out_devid;
	return fd;
}

static int cdev_steps(const char **bdfs, size_t n)
{
	int fds[MAX_DEVICES], iommufd;
	char name[NAME_MAX + 1];

	iommufd = iommufd_open();
	if (iommufd < 0)
		return -1;
	for (size_t i = 0; i < n; i++) {
		struct vfio_pci_hot_reset reset = { .argsz = sizeof(reset), .count = 0 };
		__u32 devid;

		fds[i] = cdev_bind(bdfs[i], iommufd, name, sizeof(name), &devid);
		if (fds[i] < 0)
			return -1;
		printf("bind %s cdev=%s devid=%u\n", bdfs[i], name, devid);
		cdev_info(bdfs[0], fds[0], i + 1);
		/* vfio.h: a zero-length fd array means the iommufd context proves
		 * ownership, which needs every affected device owned by it. */
		if (ioctl(fds[0], VFIO_DEVICE_PCI_HOT_RESET, &reset) == 0)
			printf("reset %s bound=%zu ok\n", bdfs[0], i + 1);
		else
			printf("reset %s bound=%zu errno=%s\n", bdfs[0], i + 1, vt_errname(errno));
	}
	for (size_t i = 0; i < n; i++)
		close(fds[i]);
	close(iommufd);
	return 0;
}

/* --time-hot-reset --cdev: the raw reset of the daemon's cdev ownership. */
static int time_cdev_reset(const char **bdfs, size_t n_bdfs, int n)
{
	struct vfio_pci_hot_reset reset = { .argsz = sizeof(reset), .count = 0 };
	char extra[512] = " cdev=", devids[128] = " devids=", name[32];
	int fds[MAX_DEVICES], iommufd, ok = 0, first_errno = 0, r = -1;
	size_t bound = 0;
	double *us;

	iommufd = iommufd_open();
	if (iommufd < 0)
		return -1;
	/* Every BDF bound, and kept open while timing (as the daemon holds
	 * them: a vfio-pci function nobody has open sits in runtime D3hot,
	 * and each reset would have to wake it first). */
	for (; bound < n_bdfs; bound++) {
		__u32 devid;

		fds[bound] = cdev_bind(bdfs[bound], iommufd, name, sizeof(name), &devid);
		if (fds[bound] < 0)
			goto out;
		snprintf(extra + strlen(extra), sizeof(extra) - strlen(extra), "%s%s", bound ? "," : "", name);
		snprintf(devids + strlen(devids), sizeof(devids) - strlen(devids), "%s%u", bound ? "," : "", devid);
	}
	snprintf(extra + strlen(extra), sizeof(extra) - strlen(extra), "%s", devids);
	us = calloc(n, sizeof(*us));
	if (!us)
		abort();
	/* The kernel's rule (7.3, vfio_pci_core.c): an empty fd list is taken
	 * only through a device opened by its cdev (and a non-empty one only
	 * through a group-opened device), and then every device of the dev_set
	 * must be bound to the caller's iommufd context, or be unbound with its
	 * IOMMU group holding a device bound to it; else EINVAL. The two igb
	 * functions are in two groups, so both are bound here. */
	for (int i = 0; i < n; i++) {
		double t0 = vt_now_us();
		if (ioctl(fds[0], VFIO_DEVICE_PCI_HOT_RESET, &reset) == 0)
			us[ok++] = vt_now_us() - t0;
		else if (!first_errno)
			first_errno = errno;
	}
	r = report("hot-reset", bdfs[0], extra, us, ok, n, first_errno);
	free(us);
out:
	while (bound > 0)
		close(fds[--bound]);
	close(iommufd);
	return r;
}
#endif

static int usage(void)
{
	fprintf(stderr,
		"usage: hot-reset-info BDF...\n"
		"       hot-reset-info --time-hot-reset BDF... [-n N]\n"
		"       hot-reset-info --time-function-reset BDF... [-n N]\n"
		"       hot-reset-info --cdev BDF...\n"
		"       hot-reset-info --time-hot-reset --cdev BDF... [-n N]\n"
		"BDF is DDDD:BB:SS.F\n");
	return 2;
}

int main(int argc, char **argv)
{
	enum { SHOW, TIME_HOT, TIME_FUNCTION } mode = SHOW;
	const char *bdfs[MAX_DEVICES];
	size_t n_bdfs = 0;
	int n = 10, failed = 0;
	bool cdev = false;

	for (int i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--time-hot-reset")) {
			mode = TIME_HOT;
		} else if (!strcmp(argv[i], "--time-function-reset")) {
			mode = TIME_FUNCTION;
		} else if (!strcmp(argv[i], "--cdev")) {
			cdev = true;
		} else if (!strcmp(argv[i], "-n") && i + 1 < argc) {
			n = atoi(argv[++i]);
			if (n < 1)
				return usage();
		} else if (vt_valid_bdf(argv[i]) && n_bdfs < MAX_DEVICES) {
			bdfs[n_bdfs++] = argv[i];
		} else {
			fprintf(stderr, "hot-reset-info: bad argument '%s'\n", argv[i]);
			return usage();
		}
	}
	if (n_bdfs == 0 || (cdev && mode == TIME_FUNCTION))
		return usage();
	setvbuf(stdout, NULL, _IOLBF, 0);
	if (cdev) {
#ifdef VFIO_DEVICE_BIND_IOMMUFD
		return (mode == TIME_HOT ? time_cdev_reset(bdfs, n_bdfs, n) : cdev_steps(bdfs, n_bdfs)) < 0;
#else
		fprintf(stderr, "hot-reset-info: --cdev: built against a linux/vfio.h without "
				"VFIO_DEVICE_BIND_IOMMUFD (build it with a newer kernel's uapi headers)\n");
		return 2;
#endif
	}
	for (size_t i = 0; i < n_bdfs; i++) {
		int r = mode == SHOW	 ? show(bdfs[i])
			: mode == TIME_HOT ? time_hot_reset(bdfs[i], n)
					   : time_function_reset(bdfs[i], n);
		if (r < 0)
			failed = 1;
	}
	return failed;
}
