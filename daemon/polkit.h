/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* Authorization of bus method calls, asynchronously, in the manner of
 * systemd's bus_verify_polkit_async(): root may do everything; anyone else is
 * asked about through org.freedesktop.PolicyKit1 without blocking the loop. */

#include <systemd/sd-bus.h>

#define VRD_ACTION_RESET  "org.vfioresetd1.reset"
#define VRD_ACTION_TAKE   "org.vfioresetd1.take"
#define VRD_ACTION_BORROW "org.vfioresetd1.borrow"

/* The queries under way, one per method call message. */
struct polkit_registry;

struct polkit_registry *polkit_registry_free(struct polkit_registry *r);

/* Is the sender of msg allowed action?
 *
 *  1: yes: its effective uid is 0 (polkit is not asked), or polkit said yes.
 *  0: a CheckAuthorization query is under way; the caller's method handler
 *     must return 1 without replying. When polkit answers, msg is dispatched
 *     again through sd-bus, so the handler registered for it at that time runs
 *     with the userdata it resolves then (an object freed in the meantime is
 *     never touched), and this call returns the answer. One message may ask
 *     about several actions one after the other (reset, then borrow).
 * <0: no, with error set to org.freedesktop.DBus.Error.AccessDenied naming the
 *     action and the caller, also when the caller cannot be identified or
 *     polkit cannot be asked.
 *
 * The bus must be attached to an sd-event loop. The query is not interactive
 * unless the caller set ALLOW_INTERACTIVE_AUTHORIZATION on its message.
 * handler and userdata are not used: the re-dispatch finds them afresh (see
 * above); they stay in the signature so that call sites read like logind's. */
int polkit_verify(struct polkit_registry **registry, sd_bus_message *msg, const char *action,
                  sd_bus_message_handler_t handler, void *userdata, sd_bus_error *error);

/* Queries that still wait for polkit or for their message's second dispatch. */
size_t polkit_registry_size(const struct polkit_registry *r);
