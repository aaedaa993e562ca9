/* SPDX-License-Identifier: Apache-2.0 */
/* kafka_record.h - the Kafka record a trace event becomes, defined once for
 * the forwarder and for `lineagent spool replay`, so a replayed event is the
 * record first sent: key = lot id, value = the encoded TraceEvent,
 * timestamp = the event's time, not the send time (a backlog sent after an
 * outage keeps when things happened), headers event_type and event_id
 * (consumers de-duplicate on the latter). */
#ifndef LINEAGENT_KAFKA_RECORD_H
#define LINEAGENT_KAFKA_RECORD_H

#include <librdkafka/rdkafka.h>
#include <stddef.h>
#include <stdint.h>

typedef struct kafka_record {
    const char *key, *type, *event_id;
    size_t key_len, type_len, event_id_len;
    const void *value;
    size_t value_len;
    int64_t time_ms;
    uint64_t seq; /* the message's opaque: its delivery report names it */
} kafka_record;

/* rd_kafka_producev with a copy of every field; librdkafka's error as is
 * (RD_KAFKA_RESP_ERR__QUEUE_FULL: try again after a poll). */
rd_kafka_resp_err_t kafka_record_produce(rd_kafka_t *rk, rd_kafka_topic_t *rkt, const kafka_record *r);

#endif
