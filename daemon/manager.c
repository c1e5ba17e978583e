/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <assert.h>
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <libudev.h>
#include <sys/signalfd.h>
#include <systemd/sd-daemon.h>

#include "log.h"
#include "macro.h"
#include "strv.h"
#include "manager.h"


/* A peer left the bus: no reset waits for it; its devices' Peers changed. */
static void on_peer_left(void *userdata, const char *name, const struct pci_address *touched, size_t n_touched) {
        struct manager *m = userdata;

        arbiter_peer_left(&m->arbiter, name);
        for (size_t i = 0; i < n_touched; i++)
                manager_emit_peers_changed(m, &touched[i]);
}

/* The kernel took a device back: its peers hear "gone", its set's reset ends. */
static void on_device_request(void *userdata, struct device *d) {
        struct manager *m = userdata;

        arbiter_device_gone(&m->arbiter, d);
        manager_emit_device_changed(m, d, (const char *[]) { "Managed", "Peers", NULL });
        if (d->dev_set)
                manager_emit_dev_set_changed(m, d->dev_set, (const char *[]) { "Managed", "Peers", NULL });
}

static int get_holders(void *userdata, const struct device_holder **ret, size_t *n_ret) {
        return manager_get_holders(userdata, ret, n_ret);
}

void manager_add_adapter(struct manager *m, struct quiesce_adapter *a, bool preferred) {
        assert(m->n_adapters < ELEMENTSOF(m->adapters));
        if (preferred) {
                memmove(m->adapters + 1, m->adapters, sizeof(*m->adapters) * m->n_adapters);
                m->adapters[0] = a;
        } else
                m->adapters[m->n_adapters] = a;
        m->arbiter.n_adapters = ++m->n_adapters;
}

int manager_new(const struct kernel_ops *kernel, struct manager **ret) {
        struct manager *m = calloc(1, sizeof(*m));
        int r;

        if (!m)
                return -ENOMEM;
        m->kernel = kernel;
        r = sd_event_default(&m->event);
        if (r < 0) {
                free(m);
                return r;
        }
        m->ownership = (struct ownership) {
                .ops = &ownership_model_ops,
                .kernel = kernel,
                .event = m->event,
                .events.device_request = on_device_request,
                .userdata = m,
                .store = &m->fdstore,
        };
        m->peers = (struct peer_registry) { .events.left = on_peer_left, .userdata = m };
        m->arbiter = (struct arbiter) {
                .event = m->event,
                .kernel = kernel,
                .ownership = &m->ownership,
                .peers = &m->peers,
                .stop_timeout_usec = 10 * USEC_PER_SEC,
                .holders = get_holders,
                .holders_userdata = m,
                .adapters = m->adapters,
        };
        r = quiesce_process_new(m->event, &m->adapters[0]);
        if (r >= 0)
                manager_add_adapter(m, m->adapters[0], false);
        m->udev = r >= 0 ? udev_new() : NULL;
        if (!m->udev) {
                manager_free(m);
                return -ENOMEM;
        }
        *ret = m;
        return 0;
}

struct manager *manager_free(struct manager *m) {
        if (!m)
                return NULL;
        arbiter_done(&m->arbiter);
        for (size_t i = 0; i < m->n_adapters; i++)
                quiesce_adapter_free(m->adapters[i]);
        peer_registry_done(&m->peers);
        /* Exiting is no letting go: a restart takes them back from the store
         * (a stop empties it, systemd.service(5) FileDescriptorStoreMax=). */
        m->ownership.keep_stored = true;
        for (size_t i = 0; i < m->n_devices; i++)
                m->ownership.ops->release(&m->ownership, m->devices[i]);
        fdstore_done(&m->fdstore);
        free(m->ownership.groups);
        free(m->ownership.contexts);
        polkit_registry_free(m->polkit);
        config_done(&m->config);
        free(m->config_path);
        for (size_t i = 0; i < m->n_dev_sets; i++)
                dev_set_free(m->dev_sets[i]);
        free(m->dev_sets);
        for (size_t i = 0; i < m->n_devices; i++)
                device_free(m->devices[i]);
        free(m->devices);
        free(m->holders);
        free(m->uninspected);
        free(m->removed);
        topology_free(m->topology);
        strv_free(m->bus_paused_peers_pending);
        sd_event_source_disable_unref(m->bus_paused_peers_flush);
        sd_event_source_unref(m->rescan_source);
        sd_event_source_unref(m->monitor_source);
        udev_monitor_unref(m->monitor);
        udev_unref(m->udev);
        sd_bus_flush_close_unref(m->bus);
        sd_event_unref(m->event);
        strv_free(m->topology_options.extra_vfio_drivers);
        free(m);
        return NULL;
}

