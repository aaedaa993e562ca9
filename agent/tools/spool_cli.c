/* SPDX-License-Identifier: Apache-2.0 */
/* spool_cli.c - `lineagent spool stats|replay|export|purge-firmware`.
 *
 * replay re-publishes delivered events exactly as the agent first sent them
 * (the same kafka_record: key, value, timestamp, event_type/event_id
 * headers, so the same event_id and seq inside): a consumer that
 * de-duplicates on event_id can rebuild its database from them. It reads
 * the spool in pages through its own connection (the agent may be running:
 * WAL readers do not block it), keeps at most REPLAY_HIGH_WATER messages in
 * librdkafka's hands, and marks nothing in the spool.
 *
 * purge-firmware removes a release's image from the spool (the EMS
 * contract's return-or-destruction term): the version is looked up in the
 * releases intake recorded, the image goes with all its chunks, and the
 * spool records the purge (firmware_purges) as the log line says it. */
#include "spool_cli.h"

#include <librdkafka/rdkafka.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "clock.h"
#include "config.h"
#include "event.h"
#include "intake.h"
#include "log.h"
#include "kafka_record.h"
#include "proto_json.h"
#include "spool.h"

#define SPOOL_CLI_PAGE 500
#define REPLAY_HIGH_WATER 10000

typedef struct spool_cli_opts {
    const char *config, *topic, *brokers, *format, *version, *product;
    spool_selection sel;
    int has_selection;
} spool_cli_opts;

static int spool_cli_usage(int rc)
{
    fprintf(rc ? stderr : stdout,
            "usage: lineagent spool stats  -c FILE\n"
            "       lineagent spool replay -c FILE SELECTION [--topic T] [--brokers HOST:PORT]\n"
            "       lineagent spool export -c FILE SELECTION [--format jsonl] [--pending]\n"
            "       lineagent spool purge-firmware -c FILE --version V [--product P]\n"
            "SELECTION (at least one of --since, --from-seq, --lot; they combine with AND):\n"
            "  --since TIME    events stamped at or after TIME      --until TIME   ... before TIME\n"
            "  --from-seq N    events with seq >= N                 --to-seq N     ... seq < N\n"
            "  --lot LOT       the events of one lot (their Kafka key)\n"
            "TIME: 2026-11-24T08:00:00Z, 2026-11-24 (UTC), a Unix time in seconds, or an age\n"
            "      such as 90m, 12h, 7d (that long ago).\n"
            "replay sends delivered events only, with their original key, headers, event_id and\n"
            "seq, to [kafka] of FILE's config (or --brokers/--topic); it marks nothing.\n"
            "export writes the same selection as JSON lines (--pending adds undelivered ones).\n"
            "purge-firmware removes release V's image (every product's, or P's) from the spool and\n"
            "records it; refused while an active lot uses the image.\n"
            "exit: 0 ok, 1 spool or Kafka failure (or purge refused), 2 usage\n");
    return rc;
}

/* Unix milliseconds for TIME (see usage); -1 if unreadable. */
static int64_t spool_cli_time(const char *s)
{
    struct tm tm;
    char *end;
    memset(&tm, 0, sizeof tm);
    if ((end = strptime(s, "%Y-%m-%dT%H:%M:%S", &tm)) || (end = strptime(s, "%Y-%m-%dT%H:%M", &tm)) ||
        (end = strptime(s, "%Y-%m-%d", &tm))) {
        if (*end == 'Z') end++;
        if (*end) return -1;
        time_t t = timegm(&tm);
        return t < 0 ? -1 : (int64_t)t * 1000;
    }
    long long x = strtoll(s, &end, 10);
    if (end == s || x < 0) return -1;
    if (!*end) return x * 1000; /* Unix seconds */
    long long unit = *end == 'd' ? 86400 : *end == 'h' ? 3600 : *end == 'm' ? 60 : *end == 's' ? 1 : 0;
    if (!unit || end[1]) return -1;
    int64_t now = clock_wall_ms(), ago = x * unit * 1000;
    return ago > now ? 0 : now - ago;
}

static int spool_cli_seq(const char *opt, const char *s, uint64_t *out)
{
    char *end;
    unsigned long long x = strtoull(s, &end, 10);
    if (*s && *s != '-' && !*end && x > 0) {
        *out = x;
        return 0;
    }
    fprintf(stderr, "spool: %s wants a positive sequence number, not \"%s\"\n", opt, s);
    return -1;
}

