/* SPDX-License-Identifier: Apache-2.0 */
/* mqtt_persist.h - Paho's client persistence kept in the SQLite spool.
 *
 * Paho calls messageArrived before it acknowledges a QoS 1 message; if the
 * callback cannot take it (the spool refused the write), Paho queues the
 * message and acknowledges it all the same. With a persistence store Paho
 * writes that queue entry first and delivers it again after a crash; without
 * one, the order would exist only in memory. The store also keeps queued
 * results and the session's in-flight packets across restarts. */
#ifndef LINEAGENT_MQTT_PERSIST_H
#define LINEAGENT_MQTT_PERSIST_H

#include <MQTTClientPersistence.h>

#include "spool.h"

typedef struct mqtt_persist_ctx {
    const char *spool_path;
    spool_options opts;
} mqtt_persist_ctx;

/* Fills p with callbacks that open their own spool handle on ctx's path;
 * ctx must outlive the MQTT client. */
void mqtt_persist_init(MQTTClient_persistence *p, mqtt_persist_ctx *ctx);

#endif
