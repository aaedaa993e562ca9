/* pv_http.c - provisiond's HTTP/JSON API (pv_http.h).
 *
 * Every request body is read in full (up to max_body) before anything is
 * decided; a malformed request gets a 4xx with a reason and writes nothing.
 * With TLS, only a client whose certificate chains to client_ca is served:
 * libmicrohttpd asks GnuTLS for the client certificate, and each request
 * checks the verification result before it is looked at. */
#include "pv_http.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <gnutls/gnutls.h>
#include <inttypes.h>
#include <jansson.h>
#include <microhttpd.h>
#include <netdb.h>
#include <openssl/crypto.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "pv_ident.h"

struct pv_server {
    struct MHD_Daemon *d;
    const pv_config *cfg;
    pv_ledger *ledger;
    const pv_ca *ca;
    char *tls_cert, *tls_key, *client_ca; /* PEM, kept alive for MHD */
    int port;
};

typedef struct pv_conn {
    char *body;
    size_t len;
    int too_big;
} pv_conn;

static char *pv_read_file(const char *path)
{
    FILE *f = fopen(path, "r");
    if (!f) return NULL;
    char *buf = NULL;
    size_t len = 0, cap = 0, n;
    char tmp[4096];
    while ((n = fread(tmp, 1, sizeof tmp, f)) > 0) {
        if (len + n + 1 > cap) {
            cap = (len + n + 1) * 2;
            char *nb = realloc(buf, cap);
            if (!nb) {
                free(buf);
                fclose(f);
                return NULL;
            }
            buf = nb;
        }
        memcpy(buf + len, tmp, n);
        len += n;
    }
    fclose(f);
    if (!buf) buf = calloc(1, 1);
    else buf[len] = 0;
    return buf;
}

static enum MHD_Result pv_send(struct MHD_Connection *c, unsigned code, json_t *body)
{
    char *text = json_dumps(body, JSON_COMPACT);
    json_decref(body);
    if (!text) return MHD_NO;
    size_t len = strlen(text);
    struct MHD_Response *r = MHD_create_response_from_buffer(len, text, MHD_RESPMEM_MUST_COPY);
    /* The text may hold a private key: wipe our copy (MHD's is freed with
     * the response, after it is sent). */
    OPENSSL_cleanse(text, len);
    free(text);
    if (!r) return MHD_NO;
    MHD_add_response_header(r, "Content-Type", "application/json");
    MHD_add_response_header(r, "Cache-Control", "no-store");
    enum MHD_Result ok = MHD_queue_response(c, code, r);
    MHD_destroy_response(r);
    return ok;
}

static enum MHD_Result pv_error(struct MHD_Connection *c, unsigned code, const char *reason)
{
    return pv_send(c, code, json_pack("{s:s}", "error", reason));
}

/* The ids a request names: 1..64 characters of [A-Za-z0-9._:/-], as the agent
 * accepts for order and board ids. */
static int pv_id_ok(const char *s)
{
    size_t n = strlen(s);
    if (n < 1 || n > 64) return 0;
    for (; *s; s++)
        if (!isalnum((unsigned char)*s) && !strchr("._:/-", *s)) return 0;
    return 1;
}

static json_t *pv_identity_json(const pv_identity *id, const pv_ca *ca)
{
    json_t *macs = json_array();
    for (int i = 0; i < id->mac_count; i++) {
        char m[18];
        pv_mac_format(id->mac_first + (uint64_t)i, m);
        json_array_append_new(macs, json_string(m));
    }
    json_t *o = json_pack("{s:s,s:s,s:s,s:o,s:s,s:s,s:s,s:s,s:s,s:s,s:b}", "product", id->product, "board_id",
                          id->board_id, "serial", id->serial, "macs", macs, "device_id", id->device_id,
                          "certificate", id->certificate, "certificate_serial", id->cert_serial, "ca_chain",
                          pv_ca_pem(ca), "issued_at", id->issued_at, "factory_code", id->factory_code, "reused",
                          id->reused);
    if (o && id->private_key) json_object_set_new(o, "private_key", json_string(id->private_key));
    return o;
}

