/* SPDX-License-Identifier: Apache-2.0 */
/* ts_config.c - the key table and the loader driven by it (ts_config.h). */
#include "ts_config.h"

#include <arpa/inet.h>
#include <errno.h>
#include <ini.h>
#include <librdkafka/rdkafka.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "ts_log.h"

typedef enum { TS_KEY_STR, TS_KEY_INT } ts_key_type;

typedef struct ts_key {
    const char *section, *name;
    ts_key_type type;
    const char *def; /* NULL: no default (unset) */
    long min, max;   /* TS_KEY_INT only */
    size_t off;      /* char * or long in ts_config */
    const char *desc;
} ts_key;

#define S(sec, name, def, field, desc) {sec, name, TS_KEY_STR, def, 0, 0, offsetof(ts_config, field), desc}
#define I(sec, name, def, lo, hi, field, desc) {sec, name, TS_KEY_INT, #def, lo, hi, offsetof(ts_config, field), desc}
static const ts_key ts_keys[] = {
    S("postgres", "conninfo", "host=127.0.0.1 dbname=tracestore", pg_conninfo,
      "libpq connection string without a password (see password_file)"),
    S("postgres", "password_file", NULL, pg_password_file,
      "file holding the database password on its first line, mode 0600; unset: none"),
    S("kafka", "topic", "lineagent.trace.v1", topic, "the agents' trace topic (TraceEvent values)"),
    S("kafka", "field_topic", "lineagent.field.v1", field_topic,
      "the OTA server's FieldFirmwareReport topic; empty: not consumed"),
    S("kafka", "group", "lineagent-tracestore", group, "consumer group; instances in one group share partitions"),
    I("kafka", "batch_max", 5000, 1, 100000, batch_max, "records stored in one database transaction at most"),
    I("kafka", "batch_wait_ms", 100, 1, 60000, batch_wait_ms,
      "a batch is stored at the latest this long after its first record"),
    S("http", "listen", NULL, http_listen, "host:port of the read-only HTTP API; unset: no HTTP"),
    S("http", "tls_cert", NULL, http_tls_cert, "PEM certificate (chain) for HTTPS; required off loopback"),
    S("http", "tls_key", NULL, http_tls_key, "PEM private key for HTTPS, mode 0600"),
    S("http", "token_file", NULL, http_token_file,
      "file with the bearer token clients must send, mode 0600; required off loopback"),
    I("http", "stale_after_s", 300, 5, 86400, http_stale_after_s,
      "the web page shows a line as stale when none of its events was stored for this long"),
    S("tracestore", "log_level", "info", log_level, "error, warn, info or debug"),
    I("tracestore", "retry_max_ms", 10000, 100, 600000, retry_max_ms,
      "longest wait between retries while PostgreSQL is unreachable (backoff doubles up to it)"),
    I("tracestore", "gap_timeout_s", 300, 1, 2592000, gap_timeout_s,
      "a seq gap still open after this long is reported (log, audit, /metrics)"),
    I("tracestore", "unit_timeout_s", 3600, 1, 2592000, unit_timeout_s,
      "audit: a unit seen this long ago without an outcome is a finding"),
};
#undef S
#undef I
#define TS_N_KEYS (sizeof ts_keys / sizeof ts_keys[0])

/* Set by tracestore itself: its exactly-once effect depends on them. */
static const char *const ts_kafka_reserved[] = {"group.id", "enable.auto.commit", "enable.auto.offset.store"};

typedef struct ts_parse {
    ts_config *c;
    char why[256];
    rd_kafka_conf_t *probe; /* librdkafka checks passed-through keys */
} ts_parse;

static char **ts_str_field(ts_config *c, const ts_key *k) { return (char **)((char *)c + k->off); }
static long *ts_int_field(ts_config *c, const ts_key *k) { return (long *)((char *)c + k->off); }

static int ts_bad(ts_parse *p, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(p->why, sizeof p->why, fmt, ap);
    va_end(ap);
    return 0; /* inih: stop, ini_parse returns this line */
}

static int ts_set_key(ts_config *c, const ts_key *k, const char *v, char *why, size_t why_len)
{
    if (k->type == TS_KEY_STR) {
        free(*ts_str_field(c, k));
        *ts_str_field(c, k) = strdup(v);
        return 0;
    }
    char *end;
    errno = 0;
    long x = strtol(v, &end, 10);
    if (errno || end == v || *end || x < k->min || x > k->max) {
        snprintf(why, why_len, "%s must be an integer in %ld..%ld", k->name, k->min, k->max);
        return -1;
    }
    *ts_int_field(c, k) = x;
    return 0;
}

