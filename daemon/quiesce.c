/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* What every quiesce adapter shares (see quiesce.h); each adapter is a quiesce-*.c. */
#include <stddef.h>

#include "quiesce.h"

struct quiesce_adapter *quiesce_adapter_free(struct quiesce_adapter *a) {
        if (a)
                a->free(a);
        return NULL;
}

bool quiesce_identify(struct quiesce_adapter *const *adapters, size_t n_adapters, const struct quiesce_holder *h,
                      char *buf, size_t size) {
        for (size_t i = 0; i < n_adapters; i++)
                if (adapters[i]->identify && adapters[i]->identify(adapters[i], h, buf, size))
                        return true;
        return false;
}
