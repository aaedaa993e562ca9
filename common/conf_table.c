/* SPDX-License-Identifier: Apache-2.0 */
/* conf_table.c - the table-driven configuration engine (see conf_table.h):
 * one parser, one range check and one printer per type, so a key's rules
 * live in its row and nowhere else. */
#include "conf_table.h"

#include <errno.h>
#include <ini.h>
#include <limits.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

static void conf_free_rows(const conf_key *keys, size_t n, void *base);
static void *conf_field(void *base, const conf_key *k) { return (char *)base + k->offset; }
static const void *conf_cfield(const void *base, const conf_key *k) { return (const char *)base + k->offset; }

static void conf_put_int(void *f, size_t size, long long v)
{
    if (size == 4) {
        int32_t x = (int32_t)v;
        memcpy(f, &x, 4);
    } else {
        int64_t x = v;
        memcpy(f, &x, 8);
    }
}

static long long conf_get_int(const void *f, size_t size)
{
    if (size == 4) {
        int32_t x;
        memcpy(&x, f, 4);
        return x;
    }
    int64_t x;
    memcpy(&x, f, 8);
    return x;
}

static unsigned long long conf_get_uint(const void *f, size_t size)
{
    if (size == 4) {
        uint32_t x;
        memcpy(&x, f, 4);
        return x;
    }
    uint64_t x;
    memcpy(&x, f, 8);
    return x;
}

/* "a, b or c" */
static void conf_list(const char *const *items, char *out, size_t len)
{
    size_t off = 0;
    out[0] = 0;
    for (size_t i = 0; items[i] && off < len; i++)
        off += (size_t)snprintf(out + off, len - off, "%s%s", i == 0 ? "" : items[i + 1] ? ", " : " or ", items[i]);
}

/* Whole number: decimal, or hex after 0x. */
static int conf_strtoll(const char *v, long long *out)
{
    int hex = v[0] == '0' && (v[1] == 'x' || v[1] == 'X');
    char *end;
    errno = 0;
    long long x = strtoll(v, &end, hex ? 16 : 10);
    if (errno || end == v || *end) return -1;
    *out = x;
    return 0;
}

static int conf_scaled(const char *v, const char *const *units, const long long *scale, long long plain,
                       long long *out)
{
    char *end;
    errno = 0;
    long long x = strtoll(v, &end, 10);
    if (errno || end == v || v[0] == '-' || x < 0) return -1;
    long long unit = *end ? 0 : plain;
    for (size_t i = 0; *end && units[i]; i++)
        if (strcmp(end, units[i]) == 0) unit = scale[i];
    if (!unit || x > LLONG_MAX / unit) return -1;
    *out = x * unit;
    return 0;
}

static const char *const conf_size_units[] = {"G", "M", "K", NULL};
static const long long conf_size_scale[] = {1LL << 30, 1LL << 20, 1LL << 10};
static const char *const conf_dur_units[] = {"d", "h", "m", "s", "ms", NULL};
static const long long conf_dur_scale[] = {86400000LL, 3600000LL, 60000LL, 1000LL, 1LL};

/* The largest unit that divides x exactly. */
static void conf_fmt_scaled(long long x, const char *const *units, const long long *scale, char *out, size_t len)
{
    for (size_t i = 0; x && units[i]; i++)
        if (x % scale[i] == 0) {
            snprintf(out, len, "%lld%s", x / scale[i], units[i]);
            return;
        }
    snprintf(out, len, "%lld", x);
}

static void conf_fmt_num(const conf_key *k, long long x, char *out, size_t len)
{
    if (k->type == CONF_SIZE) conf_fmt_scaled(x, conf_size_units, conf_size_scale, out, len);
    else if (k->type == CONF_DURATION) conf_fmt_scaled(x, conf_dur_units, conf_dur_scale, out, len);
    else snprintf(out, len, "%lld", x);
}

/* "must be ..." for an integer-like row. */
static void conf_range_problem(const conf_key *k, char *problem, size_t len)
{
    static const char *const what[] = {[CONF_INT] = "a whole number",
                                       [CONF_SIZE] = "a size (bytes, or with K, M or G)",
                                       [CONF_DURATION] = "a duration (500ms, 45s, 90m, 12h, 30d; plain: seconds)"};
    char lo[32], hi[32];
    conf_fmt_num(k, k->min, lo, sizeof lo);
    conf_fmt_num(k, k->max, hi, sizeof hi);
    const char *zero = k->flags & CONF_ZERO_OFF ? "0 (none) or " : "";
    if (k->max == LLONG_MAX) snprintf(problem, len, "must be %s%s of at least %s", zero, what[k->type], lo);
    else snprintf(problem, len, "must be %s%s in %s..%s", zero, what[k->type], lo, hi);
}

