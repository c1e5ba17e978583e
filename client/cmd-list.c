/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* vfio-resetctl list: every dev_set, one line each. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "macro.h"
#include "strv.h"
#include "verdict.h"
#include "vfio-resetctl.h"


enum { COL_ID, COL_KIND, COL_DEVICES, COL_GROUPS, COL_STATE, COL_HOLDERS, N_COLS };

static char *groups_of(const struct ctl_model *m, const struct ctl_dev_set *s) {
        char *r = calloc(1, 12 * (strv_length(s->devices) + 1) + 2);
        int seen[64];
        size_t n = 0;

        if (!r)
                return NULL;
        for (char **p = s->devices; p && *p; p++) {
                const struct ctl_device *d = ctl_model_device(m, *p);
                bool dup = false;

                if (!d)
                        continue;
                for (size_t i = 0; i < n; i++)
                        dup = dup || seen[i] == d->iommu_group;
                if (dup || n == ELEMENTSOF(seen))
                        continue;
                seen[n++] = d->iommu_group;
                sprintf(r + strlen(r), "%s%d", n > 1 ? "," : "", d->iommu_group);
        }
        return r;
}

static char *holders_of(const struct ctl_dev_set *s) {
        char *r = calloc(1, 40 * (s->n_holders + 1) + 3);

        if (!r)
                return NULL;
        for (size_t i = 0; i < s->n_holders; i++) {
                bool dup = false;

                for (size_t j = 0; j < i; j++)
                        dup = dup || s->holders[j].pid == s->holders[i].pid;
                if (!dup)
                        sprintf(r + strlen(r), "%s%u/%s", *r ? "," : "", s->holders[i].pid, s->holders[i].command);
        }
        if (s->n_uninspected > 0)      /* more may hold it than the daemon could see */
                strcat(r, *r ? ",?" : "?");
        if (!*r)
                strcpy(r, "-");
        return r;
}

int cmd_list(struct ctl *c, int argc, char *argv[]) {
        _cleanup_(ctl_model_freep) struct ctl_model *m = NULL;
        static const char *header[N_COLS] = { "DEVSET", "KIND", "DEVICES", "GROUPS", "STATE", "HOLDERS" };
        _cleanup_free_ char *unseen = NULL;
        size_t width[N_COLS];
        char ***rows;
        int r;

        if (argc > 1) {
                fprintf(stderr, "%s: list takes no arguments, got '%s'\n", program_invocation_short_name, argv[1]);
                return CTL_EXIT_USAGE;
        }
        r = ctl_load(c, &m);
        if (r < 0)
                return -r;

        if (c->json) {
                json_object *a = json_object_new_array();

                for (size_t i = 0; i < m->n_dev_sets; i++)
                        json_object_array_add(a, ctl_dev_set_to_json(m, &m->dev_sets[i]));
                ctl_print_json(a);
                json_object_put(a);
                return 0;
        }

        rows = calloc(m->n_dev_sets + 1, sizeof(*rows));
        if (!rows)
                return CTL_EXIT_FAILURE;
        for (size_t col = 0; col < N_COLS; col++)
                width[col] = strlen(header[col]);
        for (size_t i = 0; i < m->n_dev_sets; i++) {
                const struct ctl_dev_set *s = &m->dev_sets[i];

                rows[i] = calloc(N_COLS, sizeof(char *));
                if (!rows[i])
                        return CTL_EXIT_FAILURE;
                rows[i][COL_ID] = strdup(s->id ?: "?");
                rows[i][COL_KIND] = strdup(s->kind ?: "?");
                rows[i][COL_DEVICES] = ctl_join_addresses(m, s->devices, ",");
                rows[i][COL_GROUPS] = groups_of(m, s);
                rows[i][COL_STATE] = strdup(s->state ?: "?");
                rows[i][COL_HOLDERS] = holders_of(s);
                if (!unseen)
                        unseen = verdict_uninspected(s);
                for (size_t col = 0; col < N_COLS; col++) {
                        if (!rows[i][col])
                                return CTL_EXIT_FAILURE;
                        if (strlen(rows[i][col]) > width[col])
                                width[col] = strlen(rows[i][col]);
                }
        }
        for (size_t col = 0; col < N_COLS; col++)
                printf("%-*s%s", (int) width[col], header[col], col + 1 < N_COLS ? "  " : "\n");
        for (size_t i = 0; i < m->n_dev_sets; i++) {
                for (size_t col = 0; col < N_COLS; col++) {
                        printf("%-*s%s", (int) width[col], rows[i][col], col + 1 < N_COLS ? "  " : "\n");
                        free(rows[i][col]);
                }
                free(rows[i]);
        }
        free(rows);
        printf("\n%zu dev_sets, %zu vfio devices.\n", m->n_dev_sets, m->n_devices);
        if (unseen)
                printf("Holders marked ? cannot be told: %s.\n", unseen);
        return 0;
}