static enum MHD_Result pv_post_unit(pv_server *s, struct MHD_Connection *c, pv_conn *pc)
{
    json_error_t je;
    json_t *in = json_loadb(pc->body ? pc->body : "", pc->len, JSON_REJECT_DUPLICATES, &je);
    if (!in || !json_is_object(in)) {
        char reason[256];
        snprintf(reason, sizeof reason, "body is not a JSON object: %s", in ? "not an object" : je.text);
        json_decref(in);
        return pv_error(c, MHD_HTTP_BAD_REQUEST, reason);
    }
    static const char *const fields[] = {"product", "board_id", "lot_id", "order_id", "station", "csr"};
    const char *v[6] = {0};
    char reason[320] = "";
    const char *key;
    json_t *val;
    json_object_foreach(in, key, val) {
        size_t i = 0;
        while (i < 6 && strcmp(key, fields[i])) i++;
        if (i == 6) {
            snprintf(reason, sizeof reason, "unknown field \"%.64s\"", key);
            break;
        }
        if (!json_is_string(val)) {
            snprintf(reason, sizeof reason, "field %s must be a string", key);
            break;
        }
        v[i] = json_string_value(val);
    }
    for (size_t i = 0; !*reason && i < 5; i++) {
        if (!v[i]) snprintf(reason, sizeof reason, "field %s is required", fields[i]);
        else if (!pv_id_ok(v[i]))
            snprintf(reason, sizeof reason, "field %s must be 1-64 characters of [A-Za-z0-9._:/-]", fields[i]);
    }
    const pv_product *prod = *reason ? NULL : pv_config_product(s->cfg, v[0]);
    if (!*reason && !prod) {
        snprintf(reason, sizeof reason, "unknown product \"%s\"", v[0]);
        json_decref(in);
        return pv_error(c, MHD_HTTP_NOT_FOUND, reason);
    }
    if (*reason) {
        json_decref(in);
        return pv_error(c, MHD_HTTP_BAD_REQUEST, reason);
    }
    pv_request req = {v[0], v[1], v[2], v[3], v[4], v[5]};
    pv_identity id;
    char err[256] = "";
    pv_status st = pv_ledger_issue(s->ledger, s->ca, prod, &req, &id, err, sizeof err);
    if (st != PV_OK)
        fprintf(stderr, "provisiond: %s %s/%s: %s\n", st == PV_INTERNAL ? "error for" : "refused", req.product,
                req.board_id, err);
    json_decref(in);
    switch (st) {
    case PV_OK: break;
    case PV_BAD_REQUEST: return pv_error(c, MHD_HTTP_BAD_REQUEST, err);
    case PV_NOT_FOUND: return pv_error(c, MHD_HTTP_NOT_FOUND, err);
    case PV_CONFLICT: return pv_error(c, MHD_HTTP_CONFLICT, err);
    case PV_BUSY: return pv_error(c, MHD_HTTP_SERVICE_UNAVAILABLE, err);
    default: return pv_error(c, MHD_HTTP_INTERNAL_SERVER_ERROR, err);
    }
    json_t *o = pv_identity_json(&id, s->ca);
    pv_identity_clear(&id);
    return o ? pv_send(c, id.reused ? MHD_HTTP_OK : MHD_HTTP_CREATED, o) : MHD_NO;
}

/* With TLS: 1 when the client presented a certificate that verifies against
 * client_ca. Without TLS (loopback only) every client is served. */
static int pv_client_ok(pv_server *s, struct MHD_Connection *c, char *why, size_t n)
{
    if (!s->tls_cert) return 1;
    /* A connection's client certificate is verified once; keep-alive
     * requests after that are served on the same verified session. */
    const union MHD_ConnectionInfo *sc = MHD_get_connection_info(c, MHD_CONNECTION_INFO_SOCKET_CONTEXT);
    int *verified = sc ? (int *)sc->socket_context : NULL;
    if (verified && *verified) return 1;
    const union MHD_ConnectionInfo *ci = MHD_get_connection_info(c, MHD_CONNECTION_INFO_GNUTLS_SESSION);
    if (!ci || !ci->tls_session) return snprintf(why, n, "no TLS session"), 0;
    gnutls_session_t tls = (gnutls_session_t)ci->tls_session;
    unsigned status = 0;
    int rc = gnutls_certificate_verify_peers2(tls, &status);
    if (rc == GNUTLS_E_NO_CERTIFICATE_FOUND || gnutls_certificate_get_peers(tls, NULL) == NULL)
        return snprintf(why, n, "a client certificate is required"), 0;
    if (rc < 0 || status != 0)
        return snprintf(why, n, "client certificate not issued by the station CA"), 0;
    if (verified) *verified = 1;
    return 1;
}

