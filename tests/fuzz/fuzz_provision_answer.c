/* SPDX-License-Identifier: Apache-2.0 */
/* fuzz_provision_answer.c - libFuzzer harness: an answer of the
 * provisioning server (first byte picks the HTTP status) through the
 * agent's provision_answer_parse. */
#include <stdint.h>

#include "provision_client.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const long codes[] = {200, 201, 400, 403, 404, 409, 413, 429, 500, 503, 302, 0};
    if (size < 1) return 0;
    long code = codes[data[0] % (sizeof codes / sizeof codes[0])];
    provision_identity id;
    char reason[256];
    if (provision_answer_parse((const char *)data + 1, size - 1, code, &id, reason, sizeof reason) ==
        PROVISION_OK)
        provision_identity_clear(&id);
    return 0;
}
