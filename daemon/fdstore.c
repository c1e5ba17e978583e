/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <systemd/sd-daemon.h>

#include "fdstore.h"
#include "log.h"
#include "macro.h"
#include "strv.h"

const char *fdstore_group_name(int group, char buf[static FDSTORE_NAME_MAX]) {
        snprintf(buf, FDSTORE_NAME_MAX, "group-%d", group);
        return buf;
}

const char *fdstore_container_name(int group, char buf[static FDSTORE_NAME_MAX]) {
        snprintf(buf, FDSTORE_NAME_MAX, "container-%d", group);
        return buf;
}

const char *fdstore_device_name(const struct pci_address *a, char buf[static FDSTORE_NAME_MAX]) {
        snprintf(buf, FDSTORE_NAME_MAX, "device-pci_%04x_%02x_%02x_%x", a->domain, a->bus, a->slot, a->function);
        return buf;
}

/* FDNAME= holds at most 255 characters (sd_pid_notify_with_fds(3)), as
 * FDSTORE_NAME_MAX allows: a set id is "slot_DDDD_BB_" and a slot name of at
 * most 80 bytes, each 3 characters at worst. */
const char *fdstore_iommufd_name(const char *set_id, char buf[static FDSTORE_NAME_MAX]) {
        snprintf(buf, FDSTORE_NAME_MAX, "iommufd-%s", set_id);
        return buf;
}

const char *fdstore_cdev_name(const struct pci_address *a, uint32_t devid, uint32_t ioas,
                              char buf[static FDSTORE_NAME_MAX]) {
        int n = snprintf(buf, FDSTORE_NAME_MAX, "cdev-pci_%04x_%02x_%02x_%x", a->domain, a->bus, a->slot, a->function);

        if (devid)
                n += snprintf(buf + n, FDSTORE_NAME_MAX - (size_t) n, ".dev-%" PRIu32, devid);
        if (ioas)
                snprintf(buf + n, FDSTORE_NAME_MAX - (size_t) n, ".ioas-%" PRIu32, ioas);
        return buf;
}

int fdstore_take_cdev(struct fdstore *s, const struct pci_address *a, uint32_t *ret_devid, uint32_t *ret_ioas,
                      char ret_name[static FDSTORE_NAME_MAX]) {
        char base[FDSTORE_NAME_MAX];
        size_t len = strlen(fdstore_cdev_name(a, 0, 0, base));

        for (size_t i = 0; i < s->n_fds; i++) {
                const char *name = s->fds[i].name, *rest;
                uint32_t devid = 0, ioas = 0;
                int k = 0;

                if (!name || strncmp(name, base, len) != 0 || (name[len] && name[len] != '.'))
                        continue;
                rest = name + len;
                /* What this version writes, and nothing else: anything more
                 * is a name it does not know, left for fdstore_discard_unclaimed(). */
                if (*rest && sscanf(rest, ".dev-%" SCNu32 "%n", &devid, &k) == 1)
                        rest += k;
                k = 0;
                if (*rest && sscanf(rest, ".ioas-%" SCNu32 "%n", &ioas, &k) == 1)
                        rest += k;
                if (*rest)
                        continue;
                snprintf(ret_name, FDSTORE_NAME_MAX, "%s", name);
                *ret_devid = devid;
                *ret_ioas = ioas;
                return fdstore_take(s, ret_name);
        }
        return -ENOENT;
}

int fdstore_receive(struct fdstore *s) {
        _cleanup_strv_free_ char **names = NULL;
        int n;

        /* Checks $LISTEN_PID against us, sets FD_CLOEXEC on each (sd_listen_fds(3)). */
        n = sd_listen_fds_with_names(1, &names);
        if (n < 0)
                return log_warning_errno(n, "Cannot read the fds passed by the service manager: %m");
        if (n == 0)
                return 0;
        s->fds = calloc((size_t) n, sizeof(*s->fds));
        if (!s->fds) {
                for (int i = 0; i < n; i++)
                        close(SD_LISTEN_FDS_START + i);
                return log_oom();
        }
        for (int i = 0; i < n; i++) {
                s->fds[s->n_fds++] = (struct fdstore_fd) {
                        .name = names && names[i] ? TAKE_PTR(names[i]) : NULL,
                        .fd = SD_LISTEN_FDS_START + i,
                };
                log_debug("From the fd store: fd %d '%s'", SD_LISTEN_FDS_START + i, s->fds[i].name ?: "?");
        }
        log_info("The service manager passed %d fds from the fd store", n);
        return n;
}

int fdstore_take(struct fdstore *s, const char *name) {
        for (size_t i = 0; i < s->n_fds; i++)
                if (streq_ptr(s->fds[i].name, name)) {
                        int fd = s->fds[i].fd;

                        free(s->fds[i].name);
                        s->fds[i] = s->fds[--s->n_fds];
                        return fd;
                }
        return -ENOENT;
}

void fdstore_put(const char *name, int fd) {
        char msg[FDSTORE_NAME_MAX + 64];
        int r;

        /* VFIO's files cannot be polled, so the manager could not watch them
         * for a hangup anyway: FDPOLL=0 says that only FDSTOREREMOVE drops them. */
        snprintf(msg, sizeof(msg), "FDSTORE=1\nFDNAME=%s\nFDPOLL=0", name);
        r = sd_pid_notify_with_fds(0, false, msg, &fd, 1);
        if (r < 0)
                log_warning_errno(r, "Cannot park %s (fd %d) in the service manager's fd store: %m; "
                                  "a restart will open it again", name, fd);
        else if (r > 0)
                log_debug("Parked %s (fd %d) in the fd store", name, fd);
}

void fdstore_remove(const char *name) {
        char msg[FDSTORE_NAME_MAX + 64];
        int r;

        snprintf(msg, sizeof(msg), "FDSTOREREMOVE=1\nFDNAME=%s", name);
        r = sd_notify(false, msg);
        if (r < 0)
                log_warning_errno(r, "Cannot drop %s from the service manager's fd store: %m", name);
        else if (r > 0)
                log_debug("Dropped %s from the fd store", name);
}

void fdstore_discard(const char *name, int fd) {
        fdstore_remove(name);
        close(fd);
}

void fdstore_sync(void) {
        int r = sd_notify_barrier(0, 5 * USEC_PER_SEC);

        if (r < 0)
                log_warning_errno(r, "The service manager did not confirm what it was told: %m");
}

void fdstore_discard_unclaimed(struct fdstore *s) {
        for (size_t i = 0; i < s->n_fds; i++) {
                struct fdstore_fd *x = &s->fds[i];

                log_warning("Stored fd '%s' (fd %d) from before the restart is not needed any more (no managed "
                            "device uses it): closing it and removing it from the fd store", x->name ?: "?", x->fd);
                if (x->name)
                        fdstore_discard(x->name, x->fd);
                else
                        close(x->fd);
                free(x->name);
        }
        s->fds = mfree(s->fds);
        s->n_fds = 0;
}

void fdstore_done(struct fdstore *s) {
        for (size_t i = 0; i < s->n_fds; i++) {
                close(s->fds[i].fd);
                free(s->fds[i].name);
        }
        s->fds = mfree(s->fds);
        s->n_fds = 0;
}
