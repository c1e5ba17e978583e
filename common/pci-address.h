/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* A PCI function address in the kernel's words: domain, bus, slot (device), function. */
struct pci_address {
        uint32_t domain;
        uint8_t bus;
        uint8_t slot;
        uint8_t function;
};

/* "DDDD:BB:SS.F" (domains above 0xffff, as VMD makes them, take more digits) */
#define PCI_ADDRESS_STRLEN sizeof("ffffffff:ff:1f.7")

/* Parse "DDDD:BB:SS.F" or "BB:SS.F" (domain 0). Returns 0, or -EINVAL with a
 * sentence naming what is wrong written to err (if not NULL). */
int pci_address_parse(const char *s, struct pci_address *ret, char *err, size_t errlen);

/* Canonical "DDDD:BB:SS.F"; buf must hold PCI_ADDRESS_STRLEN bytes. */
char *pci_address_format(const struct pci_address *a, char *buf);

bool pci_address_equal(const struct pci_address *a, const struct pci_address *b);
int pci_address_compare(const struct pci_address *a, const struct pci_address *b);

/* A set of addresses in an array of n: add returns 1 when added, 0 when it
 * was there already, -ENOMEM; remove says whether it was there. */
int pci_address_set_add(struct pci_address **v, size_t *n, const struct pci_address *a);
bool pci_address_set_remove(struct pci_address *v, size_t *n, const struct pci_address *a);
bool pci_address_set_contains(const struct pci_address *v, size_t n, const struct pci_address *a);
