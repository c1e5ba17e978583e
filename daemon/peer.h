/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* Peers: bus clients that took devices (TakeDevice) or watch a dev_set
 * (Watch), by unique bus name. The registry knows nothing of the bus: its bus
 * face (peer-dbus.c) tells it when a name leaves the bus, and it reports that
 * upward through peer_events, which the manager wires to the arbiter. */

#include <stdbool.h>
#include <sys/types.h>

#include "device.h"
#include "devset.h"
#include "pci-address.h"

struct peer {
        char *name;                     /* unique bus name */
        pid_t pid;                      /* from the bus driver once it answered, else 0 */
        size_t index;                   /* in peer_registry.peers */
        struct pci_address *claims;     /* devices taken */
        size_t n_claims;
        struct pci_address *watches;    /* devices whose set it watches */
        size_t n_watches;
};

struct peer_events {
        /* A peer left the bus; touched lists the devices it claimed or watched. */
        void (*left)(void *userdata, const char *name, const struct pci_address *touched, size_t n_touched);
};

struct peer_registry {
        struct peer **peers;            /* in no order; peer->index is its slot */
        size_t n_peers;
        void *by_name;                  /* tsearch(3) tree of struct peer *: O(log n) lookups */
        void *by_address;               /* peer-index.h: the peers of each address */
        struct peer_events events;
        void *userdata;
};

struct peer *peer_find(const struct peer_registry *reg, const char *name);
/* Find or create the peer for a bus name. */
int peer_get(struct peer_registry *reg, const char *name, struct peer **ret);
/* Drop a peer with no claims and no watches left. */
void peer_gc(struct peer_registry *reg, struct peer *p);
/* The name left the bus: drop its peer, if any, and report it. */
void peer_registry_name_lost(struct peer_registry *reg, const char *name);
void peer_registry_done(struct peer_registry *reg);

bool peer_claims(const struct peer *p, const struct pci_address *a);
bool peer_watches(const struct peer *p, const struct pci_address *a);

/* Claim or watch a, or stop to, keeping the registry's index of each
 * address's peers: add returns 1 when added, 0 when it was there already,
 * -ENOMEM; drop says whether it was there. */
int peer_add_claim(struct peer_registry *reg, struct peer *p, const struct pci_address *a);
int peer_add_watch(struct peer_registry *reg, struct peer *p, const struct pci_address *a);
bool peer_drop_claim(struct peer_registry *reg, struct peer *p, const struct pci_address *a);
bool peer_drop_watch(struct peer_registry *reg, struct peer *p, const struct pci_address *a);

/* Calls visit for each peer of the set (that claims or watches a member),
 * once each, member by member, in the order they joined; stops at a visit
 * that returns < 0 and returns that. Costs the set's peers, not every peer. */
int peer_foreach_in_dev_set(const struct peer_registry *reg, const struct dev_set *s,
                            int (*visit)(struct peer *p, void *userdata), void *userdata);
/* Calls visit for each peer that claims a, in the order they took it. */
int peer_foreach_claiming(const struct peer_registry *reg, const struct pci_address *a,
                          int (*visit)(struct peer *p, void *userdata), void *userdata);

/* Is the peer part of this set (claims or watches a member)? */
bool peer_in_dev_set(const struct peer *p, const struct dev_set *s);
/* The peer other than `except` that claims a device of this IOMMU group, if any. */
struct peer *peer_claiming_group(const struct peer_registry *reg, struct device *const *devices, size_t n_devices,
                                 int group, const struct peer *except);
