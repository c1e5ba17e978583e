/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* polkit_verify() in a small service of our own on a private bus, asked by
 * callers of several uids, with python3-dbusmock standing in for polkitd. */
#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <systemd/sd-bus.h>
#include <systemd/sd-event.h>

#include "bus-harness.h"
#include "check-run.h"
#include "polkit.h"

#define SERVICE_NAME  "org.vfioresetd1.PolkitTest"
#define SERVICE_PATH  "/org/vfioresetd1/test"
#define VANISH_PATH   "/org/vfioresetd1/test/vanish"
#define SERVICE_IFACE "org.vfioresetd1.PolkitTest"


#define NOBODY 65534
#define N_CONCURRENT 64

static struct harness h;
static sd_event *event;
static sd_bus *service;
static struct polkit_registry *registry;

/* What the method handlers saw. */
struct object {
        unsigned magic;
        sd_bus_slot *slot;
        unsigned calls;
        sd_bus_message *last_msg;
        void *last_userdata;
};
#define OBJECT_MAGIC 0x600dcafe
static struct object main_object;
static struct object *vanishing;

static uint64_t now_ms(void) {
        struct timespec ts;

        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (uint64_t) ts.tv_sec * 1000 + (uint64_t) ts.tv_nsec / 1000000;
}

/* --- the service ----------------------------------------------------------- */

static void seen(struct object *o, sd_bus_message *m, void *userdata) {
        ck_assert_uint_eq(o->magic, OBJECT_MAGIC);     /* a freed object would not say so */
        o->calls++;
        o->last_msg = m;
        o->last_userdata = userdata;
}

/* Do(s action) -> (s "ok") when the caller may do action. */
static int method_do(sd_bus_message *m, void *userdata, sd_bus_error *error) {
        const char *action;
        int r;

        seen(userdata, m, userdata);
        r = sd_bus_message_read(m, "s", &action);
        if (r < 0)
                return r;
        r = polkit_verify(&registry, m, action, method_do, userdata, error);
        if (r <= 0)
                return r < 0 ? r : 1;
        return sd_bus_reply_method_return(m, "s", "ok");
}

/* DoTwo(s first, s second): both are needed, asked one after the other. */
static int method_do_two(sd_bus_message *m, void *userdata, sd_bus_error *error) {
        const char *first, *second;
        int r;

        seen(userdata, m, userdata);
        r = sd_bus_message_read(m, "ss", &first, &second);
        if (r < 0)
                return r;
        r = polkit_verify(&registry, m, first, method_do_two, userdata, error);
        if (r <= 0)
                return r < 0 ? r : 1;
        r = polkit_verify(&registry, m, second, method_do_two, userdata, error);
        if (r <= 0)
                return r < 0 ? r : 1;
        return sd_bus_reply_method_return(m, "s", "ok");
}