static int ts_handler(void *user, const char *section, const char *key, const char *value, int line)
{
    ts_parse *p = user;
    ts_config *c = p->c;
    int known_section = 0;
    for (size_t i = 0; i < TS_N_KEYS; i++) {
        const ts_key *k = &ts_keys[i];
        if (strcmp(k->section, section)) continue;
        known_section = 1;
        if (strcmp(k->name, key)) continue;
        return ts_set_key(c, k, value, p->why, sizeof p->why) ? 0 : 1;
    }
    if (!known_section) return ts_bad(p, "unknown section [%s]", section);
    if (strcmp(section, "kafka") || !strchr(key, '.')) return ts_bad(p, "unknown key \"%s\" in [%s]", key, section);
    for (size_t i = 0; i < sizeof ts_kafka_reserved / sizeof *ts_kafka_reserved; i++)
        if (strcmp(key, ts_kafka_reserved[i]) == 0)
            return ts_bad(p, "%s is set by tracestore (offsets live in PostgreSQL; the group is [kafka] group)", key);
    char err[256];
    if (rd_kafka_conf_set(p->probe, key, value, err, sizeof err) != RD_KAFKA_CONF_OK)
        return ts_bad(p, "librdkafka: %s", err);
    c->rdkafka = realloc(c->rdkafka, (size_t)(c->n_rdkafka + 1) * sizeof *c->rdkafka);
    c->rdkafka[c->n_rdkafka++] = (ts_kv){strdup(key), strdup(value), line};
    return 1;
}

/* inih without line numbers in its handler: count them ourselves through
 * ini_parse_stream's reader. */
typedef struct ts_reader {
    FILE *f;
    int line;
    ts_parse *p;
} ts_reader;

static char *ts_read_line(char *buf, int size, void *stream)
{
    ts_reader *r = stream;
    char *s = fgets(buf, size, r->f);
    if (s) r->line++;
    return s;
}

static ts_reader *ts_current_reader;

static int ts_ini_handler(void *user, const char *section, const char *key, const char *value)
{
    return ts_handler(user, section, key, value, ts_current_reader->line);
}

static int ts_check_secret_mode(const char *what, const char *path, char *err, size_t err_len)
{
    struct stat st;
    if (stat(path, &st) != 0) {
        snprintf(err, err_len, "%s %s: %s", what, path, strerror(errno));
        return -1;
    }
    if (st.st_mode & 077) {
        snprintf(err, err_len, "%s %s is readable by group or others (chmod 600 it)", what, path);
        return -1;
    }
    return 0;
}

/* Rules between keys, after the whole file is read. */
static int ts_config_check(const ts_config *c, char *why, size_t len)
{
#define TS_NO(...) return snprintf(why, len, __VA_ARGS__), -1
    if (strstr(c->pg_conninfo, "password")) TS_NO("[postgres] conninfo must not hold a password: use password_file");
    if (ts_log_level_parse(c->log_level) < 0) TS_NO("[tracestore] log_level must be error, warn, info or debug");
    if (!*c->topic) TS_NO("[kafka] topic must not be empty");
    if (c->pg_password_file && ts_check_secret_mode("[postgres] password_file", c->pg_password_file, why, len))
        return -1;
    if (!c->http_listen) return 0;
    char host[256];
    int port;
    if (ts_listen_parse(c->http_listen, host, sizeof host, &port))
        TS_NO("[http] listen must be host:port (port 0: any free port, logged at start)");
    if (!!c->http_tls_cert != !!c->http_tls_key) TS_NO("[http] tls_cert and tls_key go together");
    if (!ts_is_loopback(host) && (!c->http_tls_cert || !c->http_token_file))
        TS_NO("[http] off loopback (%s) tls_cert, tls_key and token_file are required", host);
    if (c->http_tls_key && ts_check_secret_mode("[http] tls_key", c->http_tls_key, why, len)) return -1;
    if (c->http_token_file && ts_check_secret_mode("[http] token_file", c->http_token_file, why, len)) return -1;
    return 0;
#undef TS_NO
}

