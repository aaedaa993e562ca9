/* SPDX-License-Identifier: Apache-2.0 */
/* pv_http.h - provisiond's HTTP/JSON API (libmicrohttpd; GnuTLS underneath
 * for HTTPS with client certificates): POST /v1/units, GET /v1/units/{serial},
 * GET /v1/health. */
#ifndef PV_HTTP_H
#define PV_HTTP_H

#include <jansson.h>
#include <stddef.h>

#include "pv_ca.h"
#include "pv_config.h"
#include "pv_ledger.h"

typedef struct pv_server pv_server;

/* Starts listening; NULL with err on failure. */
pv_server *pv_http_start(const pv_config *cfg, pv_ledger *ledger, const pv_ca *ca, char *err, size_t err_len);
void pv_http_stop(pv_server *s);
/* A POST /v1/units body: a JSON object of strings product, board_id,
 * lot_id, order_id, station (ids: 1-64 of [A-Za-z0-9._:/-]) and optional
 * csr, nothing else. 0 with v[0..5] pointing into *root (the caller
 * json_decrefs it either way), or -1 with reason. Pure: fuzzed. */
int pv_request_parse(const char *body, size_t len, json_t **root, const char *v[6], char *reason,
                     size_t reason_len);
/* The bound port (listen = host:0 picks a free one). */
int pv_http_port(const pv_server *s);

#endif
