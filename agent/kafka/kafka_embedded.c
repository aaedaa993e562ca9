/* SPDX-License-Identifier: Apache-2.0 */
/* kafka_embedded.c - the embedded mock cluster (see kafka_embedded.h). */
#include "kafka_embedded.h"

#include <librdkafka/rdkafka.h>
#include <librdkafka/rdkafka_mock.h>
#include <stdio.h>
#include <stdlib.h>

#include "log.h"

#define KAFKA_EMBEDDED_PARTITIONS 4

struct kafka_embedded {
    rd_kafka_t *host; /* owns the mock cluster */
    rd_kafka_mock_cluster_t *mock;
};

static void kafka_embedded_log_cb(const rd_kafka_t *rk, int level, const char *fac, const char *buf)
{
    log_msg(level <= 3 ? LL_ERROR : level <= 5 ? LL_WARN : LL_DEBUG, "librdkafka mock %s: %s", fac, buf);
}

kafka_embedded *kafka_embedded_start(const char *topic, char *err, size_t err_len)
{
    kafka_embedded *k = calloc(1, sizeof *k);
    if (!k) return snprintf(err, err_len, "out of memory"), NULL;
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    rd_kafka_conf_set_log_cb(conf, kafka_embedded_log_cb);
    k->host = rd_kafka_new(RD_KAFKA_PRODUCER, conf, err, err_len);
    if (!k->host) { /* conf is still ours on failure */
        rd_kafka_conf_destroy(conf);
        free(k);
        return NULL;
    }
    k->mock = rd_kafka_mock_cluster_new(k->host, 1);
    if (!k->mock) {
        snprintf(err, err_len, "cannot start the embedded Kafka mock cluster");
        kafka_embedded_stop(k);
        return NULL;
    }
    rd_kafka_mock_topic_create(k->mock, topic, KAFKA_EMBEDDED_PARTITIONS, 1);
    log_info("kafka: embedded mock cluster at %s (NOT durable: for demos and tests only)",
             kafka_embedded_bootstrap(k));
    return k;
}

const char *kafka_embedded_bootstrap(const kafka_embedded *k) { return rd_kafka_mock_cluster_bootstraps(k->mock); }

void kafka_embedded_stop(kafka_embedded *k)
{
    if (!k) return;
    if (k->mock) rd_kafka_mock_cluster_destroy(k->mock);
    rd_kafka_destroy(k->host);
    free(k);
}