static void pv_conn_notify(void *cls, struct MHD_Connection *c, void **socket_context,
                           enum MHD_ConnectionNotificationCode code)
{
    if (code == MHD_CONNECTION_NOTIFY_STARTED) *socket_context = calloc(1, sizeof(int));
    else if (code == MHD_CONNECTION_NOTIFY_CLOSED) {
        free(*socket_context);
        *socket_context = NULL;
    }
}

static enum MHD_Result pv_handle(void *cls, struct MHD_Connection *c, const char *url, const char *method,
                                 const char *version, const char *upload_data, size_t *upload_size, void **ctx)
{
    pv_server *s = cls;
    pv_conn *pc = *ctx;
    if (!pc) { /* headers are in: decide what can be decided before the body */
        if (!(pc = calloc(1, sizeof *pc))) return MHD_NO;
        *ctx = pc;
        const char *cl = MHD_lookup_connection_value(c, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_LENGTH);
        if (cl && strtoull(cl, NULL, 10) > (unsigned long long)s->cfg->max_body) pc->too_big = 1;
        return MHD_YES;
    }
    if (*upload_size) { /* a piece of the body */
        if (!pc->too_big && pc->len + *upload_size <= (size_t)s->cfg->max_body) {
            char *nb = realloc(pc->body, pc->len + *upload_size + 1);
            if (!nb) return MHD_NO;
            pc->body = nb;
            memcpy(pc->body + pc->len, upload_data, *upload_size);
            pc->len += *upload_size;
            pc->body[pc->len] = 0;
        } else
            pc->too_big = 1;
        *upload_size = 0;
        return MHD_YES;
    }
    char why[128];
    if (!pv_client_ok(s, c, why, sizeof why)) return pv_error(c, MHD_HTTP_FORBIDDEN, why);
    if (pc->too_big) {
        char reason[96];
        snprintf(reason, sizeof reason, "body larger than %ld bytes", s->cfg->max_body);
        return pv_error(c, MHD_HTTP_CONTENT_TOO_LARGE, reason);
    }
    if (strcmp(url, "/v1/health") == 0) {
        if (strcmp(method, "GET")) return pv_error(c, MHD_HTTP_METHOD_NOT_ALLOWED, "use GET");
        return pv_send(c, MHD_HTTP_OK, json_pack("{s:s}", "status", "ok"));
    }
    if (strcmp(url, "/v1/units") == 0) {
        if (strcmp(method, "POST")) return pv_error(c, MHD_HTTP_METHOD_NOT_ALLOWED, "use POST");
        return pv_post_unit(s, c, pc);
    }
    if (strncmp(url, "/v1/units/", 10) == 0) {
        if (strcmp(method, "GET")) return pv_error(c, MHD_HTTP_METHOD_NOT_ALLOWED, "use GET");
        pv_identity id;
        char err[160];
        pv_status st = pv_ledger_get(s->ledger, s->cfg, url + 10, &id, err, sizeof err);
        if (st != PV_OK) return pv_error(c, st == PV_NOT_FOUND ? MHD_HTTP_NOT_FOUND : MHD_HTTP_INTERNAL_SERVER_ERROR, err);
        json_t *o = pv_identity_json(&id, s->ca);
        pv_identity_clear(&id);
        return o ? pv_send(c, MHD_HTTP_OK, o) : MHD_NO;
    }
    return pv_error(c, MHD_HTTP_NOT_FOUND, "no such resource (try POST /v1/units, GET /v1/units/{serial}, GET /v1/health)");
}

