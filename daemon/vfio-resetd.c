/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include "kernel.h"
#include "main.h"

int main(int argc, char *argv[]) {
        return vfio_resetd_main(argc, argv, &kernel_vfio_ops);
}
