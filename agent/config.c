/* config.c - loading, validating and printing the agent's INI configuration.
 * Unknown sections and keys are errors: a typo in a plant's config must stop
 * the agent at start-up, not silently fall back to a default. */
#include "config.h"

#include <arpa/inet.h>
#include <errno.h>
#include <ini.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "adapter.h"
#include "firmware.h"
#include "log.h"
#include "order.h"

#define STATION_PREFIX "station "

typedef struct config_parse {
    config *c;
    char *err;
    size_t err_len;
    const char *path;
} config_parse;

static void set_str(char **dst, const char *v)
{
    free(*dst);
    *dst = strdup(v);
}

static int parse_long(const char *v, long lo, long hi, long *out)
{
    char *end;
    errno = 0;
    long x = strtol(v, &end, 10);
    if (errno || end == v || *end || x < lo || x > hi) return -1;
    *out = x;
    return 0;
}

/* "30d", "12h", "90m", "45s" or plain seconds. */
static int parse_duration_ms(const char *v, int64_t *out)
{
    char *end;
    errno = 0;
    long long x = strtoll(v, &end, 10);
    if (errno || end == v || x < 0) return -1;
    long long unit = 1000;
    if (*end == 'd') unit = 86400000LL, end++;
    else if (*end == 'h') unit = 3600000LL, end++;
    else if (*end == 'm') unit = 60000LL, end++;
    else if (*end == 's') end++;
    if (*end || x > INT64_MAX / unit) return -1;
    *out = x * unit;
    return 0;
}

/* Bytes with an optional K, M or G (powers of 1024). */
static int parse_bytes(const char *v, int64_t *out)
{
    char *end;
    errno = 0;
    long long x = strtoll(v, &end, 10);
    if (errno || end == v || x < 0) return -1;
    int shift = 0;
    if (*end == 'K') shift = 10, end++;
    else if (*end == 'M') shift = 20, end++;
    else if (*end == 'G') shift = 30, end++;
    if (*end || x > (INT64_MAX >> shift)) return -1;
    *out = (int64_t)x << shift;
    return 0;
}

static void kv_add(config_kv **arr, size_t *n, const char *k, const char *v)
{
    for (size_t i = 0; i < *n; i++)
        if (strcmp((*arr)[i].key, k) == 0) {
            set_str(&(*arr)[i].value, v);
            return;
        }
    *arr = realloc(*arr, (*n + 1) * sizeof **arr);
    (*arr)[*n].key = strdup(k);
    (*arr)[*n].value = strdup(v);
    (*n)++;
}

static config_station *station_get(config *c, const char *name)
{
    for (size_t i = 0; i < c->n_stations; i++)
        if (strcmp(c->stations[i].name, name) == 0) return &c->stations[i];
    if (c->n_stations == CONFIG_MAX_STATIONS) return NULL;
    c->stations = realloc(c->stations, (c->n_stations + 1) * sizeof *c->stations);
    config_station *st = &c->stations[c->n_stations++];
    memset(st, 0, sizeof *st);
    st->name = strdup(name);
    return st;
}

static int parse_steps(const char *v, uint32_t *mask, char *bad, size_t bad_len)
{
    char *copy = strdup(v), *save = NULL;
    *mask = 0;
    for (char *tok = strtok_r(copy, ", \t", &save); tok; tok = strtok_r(NULL, ", \t", &save)) {
        Step s;
        if (order_step_parse(tok, &s) != 0 || s == LINEAGENT__V1__STEP__STEP_UNSPECIFIED) {
            snprintf(bad, bad_len, "%s", tok);
            free(copy);
            return -1;
        }
        *mask |= 1u << s;
    }
    free(copy);
    return *mask ? 0 : -1;
}

/* One key of a named section; returns 0 with err set when the key is bad. */
#define BAD(...) (snprintf(p->err, p->err_len, __VA_ARGS__), 0)

static int on_station(config_parse *p, const char *name, const char *key, const char *v)
{
    config_station *st = station_get(p->c, name);
    if (!st) return BAD("more than %d stations", CONFIG_MAX_STATIONS);
    if (strcmp(key, "adapter") == 0) {
        if (!adapter_find(v)) return BAD("unknown adapter \"%s\" (known: %s)", v, adapter_names());
        set_str(&st->adapter, v);
    } else if (strcmp(key, "steps") == 0) {
        char bad[64] = "";
        if (parse_steps(v, &st->steps_mask, bad, sizeof bad) != 0)
            return BAD("steps: unknown step \"%s\" (known: write, verify, provision, test, calibrate, lock)", bad);
    } else if (strcmp(key, "sites") == 0) {
        long n;
        if (parse_long(v, 1, 64, &n)) return BAD("sites must be 1..64");
        st->sites = (uint32_t)n;
    } else if (strchr(key, '.')) {
        kv_add(&st->keys, &st->n_keys, key, v); /* checked against the adapter once known */
    } else {
        return BAD("unknown key \"%s\" in [station %s]", key, name);
    }
    return 1;
}

