/* bar-peer: a vfio-resetd peer for the VM tests that really uses its device.
 *
 * It takes devices from the daemon (TakeDevice), maps each one's BAR0
 * (VFIO_DEVICE_GET_REGION_INFO, mmap), writes a register whose reset value is
 * known and reads it back, then serves the daemon's pauses. On Resume it
 * reads the register again (the reset value after a reset, the written value
 * after an abandoned one), writes it once more and reads it back: the fds and
 * the mapping stay usable across the reset. On a Pause of type "gone" it lets
 * go of that device (unmaps, closes its fds) so that the kernel's unbind can
 * finish.
 *
 * The register: TDBAL (Transmit Descriptor Base Address Low, queue 0) at BAR0
 * offset 0x3800 (E1000_TDBAL in QEMU's and Linux's e1000_regs.h). QEMU's three
 * NIC models the test VM has keep it writable and clear it on reset:
 *   - e1000 (hw/net/e1000.c): putreg(TDBAL), a plain write; e1000_reset()
 *     zeroes mac_reg[] before applying mac_reg_init[], which lacks TDBAL;
 *   - e1000e (hw/net/e1000e_core.c): e1000e_set_dbal() keeps val & ~0xf;
 *     e1000e_core_reset() zeroes core->mac[] except e1000e_mac_reg_init[];
 *   - igb (hw/net/igb_core.c): 0x3800 is TDBAL0's alias (mac_reg_access[
 *     TDBAL0_A] = 0x2A00 words, i.e. 0xE000), igb_set_dbal() keeps
 *     val & E1000_XDBAL_MASK (QEMU 10's igb masks more low bits: 0x...50
 *     reads back as 0x...40 there); igb_reset() sets every register outside
 *     igb_mac_reg_init[] (TDBAL0 is not in it) to 0.
 * So the written value, 0x5a5a5a00, has its low eight bits clear, and the
 * reset value is 0.
 * (Config space would not do: the kernel saves and restores the standard
 * header around every reset, so Cache Line Size would come back as written.)
 *
 * Every event is one line on stdout (and in --log FILE; in --times FILE after
 * the guest's CLOCK_MONOTONIC in seconds), prefixed by --prefix TEXT on
 * stdout only:
 *   took ADDR paused=B | error NAME MESSAGE
 *   bar0 ADDR size=N mmap=yes
 *   wrote ADDR reg=0xOFF value=0xV readback=0xR
 *   pause ID TYPE ADDR...
 *   before-ack ADDR reg=0xOFF value=0xV   (read just before acking: still the written value)
 *   acked ID | ack-error ID NAME MESSAGE
 *   resume ID RESULT
 *   value ADDR reg=0xOFF mmap=0xV pread=0xV reset=yes|no
 *   rewrote ADDR reg=0xOFF value=0xV readback=0xR
 *   ioas ADDR id=N map=ok iova=0xI | map=errno=ENAME   (cdev model: its IOAS, IOMMU_IOAS_MAP)
 *   ioas-other ADDR id=N map=...     (with --map-into N: another peer's IOAS through the same fd)
 *   ioas-kept ADDR id=N now=M iova=0xI unmap=LEN|unmap=errno=ENAME remap=ok|errno=ENAME
 *                                    (with --rejoin, after each rejoined line: the IOAS the
 *                                     buffer went into (N) and the device's IommufdIoasId from
 *                                     the new daemon (M); IOMMU_IOAS_UNMAP of that IOVA answers
 *                                     the length unmapped, LEN 65536 when the mapping survived;
 *                                     then mapped again there for the next restart)
 *   ready UNIQUE pid=PID taken=N      (once every take is answered)
 *   busy ADDR reads=N last=0xV       (with --busy, at each Resume)
 *   gone ADDR | closed ADDR
 *   started ID DEVSET | finished ID DEVSET RESULT duration_usec=N   (broadcasts,
 *                                     unless --no-broadcasts)
 *   released ADDR | exiting
 *   daemon-gone OLD | daemon-back NEW              (the owner of org.vfioresetd1 changed)
 *   rejoined ADDR paused=B reg=0xOFF value=0xV    (with --rejoin: taken again from a
 *                                     restarted daemon, its register read through the old
 *                                     mapping) | rejoin-error ADDR NAME MESSAGE
 *   held ADDR reg=0xOFF value=0xV    (without --rejoin, at daemon-back: not taken again, its
 *                                     register read through the mapping it kept)
 *
 * Usage: bar-peer --take ADDR [--take ADDR]... [--ack | --silent | --ack-after MS]
 *          [--reg OFFSET] [--value V] [--busy MS] [--release-on-resume]
 *          [--exit-on-resume] [--log FILE] [--times FILE] [--prefix TEXT]
 *          [--no-broadcasts] [--rejoin] [--map-into IOAS]
 *
 * --rejoin keeps the claims across a restart of the daemon, as docs/dbus-api.md
 * (TakeDevice) says a peer does: when a daemon takes the bus name, TakeDevice
 * again for every device it holds; the fds and mapping it had stay its own.
 *
 * It is also the scenarios' requester, because busctl prints a failed call's
 * message but not its error name:
 *   bar-peer --reset ADDR [--timeout-usec N] [--force] [--borrow] [--count N] [--between CMD] [--log FILE] [--prefix TEXT]
 * calls ResetDevice N times (default 1), with the options Force and Borrow when
 * asked, and prints, for each,
 *   reset-call ADDR                   (as it sends the call)
 *   reset-reply DEVSET RESULT duration_usec=N wall_usec=N
 *   reset-error NAME MESSAGE wall_usec=N
 * (wall_usec: the call's round trip by this process's CLOCK_MONOTONIC), then
 * with --count above 1
 *   reset-summary n=N ok=N wall_min_us=N wall_median_us=N daemon_min_us=N daemon_median_us=N
 * Exit status 0 when every call succeeded. --between CMD runs CMD through
 * system(3) before each call, outside its timing (a bench interleaving
 * another measurement with the resets).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <linux/pci_regs.h>
#include <linux/vfio.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>
#include <systemd/sd-bus.h>
#include <systemd/sd-event.h>

#include "vfio-test.h"
#include "peer-log.h"
#include "iommufd-uapi.h"

#define BUS_NAME "org.vfioresetd1"
#define ROOT_PATH "/org/vfioresetd1"
#define MANAGER_IFACE "org.vfioresetd1.Manager"
#define MAX_DEVICES 8

struct dev {
	char address[16];
	int device_fd;
	int iommu_fd;
	volatile uint32_t *bar; /* BAR0, mapped */
	size_t bar_size;
	off_t bar_offset; /* BAR0's offset in the device fd */
	atomic_ulong busy_reads;
	atomic_uint busy_last;
	uint32_t ioas;          /* the IOAS its buffer is mapped into (cdev model), 0 if none */
	uint64_t iova;          /* where, IOAS_BUFFER bytes */
	void *buffer;
};