static int conf_bool(const char *v, int *out)
{
    static const char *const yes[] = {"true", "yes", "on", "1"}, *const no[] = {"false", "no", "off", "0"};
    for (size_t i = 0; i < 4; i++) {
        if (strcasecmp(v, yes[i]) == 0) return *out = 1, 0;
        if (strcasecmp(v, no[i]) == 0) return *out = 0, 0;
    }
    return -1;
}

static void conf_set_str(char **dst, const char *v, int secret)
{
    if (*dst && secret) explicit_bzero(*dst, strlen(*dst));
    free(*dst);
    *dst = v ? strdup(v) : NULL;
}

/* Parses v into the row's field: 0, or -1 with problem set. */
static int conf_parse(const conf_key *k, const char *v, void *base, char *problem, size_t len)
{
    void *f = conf_field(base, k);
    long long x = 0;
    switch (k->type) {
    case CONF_STRING: {
        int ok = !k->choices;
        for (size_t i = 0; !ok && k->choices[i]; i++) ok = strncmp(v, k->choices[i], strlen(k->choices[i])) == 0;
        if (!ok) {
            char list[256];
            conf_list(k->choices, list, sizeof list);
            return snprintf(problem, len, "must start with %s", list), -1;
        }
        if ((k->flags & CONF_REQUIRED) && !*v) return snprintf(problem, len, "must not be empty"), -1;
        conf_set_str(f, v, k->flags & CONF_SECRET);
        return 0;
    }
    case CONF_BOOL:
        if (conf_bool(v, f)) return snprintf(problem, len, "must be true or false"), -1;
        return 0;
    case CONF_INT:
    case CONF_SIZE:
    case CONF_DURATION: {
        int bad = k->type == CONF_INT ? conf_strtoll(v, &x)
                  : k->type == CONF_SIZE ? conf_scaled(v, conf_size_units, conf_size_scale, 1, &x)
                                         : conf_scaled(v, conf_dur_units, conf_dur_scale, 1000, &x);
        if (bad || ((x < k->min || x > k->max) && !(x == 0 && (k->flags & CONF_ZERO_OFF))))
            return conf_range_problem(k, problem, len), -1;
        conf_put_int(f, k->size, x);
        return 0;
    }
    case CONF_HEX: {
        unsigned long long max = k->size == 4 ? UINT32_MAX : UINT64_MAX, u;
        int hex = v[0] == '0' && (v[1] == 'x' || v[1] == 'X');
        char *end;
        errno = 0;
        u = strtoull(v, &end, hex ? 16 : 10);
        if (errno || end == v || *end || v[0] == '-' || u > max)
            return snprintf(problem, len, "must be a number in 0..0x%llx (0x prefix for hex)", max), -1;
        if (k->size == 4) {
            uint32_t w = (uint32_t)u;
            memcpy(f, &w, 4);
        } else {
            uint64_t w = u;
            memcpy(f, &w, 8);
        }
        return 0;
    }
    case CONF_DOUBLE: {
        char *end;
        double d = strtod(v, &end);
        if (end == v || *end || !(d >= k->dmin && d <= k->dmax))
            return snprintf(problem, len, "must be a number in %g..%g", k->dmin, k->dmax), -1;
        memcpy(f, &d, sizeof d);
        return 0;
    }
    case CONF_ENUM:
        for (size_t i = 0; k->choices[i]; i++)
            if (strcasecmp(v, k->choices[i]) == 0) {
                memcpy(f, &k->choices[i], sizeof(char *));
                return 0;
            }
        char list[256];
        conf_list(k->choices, list, sizeof list);
        return snprintf(problem, len, "must be %s", list), -1;
    case CONF_SECRET_FILE: {
        char *secret = NULL;
        if (conf_read_secret(v, &secret, problem, len)) return -1;
        char **content = (char **)((char *)base + k->secret_at);
        conf_set_str(content, NULL, 1);
        *content = secret;
        conf_set_str(f, v, 0);
        return 0;
    }
    case CONF_CUSTOM:
        return k->parse(v, f, problem, len);
    }
    return -1;
}

