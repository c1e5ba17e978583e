/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* A fuzz target: libFuzzer's entry point (https://llvm.org/docs/LibFuzzer.html).
 * Built with -fsanitize=fuzzer under --enable-fuzzers; otherwise linked with
 * replay.c, which feeds it the files of its corpus, so make check replays
 * every corpus (and every crash kept there) with any compiler. A target
 * returns 0 and calls abort() when a property it checks does not hold. */

#include <stddef.h>
#include <stdint.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* An input read as a recipe, a byte at a time; past its end every byte is 0. */
struct fuzz_input {
        const uint8_t *p;
        size_t left;
};

static inline uint8_t fuzz_take(struct fuzz_input *in) {
        if (!in->left)
                return 0;
        in->left--;
        return *in->p++;
}