static sd_bus *bus;
static sd_event *event;
static struct dev devs[MAX_DEVICES];
static size_t n_devs;
static enum { ACK, SILENT, ACK_AFTER } mode = ACK;
static uint64_t ack_after_usec;
static uint32_t reg = 0x3800, value = 0x5a5a5a00;
static unsigned busy_ms;
static bool release_on_resume, exit_on_resume, no_broadcasts, rejoin;
static uint32_t map_into;       /* --map-into: another peer's IOAS id to try */
static const char *between;     /* --between: a command run before each ResetDevice */

/* The busy thread touches the BARs while this is set (not while quiesced). */
static atomic_bool touching;
static atomic_bool stop_busy;
static pthread_t busy_thread;
static bool busy_started;
static pthread_mutex_t dev_lock = PTHREAD_MUTEX_INITIALIZER;


static struct dev *find_dev(const char *address)
{
	for (size_t i = 0; i < n_devs; i++)
		if (devs[i].device_fd >= 0 && !strcmp(devs[i].address, address))
			return &devs[i];
	return NULL;
}

static int map_bar0(struct dev *d)
{
	struct vt_bar bar;
	char why[256];

	if (vt_map_bar0(d->device_fd, reg + 4, &bar, why, sizeof(why)) < 0) {
		say("error bar0 %s %s", d->address, why);
		return -1;
	}
	d->bar = bar.p;
	d->bar_size = bar.size;
	d->bar_offset = bar.offset;
	say("bar0 %s size=%zu mmap=yes", d->address, bar.size);
	return 0;
}

static void write_reg(struct dev *d, const char *verb)
{
	d->bar[reg / 4] = value;
	say("%s %s reg=%#x value=0x%08x readback=0x%08x", verb, d->address, reg, value, d->bar[reg / 4]);
}

