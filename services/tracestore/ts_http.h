/* SPDX-License-Identifier: Apache-2.0 */
/* ts_http.h - the read-only HTTP API (libmicrohttpd): the CLI's answers as
 * JSON, health and Prometheus metrics. Routes are rows of one table in
 * ts_http.c, so more endpoints (and static files for a web UI) are added
 * there. Off loopback it serves HTTPS only and wants a bearer token (the
 * config refuses anything else). */
#ifndef TS_HTTP_H
#define TS_HTTP_H

#include <stddef.h>

#include "ts_config.h"

typedef struct ts_http ts_http;

/* Starts serving [http] listen on a thread of its own, with a database
 * connection of its own (made on first use). NULL with err set. */
ts_http *ts_http_start(const ts_config *cfg, char *err, size_t err_len);
void ts_http_stop(ts_http *h);

#endif
