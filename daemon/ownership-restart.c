/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* After a restart: the groups that came back from the fd store with their
 * peer's address space, and who may take them first. A group's address space
 * is its peer's DMA mappings: the container in the legacy model, the IOAS its
 * devices stayed attached to in the cdev model. Whoever still holds the file
 * the daemon gave out for it (the container; a member's bound cdev, which a
 * peer of the cdev model gets as its device fd) is a peer from before the
 * restart: the kernel tells it (kcmp(2) of the open file), not a name or a
 * pid. Until one of them takes the group again, or none holds the file any
 * more, nobody else may take it. */
#include <errno.h>
#include <stdlib.h>
#include <unistd.h>

#include "log.h"
#include "macro.h"
#include "ownership.h"

/* Every group waiting for its holders to be looked for. */
static size_t collect_adopted(struct ownership *o, struct previous_holders **ret) {
        size_t n = 0;

        for (size_t i = 0; i < o->n_groups; i++)
                if (o->groups[i]->previous.adopted)
                        ret[n++] = &o->groups[i]->previous;
        for (size_t i = 0; i < o->n_contexts; i++)
                for (size_t j = 0; j < o->contexts[i]->n_previous; j++)
                        if (o->contexts[i]->previous[j].adopted)
                                ret[n++] = &o->contexts[i]->previous[j];
        return n;
}

/* Who holds the files of the groups taken back, but this daemon and the
 * service manager that kept the store for it (its parent). */
void ownership_find_previous_holders(struct ownership *o) {
        const pid_t exclude[] = { getpid(), getppid() };
        size_t n_max = o->n_groups, n, n_found = 0;
        _cleanup_free_ struct previous_holders **v = NULL;
        _cleanup_free_ struct holder *found = NULL;
        _cleanup_free_ int *fds = NULL;
        char who[HOLDER_NAME_MAX];
        int r;

        for (size_t i = 0; i < o->n_contexts; i++)
                n_max += o->contexts[i]->n_previous;
        v = calloc(n_max + 1, sizeof(*v));
        fds = calloc(n_max + 1, sizeof(*fds));
        if (!v || !fds) {
                log_oom();
                return;
        }
        n = collect_adopted(o, v);
        if (n == 0)
                return;
        for (size_t i = 0; i < n; i++) {
                v[i]->adopted = false;
                fds[i] = v[i]->file;
        }
        r = holders_of_files(fds, n, exclude, ELEMENTSOF(exclude), &found, &n_found);
        if (r < 0) {
                log_warning_errno(r, "Cannot tell who still holds what came back from the fd store: %m");
                return;
        }
        for (size_t i = 0; i < n_found; i++) {
                struct previous_holders *p = v[found[i].target];
                struct holder *h = realloc(p->v, sizeof(*h) * (p->n + 1));
                struct owned_group *g = ownership_find_group(o, p->group);

                if (!h) {
                        log_oom();
                        return;
                }
                p->v = h;
                h[p->n++] = found[i];
                log_info("IOMMU group %d: %s still holds its %s from before the restart: only it may take the "
                         "group's devices again until it lets go", p->group, holder_describe(&found[i], who),
                         g && p == &g->previous ? "container" : "device's cdev, attached to its IOAS");
        }
}

static struct previous_holders *find(const struct ownership *o, int group) {
        struct owned_group *g = ownership_find_group(o, group);

        if (g && g->previous.n > 0)
                return &g->previous;
        for (size_t i = 0; i < o->n_contexts; i++)
                for (size_t j = 0; j < o->contexts[i]->n_previous; j++)
                        if (o->contexts[i]->previous[j].group == group && o->contexts[i]->previous[j].n > 0)
                                return &o->contexts[i]->previous[j];
        return NULL;
}

bool ownership_has_previous_holders(const struct ownership *o, int group) {
        return find(o, group) != NULL;
}

int ownership_previous_holder(struct ownership *o, int group, pid_t pid, const struct holder **ret) {
        struct previous_holders *p = find(o, group);
        size_t n = 0;

        *ret = NULL;
        if (!p)
                return 0;
        /* The caller holds the file itself: one of them is back (a pid alone
         * could have been reused). Else the others count only while they
         * still hold it. */
        if (holder_has_file(pid, p->file) > 0)
                return 1;
        for (size_t i = 0; i < p->n; i++)
                if (holder_has_file(p->v[i].pid, p->file) != 0)
                        p->v[n++] = p->v[i];
        p->n = n;
        if (n == 0) {
                p->v = mfree(p->v);
                return 0;
        }
        *ret = &p->v[0];
        return -EBUSY;
}

void previous_holders_forget(struct previous_holders **v, size_t *n, int file) {
        for (size_t i = 0; i < *n;)
                if ((*v)[i].file == file) {
                        free((*v)[i].v);
                        (*v)[i] = (*v)[--*n];
                } else
                        i++;
        if (*n == 0)
                *v = mfree(*v);
}
