/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* The bus face's signals for observers (PropertiesChanged of sets,
 * ResetStarted, ResetFinished): built when they happen, sent after the Pause,
 * Resume and replies of the same loop iteration, in the order queued. */

#include "manager.h"

/* Queue msg (taken) for observers, to go out after the Pause, Resume and
 * replies of this loop iteration, in the order queued; set_path: the dev_set
 * it tells of. Without an event loop it goes out at once. */
void bus_later_send(struct manager *m, const char *set_path, sd_bus_message *msg);
/* Send what is queued now: of the set at set_path only, or all (NULL). */
void bus_later_flush(struct manager *m, const char *set_path);
