/* SPDX-License-Identifier: Apache-2.0 */
/* ts_storer.h - a thread that stores one batch at a time on a database
 * connection of its own, so the consumer reads and decodes the next batch
 * while this one is stored. One attempt per batch: a batch it could not
 * store goes back to the consumer, which retries it (backoff, pausing the
 * partitions, finding a record the database refuses) before handing over the
 * next. At most one batch is in flight; batches commit in the order handed
 * over. */
#ifndef TS_STORER_H
#define TS_STORER_H

#include <stddef.h>

#include "ts_batch.h"
#include "ts_config.h"
#include "ts_store.h"

typedef struct ts_storer ts_storer;

ts_storer *ts_storer_start(const ts_config *cfg); /* NULL when the thread cannot start */

/* Hands b over; the storer must be idle (ts_storer_wait returned). b is
 * not touched by the caller until ts_storer_wait gives it back. */
void ts_storer_submit(ts_storer *s, ts_batch *b);

/* Waits for the batch in flight and gives it back (NULL when none was),
 * with *rc 0 and *res when it was stored, -1 and err when not. */
ts_batch *ts_storer_wait(ts_storer *s, int *rc, ts_store_result *res, char *err, size_t err_len);

/* Whether a batch is being stored (not yet done). */
int ts_storer_busy(ts_storer *s);

void ts_storer_stop(ts_storer *s); /* waits for the batch in flight; closes the connection */

#endif
