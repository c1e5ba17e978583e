/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* A borrowed reset: resetting a dev_set whose groups other programs hold
 * (QEMU, DPDK apps), which never heard of the daemon. The kernel's proof of
 * ownership for VFIO_DEVICE_PCI_HOT_RESET is a group *file* for every group
 * of the set, whoever opened it; pidfd_getfd(2) duplicates a holder's file
 * into the daemon (PTRACE_MODE_ATTACH_REALCREDS: CAP_SYS_PTRACE, and Yama's
 * ptrace_scope permitting). So:
 *
 *   borrow_plan()  which group is the daemon's own, held by whom, or free,
 *                  and which quiesce adapter stops each holder (quiesce.h);
 *   (the arbiter stops the holders and pauses the peers)
 *   borrow_take()  the group fds (own, borrowed, or opened for the reset)
 *                  and one device fd per member into the reset job;
 *   (the job resets and is freed, which closes every fd it had)
 *   (the arbiter resumes the holders in reverse order)
 */

#include <stdbool.h>
#include <sys/types.h>

#include "device.h"
#include "devset.h"
#include "kernel.h"
#include "ownership.h"
#include "quiesce.h"
#include "reset-worker.h"

enum borrow_how {
        BORROW_OWNED,           /* the daemon holds the group */
        BORROW_HELD,            /* outside holders do: borrow from one */
        BORROW_FREE,            /* nobody does: opened for the length of the reset */
};

struct borrow_group {
        int group;              /* /dev/vfio/N */
        dev_t rdev;
        enum borrow_how how;
};

struct borrow_holder {
        struct holder process;
        int group;              /* the group it holds */
        struct quiesce_holder q;        /* q.holder points at process; q.pidfd pins it */
        struct quiesce_target *target;  /* the target that stops it (shared within a unit) */
};

struct borrow {
        struct pci_address *members;    /* the set's, for the adapters' cross-checks */
        size_t n_members;
        struct borrow_group *groups;
        size_t n_groups;
        struct borrow_holder *holders;
        size_t n_holders;
        struct quiesce_target **targets;        /* in the order they stop; resumed in reverse */
        size_t n_targets;
};

/* Plan a borrowed reset of s from holders (every outside holder of a vfio
 * device; those of other sets are ignored). adapters: in order of preference.
 * Fails -EPERM when some holder no adapter can stop, with *ret_message naming
 * it and what would allow it; -ENOMEM. Holders that exited meanwhile are
 * dropped (their groups are free). */
int borrow_plan(const struct dev_set *s, const struct ownership *o, const struct device_holder *holders,
                size_t n_holders, struct quiesce_adapter *const *adapters, size_t n_adapters, bool force,
                struct borrow **ret, char **ret_message);

/* Every target stopped: put one fd per group and one device fd per member
 * into job (which closes them when freed), and set job->hot. A holder that
 * exited since is skipped (its group is opened instead). On failure
 * *ret_message names the call, the pid and the reason; what was put into the
 * job stays there, to be closed with it. */
int borrow_take(struct borrow *b, const struct dev_set *s, const struct ownership *o, const struct kernel_ops *k,
                struct reset_job *job, char **ret_message);

struct borrow *borrow_free(struct borrow *b);
