/* SPDX-License-Identifier: Apache-2.0 */
/* pv_http.c - provisiond's HTTP/JSON API (pv_http.h).
 *
 * Hostile clients are refused as early as possible: with TLS, the client
 * certificate is checked inside the handshake (chain to client_ca, the
 * station extended key usage, not a device certificate of the factory CA);
 * a request is refused on its headers (certificate, Content-Length over
 * max_body) before any of its body is read; connections are limited in all
 * and per client address; and a watchdog closes a connection whose request
 * has not fully arrived request_timeout seconds after the connection opened
 * (or after its previous answer), so a client sending one byte at a time
 * holds a thread for that long at most. A malformed request gets a 4xx with
 * a reason and writes nothing. */
#include "pv_http.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <gnutls/gnutls.h>
#include <gnutls/x509.h>
#include <inttypes.h>
#include <jansson.h>
#include <microhttpd.h>
#include <netdb.h>
#include <openssl/crypto.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <pthread.h>
#include <sys/socket.h>
#include <time.h>

#include "pv_ident.h"
#include "tls_floor.h"

/* One per TCP connection (MHD's socket context), listed for the watchdog. */
typedef struct pv_sock {
    struct pv_sock *prev, *next;
    pv_server *srv;
    int fd;
    int64_t deadline_ms; /* the request in arrival must be complete by then */
    int busy;            /* a complete request is being answered: no deadline */
    int closed;          /* the watchdog shut it down */
    int verified;        /* the handshake accepted the client certificate */
    char ip[64];
    char cn[65];         /* the station certificate's subject CN */
} pv_sock;

struct pv_server {
    struct MHD_Daemon *d;
    const pv_config *cfg;
    pv_ledger *ledger;
    const pv_ca *ca;
    char *tls_cert, *tls_key, *client_ca; /* PEM, kept alive for MHD */
    gnutls_x509_crt_t factory_ca;         /* device certificates' issuer: never a station */
    int port;
    pthread_mutex_t lock;                 /* socks, stopping */
    pthread_cond_t wake;
    pv_sock *socks;
    int stopping, watchdog_started;
    int64_t refusal_logged_ms;
    pthread_t watchdog;
};

static int64_t pv_mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

typedef struct pv_conn {
    char *body;
    size_t len;
    int too_big;
    int answered; /* refused on its headers: the body is not looked at */
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
    if (o && id->supersedes[0]) json_object_set_new(o, "supersedes", json_string(id->supersedes));
    return o;
}

static pv_sock *pv_sock_of(struct MHD_Connection *c)
{
    const union MHD_ConnectionInfo *sc = MHD_get_connection_info(c, MHD_CONNECTION_INFO_SOCKET_CONTEXT);
    return sc ? (pv_sock *)sc->socket_context : NULL;
}

int pv_request_parse(const char *body, size_t len, json_t **root, const char *v[6], char *reason,
                     size_t reason_len)
{
    json_error_t je;
    memset(v, 0, 6 * sizeof *v);
    *reason = 0;
    json_t *in = *root = json_loadb(body ? body : "", len, JSON_REJECT_DUPLICATES, &je);
    if (!in || !json_is_object(in))
        return snprintf(reason, reason_len, "body is not a JSON object: %s", in ? "not an object" : je.text), -1;
    static const char *const fields[] = {"product", "board_id", "lot_id", "order_id", "station", "csr"};
    const char *key;
    json_t *val;
    json_object_foreach(in, key, val) {
        size_t i = 0;
        while (i < 6 && strcmp(key, fields[i])) i++;
        if (i == 6) return snprintf(reason, reason_len, "unknown field \"%.64s\"", key), -1;
        if (!json_is_string(val)) return snprintf(reason, reason_len, "field %s must be a string", key), -1;
        v[i] = json_string_value(val);
    }
    for (size_t i = 0; i < 5; i++) {
        if (!v[i]) return snprintf(reason, reason_len, "field %s is required", fields[i]), -1;
        if (!pv_id_ok(v[i]))
            return snprintf(reason, reason_len, "field %s must be 1-64 characters of [A-Za-z0-9._:/-]", fields[i]),
                   -1;
    }
    return 0;
}

