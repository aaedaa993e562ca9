/* SPDX-License-Identifier: Apache-2.0 */
/* http_listen.c - /metrics, /healthz and /readyz on libmicrohttpd. A scrape
 * renders the metric registry (atomic loads only), so it never waits for
 * the line coordinator. */
#include "http_listen.h"

#include <microhttpd.h>
#include <netdb.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "log.h"
#include "metrics.h"

struct http_listen {
    struct MHD_Daemon *d;
    http_ready_fn ready;
    void *ud;
    int port;
};

static enum MHD_Result http_reply(struct MHD_Connection *c, unsigned code, const char *type, char *body, size_t len,
                                  enum MHD_ResponseMemoryMode mode)
{
    struct MHD_Response *r = MHD_create_response_from_buffer(len, body, mode);
    if (!r) return MHD_NO;
    MHD_add_response_header(r, "Content-Type", type);
    MHD_add_response_header(r, "Cache-Control", "no-store");
    enum MHD_Result ok = MHD_queue_response(c, code, r);
    MHD_destroy_response(r);
    return ok;
}

static enum MHD_Result http_text(struct MHD_Connection *c, unsigned code, const char *text)
{
    return http_reply(c, code, "text/plain; charset=utf-8", (char *)text, strlen(text), MHD_RESPMEM_MUST_COPY);
}

static enum MHD_Result http_handle(void *cls, struct MHD_Connection *c, const char *url, const char *method,
                                   const char *version, const char *upload, size_t *upload_len, void **state)
{
    http_listen *h = cls;
    if (!*state) { /* first call: headers only; answer on the next */
        *state = h;
        return MHD_YES;
    }
    if (*upload_len) return http_text(c, MHD_HTTP_BAD_REQUEST, "no request body expected\n");
    if (strcmp(method, "GET") != 0 && strcmp(method, "HEAD") != 0)
        return http_text(c, MHD_HTTP_METHOD_NOT_ALLOWED, "GET only\n");
    if (strcmp(url, "/metrics") == 0) {
        size_t len = 0;
        char *body = metrics_render(&len);
        if (!body) return http_text(c, MHD_HTTP_INTERNAL_SERVER_ERROR, "out of memory\n");
        return http_reply(c, MHD_HTTP_OK, "text/plain; version=0.0.4; charset=utf-8", body, len,
                          MHD_RESPMEM_MUST_FREE);
    }
    if (strcmp(url, "/healthz") == 0) return http_text(c, MHD_HTTP_OK, "ok\n");
    if (strcmp(url, "/readyz") == 0) {
        char why[256] = "", body[300];
        int ok = h->ready(h->ud, why, sizeof why);
        snprintf(body, sizeof body, ok ? "ready\n" : "not ready: %s\n", why);
        return http_text(c, ok ? MHD_HTTP_OK : MHD_HTTP_SERVICE_UNAVAILABLE, body);
    }
    return http_text(c, MHD_HTTP_NOT_FOUND, "not found: /metrics, /healthz, /readyz\n");
}

/* "host:port" or "[v6]:port" -> the first address getaddrinfo gives. */
static int http_resolve(const char *addr, struct sockaddr_storage *ss, socklen_t *ss_len, char *err, size_t err_len)
{
    char host[256];
    const char *colon = strrchr(addr, ':');
    const char *h = addr;
    size_t hn = colon ? (size_t)(colon - addr) : 0;
    if (hn >= 2 && addr[0] == '[' && addr[hn - 1] == ']') h++, hn -= 2;
    if (!colon || !hn || hn >= sizeof host) {
        snprintf(err, err_len, "[http] listen \"%s\": expected host:port (e.g. 127.0.0.1:9464)", addr);
        return -1;
    }
    memcpy(host, h, hn);
    host[hn] = 0;
    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM, .ai_flags = AI_NUMERICSERV}, *res;
    int rc = getaddrinfo(host, colon + 1, &hints, &res);
    if (rc) {
        snprintf(err, err_len, "[http] listen \"%s\": %s", addr, gai_strerror(rc));
        return -1;
    }
    memcpy(ss, res->ai_addr, res->ai_addrlen);
    *ss_len = res->ai_addrlen;
    freeaddrinfo(res);
    return 0;
}

/* libmicrohttpd hands us its own printf format. */
__attribute__((format(printf, 2, 0))) static void http_log(void *cls, const char *fmt, va_list ap)
{
    char msg[512];
    vsnprintf(msg, sizeof msg, fmt, ap);
    msg[strcspn(msg, "\n")] = 0;
    log_warn("http: %s", msg);
}

http_listen *http_listen_start(const char *addr, http_ready_fn ready, void *ud, char *err, size_t err_len)
{
    struct sockaddr_storage ss;
    socklen_t ss_len;
    if (http_resolve(addr, &ss, &ss_len, err, err_len)) return NULL;
    http_listen *h = calloc(1, sizeof *h);
    h->ready = ready;
    h->ud = ud;
    unsigned flags = MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_AUTO | MHD_USE_ERROR_LOG;
    if (ss.ss_family == AF_INET6) flags |= MHD_USE_IPv6;
    /* A scraper or a probe at a time, not a crowd: few connections, short timeout. */
    h->d = MHD_start_daemon(flags, 0, NULL, NULL, http_handle, h, MHD_OPTION_EXTERNAL_LOGGER, http_log, NULL,
                            MHD_OPTION_SOCK_ADDR, (struct sockaddr *)&ss, MHD_OPTION_CONNECTION_LIMIT, 16u,
                            MHD_OPTION_CONNECTION_TIMEOUT, 10u, MHD_OPTION_END);
    if (!h->d) {
        snprintf(err, err_len, "[http] listen %s: cannot bind (address in use or not local?)", addr);
        free(h);
        return NULL;
    }
    const union MHD_DaemonInfo *info = MHD_get_daemon_info(h->d, MHD_DAEMON_INFO_BIND_PORT);
    h->port = info ? info->port : 0;
    return h;
}

int http_listen_port(const http_listen *h) { return h->port; }

void http_listen_stop(http_listen *h)
{
    if (!h) return;
    MHD_stop_daemon(h->d);
    free(h);
}
