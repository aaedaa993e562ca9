/* SPDX-License-Identifier: Apache-2.0 */
/* fuzz_pv_request.c - libFuzzer harness: a POST /v1/units body through
 * provisiond's pv_request_parse and, when it names a CSR, the CSR check
 * (pv_csr_pubkey) against a trial CA made once in a temporary directory. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pv_ca.h"
#include "pv_http.h"

static pv_ca *ca;

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc, (void)argv;
    char dir[] = "/tmp/fuzz_pv_XXXXXX", cert[64], key[64], err[256];
    if (!mkdtemp(dir)) abort();
    snprintf(cert, sizeof cert, "%s/ca.pem", dir);
    snprintf(key, sizeof key, "%s/ca.key", dir);
    if (pv_ca_init(cert, key, "fuzz CA", err, sizeof err) || !(ca = pv_ca_load(cert, key, err, sizeof err))) abort();
    remove(cert), remove(key), remove(dir);
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    json_t *root = NULL;
    const char *v[6];
    char reason[320];
    if (pv_request_parse((const char *)data, size, &root, v, reason, sizeof reason) == 0 && v[5]) {
        pv_pubkey pub;
        pv_csr_pubkey(ca, v[5], &pub, reason, sizeof reason);
    }
    json_decref(root);
    /* The CSR check alone, on the raw input as PEM. */
    char *pem = malloc(size + 1);
    if (pem) {
        memcpy(pem, data, size);
        pem[size] = 0;
        pv_pubkey pub;
        pv_csr_pubkey(ca, pem, &pub, reason, sizeof reason);
        free(pem);
    }
    return 0;
}
