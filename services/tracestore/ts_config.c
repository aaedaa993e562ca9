/* SPDX-License-Identifier: Apache-2.0 */
/* ts_config.c - tracestore's keys as conf_table.h tables, one per section,
 * the [kafka] pass-through to librdkafka, and the rules between keys that no
 * single row can say (ts_config.h). */
#include "ts_config.h"

#include <arpa/inet.h>
#include <errno.h>
#include <librdkafka/rdkafka.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "conf_table.h"

#define TS_STR(key, dflt, field, description) \
    {.name = key, .type = CONF_STRING, .def = dflt, .desc = description, CONF_AT(ts_config, field)}
#define TS_INT(key, dflt, lo, hi, field, description)                                                     \
    {.name = key, .type = CONF_INT, .def = #dflt, .min = lo, .max = hi, .desc = description, \
     CONF_AT(ts_config, field)}
#define TS_SECRET(key, field, content, description)                                                   \
    {.name = key, .type = CONF_SECRET_FILE, .desc = description, CONF_AT(ts_config, field), \
     .secret_at = offsetof(ts_config, content)}

static const conf_key ts_postgres_keys[] = {
    TS_STR("conninfo", "host=127.0.0.1 dbname=tracestore", pg_conninfo,
           "libpq connection string without a password (see password_file)"),
    TS_SECRET("password_file", pg_password_file, pg_password,
              "file holding the database password on its first line, mode 0600; unset: none"),
    /* Keys of their own as well as conninfo's: a conninfo holding three
     * paths outgrows the 199 characters libinih reads of a line. */
    TS_STR("sslrootcert", NULL, pg_sslrootcert,
           "PEM CA certificate(s) the server's certificate must chain to (libpq sslrootcert); unset: conninfo's"),
    TS_STR("sslcert", NULL, pg_sslcert, "PEM client certificate (libpq sslcert); unset: conninfo's"),
    TS_STR("sslkey", NULL, pg_sslkey, "PEM client private key, mode 0600 (libpq sslkey); unset: conninfo's"),
    {0},
};

static const conf_key ts_kafka_keys[] = {
    TS_STR("topic", "lineagent.trace.v1", topic, "the agents' trace topic (TraceEvent values)"),
    TS_STR("field_topic", "lineagent.field.v1", field_topic,
           "the OTA server's FieldFirmwareReport topic; empty: not consumed"),
    TS_STR("group", "lineagent-tracestore", group, "consumer group; instances in one group share partitions"),
    TS_INT("batch_max", 20000, 1, 100000, batch_max,
           "records stored in one database transaction at most (two batches in memory: one stored, one filling)"),
    TS_INT("batch_wait_ms", 100, 1, 60000, batch_wait_ms,
           "a batch is stored at the latest this long after its first record"),
    {0},
};

static const conf_key ts_http_keys[] = {
    TS_STR("listen", NULL, http_listen, "host:port of the read-only HTTP API; unset: no HTTP"),
    TS_STR("tls_cert", NULL, http_tls_cert, "PEM certificate (chain) for HTTPS; required off loopback"),
    TS_STR("tls_key", NULL, http_tls_key, "PEM private key for HTTPS, mode 0600"),
    TS_SECRET("token_file", http_token_file, http_token,
              "file with the bearer token clients must send, mode 0600; required off loopback"),
    TS_INT("stale_after_s", 300, 5, 86400, http_stale_after_s,
           "the web page shows a line as stale when none of its events was stored for this long"),
    {0},
};

static const char *const ts_log_levels[] = {"error", "warn", "info", "debug", NULL};

static const conf_key ts_tracestore_keys[] = {
    {.name = "log_level", .type = CONF_ENUM, .def = "info", .choices = ts_log_levels, .desc = "error, warn, info or debug",
     CONF_AT(ts_config, log_level)},
    TS_INT("retry_max_ms", 10000, 100, 600000, retry_max_ms,
           "longest wait between retries while PostgreSQL is unreachable (backoff doubles up to it)"),
    TS_INT("gap_timeout_s", 300, 1, 2592000, gap_timeout_s,
           "a seq gap still open after this long is reported (log, audit, /metrics)"),
    TS_INT("unit_timeout_s", 3600, 1, 2592000, unit_timeout_s,
           "audit: a unit seen this long ago without an outcome is a finding"),
    {0},
};
#undef TS_STR
#undef TS_INT
#undef TS_SECRET

enum { TS_KAFKA = 1, TS_N_SECTIONS = 4 };
static const struct {
    const char *name;
    const conf_key *keys;
} ts_sections[TS_N_SECTIONS] = {
    {"postgres", ts_postgres_keys}, [TS_KAFKA] = {"kafka", ts_kafka_keys}, {"http", ts_http_keys},
    {"tracestore", ts_tracestore_keys}};

/* Set by tracestore itself: its exactly-once effect depends on them. */
static const char *const ts_kafka_reserved[] = {"group.id", "enable.auto.commit", "enable.auto.offset.store"};

typedef struct ts_parse {
    ts_config *c;
    conf_section sec[TS_N_SECTIONS];
    rd_kafka_conf_t *probe; /* librdkafka checks passed-through keys */
} ts_parse;

