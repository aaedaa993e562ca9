/* SPDX-License-Identifier: Apache-2.0 */
/* pv_config.h - provisiond's INI configuration: [server], [ledger], [ca] and
 * one [product NAME] section per product with its serial format and MAC
 * block. Unknown keys are errors; deploy/provisiond.conf documents each key. */
#ifndef PV_CONFIG_H
#define PV_CONFIG_H

#include <stddef.h>
#include <stdint.h>

#define PV_MAX_PRODUCTS 64

typedef struct pv_product {
    char *name;
    char *serial_format;   /* e.g. {product}-{yy}{ww}-{seq:06} */
    uint64_t mac_first, mac_last; /* inclusive, 48-bit */
    int macs_per_unit;
    int cert_days;
    char *factory_code;
    int allow_rekey;       /* rekey = allow|deny: a new certificate (and key) for an issued board */
} pv_product;

typedef struct pv_config {
    char *listen_host;     /* [server] listen = host:port */
    int listen_port;
    char *tls_cert, *tls_key, *client_ca;
    long max_body;         /* bytes */
    int max_connections;   /* in all */
    int max_per_ip;        /* max_connections_per_ip */
    int request_timeout;   /* seconds from connection (or last answer) to a complete request */
    char *station_eku;     /* OID the station certificates' extended key usage must hold */
    char *ledger_path;     /* [ledger] path */
    char *ca_cert, *ca_key; /* [ca] */
    pv_product products[PV_MAX_PRODUCTS];
    size_t n_products;
} pv_config;

/* Loads and validates path; 0 or -1 with "FILE:LINE: problem" in err. */
int pv_config_load(pv_config *c, const char *path, char *err, size_t err_len);
void pv_config_free(pv_config *c);
const pv_product *pv_config_product(const pv_config *c, const char *name);
/* 1 when host names a loopback address (127.0.0.0/8, ::1, localhost). */
int pv_is_loopback(const char *host);

#endif
