/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* TakeDevice, ReleaseDevice, Watch, Unwatch: how a program becomes a peer;
 * and how the daemon learns that a peer left the bus. */

#include <systemd/sd-bus.h>

#include "manager.h"

/* One match on NameOwnerChanged for every peer: a match per peer would run
 * into dbus-daemon's limit of match rules per connection (512 by default). */
int peer_bus_track(struct manager *m);

/* Appends the peer's name to the message reply (a visitor of peer.h's walks). */
int peer_bus_append_name(struct peer *p, void *reply);

int method_take_device(sd_bus_message *msg, void *userdata, sd_bus_error *error);
int method_release_device(sd_bus_message *msg, void *userdata, sd_bus_error *error);
int method_watch(sd_bus_message *msg, void *userdata, sd_bus_error *error);
int method_unwatch(sd_bus_message *msg, void *userdata, sd_bus_error *error);
