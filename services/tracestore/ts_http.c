/* SPDX-License-Identifier: Apache-2.0 */
/* ts_http.c - routes, authentication and TLS of the HTTP API (ts_http.h).
 * A thread per connection (the web page's live feed holds one open), up to
 * TS_HTTP_MAX_CONNECTIONS; requests share one database connection under a
 * lock, as answers are single indexed queries. */
#include "ts_http.h"

#include <jansson.h>
#include <libpq-fe.h>
#include <microhttpd.h>
#include <netdb.h>
#include <openssl/crypto.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "ts_audit.h"
#include "ts_db.h"
#include "ts_log.h"
#include "ts_metrics.h"
#include "ts_query.h"
#include "ts_web.h"
#include "tls_floor.h"

#define TS_HTTP_CAPS 4
#define TS_HTTP_MAX_CONNECTIONS 128
#define TS_HTTP_TOKEN_COOKIE "tracestore_token"

struct ts_http {
    struct MHD_Daemon *d;
    const ts_config *cfg;
    PGconn *db;
    pthread_mutex_t db_lock; /* db, across connection threads */
    ts_web *web;
    char token[256];
    char *cert, *key; /* PEM, kept alive for MHD */
};

typedef struct ts_reply {
    unsigned status;
    char *body; /* malloc'd */
    const char *type;
    struct MHD_Response *resp; /* instead of body: a ready response (files, streams) */
} ts_reply;

typedef ts_reply (*ts_handler)(ts_http *h, struct MHD_Connection *c, char **caps);

