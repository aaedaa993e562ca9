/* SPDX-License-Identifier: Apache-2.0 */
/* ts_web.h - what the web page needs from the server beyond JSON answers:
 * its static files (compiled in from web/), and the live feed of "Lines
 * now" as Server-Sent Events. The feed is pushed, not polled: the consumer
 * NOTIFYs tracestore_stored in each transaction that stores events,
 * PostgreSQL delivers it at commit (to this instance and any other), and one
 * thread here then refreshes a shared snapshot that every open page gets. */
#ifndef TS_WEB_H
#define TS_WEB_H

#include <stddef.h>

#include "ts_config.h"

typedef struct ts_web_asset {
    const char *path, *type, *etag;
    const unsigned char *data;
    size_t len;
} ts_web_asset;

extern const ts_web_asset ts_web_assets[];
extern const size_t ts_web_n_assets;

/* The asset served at path ("/" is /index.html), or NULL. */
const ts_web_asset *ts_web_find(const char *path);

typedef struct ts_web ts_web;
struct MHD_Response;

/* Starts the feed's thread (its own database connection, LISTENing). */
ts_web *ts_web_start(const ts_config *cfg, char *err, size_t err_len);
/* A response that streams "lines" events to one page until it goes away
 * or the feed stops; NULL when too many pages are open. Needs the HTTP
 * daemon in thread-per-connection mode: a stream blocks its thread. */
struct MHD_Response *ts_web_stream(ts_web *w);
/* Ends every stream (each returns at its next read) and the thread. */
void ts_web_stop(ts_web *w);
/* Frees w; only once the HTTP daemon has stopped, as its streams use w. */
void ts_web_free(ts_web *w);

#endif
