/* SPDX-License-Identifier: Apache-2.0 */
/* config.h - the agent's INI configuration (libinih): every key declared
 * once in a table (conf_table.h) that drives parsing with line numbers in
 * errors, defaults, validation, and printing the effective configuration
 * with descriptions and secrets masked. deploy/lineagent.conf documents
 * every key (test_config_doc checks it against the tables). */
#ifndef LINEAGENT_CONFIG_H
#define LINEAGENT_CONFIG_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "adapter.h"
#include "kv.h"

#define CONFIG_MAX_STATIONS 128

typedef struct config {
    /* [agent] */
    char *site, *line, *spool_path;
    const char *log_level;
    uint32_t max_quantity;
    int shutdown_timeout_ms;
    size_t firmware_max_bytes;
    long firmware_timeout_ms;
    char *firmware_ca_file;
    /* [firmware] allowed_urls: comma-separated URL prefixes orders may name
     * (firmware_allowed_check); NULL: none, every order is refused */
    char *firmware_allowed_urls;
    char *firmware_release_keys; /* [firmware] release_keys: PEM public key files, comma-separated */
    char *agent_user; /* started as root: drop to this user; NULL: stay */
    /* [http]: the optional listener for /metrics, /healthz, /readyz */
    char *http_listen; /* host:port; NULL: none */
    /* [line]: fixture-site health (site_watch.h) */
    int site_alarm_consecutive;  /* failures in a row on one step; 0: off */
    double site_alarm_rate;      /* failed share of the last window boards; 0: off */
    int site_alarm_window;
    const char *site_alarm_action; /* "pause" or "warn" */
    /* [spool] */
    const char *spool_synchronous;
    int spool_batch_max;
    int64_t spool_retention_ms; /* delivered events, completed lots, unused images kept this long */
    int64_t spool_max_bytes;    /* 0: no limit; above it, back-pressure + alarm */
    int64_t spool_min_free_bytes; /* free space kept on the spool's filesystem */
    /* [mqtt] */
    char *mqtt_uri, *mqtt_client_id, *mqtt_username, *mqtt_password_file;
    char *mqtt_ca_file, *mqtt_cert_file, *mqtt_key_file;
    int mqtt_keepalive_s;
    int mqtt_live_topics; /* <prefix>/yield and <prefix>/stations/<name> */
    char *mqtt_password; /* read from mqtt_password_file; never printed */
    char *topic_prefix;  /* lineagent/<site>/<line> */
    /* [kafka] */
    char *kafka_topic;
    int kafka_queue_high_water;
    int64_t kafka_stall_alarm_ms; /* 0: never */
    kv_pair *kafka_props; /* handed to librdkafka as is (a <secret>_file's content under <secret>) */
    size_t n_kafka_props;
    kv_pair *kafka_files; /* "<secret>_file" = path, printed instead of the secret */
    size_t n_kafka_files;
    /* [provisioning]: the provisioning server (provisiond); url NULL = none */
    char *prov_url, *prov_ca_file, *prov_cert_file, *prov_key_file;
    long prov_timeout_ms;
    int prov_retries;
    /* [station NAME], in file order */
    station_config *stations;
    size_t n_stations;
} config;

/* Loads and validates path. 0 on success; -1 with "FILE:LINE: problem" (or
 * "FILE: problem" for a missing key) in err. On failure c holds nothing. */
int config_load(config *c, const char *path, char *err, size_t err_len);
void config_free(config *c);
/* Writes the effective configuration as INI, secrets masked. */
void config_print(const config *c, FILE *out);
/* The Kafka property's value, or NULL. */
const char *config_kafka_get(const config *c, const char *key);
/* 1 when a key names a secret whose value must never be shown. */
int config_is_secret(const char *key);
/* The i-th section's key table and name ("station" last: [station NAME]'s
 * own keys), or NULL past the last. */
const conf_key *config_section_keys(size_t i, const char **name);

#endif
