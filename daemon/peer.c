/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "arbiter.h"
#include "log.h"
#include "macro.h"
#include "manager.h"
#include "peer.h"

struct peer *peer_find(struct manager *m, const char *name) {
        for (size_t i = 0; i < m->n_peers; i++)
                if (strcmp(m->peers[i]->name, name) == 0)
                        return m->peers[i];
        return NULL;
}

static void peer_free(struct peer *p) {
        struct manager *m = p->manager;

        for (size_t i = 0; i < m->n_peers; i++)
                if (m->peers[i] == p) {
                        m->peers[i] = m->peers[--m->n_peers];
                        break;
                }
        sd_bus_track_unref(p->track);
        free(p->claims);
        free(p->watches);
        free(p->name);
        free(p);
}

/* The peer left the bus: its claims go, and no reset waits for it any more. */
static int on_peer_gone(sd_bus_track *track, void *userdata) {
        struct peer *p = userdata;
        struct manager *m = p->manager;
        _cleanup_free_ struct pci_address *touched = NULL;
        _cleanup_free_ char *name = NULL;
        size_t n = p->n_claims + p->n_watches;

        log_info("Peer %s left the bus: dropping %zu claims and %zu watches", p->name, p->n_claims, p->n_watches);
        touched = calloc(n + 1, sizeof(*touched));
        if (touched) {
                memcpy(touched, p->claims, sizeof(*touched) * p->n_claims);
                memcpy(touched + p->n_claims, p->watches, sizeof(*touched) * p->n_watches);
        }
        name = strdup(p->name);
        peer_free(p);
        if (name)
                arbiter_peer_gone(m, name);
        for (size_t i = 0; touched && i < n; i++)
                peer_emit_changes(m, &touched[i]);
        return 0;
}

int peer_get(struct manager *m, const char *name, struct peer **ret) {
        struct peer *p = peer_find(m, name), **v;
        int r;

        if (p) {
                *ret = p;
                return 0;
        }
        v = realloc(m->peers, sizeof(*v) * (m->n_peers + 1));
        if (!v)
                return -ENOMEM;
        m->peers = v;
        p = calloc(1, sizeof(*p));
        if (!p)
                return -ENOMEM;
        p->manager = m;
        p->name = strdup(name);
        if (!p->name) {
                free(p);
                return -ENOMEM;
        }
        r = sd_bus_track_new(m->bus, &p->track, on_peer_gone, p);
        if (r >= 0)
                r = sd_bus_track_add_name(p->track, name);
        if (r < 0) {
                sd_bus_track_unref(p->track);
                free(p->name);
                free(p);
                return r;
        }
        m->peers[m->n_peers++] = p;
        *ret = p;
        return 0;
}

void peer_gc(struct peer *p) {
        if (p && p->n_claims == 0 && p->n_watches == 0)
                peer_free(p);
}

static bool contains(const struct pci_address *v, size_t n, const struct pci_address *a) {
        for (size_t i = 0; i < n; i++)
                if (pci_address_equal(&v[i], a))
                        return true;
        return false;
}

bool peer_claims(const struct peer *p, const struct pci_address *a) {
        return contains(p->claims, p->n_claims, a);
}

bool peer_watches(const struct peer *p, const struct pci_address *a) {
        return contains(p->watches, p->n_watches, a);
}

int peer_add(struct pci_address **v, size_t *n, const struct pci_address *a) {
        struct pci_address *nv;

        if (contains(*v, *n, a))
                return 0;
        nv = realloc(*v, sizeof(*nv) * (*n + 1));
        if (!nv)
                return -ENOMEM;
        nv[(*n)++] = *a;
        *v = nv;
        return 1;
}

bool peer_remove(struct pci_address *v, size_t *n, const struct pci_address *a) {
        for (size_t i = 0; i < *n; i++)
                if (pci_address_equal(&v[i], a)) {
                        v[i] = v[--*n];
                        return true;
                }
        return false;
}

bool peer_in_dev_set(const struct peer *p, const struct dev_set *s) {
        for (size_t i = 0; i < s->n_members; i++)
                if (peer_claims(p, &s->members[i]->fn.address) || peer_watches(p, &s->members[i]->fn.address))
                        return true;
        return false;
}

struct peer *peer_claiming_group(struct manager *m, int group, const struct peer *except) {
        for (size_t i = 0; i < m->n_peers; i++) {
                struct peer *p = m->peers[i];

                if (p == except)
                        continue;
                for (size_t k = 0; k < p->n_claims; k++) {
                        struct device *d = manager_find_device(m, &p->claims[k]);

                        if (d && d->fn.iommu_group == group)
                                return p;
                }
        }
        return NULL;
}

void peer_emit_changes(struct manager *m, const struct pci_address *a) {
        struct device *d = manager_find_device(m, a);

        if (!d)
                return;
        (void) device_bus_emit_changed(d, (const char *[]) { "Peers", NULL });
        if (d->dev_set)
                (void) dev_set_bus_emit_changed(d->dev_set, (const char *[]) { "Peers", NULL });
}