static ts_reply ts_json_reply(unsigned status, json_t *v)
{
    ts_reply r = {status, json_dumps(v, JSON_COMPACT | JSON_PRESERVE_ORDER), "application/json", NULL};
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
    int rc = db ? ts_query_unit_any(db, caps[0], &v, err, sizeof err) : -1;
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

/* A CSV field, quoted when it holds a separator, quote or line break. */
static void ts_csv_field(FILE *f, const char *v, int last)
{
    if (!v) v = "";
    if (strpbrk(v, ",\"\r\n")) {
        fputc('"', f);
        for (; *v; v++) {
            if (*v == '"') fputc('"', f);
            fputc(*v, f);
        }
        fputc('"', f);
    } else {
        fputs(v, f);
    }
    fputs(last ? "\r\n" : ",", f);
}

/* The recall scope as CSV (RFC 4180), one unit a row. */
static ts_reply ts_csv_reply(json_t *v)
{
    static const char *const cols[] = {"serial", "boardId", "lot", "product", "sha256"};
    enum { NCOLS = sizeof cols / sizeof cols[0] };
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    if (!f) return json_decref(v), ts_error_reply(500, "out of memory");
    for (int i = 0; i < NCOLS; i++) ts_csv_field(f, cols[i], i == NCOLS - 1);
    size_t i;
    json_t *u;
    json_array_foreach(json_object_get(v, "units"), i, u)
        for (int k = 0; k < NCOLS; k++) ts_csv_field(f, json_string_value(json_object_get(u, cols[k])), k == NCOLS - 1);
    fclose(f);
    json_decref(v);
    return (ts_reply){200, buf, "text/csv; charset=utf-8", NULL};
}

/* ?product=P narrows to a product, ?current=1 asks what units run now,
 * ?format=csv answers as CSV (the recall list a spreadsheet opens). */
static ts_reply ts_h_firmware(ts_http *h, struct MHD_Connection *c, char **caps)
{
    const char *product = MHD_lookup_connection_value(c, MHD_GET_ARGUMENT_KIND, "product");
    const char *current = MHD_lookup_connection_value(c, MHD_GET_ARGUMENT_KIND, "current");
    PGconn *db = ts_http_db(h);
    char err[512] = "unreachable";
    json_t *v = NULL;
    const char *format = MHD_lookup_connection_value(c, MHD_GET_ARGUMENT_KIND, "format");
    int rc = db ? ts_query_find(db, caps[0], product, current && strcmp(current, "1") == 0, &v, err, sizeof err)
                : -1;
    if (rc == 0 && format && strcmp(format, "csv") == 0) return ts_csv_reply(v);
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
    return (ts_reply){200, ts_metrics_render(gaps), "text/plain; version=0.0.4", NULL};
}

static ts_reply ts_h_lines(ts_http *h, struct MHD_Connection *c, char **caps)
{
    PGconn *db = ts_http_db(h);
    char err[512] = "unreachable";
    json_t *v = NULL;
    int rc = db ? ts_query_lines(db, h->cfg->http_stale_after_s, &v, err, sizeof err) : -1;
    return ts_answer(rc, v, "no lines", err);
}

static ts_reply ts_lot_part_reply(ts_http *h, ts_lot_part part, const char *lot)
{
    PGconn *db = ts_http_db(h);
    char err[512] = "unreachable";
    json_t *v = NULL;
    int rc = db ? ts_query_lot_part(db, part, lot, &v, err, sizeof err) : -1;
    return ts_answer(rc, v, "no such lot", err);
}

static ts_reply ts_h_lot_boards(ts_http *h, struct MHD_Connection *c, char **caps)
{
    return ts_lot_part_reply(h, TS_LOT_BOARDS, caps[0]);
}

static ts_reply ts_h_lot_failures(ts_http *h, struct MHD_Connection *c, char **caps)
{
    return ts_lot_part_reply(h, TS_LOT_FAILURES, caps[0]);
}

static ts_reply ts_h_lot_measurements(ts_http *h, struct MHD_Connection *c, char **caps)
{
    return ts_lot_part_reply(h, TS_LOT_MEASUREMENTS, caps[0]);
}

static ts_reply ts_h_audit(ts_http *h, struct MHD_Connection *c, char **caps)
{
    PGconn *db = ts_http_db(h);
    char err[512] = "unreachable";
    json_t *v = NULL;
    int rc = db ? ts_audit(db, h->cfg->unit_timeout_s, h->cfg->gap_timeout_s, &v, err, sizeof err) : -1;
    return ts_answer(rc, v, "no audit", err);
}

static ts_reply ts_h_stream(ts_http *h, struct MHD_Connection *c, char **caps)
{
    struct MHD_Response *r = h->web ? ts_web_stream(h->web) : NULL;
    return r ? (ts_reply){200, NULL, NULL, r} : ts_error_reply(503, "too many live pages open");
}

/* The page's files: revalidated by ETag (they change with the binary), so
 * a reload after an upgrade never runs a stale script. */
static ts_reply ts_h_asset(ts_http *h, struct MHD_Connection *c, char **caps)
{
    char path[64];
    snprintf(path, sizeof path, "/%s", caps[0] ? caps[0] : "");
    const ts_web_asset *a = ts_web_find(path);
    if (!a) return ts_error_reply(404, "no such resource");
    const char *inm = MHD_lookup_connection_value(c, MHD_HEADER_KIND, MHD_HTTP_HEADER_IF_NONE_MATCH);
    int same = inm && strcmp(inm, a->etag) == 0;
    struct MHD_Response *r =
        MHD_create_response_from_buffer(same ? 0 : a->len, same ? NULL : (void *)a->data, MHD_RESPMEM_PERSISTENT);
    if (!r) return ts_error_reply(500, "out of memory");
    MHD_add_response_header(r, "Content-Type", a->type);
    MHD_add_response_header(r, "ETag", a->etag);
    MHD_add_response_header(r, "Cache-Control", "no-cache");
    MHD_add_response_header(r, "X-Content-Type-Options", "nosniff");
    MHD_add_response_header(r, "Content-Security-Policy",
                            "default-src 'self'; img-src 'self' data:; style-src 'self' 'unsafe-inline'");
    return (ts_reply){same ? MHD_HTTP_NOT_MODIFIED : 200, NULL, NULL, r};
}

/* The routes; '*' stands for one path segment, handed to the handler. */
static const struct ts_route {
    const char *method, *pattern;
    ts_handler fn;
} ts_routes[] = {
    {"GET", "/", ts_h_asset},
    {"GET", "/v1/lines", ts_h_lines},
    {"GET", "/v1/stream", ts_h_stream},
    {"GET", "/v1/units/*", ts_h_unit},
    {"GET", "/v1/lots/*", ts_h_lot},
    {"GET", "/v1/lots/*/boards", ts_h_lot_boards},
    {"GET", "/v1/lots/*/failures", ts_h_lot_failures},
    {"GET", "/v1/lots/*/measurements", ts_h_lot_measurements},
    {"GET", "/v1/audit", ts_h_audit},
    {"GET", "/v1/firmware/*/units", ts_h_firmware},
    {"GET", "/v1/health", ts_h_health},
    {"GET", "/metrics", ts_h_metrics},
    {"GET", "/*", ts_h_asset}, /* last: any other one-segment path is a file or 404 */
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

static int ts_token_ok(ts_http *h, const char *given)
{
    size_t tl = strlen(h->token);
    return given && strlen(given) == tl && CRYPTO_memcmp(given, h->token, tl) == 0;
}

/* A script sends the token as a bearer token; a browser, which cannot add
 * headers to page loads or EventSource, as the cookie ts_login set. */
static int ts_authorized(ts_http *h, struct MHD_Connection *c)
{
    if (!h->token[0]) return 1;
    const char *auth = MHD_lookup_connection_value(c, MHD_HEADER_KIND, MHD_HTTP_HEADER_AUTHORIZATION);
    if (auth && strncmp(auth, "Bearer ", 7) == 0 && ts_token_ok(h, auth + 7)) return 1;
    return ts_token_ok(h, MHD_lookup_connection_value(c, MHD_COOKIE_KIND, TS_HTTP_TOKEN_COOKIE));
}

/* GET /?token=T with the right token: the cookie for the browser, and a
 * redirect that takes the token out of the address bar and history. */
static ts_reply ts_login(ts_http *h, struct MHD_Connection *c, const char *token)
{
    if (!h->token[0] || !ts_token_ok(h, token)) return ts_error_reply(401, "a valid token is required");
    struct MHD_Response *r = MHD_create_response_from_buffer(0, NULL, MHD_RESPMEM_PERSISTENT);
    if (!r) return ts_error_reply(500, "out of memory");
    char cookie[400];
    snprintf(cookie, sizeof cookie, TS_HTTP_TOKEN_COOKIE "=%s; Path=/; HttpOnly; SameSite=Strict%s", h->token,
             h->cert ? "; Secure" : "");
    MHD_add_response_header(r, "Set-Cookie", cookie);
    MHD_add_response_header(r, "Location", "/");
    MHD_add_response_header(r, "Cache-Control", "no-store");
    return (ts_reply){303, NULL, NULL, r};
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
    char buf[1024], *caps[TS_HTTP_CAPS] = {0};
    const struct ts_route *route = NULL;
    int path_known = 0;
    for (size_t i = 0; i < sizeof ts_routes / sizeof *ts_routes && !route; i++)
        if (ts_match(ts_routes[i].pattern, url, buf, sizeof buf, caps)) {
            path_known = 1;
            if (strcmp(method, ts_routes[i].method) == 0) route = &ts_routes[i];
        }
    const char *login = strcmp(url, "/") == 0 ? MHD_lookup_connection_value(c, MHD_GET_ARGUMENT_KIND, "token") : NULL;
    if (login) r = ts_login(h, c, login);
    else if (!ts_authorized(h, c)) r = ts_error_reply(401, "a valid bearer token is required");
    else if (route) {
        pthread_mutex_lock(&h->db_lock);
        r = route->fn(h, c, caps);
        pthread_mutex_unlock(&h->db_lock);
    } else r = ts_error_reply(path_known ? 405 : 404, path_known ? "method not allowed" : "no such resource");
    struct MHD_Response *resp = r.resp;
    if (!resp) {
        if (!r.body) return MHD_NO;
        resp = MHD_create_response_from_buffer(strlen(r.body), r.body, MHD_RESPMEM_MUST_FREE);
        if (!resp) {
            free(r.body);
            return MHD_NO;
        }
        MHD_add_response_header(resp, "Content-Type", r.type);
    }
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

/* libmicrohttpd hands us its own printf format. */
__attribute__((format(printf, 2, 0))) static void ts_mhd_log(void *cls, const char *fmt, va_list ap)
{
    char msg[512];
    vsnprintf(msg, sizeof msg, fmt, ap);
    msg[strcspn(msg, "\n")] = '\0';
    /* A page closed while its live feed was open is how every feed ends. */
    if (strstr(msg, "/v1/stream")) ts_debug("http: %s", msg);
    else ts_warn("http: %s", msg);
}

ts_http *ts_http_start(const ts_config *cfg, char *err, size_t err_len)
{
    ts_http *h = calloc(1, sizeof *h);
    h->cfg = cfg;
    pthread_mutex_init(&h->db_lock, NULL);
    char host[256];
    int port = 0;
    ts_listen_parse(cfg->http_listen, host, sizeof host, &port); /* checked at load */
    snprintf(h->token, sizeof h->token, "%s", cfg->http_token ? cfg->http_token : ""); /* read at load */
    unsigned flags = MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_THREAD_PER_CONNECTION | MHD_USE_ERROR_LOG;
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
    /* TLS 1.2 is the floor (tls_floor.h). */
    struct MHD_OptionItem tls[] = {{MHD_OPTION_HTTPS_MEM_CERT, 0, h->cert},
                                   {MHD_OPTION_HTTPS_MEM_KEY, 0, h->key},
                                   {MHD_OPTION_HTTPS_PRIORITIES, 0, (void *)TLS_FLOOR_GNUTLS_PRIORITIES},
                                   {MHD_OPTION_END, 0, NULL}};
    h->d = MHD_start_daemon(flags, (uint16_t)port, NULL, NULL, ts_access, h, MHD_OPTION_EXTERNAL_LOGGER, ts_mhd_log,
                            NULL, MHD_OPTION_SOCK_ADDR, ai->ai_addr, MHD_OPTION_CONNECTION_TIMEOUT, 30u,
                            MHD_OPTION_CONNECTION_LIMIT, (unsigned)TS_HTTP_MAX_CONNECTIONS,
                            MHD_OPTION_ARRAY, h->cert ? tls : &tls[sizeof tls / sizeof *tls - 1], MHD_OPTION_END);
    freeaddrinfo(ai);
    if (!h->d) {
        snprintf(err, err_len, "[http] cannot listen on %s", cfg->http_listen);
        goto fail;
    }
    if (!(h->web = ts_web_start(cfg, err, err_len))) goto fail;
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
    ts_web_stop(h->web); /* ends the live streams, so the daemon can stop */
    if (h->d) MHD_stop_daemon(h->d);
    ts_web_free(h->web);
    PQfinish(h->db);
    pthread_mutex_destroy(&h->db_lock);
    free(h->cert);
    if (h->key) OPENSSL_cleanse(h->key, strlen(h->key));
    free(h->key);
    OPENSSL_cleanse(h->token, sizeof h->token);
    free(h);
}
