/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <errno.h>
#include <search.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "macro.h"
#include "peer.h"
#include "peer-index.h"

/* The tree only indexes: its entries are freed with their arrays. */
static void noop_free(void *p) {
}

static int compare_peers(const void *a, const void *b) {
        return strcmp(((const struct peer *) a)->name, ((const struct peer *) b)->name);
}

struct peer *peer_find(const struct peer_registry *reg, const char *name) {
        struct peer key = { .name = (char *) name };
        struct peer **found = tfind(&key, &reg->by_name, compare_peers);

        return found ? *found : NULL;
}

static void peer_free(struct peer_registry *reg, struct peer *p) {
        struct peer *last = reg->peers[--reg->n_peers];

        tdelete(p, &reg->by_name, compare_peers);
        for (size_t i = 0; i < p->n_claims; i++)
                peer_index_remove(&reg->by_address, &p->claims[i], p);
        for (size_t i = 0; i < p->n_watches; i++)
                if (!peer_claims(p, &p->watches[i]))
                        peer_index_remove(&reg->by_address, &p->watches[i], p);
        reg->peers[p->index] = last;
        last->index = p->index;
        free(p->claims);
        free(p->watches);
        free(p->name);
        free(p);
}

int peer_get(struct peer_registry *reg, const char *name, struct peer **ret) {
        struct peer *p = peer_find(reg, name), **v;

        if (p) {
                *ret = p;
                return 0;
        }
        v = realloc(reg->peers, sizeof(*v) * (reg->n_peers + 1));
        if (!v)
                return -ENOMEM;
        reg->peers = v;
        p = calloc(1, sizeof(*p));
        if (!p)
                return -ENOMEM;
        p->name = strdup(name);
        if (!p->name || !tsearch(p, &reg->by_name, compare_peers)) {
                free(p->name);
                free(p);
                return -ENOMEM;
        }
        p->index = reg->n_peers;
        reg->peers[reg->n_peers++] = p;
        *ret = p;
        return 1;
}

void peer_gc(struct peer_registry *reg, struct peer *p) {
        if (p && p->n_claims == 0 && p->n_watches == 0)
                peer_free(reg, p);
}

void peer_registry_name_lost(struct peer_registry *reg, const char *name) {
        struct peer *p = peer_find(reg, name);
        _cleanup_free_ struct pci_address *touched = NULL;
        _cleanup_free_ char *copy = NULL;
        size_t n;

        if (!p)
                return;
        n = p->n_claims + p->n_watches;
        log_info("Peer %s left the bus: dropping %zu claims and %zu watches", p->name, p->n_claims, p->n_watches);
        touched = calloc(n + 1, sizeof(*touched));
        copy = strdup(name);
        if (touched && p->n_claims > 0)
                memcpy(touched, p->claims, sizeof(*touched) * p->n_claims);
        if (touched && p->n_watches > 0)
                memcpy(touched + p->n_claims, p->watches, sizeof(*touched) * p->n_watches);
        peer_free(reg, p);
        if (reg->events.left && copy)
                reg->events.left(reg->userdata, copy, touched, touched ? n : 0);
}

void peer_registry_done(struct peer_registry *reg) {
        while (reg->n_peers > 0)
                peer_free(reg, reg->peers[0]);
        free(reg->peers);
        reg->peers = NULL;
        tdestroy(reg->by_name, noop_free);   /* empty by now */
        reg->by_name = NULL;
        peer_index_done(&reg->by_address);
}

bool peer_claims(const struct peer *p, const struct pci_address *a) {
        return pci_address_set_contains(p->claims, p->n_claims, a);
}

bool peer_watches(const struct peer *p, const struct pci_address *a) {
        return pci_address_set_contains(p->watches, p->n_watches, a);
}

static bool touches(const struct peer *p, const struct pci_address *a) {
        return peer_claims(p, a) || peer_watches(p, a);
}

static int add(struct peer_registry *reg, struct peer *p, struct pci_address **v, size_t *n,
               const struct pci_address *a) {
        bool was = touches(p, a);
        int r = pci_address_set_add(v, n, a);

        if (r > 0 && !was && peer_index_add(&reg->by_address, a, p) < 0) {
                pci_address_set_remove(*v, n, a);
                return -ENOMEM;
        }
        return r;
}

static bool drop(struct peer_registry *reg, struct peer *p, struct pci_address *v, size_t *n,
                 const struct pci_address *a) {
        if (!pci_address_set_remove(v, n, a))
                return false;
        if (!touches(p, a))
                peer_index_remove(&reg->by_address, a, p);
        return true;
}

int peer_add_claim(struct peer_registry *reg, struct peer *p, const struct pci_address *a) {
        return add(reg, p, &p->claims, &p->n_claims, a);
}

int peer_add_watch(struct peer_registry *reg, struct peer *p, const struct pci_address *a) {
        return add(reg, p, &p->watches, &p->n_watches, a);
}

bool peer_drop_claim(struct peer_registry *reg, struct peer *p, const struct pci_address *a) {
        return drop(reg, p, p->claims, &p->n_claims, a);
}

bool peer_drop_watch(struct peer_registry *reg, struct peer *p, const struct pci_address *a) {
        return drop(reg, p, p->watches, &p->n_watches, a);
}

int peer_foreach_in_dev_set(const struct peer_registry *reg, const struct dev_set *s,
                            int (*visit)(struct peer *p, void *userdata), void *userdata) {
        for (size_t i = 0; i < s->n_members; i++) {
                const struct peer_index_entry *e = peer_index_find(&reg->by_address, &s->members[i]->fn.address);

                for (size_t k = 0; e && k < e->n_peers; k++) {
                        bool seen = false;
                        int r;

                        /* once each: skip a peer of an earlier member */
                        for (size_t j = 0; !seen && j < i; j++)
                                seen = touches(e->peers[k], &s->members[j]->fn.address);
                        if (seen)
                                continue;
                        r = visit(e->peers[k], userdata);
                        if (r < 0)
                                return r;
                }
        }
        return 0;
}

int peer_foreach_claiming(const struct peer_registry *reg, const struct pci_address *a,
                          int (*visit)(struct peer *p, void *userdata), void *userdata) {
        const struct peer_index_entry *e = peer_index_find(&reg->by_address, a);

        for (size_t k = 0; e && k < e->n_peers; k++)
                if (peer_claims(e->peers[k], a)) {
                        int r = visit(e->peers[k], userdata);

                        if (r < 0)
                                return r;
                }
        return 0;
}

bool peer_in_dev_set(const struct peer *p, const struct dev_set *s) {
        for (size_t i = 0; i < s->n_members; i++)
                if (peer_claims(p, &s->members[i]->fn.address) || peer_watches(p, &s->members[i]->fn.address))
                        return true;
        return false;
}

struct peer *peer_claiming_group(const struct peer_registry *reg, struct device *const *devices, size_t n_devices,
                                 int group, const struct peer *except) {
        /* The group's devices, then the peers of each: not every peer. */
        for (size_t i = 0; i < n_devices; i++) {
                const struct peer_index_entry *e;

                if (devices[i]->fn.iommu_group != group)
                        continue;
                e = peer_index_find(&reg->by_address, &devices[i]->fn.address);
                for (size_t k = 0; e && k < e->n_peers; k++)
                        if (e->peers[k] != except && peer_claims(e->peers[k], &devices[i]->fn.address))
                                return e->peers[k];
        }
        return NULL;
}
