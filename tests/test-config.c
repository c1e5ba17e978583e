/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The configuration file: a table of files, what loads from each, and the
 * warnings it must log (file:line: what is wrong), read back from stderr. */
#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "config-file.h"    /* not autoconf's config.h, which -I. finds first */
#include "log.h"
#include "check-run.h"
#include "strv.h"

#define SEC UINT64_C(1000000)

struct warning {
        unsigned line;
        const char *needle;
};

static const struct config_case {
        const char *name;
        const char *text;       /* NULL: the file does not exist */
        const char *managed[8];
        const char *drivers[4];
        uint64_t timeout_usec;
        const char *libvirt_uri;        /* NULL: the default, qemu:///system */
        bool libvirt_off;               /* "" or "none": no adapter */
        struct warning warnings[16];
} cases[] = {
        {
                .name = "good",
                .text = "# vfio-resetd\n"
                        "; another comment\n"
                        "\n"
                        "[Manage]\n"
                        "Device=0000:04:00.0 04:00.1      ; inline comment\n"
                        "  Device = 0000:05:00.0\t\n"
                        "[Reset]\n"
                        "QuiesceTimeoutSec=2.5\n"
                        "[Topology]\n"
                        "VfioDriver=my_vfio_variant\n"
                        "[Libvirt]\n"
                        "URI=qemu+ssh://root@host/system\n",
                .managed = { "0000:04:00.0", "0000:04:00.1", "0000:05:00.0" },
                .drivers = { "my_vfio_variant" },
                .timeout_usec = 2500000,
                .libvirt_uri = "qemu+ssh://root@host/system",
        },
        {
                .name = "libvirt off, with none",
                .text = "[Libvirt]\nURI=test:///default\nURI=none\n",
                .timeout_usec = 5 * SEC,
                .libvirt_off = true,
        },
        {
                .name = "libvirt off, empty, and a bad URI",
                .text = "[Libvirt]\n"                                           /* 1 */
                        "URI=\n"                                                /* 2 */
                        "URI=qemu:///system with words\n"                       /* 3 */
                        "Uri=qemu:///session\n",                                /* 4 */
                .timeout_usec = 5 * SEC,
                .libvirt_off = true,
                .warnings = {
                        { 3, "URI=: 'qemu:///system with words' is not a libvirt URI" },
                        { 4, "unknown key 'Uri' in [Libvirt]" },
                },
        },
        {
                .name = "bad lines among good ones",
                .text = "[Manage]\n"                                            /* 1 */
                        "Device=0000:04:00.0 zz:00.0 0000:04:00.8\n"            /* 2 */
                        "Devices=0000:09:00.0\n"                                /* 3 */
                        "this line has no equals sign\n"                        /* 4 */
                        "[Bogus]\n"                                             /* 5 */
                        "Key=1\n"                                               /* 6 */
                        "[Reset]\n"                                             /* 7 */
                        "QuiesceTimeoutSec=abc\n"                               /* 8 */
                        "QuiesceTimeoutSec=-1\n"                                /* 9 */
                        "QuiesceTimeoutSec=0\n"                                 /* 10 */
                        "QuiesceTimeoutSec=1e3\n"                               /* 11 */
                        "QuiesceTimeoutSec=7200\n"                              /* 12 */
                        "[Topology]\n"                                          /* 13 */
                        "VfioDriver=good_one bad/name\n"                        /* 14 */
                        "[Unclosed\n"                                           /* 15 */
                        "[Manage]\n"                                            /* 16 */
                        "Device=0000:06:00.0\n"                                 /* 17 */
                        "[Reset]\n"                                             /* 18 */
                        "QuiesceTimeoutSec=0.25\n",                             /* 19 */
                .managed = { "0000:04:00.0", "0000:06:00.0" },
                .drivers = { "good_one" },
                .timeout_usec = 250000,
                .warnings = {
                        { 2, "Device=: 'zz:00.0': bad PCI bus" },
                        { 2, "Device=: '0000:04:00.8': PCI function 8 out of range" },
                        { 3, "unknown key 'Devices' in [Manage]" },
                        { 4, "not a Key=value line" },
                        { 5, "unknown section [Bogus]" },
                        { 8, "'abc' is not a number of seconds" },
                        { 9, "'-1' is not a number of seconds" },
                        { 10, "0 is out of range" },
                        { 11, "'1e3' is not a number of seconds" },
                        { 12, "7200 is out of range" },
                        { 14, "'bad/name' is not a driver name" },
                        { 15, "section header without a closing ']'" },
                },
        },
        {
                .name = "missing file",
                .text = NULL,
                .timeout_usec = 5 * SEC,
        },
        {
                .name = "empty file",
                .text = "",
                .timeout_usec = 5 * SEC,
        },
        {
                .name = "repeated keys append, the last single value wins",
                .text = "[Manage]\n"
                        "Device=0000:04:00.0\n"
                        "Device=0000:04:00.1 0000:04:00.0\n"
                        "Device=04:00.0\n"
                        "[Reset]\n"
                        "QuiesceTimeoutSec=3\n"
                        "QuiesceTimeoutSec=4\n"
                        "[Topology]\n"
                        "VfioDriver=a\n"
                        "VfioDriver=b a\n"
                        "[Manage]\n"
                        "Device=0000:05:00.0\n",
                .managed = { "0000:04:00.0", "0000:04:00.1", "0000:05:00.0" },
                .drivers = { "a", "b" },
                .timeout_usec = 4 * SEC,
        },
        {
                .name = "an empty value resets",
                .text = "[Manage]\n"
                        "Device=0000:04:00.0\n"
                        "Device=\n"
                        "Device=0000:07:00.0\n"
                        "[Reset]\n"
                        "QuiesceTimeoutSec=3\n"
                        "QuiesceTimeoutSec=\n"
                        "[Topology]\n"
                        "VfioDriver=x\n"
                        "VfioDriver=\n",
                .managed = { "0000:07:00.0" },
                .timeout_usec = 5 * SEC,
        },
        {
                .name = "byte order mark and CRLF",
                .text = "\xEF\xBB\xBF[Manage]\r\nDevice=0000:04:00.0\r\n[Reset]\r\nQuiesceTimeoutSec=.5\r\n",
                .managed = { "0000:04:00.0" },
                .timeout_usec = 500000,
        },
        {
                .name = "keys outside a section, long lines, no '=', a value continued",
                .text = "Device=0000:04:00.0\n"
                        "[Manage]\n"
                        "Device=0000:04:00.0 0000:04:00.1 0000:04:00.2 0000:04:00.3 0000:04:00.4 0000:04:00.5 "
                        "0000:04:00.6 0000:04:00.7 0000:05:00.0 0000:05:00.1 0000:05:00.2 0000:05:00.3 "
                        "0000:05:00.4 0000:05:00.5 0000:05:00.6\n"
                        "Device=0000:08:00.0\n"
                        "0000:09:00.0\n"
                        "Device: 0000:0a:00.0\n"
                        "Device=0000:0b:00.0\n"
                        "       0000:0c:00.0\n",
                .managed = { "0000:08:00.0", "0000:0b:00.0", "0000:0c:00.0" },
                .timeout_usec = 5 * SEC,
                .warnings = {
                        { 1, "'Device' comes before any [Section]" },
                        { 3, "line too long (201 characters, at most 199)" },
                        { 5, "not a Key=value line" },
                        { 6, "not a Key=value line" },
                },
        },
};