static int on_key(void *user, const char *section, const char *key, const char *v)
{
    config_parse *p = user;
    config *c = p->c;
    long x;
    if (strncmp(section, STATION_PREFIX, strlen(STATION_PREFIX)) == 0)
        return on_station(p, section + strlen(STATION_PREFIX), key, v);
    if (strcmp(section, "agent") == 0) {
        if (strcmp(key, "site") == 0) set_str(&c->site, v);
        else if (strcmp(key, "line") == 0) set_str(&c->line, v);
        else if (strcmp(key, "spool") == 0) set_str(&c->spool_path, v);
        else if (strcmp(key, "log_level") == 0) {
            if (log_level_parse(v) < 0) return BAD("log_level must be debug, info, warn or error");
            set_str(&c->log_level, v);
        } else if (strcmp(key, "max_quantity") == 0) {
            if (parse_long(v, 1, 100000000, &x)) return BAD("max_quantity must be 1..100000000");
            c->max_quantity = (uint32_t)x;
        } else if (strcmp(key, "shutdown_timeout_ms") == 0) {
            if (parse_long(v, 0, 3600000, &x)) return BAD("shutdown_timeout_ms must be 0..3600000");
            c->shutdown_timeout_ms = (int)x;
        } else if (strcmp(key, "firmware_max_bytes") == 0) {
            if (parse_long(v, 1, 1L << 32, &x)) return BAD("firmware_max_bytes must be 1..4294967296");
            c->firmware_max_bytes = (size_t)x;
        } else if (strcmp(key, "firmware_timeout_ms") == 0) {
            if (parse_long(v, 100, 3600000, &x)) return BAD("firmware_timeout_ms must be 100..3600000");
            c->firmware_timeout_ms = x;
        } else if (strcmp(key, "firmware_ca_file") == 0) set_str(&c->firmware_ca_file, v);
        else return BAD("unknown key \"%s\" in [agent]", key);
    } else if (strcmp(section, "spool") == 0) {
        if (strcmp(key, "synchronous") == 0) {
            if (strcasecmp(v, "FULL") && strcasecmp(v, "NORMAL"))
                return BAD("synchronous must be FULL or NORMAL");
            set_str(&c->spool_synchronous, v);
        } else if (strcmp(key, "batch_max") == 0) {
            if (parse_long(v, 1, 100000, &x)) return BAD("batch_max must be 1..100000");
            c->spool_batch_max = (int)x;
        } else if (strcmp(key, "retention") == 0) {
            if (parse_duration_ms(v, &c->spool_retention_ms) || c->spool_retention_ms < 1000)
                return BAD("retention must be a duration of at least 1s, e.g. 30d, 12h, 90m");
        } else if (strcmp(key, "max_bytes") == 0) {
            if (parse_bytes(v, &c->spool_max_bytes) || (c->spool_max_bytes && c->spool_max_bytes < (1 << 20)))
                return BAD("max_bytes must be 0 (no limit) or at least 1M, e.g. 512M, 20G");
        } else if (strcmp(key, "min_free_bytes") == 0) {
            if (parse_bytes(v, &c->spool_min_free_bytes))
                return BAD("min_free_bytes must be a size, e.g. 32M, 1G (0: none)");
        } else return BAD("unknown key \"%s\" in [spool]", key);
    } else if (strcmp(section, "mqtt") == 0) {
        if (strcmp(key, "uri") == 0) {
            if (strncmp(v, "tcp://", 6) && strncmp(v, "ssl://", 6))
                return BAD("uri must start with tcp:// or ssl://");
            set_str(&c->mqtt_uri, v);
        } else if (strcmp(key, "client_id") == 0) set_str(&c->mqtt_client_id, v);
        else if (strcmp(key, "username") == 0) set_str(&c->mqtt_username, v);
        else if (strcmp(key, "password_file") == 0) set_str(&c->mqtt_password_file, v);
        else if (strcmp(key, "ca_file") == 0) set_str(&c->mqtt_ca_file, v);
        else if (strcmp(key, "cert_file") == 0) set_str(&c->mqtt_cert_file, v);
        else if (strcmp(key, "key_file") == 0) set_str(&c->mqtt_key_file, v);
        else if (strcmp(key, "keepalive") == 0) {
            if (parse_long(v, 5, 3600, &x)) return BAD("keepalive must be 5..3600 seconds");
            c->mqtt_keepalive_s = (int)x;
        } else return BAD("unknown key \"%s\" in [mqtt]", key);
    } else if (strcmp(section, "kafka") == 0) {
        if (strcmp(key, "topic") == 0) set_str(&c->kafka_topic, v);
        else if (strcmp(key, "queue_high_water") == 0) {
            if (parse_long(v, 1, 10000000, &x)) return BAD("queue_high_water must be 1..10000000");
            c->kafka_queue_high_water = (int)x;
        } else if (strcmp(key, "stall_alarm") == 0) {
            if (parse_duration_ms(v, &c->kafka_stall_alarm_ms))
                return BAD("stall_alarm must be a duration, e.g. 60s, 5m, or 0 for never");
        } else kv_add(&c->kafka_props, &c->n_kafka_props, key, v);
    } else if (strcmp(section, "firmware") == 0) {
        char why[200];
        if (strcmp(key, "allowed_urls")) return BAD("unknown key \"%s\" in [firmware]", key);
        if (firmware_allowed_check(v, why, sizeof why)) return BAD("allowed_urls: %s", why);
        set_str(&c->firmware_allowed_urls, v);
    } else if (strcmp(section, "provisioning") == 0) {
        if (strcmp(key, "url") == 0) {
            if (strncmp(v, "http://", 7) && strncmp(v, "https://", 8))
                return BAD("url must start with https:// (http:// for a server on loopback)");
            set_str(&c->prov_url, v);
        } else if (strcmp(key, "ca_file") == 0) set_str(&c->prov_ca_file, v);
        else if (strcmp(key, "cert_file") == 0) set_str(&c->prov_cert_file, v);
        else if (strcmp(key, "key_file") == 0) set_str(&c->prov_key_file, v);
        else if (strcmp(key, "timeout_ms") == 0) {
            if (parse_long(v, 100, 600000, &x)) return BAD("timeout_ms must be 100..600000");
            c->prov_timeout_ms = x;
        } else if (strcmp(key, "retries") == 0) {
            if (parse_long(v, 0, 20, &x)) return BAD("retries must be 0..20");
            c->prov_retries = (int)x;
        } else return BAD("unknown key \"%s\" in [provisioning]", key);
    } else {
        return BAD("unknown section [%s]", section);
    }
    return 1;
}

