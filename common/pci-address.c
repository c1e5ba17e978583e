/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <ctype.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "macro.h"
#include "pci-address.h"

static int fail(char *err, size_t errlen, const char *fmt, ...) _printf_(3, 4);
static int fail(char *err, size_t errlen, const char *fmt, ...) {
        va_list ap;

        if (err && errlen > 0) {
                va_start(ap, fmt);
                vsnprintf(err, errlen, fmt, ap);
                va_end(ap);
        }
        return -EINVAL;
}

/* Reads exactly the hex digits up to the next separator; refuses signs, spaces and "0x". */
static int hex_field(const char **p, char stop, size_t min, size_t max, unsigned long *ret) {
        const char *s = *p;
        unsigned long v = 0;
        size_t n = 0;

        while (*s && *s != stop) {
                if (!isxdigit((unsigned char) *s))
                        return -EINVAL;
                if (n == max)
                        return -ERANGE;
                v = v * 16 + (unsigned long) (isdigit((unsigned char) *s) ? *s - '0' : tolower((unsigned char) *s) - 'a' + 10);
                s++, n++;
        }
        if (n < min)
                return -EINVAL;
        *ret = v;
        *p = s;
        return 0;
}

int pci_address_parse(const char *s, struct pci_address *ret, char *err, size_t errlen) {
        unsigned long domain = 0, bus, slot, function;
        const char *p = s, *colon1, *colon2;
        int r;

        if (!s || !*s)
                return fail(err, errlen, "empty PCI address: expected DDDD:BB:SS.F or BB:SS.F");
        if (strlen(s) >= 64)
                return fail(err, errlen, "PCI address too long (%zu characters): expected DDDD:BB:SS.F or BB:SS.F", strlen(s));

        colon1 = strchr(s, ':');
        colon2 = colon1 ? strchr(colon1 + 1, ':') : NULL;
        if (!colon1 || !strchr(s, '.') || (colon2 && strchr(colon2 + 1, ':')))
                return fail(err, errlen, "'%s' is not a PCI address: expected DDDD:BB:SS.F or BB:SS.F", s);

        if (colon2) {
                r = hex_field(&p, ':', 4, 8, &domain);
                if (r < 0)
                        return fail(err, errlen, "'%s': bad PCI domain, expected 4 to 8 hex digits before the first ':'", s);
                p++;
        }
        r = hex_field(&p, ':', 2, 2, &bus);
        if (r < 0 || *p != ':')
                return fail(err, errlen, "'%s': bad PCI bus, expected 2 hex digits", s);
        p++;
        r = hex_field(&p, '.', 2, 2, &slot);
        if (r < 0 || *p != '.')
                return fail(err, errlen, "'%s': bad PCI slot, expected 2 hex digits", s);
        if (slot > 0x1f)
                return fail(err, errlen, "'%s': PCI slot 0x%02lx out of range 00-1f", s, slot);
        p++;
        r = hex_field(&p, '\0', 1, 1, &function);
        if (r < 0 || *p != '\0')
                return fail(err, errlen, "'%s': bad PCI function, expected one digit 0-7 at the end", s);
        if (function > 7)
                return fail(err, errlen, "'%s': PCI function %lu out of range 0-7", s, function);

        if (ret)
                *ret = (struct pci_address) {
                        .domain = (uint32_t) domain,
                        .bus = (uint8_t) bus,
                        .slot = (uint8_t) slot,
                        .function = (uint8_t) function,
                };
        return 0;
}

char *pci_address_format(const struct pci_address *a, char *buf) {
        snprintf(buf, PCI_ADDRESS_STRLEN, "%04x:%02x:%02x.%x", a->domain, a->bus, a->slot, a->function);
        return buf;
}

bool pci_address_equal(const struct pci_address *a, const struct pci_address *b) {
        return pci_address_compare(a, b) == 0;
}

int pci_address_compare(const struct pci_address *a, const struct pci_address *b) {
        if (a->domain != b->domain)
                return a->domain < b->domain ? -1 : 1;
        if (a->bus != b->bus)
                return a->bus < b->bus ? -1 : 1;
        if (a->slot != b->slot)
                return a->slot < b->slot ? -1 : 1;
        if (a->function != b->function)
                return a->function < b->function ? -1 : 1;
        return 0;
}

bool pci_address_set_contains(const struct pci_address *v, size_t n, const struct pci_address *a) {
        for (size_t i = 0; i < n; i++)
                if (pci_address_equal(&v[i], a))
                        return true;
        return false;
}

int pci_address_set_add(struct pci_address **v, size_t *n, const struct pci_address *a) {
        struct pci_address *nv;

        if (pci_address_set_contains(*v, *n, a))
                return 0;
        nv = realloc(*v, sizeof(*nv) * (*n + 1));
        if (!nv)
                return -ENOMEM;
        nv[(*n)++] = *a;
        *v = nv;
        return 1;
}

bool pci_address_set_remove(struct pci_address *v, size_t *n, const struct pci_address *a) {
        for (size_t i = 0; i < *n; i++)
                if (pci_address_equal(&v[i], a)) {
                        v[i] = v[--*n];
                        return true;
                }
        return false;
}