struct device *manager_find_device(struct manager *m, const struct pci_address *a) {
        return devices_find(m->devices, m->n_devices, a);
}

struct dev_set *manager_find_dev_set(struct manager *m, const char *id) {
        for (size_t i = 0; i < m->n_dev_sets; i++)
                if (strcmp(m->dev_sets[i]->id, id) == 0)
                        return m->dev_sets[i];
        return NULL;
}


void manager_emit_device_changed(struct manager *m, struct device *d, const char *const *properties) {
        if (m->events.device_changed)
                m->events.device_changed(m->events_userdata, d, properties);
}

void manager_emit_dev_set_changed(struct manager *m, struct dev_set *s, const char *const *properties) {
        if (m->events.dev_set_changed)
                m->events.dev_set_changed(m->events_userdata, s, properties);
}

void manager_emit_peers_changed(struct manager *m, const struct pci_address *a) {
        struct device *d = manager_find_device(m, a);

        if (!d)
                return;
        manager_emit_device_changed(m, d, (const char *[]) { "Peers", NULL });
        if (d->dev_set)
                manager_emit_dev_set_changed(m, d->dev_set, (const char *[]) { "Peers", NULL });
}

static void invalidate_holders(struct manager *m) {
        m->holders = mfree(m->holders);
        m->n_holders = 0;
        m->holders_stamp = 0;
}

/* A group target held blocks every device of the group; a cdev only its device. */
struct holder_owner {
        struct device *device;
        bool group;
};

/* Said when the scan becomes incomplete and when it is complete again, not at every scan. */
static void log_uninspected(struct manager *m, const struct holder *v, size_t n) {
        _cleanup_free_ char *what = NULL;

        if ((n > 0) == (m->n_uninspected > 0))
                return;
        if (n == 0) {
                log_notice("Every process's fds can be inspected again: holders of vfio devices are complete");
                return;
        }
        what = holders_uninspected_sentence(v, n);
        log_warning("%s: holders among them are not reported", what ?: "Some processes could not be inspected");
}

int manager_get_holders(struct manager *m, const struct device_holder **ret, size_t *n_ret) {
        _cleanup_free_ struct holder_target *targets = NULL;
        _cleanup_free_ struct holder_owner *owners = NULL;
        _cleanup_free_ struct holder *found = NULL, *uninspected = NULL;
        size_t n_targets = 0, n_found = 0, n_uninspected = 0;
        uint64_t now = 0;
        int r;

        /* sd_event_now() is the time of this loop iteration's wakeup: one scan
         * serves every property read of one GetManagedObjects. */
        (void) sd_event_now(m->event, CLOCK_MONOTONIC, &now);
        if (now != 0 && now == m->holders_stamp)
                goto done;

        targets = calloc(m->n_devices * 2 + 1, sizeof(*targets));
        owners = calloc(m->n_devices * 2 + 1, sizeof(*owners));
        if (!targets || !owners)
                return -ENOMEM;
        for (size_t i = 0; i < m->n_devices; i++) {
                struct device *d = m->devices[i];
                char path[64];

                if (d->fn.iommu_group >= 0) {
                        snprintf(path, sizeof(path), "/dev/vfio/%d", d->fn.iommu_group);
                        if (holder_target_from_path(path, &targets[n_targets]) >= 0)
                                owners[n_targets++] = (struct holder_owner) { d, true };
                }
                if (d->fn.vfio_cdev) {
                        snprintf(path, sizeof(path), "/dev/vfio/devices/%s", d->fn.vfio_cdev);
                        if (holder_target_from_path(path, &targets[n_targets]) >= 0)
                                owners[n_targets++] = (struct holder_owner) { d, false };
                }
        }
        r = holders_scan(targets, n_targets, getpid(), &found, &n_found, &uninspected, &n_uninspected);
        if (r < 0)
                return log_error_errno(r, "Failed to look up the holders of vfio devices: %m");
        log_uninspected(m, uninspected, n_uninspected);
        free(m->uninspected);
        m->uninspected = TAKE_PTR(uninspected);
        m->n_uninspected = n_uninspected;

        invalidate_holders(m);
        m->holders = calloc(n_found * (m->n_devices ?: 1) + 1, sizeof(*m->holders));
        if (!m->holders)
                return -ENOMEM;
        for (size_t i = 0; i < n_found; i++) {
                const struct holder_owner *o = &owners[found[i].target];
                struct owned_group *g = o->group ? ownership_find_group(&m->ownership, o->device->fn.iommu_group) : NULL;

                /* The kernel lets one file of a group be open: one who holds the
                 * daemon's own (the service manager's fd store) is no holder. */
                if (g && holder_has_file(found[i].pid, g->group_fd) > 0)
                        continue;
                /* A cdev binds once, so whoever holds the daemon's bound cdev
                 * file holds it from the daemon: its peers (TakeDevice hands
                 * out that file) and the fd store. */
                if (!o->group && o->device->model == OWNERSHIP_CDEV && o->device->device_fd >= 0 &&
                    holder_has_file(found[i].pid, o->device->device_fd) > 0)
                        continue;

                for (size_t j = 0; j < m->n_devices; j++) {
                        struct device *d = m->devices[j];
                        bool dup = false;

                        if (d != o->device && !(o->group && d->fn.iommu_group == o->device->fn.iommu_group))
                                continue;
                        for (size_t k = 0; k < m->n_holders; k++)
                                dup = dup || (m->holders[k].device == d && m->holders[k].process.pid == found[i].pid);
                        if (dup)
                                continue;
                        m->holders[m->n_holders++] = (struct device_holder) { .device = d, .process = found[i] };
                }
        }
        m->holders_stamp = now;
done:
        *ret = m->holders;
        *n_ret = m->n_holders;
        return 0;
}