static uint32_t pread_reg(struct dev *d, bool *ok)
{
	uint32_t v = 0;

	*ok = pread(d->device_fd, &v, sizeof(v), d->bar_offset + reg) == sizeof(v);
	return v;
}

static void close_dev(struct dev *d)
{
	if (d->bar)
		munmap((void *)d->bar, d->bar_size);
	d->bar = NULL;
	if (d->device_fd >= 0)
		close(d->device_fd);
	if (d->iommu_fd >= 0)
		close(d->iommu_fd);
	d->device_fd = d->iommu_fd = -1;
}

static void *busy_loop(void *arg)
{
	struct timespec ts = { .tv_sec = busy_ms / 1000, .tv_nsec = (long)(busy_ms % 1000) * 1000000 };

	(void)arg;
	while (!atomic_load(&stop_busy)) {
		if (atomic_load(&touching)) {
			pthread_mutex_lock(&dev_lock);
			for (size_t i = 0; i < n_devs; i++) {
				struct dev *d = &devs[i];
				if (!d->bar)
					continue;
				atomic_store(&d->busy_last, d->bar[reg / 4]);
				atomic_fetch_add(&d->busy_reads, 1);
			}
			pthread_mutex_unlock(&dev_lock);
		}
		nanosleep(&ts, NULL);
	}
	return NULL;
}

static int ack(uint64_t id)
{
	sd_bus_error e = SD_BUS_ERROR_NULL;
	int r;

	/* The last look before letting go: no reset may have happened yet. */
	for (size_t i = 0; i < n_devs; i++)
		if (devs[i].bar)
			say("before-ack %s reg=%#x value=0x%08x", devs[i].address, reg, devs[i].bar[reg / 4]);

	r = sd_bus_call_method(bus, BUS_NAME, ROOT_PATH, MANAGER_IFACE, "PauseComplete", &e, NULL, "t", id);
	if (r < 0)
		say("ack-error %" PRIu64 " %s %s", id, e.name ?: "?", e.message ?: strerror(-r));
	else
		say("acked %" PRIu64, id);
	sd_bus_error_free(&e);
	return 0;
}

/* A floating one-shot source: the event loop owns it and disables it after this. */
static int on_ack_timer(sd_event_source *s, uint64_t usec, void *userdata)
{
	(void)s;
	(void)usec;
	ack((uint64_t)(uintptr_t)userdata);
	return 0;
}

static void let_go(const char *address)
{
	struct dev *d = find_dev(address);

	if (!d)
		return;
	pthread_mutex_lock(&dev_lock);
	close_dev(d);
	pthread_mutex_unlock(&dev_lock);
	say("closed %s", address);
}

static int on_pause(sd_bus_message *m, void *userdata, sd_bus_error *error)
{
	const char *set, *type;
	uint64_t id, deadline;
	char **addresses = NULL;
	char line[512];
	size_t len;

	(void)userdata;
	(void)error;
	if (sd_bus_message_read(m, "otst", &set, &id, &type, &deadline) < 0 ||
	    sd_bus_message_read_strv(m, &addresses) < 0)
		return 0;
	len = (size_t)snprintf(line, sizeof(line), "pause %" PRIu64 " %s", id, type);
	for (char **a = addresses; a && *a && len < sizeof(line); a++)
		len += (size_t)snprintf(line + len, sizeof(line) - len, " %s", *a);
	say("%s", line);
	if (!strcmp(type, "gone")) {
		/* The kernel waits for every fd of the device: give ours back. */
		for (char **a = addresses; a && *a; a++) {
			say("gone %s", *a);
			let_go(*a);
		}
	} else if (!strcmp(type, "pause") && mode != SILENT) {
		/* Quiesce: stop touching the devices, then say so. */
		atomic_store(&touching, false);
		pthread_mutex_lock(&dev_lock); /* the busy thread is out of the BARs */
		pthread_mutex_unlock(&dev_lock);
		if (mode == ACK)
			ack(id);
		else
			/* Accuracy 1 ms: sd-event's default would allow 250 ms of slack. */
			sd_event_add_time_relative(event, NULL, CLOCK_MONOTONIC, ack_after_usec, 1000, on_ack_timer,
						   (void *)(uintptr_t)id);
	}
	for (char **a = addresses; a && *a; a++)
		free(*a);
	free(addresses);
	return 0;
}