/* A key with a dot in [kafka]: librdkafka's, kept in file order. */
static int ts_rdkafka_key(ts_parse *p, const char *key, const char *value, int line, char *err, size_t err_len)
{
    for (size_t i = 0; i < sizeof ts_kafka_reserved / sizeof *ts_kafka_reserved; i++)
        if (strcmp(key, ts_kafka_reserved[i]) == 0)
            return snprintf(err, err_len,
                            "%s is set by tracestore (offsets live in PostgreSQL; the group is [kafka] group)", key),
                   -1;
    char why[256];
    if (rd_kafka_conf_set(p->probe, key, value, why, sizeof why) != RD_KAFKA_CONF_OK)
        return snprintf(err, err_len, "librdkafka: %s", why), -1;
    ts_config *c = p->c;
    c->rdkafka = realloc(c->rdkafka, (size_t)(c->n_rdkafka + 1) * sizeof *c->rdkafka);
    c->rdkafka[c->n_rdkafka++] = (ts_kv){strdup(key), strdup(value), line};
    return 0;
}

static int ts_on_key(void *user, const char *section, const char *key, const char *value, int line, char *err,
                     size_t err_len)
{
    ts_parse *p = user;
    for (int i = 0; i < TS_N_SECTIONS; i++) {
        if (strcmp(section, ts_sections[i].name)) continue;
        int rc = conf_set(&p->sec[i], key, value, err, err_len);
        if (rc == CONF_UNKNOWN && i == TS_KAFKA && strchr(key, '.'))
            return ts_rdkafka_key(p, key, value, line, err, err_len);
        return rc ? -1 : 0;
    }
    return snprintf(err, err_len, "unknown section [%s]", section), -1;
}

static int ts_check_secret_mode(const char *what, const char *path, char *err, size_t err_len)
{
    struct stat st;
    if (stat(path, &st) != 0) return snprintf(err, err_len, "%s %s: %s", what, path, strerror(errno)), -1;
    if (st.st_mode & 077)
        return snprintf(err, err_len, "%s %s is readable by group or others (chmod 600 it)", what, path), -1;
    return 0;
}

/* A secret file given: mode 0600 and a non-empty first line. */
static int ts_check_secret(const char *what, const char *path, const char *content, char *err, size_t err_len)
{
    if (!path) return 0;
    if (ts_check_secret_mode(what, path, err, err_len)) return -1;
    if (!*content) return snprintf(err, err_len, "%s %s: empty first line", what, path), -1;
    return 0;
}

/* Rules between keys, after the whole file is read. */
static int ts_config_check(const ts_config *c, char *why, size_t len)
{
#define TS_NO(...) return snprintf(why, len, __VA_ARGS__), -1
    if (strstr(c->pg_conninfo, "password")) TS_NO("[postgres] conninfo must not hold a password: use password_file");
    if (!*c->topic) TS_NO("[kafka] topic must not be empty");
    if (ts_check_secret("[postgres] password_file", c->pg_password_file, c->pg_password, why, len)) return -1;
    if (!!c->pg_sslcert != !!c->pg_sslkey) TS_NO("[postgres] sslcert and sslkey go together");
    if (c->pg_sslkey && ts_check_secret_mode("[postgres] sslkey", c->pg_sslkey, why, len)) return -1;
    if (!c->http_listen) return 0;
    char host[256];
    int port;
    if (ts_listen_parse(c->http_listen, host, sizeof host, &port))
        TS_NO("[http] listen must be host:port (port 0: any free port, logged at start)");
    if (!!c->http_tls_cert != !!c->http_tls_key) TS_NO("[http] tls_cert and tls_key go together");
    if (!ts_is_loopback(host) && (!c->http_tls_cert || !c->http_token_file))
        TS_NO("[http] off loopback (%s) tls_cert, tls_key and token_file are required", host);
    if (c->http_tls_key && ts_check_secret_mode("[http] tls_key", c->http_tls_key, why, len)) return -1;
    if (ts_check_secret("[http] token_file", c->http_token_file, c->http_token, why, len)) return -1;
    return 0;
#undef TS_NO
}

int ts_config_load(ts_config *c, const char *path, char *err, size_t err_len)
{
    memset(c, 0, sizeof *c);
    c->path = strdup(path);
    ts_parse p = {.c = c};
    for (int i = 0; i < TS_N_SECTIONS; i++)
        if (conf_init(&p.sec[i], ts_sections[i].name, "", ts_sections[i].keys, c, err, err_len)) goto fail;
    p.probe = rd_kafka_conf_new();
    int rc = conf_parse_file(path, ts_on_key, &p, err, err_len);
    rd_kafka_conf_destroy(p.probe);
    char why[400] = "";
    for (int i = 0; rc == 0 && i < TS_N_SECTIONS; i++)
        if (conf_done(&p.sec[i], why, sizeof why)) rc = -1;
    if (rc == 0 && ts_config_check(c, why, sizeof why)) rc = -1;
    if (rc == 0) return 0;
    if (why[0]) snprintf(err, err_len, "%s: %s", path, why);
fail:
    ts_config_free(c);
    return -1;
}

void ts_config_free(ts_config *c)
{
    for (int i = 0; i < TS_N_SECTIONS; i++) conf_free(ts_sections[i].keys, c);
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
    for (int i = 0; i < TS_N_SECTIONS; i++) {
        fprintf(out, "%s[%s]\n", i ? "\n" : "", ts_sections[i].name);
        conf_section s = {ts_sections[i].name, "", ts_sections[i].keys, (void *)c, UINT64_MAX};
        conf_print(&s, out);
        for (int j = 0; i == TS_KAFKA && j < c->n_rdkafka; j++)
            fprintf(out, "%s = %s\n", c->rdkafka[j].key, c->rdkafka[j].value);
    }
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
