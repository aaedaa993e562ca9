/* SPDX-License-Identifier: Apache-2.0 */
/* ts_prune.h - retention of the raw events: dropping whole months of the
 * partitioned events table. The query tables (the answers) stay. */
#ifndef TS_PRUNE_H
#define TS_PRUNE_H

#include <jansson.h>
#include <libpq-fe.h>
#include <stddef.h>

/* The events partitions of months before `before` (YYYY-MM, not later than
 * the current month: a month still being written is never dropped), with
 * their row counts, dropped when drop is set (each in a transaction of its
 * own). *out: {"before", "dropped", "partitions": [{"name", "month",
 * "rows"}]}. 0; -1 with err on a bad month (*usage set) or a database
 * error. */
int ts_prune(PGconn *db, const char *before, int drop, json_t **out, int *usage, char *err, size_t err_len);

#endif
