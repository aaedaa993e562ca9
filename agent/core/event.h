/* SPDX-License-Identifier: Apache-2.0 */
/* event.h - building traceability events and committing them to the spool:
 * the envelope (event_id, seq, time, site, line) is stamped here so every
 * event is identified the same way. */
#ifndef LINEAGENT_EVENT_H
#define LINEAGENT_EVENT_H

#include <stdint.h>

#include "lineagent/v1/trace_event.pb-c.h"
#include "spool.h"

typedef Lineagent__V1__TraceEvent TraceEvent;

/* Time-ordered (version 7) UUID for an event stamped at now_ms (Unix ms),
 * as 36 lowercase characters + NUL; one thread's ids strictly increase. */
void event_uuid7(char out[37], int64_t now_ms);
/* The name of the event's body ("unit_written", ...), "unknown" if unset. */
const char *event_type(const TraceEvent *ev);

/* Stamps event_id, seq (from the spool), time_ms, site, line and the agent
 * instance id (the spool's) into ev, encodes it and appends it to the
 * spool, inside the caller's transaction.
 * The Kafka key is the lot id, or the order id when there is no lot.
 * 0 on success, -1 on a spool error. */
int event_commit(spool *sp, const char *site, const char *line, TraceEvent *ev);

#endif
