/* SPDX-License-Identifier: Apache-2.0 */
/* config.c - the agent's INI configuration: one conf_table.h table per
 * section, declaring every key once (type, default, range, description);
 * the cross-key rules that no single row can say; the adapters' keys checked
 * against their own tables. Unknown sections and keys are errors: a typo in
 * a plant's config must stop the agent at start-up, not silently fall back
 * to a default. [kafka] keys no table declares go to librdkafka as is. */
#include "config.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "adapter.h"
#include "firmware.h"
#include "log.h"
#include "order.h"

#define STATION_PREFIX "station "
#define CONFIG_FILE_SUFFIX "_file" /* <secret>_file: a librdkafka secret read from a file */

static const char *const config_log_levels[] = {"debug", "info", "warn", "error", NULL};
static const char *const config_syncs[] = {"FULL", "NORMAL", NULL};
static const char *const config_mqtt_schemes[] = {"tcp://", "ssl://", NULL};
static const char *const config_http_schemes[] = {"https://", "http://", NULL};

static const conf_key config_agent_keys[] = {
    {"site", CONF_STRING, .flags = CONF_REQUIRED, CONF_AT(config, site),
     .desc = "plant site; with line, the MQTT topic prefix lineagent/<site>/<line> and in every event"},
    {"line", CONF_STRING, .flags = CONF_REQUIRED, CONF_AT(config, line), .desc = "production line"},
    {"spool", CONF_STRING, .flags = CONF_REQUIRED, CONF_AT(config, spool_path),
     .desc = "the SQLite store-and-forward spool (created with mode 0600)"},
    {"log_level", CONF_ENUM, "info", .choices = config_log_levels, CONF_AT(config, log_level),
     .desc = "debug, info, warn or error"},
    {"max_quantity", CONF_INT, "100000", 1, 100000000, CONF_AT(config, max_quantity),
     .desc = "orders asking for more boards are refused as absurd"},
    {"shutdown_timeout_ms", CONF_INT, "10000", 0, 3600000, CONF_AT(config, shutdown_timeout_ms),
     .desc = "on SIGINT/SIGTERM: how long boards may finish and the spool drain before exit"},
    {"firmware_max_bytes", CONF_SIZE, "64M", 1, 1LL << 32, CONF_AT(config, firmware_max_bytes),
     .desc = "largest firmware image fetched from an order's URL"},
    {"firmware_timeout_ms", CONF_INT, "60000", 100, 3600000, CONF_AT(config, firmware_timeout_ms),
     .desc = "time allowed to fetch a firmware image"},
    {"firmware_ca_file", CONF_STRING, CONF_AT(config, firmware_ca_file),
     .desc = "CA bundle for https firmware URLs (default: the system store)"},
    {"user", CONF_STRING, CONF_AT(config, agent_user),
     .desc = "started as root: become this user once the HTTP listener is bound (unset: stay, with a warning)"},
    {0}};

static const char *const config_site_actions[] = {"warn", "pause", NULL};

static const conf_key config_line_keys[] = {
    {"site_alarm_consecutive", CONF_INT, "5", 0, 100000, CONF_AT(config, site_alarm_consecutive),
     .desc = "alarm fixture_site_suspect when a site fails this many boards in a row on one step (0: never)"},
    {"site_alarm_rate", CONF_DOUBLE, "0.5", .dmin = 0, .dmax = 1, CONF_AT(config, site_alarm_rate),
     .desc = "or when more than this share of its last site_alarm_window boards failed (0: never)"},
    {"site_alarm_window", CONF_INT, "20", 1, 100000, CONF_AT(config, site_alarm_window),
     .desc = "boards per site the failure rate is taken over"},
    {"site_alarm_action", CONF_ENUM, "warn", .choices = config_site_actions, CONF_AT(config, site_alarm_action),
     .desc = "warn: report only, cleared by the site's next pass; pause: load the site no more until resumed"},
    {0}};

