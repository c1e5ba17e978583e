/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* libvfio-resetd: take VFIO devices from vfio-resetd, take part in the resets
 * of their dev_sets, and ask for resets. See libvfio-resetd(3) and the D-Bus
 * contract in docs/dbus-api.md.
 *
 * Every function returns 0 (or a positive value where it says so) on success
 * and a negative errno on failure; after a failure vrd_peer_error_name() and
 * vrd_peer_error_message() say what the daemon (or the library) said. Errors
 * of the daemon map to: NoSuchDevice and DeviceGone -ENODEV, NotManaged
 * -EOPNOTSUPP, Busy and NotOwned -EBUSY, QuiesceTimeout -ETIMEDOUT,
 * ResetFailed -EIO, InvalidArgs -EINVAL, AccessDenied -EACCES. The library's
 * own VRD_PEER_ERROR_DAEMON_GONE is -ENOTCONN.
 *
 * Nothing here is thread-safe: use one vrd_peer from one thread. */

#include <stdbool.h>
#include <stdint.h>
#include <systemd/sd-bus.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct vrd_peer vrd_peer;

/* A Pause signal for this peer. */
struct vrd_pause {
        const char *devset;             /* the dev_set's object path */
        uint64_t reset_id;
        const char *type;               /* "pause": stop using the devices, then acknowledge;
                                         * "force": the deadline passed, the reset goes on anyway;
                                         * "gone":  the devices were removed */
        uint64_t deadline_usec;         /* CLOCK_MONOTONIC, microseconds */
        const char *const *addresses;   /* the set's devices this peer took (every member for a watcher) */
};

/* A Resume signal for this peer, or the end of a pause that the daemon cannot
 * send one for any more. */
struct vrd_resume {
        const char *devset;
        uint64_t reset_id;              /* 0 when a take found the set paused and no Pause came */
        const char *result;             /* "done", "quiesce-timeout", "failed" or "device-gone" from the
                                         * daemon; VRD_RESUME_DAEMON_GONE from the library */
};

/* The daemon left the bus (crashed, stopped or restarted) while this peer was
 * paused: no Resume will come. The library notices the owner of org.vfioresetd1
 * changing, and ends each pause of the daemon that left with this result. Every
 * claim and watch of the peer went with that daemon (the fds stay open, but no
 * reset pauses their user until a daemon is back: see vrd_peer_on_rejoin()).
 * Handlers written before this result existed see a result other than "done",
 * as for a failed reset. */
#define VRD_RESUME_DAEMON_GONE "daemon-gone"

/* vrd_peer_pause_complete() of a pause that ended with VRD_RESUME_DAEMON_GONE,
 * or whose daemon turns out to have left the bus: -ENOTCONN and this error. */
#define VRD_PEER_ERROR_DAEMON_GONE "org.vfioresetd1.Error.DaemonGone"

/* How a reset asked for with vrd_peer_reset() is getting on. */
struct vrd_reset_progress {
        const char *devset;
        const char *state;              /* "idle", "quiescing", "resetting" or "resuming" */
        const char *const *peers;       /* every peer of the set */
        const char *const *paused_peers; /* the peers that acknowledged the current pause */
        uint64_t reset_id;              /* the set's last ResetStarted, 0 before one arrived */
};

/* Return 0 to acknowledge a "pause" at once, 1 to acknowledge it later with
 * vrd_peer_pause_complete(), a negative errno never to (the daemon then names
 * this peer when the deadline passes). Ignored for "force" and "gone", which
 * need no acknowledgement. */
typedef int (*vrd_pause_handler_t)(vrd_peer *p, const struct vrd_pause *pause, void *userdata);
typedef void (*vrd_resume_handler_t)(vrd_peer *p, const struct vrd_resume *resume, void *userdata);
typedef void (*vrd_progress_handler_t)(vrd_peer *p, const struct vrd_reset_progress *progress, void *userdata);

/* A daemon took org.vfioresetd1 after the one this peer knew left it (it
 * restarted; systemd's fd store kept the groups, containers and devices open
 * meanwhile, and the new daemon took those same ones over). The library takes
 * every device this peer took and watches every set it watched again, on its
 * own, and says how each went. The peer's fds and mappings stayed valid
 * throughout: nothing was reset or reopened. */
struct vrd_rejoin {
        const char *address;            /* canonical: 0000:04:00.0 */
        bool watch;                     /* watched again, else taken again */
        int error;                      /* 0, or a negative errno: that claim or watch is lost */
        const char *error_name;         /* the daemon's D-Bus error, NULL on success */
        const char *error_message;
        bool paused;                    /* the set is being reset right now: wait for its Resume */
};
typedef void (*vrd_rejoin_handler_t)(vrd_peer *p, const struct vrd_rejoin *rejoin, void *userdata);

/* Flags of vrd_peer_reset() */
#define VRD_RESET_FORCE  (UINT64_C(1) << 0)     /* reset even when peers miss the deadline */
#define VRD_RESET_BORROW (UINT64_C(1) << 1)     /* reset even though processes outside the daemon hold members */