static void pv_done(void *cls, struct MHD_Connection *c, void **ctx, enum MHD_RequestTerminationCode toe)
{
    pv_conn *pc = *ctx;
    if (!pc) return;
    if (pc->body) OPENSSL_cleanse(pc->body, pc->len);
    free(pc->body);
    free(pc);
    *ctx = NULL;
}

static void pv_mhd_log(void *cls, const char *fmt, va_list ap)
{
    fputs("provisiond: http: ", stderr);
    vfprintf(stderr, fmt, ap);
}

pv_server *pv_http_start(const pv_config *cfg, pv_ledger *ledger, const pv_ca *ca, char *err, size_t err_len)
{
    pv_server *s = calloc(1, sizeof *s);
    if (!s) return NULL;
    s->cfg = cfg;
    s->ledger = ledger;
    s->ca = ca;
    struct addrinfo hints = {0}, *ai = NULL;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_NUMERICSERV;
    char port[8];
    snprintf(port, sizeof port, "%d", cfg->listen_port);
    if (getaddrinfo(cfg->listen_host, port, &hints, &ai) != 0 || !ai) {
        snprintf(err, err_len, "listen: cannot resolve %s", cfg->listen_host);
        goto fail;
    }
    /* A thread per connection: an issuance blocks its thread until its group
     * commit, and in a fixed pool the stations whose connections landed on
     * the same thread (accept decides) would wait for each other. */
    unsigned flags =
        MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_THREAD_PER_CONNECTION | MHD_USE_POLL | MHD_USE_ERROR_LOG;
    if (ai->ai_family == AF_INET6) flags |= MHD_USE_IPv6;
    if (cfg->tls_cert) {
        if (!(s->tls_cert = pv_read_file(cfg->tls_cert)) || !(s->tls_key = pv_read_file(cfg->tls_key)) ||
            !(s->client_ca = pv_read_file(cfg->client_ca))) {
            snprintf(err, err_len, "cannot read tls_cert, tls_key or client_ca");
            goto fail;
        }
        flags |= MHD_USE_TLS;
    }
    struct MHD_OptionItem opts[] = {
        {MHD_OPTION_EXTERNAL_LOGGER, (intptr_t)pv_mhd_log, NULL},
        {MHD_OPTION_SOCK_ADDR, 0, ai->ai_addr},
        {MHD_OPTION_CONNECTION_TIMEOUT, 30, NULL},
        {MHD_OPTION_CONNECTION_LIMIT, 512, NULL},
        {MHD_OPTION_NOTIFY_COMPLETED, (intptr_t)pv_done, NULL},
        {MHD_OPTION_NOTIFY_CONNECTION, (intptr_t)pv_conn_notify, NULL},
        {s->tls_cert ? MHD_OPTION_HTTPS_MEM_CERT : MHD_OPTION_END, 0, s->tls_cert},
        {MHD_OPTION_HTTPS_MEM_KEY, 0, s->tls_key},
        {MHD_OPTION_HTTPS_MEM_TRUST, 0, s->client_ca},
        {MHD_OPTION_END, 0, NULL},
    };
    s->d = MHD_start_daemon(flags, 0, NULL, NULL, pv_handle, s, MHD_OPTION_ARRAY, opts, MHD_OPTION_END);
    freeaddrinfo(ai);
    ai = NULL;
    if (!s->d) {
        snprintf(err, err_len, "cannot listen on %s:%d: %s", cfg->listen_host, cfg->listen_port, strerror(errno));
        goto fail;
    }
    const union MHD_DaemonInfo *di = MHD_get_daemon_info(s->d, MHD_DAEMON_INFO_BIND_PORT);
    s->port = di ? di->port : cfg->listen_port;
    return s;
fail:
    if (ai) freeaddrinfo(ai);
    pv_http_stop(s);
    return NULL;
}

int pv_http_port(const pv_server *s) { return s->port; }

void pv_http_stop(pv_server *s)
{
    if (!s) return;
    if (s->d) MHD_stop_daemon(s->d);
    if (s->tls_key) OPENSSL_cleanse(s->tls_key, strlen(s->tls_key));
    free(s->tls_cert);
    free(s->tls_key);
    free(s->client_ca);
    free(s);
}