static const conf_key config_spool_keys[] = {
    {"synchronous", CONF_ENUM, "FULL", .choices = config_syncs, CONF_AT(config, spool_synchronous),
     .desc = "FULL: a commit survives power loss; NORMAL: only a crash of the agent"},
    {"batch_max", CONF_INT, "2048", 1, 100000, CONF_AT(config, spool_batch_max),
     .desc = "most results committed in one transaction (group commit)"},
    {"retention", CONF_DURATION, "30d", 1000, INT64_MAX, CONF_AT(config, spool_retention_ms),
     .desc = "how long events acknowledged by Kafka, completed lots and unused images stay"},
    {"max_bytes", CONF_SIZE, "0", 1 << 20, INT64_MAX, .flags = CONF_ZERO_OFF, CONF_AT(config, spool_max_bytes),
     .desc = "size limit of the spool; above it alarm spool_over_limit and no new boards (0: none)"},
    {"min_free_bytes", CONF_SIZE, "32M", 0, INT64_MAX, CONF_AT(config, spool_min_free_bytes),
     .desc = "free space kept on the spool's filesystem; under it alarm spool_low_space and no new boards"},
    {0}};

static const conf_key config_mqtt_keys[] = {
    {"uri", CONF_STRING, .choices = config_mqtt_schemes, .flags = CONF_REQUIRED, CONF_AT(config, mqtt_uri),
     .desc = "the MES broker: tcp://host:port, or ssl://host:port for TLS"},
    {"client_id", CONF_STRING, CONF_AT(config, mqtt_client_id),
     .desc = "keep it stable: the broker keeps the persistent session by it (default lineagent-<site>-<line>)"},
    {"keepalive", CONF_INT, "30", 5, 3600, CONF_AT(config, mqtt_keepalive_s), .desc = "MQTT keepalive, seconds"},
    {"username", CONF_STRING, CONF_AT(config, mqtt_username), .desc = "MQTT user name"},
    {"password_file", CONF_SECRET_FILE, CONF_AT(config, mqtt_password_file),
     .secret_at = offsetof(config, mqtt_password), .desc = "the MQTT password is this file's first line"},
    {"ca_file", CONF_STRING, CONF_AT(config, mqtt_ca_file), .desc = "ssl://: CA that signed the broker's certificate"},
    {"cert_file", CONF_STRING, CONF_AT(config, mqtt_cert_file), .desc = "ssl://: this agent's client certificate"},
    {"key_file", CONF_STRING, CONF_AT(config, mqtt_key_file), .desc = "ssl://: the client certificate's key"},
    {"live_topics", CONF_BOOL, "true", CONF_AT(config, mqtt_live_topics),
     .desc = "publish <prefix>/yield and <prefix>/stations/<name> (false: neither; metrics and STATUS stay)"},
    {0}};

static const conf_key config_kafka_keys[] = {
    {"topic", CONF_STRING, "lineagent.trace.v1", CONF_AT(config, kafka_topic),
     .desc = "topic of the traceability events (key = lot id, value = TraceEvent)"},
    {"queue_high_water", CONF_INT, "10000", 1, 10000000, CONF_AT(config, kafka_queue_high_water),
     .desc = "most events handed to librdkafka and not yet acknowledged; the rest wait in the spool"},
    {"stall_alarm", CONF_DURATION, "60s", 0, INT64_MAX, CONF_AT(config, kafka_stall_alarm_ms),
     .desc = "alarm kafka_stalled when deliveries have not moved for this long (0: never)"},
    {0}};

/* allowed_urls is a list: config_on_key checks every prefix in it
 * (firmware_allowed_check), so the error names the line. Empty or absent:
 * every order is refused. */
static const conf_key config_firmware_keys[] = {
    {"allowed_urls", CONF_STRING, CONF_AT(config, firmware_allowed_urls),
     .desc = "URL prefixes (each ending in '/', comma-separated) an order's firmware.url may name; "
             "none: every order is refused"},
    {"release_keys", CONF_STRING, CONF_AT(config, firmware_release_keys),
     .desc = "PEM public keys (Ed25519 or ECDSA P-256) of the release team, comma-separated; when set, an order's "
             "firmware must carry a signature by one of them"},
    {0}};

static const conf_key config_http_keys[] = {
    {"listen", CONF_STRING, CONF_AT(config, http_listen),
     .desc = "host:port of the optional listener for /metrics, /healthz and /readyz (unset: none)"},
    {0}};

