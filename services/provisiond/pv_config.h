/* SPDX-License-Identifier: Apache-2.0 */
/* pv_config.h - provisiond's INI configuration: [server], [ledger], [ca] and
 * one [product NAME] section per product with its serial format and MAC
 * block. Every key is declared once, as a row of a conf_table.h table per
 * section kind in pv_config.c (name, type, default, range, description); the
 * common engine drives parsing, defaults, range checks and printing, and
 * reports errors as FILE:LINE. Unknown sections and keys are errors;
 * deploy/provisiond.conf documents each key (test_provisiond checks it
 * against the tables). */
#ifndef PV_CONFIG_H
#define PV_CONFIG_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#define PV_MAX_PRODUCTS 64
#define PV_NAME_MAX 32           /* characters of a product name */
#define PV_SERIAL_FORMAT_MAX 127 /* a serial is at most 127 characters (pv_ledger.h) */
#define PV_FACTORY_CODE_MAX 16
#define PV_OID_MAX 127

typedef struct pv_product {
    char name[PV_NAME_MAX + 1];
    char serial_format[PV_SERIAL_FORMAT_MAX + 1]; /* e.g. {product}-{yy}{ww}-{seq:06} */
    uint64_t mac_first, mac_last; /* inclusive, 48-bit */
    int macs_per_unit;
    int cert_days;
    char factory_code[PV_FACTORY_CODE_MAX + 1];
    int allow_rekey;       /* rekey = allow|deny: a new certificate (and key) for an issued board */
    uint64_t given;        /* bit i: the file set the product table's row i */
} pv_product;

typedef struct pv_listen {
    char host[256]; /* without the brackets of "[::1]:8443" */
    int port;       /* 0: any free port */
} pv_listen;

typedef struct pv_config {
    pv_listen listen;      /* [server] listen = host:port */
    char *tls_cert, *tls_key, *client_ca;
    long max_body;         /* bytes */
    int max_connections;   /* in all */
    int max_per_ip;        /* max_connections_per_ip */
    int request_timeout;   /* seconds from connection (or last answer) to a complete request */
    char station_eku[PV_OID_MAX + 1]; /* OID the station certificates' extended key usage must hold */
    char *ledger_path;     /* [ledger] path */
    char *ca_cert, *ca_key; /* [ca] */
    pv_product products[PV_MAX_PRODUCTS];
    size_t n_products;
} pv_config;

/* Loads and validates path; 0, or -1 with "FILE:LINE: problem" (or "FILE:
 * problem" for a rule between keys) in err. */
int pv_config_load(pv_config *c, const char *path, char *err, size_t err_len);
void pv_config_free(pv_config *c);
/* Every key with its effective value and description, as INI. */
void pv_config_print(const pv_config *c, FILE *out);
const pv_product *pv_config_product(const pv_config *c, const char *name);
/* 1 when host names a loopback address (127.0.0.0/8, ::1, localhost). */
int pv_is_loopback(const char *host);

#endif
