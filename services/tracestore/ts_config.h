/* SPDX-License-Identifier: Apache-2.0 */
/* ts_config.h - tracestore's INI configuration. Every key is declared once,
 * as a row of a conf_table.h table per section in ts_config.c (name, type,
 * default, range, description), and the common engine drives parsing,
 * defaults, range checks and printing. Unknown sections and keys are errors
 * reported as FILE:LINE. Keys with a dot in [kafka] go to librdkafka as they
 * are (checked by librdkafka at load). Secrets (database password, HTTP
 * token, TLS key) live in files of their own, mode 0600, named by the
 * config; never in it, in argv or a log. The password and the token are read
 * at load. */
#ifndef TS_CONFIG_H
#define TS_CONFIG_H

#include <stdio.h>

typedef struct ts_kv {
    char *key, *value;
    int line;
} ts_kv;

typedef struct ts_config {
    char *path;
    /* [postgres] */
    char *pg_conninfo, *pg_password_file;
    char *pg_password; /* password_file's first line; wiped when freed */
    char *pg_sslrootcert, *pg_sslcert, *pg_sslkey; /* applied over conninfo's */
    /* [kafka] */
    char *topic, *field_topic, *group;
    long batch_max, batch_wait_ms;
    ts_kv *rdkafka; /* librdkafka keys passed through */
    int n_rdkafka;
    /* [http] */
    char *http_listen, *http_tls_cert, *http_tls_key, *http_token_file;
    char *http_token; /* token_file's first line; wiped when freed */
    /* [tracestore] */
    const char *log_level; /* error, warn, info or debug */
    long retry_max_ms, gap_timeout_s, unit_timeout_s, http_stale_after_s;
} ts_config;

/* Loads and checks path; on error returns -1 with "FILE:LINE: why" in err. */
int ts_config_load(ts_config *c, const char *path, char *err, size_t err_len);
void ts_config_free(ts_config *c);

/* Every key with its effective value and description, as INI. */
void ts_config_print(const ts_config *c, FILE *out);

/* "host:port" or "[v6]:port" into host and port; -1 when malformed. */
int ts_listen_parse(const char *s, char *host, size_t host_len, int *port);
int ts_is_loopback(const char *host);

#endif