/* Loads text from a file of our own, with stderr captured into *ret_log. */
static int load(const char *text, char *path, struct vrd_config *c, char **ret_log) {
        FILE *log = tmpfile();
        int saved = dup(STDERR_FILENO), r;
        long size;

        ck_assert_ptr_nonnull(log);
        strcpy(path, "/tmp/vrd-config.XXXXXX");
        if (text) {
                int fd = mkstemp(path);

                ck_assert_int_ge(fd, 0);
                ck_assert_int_eq(write(fd, text, strlen(text)), (ssize_t) strlen(text));
                close(fd);
        } else
                strcpy(path, "/tmp/vrd-config.does-not-exist/vfio-resetd.conf");

        fflush(stderr);
        ck_assert_int_ge(dup2(fileno(log), STDERR_FILENO), 0);
        r = config_load(path, c);
        fflush(stderr);
        dup2(saved, STDERR_FILENO);
        close(saved);

        size = ftell(log);
        ck_assert_int_ge(size, 0);
        *ret_log = calloc(1, (size_t) size + 1);
        rewind(log);
        ck_assert_int_eq(fread(*ret_log, 1, (size_t) size, log), (size_t) size);
        fclose(log);
        if (text)
                unlink(path);
        return r;
}

static void assert_strv(char **got, const char *const *want, size_t n_want, const char *what, const char *name) {
        size_t n = 0;

        while (n < n_want && want[n])
                n++;
        ck_assert_msg(got, "%s: %s is NULL", name, what);
        ck_assert_msg(strv_length(got) == n, "%s: %zu %s, want %zu", name, strv_length(got), what, n);
        for (size_t i = 0; i < n; i++)
                ck_assert_msg(strcmp(got[i], want[i]) == 0, "%s: %s[%zu] is %s, want %s", name, what, i, got[i], want[i]);
}