static void release(struct dev *d)
{
	sd_bus_error e = SD_BUS_ERROR_NULL;
	char address[sizeof(d->address)];

	memcpy(address, d->address, sizeof(address));
	pthread_mutex_lock(&dev_lock);
	close_dev(d);
	pthread_mutex_unlock(&dev_lock);
	if (sd_bus_call_method(bus, BUS_NAME, ROOT_PATH, MANAGER_IFACE, "ReleaseDevice", &e, NULL, "s", address) < 0)
		say("error release %s %s %s", address, e.name ?: "?", e.message ?: "");
	else
		say("released %s", address);
	sd_bus_error_free(&e);
}

static int on_resume(sd_bus_message *m, void *userdata, sd_bus_error *error)
{
	const char *set, *result;
	uint64_t id;

	(void)userdata;
	(void)error;
	if (sd_bus_message_read(m, "ots", &set, &id, &result) < 0)
		return 0;
	say("resume %" PRIu64 " %s", id, result);
	for (size_t i = 0; i < n_devs; i++) {
		struct dev *d = &devs[i];
		uint32_t v, pv;
		bool ok;

		if (!d->bar)
			continue;
		if (busy_ms)
			say("busy %s reads=%lu last=0x%08x", d->address, atomic_load(&d->busy_reads),
			    atomic_load(&d->busy_last));
		v = d->bar[reg / 4];
		pv = pread_reg(d, &ok);
		if (ok)
			say("value %s reg=%#x mmap=0x%08x pread=0x%08x reset=%s", d->address, reg, v, pv,
			    v == 0 ? "yes" : "no");
		else
			say("value %s reg=%#x mmap=0x%08x pread=error(%m) reset=%s", d->address, reg, v,
			    v == 0 ? "yes" : "no");
		write_reg(d, "rewrote");
	}
	atomic_store(&touching, true);
	if (release_on_resume)
		for (size_t i = 0; i < n_devs; i++)
			if (devs[i].device_fd >= 0)
				release(&devs[i]);
	if (exit_on_resume) {
		say("exiting");
		sd_event_exit(event, 0);
	}
	return 0;
}

/* The broadcasts, so that a scenario sees every reset's outcome and duration. */
static int on_started(sd_bus_message *m, void *userdata, sd_bus_error *error)
{
	const char *set;
	uint64_t id;

	(void)userdata;
	(void)error;
	if (sd_bus_message_read(m, "ot", &set, &id) >= 0)
		say("started %" PRIu64 " %s", id, set);
	return 0;
}

static int on_finished(sd_bus_message *m, void *userdata, sd_bus_error *error)
{
	const char *set, *result;
	uint64_t id, duration;

	(void)userdata;
	(void)error;
	if (sd_bus_message_read(m, "otst", &set, &id, &result, &duration) >= 0)
		say("finished %" PRIu64 " %s %s duration_usec=%" PRIu64, id, set, result, duration);
	return 0;
}

#define IOAS_BUFFER 65536

/* IOMMU_IOAS_MAP of a fresh 64 KiB buffer into IOAS id through the iommu fd:
 * "ok iova=0x..." or "errno=ENAME". Its own IOAS's mapping is kept in d. */
