/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* The bus floor of a reset with N peers: a bare sd-bus server (a process of
 * its own) that, on a Reset call, sends each peer that called Watch a unicast
 * Ping, answers the N Ack calls they send, sends each a Done, then replies.
 * These are exactly the messages of a ResetDevice with N peers: the request,
 * N Pause, N PauseComplete and their replies, N Resume, the reply. Used by
 * bench/peer-scale.c (fake sysfs) and bench/floor-round.c (in the VM guest). */

#include <stdint.h>
#include <sys/types.h>
#include <systemd/sd-bus.h>

#define FLOOR_NAME "org.vfioresetd1.BenchFloor"
#define FLOOR_PATH "/bench"
#define FLOOR_IFACE "org.vfioresetd1.Bench"

/* Forks the server on the system bus ($DBUS_SYSTEM_BUS_ADDRESS); < 0 on
 * failure. It runs until killed: SIGKILL it, then waitpid(2). */
pid_t floor_server_fork(void);
/* Waits up to 5 s until the server owns FLOOR_NAME on bus; 0 or < 0. */
int floor_server_wait(sd_bus *bus);
/* Makes bus a peer of the floor: answers each Ping with an Ack, counts each
 * Done in *n_resumed, and calls Watch (synchronously). */
int floor_peer_attach(sd_bus *bus, uint64_t *n_resumed, sd_bus_error *error);
/* Sends the Reset call on bus; on_reply gets its reply. */
int floor_reset_async(sd_bus *bus, sd_bus_message_handler_t on_reply, void *userdata);