static size_t count_lines_with(const char *log, const char *prefix) {
        size_t n = 0;

        for (const char *l = log; l && *l; l = strchr(l, '\n') ? strchr(l, '\n') + 1 : NULL)
                n += strncmp(l, prefix, strlen(prefix)) == 0;
        return n;
}

/* A line "path:N: ..." of the log that holds needle. */
static bool has_warning(const char *log, const char *path, unsigned line, const char *needle) {
        char prefix[256];

        snprintf(prefix, sizeof(prefix), "%s:%u: ", path, line);
        for (const char *l = log; l && *l; l = strchr(l, '\n') ? strchr(l, '\n') + 1 : NULL) {
                const char *end = strchr(l, '\n') ?: l + strlen(l);

                if (strncmp(l, prefix, strlen(prefix)) == 0 && memmem(l, (size_t) (end - l), needle, strlen(needle)))
                        return true;
        }
        return false;
}

START_TEST(test_table) {
        const struct config_case *t = &cases[_i];
        struct vrd_config c = {};
        char path[128], prefix[160], *log = NULL;
        size_t n_warnings = 0;

        ck_assert_int_eq(load(t->text, path, &c, &log), 0);
        assert_strv(c.managed, t->managed, ELEMENTSOF(t->managed), "managed devices", t->name);
        assert_strv(c.vfio_drivers, t->drivers, ELEMENTSOF(t->drivers), "vfio drivers", t->name);
        ck_assert_msg(c.quiesce_timeout_usec == t->timeout_usec, "%s: quiesce timeout %llu, want %llu", t->name,
                      (unsigned long long) c.quiesce_timeout_usec, (unsigned long long) t->timeout_usec);
        if (t->libvirt_off)
                ck_assert_msg(!c.libvirt_uri, "%s: libvirt URI %s, want none", t->name, c.libvirt_uri);
        else
                ck_assert_msg(streq_ptr(c.libvirt_uri, t->libvirt_uri ?: CONFIG_LIBVIRT_URI_DEFAULT),
                              "%s: libvirt URI %s, want %s", t->name, c.libvirt_uri ?: "none",
                              t->libvirt_uri ?: CONFIG_LIBVIRT_URI_DEFAULT);

        for (const struct warning *w = t->warnings; w->needle; w++, n_warnings++)
                ck_assert_msg(has_warning(log, path, w->line, w->needle), "%s: no warning '%s:%u: ...%s...' in:\n%s",
                              t->name, path, w->line, w->needle, log);
        snprintf(prefix, sizeof(prefix), "%s:", path);
        ck_assert_msg(count_lines_with(log, prefix) == n_warnings, "%s: %zu warnings, want %zu:\n%s", t->name,
                      count_lines_with(log, prefix), n_warnings, log);
        ck_assert_msg(strlen(log) == 0 || n_warnings > 0, "%s: unexpected output:\n%s", t->name, log);
        config_done(&c);
        ck_assert_ptr_null(c.managed);
        ck_assert_ptr_null(c.libvirt_uri);
        free(log);
}
END_TEST

START_TEST(test_manages) {
        struct vrd_config c = {};
        struct pci_address a;
        char path[128], *log = NULL;

        ck_assert_int_eq(load("[Manage]\nDevice=04:00.1\n", path, &c, &log), 0);
        ck_assert_int_eq(pci_address_parse("0000:04:00.1", &a, NULL, 0), 0);
        ck_assert(config_manages(&c, &a));
        a.function = 0;
        ck_assert(!config_manages(&c, &a));
        a = (struct pci_address) { .domain = 1, .bus = 4, .slot = 0, .function = 1 };
        ck_assert(!config_manages(&c, &a));
        config_done(&c);
        free(log);
}
END_TEST

START_TEST(test_unreadable) {
        struct vrd_config c = { .quiesce_timeout_usec = 42 };
        int saved = dup(STDERR_FILENO), null = open("/dev/null", O_WRONLY);

        /* a directory opens, but does not read */
        dup2(null, STDERR_FILENO);
        ck_assert_int_eq(config_load("/tmp", &c), -EISDIR);
        dup2(saved, STDERR_FILENO);
        ck_assert_ptr_null(c.managed);
        ck_assert_int_eq(c.quiesce_timeout_usec, 42);
        close(null);
        close(saved);
}
END_TEST