static int read_secret_file(const char *path, char **out, char *err, size_t err_len)
{
    FILE *f = fopen(path, "r");
    if (!f) {
        snprintf(err, err_len, "cannot read %s: %s", path, strerror(errno));
        return -1;
    }
    char buf[1024];
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = 0;
    buf[strcspn(buf, "\r\n")] = 0; /* one line; a trailing newline is not part of it */
    *out = strdup(buf);
    explicit_bzero(buf, sizeof buf);
    return 0;
}

static void set_defaults(config *c)
{
    c->max_quantity = 100000;
    c->shutdown_timeout_ms = 10000;
    c->firmware_max_bytes = 64u << 20;
    c->firmware_timeout_ms = 60000;
    c->spool_batch_max = 2048;
    c->spool_retention_ms = 30LL * 86400000;
    c->spool_min_free_bytes = 32LL << 20;
    c->mqtt_keepalive_s = 30;
    c->kafka_queue_high_water = 10000;
    c->kafka_stall_alarm_ms = 60000;
    c->prov_timeout_ms = 5000;
    c->prov_retries = 3;
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

static int finish(config *c, char *err, size_t err_len)
{
    if (!c->site || !*c->site) return snprintf(err, err_len, "[agent] site is required"), -1;
    if (!c->line || !*c->line) return snprintf(err, err_len, "[agent] line is required"), -1;
    if (!c->spool_path) return snprintf(err, err_len, "[agent] spool is required"), -1;
    if (!c->mqtt_uri) return snprintf(err, err_len, "[mqtt] uri is required"), -1;
    if (!config_kafka_get(c, "bootstrap.servers"))
        return snprintf(err, err_len, "[kafka] bootstrap.servers is required (\"embedded\" for the built-in mock)"), -1;
    if (strncmp(c->mqtt_uri, "tcp://", 6) == 0 && (c->mqtt_cert_file || c->mqtt_ca_file))
        return snprintf(err, err_len, "[mqtt] TLS files are set but uri is tcp:// (use ssl://)"), -1;
    if (!c->log_level) c->log_level = strdup("info");
    if (!c->spool_synchronous) c->spool_synchronous = strdup("FULL");
    if (!c->kafka_topic) c->kafka_topic = strdup("lineagent.trace.v1");
    if (!c->mqtt_client_id) {
        size_t n = strlen(c->site) + strlen(c->line) + 16;
        c->mqtt_client_id = malloc(n);
        snprintf(c->mqtt_client_id, n, "lineagent-%s-%s", c->site, c->line);
    }
    size_t n = strlen(c->site) + strlen(c->line) + 16;
    c->topic_prefix = malloc(n);
    snprintf(c->topic_prefix, n, "lineagent/%s/%s", c->site, c->line);
    if (strpbrk(c->topic_prefix + 10, "+#"))
        return snprintf(err, err_len, "[agent] site and line may not contain MQTT wildcards + or #"), -1;
    if (c->mqtt_password_file && read_secret_file(c->mqtt_password_file, &c->mqtt_password, err, err_len))
        return -1;
    if (!c->prov_url && (c->prov_ca_file || c->prov_cert_file || c->prov_key_file))
        return snprintf(err, err_len, "[provisioning] url is required when the section is used"), -1;
    if (!c->prov_cert_file != !c->prov_key_file)
        return snprintf(err, err_len, "[provisioning] cert_file and key_file go together"), -1;
    if (c->prov_url && strncmp(c->prov_url, "http://", 7) == 0 && !url_host_is_loopback(c->prov_url + 7))
        return snprintf(err, err_len, "[provisioning] plain http:// is allowed for a server on loopback only; "
                                      "use https:// with ca_file, cert_file and key_file"), -1;
    if (c->n_stations == 0) return snprintf(err, err_len, "no [station NAME] section: the line needs at least one station"), -1;
    for (size_t i = 0; i < c->n_stations; i++) {
        config_station *st = &c->stations[i];
        if (!st->adapter) return snprintf(err, err_len, "[station %s] adapter is required", st->name), -1;
        if (!st->steps_mask) return snprintf(err, err_len, "[station %s] steps is required", st->name), -1;
        const adapter *ad = adapter_find(st->adapter);
        size_t plen = strlen(ad->name);
        for (size_t k = 0; k < st->n_keys; k++) {
            const char *key = st->keys[k].key;
            int known = strncmp(key, ad->name, plen) == 0 && key[plen] == '.';
            for (const char *const *a = ad->keys; known && *a; a++)
                if (strcmp(key + plen + 1, *a) == 0) known = 2;
            if (known != 2)
                return snprintf(err, err_len, "[station %s] unknown key \"%s\" for adapter %s", st->name, key, ad->name), -1;
        }
        /* The adapter judges its own values (numbers, paths, required keys),
         * so check-config catches them too; open has no side effects. */
        void *probe = NULL;
        char aerr[400];
        if (ad->open(&probe, st, aerr, sizeof aerr) != 0) return snprintf(err, err_len, "%s", aerr), -1;
        ad->close(probe);
    }
    return 0;
}

int config_load(config *c, const char *path, char *err, size_t err_len)
{
    memset(c, 0, sizeof *c);
    set_defaults(c);
    char msg[512] = "";
    config_parse p = {c, msg, sizeof msg, path};
    int rc = ini_parse(path, on_key, &p);
    if (rc < 0) {
        snprintf(err, err_len, "%s: cannot open: %s", path, strerror(errno));
    } else if (rc > 0) {
        snprintf(err, err_len, "%s:%d: %s", path, rc, msg[0] ? msg : "syntax error");
    } else if (finish(c, msg, sizeof msg) != 0) {
        snprintf(err, err_len, "%s: %s", path, msg);
        rc = -1;
    }
    if (rc != 0) {
        config_free(c);
        return -1;
    }
    return 0;
}

static void kv_free(config_kv *kv, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        free(kv[i].key);
        free(kv[i].value);
    }
    free(kv);
}

