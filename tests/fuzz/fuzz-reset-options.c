/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* reset_options_parse() on a sealed sd-bus message whose body the input
 * describes. The bus delivers only well-formed messages (dbus-daemon checks
 * them against their signature, D-Bus specification "Valid Signatures"), so
 * the input does not become raw bytes on the wire: it chooses the body's
 * signature and the dictionary's entries, keys and variants of any type,
 * which is everything a client can send. The parser must then either fill
 * every option within its bounds or refuse with an error. */
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "arbiter-dbus.h"
#include "fuzz.h"

#define DEFAULT_TIMEOUT_USEC 5000000

static uint64_t take_u64(struct fuzz_input *in) {
        uint64_t v = 0;

        for (int i = 0; i < 8; i++)
                v = v << 8 | fuzz_take(in);
        return v;
}

/* A NUL-free string of up to 32 bytes; sd-bus refuses what is not UTF-8, and so does the bus. */
static void take_string(struct fuzz_input *in, char *buf) {
        size_t n = fuzz_take(in) % 33, k = 0;

        while (n-- && in->left) {
                uint8_t c = fuzz_take(in);

                buf[k++] = c ? (char) (c & 0x7f ? c & 0x7f : 'x') : '?';
        }
        buf[k] = '\0';
}

static const char *const keys[] = { "QuiesceTimeoutUSec", "Force", "Borrow", "Wait", "" };

static int append_variant(sd_bus_message *m, struct fuzz_input *in, unsigned depth) {
        char s[33];

        switch (fuzz_take(in) % 8) {
        case 0:
                return sd_bus_message_append(m, "v", "t", take_u64(in));
        case 1:
                return sd_bus_message_append(m, "v", "b", (int) (fuzz_take(in) & 1));
        case 2:
                return sd_bus_message_append(m, "v", "u", (uint32_t) take_u64(in));
        case 3:
                take_string(in, s);
                return sd_bus_message_append(m, "v", "s", s);
        case 4:
                take_string(in, s);
                return sd_bus_message_append(m, "v", "as", 2, s, "");
        case 5:
                return sd_bus_message_append(m, "v", "i", (int32_t) take_u64(in));
        case 6:
                return sd_bus_message_append(m, "v", "(tb)", take_u64(in), (int) (fuzz_take(in) & 1));
        default: {
                int r;

                if (depth > 4)
                        return sd_bus_message_append(m, "v", "y", fuzz_take(in));
                r = sd_bus_message_open_container(m, 'v', "v");
                if (r < 0)
                        return r;
                r = append_variant(m, in, depth + 1);
                if (r < 0)
                        return r;
                return sd_bus_message_close_container(m);
        }
        }
}

static int append_options(sd_bus_message *m, struct fuzz_input *in) {
        unsigned n = fuzz_take(in) % 9;
        char key[33];
        int r;

        r = sd_bus_message_open_container(m, 'a', "{sv}");
        if (r < 0)
                return r;
        while (n-- && in->left) {
                uint8_t k = fuzz_take(in) % 6;

                if (k < 5)
                        strcpy(key, keys[k]);
                else
                        take_string(in, key);
                r = sd_bus_message_open_container(m, 'e', "sv");
                if (r >= 0)
                        r = sd_bus_message_append(m, "s", key);
                if (r >= 0)
                        r = append_variant(m, in, 0);
                if (r >= 0)
                        r = sd_bus_message_close_container(m);
                if (r < 0)
                        return r;
        }
        return sd_bus_message_close_container(m);
}

/* Messages need a bus that has begun (sd_bus_message_new(3)); one end of a
 * socket pair is one, and nothing is ever sent on it. */
static sd_bus *bus(void) {
        static sd_bus *b;
        int sv[2];

        if (b)
                return b;
        if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0 || sd_bus_new(&b) < 0 ||
            sd_bus_set_fd(b, sv[0], sv[0]) < 0 || sd_bus_start(b) < 0)
                abort();
        return b;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        struct fuzz_input in = { data, size };
        sd_bus_message *m = NULL;
        sd_bus_error e = SD_BUS_ERROR_NULL;
        struct reset_options o = { .quiesce_timeout_usec = 42 };
        uint8_t shape = fuzz_take(&in) % 4;
        int r;

        if (sd_bus_message_new_method_call(bus(), &m, "org.vfioresetd1", "/org/vfioresetd1",
                                           "org.vfioresetd1.Manager", "ResetDevice") < 0)
                abort();
        /* ResetDevice's body is (s a{sv}); the parser starts at the a{sv} */
        if (shape == 0)
                r = append_options(m, &in);
        else if (shape == 1)
                r = sd_bus_message_append(m, "s", "not a dictionary");
        else if (shape == 2)
                r = 0;  /* no options at all */
        else {
                r = append_options(m, &in);
                if (r >= 0)
                        r = sd_bus_message_append(m, "u", 7);
        }
        if (r < 0)
                abort();        /* everything appended is valid D-Bus */
        if (sd_bus_message_seal(m, 1, 0) < 0 || sd_bus_message_rewind(m, true) < 0)
                abort();
        r = reset_options_parse(m, DEFAULT_TIMEOUT_USEC, &o, &e);
        if (r >= 0) {
                if (o.quiesce_timeout_usec == 0 || o.quiesce_timeout_usec > 3600ULL * 1000000 || sd_bus_error_is_set(&e))
                        abort();
        } else if (o.quiesce_timeout_usec != 42)
                abort();        /* a refusal leaves the options alone */
        sd_bus_error_free(&e);
        sd_bus_message_unref(m);
        return 0;
}
