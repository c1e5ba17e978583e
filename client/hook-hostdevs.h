/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* The libvirt hook's reading of a domain XML (libvirt's "Domain XML format",
 * <hostdev mode='subsystem' type='pci'>): which PCI hostdevs stay bound to
 * vfio-pci once the domain is released. Apart from the hook so that the fuzz
 * target tests/fuzz/fuzz-hook-xml.c calls the same function. */

#include <stddef.h>

/* Why a hostdev is not on the list. */
enum hostdev_skip {
        HOSTDEV_MANAGED,        /* managed='yes': libvirt rebinds it to its host driver */
        HOSTDEV_NOT_WANTED,     /* not among the wanted devices */
};

typedef void (*hostdev_skipped_t)(const char *address, enum hostdev_skip why, void *userdata);

/* The canonical addresses ("DDDD:BB:SS.F", no duplicates) of the managed='no'
 * PCI hostdevs of xml (size bytes) that are among wanted (NULL: all); *ret is
 * NULL when there is none. skipped (if not NULL) hears of each one left out.
 * -EBADMSG when xml is not a domain XML, -ENOMEM. */
int hook_hostdevs(const char *xml, size_t size, char *const *wanted, hostdev_skipped_t skipped, void *userdata,
                  char ***ret);
