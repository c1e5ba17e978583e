/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <errno.h>
#include <libxml/parser.h>
#include <libxml/xpath.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "hook-hostdevs.h"
#include "macro.h"
#include "pci-address.h"
#include "strv.h"

int hook_hostdevs(const char *xml, size_t size, char *const *wanted, hostdev_skipped_t skipped, void *userdata,
                  char ***ret) {
        _cleanup_strv_free_ char **l = NULL;
        xmlDocPtr doc;
        xmlXPathContextPtr ctx = NULL;
        xmlXPathObjectPtr set = NULL;
        int r = 0;

        doc = xmlReadMemory(xml, (int) size, "domain.xml", NULL, XML_PARSE_NONET | XML_PARSE_NOERROR |
                                                                XML_PARSE_NOWARNING);
        if (!doc || !xmlDocGetRootElement(doc) ||
            strcmp((const char *) xmlDocGetRootElement(doc)->name, "domain") != 0) {
                xmlFreeDoc(doc);
                return -EBADMSG;
        }
        ctx = xmlXPathNewContext(doc);
        set = ctx ? xmlXPathEvalExpression(BAD_CAST "/domain/devices/hostdev[@mode='subsystem' and @type='pci']",
                                           ctx) : NULL;
        for (int i = 0; set && set->nodesetval && i < set->nodesetval->nodeNr; i++) {
                xmlNodePtr h = set->nodesetval->nodeTab[i];
                xmlChar *managed = xmlGetProp(h, BAD_CAST "managed");
                xmlXPathObjectPtr a;
                char address[PCI_ADDRESS_STRLEN];
                unsigned dom = 0, bus = 0, slot = 0, fn = 0;
                bool is_managed = managed && strcmp((const char *) managed, "yes") == 0;

                xmlFree(managed);
                ctx->node = h;
                a = xmlXPathEvalExpression(BAD_CAST "source/address", ctx);
                if (a && a->nodesetval && a->nodesetval->nodeNr > 0) {
                        xmlNodePtr n = a->nodesetval->nodeTab[0];
                        const char *attrs[] = { "domain", "bus", "slot", "function" };
                        unsigned *v[] = { &dom, &bus, &slot, &fn };

                        for (size_t k = 0; k < 4; k++) {
                                xmlChar *s = xmlGetProp(n, BAD_CAST attrs[k]);

                                *v[k] = s ? (unsigned) strtoul((const char *) s, NULL, 0) : 0;
                                xmlFree(s);
                        }
                        snprintf(address, sizeof(address), "%04x:%02x:%02x.%x", dom & 0xffff, bus & 0xff,
                                 slot & 0x1f, fn & 7);
                        if (is_managed || (wanted && !strv_contains(wanted, address))) {
                                if (skipped)
                                        skipped(address, is_managed ? HOSTDEV_MANAGED : HOSTDEV_NOT_WANTED,
                                                userdata);
                        } else if (!strv_contains(l, address) && strv_extend(&l, address) < 0)
                                r = -ENOMEM;
                }
                xmlXPathFreeObject(a);
        }
        xmlXPathFreeObject(set);
        xmlXPathFreeContext(ctx);
        xmlFreeDoc(doc);
        if (r < 0)
                return r;
        *ret = TAKE_PTR(l);
        return 0;
}
