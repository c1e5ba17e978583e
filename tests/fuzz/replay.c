/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* A fuzz target's main without libFuzzer: each argument, or with none the
 * folder $FUZZ_CORPUS_DIR/<program name without "fuzz-">, is a file or a folder
 * of files, each one input. Exit 0 when every input ran, 1 when none was found. */
#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "fuzz.h"

static int run_file(const char *path) {
        FILE *f = fopen(path, "re");
        uint8_t *data = NULL;
        size_t size = 0, alloc = 0, n;

        if (!f) {
                fprintf(stderr, "%s: %s\n", path, strerror(errno));
                return -1;
        }
        do {
                if (alloc - size < 4096) {
                        uint8_t *d = realloc(data, alloc + 65536);

                        if (!d) {
                                fclose(f);
                                free(data);
                                return -1;
                        }
                        data = d;
                        alloc += 65536;
                }
                n = fread(data + size, 1, alloc - size, f);
                size += n;
        } while (n > 0);
        fclose(f);
        /* an input of its exact size, so that ASan sees a read past its end */
        uint8_t *exact = malloc(size ? size : 1);

        if (!exact) {
                free(data);
                return -1;
        }
        memcpy(exact, data, size);
        free(data);
        fprintf(stderr, "replay %s (%zu bytes)\n", path, size);
        (void) LLVMFuzzerTestOneInput(exact, size);
        free(exact);
        return 0;
}

static int run_path(const char *path, unsigned *count) {
        struct dirent **names = NULL;
        struct stat st;
        int n, r = 0;

        if (stat(path, &st) < 0) {
                fprintf(stderr, "%s: %s\n", path, strerror(errno));
                return -1;
        }
        if (!S_ISDIR(st.st_mode)) {
                r = run_file(path);
                *count += r == 0;
                return r;
        }
        n = scandir(path, &names, NULL, alphasort);     /* sorted: the same order on every run */
        if (n < 0) {
                fprintf(stderr, "%s: %s\n", path, strerror(errno));
                return -1;
        }
        for (int i = 0; i < n; i++) {
                char child[4096];

                if (names[i]->d_name[0] != '.' && r == 0) {
                        snprintf(child, sizeof(child), "%s/%s", path, names[i]->d_name);
                        r = run_path(child, count);
                }
                free(names[i]);
        }
        free(names);
        return r;
}

int main(int argc, char *argv[]) {
        unsigned count = 0;
        int r = 0;

        if (argc > 1)
                for (int i = 1; i < argc && r == 0; i++)
                        r = run_path(argv[i], &count);
        else {
                const char *dir = getenv("FUZZ_CORPUS_DIR"), *name = strrchr(argv[0], '/');
                char path[4096];

                name = name ? name + 1 : argv[0];
                if (strncmp(name, "fuzz-", 5) == 0)
                        name += 5;
                if (!dir) {
                        fprintf(stderr, "FUZZ_CORPUS_DIR is not set: run with make check, or name the inputs\n");
                        return 1;
                }
                snprintf(path, sizeof(path), "%s/%s", dir, name);
                r = run_path(path, &count);
        }
        if (r < 0)
                return 1;
        fprintf(stderr, "%u inputs replayed\n", count);
        return count > 0 ? 0 : 1;
}
