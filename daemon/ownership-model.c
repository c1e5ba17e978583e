/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Which ownership model a dev_set gets, and the table that sends each call
 * to the device's own. */
#include <errno.h>
#include <string.h>

#include "devset.h"
#include "log.h"
#include "ownership.h"

const char *ownership_model_name(enum ownership_model m) {
        return m == OWNERSHIP_CDEV ? "cdev" : m == OWNERSHIP_LEGACY ? "legacy" : "";
}

/* Every member has a vfio cdev (/sys/bus/pci/devices/ADDR/vfio-dev/vfioX):
 * the kernel's empty-list hot reset needs every device of the set bound to
 * the one context, so one member without a cdev keeps the set on legacy. */
static bool set_has_cdevs(const struct device *d) {
        if (!d->dev_set)
                return d->fn.vfio_cdev != NULL;
        for (size_t i = 0; i < d->dev_set->n_members; i++)
                if (!d->dev_set->members[i]->fn.vfio_cdev)
                        return false;
        return true;
}

enum ownership_model ownership_pick_model(const struct ownership *o, const struct device *d,
                                          const struct vrd_config *config) {
        enum config_model want = config_model_for(config, d->dev_set ? d->dev_set->id : NULL);
        bool offered = o->kernel->iommufd_offered && o->kernel->iommufd_offered(o->kernel->data) && set_has_cdevs(d);

        if (want == CONFIG_MODEL_LEGACY)
                return OWNERSHIP_LEGACY;
        if (want == CONFIG_MODEL_CDEV && !offered)
                log_debug("%s: Model=cdev, but the kernel offers no cdev for every member of %s (/dev/iommu and "
                          "vfio-dev in sysfs): legacy", d->path, d->dev_set ? d->dev_set->id : "its set");
        return offered ? OWNERSHIP_CDEV : OWNERSHIP_LEGACY;
}

static const struct ownership_ops *ops_of(const struct device *d) {
        return d->model == OWNERSHIP_CDEV ? &ownership_cdev_ops : &ownership_legacy_ops;
}

static int model_acquire(struct ownership *o, struct device *d) {
        if (d->model == OWNERSHIP_NONE)
                d->model = OWNERSHIP_LEGACY;
        return ops_of(d)->acquire(o, d);
}

static void model_release(struct ownership *o, struct device *d) {
        ops_of(d)->release(o, d);
}

static int model_iommu_fd(const struct ownership *o, const struct device *d) {
        return ops_of(d)->iommu_fd(o, d);
}

/* One model per set: ownership_pick_model() decides by the set. */
static int model_reset_group_fds(const struct ownership *o, const struct dev_set *s, int **ret, size_t *n_ret) {
        if (s->n_members == 0)
                return -EPERM;
        for (size_t i = 1; i < s->n_members; i++)
                if (s->members[i]->model != s->members[0]->model)
                        return -EPERM;
        return ops_of(s->members[0])->reset_group_fds(o, s, ret, n_ret);
}

static int model_take(struct ownership *o, struct device *d, bool fresh, struct device **ret_moved,
                      size_t n_moved_max, char *why, size_t why_size) {
        return ops_of(d)->take(o, d, fresh, ret_moved, n_moved_max, why, why_size);
}

const struct ownership_ops ownership_model_ops = {
        .name = "per-set",
        .acquire = model_acquire,
        .release = model_release,
        .iommu_fd = model_iommu_fd,
        .reset_group_fds = model_reset_group_fds,
        .take = model_take,
};