int manager_get_uninspected(struct manager *m, const struct dev_set *s, const struct holder **ret, size_t *n_ret) {
        const struct device_holder *h;
        size_t n;
        int r;

        r = manager_get_holders(m, &h, &n);
        if (r < 0)
                return r;
        /* The kernel lets one process at a time open a group: ours are nobody else's. */
        *ret = dev_set_is_managed(s) ? NULL : m->uninspected;
        *n_ret = dev_set_is_managed(s) ? 0 : m->n_uninspected;
        return 0;
}

void manager_note_removal(struct manager *m, const struct pci_address *a, bool removed) {
        for (size_t i = 0; i < m->n_removed; i++)
                if (pci_address_equal(&m->removed[i], a)) {
                        if (!removed)   /* added again */
                                m->removed[i] = m->removed[--m->n_removed];
                        return;
                }
        if (removed) {
                struct pci_address *n = realloc(m->removed, sizeof(*n) * (m->n_removed + 1));

                if (!n) {
                        log_oom();      /* the rescan after the next event will see it gone */
                        return;
                }
                m->removed = n;
                m->removed[m->n_removed++] = *a;
        }
}

static int on_rescan(sd_event_source *s, void *userdata) {
        struct manager *m = userdata;

        (void) sd_event_source_set_enabled(s, SD_EVENT_OFF);
        (void) manager_refresh(m);      /* logged inside; the next uevent tries again */
        return 0;
}

static int on_uevent(sd_event_source *s, int fd, uint32_t revents, void *userdata) {
        struct manager *m = userdata;
        struct udev_device *d;

        /* Drain the burst, then rescan once: a bind moves a whole set, and a
         * full rescan keeps every set right without per-event bookkeeping. */
        while ((d = udev_monitor_receive_device(m->monitor))) {
                const char *action = udev_device_get_action(d) ?: "?";
                struct pci_address a;

                log_debug("uevent %s %s (driver %s)", action, udev_device_get_sysname(d),
                          udev_device_get_driver(d) ?: "none");
                if (pci_address_parse(udev_device_get_sysname(d), &a, NULL, 0) >= 0)
                        manager_note_removal(m, &a, strcmp(action, "remove") == 0);
                udev_device_unref(d);
        }
        return sd_event_source_set_enabled(m->rescan_source, SD_EVENT_ONESHOT);
}