/* 0 to run, 1 for --help, -1 after a usage error. */
static int spool_cli_parse(const char *cmd, int argc, char **argv, spool_cli_opts *o)
{
    for (int i = 2; i < argc; i++) {
        const char *opt = argv[i];
        if (strcmp(opt, "-h") == 0 || strcmp(opt, "--help") == 0) return 1;
        if (strcmp(opt, "--pending") == 0 && strcmp(cmd, "export") == 0) {
            o->sel.include_pending = 1;
            continue;
        }
        const char *val = i + 1 < argc ? argv[++i] : NULL;
        if (!val) {
            fprintf(stderr, "spool: %s needs a value\n", opt);
            return -1;
        }
        int64_t t = 0;
        if (strcmp(opt, "-c") == 0 || strcmp(opt, "--config") == 0) o->config = val;
        else if (strcmp(opt, "--since") == 0 || strcmp(opt, "--until") == 0) {
            if ((t = spool_cli_time(val)) < 0) {
                fprintf(stderr, "spool: %s: unreadable time \"%s\"\n", opt, val);
                return -1;
            }
            if (opt[2] == 's') o->sel.since_ms = t, o->has_selection = 1;
            else o->sel.until_ms = t;
        } else if (strcmp(opt, "--from-seq") == 0) {
            if (spool_cli_seq(opt, val, &o->sel.from_seq)) return -1;
            o->has_selection = 1;
        } else if (strcmp(opt, "--to-seq") == 0) {
            if (spool_cli_seq(opt, val, &o->sel.until_seq)) return -1;
        } else if (strcmp(opt, "--lot") == 0) {
            o->sel.lot = val;
            o->has_selection = 1;
        } else if (strcmp(opt, "--topic") == 0 && strcmp(cmd, "replay") == 0) o->topic = val;
        else if (strcmp(opt, "--brokers") == 0 && strcmp(cmd, "replay") == 0) o->brokers = val;
        else if (strcmp(opt, "--format") == 0 && strcmp(cmd, "export") == 0) o->format = val;
        else if (strcmp(opt, "--version") == 0 && strcmp(cmd, "purge-firmware") == 0) o->version = val;
        else if (strcmp(opt, "--product") == 0 && strcmp(cmd, "purge-firmware") == 0) o->product = val;
        else {
            fprintf(stderr, "spool %s: unknown option %s\n", cmd, opt);
            return -1;
        }
    }
    if (!o->config) {
        fprintf(stderr, "spool %s: -c FILE is required\n", cmd);
        return -1;
    }
    if (strcmp(cmd, "purge-firmware") == 0 && !o->version) {
        fprintf(stderr, "spool purge-firmware: --version V is required\n");
        return -1;
    }
    if ((strcmp(cmd, "replay") == 0 || strcmp(cmd, "export") == 0) && !o->has_selection) {
        fprintf(stderr, "spool %s: give --since, --from-seq or --lot (replaying everything is never a default)\n",
                cmd);
        return -1;
    }
    if (o->format && strcmp(o->format, "jsonl") != 0) {
        fprintf(stderr, "spool export: --format is jsonl\n");
        return -1;
    }
    return 0;
}

/* Opens the config's spool; refuses a missing file rather than creating an
 * empty spool that would report nothing. */
static spool *spool_cli_open(const config *cfg)
{
    struct stat sb;
    char err[512];
    spool *sp;
    if (stat(cfg->spool_path, &sb) != 0) {
        fprintf(stderr, "spool: %s: no such spool file\n", cfg->spool_path);
        return NULL;
    }
    spool_options so = {cfg->spool_synchronous, 0};
    if (spool_open(&sp, cfg->spool_path, &so, err, sizeof err) != 0) {
        fprintf(stderr, "spool: %s\n", err);
        return NULL;
    }
    return sp;
}

