/* SPDX-License-Identifier: Apache-2.0 */
/* yield.h - the live yield of the line, as dashboards see it on
 * <prefix>/yield: the lot in progress and the last few completed lots,
 * each with its counts, yield, rate, failures by step and mode, counts per
 * firmware version and per-measurement statistics (Cpk). Built only from
 * committed trace events, the same ones Kafka consumers get, so its counts
 * agree with theirs. No I/O and no threads: live.c feeds it. */
#ifndef LINEAGENT_YIELD_H
#define LINEAGENT_YIELD_H

#include <stddef.h>
#include <stdint.h>

#include "event.h"

#define YIELD_KEEP_COMPLETED 3 /* completed lots kept in the document */

typedef struct yield yield;

yield *yield_new(void);
void yield_free(yield *y);
/* Applies one committed event (seq order). 1 when the document changed. */
int yield_apply(yield *y, const TraceEvent *ev);
/* The document (JSON, malloc'ed): in_progress is the lot in progress'
 * boards on the line, which no event tells. NULL when out of memory. */
char *yield_json(const yield *y, const char *site, const char *line, int64_t now_ms, uint32_t in_progress);
/* The lot in progress' id, or NULL. */
const char *yield_current_lot(const yield *y);
/* One line for people (systemd STATUS): lot, counts, yield. */
void yield_describe(const yield *y, char *buf, size_t len);
/* The seq of the first event of the oldest lot the document holds, 0 when
 * it holds none: replaying the spool from there rebuilds it. */
uint64_t yield_first_seq(const yield *y);

#endif
