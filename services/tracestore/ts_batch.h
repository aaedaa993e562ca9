/* SPDX-License-Identifier: Apache-2.0 */
/* ts_batch.h - the records consumed since the last database commit, already
 * in the form they are written in: COPY rows for the events table and for
 * each query table an event feeds, the facts folded into units, lots and
 * seq runs (ts_fold.h), the rejected records, and per partition the next
 * offset to read. A batch is stored whole or not at all (ts_store.h). */
#ifndef TS_BATCH_H
#define TS_BATCH_H

#include <stddef.h>
#include <stdint.h>

#include "ts_copytext.h"
#include "ts_decode.h"
#include "ts_fold.h"

/* The tables a batch's events feed besides events, in the order they are
 * stored: rows COPYed straight into their query table, then rows COPYed
 * into a temporary table that one statement merges into its query table
 * (ts_store.c; from TS_T_REVISIONS on). */
typedef enum {
    TS_T_WRITES,
    TS_T_OUTCOMES,
    TS_T_TESTS, /* unit_tests: a test's measurements as arrays (the measurements view) */
    TS_T_CALIBRATIONS,
    TS_T_LOCKS,
    TS_T_IDENTITIES,
    TS_T_FAILURES,
    TS_T_CHANGEOVERS,
    TS_T_REVISIONS, /* ts_revs -> lot_revisions */
    TS_T_UNITS,     /* ts_units -> units (folded) */
    TS_T_LOTS,      /* ts_lots -> lots (folded) */
    TS_T_SEQ,       /* ts_seq -> seq_ranges (folded) */
    TS_T_N
} ts_table;

typedef struct ts_rejected {
    char *topic, *reason;
    int32_t partition;
    int64_t offset;
    void *key, *value;
    size_t key_len, value_len;
} ts_rejected;

typedef struct ts_pos {
    char *topic;
    int32_t partition;
    int64_t next_offset;
} ts_pos;

/* A record as read, kept until the batch is stored: should the database
 * refuse the batch for its data, records are stored one by one to find the
 * one it refuses. Offsets into the batch's raw arena. */
typedef struct ts_raw {
    size_t topic, key, value; /* offsets in raw_bytes */
    size_t key_len, value_len;
    int has_key;
    int32_t partition;
    int64_t offset;
    ts_rec_kind kind;
} ts_raw;

typedef struct ts_batch {
    ts_buf event_rows;     /* COPY rows of the events table (ts_batch_event_columns) */
    ts_buf rows[TS_T_N];   /* COPY rows per table (ts_batch_copy_target); the folded ones at ts_batch_fold */
    ts_buf field;          /* COPY rows of ts_stg_field */
    ts_facts facts;
    int folded;
    size_t n_records, n_events, n_field;
    ts_rejected *rejected;
    size_t n_rejected;
    ts_pos *pos;
    size_t n_pos;
    ts_raw *raw;
    size_t n_raw, cap_raw;
    ts_buf raw_bytes;
    int32_t *months; /* distinct months (year * 12 + month - 1) of the events */
    size_t n_months;
} ts_batch;

/* "table (columns)" that table t's rows are COPYed into. */
const char *ts_batch_copy_target(ts_table t);
/* The events table's columns in COPY order (the decoded envelope and the
 * payload). */
const char *ts_batch_event_columns(void);

/* Decodes one record and appends it (or its rejection); advances the
 * partition's next offset past it either way. */
void ts_batch_add(ts_batch *b, const char *topic, int32_t partition, int64_t offset, const void *key,
                  size_t key_len, const void *value, size_t value_len, ts_rec_kind kind);

/* Appends a rejection without decoding (the database refused the record). */
void ts_batch_reject(ts_batch *b, const char *topic, int32_t partition, int64_t offset, const void *key,
                     size_t key_len, const void *value, size_t value_len, const char *reason);

/* Advances the partition's next offset past offset (ts_batch_add does
 * this itself; for a rejection appended with ts_batch_reject). */
void ts_batch_add_position(ts_batch *b, const char *topic, int32_t partition, int64_t offset);

/* Folds the facts into rows[TS_T_UNITS], [TS_T_LOTS] and [TS_T_SEQ]; once,
 * after the last record is added (again after more are added). */
void ts_batch_fold(ts_batch *b);

/* Raw record i's fields, for re-adding it to another batch. */
void ts_batch_raw(const ts_batch *b, size_t i, const char **topic, const void **key, const void **value);

void ts_batch_reset(ts_batch *b); /* empty, buffers kept for the next */
void ts_batch_free(ts_batch *b);

#endif
