/* SPDX-License-Identifier: Apache-2.0 */
/* site_cli.c - `lineagent site resume --station S [--site N] -c FILE`:
 * publishes {"station": S, "site": N} (no site: every site of the station)
 * at QoS 1 to <prefix>/command/site/resume with FILE's [mqtt] settings, the
 * same command a dashboard sends; the running agent clears the site's
 * fixture_site_suspect alarm and loads it again. Exit 0 once the broker
 * has the command, 1 when it could not be published, 2 on a usage or
 * config error. */
#include "site_cli.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config.h"
#include "mqtt_once.h"

#define SITE_CLI_TIMEOUT_MS 10000

static int site_cli_usage(int rc)
{
    fprintf(rc ? stderr : stdout,
            "usage: lineagent site resume --station NAME [--site N] -c FILE\n"
            "  clears a fixture site paused by fixture_site_suspect (no --site: every site of the station)\n"
            "  through <prefix>/command/site/resume on FILE's MQTT broker\n");
    return rc;
}

int site_cli_main(int argc, char **argv)
{
    if (argc < 2) return site_cli_usage(2);
    if (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0) return site_cli_usage(0);
    if (strcmp(argv[1], "resume") != 0) {
        fprintf(stderr, "lineagent site: unknown command \"%s\"\n", argv[1]);
        return site_cli_usage(2);
    }
    const char *path = NULL, *station = NULL;
    long site = -1;
    for (int i = 2; i < argc; i += 2) { /* every option takes a value */
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!v) {
            fprintf(stderr, "lineagent site resume: %s needs a value\n", a);
            return site_cli_usage(2);
        }
        if (strcmp(a, "-c") == 0 || strcmp(a, "--config") == 0) path = v;
        else if (strcmp(a, "--station") == 0) station = v;
        else if (strcmp(a, "--site") == 0) {
            char *end;
            site = strtol(v, &end, 10);
            if (!*v || *end || site < 0 || site > 255) {
                fprintf(stderr, "lineagent site resume: --site %s: want a site number, 0..255\n", v);
                return 2;
            }
        } else {
            fprintf(stderr, "lineagent site resume: unknown option %s\n", a);
            return site_cli_usage(2);
        }
    }
    if (!path || !station || !*station) return site_cli_usage(2);
    config cfg;
    char err[1024];
    if (config_load(&cfg, path, err, sizeof err) != 0) {
        fprintf(stderr, "lineagent: config error: %s\n", err);
        return 2;
    }
    const station_config *sc = NULL;
    for (size_t i = 0; i < cfg.n_stations && !sc; i++)
        if (strcmp(cfg.stations[i].name, station) == 0) sc = &cfg.stations[i];
    if (!sc || site >= (long)sc->sites) {
        if (!sc) fprintf(stderr, "lineagent site resume: %s has no station %s\n", path, station);
        else fprintf(stderr, "lineagent site resume: station %s has sites 0..%u only\n", station, sc->sites - 1);
        config_free(&cfg);
        return 2;
    }
    json_t *j = json_pack("{s:s}", "station", station);
    if (site >= 0) json_object_set_new(j, "site", json_integer(site));
    char *payload = json_dumps(j, JSON_COMPACT);
    json_decref(j);
    char topic[512];
    snprintf(topic, sizeof topic, "%s/command/site/resume", cfg.topic_prefix);
    mqtt_link_config mc = {.uri = cfg.mqtt_uri,           .client_id = cfg.mqtt_client_id,
                           .username = cfg.mqtt_username, .password = cfg.mqtt_password,
                           .ca_file = cfg.mqtt_ca_file,   .cert_file = cfg.mqtt_cert_file,
                           .key_file = cfg.mqtt_key_file, .keepalive_s = cfg.mqtt_keepalive_s};
    int rc = 0;
    if (mqtt_publish_once(&mc, topic, payload, SITE_CLI_TIMEOUT_MS, err, sizeof err) != 0) {
        fprintf(stderr, "lineagent site resume: %s\n", err);
        rc = 1;
    } else
        printf("published %s to %s\n", payload, topic);
    free(payload);
    config_free(&cfg);
    return rc;
}
