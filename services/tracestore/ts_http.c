/* SPDX-License-Identifier: Apache-2.0 */
/* ts_http.c - routes, authentication and TLS of the HTTP API (ts_http.h).
 * One thread serves every request (MHD's internal polling thread), so the
 * database connection needs no lock; answers are single indexed queries. */
#include "ts_http.h"

#include <jansson.h>
#include <libpq-fe.h>
#include <microhttpd.h>
#include <netdb.h>
#include <openssl/crypto.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "ts_audit.h"
#include "ts_db.h"
#include "ts_log.h"
#include "ts_metrics.h"
#include "ts_query.h"

#define TS_HTTP_CAPS 4

struct ts_http {
    struct MHD_Daemon *d;
    const ts_config *cfg;
    PGconn *db;
    char token[256];
    char *cert, *key; /* PEM, kept alive for MHD */
};

typedef struct ts_reply {
    unsigned status;
    char *body; /* malloc'd */
    const char *type;
} ts_reply;

typedef ts_reply (*ts_handler)(ts_http *h, struct MHD_Connection *c, char **caps);

static ts_reply ts_json_reply(unsigned status, json_t *v)
{
    ts_reply r = {status, json_dumps(v, JSON_COMPACT | JSON_PRESERVE_ORDER), "application/json"};
    json_decref(v);
    return r;
}

static ts_reply ts_error_reply(unsigned status, const char *why)
{
    return ts_json_reply(status, json_pack("{s:s}", "error", why));
}

/* The connection, reconnected if it was lost; NULL when the database is
 * unreachable. */
static PGconn *ts_http_db(ts_http *h)
{
    if (h->db && PQstatus(h->db) != CONNECTION_OK) PQreset(h->db);
    if (h->db && PQstatus(h->db) == CONNECTION_OK) return h->db;
    PQfinish(h->db);
    char err[512];
    h->db = ts_db_connect(h->cfg, err, sizeof err);
    if (!h->db) ts_warn("http: PostgreSQL: %s", err);
    return h->db;
}

/* A query's outcome as a reply: 200 with the answer, 404, or 503. */
static ts_reply ts_answer(int rc, json_t *v, const char *what, const char *err)
{
    if (rc == 0) return ts_json_reply(200, v);
    if (rc == 1) return ts_error_reply(404, what);
    ts_warn("http: %s", err);
    return ts_error_reply(503, "database unavailable");
}

static ts_reply ts_h_unit(ts_http *h, struct MHD_Connection *c, char **caps)
{
    PGconn *db = ts_http_db(h);
    char err[512] = "unreachable";
    json_t *v = NULL;
    int rc = db ? ts_query_unit(db, caps[0], &v, err, sizeof err) : -1;
    return ts_answer(rc, v, "no such unit", err);
}

static ts_reply ts_h_lot(ts_http *h, struct MHD_Connection *c, char **caps)
{
    PGconn *db = ts_http_db(h);
    char err[512] = "unreachable";
    json_t *v = NULL;
    int rc = db ? ts_query_lot(db, caps[0], &v, err, sizeof err) : -1;
    return ts_answer(rc, v, "no such lot", err);
}

/* ?product=P narrows to a product, ?current=1 asks what units run now. */
static ts_reply ts_h_firmware(ts_http *h, struct MHD_Connection *c, char **caps)
{
    const char *product = MHD_lookup_connection_value(c, MHD_GET_ARGUMENT_KIND, "product");
    const char *current = MHD_lookup_connection_value(c, MHD_GET_ARGUMENT_KIND, "current");
    PGconn *db = ts_http_db(h);
    char err[512] = "unreachable";
    json_t *v = NULL;
    int rc = db ? ts_query_find(db, caps[0], product, current && strcmp(current, "1") == 0, &v, err, sizeof err)
                : -1;
    return ts_answer(rc, v, "no such firmware", err);
}

