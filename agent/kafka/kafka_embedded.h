/* SPDX-License-Identifier: Apache-2.0 */
/* kafka_embedded.h - an in-process Kafka (librdkafka's mock cluster) for
 * `bootstrap.servers = embedded`: demos and tests only, never durable. Kept
 * out of the production forwarder, which only sees a bootstrap address. */
#ifndef LINEAGENT_KAFKA_EMBEDDED_H
#define LINEAGENT_KAFKA_EMBEDDED_H

#include <stddef.h>

typedef struct kafka_embedded kafka_embedded;

/* Starts a one-broker cluster with topic created (4 partitions). NULL with
 * a reason in err on failure. */
kafka_embedded *kafka_embedded_start(const char *topic, char *err, size_t err_len);
/* The cluster's bootstrap address, valid until kafka_embedded_stop. */
const char *kafka_embedded_bootstrap(const kafka_embedded *k);
void kafka_embedded_stop(kafka_embedded *k);

#endif
