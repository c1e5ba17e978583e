/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <assert.h>
#include <ctype.h>
#include <errno.h>
#include <ini.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config-file.h"
#include "log.h"
#include "macro.h"
#include "strv.h"

#define QUIESCE_TIMEOUT_MAX_SEC 3600
#define DRIVER_NAME_MAX 63

/* What a line is, as far as telling inih's silent drops from good lines goes. */
enum line_kind {
        LINE_IGNORED,           /* blank, comment, [Section], too long */
        LINE_BAD_SECTION,       /* '[' without ']' */
        LINE_CONTENT,           /* inih calls the handler for it, or drops it as a syntax error */
};

/* inih reads the file through us: we count lines (its handler is not told the
 * line number), see section headers, and notice the lines it drops. */
struct parser {
        const char *path;
        FILE *f;
        char *buf;
        size_t bufsize;
        unsigned line;
        enum line_kind kind;
        bool indented;
        bool has_equals;
        bool handled;           /* inih passed this line to on_key */
        int error;              /* -ENOMEM or a read error: fatal */
        struct vrd_config *config;
};

#define warn_at(p, fmt, ...) log_warning("%s:%u: " fmt, (p)->path, (p)->line, ##__VA_ARGS__)

/* "DevSet ID": the id of a dev_set, as in its object path (letters, digits, '_'). */
static const char *devset_section_id(const char *s) {
        size_t n;

        if (strncmp(s, "DevSet ", 7) != 0)
                return NULL;
        s += 7;
        n = strlen(s);
        return n > 0 && strspn(s, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_") == n ? s : NULL;
}

static bool section_known(const char *s) {
        return strcmp(s, "Manage") == 0 || strcmp(s, "Reset") == 0 || strcmp(s, "Topology") == 0 ||
               strcmp(s, "Hook") == 0 || strcmp(s, "Libvirt") == 0 || strcmp(s, "Ownership") == 0 ||
               devset_section_id(s);
}

/* inih's rule: ';' after whitespace starts a comment, also inside "[...]". */
static const char *find_section_end(const char *s) {
        bool was_space = false;

        for (; *s && *s != ']'; s++) {
                if (was_space && *s == ';')
                        return NULL;
                was_space = isspace((unsigned char) *s);
        }
        return *s == ']' ? s : NULL;
}

/* Returns where inih should start reading the line. */
static const char *classify_line(struct parser *p, const char *line) {
        const char *s = line, *end;
        char name[INI_MAX_LINE];

        if (p->line == 1 && strncmp(s, "\xEF\xBB\xBF", 3) == 0)
                s += 3;
        p->indented = isspace((unsigned char) *s);
        while (isspace((unsigned char) *s))
                s++;
        p->has_equals = strchr(s, '=') != NULL;
        if (*s == '\0' || *s == ';' || *s == '#') {
                p->kind = LINE_IGNORED;
                return line;
        }
        if (*s != '[') {
                p->kind = LINE_CONTENT;
                /* An indented Key=value is a key, not a continuation of the
                 * key before (inih's multi-line values). */
                return p->indented && p->has_equals ? s : line;
        }
        end = find_section_end(s + 1);
        if (!end) {
                p->kind = LINE_BAD_SECTION;
                return line;
        }
        p->kind = LINE_IGNORED;
        snprintf(name, sizeof(name), "%.*s", (int) (end - s - 1), s + 1);
        if (!section_known(name))
                warn_at(p, "unknown section [%s], ignoring it and its keys (known: [Manage], [Reset], [Topology], "
                        "[Libvirt], [Hook], [Ownership], [DevSet ID] with ID a dev_set id such as bus_0000_04)",
                        name);
        return line;
}

/* The line before this one, now that inih is done with it. */
static void check_dropped(struct parser *p) {
        if (p->handled || p->line == 0)
                return;
        if (p->kind == LINE_BAD_SECTION)
                warn_at(p, "section header without a closing ']', ignoring it");
        else if (p->kind == LINE_CONTENT)
                warn_at(p, "not a Key=value line, ignoring it");
}

static char *read_line(char *str, int num, void *userdata) {
        struct parser *p = userdata;
        const char *start;
        ssize_t n;

        check_dropped(p);
        errno = 0;
        n = getline(&p->buf, &p->bufsize, p->f);
        if (n < 0) {
                if (ferror(p->f))
                        p->error = errno > 0 ? -errno : -EIO;
                p->line = 0;    /* nothing left to check */
                return NULL;
        }
        p->line++;
        p->handled = false;
        while (n > 0 && (p->buf[n - 1] == '\n' || p->buf[n - 1] == '\r'))
                p->buf[--n] = '\0';
        if (n > num - 1) {
                /* inih would take the rest of the line for another line */
                warn_at(p, "line too long (%zd characters, at most %d), ignoring it; split its list over "
                        "several lines with the same key", n, num - 1);
                p->kind = LINE_IGNORED;
                str[0] = '\0';
                return str;
        }
        start = classify_line(p, p->buf);
        memcpy(str, start, strlen(start) + 1);
        return str;
}

static int strv_extend_unique(char ***l, const char *s) {
        return strv_contains(*l, s) ? 0 : strv_extend(l, s);
}

/* An empty value clears the list, as in systemd's unit files. */
static int strv_clear(char ***l) {
        char **empty = calloc(1, sizeof(char *));

        if (!empty)
                return -ENOMEM;
        strv_free(*l);
        *l = empty;
        return 0;
}

static int parse_devices(struct parser *p, const char *value) {
        _cleanup_strv_free_ char **words = NULL;

        if (!*value)
                return strv_clear(&p->config->managed);
        words = strv_split_whitespace(value);
        if (!words)
                return -ENOMEM;
        for (char **w = words; *w; w++) {
                char err[160], buf[PCI_ADDRESS_STRLEN];
                struct pci_address a;
                int r;

                if (pci_address_parse(*w, &a, err, sizeof(err)) < 0) {
                        warn_at(p, "Device=: %s; ignoring it", err);
                        continue;
                }
                r = strv_extend_unique(&p->config->managed, pci_address_format(&a, buf));
                if (r < 0)
                        return r;
        }
        return 0;
}

static bool driver_name_valid(const char *s) {
        size_t n = strlen(s);

        return n > 0 && n <= DRIVER_NAME_MAX &&
               strspn(s, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-.") == n;
}

static int parse_drivers(struct parser *p, const char *value) {
        _cleanup_strv_free_ char **words = NULL;

        if (!*value)
                return strv_clear(&p->config->vfio_drivers);
        words = strv_split_whitespace(value);
        if (!words)
                return -ENOMEM;
        for (char **w = words; *w; w++) {
                int r;

                if (!driver_name_valid(*w)) {
                        warn_at(p, "VfioDriver=: '%s' is not a driver name (letters, digits, '_', '-', '.', "
                                "at most %d), ignoring it", *w, DRIVER_NAME_MAX);
                        continue;
                }
                r = strv_extend_unique(&p->config->vfio_drivers, *w);
                if (r < 0)
                        return r;
        }
        return 0;
}

/* Decimal seconds, with up to 6 places after the point; no sign, exponent,
 * hex, inf or nan (strtod would take those), and no locale. */
static int parse_seconds(const char *s, uint64_t *ret) {
        uint64_t sec = 0, usec = 0, scale = 100000;
        const char *p = s;

        if (!isdigit((unsigned char) *p) && !(*p == '.' && isdigit((unsigned char) p[1])))
                return -EINVAL;
        for (; isdigit((unsigned char) *p); p++) {
                sec = sec * 10 + (uint64_t) (*p - '0');
                if (sec > QUIESCE_TIMEOUT_MAX_SEC)
                        return -ERANGE;
        }
        if (*p == '.')
                for (p++; isdigit((unsigned char) *p); p++, scale /= 10)
                        usec += (uint64_t) (*p - '0') * scale;
        if (*p)
                return -EINVAL;
        *ret = sec * 1000000 + usec;
        return 0;
}

static int parse_quiesce_timeout(struct parser *p, const char *value) {
        uint64_t usec;
        int r;

        if (!*value) {
                p->config->quiesce_timeout_usec = CONFIG_QUIESCE_TIMEOUT_USEC_DEFAULT;
                return 0;
        }
        r = parse_seconds(value, &usec);
        if (r == -EINVAL)
                warn_at(p, "QuiesceTimeoutSec=: '%s' is not a number of seconds (e.g. 5 or 0.5), ignoring it", value);
        else if (r < 0 || usec == 0 || usec > QUIESCE_TIMEOUT_MAX_SEC * UINT64_C(1000000))
                warn_at(p, "QuiesceTimeoutSec=: %s is out of range: more than 0 and at most %d seconds, ignoring it",
                        value, QUIESCE_TIMEOUT_MAX_SEC);
        else
                p->config->quiesce_timeout_usec = usec;
        return 0;
}

/* A libvirt connection URI, not checked further: libvirt says what is wrong
 * with it when the adapter opens it. "" or "none" switches the adapter off. */
static int parse_libvirt_uri(struct parser *p, const char *value) {
        char *uri;

        if (value[strcspn(value, " \t")]) {
                warn_at(p, "URI=: '%s' is not a libvirt URI (it has whitespace), ignoring it", value);
                return 0;
        }
        if (!*value || strcmp(value, "none") == 0) {
                p->config->libvirt_uri = mfree(p->config->libvirt_uri);
                return 0;
        }
        uri = strdup(value);
        if (!uri)
                return -ENOMEM;
        free(p->config->libvirt_uri);
        p->config->libvirt_uri = uri;
        return 0;
}

static int parse_model_value(struct parser *p, const char *value, enum config_model *ret) {
        if (!*value || strcmp(value, "auto") == 0)
                *ret = CONFIG_MODEL_AUTO;
        else if (strcmp(value, "legacy") == 0)
                *ret = CONFIG_MODEL_LEGACY;
        else if (strcmp(value, "cdev") == 0)
                *ret = CONFIG_MODEL_CDEV;
        else {
                warn_at(p, "Model=: '%s' is not auto, legacy or cdev, ignoring it", value);
                return -EINVAL;
        }
        return 0;
}

static int parse_model(struct parser *p, const char *value) {
        enum config_model m;

        if (parse_model_value(p, value, &m) >= 0)
                p->config->model = m;
        return 0;
}

static int parse_set_model(struct parser *p, const char *set_id, const char *value) {
        struct config_set_model *v;
        enum config_model m;
        char *id;

        if (parse_model_value(p, value, &m) < 0)
                return 0;
        for (size_t i = 0; i < p->config->n_set_models; i++)
                if (strcmp(p->config->set_models[i].set_id, set_id) == 0) {
                        p->config->set_models[i].model = m;     /* the last one counts */
                        return 0;
                }
        id = strdup(set_id);
        v = id ? realloc(p->config->set_models, sizeof(*v) * (p->config->n_set_models + 1)) : NULL;
        if (!v) {
                free(id);
                return -ENOMEM;
        }
        p->config->set_models = v;
        v[p->config->n_set_models++] = (struct config_set_model) { id, m };
        return 0;
}

static int on_key(void *userdata, const char *section, const char *name, const char *value) {
        static const struct {
                const char *section, *name;
                int (*parse)(struct parser *p, const char *value);
        } keys[] = {
                { "Manage",   "Device",            parse_devices },
                { "Reset",    "QuiesceTimeoutSec", parse_quiesce_timeout },
                { "Topology", "VfioDriver",        parse_drivers },
                { "Libvirt",  "URI",               parse_libvirt_uri },
                { "Ownership", "Model",            parse_model },
        };
        struct parser *p = userdata;
        int r;

        p->handled = true;
        if (!p->indented && !p->has_equals) {
                /* inih also splits at ':', which would make "0000:04:00.0" key "0000" */
                warn_at(p, "not a Key=value line, ignoring it");
                return 1;
        }
        if (!*section) {
                warn_at(p, "'%s' comes before any [Section], ignoring it", name);
                return 1;
        }
        if (!section_known(section))
                return 1;       /* said so at the section header */
        if (strcmp(section, "Hook") == 0)
                return 1;       /* the libvirt hook's (client/hook-libvirt.c), which reads it itself */
        if (devset_section_id(section)) {
                if (strcmp(name, "Model") != 0)
                        warn_at(p, "unknown key '%s' in [%s], ignoring it (known: Model)", name, section);
                else {
                        r = parse_set_model(p, devset_section_id(section), value);
                        if (r < 0 && p->error == 0)
                                p->error = r;
                }
                return 1;
        }
        for (size_t i = 0; i < ELEMENTSOF(keys); i++) {
                if (strcmp(keys[i].section, section) != 0 || strcmp(keys[i].name, name) != 0)
                        continue;
                r = keys[i].parse(p, value);
                if (r < 0 && p->error == 0)
                        p->error = r;
                return 1;
        }
        warn_at(p, "unknown key '%s' in [%s], ignoring it", name, section);
        return 1;
}

void config_done(struct vrd_config *c) {
        c->managed = (strv_free(c->managed), NULL);
        c->vfio_drivers = (strv_free(c->vfio_drivers), NULL);
        c->libvirt_uri = mfree(c->libvirt_uri);
        for (size_t i = 0; i < c->n_set_models; i++)
                free(c->set_models[i].set_id);
        c->set_models = mfree(c->set_models);
        c->n_set_models = 0;
}

int config_load(const char *path, struct vrd_config *ret) {
        _cleanup_(config_done) struct vrd_config c = {
                .quiesce_timeout_usec = CONFIG_QUIESCE_TIMEOUT_USEC_DEFAULT,
        };
        _cleanup_(fclosep) FILE *f = NULL;
        struct parser p = { .path = path, .config = &c };
        int r;

        assert(path);
        assert(ret);

        c.managed = calloc(1, sizeof(char *));
        c.vfio_drivers = calloc(1, sizeof(char *));
        c.libvirt_uri = strdup(CONFIG_LIBVIRT_URI_DEFAULT);
        if (!c.managed || !c.vfio_drivers || !c.libvirt_uri)
                return -ENOMEM;

        f = fopen(path, "re");
        if (!f && errno != ENOENT)
                return -errno;  /* the caller says what failed */
        if (!f) {
                log_debug("%s does not exist, using defaults.", path);
                goto done;
        }

        p.f = f;
        r = ini_parse_stream(read_line, &p, on_key, &p);
        check_dropped(&p);
        free(p.buf);
        if (r == -2 && p.error == 0)
                p.error = -ENOMEM;
        if (p.error < 0)
                return p.error;
        log_debug("Loaded %s: %zu managed devices, %zu extra vfio drivers, quiesce timeout %.3f s, libvirt %s", path,
                  strv_length(c.managed), strv_length(c.vfio_drivers), (double) c.quiesce_timeout_usec / 1e6,
                  c.libvirt_uri ?: "off");
done:
        *ret = c;
        c = (struct vrd_config) {};
        return 0;
}

bool config_manages(const struct vrd_config *c, const struct pci_address *a) {
        char buf[PCI_ADDRESS_STRLEN];

        return strv_contains(c->managed, pci_address_format(a, buf));
}

enum config_model config_model_for(const struct vrd_config *c, const char *set_id) {
        for (size_t i = 0; set_id && i < c->n_set_models; i++)
                if (strcmp(c->set_models[i].set_id, set_id) == 0)
                        return c->set_models[i].model;
        return c->model;
}