static int spool_cli_stats(spool *sp, const config *cfg)
{
    spool_stats s;
    if (spool_get_stats(sp, &s) != 0) {
        fprintf(stderr, "spool stats: %s\n", spool_errmsg(sp));
        return 1;
    }
    struct stat sb;
    int64_t wal = 0;
    char walpath[4096], oldest[32], last[32];
    snprintf(walpath, sizeof walpath, "%s-wal", cfg->spool_path);
    if (stat(walpath, &sb) == 0) wal = (int64_t)sb.st_size;
    clock_format_utc(s.oldest_pending_ms, oldest, sizeof oldest);
    clock_format_utc(s.last_delivered_ms, last, sizeof last);
    int64_t age_s = s.oldest_pending_ms ? (clock_wall_ms() - s.oldest_pending_ms) / 1000 : 0;
    printf("spool: %s\n", cfg->spool_path);
    printf("pending: %lld\n", (long long)s.pending);
    printf("oldest_pending: %s (age %llds)\n", oldest, (long long)age_s);
    printf("delivered_kept: %lld\n", (long long)s.delivered);
    printf("last_delivery: %s\n", last);
    printf("next_seq: %llu\n", (unsigned long long)s.next_seq);
    printf("file_bytes: %lld (used %lld, wal %lld)\n", (long long)s.file_bytes, (long long)s.used_bytes,
           (long long)wal);
    printf("retention: %llds\n", (long long)(cfg->spool_retention_ms / 1000));
    printf("max_bytes: %lld\n", (long long)cfg->spool_max_bytes);
    return 0;
}

/* ---- export ------------------------------------------------------------ */

typedef struct export_state {
    uint64_t last_seq;
    int64_t n;
    int failed;
} export_state;

static int spool_cli_export_one(void *ud, const spool_event *ev, int64_t delivered_ms)
{
    export_state *x = ud;
    x->last_seq = ev->seq;
    TraceEvent *te = lineagent__v1__trace_event__unpack(NULL, ev->len, ev->payload);
    json_t *obj = te ? proto_json_from_message(&te->base) : NULL;
    if (!obj) {
        fprintf(stderr, "spool export: event seq %llu (%s) cannot be decoded\n", (unsigned long long)ev->seq,
                ev->event_id);
        if (te) lineagent__v1__trace_event__free_unpacked(te, NULL);
        x->failed = 1;
        return 1;
    }
    /* The same shape as `lineagent trace --format jsonl`, with where the
     * event sits in the spool instead of where it sat in Kafka. */
    json_object_set_new(obj, "type", json_string(event_type(te)));
    json_t *spl = json_object();
    json_object_set_new(spl, "key", json_string(ev->key));
    json_object_set_new(spl, "deliveredMs", delivered_ms ? json_integer(delivered_ms) : json_null());
    json_object_set_new(obj, "spool", spl);
    char *line = json_dumps(obj, JSON_COMPACT);
    if (line) puts(line);
    free(line);
    json_decref(obj);
    lineagent__v1__trace_event__free_unpacked(te, NULL);
    x->n++;
    return line ? 0 : (x->failed = 1);
}

static int spool_cli_export(spool *sp, const spool_cli_opts *o)
{
    export_state x = {0};
    int n;
    do {
        n = spool_select_page(sp, &o->sel, x.last_seq, SPOOL_CLI_PAGE, spool_cli_export_one, &x);
    } while (n == SPOOL_CLI_PAGE && !x.failed);
    if (n < 0) fprintf(stderr, "spool export: %s\n", spool_errmsg(sp));
    if (fflush(stdout) != 0) x.failed = 1;
    fprintf(stderr, "spool export: %lld events\n", (long long)x.n);
    return n < 0 || x.failed ? 1 : 0;
}

/* ---- replay ------------------------------------------------------------ */

typedef struct replay_state {
    rd_kafka_t *rk;
    rd_kafka_topic_t *rkt;
    const char *topic;
    uint64_t last_seq, first_seq;
    int64_t sent, acked, failed, total;
    int produce_failed, tty;
} replay_state;

static void replay_dr_cb(rd_kafka_t *rk, const rd_kafka_message_t *m, void *opaque)
{
    replay_state *r = opaque;
    if (m->err) {
        if (r->failed++ < 5)
            fprintf(stderr, "spool replay: seq %llu not delivered: %s\n",
                    (unsigned long long)(uintptr_t)m->_private, rd_kafka_err2str(m->err));
    } else {
        r->acked++;
    }
}

static void replay_progress(replay_state *r, int final)
{
    if (!r->tty) return;
    fprintf(stderr, "\rspool replay: %lld/%lld sent, %lld acknowledged%s", (long long)r->sent, (long long)r->total,
            (long long)r->acked, final ? "\n" : "");
}