int ts_config_load(ts_config *c, const char *path, char *err, size_t err_len)
{
    memset(c, 0, sizeof *c);
    c->path = strdup(path);
    for (size_t i = 0; i < TS_N_KEYS; i++)
        if (ts_keys[i].def) ts_set_key(c, &ts_keys[i], ts_keys[i].def, err, err_len);
    FILE *f = fopen(path, "r");
    if (!f) {
        snprintf(err, err_len, "%s: %s", path, strerror(errno));
        goto fail;
    }
    ts_parse p = {.c = c, .probe = rd_kafka_conf_new()};
    ts_reader r = {f, 0, &p};
    ts_current_reader = &r;
    int rc = ini_parse_stream(ts_read_line, &r, ts_ini_handler, &p);
    ts_current_reader = NULL;
    fclose(f);
    rd_kafka_conf_destroy(p.probe);
    if (rc != 0) {
        snprintf(err, err_len, "%s:%d: %s", path, rc, p.why[0] ? p.why : "syntax error");
        goto fail;
    }
    char why[400] = "";
    if (ts_config_check(c, why, sizeof why)) {
        snprintf(err, err_len, "%s: %s", path, why);
        goto fail;
    }
    return 0;
fail:
    ts_config_free(c);
    return -1;
}

void ts_config_free(ts_config *c)
{
    for (size_t i = 0; i < TS_N_KEYS; i++)
        if (ts_keys[i].type == TS_KEY_STR) free(*ts_str_field(c, &ts_keys[i]));
    for (int i = 0; i < c->n_rdkafka; i++) {
        free(c->rdkafka[i].key);
        free(c->rdkafka[i].value);
    }
    free(c->rdkafka);
    free(c->path);
    memset(c, 0, sizeof *c);
}

void ts_config_print(const ts_config *c, FILE *out)
{
    const char *section = "";
    for (size_t i = 0; i < TS_N_KEYS; i++) {
        const ts_key *k = &ts_keys[i];
        if (strcmp(section, k->section)) {
            fprintf(out, "%s[%s]\n", i ? "\n" : "", k->section);
            section = k->section;
        }
        fprintf(out, "# %s", k->desc);
        if (k->type == TS_KEY_INT) fprintf(out, " (%ld..%ld)", k->min, k->max);
        fprintf(out, "\n");
        if (k->type == TS_KEY_INT) fprintf(out, "%s = %ld\n", k->name, *ts_int_field((ts_config *)c, k));
        else if (*ts_str_field((ts_config *)c, k)) fprintf(out, "%s = %s\n", k->name, *ts_str_field((ts_config *)c, k));
        else fprintf(out, "# %s = (unset)\n", k->name);
        if (strcmp(k->section, "kafka") == 0 && (i + 1 == TS_N_KEYS || strcmp(ts_keys[i + 1].section, "kafka")))
            for (int j = 0; j < c->n_rdkafka; j++)
                fprintf(out, "%s = %s\n", c->rdkafka[j].key, c->rdkafka[j].value);
    }
}

int ts_config_secret(const char *path, char *buf, size_t len, char *err, size_t err_len)
{
    if (ts_check_secret_mode("secret file", path, err, err_len)) return -1;
    FILE *f = fopen(path, "r");
    if (!f || !fgets(buf, (int)len, f)) {
        snprintf(err, err_len, "secret file %s: cannot read a line", path);
        if (f) fclose(f);
        return -1;
    }
    fclose(f);
    buf[strcspn(buf, "\r\n")] = '\0';
    if (!buf[0]) {
        snprintf(err, err_len, "secret file %s: empty first line", path);
        return -1;
    }
    return 0;
}

int ts_listen_parse(const char *s, char *host, size_t host_len, int *port)
{
    const char *colon = strrchr(s, ':');
    if (!colon || colon == s) return -1;
    char *end;
    long p = strtol(colon + 1, &end, 10);
    if (end == colon + 1 || *end || p < 0 || p > 65535) return -1;
    size_t hl = (size_t)(colon - s);
    if (s[0] == '[' && hl > 2 && s[hl - 1] == ']') s++, hl -= 2;
    if (hl >= host_len) return -1;
    memcpy(host, s, hl);
    host[hl] = '\0';
    *port = (int)p;
    return 0;
}

int ts_is_loopback(const char *host)
{
    if (strcmp(host, "localhost") == 0) return 1;
    struct in_addr a4;
    if (inet_pton(AF_INET, host, &a4) == 1) return (ntohl(a4.s_addr) >> 24) == 127;
    struct in6_addr a6;
    if (inet_pton(AF_INET6, host, &a6) == 1) return IN6_IS_ADDR_LOOPBACK(&a6);
    return 0;
}