static void ioas_map(struct dev *d, uint32_t id, char *out, size_t size)
{
	void *buf = mmap(NULL, IOAS_BUFFER, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	struct iommu_ioas_map m = {
		.size = sizeof(m),
		.flags = IOMMU_IOAS_MAP_READABLE | IOMMU_IOAS_MAP_WRITEABLE,
		.ioas_id = id,
		.user_va = (uintptr_t)buf,
		.length = IOAS_BUFFER,
	};

	if (buf == MAP_FAILED)
		snprintf(out, size, "errno=%s", vt_errname(errno));
	else if (ioctl(d->iommu_fd, IOMMU_IOAS_MAP, &m) < 0)
		snprintf(out, size, "errno=%s", vt_errname(errno));
	else {
		snprintf(out, size, "ok iova=0x%llx", (unsigned long long)m.iova);
		if (!d->ioas) {
			d->ioas = id;
			d->iova = m.iova;
			d->buffer = buf;
		}
	}
}

/* Device.IommufdIoasId of d from the daemon that owns the name as dest. */
static uint32_t ioas_of(const char *dest, const struct dev *d)
{
	sd_bus_error e = SD_BUS_ERROR_NULL;
	char path[96];
	uint32_t id = 0;

	snprintf(path, sizeof(path), ROOT_PATH "/device/pci_%.4s_%.2s_%.2s_%.1s", d->address, d->address + 5,
		 d->address + 8, d->address + 11);
	if (sd_bus_get_property_trivial(bus, dest, path, "org.vfioresetd1.Device", "IommufdIoasId", &e, 'u', &id) < 0)
		id = 0;
	sd_bus_error_free(&e);
	return id;
}

/* After a rejoin: is d's buffer still mapped where it was? IOMMU_IOAS_UNMAP
 * of exactly that range answers the length it unmapped (ENOENT when nothing
 * is there, or the IOAS is gone); then the same buffer goes back at the same
 * IOVA (IOMMU_IOAS_MAP_FIXED_IOVA), for the next restart to find. */
static void check_kept(const char *dest, struct dev *d)
{
	struct iommu_ioas_unmap u = { .size = sizeof(u), .ioas_id = d->ioas, .iova = d->iova, .length = IOAS_BUFFER };
	struct iommu_ioas_map m = {
		.size = sizeof(m),
		.flags = IOMMU_IOAS_MAP_FIXED_IOVA | IOMMU_IOAS_MAP_READABLE | IOMMU_IOAS_MAP_WRITEABLE,
		.ioas_id = d->ioas,
		.user_va = (uintptr_t)d->buffer,
		.length = IOAS_BUFFER,
		.iova = d->iova,
	};
	char unmapped[48], remapped[48];

	if (!d->ioas)
		return;
	if (ioctl(d->iommu_fd, IOMMU_IOAS_UNMAP, &u) < 0)
		snprintf(unmapped, sizeof(unmapped), "errno=%s", vt_errname(errno));
	else
		snprintf(unmapped, sizeof(unmapped), "%llu", (unsigned long long)u.length);
	if (ioctl(d->iommu_fd, IOMMU_IOAS_MAP, &m) < 0)
		snprintf(remapped, sizeof(remapped), "errno=%s", vt_errname(errno));
	else
		snprintf(remapped, sizeof(remapped), "ok");
	say("ioas-kept %s id=%u now=%u iova=0x%llx unmap=%s remap=%s", d->address, d->ioas, ioas_of(dest, d),
	    (unsigned long long)d->iova, unmapped, remapped);
}

/* In the cdev model (Device.IommufdIoasId > 0) the peer's DMA goes through
 * its IOAS: map a buffer there; with --map-into, try another peer's too
 * (every holder of the context's fd reaches every IOAS id of it). */
static void map_ioas(struct dev *d)
{
	uint32_t id = ioas_of(BUS_NAME, d);
	char what[64];

	if (id == 0)
		return;
	ioas_map(d, id, what, sizeof(what));
	say("ioas %s id=%u map=%s", d->address, id, what);
	if (map_into && map_into != id) {
		ioas_map(d, map_into, what, sizeof(what));
		say("ioas-other %s id=%u map=%s", d->address, map_into, what);
	}
}

static int take(const char *address)
{
	sd_bus_error e = SD_BUS_ERROR_NULL;
	sd_bus_message *reply = NULL;
	int device, iommu, paused, r;
	struct dev *d;

	if (n_devs == MAX_DEVICES) {
		say("error take %s: too many devices", address);
		return -1;
	}
	r = sd_bus_call_method(bus, BUS_NAME, ROOT_PATH, MANAGER_IFACE, "TakeDevice", &e, &reply, "s", address);
	if (r < 0) {
		say("error %s %s", e.name ?: "?", e.message ?: strerror(-r));
		sd_bus_error_free(&e);
		return -1;
	}
	r = sd_bus_message_read(reply, "hhb", &device, &iommu, &paused);
	if (r < 0) {
		say("error take %s: bad reply: %s", address, strerror(-r));
		sd_bus_message_unref(reply);
		return -1;
	}
	d = &devs[n_devs];
	snprintf(d->address, sizeof(d->address), "%s", address);
	/* The reply owns its fds: keep duplicates. */
	d->device_fd = fcntl(device, F_DUPFD_CLOEXEC, 3);
	d->iommu_fd = fcntl(iommu, F_DUPFD_CLOEXEC, 3);
	sd_bus_message_unref(reply);
	if (d->device_fd < 0 || d->iommu_fd < 0) {
		say("error take %s: dup: %m", address);
		return -1;
	}
	n_devs++;
	say("took %s paused=%d", address, paused);
	map_ioas(d);
	if (map_bar0(d) < 0)
		return -1;
	write_reg(d, "wrote");
	return 0;
}

/* The daemon's name changed hands: with --rejoin, take every device again
 * from the new owner; the new fds close with the reply, ours stay. Without,
 * keep holding them, untaken (the new daemon keeps them for this process). */
static int on_owner_changed(sd_bus_message *m, void *userdata, sd_bus_error *error)
{
	const char *name, *old_owner, *new_owner;

	(void)userdata;
	(void)error;
	if (sd_bus_message_read(m, "sss", &name, &old_owner, &new_owner) < 0)
		return 0;
	if (*old_owner)
		say("daemon-gone %s", old_owner);
	if (!*new_owner)
		return 0;
	say("daemon-back %s", new_owner);
	for (size_t i = 0; i < n_devs; i++) {
		sd_bus_error e = SD_BUS_ERROR_NULL;
		sd_bus_message *reply = NULL;
		struct dev *d = &devs[i];
		int device, iommu, paused = 0;

		if (d->device_fd < 0)
			continue;
		if (!rejoin) {
			say("held %s reg=%#x value=0x%08x", d->address, reg, d->bar ? d->bar[reg / 4] : 0);
			continue;
		}
		if (sd_bus_call_method(bus, new_owner, ROOT_PATH, MANAGER_IFACE, "TakeDevice", &e, &reply, "s",
				       d->address) < 0)
			say("rejoin-error %s %s %s", d->address, e.name ?: "?", e.message ?: "");
		else if (sd_bus_message_read(reply, "hhb", &device, &iommu, &paused) >= 0) {
			say("rejoined %s paused=%d reg=%#x value=0x%08x", d->address, paused, reg,
			    d->bar ? d->bar[reg / 4] : 0);
			check_kept(new_owner, d);
		}
		sd_bus_message_unref(reply);
		sd_bus_error_free(&e);
	}
	return 0;
}

static uint64_t now_usec(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000 + (uint64_t)ts.tv_nsec / 1000;
}

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
	return (x > y) - (x < y);
}

