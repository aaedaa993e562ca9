/* SPDX-License-Identifier: Apache-2.0 */
/* ts_store.h - storing a batch in one PostgreSQL transaction: the events
 * (duplicates by event id skipped), what the query tables learn from the new
 * ones, the rejected records, the seq runs per agent and each partition's
 * next offset. Either all of it commits or none. */
#ifndef TS_STORE_H
#define TS_STORE_H

#include <libpq-fe.h>
#include <stddef.h>
#include <stdint.h>

#include "ts_batch.h"
#include "ts_config.h"

typedef struct ts_store_result {
    uint64_t stored, duplicates, rejected, field_stored;
} ts_store_result;

/* A connection to store batches on, with its staging tables; NULL with
 * err when the database cannot be reached or refuses. */
PGconn *ts_store_connect(const ts_config *cfg, char *err, size_t err_len);

/* Stores b (folding its facts first) for consumer group; on error the transaction is rolled back and
 * nothing of b is stored. */
int ts_store_flush(PGconn *db, ts_batch *b, const char *group, ts_store_result *res, char *err,
                   size_t err_len);

/* Records [from, to) of a partition that Kafka no longer holds: kept in
 * lost_records and the partition's next offset moved to to, in one
 * statement (a reassignment finds it and does not report it again).
 * first_read: the group had no offset stored for the partition. */
int ts_store_lost(PGconn *db, const char *group, const char *topic, int32_t partition, int64_t from, int64_t to,
                  int first_read, char *err, size_t err_len);

/* The stored next offset of (group, topic, partition), or -1 when none;
 * -2 on a database error (err set). */
int64_t ts_store_offset(PGconn *db, const char *group, const char *topic, int32_t partition, char *err,
                        size_t err_len);

#endif
