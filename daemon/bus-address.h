/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* Address arguments of method calls: "DDDD:BB:SS.F" to a vfio device, or a
 * D-Bus error that names the address and says what it is instead. */

#include <systemd/sd-bus.h>

#include "manager.h"

/* The next argument of a method call is the address. */
int bus_read_device(struct manager *m, sd_bus_message *msg, struct device **ret, sd_bus_error *error);
/* The device's dev_set, or an error: a device between two scans may have none. */
int bus_device_dev_set(const struct device *d, struct dev_set **ret, sd_bus_error *error);
