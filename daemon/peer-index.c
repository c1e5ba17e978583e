/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <errno.h>
#include <search.h>
#include <stdlib.h>
#include <string.h>

#include "peer-index.h"

static int compare_entries(const void *a, const void *b) {
        return pci_address_compare(&((const struct peer_index_entry *) a)->address,
                                   &((const struct peer_index_entry *) b)->address);
}

static void entry_free(void *p) {
        struct peer_index_entry *e = p;

        free(e->peers);
        free(e);
}

int peer_index_add(void **tree, const struct pci_address *a, struct peer *p) {
        struct peer_index_entry key = { .address = *a }, *e, **found = tfind(&key, tree, compare_entries);
        struct peer **v;

        if (found)
                e = *found;
        else {
                e = calloc(1, sizeof(*e));
                if (!e)
                        return -ENOMEM;
                e->address = *a;
                if (!tsearch(e, tree, compare_entries)) {
                        free(e);
                        return -ENOMEM;
                }
        }
        /* Doubling: an append is O(1) amortized. */
        if ((e->n_peers & (e->n_peers - 1)) == 0) {
                v = realloc(e->peers, sizeof(*v) * (e->n_peers ? 2 * e->n_peers : 1));
                if (!v) {
                        if (e->n_peers == 0) {
                                tdelete(e, tree, compare_entries);
                                free(e);
                        }
                        return -ENOMEM;
                }
                e->peers = v;
        }
        e->peers[e->n_peers++] = p;
        return 0;
}

void peer_index_remove(void **tree, const struct pci_address *a, struct peer *p) {
        struct peer_index_entry key = { .address = *a }, *e, **found = tfind(&key, tree, compare_entries);

        if (!found)
                return;
        e = *found;
        for (size_t i = 0; i < e->n_peers; i++)
                if (e->peers[i] == p) {
                        /* in join order: the Peers properties list them so */
                        memmove(e->peers + i, e->peers + i + 1, sizeof(*e->peers) * (e->n_peers - i - 1));
                        e->n_peers--;
                        break;
                }
        if (e->n_peers == 0) {
                tdelete(e, tree, compare_entries);
                entry_free(e);
        }
}

const struct peer_index_entry *peer_index_find(void *const *tree, const struct pci_address *a) {
        struct peer_index_entry key = { .address = *a }, **found = tfind(&key, tree, compare_entries);

        return found ? *found : NULL;
}

void peer_index_done(void **tree) {
        tdestroy(*tree, entry_free);
        *tree = NULL;
}
