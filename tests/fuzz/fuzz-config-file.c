/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* config_load() on any file; what it loads must hold what config-file.h
 * promises: canonical device addresses without duplicates, a timeout in
 * range. Its warnings go to stderr (make fuzz runs libFuzzer with -close_fd_mask=3,
 * which closes it for the target but keeps the sanitizers' reports). */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "config-file.h"
#include "fuzz.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        struct vrd_config c;
        char path[64];
        int fd, r;

        fd = memfd_create("vfio-resetd.conf", MFD_CLOEXEC);
        if (fd < 0 || (size && write(fd, data, size) != (ssize_t) size))
                abort();
        snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);
        r = config_load(path, &c);
        close(fd);
        if (r < 0)
                return 0;       /* -ENOMEM, a read error: said, nothing loaded */
        if (!c.managed || !c.vfio_drivers || c.quiesce_timeout_usec == 0 ||
            c.quiesce_timeout_usec > 3600 * UINT64_C(1000000))
                abort();
        for (char **a = c.managed; *a; a++) {
                struct pci_address pa;
                char buf[PCI_ADDRESS_STRLEN];

                if (pci_address_parse(*a, &pa, NULL, 0) < 0 || strcmp(pci_address_format(&pa, buf), *a) != 0 ||
                    !config_manages(&c, &pa))
                        abort();
                for (char **b = a + 1; *b; b++)
                        if (strcmp(*a, *b) == 0)
                                abort();
        }
        config_done(&c);
        return 0;
}
