/* SPDX-License-Identifier: Apache-2.0 */
/* fuzz_tracestore_record.c - libFuzzer harness for tracestore's record
 * decoding: the bytes of a Kafka record's value, as a trace event and as a
 * field report (the first byte chooses), through ts_decode_record and on
 * into the COPY text ts_batch_add makes of an accepted record.
 *
 * Built by tests/fuzz/CMakeLists.txt (deploy/fuzz.sh); seeds in
 * corpus/tracestore_record/: a zero byte and a trace event, a one byte and
 * a field report. More seeds: the spool's payload column (sqlite3 spool.db
 * "SELECT payload ...") holds trace events as Kafka carries them.
 */
#include <stddef.h>
#include <stdint.h>

#include "ts_batch.h"
#include "ts_decode.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1) return 0;
    ts_rec_kind kind = data[0] & 1 ? TS_REC_FIELD : TS_REC_TRACE;
    ts_batch b = {0};
    ts_batch_add(&b, "fuzz", 0, 0, NULL, 0, data + 1, size - 1, kind);
    ts_batch_free(&b);
    return 0;
}