static enum MHD_Result pv_post_unit(pv_server *s, struct MHD_Connection *c, pv_conn *pc)
{
    json_t *in;
    const char *v[6];
    char reason[320];
    if (pv_request_parse(pc->body, pc->len, &in, v, reason, sizeof reason)) {
        json_decref(in);
        return pv_error(c, MHD_HTTP_BAD_REQUEST, reason);
    }
    const pv_product *prod = pv_config_product(s->cfg, v[0]);
    if (!prod) {
        snprintf(reason, sizeof reason, "unknown product \"%s\"", v[0]);
        json_decref(in);
        return pv_error(c, MHD_HTTP_NOT_FOUND, reason);
    }
    /* The station is who its certificate says: its subject CN, or CN/NAME
     * for one of several stations behind one certificate (a line agent). */
    pv_sock *k = s->tls_cert ? pv_sock_of(c) : NULL;
    if (k) {
        size_t cl = strlen(k->cn);
        if (strncmp(v[4], k->cn, cl) || (v[4][cl] && v[4][cl] != '/')) {
            snprintf(reason, sizeof reason, "station \"%s\" is not the client certificate's (%s or %s/NAME)", v[4],
                     k->cn, k->cn);
            fprintf(stderr, "provisiond: refused %s/%s from %s: %s\n", v[0], v[1], k->ip, reason);
            json_decref(in);
            return pv_error(c, MHD_HTTP_FORBIDDEN, reason);
        }
    }
    pv_request req = {v[0], v[1], v[2], v[3], v[4], v[5]};
    pv_identity id;
    char err[256] = "";
    pv_status st = pv_ledger_issue(s->ledger, s->ca, prod, &req, &id, err, sizeof err);
    if (st != PV_OK)
        fprintf(stderr, "provisiond: %s %s/%s: %s\n", st == PV_INTERNAL ? "error for" : "refused", req.product,
                req.board_id, err);
    else if (id.supersedes[0])
        fprintf(stderr, "provisiond: rekey %s/%s serial %s by station %s: certificate %s supersedes %s\n",
                req.product, req.board_id, id.serial, req.station, id.cert_serial, id.supersedes);
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

/* With TLS: 1 when the handshake accepted the client's certificate (see
 * pv_tls_hook). Without TLS (loopback only) every client is served. */
static int pv_client_ok(pv_server *s, struct MHD_Connection *c, char *why, size_t n)
{
    if (!s->tls_cert) return 1;
    pv_sock *k = pv_sock_of(c);
    if (k && k->verified) return 1;
    return snprintf(why, n, "a station certificate from client_ca is required"), 0;
}

/* The station certificate's checks: present, chains to client_ca, holds the
 * station extended key usage, is no device certificate of the factory CA,
 * and names the station in its subject CN. 0, or -1 with why. */
static int pv_station_cert(pv_server *s, gnutls_session_t tls, char *cn, size_t cn_len, char *why, size_t n)
{
    unsigned np = 0, status = 0;
    const gnutls_datum_t *peers = gnutls_certificate_get_peers(tls, &np);
    if (!peers || np == 0) return snprintf(why, n, "no client certificate"), -1;
    if (gnutls_certificate_verify_peers2(tls, &status) < 0 || status) {
        gnutls_datum_t txt = {0};
        gnutls_certificate_verification_status_print(status, GNUTLS_CRT_X509, &txt, 0);
        snprintf(why, n, "client certificate not issued by the station CA (%s)", txt.data ? (char *)txt.data : "");
        gnutls_free(txt.data);
        return -1;
    }
    gnutls_x509_crt_t crt;
    if (gnutls_x509_crt_init(&crt) < 0) return snprintf(why, n, "out of memory"), -1;
    int rc = -1;
    if (gnutls_x509_crt_import(crt, &peers[0], GNUTLS_X509_FMT_DER) < 0) {
        snprintf(why, n, "client certificate does not parse");
        goto out;
    }
    int eku = 0;
    for (unsigned i = 0; !eku; i++) {
        char oid[128];
        size_t ol = sizeof oid;
        if (gnutls_x509_crt_get_key_purpose_oid(crt, i, oid, &ol, NULL) < 0) break;
        eku = strcmp(oid, s->cfg->station_eku) == 0;
    }
    if (!eku) {
        snprintf(why, n, "client certificate lacks the station extended key usage %s", s->cfg->station_eku);
        goto out;
    }
    unsigned vs = 0;
    if (s->factory_ca && gnutls_x509_crt_verify(crt, &s->factory_ca, 1, 0, &vs) >= 0 && vs == 0) {
        snprintf(why, n, "a device certificate of the factory CA is not a station certificate");
        goto out;
    }
    size_t cl = cn_len;
    if (gnutls_x509_crt_get_dn_by_oid(crt, GNUTLS_OID_X520_COMMON_NAME, 0, 0, cn, &cl) < 0 || !pv_id_ok(cn) ||
        strchr(cn, '/')) {
        snprintf(why, n, "client certificate's subject CN must be a station name (1-64 of [A-Za-z0-9._:-])");
        goto out;
    }
    rc = 0;
out:
    gnutls_x509_crt_deinit(crt);
    return rc;
}

/* GnuTLS calls this once the client's Finished arrived, which follows its
 * Certificate and CertificateVerify: a refusal here fails the handshake, so
 * a client without a station certificate never gets to send a request. */
static int pv_tls_hook(gnutls_session_t tls, unsigned htype, unsigned when, unsigned incoming,
                       const gnutls_datum_t *msg)
{
    if (!incoming) return 0;
    struct MHD_Connection *c = gnutls_session_get_ptr(tls); /* MHD sets it */
    pv_sock *k = c ? pv_sock_of(c) : NULL;
    if (!k) return GNUTLS_E_CERTIFICATE_ERROR;
    char why[256];
    if (pv_station_cert(k->srv, tls, k->cn, sizeof k->cn, why, sizeof why)) {
        fprintf(stderr, "provisiond: refused TLS client %s: %s\n", k->ip, why);
        return GNUTLS_E_CERTIFICATE_ERROR;
    }
    k->verified = 1;
    return 0;
}

static void pv_conn_notify(void *cls, struct MHD_Connection *c, void **socket_context,
                           enum MHD_ConnectionNotificationCode code)
{
    pv_server *s = cls;
    const union MHD_ConnectionInfo *ci;
    if (code == MHD_CONNECTION_NOTIFY_CLOSED) {
        pv_sock *k = *socket_context;
        if (!k) return;
        pthread_mutex_lock(&s->lock); /* before MHD closes the fd: the watchdog never shuts a reused one */
        if (k->prev) k->prev->next = k->next;
        else s->socks = k->next;
        if (k->next) k->next->prev = k->prev;
        pthread_mutex_unlock(&s->lock);
        free(k);
        *socket_context = NULL;
        return;
    }
    if (code != MHD_CONNECTION_NOTIFY_STARTED) return;
    pv_sock *k = calloc(1, sizeof *k);
    ci = MHD_get_connection_info(c, MHD_CONNECTION_INFO_CONNECTION_FD);
    if (!k || !ci) { /* untracked means unbounded: refuse it */
        if (ci) shutdown(ci->connect_fd, SHUT_RDWR);
        free(k);
        return;
    }
    k->srv = s;
    k->fd = ci->connect_fd;
    k->deadline_ms = pv_mono_ms() + 1000L * s->cfg->request_timeout;
    ci = MHD_get_connection_info(c, MHD_CONNECTION_INFO_CLIENT_ADDRESS);
    if (!ci || getnameinfo(ci->client_addr, sizeof(struct sockaddr_in6), k->ip, sizeof k->ip, NULL, 0,
                           NI_NUMERICHOST))
        snprintf(k->ip, sizeof k->ip, "?");
    if (s->tls_cert && (ci = MHD_get_connection_info(c, MHD_CONNECTION_INFO_GNUTLS_SESSION)) && ci->tls_session)
        gnutls_handshake_set_hook_function((gnutls_session_t)ci->tls_session, GNUTLS_HANDSHAKE_FINISHED,
                                           GNUTLS_HOOK_POST, pv_tls_hook);
    *socket_context = k;
    pthread_mutex_lock(&s->lock);
    k->next = s->socks;
    if (s->socks) s->socks->prev = k;
    s->socks = k;
    pthread_mutex_unlock(&s->lock);
}

/* Called before a connection is accepted: at most max_connections_per_ip
 * per client address (a refusal is logged at most once a second). */
static enum MHD_Result pv_accept(void *cls, const struct sockaddr *addr, socklen_t addrlen)
{
    pv_server *s = cls;
    char ip[64];
    if (getnameinfo(addr, addrlen, ip, sizeof ip, NULL, 0, NI_NUMERICHOST)) return MHD_NO;
    int n = 0;
    pthread_mutex_lock(&s->lock);
    for (pv_sock *k = s->socks; k; k = k->next) n += strcmp(k->ip, ip) == 0;
    int64_t now = pv_mono_ms();
    int refuse = n >= s->cfg->max_per_ip, log = refuse && now - s->refusal_logged_ms >= 1000;
    if (log) s->refusal_logged_ms = now;
    pthread_mutex_unlock(&s->lock);
    if (log)
        fprintf(stderr, "provisiond: refused a connection from %s: %d open, max_connections_per_ip = %d\n", ip, n,
                s->cfg->max_per_ip);
    return refuse ? MHD_NO : MHD_YES;
}

/* Shuts down every connection whose request is overdue: the connection's
 * thread then sees the socket closed and MHD ends it. */
static void *pv_watchdog(void *arg)
{
    pv_server *s = arg;
    pthread_mutex_lock(&s->lock);
    while (!s->stopping) {
        int64_t now = pv_mono_ms();
        for (pv_sock *k = s->socks; k; k = k->next) {
            if (k->busy || k->closed || now < k->deadline_ms) continue;
            k->closed = 1;
            shutdown(k->fd, SHUT_RDWR);
            fprintf(stderr, "provisiond: closed the connection from %s: no complete request within %d s\n", k->ip,
                    s->cfg->request_timeout);
        }
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        ts.tv_nsec += 200 * 1000000L;
        if (ts.tv_nsec >= 1000000000L) ts.tv_sec++, ts.tv_nsec -= 1000000000L;
        pthread_cond_timedwait(&s->wake, &s->lock, &ts);
    }
    pthread_mutex_unlock(&s->lock);
    return NULL;
}

static void pv_set_busy(pv_server *s, struct MHD_Connection *c, int busy)
{
    pv_sock *k = pv_sock_of(c);
    if (!k) return;
    pthread_mutex_lock(&s->lock);
    k->busy = busy;
    if (!busy) k->deadline_ms = pv_mono_ms() + 1000L * s->cfg->request_timeout; /* the next request's */
    pthread_mutex_unlock(&s->lock);
}

static enum MHD_Result pv_handle(void *cls, struct MHD_Connection *c, const char *url, const char *method,
                                 const char *version, const char *upload_data, size_t *upload_size, void **ctx)
{
    pv_server *s = cls;
    pv_conn *pc = *ctx;
    if (!pc) { /* headers are in: refuse what can be refused before the body */
        if (!(pc = calloc(1, sizeof *pc))) return MHD_NO;
        *ctx = pc;
        char why[128];
        if (!pv_client_ok(s, c, why, sizeof why)) return pc->answered = 1, pv_error(c, MHD_HTTP_FORBIDDEN, why);
        const char *cl = MHD_lookup_connection_value(c, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_LENGTH);
        if (cl) {
            char *end;
            errno = 0;
            unsigned long long n = strtoull(cl, &end, 10);
            if (errno || end == cl || *end || n > (unsigned long long)s->cfg->max_body) {
                char reason[96];
                snprintf(reason, sizeof reason, "body larger than %ld bytes", s->cfg->max_body);
                pc->answered = 1;
                return pv_error(c, MHD_HTTP_CONTENT_TOO_LARGE, reason);
            }
        }
        return MHD_YES;
    }
    if (*upload_size) { /* a piece of the body */
        if (!pc->answered && !pc->too_big && pc->len + *upload_size <= (size_t)s->cfg->max_body) {
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
    if (pc->answered) return MHD_YES;
    pv_set_busy(s, c, 1);
    if (pc->too_big) { /* chunked, no Content-Length */
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
    pv_set_busy(cls, c, 0);
    pv_conn *pc = *ctx;
    if (!pc) return;
    if (pc->body) OPENSSL_cleanse(pc->body, pc->len);
    free(pc->body);
    free(pc);
    *ctx = NULL;
}

/* libmicrohttpd hands us its own printf format. */
__attribute__((format(printf, 2, 0))) static void pv_mhd_log(void *cls, const char *fmt, va_list ap)
{
    fputs("provisiond: http: ", stderr);
    vfprintf(stderr, fmt, ap);
}

/* The factory CA's certificate as GnuTLS sees it (device certificates are
 * refused as station certificates); NULL when it cannot be read. */
static gnutls_x509_crt_t pv_load_factory_ca(const char *path)
{
    char *pem = pv_read_file(path);
    gnutls_x509_crt_t crt = NULL;
    if (pem && gnutls_x509_crt_init(&crt) >= 0) {
        gnutls_datum_t d = {(unsigned char *)pem, (unsigned)strlen(pem)};
        if (gnutls_x509_crt_import(crt, &d, GNUTLS_X509_FMT_PEM) < 0) {
            gnutls_x509_crt_deinit(crt);
            crt = NULL;
        }
    }
    free(pem);
    return crt;
}

pv_server *pv_http_start(const pv_config *cfg, pv_ledger *ledger, const pv_ca *ca, char *err, size_t err_len)
{
    pv_server *s = calloc(1, sizeof *s);
    if (!s) return NULL;
    s->cfg = cfg;
    s->ledger = ledger;
    s->ca = ca;
    pthread_mutex_init(&s->lock, NULL);
    pthread_cond_init(&s->wake, NULL);
    struct addrinfo hints = {0}, *ai = NULL;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_NUMERICSERV;
    char port[8];
    snprintf(port, sizeof port, "%d", cfg->listen.port);
    if (getaddrinfo(cfg->listen.host, port, &hints, &ai) != 0 || !ai) {
        snprintf(err, err_len, "listen: cannot resolve %s", cfg->listen.host);
        goto fail;
    }
    /* A thread per connection: an issuance blocks its thread until its group
     * commit, and in a fixed pool the stations whose connections landed on
     * the same thread (accept decides) would wait for each other. The
     * connection limits and the watchdog bound what this costs. */
    unsigned flags =
        MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_THREAD_PER_CONNECTION | MHD_USE_POLL | MHD_USE_ERROR_LOG;
    if (ai->ai_family == AF_INET6) flags |= MHD_USE_IPv6;
    if (cfg->tls_cert) {
        if (!(s->tls_cert = pv_read_file(cfg->tls_cert)) || !(s->tls_key = pv_read_file(cfg->tls_key)) ||
            !(s->client_ca = pv_read_file(cfg->client_ca))) {
            snprintf(err, err_len, "cannot read tls_cert, tls_key or client_ca");
            goto fail;
        }
        if (!(s->factory_ca = pv_load_factory_ca(cfg->ca_cert))) {
            snprintf(err, err_len, "cannot read the factory CA certificate %s", cfg->ca_cert);
            goto fail;
        }
        flags |= MHD_USE_TLS;
    }
    if (pthread_create(&s->watchdog, NULL, pv_watchdog, s)) {
        snprintf(err, err_len, "cannot start the connection watchdog");
        goto fail;
    }
    s->watchdog_started = 1;
    struct MHD_OptionItem opts[] = {
        {MHD_OPTION_EXTERNAL_LOGGER, (intptr_t)pv_mhd_log, NULL},
        {MHD_OPTION_SOCK_ADDR, 0, ai->ai_addr},
        {MHD_OPTION_CONNECTION_TIMEOUT, 30, NULL},
        {MHD_OPTION_CONNECTION_LIMIT, cfg->max_connections, NULL},
        {MHD_OPTION_NOTIFY_COMPLETED, (intptr_t)pv_done, s},
        {MHD_OPTION_NOTIFY_CONNECTION, (intptr_t)pv_conn_notify, s},
        {s->tls_cert ? MHD_OPTION_HTTPS_MEM_CERT : MHD_OPTION_END, 0, s->tls_cert},
        {MHD_OPTION_HTTPS_MEM_KEY, 0, s->tls_key},
        {MHD_OPTION_HTTPS_MEM_TRUST, 0, s->client_ca},
        /* TLS 1.2 is the floor (tls_floor.h). */
        {MHD_OPTION_HTTPS_PRIORITIES, 0, (void *)TLS_FLOOR_GNUTLS_PRIORITIES},
        {MHD_OPTION_END, 0, NULL},
    };
    s->d = MHD_start_daemon(flags, 0, pv_accept, s, pv_handle, s, MHD_OPTION_ARRAY, opts, MHD_OPTION_END);
    freeaddrinfo(ai);
    ai = NULL;
    if (!s->d) {
        snprintf(err, err_len, "cannot listen on %s:%d: %s", cfg->listen.host, cfg->listen.port, strerror(errno));
        goto fail;
    }
    const union MHD_DaemonInfo *di = MHD_get_daemon_info(s->d, MHD_DAEMON_INFO_BIND_PORT);
    s->port = di ? di->port : cfg->listen.port;
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
    if (s->watchdog_started) {
        pthread_mutex_lock(&s->lock);
        s->stopping = 1;
        pthread_cond_signal(&s->wake);
        pthread_mutex_unlock(&s->lock);
        pthread_join(s->watchdog, NULL);
    }
    if (s->factory_ca) gnutls_x509_crt_deinit(s->factory_ca);
    if (s->tls_key) OPENSSL_cleanse(s->tls_key, strlen(s->tls_key));
    free(s->tls_cert);
    free(s->tls_key);
    free(s->client_ca);
    pthread_cond_destroy(&s->wake);
    pthread_mutex_destroy(&s->lock);
    free(s);
}