static const conf_key config_provisioning_keys[] = {
    {"url", CONF_STRING, .choices = config_http_schemes, CONF_AT(config, prov_url),
     .desc = "the provisioning server (provisiond); http:// only on loopback"},
    {"ca_file", CONF_STRING, CONF_AT(config, prov_ca_file), .desc = "pins the server's CA (https)"},
    {"cert_file", CONF_STRING, CONF_AT(config, prov_cert_file), .desc = "this line's client certificate"},
    {"key_file", CONF_STRING, CONF_AT(config, prov_key_file), .desc = "the client certificate's key"},
    {"timeout_ms", CONF_INT, "5000", 100, 600000, CONF_AT(config, prov_timeout_ms), .desc = "per request"},
    {"retries", CONF_INT, "3", 0, 20, CONF_AT(config, prov_retries), .desc = "after the first try, with backoff"},
    {0}};

/* "write, verify, ..." as the station's step mask (bit 1 << Step). */
static int config_steps_parse(const char *v, void *field, char *problem, size_t len)
{
    char *copy = strdup(v), *save = NULL;
    uint32_t mask = 0;
    for (char *tok = strtok_r(copy, ", \t", &save); tok; tok = strtok_r(NULL, ", \t", &save)) {
        Step s;
        if (order_step_parse(tok, &s) != 0 || s == LINEAGENT__V1__STEP__STEP_UNSPECIFIED) {
            snprintf(problem, len, "unknown step \"%s\" (known: write, verify, provision, test, calibrate, lock)",
                     tok);
            free(copy);
            return -1;
        }
        mask |= 1u << s;
    }
    free(copy);
    if (!mask) return snprintf(problem, len, "must name at least one step"), -1;
    memcpy(field, &mask, sizeof mask);
    return 0;
}

static void config_steps_format(const void *field, char *out, size_t len)
{
    uint32_t mask;
    memcpy(&mask, field, sizeof mask);
    size_t off = 0;
    out[0] = 0;
    for (int s = LINEAGENT__V1__STEP__WRITE; s <= LINEAGENT__V1__STEP__LOCK && off < len; s++)
        if (mask & (1u << s)) {
            off += (size_t)snprintf(out + off, len - off, "%s", off ? ", " : "");
            for (const char *n = order_step_name((Step)s); *n && off + 1 < len; n++)
                out[off++] = (char)tolower((unsigned char)*n);
            out[off] = 0;
        }
}

/* [station NAME]'s own keys; "<adapter>.<key>" keys are the adapter's. */
static const conf_key config_station_keys[] = {
    {"adapter", CONF_STRING, .flags = CONF_REQUIRED, CONF_AT(station_config, adapter),
     .desc = "which adapter drives the station"},
    {"steps", CONF_CUSTOM, .flags = CONF_REQUIRED, CONF_AT(station_config, steps_mask),
     .parse = config_steps_parse, .format = config_steps_format,
     .desc = "the steps it performs: write, verify, provision, test, calibrate, lock"},
    {"sites", CONF_INT, "1", 1, 64, CONF_AT(station_config, sites),
     .desc = "fixture sites run in parallel (gang programming), each with its own worker and adapter state"},
    {0}};

enum { SEC_AGENT, SEC_LINE, SEC_FIRMWARE, SEC_SPOOL, SEC_MQTT, SEC_KAFKA, SEC_HTTP, SEC_PROVISIONING, SEC_N };
static const struct {
    const char *name;
    const conf_key *keys;
} config_sections[] = {
    [SEC_AGENT] = {"agent", config_agent_keys},    [SEC_LINE] = {"line", config_line_keys},
    [SEC_FIRMWARE] = {"firmware", config_firmware_keys},
    [SEC_SPOOL] = {"spool", config_spool_keys},
    [SEC_MQTT] = {"mqtt", config_mqtt_keys},       [SEC_KAFKA] = {"kafka", config_kafka_keys},
    [SEC_HTTP] = {"http", config_http_keys},
    [SEC_PROVISIONING] = {"provisioning", config_provisioning_keys},
};

const conf_key *config_section_keys(size_t i, const char **name)
{
    if (i < SEC_N) return *name = config_sections[i].name, config_sections[i].keys;
    if (i == SEC_N) return *name = "station", config_station_keys;
    return NULL;
}

typedef struct config_parse {
    config *c;
    conf_section sec[SEC_N];
    conf_section st_sec[CONFIG_MAX_STATIONS];
    char *st_label[CONFIG_MAX_STATIONS]; /* "station NAME" */
    int steps_line[CONFIG_MAX_STATIONS];
    int *key_lines[CONFIG_MAX_STATIONS]; /* the line of each stations[i].keys[k] */
    int *kafka_lines;                    /* the line of each kafka_props[k] */
} config_parse;

