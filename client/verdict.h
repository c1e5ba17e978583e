/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* Can a dev_set be reset now, and if not, what blocks it: the reasoning
 * behind `vfio-resetctl explain`, in the kernel's terms. */

#include <stdbool.h>

#include "model.h"

enum blocker_type {
        BLOCKER_HOLDER,         /* a process outside the daemon holds a member's group */
        BLOCKER_FOREIGN,        /* the reset reaches a function that is not in the set */
        BLOCKER_NO_RESET,       /* a lone device without a function reset */
        BLOCKER_BUSY,           /* a reset is already running */
        BLOCKER_UNINSPECTED,    /* processes the daemon could not look into may hold members */
};

const char *blocker_type_to_string(enum blocker_type t);

struct blocker {
        enum blocker_type type;
        const char *address;    /* borrowed from the model */
        const struct ctl_holder *holder;        /* BLOCKER_HOLDER's, borrowed from the model */
        const char *driver;
        char *message;
};

struct verdict {
        const char *method;     /* "hot-reset" or "function-reset" */
        bool resettable;
        bool borrowable;        /* holders block it, and nothing else a reset with Borrow cannot go through */
        struct blocker *blockers;
        size_t n_blockers;
        char *summary;
};

/* "N processes could not be inspected (pid P (comm), ...); the daemon needs
 * CAP_SYS_PTRACE" when the set's holders are not known to be complete, else NULL. */
char *verdict_uninspected(const struct ctl_dev_set *s);

int verdict_compute(const struct ctl_model *m, const struct ctl_dev_set *s, struct verdict *ret);
void verdict_done(struct verdict *v);
