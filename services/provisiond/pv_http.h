/* pv_http.h - provisiond's HTTP/JSON API (libmicrohttpd; GnuTLS underneath
 * for HTTPS with client certificates): POST /v1/units, GET /v1/units/{serial},
 * GET /v1/health. */
#ifndef PV_HTTP_H
#define PV_HTTP_H

#include <stddef.h>

#include "pv_ca.h"
#include "pv_config.h"
#include "pv_ledger.h"

typedef struct pv_server pv_server;

/* Starts listening; NULL with err on failure. */
pv_server *pv_http_start(const pv_config *cfg, pv_ledger *ledger, const pv_ca *ca, char *err, size_t err_len);
void pv_http_stop(pv_server *s);
/* The bound port (listen = host:0 picks a free one). */
int pv_http_port(const pv_server *s);

#endif
