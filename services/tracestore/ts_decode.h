/* SPDX-License-Identifier: Apache-2.0 */
/* ts_decode.h - turning one Kafka record's value into a checked message.
 * A pure function of its bytes (no I/O, no globals), so the fuzz harness
 * calls exactly what the consumer calls. */
#ifndef TS_DECODE_H
#define TS_DECODE_H

#include <stddef.h>

#include "lineagent/v1/field_firmware.pb-c.h"
#include "lineagent/v1/trace_event.pb-c.h"

typedef enum { TS_REC_TRACE, TS_REC_FIELD } ts_rec_kind;

typedef struct ts_decoded {
    ts_rec_kind kind;
    Lineagent__V1__TraceEvent *ev;          /* kind TS_REC_TRACE */
    Lineagent__V1__FieldFirmwareReport *ff; /* kind TS_REC_FIELD */
    const char *type;                       /* event type name, e.g. "unit_written" */
} ts_decoded;

/* Events outside [2000-01-01, 2200-01-01) are refused: a clock that far off
 * is a broken agent, and a partition per stray month is not wanted. */
#define TS_TIME_MIN_MS 946684800000LL
#define TS_TIME_MAX_MS 7258118400000LL

/* Decodes buf as a record of kind and checks it: parses, has an id (event_id,
 * or serial for a field report), a known body, a sane time, strings of valid
 * UTF-8 without NUL that PostgreSQL text accepts. 0 with out filled (free
 * with ts_decoded_free), or -1 with a one-line reason. */
int ts_decode_record(const void *buf, size_t len, ts_rec_kind kind, ts_decoded *out, char *reason,
                     size_t reason_len);
void ts_decoded_free(ts_decoded *d);

#endif