static uint64_t median(uint64_t *v, size_t n)
{
	qsort(v, n, sizeof(*v), cmp_u64);
	return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

/* ResetDevice(s address, a{sv} options) -> (o devset, s result, t duration_usec), COUNT times. */
static int request_resets(const char *address, uint64_t timeout_usec, bool force, bool borrow, unsigned count)
{
	uint64_t *wall = calloc(count, sizeof(uint64_t)), *daemon_us = calloc(count, sizeof(uint64_t));
	unsigned ok = 0;

	if (!wall || !daemon_us)
		abort();
	for (unsigned i = 0; i < count; i++) {
		sd_bus_error e = SD_BUS_ERROR_NULL;
		sd_bus_message *call = NULL, *reply = NULL;
		const char *set, *result;
		uint64_t t0, t, duration;
		int r;

		r = sd_bus_message_new_method_call(bus, &call, BUS_NAME, ROOT_PATH, MANAGER_IFACE, "ResetDevice");
		if (r >= 0)
			r = sd_bus_message_append(call, "s", address);
		if (r >= 0)
			r = sd_bus_message_open_container(call, 'a', "{sv}");
		if (r >= 0 && timeout_usec)
			r = sd_bus_message_append(call, "{sv}", "QuiesceTimeoutUSec", "t", timeout_usec);
		if (r >= 0 && force)
			r = sd_bus_message_append(call, "{sv}", "Force", "b", 1);
		if (r >= 0 && borrow)
			r = sd_bus_message_append(call, "{sv}", "Borrow", "b", 1);
		if (r >= 0)
			r = sd_bus_message_close_container(call);
		if (r < 0) {
			say("reset-error local cannot build the call: %s", strerror(-r));
			sd_bus_message_unref(call);
			break;
		}
		if (between && system(between) != 0)
			say("between-error %s", between);
		say("reset-call %s", address);
		t0 = now_usec();
		/* An hour: the daemon's deadline decides, not the bus's 25 s default. */
		r = sd_bus_call(bus, call, 3600ULL * 1000000, &e, &reply);
		t = now_usec() - t0;
		if (r < 0)
			say("reset-error %s %s wall_usec=%" PRIu64, e.name ?: "?", e.message ?: strerror(-r), t);
		else if (sd_bus_message_read(reply, "ost", &set, &result, &duration) < 0)
			say("reset-error local bad reply wall_usec=%" PRIu64, t);
		else {
			say("reset-reply %s %s duration_usec=%" PRIu64 " wall_usec=%" PRIu64, set, result, duration, t);
			wall[ok] = t;
			daemon_us[ok++] = duration;
		}
		sd_bus_error_free(&e);
		sd_bus_message_unref(reply);
		sd_bus_message_unref(call);
	}
	if (count > 1) {
		if (ok > 0) {
			uint64_t wmin, dmin, wmed, dmed;

			wmed = median(wall, ok);
			wmin = wall[0];
			dmed = median(daemon_us, ok);
			dmin = daemon_us[0];
			say("reset-summary n=%u ok=%u wall_min_us=%" PRIu64 " wall_median_us=%" PRIu64
			    " daemon_min_us=%" PRIu64 " daemon_median_us=%" PRIu64,
			    count, ok, wmin, wmed, dmin, dmed);
		} else
			say("reset-summary n=%u ok=0", count);
	}
	free(wall);
	free(daemon_us);
	return ok == count ? 0 : 1;
}

static void usage(void)
{
	fprintf(stderr, "usage: bar-peer --take ADDR... [--ack|--silent|--ack-after MS] [--reg OFF] [--value V]\n"
			"       [--busy MS] [--release-on-resume] [--exit-on-resume] [--log FILE] [--times FILE]\n"
			"       [--prefix TEXT] [--no-broadcasts] [--rejoin] [--map-into IOAS]\n"
			"       bar-peer --reset ADDR [--timeout-usec N] [--force] [--borrow] [--count N] [--between CMD] [--log FILE]\n"
			"                [--prefix TEXT]\n");
}

int main(int argc, char **argv)
{
	enum { O_ACK = 0x100, O_SILENT, O_ACK_AFTER, O_REG, O_VALUE, O_BUSY, O_RELEASE, O_EXIT, O_LOG, O_PREFIX,
	       O_RESET, O_TIMEOUT, O_FORCE, O_COUNT, O_TIMES, O_NO_BROADCASTS, O_BORROW, O_REJOIN, O_MAP_INTO,
	       O_BETWEEN };
	static const struct option options[] = {
		{ "take", required_argument, NULL, 't' },
		{ "ack", no_argument, NULL, O_ACK },
		{ "silent", no_argument, NULL, O_SILENT },
		{ "ack-after", required_argument, NULL, O_ACK_AFTER },
		{ "reg", required_argument, NULL, O_REG },
		{ "value", required_argument, NULL, O_VALUE },
		{ "busy", required_argument, NULL, O_BUSY },
		{ "release-on-resume", no_argument, NULL, O_RELEASE },
		{ "exit-on-resume", no_argument, NULL, O_EXIT },
		{ "log", required_argument, NULL, O_LOG },
		{ "prefix", required_argument, NULL, O_PREFIX },
		{ "reset", required_argument, NULL, O_RESET },
		{ "timeout-usec", required_argument, NULL, O_TIMEOUT },
		{ "force", no_argument, NULL, O_FORCE },
		{ "borrow", no_argument, NULL, O_BORROW },
		{ "count", required_argument, NULL, O_COUNT },
		{ "between", required_argument, NULL, O_BETWEEN },
		{ "times", required_argument, NULL, O_TIMES },
		{ "no-broadcasts", no_argument, NULL, O_NO_BROADCASTS },
		{ "rejoin", no_argument, NULL, O_REJOIN },
		{ "map-into", required_argument, NULL, O_MAP_INTO },
		{}
	};
	const char *takes[MAX_DEVICES], *unique = NULL, *reset_address = NULL;
	size_t n_takes = 0, taken = 0;
	uint64_t timeout_usec = 0;
	unsigned count = 1;
	bool force = false, borrow = false;
	int c, r;

	for (size_t i = 0; i < MAX_DEVICES; i++)
		devs[i].device_fd = devs[i].iommu_fd = -1;
	while ((c = getopt_long(argc, argv, "", options, NULL)) >= 0)
		switch (c) {
		case 't':
			if (n_takes == MAX_DEVICES) {
				usage();
				return 2;
			}
			takes[n_takes++] = optarg;
			break;
		case O_ACK:
			mode = ACK;
			break;
		case O_SILENT:
			mode = SILENT;
			break;
		case O_ACK_AFTER:
			mode = ACK_AFTER;
			ack_after_usec = strtoull(optarg, NULL, 0) * 1000;
			break;
		case O_REG:
			reg = (uint32_t)strtoul(optarg, NULL, 0) & ~3u;
			break;
		case O_VALUE:
			value = (uint32_t)strtoul(optarg, NULL, 0);
			break;
		case O_BUSY:
			busy_ms = (unsigned)strtoul(optarg, NULL, 0) ?: 1;
			break;
		case O_RELEASE:
			release_on_resume = true;
			break;
		case O_EXIT:
			exit_on_resume = true;
			break;
		case O_LOG:
			logf = fopen(optarg, "ae");
			if (!logf) {
				perror(optarg);
				return 2;
			}
			break;
		case O_PREFIX:
			prefix = optarg;
			break;
		case O_NO_BROADCASTS:
			no_broadcasts = true;
			break;
		case O_REJOIN:
			rejoin = true;
			break;
		case O_MAP_INTO:
			map_into = (uint32_t)strtoul(optarg, NULL, 0);
			break;
		case O_TIMES:
			timesf = fopen(optarg, "ae");
			if (!timesf) {
				perror(optarg);
				return 2;
			}
			break;
		case O_RESET:
			reset_address = optarg;
			break;
		case O_TIMEOUT:
			timeout_usec = strtoull(optarg, NULL, 0);
			break;
		case O_FORCE:
			force = true;
			break;
		case O_BORROW:
			borrow = true;
			break;
		case O_BETWEEN:
			between = optarg;
			break;
		case O_COUNT:
			count = (unsigned)strtoul(optarg, NULL, 0);
			if (count < 1) {
				usage();
				return 2;
			}
			break;
		default:
			usage();
			return 2;
		}
	if ((n_takes == 0) == !reset_address || optind < argc) {
		usage();
		return 2;
	}
	if (reset_address) {
		if (sd_bus_open_system(&bus) < 0) {
			say("reset-error local cannot connect to the system bus");
			return 1;
		}
		r = request_resets(reset_address, timeout_usec, force, borrow, count);
		sd_bus_flush_close_unref(bus);
		return r;
	}

	if (sd_event_default(&event) < 0 || sd_bus_open_system(&bus) < 0 || sd_bus_attach_event(bus, event, 0) < 0) {
		say("error cannot connect to the system bus");
		return 1;
	}
	/* Subscribe before taking: a pause may follow the reply at once. */
	if (sd_bus_match_signal(bus, NULL, BUS_NAME, ROOT_PATH, MANAGER_IFACE, "Pause", on_pause, NULL) < 0 ||
	    sd_bus_match_signal(bus, NULL, BUS_NAME, ROOT_PATH, MANAGER_IFACE, "Resume", on_resume, NULL) < 0 ||
	    (!no_broadcasts &&
	     (sd_bus_match_signal(bus, NULL, BUS_NAME, ROOT_PATH, MANAGER_IFACE, "ResetStarted", on_started, NULL) < 0 ||
	      sd_bus_match_signal(bus, NULL, BUS_NAME, ROOT_PATH, MANAGER_IFACE, "ResetFinished", on_finished, NULL) < 0))) {
		say("error cannot subscribe to Pause/Resume");
		return 1;
	}
	if (sd_bus_add_match(bus, NULL,
			     "type='signal',sender='org.freedesktop.DBus',path='/org/freedesktop/DBus',"
			     "interface='org.freedesktop.DBus',member='NameOwnerChanged',arg0='" BUS_NAME "'",
			     on_owner_changed, NULL) < 0) {
		say("error cannot follow the owner of " BUS_NAME);
		return 1;
	}
	for (size_t i = 0; i < n_takes; i++)
		if (take(takes[i]) == 0)
			taken++;
	(void)sd_bus_get_unique_name(bus, &unique);
	say("ready %s pid=%d taken=%zu", unique ?: "?", (int)getpid(), taken);
	if (taken == 0)
		return 1;
	atomic_store(&touching, true);
	if (busy_ms) {
		if (pthread_create(&busy_thread, NULL, busy_loop, NULL) == 0)
			busy_started = true;
	}
	(void)sd_bus_set_exit_on_disconnect(bus, true);
	r = sd_event_loop(event);
	atomic_store(&stop_busy, true);
	if (busy_started)
		pthread_join(busy_thread, NULL);
	for (size_t i = 0; i < n_devs; i++)
		close_dev(&devs[i]);
	sd_bus_flush_close_unref(bus);
	sd_event_unref(event);
	return r < 0;
}
