/* SPDX-License-Identifier: Apache-2.0 */
/* ts_fold.h - what the merged tables learn from a batch's new events: each
 * event leaves facts about its unit, its lot and its agent's seq; folded at
 * the end of the batch into one row per unit, per lot and per run of seq,
 * which ts_store.c merges into units, lots and seq_ranges with one upsert
 * each. Folding here rather than in SQL spares the database a sort and an
 * aggregate per fact per batch (README.md, "Benchmark"). */
#ifndef TS_FOLD_H
#define TS_FOLD_H

#include <stddef.h>

#include "lineagent/v1/trace_event.pb-c.h"
#include "ts_copytext.h"

/* The folded rows' columns, in the order ts_fold_rows writes them. */
#define TS_FOLD_UNIT_COLUMNS                                                                                \
    "lot_id, board_id, order_id, site, line, serial, order_revision, fw_version, fw_sha256,"            \
    " fw_readback_sha256, written_at, write_station, passed, completed_at, completed_version,"          \
    " completed_sha256, first_seen, last_seen"
#define TS_FOLD_LOT_COLUMNS                                                                                 \
    "lot_id, order_id, site, line, product, quantity, started_at, completed_at, reported_passed,"       \
    " reported_failed"
#define TS_FOLD_SEQ_COLUMNS "agent_key, lo, hi"

typedef struct ts_unit_fact ts_unit_fact;
typedef struct ts_lot_fact ts_lot_fact;
typedef struct ts_seq_fact ts_seq_fact;

typedef struct ts_facts {
    ts_buf strs; /* the facts' strings, NUL-terminated, by offset */
    ts_unit_fact *units;
    ts_lot_fact *lots;
    ts_seq_fact *seqs;
    size_t n_units, cap_units, n_lots, cap_lots, n_seqs, cap_seqs;
} ts_facts;

/* Notes what ev (a new, decoded event) says about its unit, lot and seq;
 * agent_key names the agent instance its seq counts for. */
void ts_facts_add(ts_facts *f, const Lineagent__V1__TraceEvent *ev, const char *agent_key);

/* Appends the folded COPY rows (TS_FOLD_*_COLUMNS) to units, lots and seq;
 * the facts are sorted in the process and stay. */
void ts_fold_rows(ts_facts *f, ts_buf *units, ts_buf *lots, ts_buf *seq);

void ts_facts_reset(ts_facts *f); /* empty, buffers kept */
void ts_facts_free(ts_facts *f);

#endif
