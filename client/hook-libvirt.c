/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The libvirt hook, installed as /etc/libvirt/hooks/qemu.d/vfio-resetd.
 *
 * libvirtd runs every executable there as "hook NAME OPERATION SUBOPERATION
 * EXTRA" with the domain XML on stdin (libvirt's hooks documentation). When a
 * domain is released, the kernel resets its devices only if nothing else
 * holds their dev_set; a sibling in another guest keeps the set from being
 * reset, and the next user gets a dirty device. So on "release", for every
 * PCI hostdev that stays on vfio-pci (managed='no'), this asks vfio-resetd to
 * scrub the device's dev_set: a ResetDevice with Borrow, which briefly
 * suspends the other guests of the set.
 *
 * It never fails libvirt and never waits for a reset: it always exits 0,
 * reads stdin to the end, asks with Wait=false (answered once the daemon has
 * accepted the reset, which goes on after: the daemon may suspend other
 * domains through libvirtd, which is busy running this hook), and logs what
 * it did to the journal. [Hook] in
 * /etc/vfio-resetd/vfio-resetd.conf:
 *
 *   Scrub=yes           scrub on release at all
 *   SuspendOthers=yes   others of the set may be stopped for it (Borrow);
 *                       with no, a set someone else holds is left alone
 *   Force=no            processes no adapter can suspend are stopped with
 *                       SIGSTOP (the reset's Force)
 *   Device=ADDR...      only these devices (default: every managed='no' one)
 */
#include <errno.h>
#include <ini.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <systemd/sd-bus.h>
#include <systemd/sd-journal.h>
#include <unistd.h>

#include "bus-names.h"
#include "hook-hostdevs.h"
#include "macro.h"
#include "pci-address.h"
#include "strv.h"

#define CONFIG_PATH "/etc/vfio-resetd/vfio-resetd.conf"
#define XML_MAX (16u << 20)     /* a domain XML is kilobytes; past this, drained and not read */
#define DEADLINE_SEC 10         /* the whole hook, whatever the bus does */

struct hook_config {
        bool scrub, suspend_others, force;
        char **devices;         /* NULL: all */
};

static const char *domain_name = "?";

/* To the journal, with the domain and the device as fields; to stderr (which
 * libvirtd keeps in its log) where no journal listens. */
static void say(int priority, const char *address, const char *fmt, ...) _printf_(3, 4);
static void say(int priority, const char *address, const char *fmt, ...) {
        _cleanup_free_ char *msg = NULL;
        va_list ap;
        int r;

        va_start(ap, fmt);
        r = vasprintf(&msg, fmt, ap);
        va_end(ap);
        if (r < 0)
                return;
        if (sd_journal_send("MESSAGE=%s", msg, "PRIORITY=%d", priority, "SYSLOG_IDENTIFIER=vfio-resetd-hook",
                            "VFIO_DOMAIN=%s", domain_name, address ? "VFIO_DEVICE=%s" : NULL,
                            address, NULL) < 0 || getenv("VFIO_RESETD_HOOK_STDERR"))
                fprintf(stderr, "vfio-resetd-hook: %s\n", msg);
}

static bool parse_bool(const char *v, bool *ret) {
        if (!strcasecmp(v, "yes") || !strcasecmp(v, "true") || !strcmp(v, "1") || !strcasecmp(v, "on"))
                return (*ret = true), true;
        if (!strcasecmp(v, "no") || !strcasecmp(v, "false") || !strcmp(v, "0") || !strcasecmp(v, "off"))
                return (*ret = false), true;
        return false;
}

static int on_key(void *userdata, const char *section, const char *name, const char *value) {
        struct hook_config *c = userdata;
        bool *flag = NULL;

        if (strcmp(section, "Hook") != 0)
                return 1;       /* the daemon's */
        if (strcmp(name, "Scrub") == 0)
                flag = &c->scrub;
        else if (strcmp(name, "SuspendOthers") == 0)
                flag = &c->suspend_others;
        else if (strcmp(name, "Force") == 0)
                flag = &c->force;
        else if (strcmp(name, "Device") == 0) {
                _cleanup_free_ char *copy = strdup(value);
                char *save = NULL;

                for (char *w = copy ? strtok_r(copy, " \t", &save) : NULL; w; w = strtok_r(NULL, " \t", &save)) {
                        struct pci_address a;
                        char address[PCI_ADDRESS_STRLEN];

                        if (pci_address_parse(w, &a, NULL, 0) < 0) {
                                say(LOG_WARNING, NULL, "%s: [Hook] Device=: '%s' is no PCI address, ignoring it",
                                    CONFIG_PATH, w);
                                continue;
                        }
                        if (strv_extend(&c->devices, pci_address_format(&a, address)) < 0)
                                return 0;
                }
                return 1;
        } else {
                say(LOG_WARNING, NULL, "%s: unknown key '%s' in [Hook], ignoring it", CONFIG_PATH, name);
                return 1;
        }
        if (!parse_bool(value, flag))
                say(LOG_WARNING, NULL, "%s: [Hook] %s=: '%s' is not yes or no, ignoring it", CONFIG_PATH, name,
                    value);
        return 1;
}

static void config_read(struct hook_config *c) {
        const char *path = getenv("VFIO_RESETD_HOOK_CONFIG") ?: CONFIG_PATH;
        _cleanup_(fclosep) FILE *f = fopen(path, "re");

        *c = (struct hook_config) { .scrub = true, .suspend_others = true };
        if (f)
                (void) ini_parse_file(f, on_key, c);
}

/* All of stdin: libvirt writes the XML and must not see EPIPE. */
static char *read_all(size_t *ret_size) {
        size_t size = 0, alloc = 0;
        char *buf = NULL, drain[65536];
        ssize_t n;

        for (;;) {
                if (size < XML_MAX && alloc - size < 4096) {
                        char *nb = realloc(buf, alloc + 65536);

                        if (!nb)
                                break;
                        buf = nb;
                        alloc += 65536;
                }
                n = size < XML_MAX ? read(STDIN_FILENO, buf + size, alloc - size - 1) :
                                     read(STDIN_FILENO, drain, sizeof(drain));
                if (n < 0 && errno == EINTR)
                        continue;
                if (n <= 0)
                        break;
                if (size < XML_MAX)
                        size += (size_t) n;
        }
        if (buf)
                buf[size] = '\0';
        *ret_size = size;
        return buf;
}

static void on_skipped(const char *address, enum hostdev_skip why, void *userdata) {
        if (why == HOSTDEV_MANAGED)
                say(LOG_INFO, address, "%s: %s is managed='yes': libvirt rebinds it to its host driver, nothing to "
                    "scrub on vfio-pci", domain_name, address);
        else
                say(LOG_INFO, address, "%s: %s is not among [Hook] Device=, left alone", domain_name, address);
}

/* Does anyone outside the daemon hold a member of the device's set now? */
static int set_held(sd_bus *bus, const char *address, bool *ret) {
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *reply = NULL, *holders = NULL;
        sd_bus_error e = SD_BUS_ERROR_NULL;
        const char *path;
        int r;

        r = sd_bus_call_method(bus, VRD_BUS_NAME, VRD_ROOT_PATH, VRD_MANAGER_IFACE, "GetDevSet", &e, &reply, "s",
                               address);
        if (r >= 0)
                r = sd_bus_message_read(reply, "o", &path);
        if (r >= 0)
                r = sd_bus_get_property(bus, VRD_BUS_NAME, path, VRD_DEVSET_IFACE, "Holders", &e, &holders,
                                        "a(sus)");
        if (r >= 0)
                r = sd_bus_message_enter_container(holders, 'a', "(sus)");
        if (r >= 0)
                r = sd_bus_message_at_end(holders, false);
        sd_bus_error_free(&e);
        if (r < 0)
                return r;
        *ret = r == 0;
        return 0;
}

/* ResetDevice with Borrow and Wait=false: answered once the daemon accepted
 * the reset (it must see us on the bus to authorize us), which goes on after. */
static int ask_scrub(sd_bus *bus, const char *address, const struct hook_config *c, sd_bus_error *error) {
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *reply = NULL;

        return sd_bus_call_method(bus, VRD_BUS_NAME, VRD_ROOT_PATH, VRD_MANAGER_IFACE, "ResetDevice", error, &reply,
                                  "sa{sv}", address, c->force ? 3 : 2, "Borrow", "b", 1, "Wait", "b", 0, "Force", "b",
                                  1);
}

static void on_deadline(int sig) {
        _exit(EXIT_SUCCESS);    /* never keep libvirt waiting, never fail it */
}

int main(int argc, char *argv[]) {
        _cleanup_(sd_bus_flush_close_unrefp) sd_bus *bus = NULL;
        _cleanup_strv_free_ char **devices = NULL;
        _cleanup_free_ char *xml = NULL;
        struct hook_config c;
        size_t size = 0;
        int r;

        signal(SIGALRM, on_deadline);
        alarm(DEADLINE_SEC);
        xml = read_all(&size);
        if (argc < 3) {
                say(LOG_WARNING, NULL, "called with %d arguments, not as libvirt calls a hook (NAME OPERATION "
                    "SUBOPERATION EXTRA): doing nothing", argc - 1);
                return EXIT_SUCCESS;
        }
        domain_name = argv[1];
        if (strcmp(argv[2], "release") != 0) {
                static const char *const known[] = { "prepare", "start", "started", "stopped", "migrate",
                                                     "restore", "reconnect", "attach", NULL };

                if (!strv_contains((char **) known, argv[2]))
                        say(LOG_NOTICE, NULL, "%s: unknown hook operation '%s', doing nothing", domain_name,
                            argv[2]);
                return EXIT_SUCCESS;
        }
        config_read(&c);
        if (!c.scrub) {
                say(LOG_INFO, NULL, "%s released; [Hook] Scrub=no: not scrubbing its devices", domain_name);
                goto done;
        }
        r = xml ? hook_hostdevs(xml, size, c.devices, on_skipped, NULL, &devices) : -EBADMSG;
        if (r < 0) {
                say(LOG_WARNING, NULL, "%s released, but its domain XML on stdin (%zu bytes) %s: doing nothing",
                    domain_name, size, r == -EBADMSG ? "is not a libvirt domain XML" : "could not be read");
                goto done;
        }
        if (!devices)
                goto done;      /* no vfio-pci hostdevs: nothing to do, nothing to say */
        r = sd_bus_open_system(&bus);
        if (r < 0) {
                say(LOG_ERR, NULL, "%s released, but the system bus cannot be reached (%s): its devices are not "
                    "scrubbed", domain_name, strerror(-r));
                goto done;
        }
        for (char **a = devices; *a; a++) {
                _cleanup_(sd_bus_error_free) sd_bus_error e = SD_BUS_ERROR_NULL;
                bool held = false;

                if (!c.suspend_others) {
                        r = set_held(bus, *a, &held);
                        if (r < 0) {
                                say(LOG_ERR, *a, "%s: cannot ask vfio-resetd about the dev_set of %s (%s): not "
                                    "scrubbing it", domain_name, *a, strerror(-r));
                                continue;
                        }
                        if (held) {
                                say(LOG_INFO, *a, "%s: the dev_set of %s is held by others, and [Hook] "
                                    "SuspendOthers=no: left alone", domain_name, *a);
                                continue;
                        }
                }
                r = ask_scrub(bus, *a, &c, &e);
                if (r < 0)
                        say(LOG_ERR, *a, "%s: vfio-resetd did not take the scrub of the dev_set of %s: %s%s%s",
                            domain_name, *a, e.name ?: "", e.name ? ": " : "", e.message ?: strerror(-r));
                else
                        say(LOG_INFO, *a, "%s released: asked vfio-resetd to scrub the dev_set of %s (a reset "
                            "with Borrow%s; its result is in vfio-resetd's log)", domain_name, *a,
                            c.force ? " and Force" : "");
        }
done:
        strv_free(c.devices);
        return EXIT_SUCCESS;
}