/* The shipped example loads silently, with each commented key switched on too. */
START_TEST(test_example) {
        static const char *keys[] = { "Device=", "QuiesceTimeoutSec=", "VfioDriver=", "URI=", "Model=" };
        const char *dir = getenv("TESTS_DIR");
        char file[512], path[128], *text, *on, *log = NULL;
        struct vrd_config c = {};
        FILE *f;
        long size;

        ck_assert_msg(dir, "TESTS_DIR is not set: run the tests with make check");
        snprintf(file, sizeof(file), "%s/../systemd/vfio-resetd.conf.example", dir);
        f = fopen(file, "re");
        ck_assert_msg(f, "cannot open %s", file);
        fseek(f, 0, SEEK_END);
        size = ftell(f);
        rewind(f);
        text = calloc(1, (size_t) size + 1);
        ck_assert_int_eq(fread(text, 1, (size_t) size, f), (size_t) size);
        fclose(f);

        ck_assert_int_eq(load(text, path, &c, &log), 0);
        ck_assert_msg(!*log, "the example as shipped warns:\n%s", log);
        ck_assert_int_eq(strv_length(c.managed), 0);
        ck_assert_str_eq(c.libvirt_uri, CONFIG_LIBVIRT_URI_DEFAULT);
        config_done(&c);
        free(log);

        on = strdup(text);
        for (size_t i = 0; i < ELEMENTSOF(keys); i++) {
                char needle[64];

                snprintf(needle, sizeof(needle), "\n#%s", keys[i]);
                ck_assert_msg(strstr(on, needle), "the example has no commented-out %s", keys[i]);
                for (char *p = on; (p = strstr(p, needle)); p++)
                        memmove(p + 1, p + 2, strlen(p + 2) + 1);
        }
        ck_assert_int_eq(load(on, path, &c, &log), 0);
        ck_assert_msg(!*log, "the example's keys, switched on, warn:\n%s", log);
        ck_assert_int_ge(strv_length(c.managed), 2);
        ck_assert_int_ge(strv_length(c.vfio_drivers), 1);
        ck_assert_ptr_nonnull(c.libvirt_uri);
        config_done(&c);
        free(log);
        free(on);
        free(text);
}
END_TEST

/* [Ownership] Model= for every set, [DevSet ID] Model= for one; the last line counts. */
START_TEST(test_models) {
        struct vrd_config c = {};
        char path[128], *log = NULL;

        ck_assert_int_eq(load("", path, &c, &log), 0);
        ck_assert_int_eq(config_model_for(&c, "bus_0000_04"), CONFIG_MODEL_AUTO);
        config_done(&c);
        free(log);

        ck_assert_int_eq(load("[Ownership]\nModel=cdev\n"
                              "[DevSet bus_0000_04]\nModel=cdev\nModel=legacy\n"
                              "[DevSet slot_0000_03_3]\nModel=auto\n"
                              "[DevSet dev_0000_00_02_0]\nModel=sometimes\nTimeout=3\n"
                              "[DevSet bus 04]\nModel=legacy\n"
                              "[Ownership]\nModel=weird\n",
                              path, &c, &log), 0);
        ck_assert_int_eq(config_model_for(&c, "bus_0000_04"), CONFIG_MODEL_LEGACY);
        ck_assert_int_eq(config_model_for(&c, "slot_0000_03_3"), CONFIG_MODEL_AUTO);
        ck_assert_int_eq(config_model_for(&c, "dev_0000_00_02_0"), CONFIG_MODEL_CDEV);        /* its line was bad */
        ck_assert_int_eq(config_model_for(&c, "bus_0000_05"), CONFIG_MODEL_CDEV);
        ck_assert_int_eq(config_model_for(&c, NULL), CONFIG_MODEL_CDEV);
        ck_assert_msg(has_warning(log, path, 9, "Model=: 'sometimes' is not auto, legacy or cdev"), "%s", log);
        ck_assert_msg(has_warning(log, path, 10, "unknown key 'Timeout' in [DevSet dev_0000_00_02_0]"), "%s", log);
        ck_assert_msg(has_warning(log, path, 11, "unknown section [DevSet bus 04]"), "%s", log);
        ck_assert_msg(has_warning(log, path, 14, "Model=: 'weird'"), "%s", log);
        config_done(&c);
        ck_assert_ptr_null(c.set_models);
        free(log);
}
END_TEST

int main(void) {
        Suite *s = suite_create("config");
        TCase *tc = tcase_create("load");

        tcase_add_loop_test(tc, test_table, 0, ELEMENTSOF(cases));
        tcase_add_test(tc, test_manages);
        tcase_add_test(tc, test_unreadable);
        tcase_add_test(tc, test_example);
        tcase_add_test(tc, test_models);
        suite_add_tcase(s, tc);
        return check_run(s);
}
