/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* org.vfioresetd1.Device: one object per vfio-bound PCI function. */

#include "manager.h"

int device_bus_register(struct manager *m);
int device_bus_emit_changed(struct device *d, const char *const *properties);
