/* SPDX-License-Identifier: Apache-2.0 */
/* fuzz_gdb_identity.c - libFuzzer harness for the gdb adapter's identity
 * record parser (adapters/gdb_identity.c): any bytes, as read back from a
 * target, through gdb_identity_total and gdb_identity_parse; a record that
 * parses must carry NUL-terminated fields within their arrays.
 *
 * Built by tests/fuzz/CMakeLists.txt, run by deploy/fuzz.sh.
 * Seeds: tests/fuzz/corpus/gdb_identity (records as in test_gdb_identity.c and
 * the example in adapters/README.md, "The identity record"). */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "gdb_identity.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    adapter_result r;
    memset(&r, 0x5a, sizeof r);
    char err[160];
    (void)gdb_identity_total(data, size);
    if (gdb_identity_parse(data, size, &r, err, sizeof err) == GDB_ID_OK) {
        if (!memchr(r.serial, 0, sizeof r.serial) || !memchr(r.device_id, 0, sizeof r.device_id) ||
            strlen(r.cert_sha256) != 64 || r.n_macs < 0 || r.n_macs > ADAPTER_MAX_MACS)
            abort();
    } else if (!memchr(err, 0, sizeof err)) {
        abort();
    }
    return 0;
}
