/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include "kernel.h"

/* The daemon's main(), with the kernel backend to use (tests pass a double). */
int vfio_resetd_main(int argc, char *argv[], const struct kernel_ops *kernel);
