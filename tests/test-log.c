/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* common/log.c: when stderr is the journal's stream, log_struct's fields go
 * to the journal (a fake here, in place of sd_journal_sendv) and every
 * format's arguments land in its own field; elsewhere, or when the journal
 * refuses, the message is a line on stderr. stderr is a file of the test's. */
#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "check-run.h"
#include "log.h"

static char sent[LOG_STRUCT_FIELDS_MAX + 2][LOG_STRUCT_SIZE];
static int n_sent = -1;         /* -1: nothing sent */
static int journal_answer;

static int fake_sendv(const struct iovec *iov, int n) {
        n_sent = n;
        for (int i = 0; i < n; i++)
                snprintf(sent[i], sizeof(sent[i]), "%.*s", (int) iov[i].iov_len, (const char *) iov[i].iov_base);
        return journal_answer;
}

static char err_path[64];

/* stderr into a file; with journal, JOURNAL_STREAM names that file. */
static void redirect_stderr(bool journal) {
        char stream[64];
        struct stat st;
        int fd;

        strcpy(err_path, "/tmp/test-log.XXXXXX");
        fd = mkstemp(err_path);
        ck_assert_int_ge(fd, 0);
        ck_assert_int_eq(dup2(fd, STDERR_FILENO), STDERR_FILENO);
        close(fd);
        ck_assert_int_eq(fstat(STDERR_FILENO, &st), 0);
        snprintf(stream, sizeof(stream), "%llu:%llu", (unsigned long long) st.st_dev, (unsigned long long) st.st_ino);
        if (journal)
                setenv("JOURNAL_STREAM", stream, 1);
        else
                unsetenv("JOURNAL_STREAM");
        setvbuf(stderr, NULL, _IONBF, 0);
        log_journal_sendv = fake_sendv;
        n_sent = -1;
        journal_answer = 0;
}

static char *stderr_text(void) {
        static char buf[LOG_STRUCT_SIZE * 2];
        FILE *f = fopen(err_path, "re");
        size_t n;

        ck_assert_ptr_nonnull(f);
        n = fread(buf, 1, sizeof(buf) - 1, f);
        buf[n] = '\0';
        fclose(f);
        unlink(err_path);
        return buf;
}

START_TEST(test_stream_detection) {
        redirect_stderr(true);
        ck_assert(log_stderr_is_journal());
        setenv("JOURNAL_STREAM", "1:2", 1);             /* another stream: stderr was redirected */
        ck_assert(!log_stderr_is_journal());
        setenv("JOURNAL_STREAM", "", 1);
        ck_assert(!log_stderr_is_journal());
        unsetenv("JOURNAL_STREAM");
        ck_assert(!log_stderr_is_journal());
        (void) stderr_text();
}
END_TEST

START_TEST(test_fields_to_the_journal) {
        redirect_stderr(true);
        errno = 0;
        ck_assert_int_eq(log_struct_errno(LOG_NOTICE, ENOENT, "A=%d %s", 7, "seven",
                                          "B=%.1f %c", 2.5, 'q',
                                          "C=%" PRIu64 " %zu %lld", UINT64_C(18446744073709551615), (size_t) 3,
                                          -4LL,
                                          "D=%p %m", NULL,
                                          "MESSAGE=all %s", "there", NULL), -ENOENT);
        ck_assert_int_eq(n_sent, 7);
        ck_assert_str_eq(sent[0], "A=7 seven");
        ck_assert_str_eq(sent[1], "B=2.5 q");
        ck_assert_str_eq(sent[2], "C=18446744073709551615 3 -4");
        ck_assert_str_eq(sent[3], "D=(nil) No such file or directory");
        ck_assert_str_eq(sent[4], "MESSAGE=all there");
        ck_assert_str_eq(sent[5], "PRIORITY=5");
        ck_assert_str_eq(sent[6], "SYSLOG_IDENTIFIER=test-log");
        ck_assert_str_eq(stderr_text(), "");            /* the journal has it */
}
END_TEST

START_TEST(test_journal_refuses) {
        redirect_stderr(true);
        journal_answer = -ENOENT;                       /* no journald socket */
        log_struct(LOG_WARNING, "X=1", "MESSAGE=said %d", 1, NULL);
        ck_assert_int_eq(n_sent, 4);
        ck_assert_str_eq(stderr_text(), "<4>said 1\n");
}
END_TEST

START_TEST(test_stderr_away_from_journald) {
        redirect_stderr(false);
        log_struct(LOG_INFO, "X=%s", "x", "MESSAGE=plain %s", "line", "Y=%d", 2, NULL);
        log_info("and %s", "another");
        log_struct(LOG_DEBUG, "MESSAGE=below the level", NULL);
        ck_assert_int_eq(n_sent, -1);
        ck_assert_str_eq(stderr_text(), "plain line\nand another\n");

        redirect_stderr(true);
        log_info("prefixed");
        ck_assert_str_eq(stderr_text(), "<6>prefixed\n");
}
END_TEST

/* Fields past LOG_STRUCT_SIZE are cut, never written past the buffer. */
START_TEST(test_long_fields_cut) {
        static char big[LOG_STRUCT_SIZE * 2];

        memset(big, 'x', sizeof(big) - 1);
        redirect_stderr(true);
        log_struct(LOG_INFO, "MESSAGE=%s", big, "AFTER=%d", 1, NULL);
        ck_assert_int_eq(n_sent, 3);
        ck_assert_uint_eq(strlen(sent[0]), LOG_STRUCT_SIZE - 1);
        ck_assert_str_eq(sent[1], "PRIORITY=6");
        (void) stderr_text();
}
END_TEST

int main(void) {
        Suite *s = suite_create("log");
        TCase *tc = tcase_create("log");

        tcase_add_test(tc, test_stream_detection);
        tcase_add_test(tc, test_fields_to_the_journal);
        tcase_add_test(tc, test_journal_refuses);
        tcase_add_test(tc, test_stderr_away_from_journald);
        tcase_add_test(tc, test_long_fields_cut);
        suite_add_tcase(s, tc);
        return check_run(s);
}