/* Sets k in the array; returns its index. */
static size_t kv_set(kv_pair **arr, size_t *n, const char *k, const char *v)
{
    size_t i = 0;
    while (i < *n && strcmp((*arr)[i].key, k) != 0) i++;
    if (i == *n) {
        *arr = realloc(*arr, (*n + 1) * sizeof **arr);
        (*arr)[(*n)++] = (kv_pair){strdup(k), NULL};
    } else {
        explicit_bzero((*arr)[i].value, strlen((*arr)[i].value));
        free((*arr)[i].value);
    }
    (*arr)[i].value = strdup(v);
    return i;
}

/* kv_set, keeping the line it was set on in the parallel array *lines. */
static void kv_set_at(kv_pair **arr, size_t *n, int **lines, const char *k, const char *v, int line)
{
    size_t i = kv_set(arr, n, k, v);
    *lines = realloc(*lines, *n * sizeof **lines);
    (*lines)[i] = line;
}

static void kv_free(kv_pair *kv, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        free(kv[i].key);
        explicit_bzero(kv[i].value, strlen(kv[i].value)); /* secrets among them */
        free(kv[i].value);
    }
    free(kv);
}

/* A [kafka] key no table declares: librdkafka's, or "<secret>_file". */
static int config_kafka_prop(config_parse *p, const char *key, const char *v, int line, char *err, size_t len)
{
    config *c = p->c;
    size_t n = strlen(key), sl = strlen(CONFIG_FILE_SUFFIX);
    char stem[128], file_key[160];
    if (n > sl && n - sl < sizeof stem && strcmp(key + n - sl, CONFIG_FILE_SUFFIX) == 0) {
        snprintf(stem, sizeof stem, "%.*s", (int)(n - sl), key);
        if (config_is_secret(stem)) {
            if (kv_find(c->kafka_props, c->n_kafka_props, stem) && !kv_find(c->kafka_files, c->n_kafka_files, key))
                return snprintf(err, len, "[kafka] %s: %s is set inline too; keep one", key, stem), -1;
            char *secret = NULL, problem[300];
            if (conf_read_secret(v, &secret, problem, sizeof problem) != 0)
                return snprintf(err, len, "[kafka] %s: %s", key, problem), -1;
            kv_set_at(&c->kafka_props, &c->n_kafka_props, &p->kafka_lines, stem, secret, line);
            explicit_bzero(secret, strlen(secret));
            free(secret);
            kv_set(&c->kafka_files, &c->n_kafka_files, key, v);
            return 0;
        }
    }
    snprintf(file_key, sizeof file_key, "%s%s", key, CONFIG_FILE_SUFFIX);
    if (kv_find(c->kafka_files, c->n_kafka_files, file_key))
        return snprintf(err, len, "[kafka] %s: %s is set too; keep one", key, file_key), -1;
    kv_set_at(&c->kafka_props, &c->n_kafka_props, &p->kafka_lines, key, v, line);
    return 0;
}

static int config_on_station(config_parse *p, const char *name, const char *key, const char *v, int line,
                             char *err, size_t len)
{
    config *c = p->c;
    size_t i = 0;
    while (i < c->n_stations && strcmp(c->stations[i].name, name) != 0) i++;
    if (i == c->n_stations) {
        if (i == CONFIG_MAX_STATIONS) return snprintf(err, len, "more than %d stations", CONFIG_MAX_STATIONS), -1;
        c->n_stations++;
        c->stations[i].name = strdup(name);
        size_t ll = strlen(STATION_PREFIX) + strlen(name) + 1;
        p->st_label[i] = malloc(ll);
        snprintf(p->st_label[i], ll, "%s%s", STATION_PREFIX, name);
        if (conf_init(&p->st_sec[i], p->st_label[i], "", config_station_keys, &c->stations[i], err, len) != 0)
            return -1;
    }
    station_config *st = &c->stations[i];
    if (strchr(key, '.')) {
        kv_set_at(&st->keys, &st->n_keys, &p->key_lines[i], key, v, line); /* checked once the adapter is known */
        return 0;
    }
    if (strcmp(key, "adapter") == 0 && !adapter_find(v))
        return snprintf(err, len, "unknown adapter \"%s\" (known: %s)", v, adapter_names()), -1;
    if (strcmp(key, "steps") == 0) p->steps_line[i] = line;
    return conf_set(&p->st_sec[i], key, v, err, len) ? -1 : 0;
}

