/* SPDX-License-Identifier: Apache-2.0 */
/* kafka_record.c - producing a trace event's Kafka record (see
 * kafka_record.h). */
#include "kafka_record.h"

#include <sys/types.h>

rd_kafka_resp_err_t kafka_record_produce(rd_kafka_t *rk, rd_kafka_topic_t *rkt, const kafka_record *r)
{
    return rd_kafka_producev(rk, RD_KAFKA_V_RKT(rkt), RD_KAFKA_V_KEY(r->key, r->key_len),
                             RD_KAFKA_V_VALUE((void *)r->value, r->value_len),
                             RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY), RD_KAFKA_V_TIMESTAMP(r->time_ms),
                             RD_KAFKA_V_HEADER("event_type", r->type, (ssize_t)r->type_len),
                             RD_KAFKA_V_HEADER("event_id", r->event_id, (ssize_t)r->event_id_len),
                             RD_KAFKA_V_OPAQUE((void *)(uintptr_t)r->seq), RD_KAFKA_V_END);
}
