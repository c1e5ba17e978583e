/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* A peer: a bus client that took devices (TakeDevice) or watches a dev_set
 * (Watch). Tracked with sd_bus_track: when it leaves the bus it loses its
 * claims at once, and any reset waiting for it stops waiting. */

#include <stdbool.h>
#include <systemd/sd-bus.h>

#include "pci-address.h"

struct manager;
struct dev_set;

struct peer {
        struct manager *manager;
        char *name;                     /* unique bus name */
        sd_bus_track *track;
        struct pci_address *claims;     /* devices taken */
        size_t n_claims;
        struct pci_address *watches;    /* devices whose set it watches */
        size_t n_watches;
};

struct peer *peer_find(struct manager *m, const char *name);
/* Find or create the peer for a bus name, tracked from now on. */
int peer_get(struct manager *m, const char *name, struct peer **ret);
/* Drop a peer with no claims and no watches left. */
void peer_gc(struct peer *p);

bool peer_claims(const struct peer *p, const struct pci_address *a);
bool peer_watches(const struct peer *p, const struct pci_address *a);
int peer_add(struct pci_address **v, size_t *n, const struct pci_address *a);
bool peer_remove(struct pci_address *v, size_t *n, const struct pci_address *a);

/* Is the peer part of this set (claims or watches a member)? */
bool peer_in_dev_set(const struct peer *p, const struct dev_set *s);
/* The peer other than `except` that claims a device of this IOMMU group, if any. */
struct peer *peer_claiming_group(struct manager *m, int group, const struct peer *except);

/* Emit Peers changes on every device and set a peer touches. */
void peer_emit_changes(struct manager *m, const struct pci_address *a);