void config_free(config *c)
{
    char **strs[] = {&c->site, &c->line, &c->spool_path, &c->log_level, &c->firmware_ca_file, &c->firmware_allowed_urls,
                     &c->spool_synchronous, &c->mqtt_uri, &c->mqtt_client_id, &c->mqtt_username,
                     &c->mqtt_password_file, &c->mqtt_ca_file, &c->mqtt_cert_file, &c->mqtt_key_file,
                     &c->topic_prefix, &c->kafka_topic, &c->prov_url, &c->prov_ca_file,
                     &c->prov_cert_file, &c->prov_key_file};
    for (size_t i = 0; i < sizeof strs / sizeof strs[0]; i++) free(*strs[i]);
    if (c->mqtt_password) {
        explicit_bzero(c->mqtt_password, strlen(c->mqtt_password));
        free(c->mqtt_password);
    }
    kv_free(c->kafka_props, c->n_kafka_props);
    for (size_t i = 0; i < c->n_stations; i++) {
        free(c->stations[i].name);
        free(c->stations[i].adapter);
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

const char *config_station_get(const config_station *st, const char *key)
{
    for (size_t i = 0; i < st->n_keys; i++)
        if (strcmp(st->keys[i].key, key) == 0) return st->keys[i].value;
    return NULL;
}

const char *config_kafka_get(const config *c, const char *key)
{
    for (size_t i = 0; i < c->n_kafka_props; i++)
        if (strcmp(c->kafka_props[i].key, key) == 0) return c->kafka_props[i].value;
    return NULL;
}

static void print_kv(FILE *out, const char *k, const char *v)
{
    if (v) fprintf(out, "%s = %s\n", k, config_is_secret(k) ? "********" : v);
}

void config_print(const config *c, FILE *out)
{
    fprintf(out, "[agent]\nsite = %s\nline = %s\nspool = %s\nlog_level = %s\n", c->site, c->line,
            c->spool_path, c->log_level);
    fprintf(out, "max_quantity = %u\nshutdown_timeout_ms = %d\nfirmware_max_bytes = %zu\n"
                 "firmware_timeout_ms = %ld\n",
            c->max_quantity, c->shutdown_timeout_ms, c->firmware_max_bytes, c->firmware_timeout_ms);
    print_kv(out, "firmware_ca_file", c->firmware_ca_file);
    fprintf(out, "\n[firmware]\nallowed_urls = %s\n", c->firmware_allowed_urls ? c->firmware_allowed_urls : "");
    fprintf(out, "\n[spool]\nsynchronous = %s\nbatch_max = %d\nretention = %llds\nmax_bytes = %lld\nmin_free_bytes = %lld\n",
            c->spool_synchronous, c->spool_batch_max, (long long)(c->spool_retention_ms / 1000),
            (long long)c->spool_max_bytes, (long long)c->spool_min_free_bytes);
    fprintf(out, "\n[mqtt]\nuri = %s\nclient_id = %s\nkeepalive = %d\n", c->mqtt_uri, c->mqtt_client_id,
            c->mqtt_keepalive_s);
    print_kv(out, "username", c->mqtt_username);
    print_kv(out, "password_file", c->mqtt_password_file);
    print_kv(out, "ca_file", c->mqtt_ca_file);
    print_kv(out, "cert_file", c->mqtt_cert_file);
    print_kv(out, "key_file", c->mqtt_key_file);
    fprintf(out, "\n[kafka]\ntopic = %s\nqueue_high_water = %d\nstall_alarm = %llds\n", c->kafka_topic,
            c->kafka_queue_high_water, (long long)(c->kafka_stall_alarm_ms / 1000));
    for (size_t i = 0; i < c->n_kafka_props; i++) print_kv(out, c->kafka_props[i].key, c->kafka_props[i].value);
    if (c->prov_url) {
        fprintf(out, "\n[provisioning]\nurl = %s\ntimeout_ms = %ld\nretries = %d\n", c->prov_url,
                c->prov_timeout_ms, c->prov_retries);
        print_kv(out, "ca_file", c->prov_ca_file);
        print_kv(out, "cert_file", c->prov_cert_file);
        print_kv(out, "key_file", c->prov_key_file);
    }
    for (size_t i = 0; i < c->n_stations; i++) {
        const config_station *st = &c->stations[i];
        fprintf(out, "\n[station %s]\nadapter = %s\nsteps =", st->name, st->adapter);
        int first = 1;
        for (int s = LINEAGENT__V1__STEP__WRITE; s <= LINEAGENT__V1__STEP__LOCK; s++)
            if (st->steps_mask & (1u << s)) {
                fprintf(out, "%s %s", first ? "" : ",", order_step_name((Step)s));
                first = 0;
            }
        fputc('\n', out);
        if (st->sites > 1) fprintf(out, "sites = %u\n", st->sites);
        for (size_t k = 0; k < st->n_keys; k++) print_kv(out, st->keys[k].key, st->keys[k].value);
    }
}
