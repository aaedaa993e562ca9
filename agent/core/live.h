/* SPDX-License-Identifier: Apache-2.0 */
/* live.h - live line data for dashboards and metrics. A thread with its
 * own spool connection follows the events the coordinator commits (woken
 * after each commit), folds them into the yield (yield.h) and the metric
 * registry, and publishes <prefix>/yield, retained, within a second of a
 * commit and at most twice a second. It reads only what is committed, so
 * nothing is shown before the commit that makes it true; it never slows
 * the coordinator, which only wakes it.
 *
 * After a restart the yield is rebuilt by replaying the spool from a
 * checkpoint (spool kv "live"/"from_seq": at or before the first event of
 * every lot the document holds and of every event not yet read), without
 * counting the replayed events into the metrics again. */
#ifndef LINEAGENT_LIVE_H
#define LINEAGENT_LIVE_H

#include <stddef.h>
#include <stdint.h>

#include "config.h"
#include "mqtt_link.h"
#include "spool.h"

typedef struct live live;

/* Opens its spool connection, replays from the checkpoint and starts
 * following. Call before the line commits anything. NULL with err. */
live *live_start(const config *cfg, const spool_options *so, char *err, size_t err_len);
/* Where to publish (NULL: nowhere yet); until set, documents wait. */
void live_attach(live *lv, mqtt_link *ml);
/* Hands over a retained document for <prefix>/<subtopic> (a station's),
 * published by the follower in its next burst (at most twice a second),
 * replacing one for the same subtopic not yet sent; copies both. Never
 * calls into MQTT, so the coordinator does not wait on Paho's locks.
 * -1 when the hand-off is full (try again later). Any thread. */
int live_offer(live *lv, const char *subtopic, const char *json);
/* Events were committed: read them now. Any thread. */
void live_kick(live *lv);
/* Seq of the last committed event read. */
uint64_t live_seq(live *lv);
/* One line for people: the lot in progress and its yield. */
void live_describe(live *lv, char *buf, size_t len);
void live_stop(live *lv);

#endif
