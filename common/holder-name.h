/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* How the daemon and vfio-resetctl name a process that holds a member of a
 * dev_set open: "pid P (comm, uid U, unit X)" (docs/dbus-api.md, HolderDetails). */

#include <stddef.h>
#include <stdint.h>

/* The uid of a holder not known: gone before it was read, or an old daemon. */
#define HOLDER_UID_UNKNOWN UINT32_MAX
/* "pid 4294967295 (" + comm (15) + ", uid 4294967295, unit " + a unit (255) + ")" */
#define HOLDER_NAME_MAX 320

/* Formats into buf and returns it: the uid unless HOLDER_UID_UNKNOWN, the
 * unit unless NULL or "". */
char *holder_name(char *buf, size_t size, uint32_t pid, const char *comm, uint32_t uid, const char *unit);
