/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* dmabuf-importer: a real importer of a vfio-pci dma-buf, for the VM tests.
 *
 * The importer is iommufd: IOMMU_IOAS_MAP_FILE of a dma-buf that vfio-pci
 * exported (VFIO_DEVICE_FEATURE_DMA_BUF) maps the exporter's BAR into an IO
 * address space (drivers/iommu/iommufd/pages.c, iopt_map_dmabuf(), which
 * takes the BAR's physical range from vfio_pci_dma_buf_iommufd_map() and
 * refuses any other exporter). What uses the mapping is a second device
 * attached to that IOAS: QEMU's "edu" device, whose DMA engine reads the
 * exporter's registers through the IOMMU, peer to peer. So every value below
 * is read the way a P2P importer reads: by a device's DMA, translated by the
 * IOMMU page table that the dma-buf mapping filled.
 *
 * The registers read, at the exporter's BAR0 (an igb):
 *   STATUS (0x0008): never 0 on a working igb (QEMU's igb_core.c sets link
 *                    and speed bits at reset), so 0 means the read failed;
 *   TDBAL  (0x3800): the peers write 0x5a5a5a00, a reset clears it (bar-peer.c).
 * A DMA read through an IOVA the IOMMU has no entry for faults (the guest's
 * DMAR driver logs it) and QEMU's IOMMU returns zeros for it
 * (address_space_translate_iommu -> unassigned memory): "fault" below. Before
 * each read the edu buffer holds a sentinel, so a read that wrote nothing
 * shows too.
 *
 * Roles (every event a line on stdout, in --log FILE, and in --times FILE
 * after the guest's CLOCK_MONOTONIC in seconds; --prefix TEXT on stdout):
 *
 *   dmabuf-importer --standalone --export BDF --dma EDU
 *     One process, no daemon: both cdevs bound to one iommufd, both attached
 *     to one IOAS; the dma-buf of BAR0 mapped; then what the kernel does to
 *     the mapping when the exporter's memory decoding goes off and on, and
 *     at a function reset (VFIO_DEVICE_RESET through the cdev). Lines:
 *       step NAME status=0xV tdbal=0xV dma=ok|fault   (a read through the mapping)
 *       map-file IOVA error=ERRNO | map-file IOVA ok
 *       ... and "standalone done" at the end; exit 0 unless a call failed
 *       that must not (the scenario judges the values).
 *
 *   dmabuf-importer --export ADDR --serve SOCKET
 *     A peer of vfio-resetd (libvfio-resetd): takes ADDR, maps its BAR0,
 *     writes TDBAL, exports a dma-buf of BAR0 and hands its fd to every
 *     client of the unix socket (SCM_RIGHTS); acks every pause at once (it
 *     does not touch the device after writing). Lines: took, wrote, exported
 *     (with the dma-buf's exp_name and size from its fdinfo), served,
 *     pause ID TYPE, acked ID, resume ID RESULT.
 *
 *   dmabuf-importer --import SOCKET --watch ADDR --dma EDU [--ignore-pause] [--sample MS]
 *     A Watch peer that imports: gets the dma-buf from SOCKET, maps it into
 *     its own IOAS at a fixed IOVA (its own iommufd, the edu's cdev attached),
 *     reads through it, then watches ADDR's dev_set. On Pause "pause" it
 *     unmaps the dma-buf (IOMMU_IOAS_UNMAP) and then acks; on Resume it maps
 *     it again and reads. With --ignore-pause it neither unmaps nor acks
 *     (the requester needs Force), and reads through the mapping every
 *     --sample MS (default 300) throughout: that is what the kernel does to
 *     an importer that did not let go.
 *     Lines:
 *       ready UNIQUE pid=PID
 *       read N status=0xV tdbal=0xV dma=ok|fault mapped=yes|no at=SECONDS (WHY)
 *                       at: the guest's CLOCK_MONOTONIC when its peer-to-peer
 *                       reads had been done (the line comes a DMA later)
 *                       WHY: first, after-resume, sample (--ignore-pause),
 *                       after-resume, stale mapping | after-resume, mapped again
 *       pause ID TYPE | unmapped IOVA | acked ID | ignored ID
 *       resume ID RESULT | mapped IOVA | map-error IOVA ERRNO
 *       remapped-after-ignore IOVA       (after Resume, --ignore-pause: the
 *                                         stale mapping replaced)
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <poll.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "vfio-test.h"
#include "peer-log.h"
#include "iommufd-uapi.h"
#include "vfio-resetd.h"

#define REG_STATUS 0x0008
#define REG_TDBAL 0x3800
#define TDBAL_WRITTEN 0x5a5a5a00u
/* The dma-buf: BAR0 [0, 16 KiB), which holds both registers. */
#define DMABUF_LEN 0x4000
/* IOVAs below the edu's 28-bit DMA mask (hw/misc/edu.c, dma_mask). */
#define IOVA_RAM 0x100000ull
#define IOVA_BUF 0x1000000ull
#define IOVA_BUF2 0x2000000ull
/* hw/misc/edu.c: the DMA registers and the device's own buffer. */
#define EDU_DMA_SRC 0x80
#define EDU_DMA_DST 0x88
#define EDU_DMA_CNT 0x90
#define EDU_DMA_CMD 0x98
#define EDU_DMA_RUN 0x1
#define EDU_DMA_TO_PCI 0x2
#define EDU_BUF 0x40000ull
#define SENTINEL 0xfeedf00du



/* --- the device cdev and iommufd --------------------------------------------- */

/* /dev/vfio/devices/vfioN of a function bound to vfio-pci; -errno. */
static int open_cdev(const char *bdf)
{
	char dir[PATH_MAX], path[PATH_MAX + 300];
	struct dirent *e;
	DIR *d;
	int fd = -ENOENT;

	snprintf(dir, sizeof(dir), "/sys/bus/pci/devices/%s/vfio-dev", bdf);
	d = opendir(dir);
	if (!d)
		return -errno;
	while ((e = readdir(d)))
		if (!strncmp(e->d_name, "vfio", 4)) {
			snprintf(path, sizeof(path), "/dev/vfio/devices/%s", e->d_name);
			fd = open(path, O_RDWR | O_CLOEXEC);
			if (fd < 0)
				fd = -errno;
			break;
		}
	closedir(d);
	return fd;
}

struct ctx {
	int iommufd;
	uint32_t ioas;
};

static int ctx_open(struct ctx *c)
{
	struct iommu_ioas_alloc alloc = { .size = sizeof(alloc) };

	c->iommufd = open("/dev/iommu", O_RDWR | O_CLOEXEC);
	if (c->iommufd < 0) {
		say("error open /dev/iommu: %s", vt_errname(errno));
		return -1;
	}
	if (ioctl(c->iommufd, IOMMU_IOAS_ALLOC, &alloc) < 0) {
		say("error IOMMU_IOAS_ALLOC: %s", vt_errname(errno));
		return -1;
	}
	c->ioas = alloc.out_ioas_id;
	return 0;
}

/* Open BDF's cdev, bind it to the context and attach it to the IOAS. */
static int ctx_attach(struct ctx *c, const char *bdf)
{
	struct vfio_device_bind_iommufd bind = { .argsz = sizeof(bind), .iommufd = c->iommufd };
	struct vfio_device_attach_iommufd_pt attach = { .argsz = sizeof(attach), .pt_id = c->ioas };
	int fd = open_cdev(bdf);

	if (fd < 0) {
		say("error open the cdev of %s: %s", bdf, vt_errname(-fd));
		return -1;
	}
	if (ioctl(fd, VFIO_DEVICE_BIND_IOMMUFD, &bind) < 0) {
		say("error VFIO_DEVICE_BIND_IOMMUFD %s: %s", bdf, vt_errname(errno));
		close(fd);
		return -1;
	}
	if (ioctl(fd, VFIO_DEVICE_ATTACH_IOMMUFD_PT, &attach) < 0) {
		say("error VFIO_DEVICE_ATTACH_IOMMUFD_PT %s: %s", bdf, vt_errname(errno));
		close(fd);
		return -1;
	}
	say("bound %s devid=%u ioas=%u", bdf, bind.out_devid, c->ioas);
	return fd;
}

/* IOMMU_IOAS_MAP_FILE of the dma-buf at IOVA; 0 or -errno. */
static int map_dmabuf(struct ctx *c, int dmabuf, uint64_t iova)
{
	struct iommu_ioas_map_file m = {
		.size = sizeof(m),
		.flags = IOMMU_IOAS_MAP_FIXED_IOVA | IOMMU_IOAS_MAP_READABLE | IOMMU_IOAS_MAP_WRITEABLE,
		.ioas_id = c->ioas,
		.fd = dmabuf,
		.start = 0,
		.length = DMABUF_LEN,
		.iova = iova,
	};

	return ioctl(c->iommufd, IOMMU_IOAS_MAP_FILE, &m) < 0 ? -errno : 0;
}

static int unmap_iova(struct ctx *c, uint64_t iova)
{
	struct iommu_ioas_unmap u = { .size = sizeof(u), .ioas_id = c->ioas, .iova = iova, .length = DMABUF_LEN };

	return ioctl(c->iommufd, IOMMU_IOAS_UNMAP, &u) < 0 ? -errno : 0;
}

/* VFIO_DEVICE_FEATURE(GET | DMA_BUF) of BAR0 [0, DMABUF_LEN): the dma-buf's fd. */
static int export_dmabuf(int device_fd)
{
	struct {
		struct vfio_device_feature f;
		struct vfio_device_feature_dma_buf d;
		struct vfio_region_dma_range r;
	} __attribute__((packed)) arg = {
		.f = { .argsz = sizeof(arg), .flags = VFIO_DEVICE_FEATURE_GET | VFIO_DEVICE_FEATURE_DMA_BUF },
		.d = { .region_index = VFIO_PCI_BAR0_REGION_INDEX, .open_flags = O_RDWR | O_CLOEXEC, .nr_ranges = 1 },
		.r = { .offset = 0, .length = DMABUF_LEN },
	};
	int fd = ioctl(device_fd, VFIO_DEVICE_FEATURE, &arg);

	return fd < 0 ? -errno : fd;
}

/* "exp_name: vfio_pci_core size: 16384" from the dma-buf's fdinfo (drivers/dma-buf/dma-buf.c, dma_buf_show_fdinfo). */
static void describe_dmabuf(int fd, char *buf, size_t len)
{
	char path[64], line[256], name[64] = "?", size[32] = "?";
	FILE *f;

	snprintf(path, sizeof(path), "/proc/self/fdinfo/%d", fd);
	f = fopen(path, "re");
	while (f && fgets(line, sizeof(line), f)) {
		sscanf(line, "exp_name: %63s", name);
		sscanf(line, "size: %31s", size);
	}
	if (f)
		fclose(f);
	snprintf(buf, len, "exp_name=%s size=%s", name, size);
}

/* --- the edu device: DMA through the IOAS ----------------------------------- */

struct edu {
	int fd;
	volatile uint8_t *bar;
	volatile uint32_t *ram; /* a page of ours at IOVA_RAM */
};

static void edu_set64(struct edu *e, unsigned off, uint64_t v)
{
	*(volatile uint64_t *)(e->bar + off) = v;
}

/* One DMA of the edu; 0, or -ETIMEDOUT when it never finished. */
static int edu_dma(struct edu *e, uint64_t src, uint64_t dst, uint64_t cnt, uint64_t cmd)
{
	struct timespec ts = { .tv_nsec = 10 * 1000 * 1000 };

	edu_set64(e, EDU_DMA_SRC, src);
	edu_set64(e, EDU_DMA_DST, dst);
	edu_set64(e, EDU_DMA_CNT, cnt);
	edu_set64(e, EDU_DMA_CMD, cmd | EDU_DMA_RUN);
	/* The edu runs a DMA from a 100 ms timer and then clears RUN. */
	for (int i = 0; i < 500; i++) {
		if (!(*(volatile uint64_t *)(e->bar + EDU_DMA_CMD) & EDU_DMA_RUN))
			return 0;
		nanosleep(&ts, NULL);
	}
	return -ETIMEDOUT;
}

struct sample {
	uint32_t status, tdbal;
	bool ok;
	double at_us; /* CLOCK_MONOTONIC when the peer-to-peer reads were done */
};

/* STATUS and TDBAL of the exporter, read by the edu's DMA through IOVA base. */
static int edu_read(struct edu *e, uint64_t base, struct sample *s)
{
	int r;

	/* The sentinel into the edu's buffer, both words. */
	e->ram[0] = e->ram[1] = SENTINEL;
	r = edu_dma(e, IOVA_RAM, EDU_BUF, 8, 0);
	/* Peer to peer: the exporter's registers into the edu's buffer. */
	if (r == 0)
		r = edu_dma(e, base + REG_STATUS, EDU_BUF, 4, 0);
	if (r == 0)
		r = edu_dma(e, base + REG_TDBAL, EDU_BUF + 4, 4, 0);
	s->at_us = vt_now_us();
	/* And back to our page. */
	e->ram[0] = e->ram[1] = 0xdeadbeef;
	if (r == 0)
		r = edu_dma(e, EDU_BUF, IOVA_RAM, 8, EDU_DMA_TO_PCI);
	if (r < 0)
		return r;
	s->status = e->ram[0];
	s->tdbal = e->ram[1];
	if (s->status == 0xdeadbeef)
		return -EIO; /* the DMA into our own page failed: the test bed is broken */
	s->ok = s->status != 0 && s->status != SENTINEL;
	return 0;
}

static int edu_open(struct ctx *c, const char *bdf, struct edu *e)
{
	struct iommu_ioas_map m = { .size = sizeof(m), .ioas_id = c->ioas };
	struct vfio_region_info cfg = { .argsz = sizeof(cfg), .index = VFIO_PCI_CONFIG_REGION_INDEX };
	struct vt_bar bar;
	char why[256];
	uint16_t cmd;
	void *page;

	e->fd = ctx_attach(c, bdf);
	if (e->fd < 0)
		return -1;
	if (vt_map_bar0(e->fd, 0x100, &bar, why, sizeof(why)) < 0) {
		say("error edu %s BAR0: %s", bdf, why);
		return -1;
	}
	e->bar = (volatile uint8_t *)bar.p;
	/* Bus mastering: without it QEMU drops the edu's DMA (pci_dma_rw). */
	if (ioctl(e->fd, VFIO_DEVICE_GET_REGION_INFO, &cfg) < 0 ||
	    pread(e->fd, &cmd, sizeof(cmd), (off_t)cfg.offset + PCI_COMMAND) != sizeof(cmd)) {
		say("error edu %s config: %s", bdf, vt_errname(errno));
		return -1;
	}
	cmd |= PCI_COMMAND_MASTER | PCI_COMMAND_MEMORY;
	if (pwrite(e->fd, &cmd, sizeof(cmd), (off_t)cfg.offset + PCI_COMMAND) != sizeof(cmd)) {
		say("error edu %s bus master: %s", bdf, vt_errname(errno));
		return -1;
	}
	page = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	if (page == MAP_FAILED) {
		say("error mmap: %s", vt_errname(errno));
		return -1;
	}
	e->ram = page;
	m.flags = IOMMU_IOAS_MAP_FIXED_IOVA | IOMMU_IOAS_MAP_READABLE | IOMMU_IOAS_MAP_WRITEABLE;
	m.user_va = (uintptr_t)page;
	m.length = 4096;
	m.iova = IOVA_RAM;
	if (ioctl(c->iommufd, IOMMU_IOAS_MAP, &m) < 0) {
		say("error IOMMU_IOAS_MAP of our page: %s", vt_errname(errno));
		return -1;
	}
	return 0;
}

static void say_sample(const char *what, const struct sample *s)
{
	say("%s status=0x%08x tdbal=0x%08x dma=%s", what, s->status, s->tdbal, s->ok ? "ok" : "fault");
}

/* Read through IOVA and say so as "step NAME ..."; -1 when the DMA itself broke. */
static int step(struct edu *e, const char *name, uint64_t iova)
{
	struct sample s;
	char what[128];
	int r = edu_read(e, iova, &s);

	if (r < 0) {
		say("error step %s: edu DMA %s", name, vt_errname(-r));
		return -1;
	}
	snprintf(what, sizeof(what), "step %s", name);
	say_sample(what, &s);
	return 0;
}

static void say_map(struct ctx *c, int dmabuf, uint64_t iova)
{
	int r = map_dmabuf(c, dmabuf, iova);

	if (r < 0)
		say("map-file %#" PRIx64 " error=%s", iova, vt_errname(-r));
	else
		say("map-file %#" PRIx64 " ok", iova);
}

static int set_memory(int fd, bool on)
{
	struct vfio_region_info cfg = { .argsz = sizeof(cfg), .index = VFIO_PCI_CONFIG_REGION_INDEX };
	uint16_t cmd;

	if (ioctl(fd, VFIO_DEVICE_GET_REGION_INFO, &cfg) < 0 ||
	    pread(fd, &cmd, sizeof(cmd), (off_t)cfg.offset + PCI_COMMAND) != sizeof(cmd))
		return -1;
	cmd = on ? (cmd | PCI_COMMAND_MEMORY) : (cmd & ~PCI_COMMAND_MEMORY);
	return pwrite(fd, &cmd, sizeof(cmd), (off_t)cfg.offset + PCI_COMMAND) == sizeof(cmd) ? 0 : -1;
}

/* --- standalone: the kernel's rules, no daemon ------------------------------- */

static int standalone(const char *exporter, const char *edu_bdf)
{
	struct ctx c;
	struct edu e;
	struct vt_bar bar;
	char why[256], desc[128];
	int dev, dmabuf, r;
	double t0;

	if (ctx_open(&c) < 0 || edu_open(&c, edu_bdf, &e) < 0)
		return 1;
	dev = ctx_attach(&c, exporter);
	if (dev < 0)
		return 1;
	if (vt_map_bar0(dev, REG_TDBAL + 4, &bar, why, sizeof(why)) < 0) {
		say("error %s BAR0: %s", exporter, why);
		return 1;
	}
	bar.p[REG_TDBAL / 4] = TDBAL_WRITTEN;
	say("wrote %s tdbal=0x%08x status=0x%08x (through the BAR mmap)", exporter, bar.p[REG_TDBAL / 4],
	    bar.p[REG_STATUS / 4]);
	dmabuf = export_dmabuf(dev);
	if (dmabuf < 0) {
		say("error VFIO_DEVICE_FEATURE_DMA_BUF %s: %s", exporter, vt_errname(-dmabuf));
		return 1;
	}
	describe_dmabuf(dmabuf, desc, sizeof(desc));
	say("exported %s fd=%d %s", exporter, dmabuf, desc);
	/* mmap of a vfio dma-buf: the 7.3 exporter has no .mmap (vfio_pci_dmabuf_ops). */
	{
		void *p = mmap(NULL, DMABUF_LEN, PROT_READ, MAP_SHARED, dmabuf, 0);
		say("dmabuf-mmap %s", p == MAP_FAILED ? vt_errname(errno) : "ok");
		if (p != MAP_FAILED)
			munmap(p, DMABUF_LEN);
	}
	say_map(&c, dmabuf, IOVA_BUF);
	if (step(&e, "mapped", IOVA_BUF) < 0)
		return 1;

	/* Memory decoding off: vfio_basic_config_write() revokes the dma-bufs. */
	if (set_memory(dev, false) < 0) {
		say("error memory off: %s", vt_errname(errno));
		return 1;
	}
	say("memory off");
	if (step(&e, "memory-off", IOVA_BUF) < 0)
		return 1;
	say_map(&c, dmabuf, IOVA_BUF2);
	/* And on again: un-revoked, but the old mapping is not restored. */
	if (set_memory(dev, true) < 0) {
		say("error memory on: %s", vt_errname(errno));
		return 1;
	}
	say("memory on");
	if (step(&e, "memory-on-old-mapping", IOVA_BUF) < 0)
		return 1;
	say_map(&c, dmabuf, IOVA_BUF2);
	if (step(&e, "memory-on-new-mapping", IOVA_BUF2) < 0)
		return 1;
	r = unmap_iova(&c, IOVA_BUF2);
	say("unmap %#llx %s", IOVA_BUF2, r < 0 ? vt_errname(-r) : "ok");
	r = unmap_iova(&c, IOVA_BUF);
	say("unmap %#llx %s", IOVA_BUF, r < 0 ? vt_errname(-r) : "ok");
	say_map(&c, dmabuf, IOVA_BUF);
	if (step(&e, "remapped", IOVA_BUF) < 0)
		return 1;

	/* A function reset through the cdev: vfio_pci_ioctl_reset() revokes,
	 * resets, un-revokes. */
	bar.p[REG_TDBAL / 4] = TDBAL_WRITTEN;
	if (step(&e, "before-reset", IOVA_BUF) < 0)
		return 1;
	t0 = vt_now_us();
	r = ioctl(dev, VFIO_DEVICE_RESET) < 0 ? -errno : 0;
	say("reset VFIO_DEVICE_RESET %s %.1f ms", r < 0 ? vt_errname(-r) : "ok", (vt_now_us() - t0) / 1000);
	if (r < 0)
		return 1;
	say("bar-mmap tdbal=0x%08x status=0x%08x (the exporter's own view)", bar.p[REG_TDBAL / 4],
	    bar.p[REG_STATUS / 4]);
	if (step(&e, "after-reset-old-mapping", IOVA_BUF) < 0)
		return 1;
	r = unmap_iova(&c, IOVA_BUF);
	say("unmap %#llx %s", IOVA_BUF, r < 0 ? vt_errname(-r) : "ok");
	say_map(&c, dmabuf, IOVA_BUF);
	if (step(&e, "after-reset-remapped", IOVA_BUF) < 0)
		return 1;
	say("standalone done");
	return 0;
}

/* --- the exporter peer ------------------------------------------------------- */

static int send_fd(int sock, int fd)
{
	char data = 'd';
	struct iovec iov = { .iov_base = &data, .iov_len = 1 };
	union {
		struct cmsghdr h;
		char buf[CMSG_SPACE(sizeof(int))];
	} u = {};
	struct msghdr msg = { .msg_iov = &iov, .msg_iovlen = 1, .msg_control = u.buf, .msg_controllen = sizeof(u.buf) };
	struct cmsghdr *c = CMSG_FIRSTHDR(&msg);

	c->cmsg_level = SOL_SOCKET;
	c->cmsg_type = SCM_RIGHTS;
	c->cmsg_len = CMSG_LEN(sizeof(int));
	memcpy(CMSG_DATA(c), &fd, sizeof(int));
	return sendmsg(sock, &msg, MSG_NOSIGNAL) == 1 ? 0 : -errno;
}

static int recv_fd(int sock)
{
	char data;
	struct iovec iov = { .iov_base = &data, .iov_len = 1 };
	union {
		struct cmsghdr h;
		char buf[CMSG_SPACE(sizeof(int))];
	} u;
	struct msghdr msg = { .msg_iov = &iov, .msg_iovlen = 1, .msg_control = u.buf, .msg_controllen = sizeof(u.buf) };
	struct cmsghdr *c;
	int fd;

	if (recvmsg(sock, &msg, MSG_CMSG_CLOEXEC) != 1)
		return -EIO;
	c = CMSG_FIRSTHDR(&msg);
	if (!c || c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS)
		return -EBADMSG;
	memcpy(&fd, CMSG_DATA(c), sizeof(int));
	return fd;
}

static int on_pause_ack(vrd_peer *p, const struct vrd_pause *pause, void *userdata)
{
	(void)p;
	(void)userdata;
	say("pause %" PRIu64 " %s", pause->reset_id, pause->type);
	if (!strcmp(pause->type, "pause"))
		say("acked %" PRIu64, pause->reset_id);
	return 0;
}

static void on_resume_say(vrd_peer *p, const struct vrd_resume *resume, void *userdata)
{
	(void)p;
	(void)userdata;
	say("resume %" PRIu64 " %s", resume->reset_id, resume->result);
}

static int exporter(const char *address, const char *sockpath)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	vrd_peer *p = NULL;
	struct vt_bar bar;
	char why[256], desc[128];
	int dev = -1, iommu = -1, dmabuf, lsock, r;
	bool paused;

	r = vrd_peer_new(&p);
	if (r < 0) {
		say("error cannot connect to the bus: %s", vt_errname(-r));
		return 1;
	}
	vrd_peer_on_pause(p, on_pause_ack, NULL);
	vrd_peer_on_resume(p, on_resume_say, NULL);
	r = vrd_peer_take(p, address, &dev, &iommu, &paused);
	if (r < 0) {
		say("error take %s: %s %s", address, vrd_peer_error_name(p) ?: "?", vrd_peer_error_message(p) ?: "");
		return 1;
	}
	say("took %s paused=%d", address, paused);
	if (vt_map_bar0(dev, REG_TDBAL + 4, &bar, why, sizeof(why)) < 0) {
		say("error %s BAR0: %s", address, why);
		return 1;
	}
	bar.p[REG_TDBAL / 4] = TDBAL_WRITTEN;
	say("wrote %s tdbal=0x%08x status=0x%08x", address, bar.p[REG_TDBAL / 4], bar.p[REG_STATUS / 4]);
	dmabuf = export_dmabuf(dev);
	if (dmabuf < 0) {
		say("error VFIO_DEVICE_FEATURE_DMA_BUF %s: %s", address, vt_errname(-dmabuf));
		return 1;
	}
	describe_dmabuf(dmabuf, desc, sizeof(desc));
	say("exported %s fd=%d %s", address, dmabuf, desc);
	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", sockpath);
	unlink(sockpath);
	lsock = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (lsock < 0 || bind(lsock, (struct sockaddr *)&sa, sizeof(sa)) < 0 || listen(lsock, 4) < 0) {
		say("error socket %s: %s", sockpath, vt_errname(errno));
		return 1;
	}
	say("serving %s", sockpath);
	for (;;) {
		struct pollfd fds[2] = {
			{ .fd = vrd_peer_get_fd(p), .events = (short)vrd_peer_get_events(p) },
			{ .fd = lsock, .events = POLLIN },
		};
		uint64_t until;
		int timeout = -1;

		if (vrd_peer_get_timeout(p, &until) >= 0 && until != UINT64_MAX) {
			double left = until - vt_now_us();
			timeout = left <= 0 ? 0 : (int)(left / 1000) + 1;
		}
		if (poll(fds, 2, timeout) < 0 && errno != EINTR)
			break;
		if (fds[1].revents & POLLIN) {
			int c = accept4(lsock, NULL, NULL, SOCK_CLOEXEC);
			if (c >= 0) {
				r = send_fd(c, dmabuf);
				say("served %s", r < 0 ? vt_errname(-r) : "ok");
				close(c);
			}
		}
		r = vrd_peer_process(p);
		if (r < 0) {
			say("error bus: %s", vt_errname(-r));
			break;
		}
	}
	vrd_peer_unref(p);
	return 1;
}

/* --- the importer peer ------------------------------------------------------- */

struct importer {
	struct ctx c;
	struct edu e;
	int dmabuf;
	bool mapped, ignore;
	unsigned reads;
};

static void importer_read(struct importer *im, const char *why)
{
	struct sample s;
	int r = edu_read(&im->e, IOVA_BUF, &s);

	if (r < 0) {
		say("error read: edu DMA %s", vt_errname(-r));
		return;
	}
	say("read %u status=0x%08x tdbal=0x%08x dma=%s mapped=%s at=%.6f (%s)", ++im->reads, s.status, s.tdbal,
	    s.ok ? "ok" : "fault", im->mapped ? "yes" : "no", s.at_us / 1e6, why);
}

static int importer_map(struct importer *im, const char *verb)
{
	int r = map_dmabuf(&im->c, im->dmabuf, IOVA_BUF);

	if (r < 0) {
		say("map-error %#llx %s", IOVA_BUF, vt_errname(-r));
		return r;
	}
	im->mapped = true;
	say("%s %#llx", verb, IOVA_BUF);
	return 0;
}

static int on_pause_import(vrd_peer *p, const struct vrd_pause *pause, void *userdata)
{
	struct importer *im = userdata;
	int r;

	(void)p;
	say("pause %" PRIu64 " %s", pause->reset_id, pause->type);
	if (strcmp(pause->type, "pause") && strcmp(pause->type, "gone"))
		return 0; /* "force": nothing to acknowledge */
	if (im->ignore) {
		say("ignored %" PRIu64, pause->reset_id);
		return -1;
	}
	/* Let go of the BAR before the kernel revokes it: drop the IOVA. */
	r = unmap_iova(&im->c, IOVA_BUF);
	if (r < 0)
		say("unmap-error %#llx %s", IOVA_BUF, vt_errname(-r));
	else {
		im->mapped = false;
		say("unmapped %#llx", IOVA_BUF);
	}
	say("acked %" PRIu64, pause->reset_id);
	return 0;
}

static void on_resume_import(vrd_peer *p, const struct vrd_resume *resume, void *userdata)
{
	struct importer *im = userdata;

	(void)p;
	say("resume %" PRIu64 " %s", resume->reset_id, resume->result);
	if (im->ignore) {
		/* What the kernel left of the mapping that was never dropped. */
		importer_read(im, "after-resume, stale mapping");
		if (unmap_iova(&im->c, IOVA_BUF) == 0 && map_dmabuf(&im->c, im->dmabuf, IOVA_BUF) == 0)
			say("remapped-after-ignore %#llx", IOVA_BUF);
		importer_read(im, "after-resume, mapped again");
		return;
	}
	if (!im->mapped && importer_map(im, "mapped") < 0)
		return;
	importer_read(im, "after-resume");
}

static int importer(const char *sockpath, const char *address, const char *edu_bdf, bool ignore, unsigned sample_ms)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	struct importer im = { .ignore = ignore };
	const char *unique = NULL;
	vrd_peer *p = NULL;
	bool paused = false;
	double next;
	int s, r;

	if (ctx_open(&im.c) < 0 || edu_open(&im.c, edu_bdf, &im.e) < 0)
		return 1;
	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", sockpath);
	s = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (s < 0 || connect(s, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
		say("error connect %s: %s", sockpath, vt_errname(errno));
		return 1;
	}
	im.dmabuf = recv_fd(s);
	close(s);
	if (im.dmabuf < 0) {
		say("error no dma-buf from %s: %s", sockpath, vt_errname(-im.dmabuf));
		return 1;
	}
	{
		char desc[128];
		describe_dmabuf(im.dmabuf, desc, sizeof(desc));
		say("received fd=%d %s", im.dmabuf, desc);
	}
	r = vrd_peer_new(&p);
	if (r < 0) {
		say("error cannot connect to the bus: %s", vt_errname(-r));
		return 1;
	}
	vrd_peer_on_pause(p, on_pause_import, &im);
	vrd_peer_on_resume(p, on_resume_import, &im);
	/* Watch before mapping: a reset that begins in between pauses us, and
	 * one under way already holds the dma-buf revoked (a map would fail
	 * ENODEV): then its Resume maps it. */
	r = vrd_peer_watch_paused(p, address, &paused);
	if (r < 0) {
		say("error watch %s: %s %s", address, vrd_peer_error_name(p) ?: "?", vrd_peer_error_message(p) ?: "");
		return 1;
	}
	say("watching %s paused=%d", address, paused);
	if (!paused) {
		if (importer_map(&im, "mapped") < 0)
			return 1;
		importer_read(&im, "first");
	}
	(void)sd_bus_get_unique_name(vrd_peer_get_bus(p), &unique);
	say("ready %s pid=%d", unique ?: "?", (int)getpid());
	next = vt_now_us() + sample_ms * 1000.0;
	for (;;) {
		uint64_t wait = UINT64_MAX;

		if (ignore) {
			double left = next - vt_now_us();
			wait = left <= 0 ? 0 : (uint64_t)left;
		}
		r = vrd_peer_wait(p, wait);
		if (r < 0 && r != -EINTR)
			break;
		r = vrd_peer_process(p);
		if (r < 0) {
			say("error bus: %s", vt_errname(-r));
			break;
		}
		if (ignore && vt_now_us() >= next) {
			importer_read(&im, "sample");
			next = vt_now_us() + sample_ms * 1000.0;
		}
	}
	vrd_peer_unref(p);
	return 1;
}

static void usage(void)
{
	fprintf(stderr, "usage: dmabuf-importer --standalone --export BDF --dma EDU_BDF\n"
			"       dmabuf-importer --export ADDR --serve SOCKET\n"
			"       dmabuf-importer --import SOCKET --watch ADDR --dma EDU_BDF [--ignore-pause] [--sample MS]\n"
			"       common: [--log FILE] [--times FILE] [--prefix TEXT]\n");
}

int main(int argc, char **argv)
{
	enum { O_STANDALONE = 0x100, O_EXPORT, O_DMA, O_SERVE, O_IMPORT, O_WATCH, O_IGNORE, O_SAMPLE, O_LOG, O_TIMES,
	       O_PREFIX };
	static const struct option options[] = {
		{ "standalone", no_argument, NULL, O_STANDALONE },
		{ "export", required_argument, NULL, O_EXPORT },
		{ "dma", required_argument, NULL, O_DMA },
		{ "serve", required_argument, NULL, O_SERVE },
		{ "import", required_argument, NULL, O_IMPORT },
		{ "watch", required_argument, NULL, O_WATCH },
		{ "ignore-pause", no_argument, NULL, O_IGNORE },
		{ "sample", required_argument, NULL, O_SAMPLE },
		{ "log", required_argument, NULL, O_LOG },
		{ "times", required_argument, NULL, O_TIMES },
		{ "prefix", required_argument, NULL, O_PREFIX },
		{}
	};
	const char *export = NULL, *dma = NULL, *serve = NULL, *import = NULL, *watch = NULL;
	bool alone = false, ignore = false;
	unsigned sample_ms = 300;
	int c;

	while ((c = getopt_long(argc, argv, "", options, NULL)) >= 0)
		switch (c) {
		case O_STANDALONE:
			alone = true;
			break;
		case O_EXPORT:
			export = optarg;
			break;
		case O_DMA:
			dma = optarg;
			break;
		case O_SERVE:
			serve = optarg;
			break;
		case O_IMPORT:
			import = optarg;
			break;
		case O_WATCH:
			watch = optarg;
			break;
		case O_IGNORE:
			ignore = true;
			break;
		case O_SAMPLE:
			sample_ms = (unsigned)strtoul(optarg, NULL, 0) ?: 1;
			break;
		case O_LOG:
		case O_TIMES: {
			FILE *f = fopen(optarg, "ae");
			if (!f) {
				perror(optarg);
				return 2;
			}
			*(c == O_LOG ? &logf : &timesf) = f;
			break;
		}
		case O_PREFIX:
			prefix = optarg;
			break;
		default:
			usage();
			return 2;
		}
	if (optind < argc) {
		usage();
		return 2;
	}
	if (alone && export && dma && !serve && !import)
		return standalone(export, dma);
	if (!alone && export && serve && !import && !dma)
		return exporter(export, serve);
	if (!alone && import && watch && dma && !export)
		return importer(import, watch, dma, ignore, sample_ms);
	usage();
	return 2;
}
