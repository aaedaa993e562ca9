/* SPDX-License-Identifier: Apache-2.0 */
/* fuzz_exec_output.c - libFuzzer harness: a vendor program's stdout (one
 * JSON object, JSON lines, OpenHTF records) through the exec adapter's
 * parser. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "adapter_exec.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *out = malloc(size + 1);
    if (!out) return 0;
    memcpy(out, data, size);
    out[size] = 0;
    adapter_result r;
    memset(&r, 0, sizeof r);
    adapter_exec_parse(out, size, &r);
    free(out);
    return 0;
}
