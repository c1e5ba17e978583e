/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* What every quiesce adapter shares (see quiesce.h); each adapter is a quiesce-*.c. */
#include <stddef.h>

#include "quiesce.h"

struct quiesce_adapter *quiesce_adapter_free(struct quiesce_adapter *a) {
        if (a)
                a->free(a);
        return NULL;
}
