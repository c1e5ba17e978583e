/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <check.h>
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "testbed.h"

static void mkdir_parents(const char *path) {
        char buf[PATH_MAX];

        snprintf(buf, sizeof(buf), "%s", path);
        for (char *p = buf + 1; *p; p++)
                if (*p == '/') {
                        *p = '\0';
                        ck_assert_msg(mkdir(buf, 0755) == 0 || errno == EEXIST, "mkdir %s: %m", buf);
                        *p = '/';
                }
}

/* umockdev_testbed_get_sys_dir() returns a string of the caller's (umockdev's API: "transfer full"). */
static void sys_path(UMockdevTestbed *tb, const char *sys_relpath, char path[static PATH_MAX]) {
        g_autofree gchar *sys = umockdev_testbed_get_sys_dir(tb);

        snprintf(path, PATH_MAX, "%s/%s", sys, sys_relpath);
}

void testbed_write(UMockdevTestbed *tb, const char *sys_relpath, const char *value) {
        char path[PATH_MAX];
        FILE *f;

        sys_path(tb, sys_relpath, path);
        mkdir_parents(path);
        f = fopen(path, "we");
        ck_assert_msg(f, "cannot write %s: %m", path);
        fputs(value, f);
        ck_assert_int_eq(fclose(f), 0);
}

void testbed_unlink(UMockdevTestbed *tb, const char *sys_relpath) {
        char path[PATH_MAX];

        sys_path(tb, sys_relpath, path);
        ck_assert_msg(unlink(path) == 0, "unlink %s: %m", path);
}

void testbed_symlink(UMockdevTestbed *tb, const char *sys_relpath, const char *target) {
        char path[PATH_MAX];

        sys_path(tb, sys_relpath, path);
        mkdir_parents(path);
        (void) unlink(path);
        ck_assert_msg(symlink(target, path) == 0, "symlink %s: %m", path);
}

UMockdevTestbed *testbed_new(const char *topology) {
        const char *dir = getenv("TOPOLOGY_DIR");
        char path[PATH_MAX], line[1024];
        GError *error = NULL;
        UMockdevTestbed *tb;
        FILE *f;

        ck_assert_msg(dir, "TOPOLOGY_DIR is not set: run the tests with make check");
        tb = umockdev_testbed_new();
        ck_assert_ptr_nonnull(tb);
        ck_assert_msg(umockdev_in_mock_environment(), "not under umockdev's preload: run with umockdev-wrapper");

        snprintf(path, sizeof(path), "%s/%s.umockdev", dir, topology);
        ck_assert_msg(umockdev_testbed_add_from_file(tb, path, &error), "%s: %s", path,
                      error ? error->message : "?");

        snprintf(path, sizeof(path), "%s/%s.sysfs", dir, topology);
        f = fopen(path, "re");
        while (f && fgets(line, sizeof(line), f)) {
                char *eq = strchr(line, '=');

                line[strcspn(line, "\n")] = '\0';
                if (!eq || line[0] == '#')
                        continue;
                *eq = '\0';
                testbed_write(tb, line, eq + 1);
        }
        if (f)
                fclose(f);
        return tb;
}
