/* SPDX-License-Identifier: Apache-2.0 */
/* kafka_out.h - the forwarder: streams undelivered events from the spool to
 * Kafka with an idempotent producer and marks them delivered only on the
 * broker's delivery report. Runs on its own thread with its own spool
 * connection; optionally hosts the embedded mock cluster for demos. */
#ifndef LINEAGENT_KAFKA_OUT_H
#define LINEAGENT_KAFKA_OUT_H

#include <stdint.h>

#include "config.h"
#include "spool.h"

typedef struct kafka_out kafka_out;

/* Creates the producer (and, for bootstrap.servers = embedded, an in-process
 * mock cluster, whose address is logged) and starts the forwarder. */
kafka_out *kafka_out_start(const config *cfg, char *err, size_t err_len);
/* New events were committed: look at the spool now rather than at the next poll. */
void kafka_out_kick(kafka_out *ko);
/* Waits up to timeout_ms until the spool (read through the caller's handle
 * sp) holds nothing undelivered; returns what is still pending. */
int64_t kafka_out_drain(kafka_out *ko, spool *sp, int timeout_ms);
/* 1 when the forwarder's loop has turned within max_age_ms of now_ms
 * (monotonic): it is not stuck, whether or not Kafka takes the events. */
int kafka_out_alive(kafka_out *ko, int64_t now_ms, int64_t max_age_ms);
/* Bootstrap address of the embedded cluster, or NULL. */
const char *kafka_out_embedded_bootstrap(const kafka_out *ko);
void kafka_out_stop(kafka_out *ko);

#endif
