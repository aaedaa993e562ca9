/* SPDX-License-Identifier: Apache-2.0 */
/* pv_ledger.h - the issuance ledger (SQLite): issues a unit's identity once
 * and only once, returns the same identity for the same (product, board_id),
 * records every issuance, and audits itself.
 *
 * UNIQUE constraints on serial, device id, every MAC and every certificate
 * serial make a second issuance of any identifier impossible, whatever the
 * code above does; issuances are serialised by one lock and each is one
 * transaction committed with synchronous=FULL before the answer leaves. */
#ifndef PV_LEDGER_H
#define PV_LEDGER_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "pv_ca.h"
#include "pv_config.h"

#define PV_MAX_MACS 64

typedef struct pv_ledger pv_ledger;

typedef struct pv_request {
    const char *product, *board_id, *lot_id, *order_id, *station;
    const char *csr; /* PEM, or NULL: the server generates the key */
} pv_request;

typedef struct pv_identity {
    char product[40];
    char board_id[72];
    char serial[128];
    char device_id[17];
    uint64_t mac_first;
    int mac_count;
    char cert_serial[41];
    char issued_at[32];     /* ISO 8601 UTC of the first issuance */
    char factory_code[20];
    char *certificate;      /* PEM, malloc'd */
    char *private_key;      /* PEM when the server generated it, else NULL; wipe */
    int reused;             /* 1: the board had its identity already */
    char supersedes[41];    /* a rekey: the certificate serial this one replaces, else "" */
} pv_identity;

typedef enum pv_status {
    PV_OK = 0,
    PV_BAD_REQUEST,   /* malformed: 400 */
    PV_NOT_FOUND,     /* unknown product or serial: 404 */
    PV_CONFLICT,      /* block exhausted, identifier taken: 409 */
    PV_BUSY,          /* the same board is being issued right now: 503, ask again */
    PV_INTERNAL       /* 500 */
} pv_status;

/* Tests only (NULL otherwise): called at points of an issuance with the
 * ledger's connection: "joined" (lock held, batch transaction open, before
 * the request's savepoint), "signed" (certificate signed, lock not held; a
 * nonzero return fails the signing), "finished" (rows written, lock held). */
struct sqlite3;
extern int (*pv_ledger_test_hook)(struct sqlite3 *db, const char *point, const pv_request *req);

pv_ledger *pv_ledger_open(const char *path, char *err, size_t err_len);
void pv_ledger_close(pv_ledger *l);
/* Issues (or returns again) the identity for req. Nothing is written unless
 * PV_OK. Frees nothing in out on failure; call pv_identity_clear after use. */
pv_status pv_ledger_issue(pv_ledger *l, const pv_ca *ca, const pv_product *prod, const pv_request *req,
                          pv_identity *out, char *err, size_t err_len);
/* The identity issued under serial (no private key). */
pv_status pv_ledger_get(pv_ledger *l, const pv_config *cfg, const char *serial, pv_identity *out, char *err,
                        size_t err_len);
/* Frees the certificate and wipes and frees the private key. */
void pv_identity_clear(pv_identity *id);
/* Checks the ledger; prints each finding to out and returns their number
 * (0: consistent), or -1 when the ledger cannot be read. */
long pv_ledger_audit(pv_ledger *l, const pv_config *cfg, const pv_ca *ca, FILE *out);

#endif