const conf_key *conf_find(const conf_key *keys, const char *name)
{
    for (const conf_key *k = keys; k->name; k++)
        if (strcmp(k->name, name) == 0) return k;
    return NULL;
}

/* The table's own consistency: a wrong row is a bug caught on first use. */
static int conf_row_ok(const conf_key *k)
{
    switch (k->type) {
    case CONF_STRING:
    case CONF_SECRET_FILE:
    case CONF_ENUM: return k->size == sizeof(char *) && (k->type != CONF_ENUM || k->choices);
    case CONF_BOOL: return k->size == sizeof(int);
    case CONF_INT:
        return k->min <= k->max && (k->size == 8 || (k->size == 4 && k->min >= INT32_MIN && k->max <= INT32_MAX));
    case CONF_HEX: return k->size == 4 || k->size == 8;
    case CONF_SIZE:
    case CONF_DURATION: return k->size == 8 && k->min >= 0 && k->min <= k->max;
    case CONF_DOUBLE: return k->size == sizeof(double) && k->dmin <= k->dmax;
    case CONF_CUSTOM: return k->parse && k->format;
    }
    return 0;
}

int conf_init(conf_section *s, const char *name, const char *prefix, const conf_key *keys, void *base, char *err,
              size_t err_len)
{
    *s = (conf_section){name, prefix, keys, base, 0};
    for (const conf_key *k = keys; k->name; k++) {
        char problem[256] = "wrong field size, range or choices";
        if (k - keys >= 64 || !conf_row_ok(k) || (k->def && conf_parse(k, k->def, base, problem, sizeof problem))) {
            snprintf(err, err_len, "table of [%s]: %s%s (default \"%s\"): %s", name, prefix, k->name,
                     k->def ? k->def : "", problem);
            conf_free_rows(keys, (size_t)(k - keys), base); /* the wrong row holds nothing */
            return -1;
        }
    }
    return 0;
}

int conf_set(conf_section *s, const char *key, const char *value, char *err, size_t err_len)
{
    size_t plen = strlen(s->prefix);
    const conf_key *k = strncmp(key, s->prefix, plen) == 0 ? conf_find(s->keys, key + plen) : NULL;
    if (!k) return snprintf(err, err_len, "unknown key \"%s\" in [%s]", key, s->name), CONF_UNKNOWN;
    char problem[400];
    if (conf_parse(k, value, s->base, problem, sizeof problem) != 0)
        return snprintf(err, err_len, "[%s] %s: %s", s->name, key, problem), -1;
    s->set |= 1ull << (k - s->keys);
    return 0;
}

int conf_done(const conf_section *s, char *err, size_t err_len)
{
    for (const conf_key *k = s->keys; k->name; k++)
        if ((k->flags & CONF_REQUIRED) && !(s->set & (1ull << (k - s->keys))))
            return snprintf(err, err_len, "[%s] %s%s is required", s->name, s->prefix, k->name), -1;
    return 0;
}

int conf_load_kv(conf_section *s, const kv_pair *kv, size_t n, size_t *failed, char *err, size_t err_len)
{
    size_t i = 0;
    while (i < n && conf_set(s, kv[i].key, kv[i].value, err, err_len) == 0) i++;
    if (i < n || conf_done(s, err, err_len) != 0) {
        if (failed) *failed = i;
        conf_free(s->keys, s->base);
        return -1;
    }
    return 0;
}

/* The value as the file would spell it; NULL when unset. */
static const char *conf_format(const conf_key *k, const void *base, char *buf, size_t len)
{
    const void *f = conf_cfield(base, k);
    const char *str;
    switch (k->type) {
    case CONF_STRING:
    case CONF_SECRET_FILE:
    case CONF_ENUM:
        memcpy(&str, f, sizeof str);
        return str;
    case CONF_BOOL: return *(const int *)f ? "true" : "false";
    case CONF_INT:
    case CONF_SIZE:
    case CONF_DURATION: conf_fmt_num(k, conf_get_int(f, k->size), buf, len); return buf;
    case CONF_HEX: snprintf(buf, len, "0x%llx", conf_get_uint(f, k->size)); return buf;
    case CONF_DOUBLE: {
        double d;
        memcpy(&d, f, sizeof d);
        snprintf(buf, len, "%g", d);
        return buf;
    }
    case CONF_CUSTOM: k->format(f, buf, len); return buf;
    }
    return NULL;
}

