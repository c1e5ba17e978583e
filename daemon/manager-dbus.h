/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* org.vfioresetd1.Manager at /org/vfioresetd1, the ObjectManager over all
 * objects, and the wiring of every bus face to the manager and the arbiter. */

#include "manager.h"

/* Connect to the system bus and serve every object (before manager_start). */
int manager_bus_start(struct manager *m);
/* Take the bus name (after manager_start: the objects are there). */
int manager_bus_request_name(struct manager *m);