/* Connects to the system bus ($DBUS_SYSTEM_BUS_ADDRESS is honoured). */
int vrd_peer_new(vrd_peer **ret);
/* Uses a bus connection of the caller's; the peer takes a reference. Claims
 * last as long as the connection, so release before dropping the peer. */
int vrd_peer_new_with_bus(vrd_peer **ret, sd_bus *bus);
vrd_peer *vrd_peer_ref(vrd_peer *p);
/* Dropping the last reference closes the peer's own connection, and with it
 * every claim and watch. Returns NULL. */
vrd_peer *vrd_peer_unref(vrd_peer *p);

/* TakeDevice. The two fds are the caller's (O_CLOEXEC): close them when done.
 * *ret_paused is true when the set is being reset right now: wait for its
 * Resume before touching the device. Any ret_ may be NULL. The library
 * remembers what it took and watched until released (or the device is gone),
 * to take it again from a restarted daemon. */
int vrd_peer_take(vrd_peer *p, const char *address, int *ret_device_fd, int *ret_iommu_fd, bool *ret_paused);
int vrd_peer_release(vrd_peer *p, const char *address);
int vrd_peer_watch(vrd_peer *p, const char *address);
/* Watch, and *ret_paused: true when the set is being reset right now and this
 * watch joined it (no Pause comes for it, its Resume will). What a dma-buf
 * importer needs before it maps the buffer: the kernel refuses the map while
 * the reset holds the buffer revoked. ret_paused may be NULL (then it is
 * vrd_peer_watch()). New in libvfio-resetd.so.0.2. */
int vrd_peer_watch_paused(vrd_peer *p, const char *address, bool *ret_paused);
int vrd_peer_unwatch(vrd_peer *p, const char *address);
/* The object path of the device's dev_set, as Pause and Resume name it; free() it. */
int vrd_peer_get_devset(vrd_peer *p, const char *address, char **ret_devset);
/* The cdev model: the id of the IO address space the device is attached to
 * in the iommufd context vrd_peer_take() gave (Device.IommufdIoasId), the one
 * the caller maps its DMA into (IOMMU_IOAS_MAP); 0 in the legacy model, or
 * when nobody took the device. It stays the same across a reset and across a
 * restart of the daemon. New in libvfio-resetd.so.0.3. */
int vrd_peer_get_ioas(vrd_peer *p, const char *address, uint32_t *ret_ioas);

/* Handlers; NULL removes one. Without a pause handler the peer never acknowledges.
 * Without a resume handler, a pause ended by VRD_RESUME_DAEMON_GONE is logged
 * to stderr, there being no one else to tell. */
int vrd_peer_on_pause(vrd_peer *p, vrd_pause_handler_t handler, void *userdata);
int vrd_peer_on_resume(vrd_peer *p, vrd_resume_handler_t handler, void *userdata);
int vrd_peer_on_reset_progress(vrd_peer *p, vrd_progress_handler_t handler, void *userdata);
/* Without a rejoin handler, each result is logged to stderr. */
int vrd_peer_on_rejoin(vrd_peer *p, vrd_rejoin_handler_t handler, void *userdata);
/* PauseComplete, for a pause handler that returned 1. Goes to the daemon that
 * sent the pause; -ENOTCONN (VRD_PEER_ERROR_DAEMON_GONE) when it left the bus. */
int vrd_peer_pause_complete(vrd_peer *p, uint64_t reset_id);

/* ResetDevice: resets the device's dev_set and returns when it is over.
 * quiesce_timeout_usec 0 leaves the deadline to the daemon. While it waits it
 * dispatches this peer's own Pause and Resume handlers (so a peer may reset a
 * set it is part of) and the progress handler. Not from within a handler.
 * *ret_devset (free() it) and *ret_duration_usec may be NULL. */
int vrd_peer_reset(vrd_peer *p, const char *address, uint64_t quiesce_timeout_usec, uint64_t flags,
                   char **ret_devset, uint64_t *ret_duration_usec);

/* Event loop integration: poll(2) the fd for the events, with the timeout
 * (absolute CLOCK_MONOTONIC, UINT64_MAX for none), then vrd_peer_process(),
 * which dispatches everything pending. Or vrd_peer_wait() then
 * vrd_peer_process() in a loop, or attach the peer to an sd-event loop. */
int vrd_peer_get_fd(vrd_peer *p);
int vrd_peer_get_events(vrd_peer *p);
int vrd_peer_get_timeout(vrd_peer *p, uint64_t *ret_usec);
int vrd_peer_process(vrd_peer *p);
/* Waits at most timeout_usec (UINT64_MAX: no limit) for something to process; > 0 when there is. */
int vrd_peer_wait(vrd_peer *p, uint64_t timeout_usec);
int vrd_peer_attach_event(vrd_peer *p, sd_event *e);
sd_bus *vrd_peer_get_bus(vrd_peer *p);

/* The D-Bus error name and message of the last failure ("org.vfioresetd1.Error.QuiesceTimeout",
 * "peers did not acknowledge the pause of bus_0000_04 within 0.500 s: :1.42 (pid 4711, qemu)");
 * NULL before any. */
const char *vrd_peer_error_name(vrd_peer *p);
const char *vrd_peer_error_message(vrd_peer *p);

#ifdef __cplusplus
}
#endif
