/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* vfio-resetd with the kernel test double (tests/kernel-fake.h), for the fake
 * sysfs of umockdev where no VFIO ioctl can run. */
#include <stdlib.h>

#include "kernel-fake.h"
#include "main.h"

int main(int argc, char *argv[]) {
        if (kernel_fake_configure(getenv("VRD_FAKE_KERNEL")) < 0)
                return EXIT_FAILURE;
        return vfio_resetd_main(argc, argv, kernel_fake_ops());
}