/* [http] listen: "host:port", "[v6]:port"; port 0 picks a free one. */
static int config_listen_ok(const char *v)
{
    const char *colon = strrchr(v, ':');
    char *end;
    if (!colon || colon == v) return 0;
    errno = 0;
    long port = strtol(colon + 1, &end, 10);
    return !errno && end != colon + 1 && !*end && port >= 0 && port <= 65535;
}

static int config_on_key(void *user, const char *section, const char *key, const char *v, int line, char *err,
                         size_t len)
{
    config_parse *p = user;
    if (strcmp(section, "http") == 0 && strcmp(key, "listen") == 0 && !config_listen_ok(v))
        return snprintf(err, len, "[http] listen: must be host:port, e.g. 127.0.0.1:9464 or [::1]:9464"), -1;
    if (strncmp(section, STATION_PREFIX, strlen(STATION_PREFIX)) == 0)
        return config_on_station(p, section + strlen(STATION_PREFIX), key, v, line, err, len);
    for (int i = 0; i < SEC_N; i++)
        if (strcmp(section, config_sections[i].name) == 0) {
            int rc = conf_set(&p->sec[i], key, v, err, len);
            if (rc == CONF_UNKNOWN && i == SEC_KAFKA) return config_kafka_prop(p, key, v, line, err, len);
            if (rc == 0 && i == SEC_FIRMWARE && strcmp(key, "allowed_urls") == 0) {
                char why[200];
                if (firmware_allowed_check(v, why, sizeof why) != 0)
                    return snprintf(err, len, "[firmware] allowed_urls: %s", why), -1;
            }
            return rc ? -1 : 0;
        }
    return snprintf(err, len, "unknown section [%s]", section), -1;
}

/* "FILE:LINE: message", or "FILE: message" without a line; returns -1. */
static int config_fail(char *err, size_t len, const char *path, int line, const char *fmt, ...)
    __attribute__((format(printf, 5, 6)));
static int config_fail(char *err, size_t len, const char *path, int line, const char *fmt, ...)
{
    int off = line > 0 ? snprintf(err, len, "%s:%d: ", path, line) : snprintf(err, len, "%s: ", path);
    va_list ap;
    va_start(ap, fmt);
    if ((size_t)off < len) vsnprintf(err + off, len - (size_t)off, fmt, ap);
    va_end(ap);
    return -1;
}

/* 1 when the host at the start of hostport (up to ':', '/' or the end;
 * "[::1]" bracketed) is a loopback address or localhost. */
static int url_host_is_loopback(const char *hostport)
{
    char host[64];
    size_t n;
    if (hostport[0] == '[') {
        n = strcspn(hostport + 1, "]");
        if (hostport[1 + n] != ']' || n >= sizeof host) return 0;
        memcpy(host, hostport + 1, n);
    } else {
        n = strcspn(hostport, ":/?#");
        if (n >= sizeof host) return 0;
        memcpy(host, hostport, n);
    }
    host[n] = 0;
    if (strcmp(host, "localhost") == 0) return 1;
    struct in_addr a4;
    struct in6_addr a6;
    if (inet_pton(AF_INET, host, &a4) == 1) return (ntohl(a4.s_addr) >> 24) == 127;
    return inet_pton(AF_INET6, host, &a6) == 1 && IN6_IS_ADDR_LOOPBACK(&a6);
}

/* A station's adapter can do its steps, knows its keys, and takes their
 * values (each error naming the line), then judges them as a whole (paths,
 * required keys): the adapter's open has no side effects. */
