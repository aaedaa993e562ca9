/* SPDX-License-Identifier: Apache-2.0 */
/* mqtt_link.h - the agent's MQTT session with the MES (Eclipse Paho, async):
 * orders in at QoS 1 on a persistent session, results and status out. */
#ifndef LINEAGENT_MQTT_LINK_H
#define LINEAGENT_MQTT_LINK_H

#include <MQTTClientPersistence.h>
#include <stddef.h>

typedef struct mqtt_link mqtt_link;

/* Called on Paho's thread for a message on <prefix>/command/<command>
 * ("site/resume"): operator commands, acted on at once, not persisted. */
typedef void (*mqtt_command_cb)(void *ud, const char *command, const void *payload, size_t len);

typedef struct mqtt_link_config {
    const char *uri;          /* tcp://host:port or ssl://host:port */
    const char *client_id;
    const char *username;     /* NULL: none */
    const char *password;     /* NULL: none (read from password_file by config) */
    const char *ca_file;      /* TLS: CA to verify the broker; NULL = system store */
    const char *cert_file;    /* TLS client certificate (mutual TLS), optional */
    const char *key_file;
    const char *topic_prefix; /* lineagent/<site>/<line> */
    int keepalive_s;          /* default 30 */
    /* Paho's store for in-flight messages (see mqtt_persist.h); NULL keeps
     * them in memory only, which loses an acknowledged order on a crash. */
    MQTTClient_persistence *persistence;
    mqtt_command_cb command; /* NULL: no subscription to <prefix>/command/# */
} mqtt_link_config;

/* Called on Paho's thread for every message on <prefix>/orders, before Paho
 * acknowledges it. Return 0 only once the payload is durable. On a non-zero
 * return Paho queues the message (in its persistence store, when it has
 * one), acknowledges it anyway, and offers it again later: without a store a
 * crash then loses it, which is why the agent always gives Paho one. */
typedef int (*mqtt_order_cb)(void *ud, const void *payload, size_t len);


/* Creates the client (clean session off, automatic reconnect, last will
 * {"state":"offline"} retained on <prefix>/status), connects in the
 * background and (re)subscribes to <prefix>/orders at QoS 1 on every
 * connect. 0 on success (connection may still be pending), -1 with err. */
int mqtt_link_start(mqtt_link **out, const mqtt_link_config *cfg, mqtt_order_cb cb, void *ud,
                    char *err, size_t err_len);
/* QoS 1 publish to <prefix>/orders/result (not retained). Non-blocking;
 * Paho queues it while disconnected. 0 on success. */
int mqtt_link_publish_result(mqtt_link *ml, const char *json);
/* Replaces the retained status announced on every (re)subscribe, e.g. with
 * an alarm, and publishes it now; NULL goes back to the plain online status. */
int mqtt_link_set_status(mqtt_link *ml, const char *json);
/* Live data for dashboards: a retained QoS 0 publish to <prefix>/<subtopic>
 * (not persisted: the next document replaces a lost one). Only while
 * ready; -1 otherwise, and the caller publishes again later. */
int mqtt_link_publish_live(mqtt_link *ml, const char *subtopic, const char *json);
/* 1 while connected and subscribed. */
int mqtt_link_ready(mqtt_link *ml);
/* Publishes {"state":"offline"} retained, disconnects (waiting up to
 * timeout_ms for queued publishes), destroys the client. NULL is a no-op. */
void mqtt_link_stop(mqtt_link *ml, int timeout_ms);

#endif