void conf_print(const conf_section *s, FILE *out)
{
    for (const conf_key *k = s->keys; k->name; k++) {
        char buf[128];
        int given = k->def || (s->set & (1ull << (k - s->keys)));
        const char *v = given ? conf_format(k, s->base, buf, sizeof buf) : NULL;
        fprintf(out, "# %s%s%s%s\n", k->desc, k->def ? " (default " : "", k->def ? k->def : "", k->def ? ")" : "");
        if (!v) fprintf(out, "# %s%s =\n", s->prefix, k->name);
        else fprintf(out, "%s%s = %s\n", s->prefix, k->name, k->flags & CONF_SECRET ? "********" : v);
    }
}

/* Frees what the first n rows own (n: SIZE_MAX for all). */
static void conf_free_rows(const conf_key *keys, size_t n, void *base)
{
    for (const conf_key *k = keys; k->name && (size_t)(k - keys) < n; k++) {
        if (k->type == CONF_SECRET_FILE) conf_set_str((char **)((char *)base + k->secret_at), NULL, 1);
        if (k->type == CONF_STRING || k->type == CONF_SECRET_FILE)
            conf_set_str(conf_field(base, k), NULL, k->flags & CONF_SECRET);
    }
}

void conf_free(const conf_key *keys, void *base) { conf_free_rows(keys, SIZE_MAX, base); }

int conf_read_secret(const char *path, char **out, char *err, size_t err_len)
{
    FILE *f = fopen(path, "r");
    if (!f) return snprintf(err, err_len, "cannot read %s: %s", path, strerror(errno)), -1;
    char buf[1024];
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = 0;
    buf[strcspn(buf, "\r\n")] = 0; /* one line; a trailing newline is not part of it */
    *out = strdup(buf);
    explicit_bzero(buf, sizeof buf);
    return 0;
}

/* libinih reads the file through this, one line per call, so the handler
 * knows the current line. */
typedef struct conf_reader {
    FILE *f;
    int line, failed_line, long_line, max_line;
    const char *path;
    conf_line_fn fn;
    void *user;
    char *err;
    size_t err_len;
} conf_reader;

/* libinih hands over a buffer of its fixed size (INI_MAX_LINE, 200 in
 * Debian's build) and would read the rest of a longer line as a line of its
 * own: such a line is skipped to its end here and reported instead. */
static char *conf_gets(char *str, int num, void *stream)
{
    conf_reader *r = stream;
    r->line++;
    if (!fgets(str, num, r->f)) return NULL;
    if (!strchr(str, '\n')) {
        int c = fgetc(r->f);
        if (c != '\n' && c != EOF) {
            if (!r->long_line) r->long_line = r->line, r->max_line = num - 1;
            while (c != '\n' && c != EOF) c = fgetc(r->f);
        }
    }
    return str;
}

static int conf_on_ini(void *user, const char *section, const char *key, const char *value)
{
    conf_reader *r = user;
    char msg[512];
    if (!r->failed_line && r->fn(r->user, section, key, value, r->line, msg, sizeof msg) != 0) {
        snprintf(r->err, r->err_len, "%s:%d: %s", r->path, r->line, msg);
        r->failed_line = r->line;
    }
    return 1;
}

int conf_parse_file(const char *path, conf_line_fn fn, void *user, char *err, size_t err_len)
{
    conf_reader r = {.f = fopen(path, "r"), .path = path, .fn = fn, .user = user, .err = err, .err_len = err_len};
    if (!r.f) return snprintf(err, err_len, "%s: cannot open: %s", path, strerror(errno)), -1;
    int rc = ini_parse_stream(conf_gets, &r, conf_on_ini, &r);
    fclose(r.f);
    if (r.long_line && (!r.failed_line || r.long_line <= r.failed_line) && (rc <= 0 || r.long_line <= rc))
        return snprintf(err, err_len, "%s:%d: line longer than %d characters (the configuration reader's limit)",
                        path, r.long_line, r.max_line),
               -1;
    if (rc > 0 && (!r.failed_line || rc < r.failed_line)) return snprintf(err, err_len, "%s:%d: syntax error", path, rc), -1;
    if (rc < 0) return snprintf(err, err_len, "%s: cannot read: out of memory", path), -1;
    return r.failed_line ? -1 : 0;
}