static int config_check_station(config_parse *p, size_t i, const char *path, char *err, size_t len)
{
    const station_config *st = &p->c->stations[i];
    char msg[512];
    if (conf_done(&p->st_sec[i], msg, sizeof msg) != 0) return config_fail(err, len, path, 0, "%s", msg);
    const adapter *ad = adapter_find(st->adapter);
    uint32_t can = 0;
    for (unsigned s = LINEAGENT__V1__STEP__WRITE; s <= LINEAGENT__V1__STEP__LOCK; s++)
        if (adapter_step(ad, s)) can |= 1u << s;
    if (st->steps_mask & ~can) {
        uint32_t cannot = st->steps_mask & ~can;
        char steps[96], performs[96];
        config_steps_format(&cannot, steps, sizeof steps);
        config_steps_format(&can, performs, sizeof performs);
        return config_fail(err, len, path, p->steps_line[i],
                           "[station %s] steps: adapter %s cannot perform %s (it performs %s)", st->name, ad->name,
                           steps, performs);
    }
    size_t plen = strlen(ad->name);
    for (size_t k = 0; k < st->n_keys; k++) {
        const char *key = st->keys[k].key;
        if (strncmp(key, ad->name, plen) != 0 || key[plen] != '.' || !conf_find(ad->keys, key + plen + 1))
            return config_fail(err, len, path, p->key_lines[i][k], "[station %s] unknown key \"%s\" for adapter %s",
                               st->name, key, ad->name);
    }
    void *probe = calloc(1, ad->conf_size);
    size_t bad = 0;
    int rc = adapter_conf_load(ad, st, probe, &bad, msg, sizeof msg);
    if (rc == 0) conf_free(ad->keys, probe);
    free(probe);
    if (rc != 0) return config_fail(err, len, path, bad < st->n_keys ? p->key_lines[i][bad] : 0, "%s", msg);
    probe = NULL;
    if (ad->open(&probe, st, msg, sizeof msg) != 0) return config_fail(err, len, path, 0, "%s", msg);
    ad->close(probe);
    return 0;
}

static int config_finish(config_parse *p, const char *path, char *err, size_t len)
{
    config *c = p->c;
    char msg[512];
    for (int i = 0; i < SEC_N; i++)
        if (conf_done(&p->sec[i], msg, sizeof msg) != 0) return config_fail(err, len, path, 0, "%s", msg);
    if (!config_kafka_get(c, "bootstrap.servers"))
        return config_fail(err, len, path, 0, "[kafka] bootstrap.servers is required (\"embedded\" for the built-in mock)");
    if (strncmp(c->mqtt_uri, "tcp://", 6) == 0 && (c->mqtt_cert_file || c->mqtt_ca_file))
        return config_fail(err, len, path, 0, "[mqtt] TLS files are set but uri is tcp:// (use ssl://)");
    if (!c->mqtt_client_id) {
        size_t n = strlen(c->site) + strlen(c->line) + 16;
        c->mqtt_client_id = malloc(n);
        snprintf(c->mqtt_client_id, n, "lineagent-%s-%s", c->site, c->line);
    }
    size_t n = strlen(c->site) + strlen(c->line) + 16;
    c->topic_prefix = malloc(n);
    snprintf(c->topic_prefix, n, "lineagent/%s/%s", c->site, c->line);
    if (strpbrk(c->topic_prefix + 10, "+#"))
        return config_fail(err, len, path, 0, "[agent] site and line may not contain MQTT wildcards + or #");
    if (!c->prov_url && (c->prov_ca_file || c->prov_cert_file || c->prov_key_file))
        return config_fail(err, len, path, 0, "[provisioning] url is required when the section is used");
    if (!c->prov_cert_file != !c->prov_key_file)
        return config_fail(err, len, path, 0, "[provisioning] cert_file and key_file go together");
    if (c->prov_url && strncmp(c->prov_url, "http://", 7) == 0 && !url_host_is_loopback(c->prov_url + 7))
        return config_fail(err, len, path, 0, "[provisioning] plain http:// is allowed for a server on loopback "
                                              "only; use https:// with ca_file, cert_file and key_file");
    if (c->n_stations == 0)
        return config_fail(err, len, path, 0, "no [station NAME] section: the line needs at least one station");
    for (size_t i = 0; i < c->n_stations; i++)
        if (config_check_station(p, i, path, err, len) != 0) return -1;
    return 0;
}

/* A secret written into the file itself is only as private as the file. */
static void config_warn_inline_secrets(const config_parse *p, const char *path)
{
    const config *c = p->c;
    struct stat sb;
    if (stat(path, &sb) != 0 || !(sb.st_mode & (S_IRGRP | S_IROTH))) return;
    for (size_t i = 0; i < c->n_kafka_props; i++) {
        const char *key = c->kafka_props[i].key;
        char file_key[160];
        snprintf(file_key, sizeof file_key, "%s%s", key, CONFIG_FILE_SUFFIX);
        if (config_is_secret(key) && !kv_find(c->kafka_files, c->n_kafka_files, file_key))
            log_warn("%s:%d: [kafka] %s is inline in a file readable by %s (mode %04o): chmod 600 it, or use %s",
                     path, p->kafka_lines[i], key, sb.st_mode & S_IROTH ? "others" : "its group",
                     (unsigned)(sb.st_mode & 07777), file_key);
    }
}