static ts_reply ts_h_health(ts_http *h, struct MHD_Connection *c, char **caps)
{
    PGconn *db = ts_http_db(h);
    char err[256];
    int db_ok = db && ts_db_exec(db, "SELECT 1", err, sizeof err) == 0;
    return ts_json_reply(db_ok ? 200 : 503,
                         json_pack("{s:s,s:b,s:b,s:I,s:I}", "status", db_ok ? "ok" : "degraded", "database", db_ok,
                                   "consumerDatabase", ts_metrics_db_up(), "stored",
                                   (json_int_t)ts_metrics_get(TS_M_STORED), "rejected",
                                   (json_int_t)ts_metrics_get(TS_M_REJECTED)));
}

static ts_reply ts_h_metrics(ts_http *h, struct MHD_Connection *c, char **caps)
{
    PGconn *db = ts_http_db(h);
    char err[512];
    long gaps = db ? ts_audit_gaps(db, h->cfg->gap_timeout_s, NULL, err, sizeof err) : -1;
    return (ts_reply){200, ts_metrics_render(gaps), "text/plain; version=0.0.4"};
}

/* The routes; '*' stands for one path segment, handed to the handler. */
static const struct ts_route {
    const char *method, *pattern;
    ts_handler fn;
} ts_routes[] = {
    {"GET", "/v1/units/*", ts_h_unit},
    {"GET", "/v1/lots/*", ts_h_lot},
    {"GET", "/v1/firmware/*/units", ts_h_firmware},
    {"GET", "/v1/health", ts_h_health},
    {"GET", "/metrics", ts_h_metrics},
};

/* Matches url against pattern segment by segment; captures point into buf. */
static int ts_match(const char *pattern, const char *url, char *buf, size_t len, char **caps)
{
    if (strlen(url) >= len) return 0;
    strcpy(buf, url);
    int n = 0;
    const char *p = pattern;
    char *u = buf;
    while (*p && *u) {
        if (*p == '*') {
            char *end = strchr(u, '/');
            if (end == u || n == TS_HTTP_CAPS) return 0;
            caps[n++] = u;
            p++;
            if (!end) return *p == '\0';
            if (*p != '/') return 0;
            *end = '\0';
            u = end + 1;
            p++;
        } else if (*p++ != *u++) return 0;
    }
    return *p == '\0' && *u == '\0';
}

static int ts_authorized(ts_http *h, struct MHD_Connection *c)
{
    if (!h->token[0]) return 1;
    const char *auth = MHD_lookup_connection_value(c, MHD_HEADER_KIND, MHD_HTTP_HEADER_AUTHORIZATION);
    size_t tl = strlen(h->token);
    return auth && strncmp(auth, "Bearer ", 7) == 0 && strlen(auth + 7) == tl && CRYPTO_memcmp(auth + 7, h->token, tl) == 0;
}

static enum MHD_Result ts_access(void *cls, struct MHD_Connection *c, const char *url, const char *method,
                                 const char *version, const char *upload, size_t *upload_len, void **state)
{
    ts_http *h = cls;
    if (!*state) { /* first call: headers only; a body is not wanted */
        *state = h;
        return MHD_YES;
    }
    if (*upload_len) {
        *upload_len = 0;
        return MHD_YES;
    }
    ts_reply r = {0};
    char buf[1024], *caps[TS_HTTP_CAPS];
    const struct ts_route *route = NULL;
    int path_known = 0;
    for (size_t i = 0; i < sizeof ts_routes / sizeof *ts_routes && !route; i++)
        if (ts_match(ts_routes[i].pattern, url, buf, sizeof buf, caps)) {
            path_known = 1;
            if (strcmp(method, ts_routes[i].method) == 0) route = &ts_routes[i];
        }
    if (!ts_authorized(h, c)) r = ts_error_reply(401, "a valid bearer token is required");
    else if (route) r = route->fn(h, c, caps);
    else r = ts_error_reply(path_known ? 405 : 404, path_known ? "method not allowed" : "no such resource");
    if (!r.body) return MHD_NO;
    struct MHD_Response *resp = MHD_create_response_from_buffer(strlen(r.body), r.body, MHD_RESPMEM_MUST_FREE);
    if (!resp) {
        free(r.body);
        return MHD_NO;
    }
    MHD_add_response_header(resp, "Content-Type", r.type);
    if (r.status == 401) MHD_add_response_header(resp, "WWW-Authenticate", "Bearer");
    enum MHD_Result ok = MHD_queue_response(c, r.status, resp);
    MHD_destroy_response(resp);
    return ok;
}

