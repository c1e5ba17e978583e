/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The libvirt hook's reading of a domain XML (hook_hostdevs) on any input,
 * with and without a list of wanted devices; what it returns are canonical
 * PCI addresses, no duplicates, every one wanted. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz.h"
#include "hook-hostdevs.h"
#include "pci-address.h"
#include "strv.h"

static void on_skipped(const char *address, enum hostdev_skip why, void *userdata) {
        struct pci_address a;

        if (pci_address_parse(address, &a, NULL, 0) < 0 || (why != HOSTDEV_MANAGED && why != HOSTDEV_NOT_WANTED))
                abort();
        ++*(unsigned *) userdata;
}

static void check(const uint8_t *data, size_t size, char *const *wanted) {
        char **l = NULL;
        unsigned skipped = 0;
        int r = hook_hostdevs((const char *) data, size, wanted, on_skipped, &skipped, &l);

        if (r < 0) {
                if ((r != -EBADMSG && r != -ENOMEM) || l)
                        abort();
                return;
        }
        for (char **a = l; a && *a; a++) {
                struct pci_address pa;
                char buf[PCI_ADDRESS_STRLEN];

                if (pci_address_parse(*a, &pa, NULL, 0) < 0 || strcmp(pci_address_format(&pa, buf), *a) != 0 ||
                    (wanted && !strv_contains(wanted, *a)))
                        abort();
                for (char **b = a + 1; *b; b++)
                        if (strcmp(*a, *b) == 0)
                                abort();
        }
        strv_free(l);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        static char *const wanted[] = { "0000:04:00.0", "0000:05:00.1", NULL };

        if (size > 1 << 20)
                return 0;       /* the hook reads at most 16 MiB; this much says as much */
        check(data, size, NULL);
        check(data, size, wanted);
        return 0;
}