int config_load(config *c, const char *path, char *err, size_t err_len)
{
    memset(c, 0, sizeof *c);
    c->stations = calloc(CONFIG_MAX_STATIONS, sizeof *c->stations);
    config_parse *p = calloc(1, sizeof *p);
    p->c = c;
    int rc = 0;
    for (int i = 0; i < SEC_N && rc == 0; i++)
        rc = conf_init(&p->sec[i], config_sections[i].name, "", config_sections[i].keys, c, err, err_len);
    if (rc == 0) rc = conf_parse_file(path, config_on_key, p, err, err_len);
    if (rc == 0) rc = config_finish(p, path, err, err_len);
    if (rc == 0) config_warn_inline_secrets(p, path);
    for (size_t i = 0; i < c->n_stations; i++) {
        free(p->st_label[i]);
        free(p->key_lines[i]);
    }
    free(p->kafka_lines);
    free(p);
    if (rc != 0) {
        config_free(c);
        return -1;
    }
    return 0;
}

void config_free(config *c)
{
    for (int i = 0; i < SEC_N; i++) conf_free(config_sections[i].keys, c);
    free(c->topic_prefix);
    kv_free(c->kafka_props, c->n_kafka_props);
    kv_free(c->kafka_files, c->n_kafka_files);
    for (size_t i = 0; i < c->n_stations; i++) {
        conf_free(config_station_keys, &c->stations[i]);
        free(c->stations[i].name);
        kv_free(c->stations[i].keys, c->stations[i].n_keys);
    }
    free(c->stations);
    memset(c, 0, sizeof *c);
}

int config_is_secret(const char *key)
{
    static const char *const marks[] = {"password", "secret", ".pem", "oauthbearer.config", NULL};
    for (const char *const *m = marks; *m; m++)
        if (strstr(key, *m)) return 1;
    return 0;
}

const char *config_kafka_get(const config *c, const char *key) { return kv_find(c->kafka_props, c->n_kafka_props, key); }

/* [kafka]'s librdkafka properties, a secret read from a file as its path. */
static void config_print_kafka_props(const config *c, FILE *out)
{
    fprintf(out, "# librdkafka's own properties\n");
    for (size_t i = 0; i < c->n_kafka_props; i++) {
        const char *key = c->kafka_props[i].key;
        char file_key[160];
        snprintf(file_key, sizeof file_key, "%s%s", key, CONFIG_FILE_SUFFIX);
        const char *file = kv_find(c->kafka_files, c->n_kafka_files, file_key);
        if (file) fprintf(out, "%s = %s\n", file_key, file);
        else fprintf(out, "%s = %s\n", key, config_is_secret(key) ? "********" : c->kafka_props[i].value);
    }
}

void config_print(const config *c, FILE *out)
{
    for (int i = 0; i < SEC_N; i++) {
        /* every row holds its value or default; an unset string is NULL */
        conf_section sec = {config_sections[i].name, "", config_sections[i].keys, (void *)c, UINT64_MAX};
        fprintf(out, "%s[%s]\n", i ? "\n" : "", sec.name);
        conf_print(&sec, out);
        if (i == SEC_KAFKA) config_print_kafka_props(c, out);
    }
    for (size_t i = 0; i < c->n_stations; i++) {
        const station_config *st = &c->stations[i];
        const adapter *ad = adapter_find(st->adapter);
        fprintf(out, "\n[station %s]\n", st->name);
        conf_section sec = {st->name, "", config_station_keys, (void *)st, UINT64_MAX};
        conf_print(&sec, out);
        void *state = calloc(1, ad->conf_size);
        char prefix[32], msg[256];
        snprintf(prefix, sizeof prefix, "%s.", ad->name);
        if (conf_init(&sec, st->name, prefix, ad->keys, state, msg, sizeof msg) == 0 &&
            conf_load_kv(&sec, st->keys, st->n_keys, NULL, msg, sizeof msg) == 0) { /* it passed config_load */
            conf_print(&sec, out);
            conf_free(ad->keys, state);
        }
        free(state);
    }
}