static int start_uevents(struct manager *m) {
        const char *source;
        int r;

        source = m->uevent_source == UEVENT_SOURCE_KERNEL ? "kernel" :
                 m->uevent_source == UEVENT_SOURCE_UDEV ? "udev" :
                 access("/run/udev/control", F_OK) >= 0 ? "udev" : "kernel";
        m->monitor = udev_monitor_new_from_netlink(m->udev, source);
        if (!m->monitor)
                return log_error_errno(ENOMEM, "Failed to open a %s uevent monitor", source);
        r = udev_monitor_filter_add_match_subsystem_devtype(m->monitor, "pci", NULL);
        if (r < 0)
                return log_error_errno(r, "Failed to filter uevents: %m");
        r = udev_monitor_enable_receiving(m->monitor);
        if (r < 0)
                return log_error_errno(r, "Failed to listen to %s uevents: %m", source);
        r = sd_event_add_io(m->event, &m->monitor_source, udev_monitor_get_fd(m->monitor), EPOLLIN, on_uevent, m);
        if (r < 0)
                return r;
        r = sd_event_add_defer(m->event, &m->rescan_source, on_rescan, m);
        if (r < 0)
                return r;
        log_info("Following %s uevents for PCI devices", source);
        return sd_event_source_set_enabled(m->rescan_source, SD_EVENT_OFF);
}

static void on_stopped(void *userdata) {
        struct manager *m = userdata;

        log_info("Stopped: no reset under way");
        (void) sd_event_exit(m->event, 0);
}

void manager_stop(struct manager *m) {
        if (m->stopping)
                return;
        m->stopping = true;
        log_info("Stopping: no new requests");
        (void) sd_notify(false, "STOPPING=1\nSTATUS=Stopping");
        arbiter_stop(&m->arbiter, on_stopped, m);
}

static int on_signal(sd_event_source *s, const struct signalfd_siginfo *si, void *userdata) {
        struct manager *m = userdata;

        if (m->stopping) {      /* a second one: do not wait for the kernel */
                log_warning("Signal %u while stopping: exiting now", si->ssi_signo);
                return sd_event_exit(m->event, 0);
        }
        manager_stop(m);
        return 0;
}

/* A holder that is a libvirt domain is suspended rather than its unit frozen
 * or its process stopped: the adapter goes first, before the systemd one
 * that manager_bus_start() added (libvirt, systemd, process). Without it the
 * domain's QEMU is frozen in its machine scope like any unit. */
static void start_libvirt(struct manager *m) {
        struct quiesce_adapter *a;
        int r;

        if (!m->config.libvirt_uri) {
                log_debug("[Libvirt] URI= is off: libvirt domains are not suspended through libvirt");
                return;
        }
        r = quiesce_libvirt_new(m->event, m->config.libvirt_uri, &a);
        if (r < 0) {
                log_warning_errno(r, "Cannot set up the libvirt quiesce adapter for %s: %m", m->config.libvirt_uri);
                return;
        }
        manager_add_adapter(m, a, true);
}

int manager_start(struct manager *m) {
        sigset_t mask;
        int r;

        sigemptyset(&mask);
        sigaddset(&mask, SIGTERM);
        sigaddset(&mask, SIGINT);
        sigprocmask(SIG_BLOCK, &mask, NULL);
        r = sd_event_add_signal(m->event, NULL, SIGTERM, on_signal, m);
        if (r >= 0)
                r = sd_event_add_signal(m->event, NULL, SIGINT, on_signal, m);
        if (r < 0)
                return log_error_errno(r, "Failed to watch signals: %m");
        (void) sd_event_set_watchdog(m->event, true);

        r = config_load(m->config_path ?: CONFIG_FILE_PATH, &m->config);
        if (r < 0)
                return log_error_errno(r, "Failed to read %s: %m", m->config_path ?: CONFIG_FILE_PATH);
        m->quiesce_timeout_usec = m->config.quiesce_timeout_usec;
        start_libvirt(m);
        for (char **d = m->config.vfio_drivers; d && *d; d++)
                if (strv_extend(&m->topology_options.extra_vfio_drivers, *d) < 0)
                        return log_oom();

        /* Listen before the first scan so that nothing between the two is lost. */
        r = start_uevents(m);
        if (r < 0)
                return r;
        /* What a previous run parked is taken back by the first scan's
         * ownership; if the scan fails the daemon exits, the store intact. */
        (void) fdstore_receive(&m->fdstore);
        r = manager_refresh(m);
        if (r < 0)
                return r;
        fdstore_discard_unclaimed(&m->fdstore);
        ownership_find_previous_holders(&m->ownership);
        return 0;
}

int manager_run(struct manager *m) {
        int r;

        (void) sd_notify(false, "READY=1\nSTATUS=Serving");
        r = sd_event_loop(m->event);
        (void) sd_notify(false, "STOPPING=1");
        return r;
}
