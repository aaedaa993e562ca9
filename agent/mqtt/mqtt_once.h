/* SPDX-License-Identifier: Apache-2.0 */
/* mqtt_once.h - one QoS 1 publish on a short-lived MQTT session, for the
 * command-line tools; the agent's own session is mqtt_link.h. */
#ifndef LINEAGENT_MQTT_ONCE_H
#define LINEAGENT_MQTT_ONCE_H

#include <stddef.h>

#include "mqtt_link.h"

/* Connects to cfg's broker (uri, TLS files, user, password, keepalive; the
 * client id is cfg->client_id with "-cli-<pid>", clean session), publishes
 * payload to topic at QoS 1, not retained, and returns 0 once the broker
 * has acknowledged it; -1 with err when it could not within timeout_ms per
 * step. cfg's topic_prefix, persistence and command are not used. */
int mqtt_publish_once(const mqtt_link_config *cfg, const char *topic, const char *payload, int timeout_ms,
                      char *err, size_t err_len);

#endif
