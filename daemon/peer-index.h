/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* The peers of each PCI address: those that claim or watch it, in the order
 * they began to. A tsearch(3) tree keyed by address, so that a Watch or a
 * TakeDevice, and the Peers properties it announces, cost the peers of the
 * device's set rather than every peer of the daemon. */

#include <stddef.h>

#include "pci-address.h"

struct peer;

struct peer_index_entry {
        struct pci_address address;
        struct peer **peers;
        size_t n_peers;
};

/* Adds p to a's peers (the caller knows it was not among them). */
int peer_index_add(void **tree, const struct pci_address *a, struct peer *p);
/* Takes p from a's peers, if it was there. */
void peer_index_remove(void **tree, const struct pci_address *a, struct peer *p);
/* a's peers, or NULL when it has none. */
const struct peer_index_entry *peer_index_find(void *const *tree, const struct pci_address *a);
void peer_index_done(void **tree);
