/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* pci_address_parse() on any string; an address it takes must format to a
 * string it takes again, as the same address. */
#include <stdlib.h>
#include <string.h>

#include "fuzz.h"
#include "pci-address.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        struct pci_address a, b;
        char err[256] = "", buf[PCI_ADDRESS_STRLEN];
        char *s = malloc(size + 1);

        if (!s)
                return 0;
        memcpy(s, data, size);  /* not strndup: ASan with strict_string_checks takes its source for a C string */
        s[size] = '\0';
        if (pci_address_parse(s, &a, err, sizeof(err)) == 0) {
                if (pci_address_parse(pci_address_format(&a, buf), &b, NULL, 0) != 0 || !pci_address_equal(&a, &b))
                        abort();
                if (a.slot > 0x1f || a.function > 7)
                        abort();
        } else if (!err[0] || !memchr(err, '\0', sizeof(err)))
                abort();        /* a refusal always says why */
        free(s);
        return 0;
}
