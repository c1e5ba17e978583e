/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* A fake sysfs from tests/topologies/NAME.umockdev, plus the plain sysfs
 * files (slots, module holders) listed in NAME.sysfs as PATH=VALUE lines.
 * The test must run under umockdev's preload (umockdev-wrapper). */

#include <umockdev.h>

UMockdevTestbed *testbed_new(const char *topology);
/* Writes a plain file below the fake /sys, making its directories. */
void testbed_write(UMockdevTestbed *tb, const char *sys_relpath, const char *value);
/* Makes a symlink below the fake /sys (target relative, as sysfs has them). */
void testbed_unlink(UMockdevTestbed *tb, const char *sys_relpath);
void testbed_symlink(UMockdevTestbed *tb, const char *sys_relpath, const char *target);