static const sd_bus_vtable service_vtable[] = {
        SD_BUS_VTABLE_START(0),
        SD_BUS_METHOD("Do", "s", "s", method_do, SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_METHOD("DoTwo", "ss", "s", method_do_two, SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_VTABLE_END,
};

static void service_start(void) {
        ck_assert_int_ge(sd_event_new(&event), 0);
        ck_assert_int_ge(sd_bus_open_system(&service), 0);
        ck_assert_int_ge(sd_bus_attach_event(service, event, SD_EVENT_PRIORITY_NORMAL), 0);
        main_object = (struct object) { .magic = OBJECT_MAGIC };
        ck_assert_int_ge(sd_bus_add_object_vtable(service, &main_object.slot, SERVICE_PATH, SERVICE_IFACE,
                                                  service_vtable, &main_object), 0);
        vanishing = calloc(1, sizeof(*vanishing));
        vanishing->magic = OBJECT_MAGIC;
        ck_assert_int_ge(sd_bus_add_object_vtable(service, &vanishing->slot, VANISH_PATH, SERVICE_IFACE,
                                                  service_vtable, vanishing), 0);
        ck_assert_int_ge(sd_bus_request_name(service, SERVICE_NAME, 0), 0);
}

/* The object goes away, as a device does on unplug; its memory is poisoned. */
static void vanish(void) {
        sd_bus_slot_unref(vanishing->slot);
        memset(vanishing, 0xaa, sizeof(*vanishing));
        free(vanishing);
        vanishing = NULL;
}

/* --- polkit, mocked ---------------------------------------------------------- */

static void mock_call(const char *method, const char *types, ...) {
        sd_bus_error e = SD_BUS_ERROR_NULL;
        va_list ap;
        int r;

        va_start(ap, types);
        r = sd_bus_call_methodv(h.bus, POLKIT_NAME, POLKIT_PATH, POLKIT_MOCK_IFACE, method, &e, NULL, types, ap);
        va_end(ap);
        ck_assert_msg(r >= 0, "Mock.%s: %s", method, e.message);
        sd_bus_error_free(&e);
}

struct polkit_call {
        char kind[32], name[64], action[64];
        uint32_t flags;
};

/* The CheckAuthorization calls the mock has seen, as far as we care. */
static size_t polkit_calls(struct polkit_call *ret, size_t max) {
        sd_bus_error e = SD_BUS_ERROR_NULL;
        sd_bus_message *reply = NULL;
        size_t n = 0;

        ck_assert_msg(sd_bus_call_method(h.bus, POLKIT_NAME, POLKIT_PATH, POLKIT_MOCK_IFACE, "GetMethodCalls", &e, &reply,
                                         "s", "CheckAuthorization") >= 0, "GetMethodCalls: %s", e.message);
        ck_assert_int_ge(sd_bus_message_enter_container(reply, 'a', "(tav)"), 0);
        while (sd_bus_message_enter_container(reply, 'r', "tav") > 0) {
                struct polkit_call c = {};
                const char *kind, *key, *s;
                uint64_t t;

                ck_assert_int_ge(sd_bus_message_read(reply, "t", &t), 0);
                ck_assert_int_ge(sd_bus_message_enter_container(reply, 'a', "v"), 0);
                ck_assert_int_ge(sd_bus_message_enter_container(reply, 'v', "(sa{sv})"), 0);
                ck_assert_int_ge(sd_bus_message_enter_container(reply, 'r', "sa{sv}"), 0);
                ck_assert_int_ge(sd_bus_message_read(reply, "s", &kind), 0);
                snprintf(c.kind, sizeof(c.kind), "%s", kind);
                ck_assert_int_ge(sd_bus_message_enter_container(reply, 'a', "{sv}"), 0);
                while (sd_bus_message_enter_container(reply, 'e', "sv") > 0) {
                        ck_assert_int_ge(sd_bus_message_read(reply, "s", &key), 0);
                        if (strcmp(key, "name") == 0) {
                                ck_assert_int_ge(sd_bus_message_read(reply, "v", "s", &s), 0);
                                snprintf(c.name, sizeof(c.name), "%s", s);
                        } else
                                ck_assert_int_ge(sd_bus_message_skip(reply, "v"), 0);
                        ck_assert_int_ge(sd_bus_message_exit_container(reply), 0);
                }
                ck_assert_int_ge(sd_bus_message_exit_container(reply), 0);     /* a{sv} */
                ck_assert_int_ge(sd_bus_message_exit_container(reply), 0);     /* (sa{sv}) */
                ck_assert_int_ge(sd_bus_message_exit_container(reply), 0);     /* v */
                ck_assert_int_ge(sd_bus_message_read(reply, "v", "s", &s), 0);
                snprintf(c.action, sizeof(c.action), "%s", s);
                ck_assert_int_ge(sd_bus_message_skip(reply, "v"), 0);          /* details */
                ck_assert_int_ge(sd_bus_message_read(reply, "v", "u", &c.flags), 0);
                ck_assert_int_ge(sd_bus_message_skip(reply, "v"), 0);          /* cancellation id */
                ck_assert_int_ge(sd_bus_message_exit_container(reply), 0);     /* av */
                ck_assert_int_ge(sd_bus_message_exit_container(reply), 0);     /* (tav) */
                if (n < max)
                        ret[n] = c;
                n++;
        }
        sd_bus_message_unref(reply);
        return n;
}

/* --- callers, each a process of its own uid -------------------------------------- */

enum call_mode {
        CALL_WAIT,              /* call and report the answer */
        CALL_INTERACTIVE,       /* the same, allowing interactive authorization */
        CALL_AND_LEAVE,         /* send, report, and exit when told to without waiting */
        CALL_MANY,              /* N_CONCURRENT calls at once, alternating take and reset */
};

struct outcome {
        char unique_name[64];
        char error_name[128];
        char error_message[512];
        char reply[64];
        unsigned many_right;    /* CALL_MANY: answers that fit their action */
        char fail[256];         /* the caller could not even try */
};

struct caller {
        pid_t pid;
        int result_fd;          /* struct outcome */
        int go_fd;              /* CALL_AND_LEAVE: closing it lets the caller exit */
        struct outcome outcome;
};

struct many_state {
        unsigned answered, right;
};

struct many_call {
        struct many_state *state;
        bool take;              /* allowed; reset is not */
};

static int on_many_reply(sd_bus_message *reply, void *userdata, sd_bus_error *ret_error) {
        struct many_call *c = userdata;
        const sd_bus_error *e = sd_bus_message_get_error(reply);
        const char *ok = NULL;

        c->state->answered++;
        if (c->take)
                c->state->right += !e && sd_bus_message_read(reply, "s", &ok) >= 0 && strcmp(ok, "ok") == 0;
        else
                c->state->right += e && sd_bus_error_has_name(e, SD_BUS_ERROR_ACCESS_DENIED) &&
                                   strstr(e->message, VRD_ACTION_RESET);
        return 0;
}

static void caller_main(uid_t uid, enum call_mode mode, const char *method, const char *a1, const char *a2,
                        int result_fd, int go_fd) {
        struct outcome o = {};
        sd_bus_error e = SD_BUS_ERROR_NULL;
        sd_bus_message *call = NULL, *reply = NULL;
        const char *unique = NULL, *ok = NULL;
        sd_bus *bus = NULL;
        int r;

        if (uid != 0 && (setgroups(0, NULL) < 0 || setresgid(uid, uid, uid) < 0 || setresuid(uid, uid, uid) < 0)) {
                snprintf(o.fail, sizeof(o.fail), "cannot become uid %u: %m", (unsigned) uid);
                goto out;
        }
        r = sd_bus_open_system(&bus);
        if (r < 0 || sd_bus_get_unique_name(bus, &unique) < 0) {
                snprintf(o.fail, sizeof(o.fail), "uid %u cannot connect to the bus: %s", (unsigned) uid, strerror(-r));
                goto out;
        }
        snprintf(o.unique_name, sizeof(o.unique_name), "%s", unique);

        if (mode == CALL_MANY) {
                struct many_state s = {};
                struct many_call calls[N_CONCURRENT];
                uint64_t end = now_ms() + 60000;

                for (unsigned i = 0; i < N_CONCURRENT; i++) {
                        calls[i] = (struct many_call) { &s, i % 2 == 0 };
                        r = sd_bus_call_method_async(bus, NULL, SERVICE_NAME, SERVICE_PATH, SERVICE_IFACE, "Do",
                                                     on_many_reply, &calls[i], "s",
                                                     calls[i].take ? VRD_ACTION_TAKE : VRD_ACTION_RESET);
                        if (r < 0) {
                                snprintf(o.fail, sizeof(o.fail), "call %u: %s", i, strerror(-r));
                                goto out;
                        }
                }
                while (s.answered < N_CONCURRENT && now_ms() < end)
                        if (sd_bus_process(bus, NULL) == 0)
                                (void) sd_bus_wait(bus, 100000);
                o.many_right = s.right;
                if (s.answered < N_CONCURRENT)
                        snprintf(o.fail, sizeof(o.fail), "%u of %u calls answered", s.answered, N_CONCURRENT);
                goto out;
        }

        r = sd_bus_message_new_method_call(bus, &call, SERVICE_NAME, strcmp(method, "Vanish") == 0 ? VANISH_PATH :
                                           SERVICE_PATH, SERVICE_IFACE, strcmp(method, "Vanish") == 0 ? "Do" : method);
        if (r >= 0)
                r = a2 ? sd_bus_message_append(call, "ss", a1, a2) : sd_bus_message_append(call, "s", a1);
        if (r >= 0 && mode == CALL_INTERACTIVE)
                r = sd_bus_message_set_allow_interactive_authorization(call, true);
        if (r < 0) {
                snprintf(o.fail, sizeof(o.fail), "cannot build the call: %s", strerror(-r));
                goto out;
        }
        if (mode == CALL_AND_LEAVE) {
                char byte;

                r = sd_bus_send(bus, call, NULL);
                if (r >= 0)
                        r = sd_bus_flush(bus);
                if (r < 0)
                        snprintf(o.fail, sizeof(o.fail), "cannot send: %s", strerror(-r));
                (void) write(result_fd, &o, sizeof(o));
                (void) read(go_fd, &byte, 1);
                _exit(0);
        }
        r = sd_bus_call(bus, call, 60 * 1000000, &e, &reply);
        if (r < 0) {
                snprintf(o.error_name, sizeof(o.error_name), "%s", e.name ?: "(none)");
                snprintf(o.error_message, sizeof(o.error_message), "%s", e.message ?: strerror(-r));
        } else if (sd_bus_message_read(reply, "s", &ok) >= 0)
                snprintf(o.reply, sizeof(o.reply), "%s", ok);
out:
        (void) write(result_fd, &o, sizeof(o));
        _exit(0);
}

static struct caller *caller_spawn(uid_t uid, enum call_mode mode, const char *method, const char *a1,
                                   const char *a2) {
        struct caller *c = calloc(1, sizeof(*c));
        int result[2], go[2];

        ck_assert_int_ge(pipe2(result, O_CLOEXEC), 0);
        ck_assert_int_ge(pipe2(go, O_CLOEXEC), 0);
        c->pid = fork();
        ck_assert_int_ge(c->pid, 0);
        if (c->pid == 0) {
                close(result[0]);
                close(go[1]);
                caller_main(uid, mode, method, a1, a2, result[1], go[0]);
        }
        close(result[1]);
        close(go[0]);
        c->result_fd = result[0];
        c->go_fd = go[1];
        return c;
}

/* Serves the bus until cond holds; false on timeout. */
static bool serve_until(bool (*cond)(void *data), void *data, unsigned timeout_ms) {
        for (uint64_t end = now_ms() + timeout_ms; !cond(data); ) {
                if (now_ms() >= end)
                        return false;
                ck_assert_int_ge(sd_event_run(event, 10000), 0);
        }
        return true;
}

static bool caller_exited(void *data) {
        struct caller *c = data;
        int status;

        if (waitpid(c->pid, &status, WNOHANG) != c->pid)
                return false;
        ck_assert_msg(WIFEXITED(status), "caller %d died of signal %d", (int) c->pid, WTERMSIG(status));
        c->pid = 0;
        return true;
}

static bool has_result(void *data) {
        struct caller *c = data;

        return poll(&(struct pollfd) { .fd = c->result_fd, .events = POLLIN }, 1, 0) > 0;
}

static void caller_read(struct caller *c) {
        ck_assert_int_eq(read(c->result_fd, &c->outcome, sizeof(c->outcome)), (ssize_t) sizeof(c->outcome));
        ck_assert_msg(!c->outcome.fail[0], "caller: %s", c->outcome.fail);
}

static void caller_free(struct caller *c) {
        if (c->pid > 0) {
                kill(c->pid, SIGKILL);
                waitpid(c->pid, NULL, 0);
        }
        close(c->result_fd);
        close(c->go_fd);
        free(c);
}

/* One call, served to its end. */
static struct outcome call_as(uid_t uid, enum call_mode mode, const char *method, const char *a1, const char *a2) {
        struct caller *c = caller_spawn(uid, mode, method, a1, a2);
        struct outcome o;

        ck_assert_msg(serve_until(caller_exited, c, 60000), "%s(%s) as uid %u got no answer", method, a1,
                      (unsigned) uid);
        caller_read(c);
        o = c->outcome;
        caller_free(c);
        return o;
}

static bool registry_empty(void *data) {
        return polkit_registry_size(registry) == 0;
}

static size_t want_calls;
static bool mock_has_calls(void *data) {
        return polkit_calls(NULL, 0) >= want_calls;
}

static void assert_denied(const struct outcome *o, const char *action, uid_t uid, const char *needle) {
        char uid_text[32];

        snprintf(uid_text, sizeof(uid_text), "(uid %u)", (unsigned) uid);
        ck_assert_msg(strcmp(o->error_name, SD_BUS_ERROR_ACCESS_DENIED) == 0, "%s: not denied: error '%s', reply '%s'",
                      action, o->error_name, o->reply);
        ck_assert_msg(strstr(o->error_message, action), "'%s' does not name %s", o->error_message, action);
        ck_assert_msg(strstr(o->error_message, o->unique_name), "'%s' does not name the caller %s",
                      o->error_message, o->unique_name);
        ck_assert_msg(strstr(o->error_message, uid_text), "'%s' does not name %s", o->error_message, uid_text);
        if (needle)
                ck_assert_msg(strstr(o->error_message, needle), "'%s' lacks '%s'", o->error_message, needle);
}

static void assert_ok(const struct outcome *o, const char *what) {
        ck_assert_msg(strcmp(o->reply, "ok") == 0, "%s: %s: %s", what, o->error_name, o->error_message);
}

/* --- tests ------------------------------------------------------------------------ */

static void setup(void) {
        harness_start_bus(&h);
        ck_assert_int_ge(chmod(h.dir, 0755), 0);       /* nobody reaches the socket */
        service_start();
}

static void setup_with_polkit(void) {
        setup();
        harness_start_polkit(&h);
}

static void teardown(void) {
        registry = polkit_registry_free(registry);
        main_object.slot = sd_bus_slot_unref(main_object.slot);
        if (vanishing)
                vanish();
        service = sd_bus_flush_close_unref(service);
        event = sd_event_unref(event);
        harness_stop(&h);
}

/* Root is let through without a word to polkit, which would say no. */
START_TEST(test_root_needs_no_polkit) {
        struct outcome o;

        o = call_as(0, CALL_WAIT, "Do", VRD_ACTION_RESET, NULL);
        assert_ok(&o, "root");
        o = call_as(0, CALL_WAIT, "DoTwo", VRD_ACTION_RESET, VRD_ACTION_BORROW);
        assert_ok(&o, "root, two actions");
        ck_assert_uint_eq(polkit_calls(NULL, 0), 0);
        ck_assert_uint_eq(main_object.calls, 2);        /* each handled once, right away */
        ck_assert_uint_eq(polkit_registry_size(registry), 0);
}
END_TEST

START_TEST(test_other_uid_denied_by_default) {
        struct polkit_call calls[4];
        struct outcome o;

        o = call_as(NOBODY, CALL_WAIT, "Do", VRD_ACTION_RESET, NULL);
        assert_denied(&o, VRD_ACTION_RESET, NOBODY, NULL);

        ck_assert_uint_eq(polkit_calls(calls, 4), 1);
        ck_assert_str_eq(calls[0].kind, "system-bus-name");
        ck_assert_str_eq(calls[0].name, o.unique_name);
        ck_assert_str_eq(calls[0].action, VRD_ACTION_RESET);
        ck_assert_uint_eq(calls[0].flags, 0);
        ck_assert_uint_eq(main_object.calls, 2);        /* asked, then answered on the second dispatch */
        ck_assert_ptr_eq(main_object.last_userdata, &main_object);
        ck_assert(serve_until(registry_empty, NULL, 5000));
}
END_TEST

START_TEST(test_other_uid_allowed) {
        struct polkit_call calls[8];
        struct outcome o;

        mock_call("SetAllowed", "as", 2, VRD_ACTION_TAKE, VRD_ACTION_RESET);
        o = call_as(NOBODY, CALL_WAIT, "Do", VRD_ACTION_TAKE, NULL);
        assert_ok(&o, "allowed take");
        o = call_as(NOBODY, CALL_WAIT, "Do", VRD_ACTION_BORROW, NULL);
        assert_denied(&o, VRD_ACTION_BORROW, NOBODY, NULL);

        /* two actions in one call: the second is asked about after the first is granted */
        o = call_as(NOBODY, CALL_WAIT, "DoTwo", VRD_ACTION_RESET, VRD_ACTION_TAKE);
        assert_ok(&o, "reset and take");
        o = call_as(NOBODY, CALL_WAIT, "DoTwo", VRD_ACTION_RESET, VRD_ACTION_BORROW);
        assert_denied(&o, VRD_ACTION_BORROW, NOBODY, NULL);

        /* the caller's wish for interactive authorization reaches polkit */
        o = call_as(NOBODY, CALL_INTERACTIVE, "Do", VRD_ACTION_TAKE, NULL);
        assert_ok(&o, "interactive take");

        ck_assert_uint_eq(polkit_calls(calls, 8), 7);
        ck_assert_str_eq(calls[2].action, VRD_ACTION_RESET);
        ck_assert_str_eq(calls[3].action, VRD_ACTION_TAKE);
        ck_assert_str_eq(calls[3].name, calls[2].name);
        ck_assert_uint_eq(calls[5].flags, 0);
        ck_assert_uint_eq(calls[6].flags, 1);
        ck_assert(serve_until(registry_empty, NULL, 5000));
}
END_TEST

START_TEST(test_polkit_absent) {
        struct outcome o;

        o = call_as(NOBODY, CALL_WAIT, "Do", VRD_ACTION_TAKE, NULL);
        assert_denied(&o, VRD_ACTION_TAKE, NOBODY, "cannot ask polkit");
        ck_assert_msg(strstr(o.error_message, "org.freedesktop.PolicyKit1"), "'%s' does not say what is missing",
                      o.error_message);
        ck_assert(serve_until(registry_empty, NULL, 5000));
        /* root still may */
        o = call_as(0, CALL_WAIT, "Do", VRD_ACTION_TAKE, NULL);
        assert_ok(&o, "root without polkit");
}
END_TEST

/* The caller hangs up while polkit thinks; the answer then goes nowhere. */
START_TEST(test_caller_leaves_mid_query) {
        struct caller *c;
        struct outcome o;

        mock_call("SetAllowed", "as", 1, VRD_ACTION_TAKE);
        mock_call("SimulateHang", "b", 1);
        c = caller_spawn(NOBODY, CALL_AND_LEAVE, "Do", VRD_ACTION_TAKE, NULL);
        ck_assert(serve_until(has_result, c, 30000));
        caller_read(c);
        want_calls = 1;
        ck_assert_msg(serve_until(mock_has_calls, NULL, 30000), "polkit was never asked");
        ck_assert_uint_eq(polkit_registry_size(registry), 1);
        close(c->go_fd), c->go_fd = -1;
        ck_assert(serve_until(caller_exited, c, 30000));
        caller_free(c);

        mock_call("SimulateHang", "b", 0);
        mock_call("ReleaseHangingCalls", "");
        ck_assert(serve_until(registry_empty, NULL, 10000));
        ck_assert_uint_eq(main_object.calls, 2);

        o = call_as(NOBODY, CALL_WAIT, "Do", VRD_ACTION_TAKE, NULL);
        assert_ok(&o, "the next caller");
}
END_TEST

/* The object the call was for goes away while polkit thinks: the answer must
 * not reach its freed memory (systemd's CVE-2020-1712). */
START_TEST(test_object_vanishes_mid_query) {
        struct caller *c;

        mock_call("SetAllowed", "as", 1, VRD_ACTION_TAKE);
        mock_call("SimulateHang", "b", 1);
        c = caller_spawn(NOBODY, CALL_WAIT, "Vanish", VRD_ACTION_TAKE, NULL);
        want_calls = 1;
        ck_assert_msg(serve_until(mock_has_calls, NULL, 30000), "polkit was never asked");
        ck_assert_uint_eq(vanishing->calls, 1);
        vanish();
        mock_call("ReleaseHangingCalls", "");
        ck_assert(serve_until(caller_exited, c, 30000));
        caller_read(c);
        ck_assert_msg(strcmp(c->outcome.error_name, SD_BUS_ERROR_UNKNOWN_OBJECT) == 0 ||
                      strcmp(c->outcome.error_name, SD_BUS_ERROR_UNKNOWN_METHOD) == 0,
                      "the call for a vanished object got '%s' '%s' '%s'", c->outcome.reply, c->outcome.error_name,
                      c->outcome.error_message);
        caller_free(c);
        ck_assert(serve_until(registry_empty, NULL, 5000));
}
END_TEST

/* Many queries in flight at once, each answer finds its own call. */
START_TEST(test_many_concurrent) {
        struct caller *c;

        mock_call("SetAllowed", "as", 1, VRD_ACTION_TAKE);
        mock_call("SimulateHang", "b", 1);
        c = caller_spawn(NOBODY, CALL_MANY, NULL, NULL, NULL);
        want_calls = N_CONCURRENT;
        ck_assert_msg(serve_until(mock_has_calls, NULL, 30000), "polkit saw %zu of %d queries",
                      polkit_calls(NULL, 0), N_CONCURRENT);
        ck_assert_uint_eq(polkit_registry_size(registry), N_CONCURRENT);
        mock_call("SimulateHang", "b", 0);
        mock_call("ReleaseHangingCalls", "");
        ck_assert(serve_until(caller_exited, c, 60000));
        caller_read(c);
        ck_assert_uint_eq(c->outcome.many_right, N_CONCURRENT);
        ck_assert_uint_eq(main_object.calls, 2 * N_CONCURRENT);
        caller_free(c);
        ck_assert(serve_until(registry_empty, NULL, 5000));
}
END_TEST

int main(void) {
        Suite *s = suite_create("polkit");
        TCase *with = tcase_create("with polkit"), *without = tcase_create("without polkit");

        if (geteuid() != 0) {
                fprintf(stderr, "test-polkit calls as other uids: it needs root\n");
                return 77;
        }
        tcase_add_checked_fixture(with, setup_with_polkit, teardown);
        tcase_set_timeout(with, 120);
        tcase_add_test(with, test_root_needs_no_polkit);
        tcase_add_test(with, test_other_uid_denied_by_default);
        tcase_add_test(with, test_other_uid_allowed);
        tcase_add_test(with, test_caller_leaves_mid_query);
        tcase_add_test(with, test_object_vanishes_mid_query);
        tcase_add_test(with, test_many_concurrent);
        suite_add_tcase(s, with);

        tcase_add_checked_fixture(without, setup, teardown);
        tcase_set_timeout(without, 60);
        tcase_add_test(without, test_polkit_absent);
        suite_add_tcase(s, without);

        return check_run(s);
}
