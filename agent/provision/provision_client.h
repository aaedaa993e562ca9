/* SPDX-License-Identifier: Apache-2.0 */
/* provision_client.h - the agent's client of the provisioning server
 * (provisiond, POST /v1/units) over libcurl: one keep-alive handle per
 * station thread, the server's CA pinned, the station's client certificate,
 * bounded retries with backoff. Private keys a server hands out are wiped
 * from memory by provision_identity_clear and never logged. */
#ifndef LINEAGENT_PROVISION_CLIENT_H
#define LINEAGENT_PROVISION_CLIENT_H

#include <stddef.h>

#include "adapter.h"

typedef struct provision_client provision_client;

typedef struct provision_settings {
    const char *url;       /* base, e.g. https://host:8443 */
    const char *ca_file, *cert_file, *key_file; /* may be NULL */
    long timeout_ms;
    int retries;           /* attempts after the first */
} provision_settings;

typedef struct provision_identity {
    char serial[128];
    char device_id[40];
    char macs[ADAPTER_MAX_MACS][18];
    int n_macs;
    char issued_at[40];
    char cert_serial[64];  /* the certificate's serial number, hex */
    char factory_code[24];
    char cert_sha256[65];  /* SHA-256 of the certificate's DER, lowercase hex */
    char *certificate;     /* PEM */
    char *ca_chain;        /* PEM */
    char *private_key;     /* PEM, only when the server generated the key; wiped on clear */
    int reused;            /* the server had issued it before (a retry) */
} provision_identity;

typedef enum provision_status {
    PROVISION_OK = 0,
    PROVISION_UNAVAILABLE, /* no answer, or 5xx, after every retry */
    PROVISION_REFUSED      /* 4xx: the server said no, with a reason */
} provision_status;

/* NULL with err when the settings are unusable. Not thread-safe: one per thread. */
provision_client *provision_client_new(const provision_settings *s, char *err, size_t err_len);
void provision_client_free(provision_client *c);
/* Asks for the identity of (product, board_id); csr may be NULL (the server
 * then generates the key). On failure reason says why. */
provision_status provision_client_issue(provision_client *c, const char *product, const char *board_id,
                                        const char *lot_id, const char *order_id, const char *station,
                                        const char *csr, provision_identity *out, char *reason,
                                        size_t reason_len);
/* The server's answer (body buf of len bytes, HTTP status http_code) into
 * out: OK, REFUSED (4xx other than 408/429, or a 2xx whose content is
 * unusable or outside its character sets), or UNAVAILABLE (5xx, 408, 429,
 * anything else). Pure: the fuzz harness calls it. */
provision_status provision_answer_parse(const char *buf, size_t len, long http_code, provision_identity *out,
                                        char *reason, size_t reason_len);
/* Frees, wiping the private key. */
void provision_identity_clear(provision_identity *id);
/* SHA-256 (lowercase hex) of a PEM certificate's DER; 0 or -1. */
int provision_cert_sha256(const char *pem, char out[65]);

#endif