static char *ts_read_all(const char *path)
{
    FILE *f = fopen(path, "r");
    if (!f) return NULL;
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    rewind(f);
    char *buf = n >= 0 ? malloc((size_t)n + 1) : NULL;
    if (buf && fread(buf, 1, (size_t)n, f) != (size_t)n) {
        free(buf);
        buf = NULL;
    }
    if (buf) buf[n] = '\0';
    fclose(f);
    return buf;
}

static void ts_mhd_log(void *cls, const char *fmt, va_list ap)
{
    char msg[512];
    vsnprintf(msg, sizeof msg, fmt, ap);
    msg[strcspn(msg, "\n")] = '\0';
    ts_warn("http: %s", msg);
}

ts_http *ts_http_start(const ts_config *cfg, char *err, size_t err_len)
{
    ts_http *h = calloc(1, sizeof *h);
    h->cfg = cfg;
    char host[256];
    int port = 0;
    ts_listen_parse(cfg->http_listen, host, sizeof host, &port); /* checked at load */
    if (cfg->http_token_file && ts_config_secret(cfg->http_token_file, h->token, sizeof h->token, err, err_len))
        goto fail;
    unsigned flags = MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_ERROR_LOG;
    if (cfg->http_tls_cert) {
        h->cert = ts_read_all(cfg->http_tls_cert);
        h->key = ts_read_all(cfg->http_tls_key);
        if (!h->cert || !h->key) {
            snprintf(err, err_len, "[http] cannot read tls_cert or tls_key");
            goto fail;
        }
        flags |= MHD_USE_TLS;
    }
    struct addrinfo hints = {.ai_flags = AI_NUMERICSERV | AI_PASSIVE, .ai_socktype = SOCK_STREAM}, *ai = NULL;
    char ports[8];
    snprintf(ports, sizeof ports, "%d", port);
    int gai = getaddrinfo(host, ports, &hints, &ai);
    if (gai) {
        snprintf(err, err_len, "[http] listen %s: %s", cfg->http_listen, gai_strerror(gai));
        goto fail;
    }
    if (ai->ai_family == AF_INET6) flags |= MHD_USE_IPv6;
    struct MHD_OptionItem tls[] = {{MHD_OPTION_HTTPS_MEM_CERT, 0, h->cert},
                                   {MHD_OPTION_HTTPS_MEM_KEY, 0, h->key},
                                   {MHD_OPTION_END, 0, NULL}};
    h->d = MHD_start_daemon(flags, (uint16_t)port, NULL, NULL, ts_access, h, MHD_OPTION_EXTERNAL_LOGGER, ts_mhd_log,
                            NULL, MHD_OPTION_SOCK_ADDR, ai->ai_addr, MHD_OPTION_CONNECTION_TIMEOUT, 30u,
                            MHD_OPTION_ARRAY, h->cert ? tls : tls + 2, MHD_OPTION_END);
    freeaddrinfo(ai);
    if (!h->d) {
        snprintf(err, err_len, "[http] cannot listen on %s", cfg->http_listen);
        goto fail;
    }
    const union MHD_DaemonInfo *info = MHD_get_daemon_info(h->d, MHD_DAEMON_INFO_BIND_PORT);
    ts_info("http: listening on %s:%u%s", host, info ? info->port : (unsigned)port, h->cert ? " (TLS)" : "");
    return h;
fail:
    ts_http_stop(h);
    return NULL;
}

void ts_http_stop(ts_http *h)
{
    if (!h) return;
    if (h->d) MHD_stop_daemon(h->d);
    PQfinish(h->db);
    free(h->cert);
    if (h->key) OPENSSL_cleanse(h->key, strlen(h->key));
    free(h->key);
    OPENSSL_cleanse(h->token, sizeof h->token);
    free(h);
}
