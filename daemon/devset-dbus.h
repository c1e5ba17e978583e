/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* org.vfioresetd1.DevSet: one object per dev_set with at least one vfio device. */

#include "manager.h"

int dev_set_bus_register(struct manager *m);
int dev_set_bus_emit_changed(struct dev_set *s, const char *const *properties);