static int replay_one(void *ud, const spool_event *ev, int64_t delivered_ms)
{
    replay_state *r = ud;
    /* Bounded memory: wait for acknowledgements above the high-water mark. */
    while (rd_kafka_outq_len(r->rk) >= REPLAY_HIGH_WATER) rd_kafka_poll(r->rk, 50);
    kafka_record rec = {.key = ev->key, .type = ev->type, .event_id = ev->event_id,
                        .key_len = strlen(ev->key), .type_len = strlen(ev->type),
                        .event_id_len = strlen(ev->event_id), .value = ev->payload, .value_len = ev->len,
                        .time_ms = ev->time_ms, .seq = ev->seq};
    rd_kafka_resp_err_t e;
    for (;;) {
        e = kafka_record_produce(r->rk, r->rkt, &rec);
        if (e != RD_KAFKA_RESP_ERR__QUEUE_FULL) break;
        rd_kafka_poll(r->rk, 100);
    }
    if (e) {
        fprintf(stderr, "spool replay: produce seq %llu: %s\n", (unsigned long long)ev->seq, rd_kafka_err2str(e));
        r->produce_failed = 1;
        return 1;
    }
    if (!r->first_seq) r->first_seq = ev->seq;
    r->last_seq = ev->seq;
    r->sent++;
    rd_kafka_poll(r->rk, 0);
    return 0;
}

static rd_kafka_t *replay_producer(const config *cfg, const spool_cli_opts *o, replay_state *r)
{
    char err[512];
    const char *bs = o->brokers ? o->brokers : config_kafka_get(cfg, "bootstrap.servers");
    if (strcmp(bs, "embedded") == 0) {
        fprintf(stderr, "spool replay: the config's Kafka is the embedded mock; give --brokers HOST:PORT\n");
        return NULL;
    }
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    for (size_t i = 0; i < cfg->n_kafka_props; i++) {
        const kv_pair *kv = &cfg->kafka_props[i];
        const char *v = strcmp(kv->key, "bootstrap.servers") == 0 ? bs : kv->value;
        if (rd_kafka_conf_set(conf, kv->key, v, err, sizeof err) != RD_KAFKA_CONF_OK) goto fail;
    }
    /* Same ordering guarantee as the agent: a lot's events stay in order. */
    if (rd_kafka_conf_set(conf, "bootstrap.servers", bs, err, sizeof err) != RD_KAFKA_CONF_OK ||
        rd_kafka_conf_set(conf, "enable.idempotence", "true", err, sizeof err) != RD_KAFKA_CONF_OK ||
        rd_kafka_conf_set(conf, "linger.ms", "20", err, sizeof err) != RD_KAFKA_CONF_OK)
        goto fail;
    rd_kafka_conf_set_opaque(conf, r);
    rd_kafka_conf_set_dr_msg_cb(conf, replay_dr_cb);
    rd_kafka_t *rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, err, sizeof err);
    if (rk) return rk;
fail:
    fprintf(stderr, "spool replay: kafka: %s\n", err);
    rd_kafka_conf_destroy(conf);
    return NULL;
}

static int spool_cli_replay(spool *sp, const config *cfg, const spool_cli_opts *o)
{
    replay_state r = {.topic = o->topic ? o->topic : cfg->kafka_topic, .tty = isatty(STDERR_FILENO)};
    spool_selection sel = o->sel;
    sel.include_pending = 0; /* pending events are the agent's to send */
    if ((r.total = spool_select_count(sp, &sel)) < 0) {
        fprintf(stderr, "spool replay: %s\n", spool_errmsg(sp));
        return 1;
    }
    if (!(r.rk = replay_producer(cfg, o, &r))) return 1;
    if (!(r.rkt = rd_kafka_topic_new(r.rk, r.topic, NULL))) {
        fprintf(stderr, "spool replay: topic %s: %s\n", r.topic, rd_kafka_err2str(rd_kafka_last_error()));
        rd_kafka_destroy(r.rk);
        return 1;
    }
    int n;
    do {
        n = spool_select_page(sp, &sel, r.last_seq, SPOOL_CLI_PAGE, replay_one, &r);
        replay_progress(&r, 0);
    } while (n == SPOOL_CLI_PAGE && !r.produce_failed);
    if (n < 0) fprintf(stderr, "spool replay: %s\n", spool_errmsg(sp));
    /* librdkafka gives up on a message after message.timeout.ms (default
     * 5 minutes), so this ends. */
    while (rd_kafka_outq_len(r.rk) > 0) {
        rd_kafka_poll(r.rk, 100);
        replay_progress(&r, 0);
    }
    replay_progress(&r, 1);
    rd_kafka_topic_destroy(r.rkt);
    rd_kafka_destroy(r.rk);
    int ok = n >= 0 && !r.produce_failed && r.failed == 0 && r.acked == r.sent;
    fprintf(stderr, "spool replay: %lld of %lld selected events acknowledged by %s (seq %llu..%llu)%s\n",
            (long long)r.acked, (long long)r.total, r.topic, (unsigned long long)r.first_seq,
            (unsigned long long)r.last_seq, ok ? "" : "; FAILED, run it again (consumers de-duplicate on event_id)");
    return ok ? 0 : 1;
}

