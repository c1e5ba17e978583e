/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* The arbiter's bus face: ResetDevice, DevSet.Reset and PauseComplete in,
 * Pause, Resume, ResetStarted, ResetFinished and the replies out. */

#include <systemd/sd-bus.h>

#include "manager.h"

/* What the arbiter says, said on m->bus. */
extern const struct arbiter_ops arbiter_bus_ops;

/* Parse ResetDevice's a{sv}; InvalidArgs naming the bad option. */
int reset_options_parse(sd_bus_message *msg, uint64_t default_timeout_usec, struct reset_options *ret,
                        sd_bus_error *error);

int method_reset_device(sd_bus_message *msg, void *userdata, sd_bus_error *error);
int method_dev_set_reset(sd_bus_message *msg, void *userdata, sd_bus_error *error);
int method_pause_complete(sd_bus_message *msg, void *userdata, sd_bus_error *error);
