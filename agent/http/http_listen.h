/* SPDX-License-Identifier: Apache-2.0 */
/* http_listen.h - the agent's optional HTTP listener ([http] listen,
 * libmicrohttpd on a thread of its own): /metrics in the Prometheus text
 * format, /healthz (the process answers) and /readyz (the agent can take
 * work, or why not). Read-only; it knows nothing of lots or boards: the
 * readiness verdict comes from a callback the agent gives it. */
#ifndef LINEAGENT_HTTP_LISTEN_H
#define LINEAGENT_HTTP_LISTEN_H

#include <stddef.h>

typedef struct http_listen http_listen;

/* Called on the listener's thread for /readyz: 1 when ready, else 0 with
 * the reason written to why. Must be thread-safe. */
typedef int (*http_ready_fn)(void *ud, char *why, size_t why_len);

/* Binds addr ("host:port", "[v6addr]:port"; port 0 picks a free one) and
 * starts serving. NULL with err on failure. */
http_listen *http_listen_start(const char *addr, http_ready_fn ready, void *ud, char *err, size_t err_len);
/* The port bound (useful with port 0). */
int http_listen_port(const http_listen *h);
/* Stops serving and closes the socket; NULL is a no-op. */
void http_listen_stop(http_listen *h);

#endif