/* ---- purge-firmware ---------------------------------------------------- */

#define PURGE_MAX 32

typedef struct purge_match {
    const spool_cli_opts *o;
    char keys[PURGE_MAX][2 * SPOOL_ID_MAX + 2];
    int n;
} purge_match;

/* Release keys are "<product> <version>". */
static int purge_match_key(void *ud, const char *key)
{
    purge_match *m = ud;
    const char *sp = strrchr(key, ' ');
    if (!sp || strcmp(sp + 1, m->o->version) != 0) return 0;
    if (m->o->product && (strlen(m->o->product) != (size_t)(sp - key) ||
                          strncmp(key, m->o->product, (size_t)(sp - key)) != 0))
        return 0;
    if (m->n < PURGE_MAX) snprintf(m->keys[m->n++], sizeof m->keys[0], "%s", key);
    return 0;
}

static int spool_cli_purge(spool *sp, const spool_cli_opts *o, const char *path)
{
    purge_match m = {.o = o};
    if (spool_kv_keys(sp, INTAKE_RELEASES_NS, purge_match_key, &m) < 0) {
        fprintf(stderr, "spool purge-firmware: %s\n", spool_errmsg(sp));
        return 1;
    }
    if (m.n == 0) {
        fprintf(stderr, "spool purge-firmware: no release %s%s%s is recorded in this spool\n", o->version,
                o->product ? " of " : "", o->product ? o->product : "");
        return 1;
    }
    int rc = 0;
    for (int i = 0; i < m.n; i++) {
        uint8_t *sha = NULL;
        size_t len = 0;
        char hex[65] = "", lot[SPOOL_ID_MAX], when[32];
        if (spool_kv_get(sp, INTAKE_RELEASES_NS, m.keys[i], &sha, &len) == 1 && len == 64) memcpy(hex, sha, 64);
        free(sha);
        int64_t bytes = 0, now = clock_wall_ms();
        int r = hex[0] ? spool_firmware_purge(sp, hex, o->version, now, lot, &bytes) : -1;
        clock_format_utc(now, when, sizeof when);
        if (r == 0) {
            log_info("spool purge-firmware: %s: firmware %s sha256 %s removed from %s at %s (%lld bytes; recorded)",
                     m.keys[i], o->version, hex, path, when, (long long)bytes);
        } else if (r == 1) {
            fprintf(stderr, "spool purge-firmware: %s (sha256 %s) refused: active lot %s uses it\n", m.keys[i],
                    hex, lot);
            rc = 1;
        } else {
            fprintf(stderr, "spool purge-firmware: %s: %s\n", m.keys[i], hex[0] ? spool_errmsg(sp) : "bad record");
            rc = 1;
        }
    }
    return rc;
}

int spool_cli_main(int argc, char **argv)
{
    if (argc < 2) return spool_cli_usage(2);
    const char *cmd = argv[1];
    if (strcmp(cmd, "-h") == 0 || strcmp(cmd, "--help") == 0) return spool_cli_usage(0);
    if (strcmp(cmd, "stats") != 0 && strcmp(cmd, "replay") != 0 && strcmp(cmd, "export") != 0 &&
        strcmp(cmd, "purge-firmware") != 0) {
        fprintf(stderr, "spool: unknown command \"%s\"\n", cmd);
        return spool_cli_usage(2);
    }
    spool_cli_opts o = {0};
    int prc = spool_cli_parse(cmd, argc, argv, &o);
    if (prc) return prc > 0 ? spool_cli_usage(0) : 2;
    config cfg;
    char err[1024];
    if (config_load(&cfg, o.config, err, sizeof err) != 0) {
        fprintf(stderr, "lineagent: config error: %s\n", err);
        return 2;
    }
    int rc = 1;
    spool *sp = spool_cli_open(&cfg);
    if (sp) {
        if (strcmp(cmd, "stats") == 0) rc = spool_cli_stats(sp, &cfg);
        else if (strcmp(cmd, "export") == 0) rc = spool_cli_export(sp, &o);
        else if (strcmp(cmd, "purge-firmware") == 0) rc = spool_cli_purge(sp, &o, cfg.spool_path);
        else rc = spool_cli_replay(sp, &cfg, &o);
        spool_close(sp);
    }
    config_free(&cfg);
    return rc;
}
