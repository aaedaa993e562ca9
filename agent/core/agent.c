/* SPDX-License-Identifier: Apache-2.0 */
/* agent.c - the agent's life cycle. Start-up order follows the data: spool
 * first (everything is committed there), then the forwarder, the line
 * (resuming lots), the intake and last the MQTT link that lets new orders
 * in. Shutdown runs the other way and bounds every wait. */
#include "agent.h"

#include <jansson.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "clock.h"
#include "delivery_watch.h"
#include "event.h"
#include "http_listen.h"
#include "intake.h"
#include "kafka_out.h"
#include "line.h"
#include "live.h"
#include "log.h"
#include "metrics.h"
#include "mqtt_link.h"
#include "mqtt_persist.h"
#include "service.h"
#include "spool.h"
#include "spool_guard.h"

static volatile sig_atomic_t agent_stop_requested;

static void agent_on_signal(int sig)
{
    (void)sig;
    agent_stop_requested = 1;
}

typedef struct agent {
    const config *cfg;
    spool *sp;       /* main thread: line coordinator */
    spool *sp_mqtt;  /* Paho's thread: inbox */
    kafka_out *ko;
    line *ln;
    intake *in;
    mqtt_link *ml;
    live *lv;
    http_listen *http;
    service_notify notify;
    /* ln and in are replaced while riding out a full disk; other threads
     * reach them only under mu. */
    pthread_mutex_t mu;
    spool_guard guard;
    delivery_watch watch;
    char full_detail[600]; /* the error, while riding out a full disk */
    char not_ready[640];   /* under mu: why /readyz says no; empty when ready */
    /* Riding out a busy spool (another connection holds the write lock):
     * since when (monotonic ms, 0 when not busy), the last "still busy"
     * log line, and the alarm's detail. */
    int64_t busy_since_ms, busy_logged_ms;
    char busy_detail[600];
} agent;

static void agent_publish_result(void *ud, const char *json)
{
    agent *a = ud;
    if (a->ml && mqtt_link_publish_result(a->ml, json) != 0) log_warn("order result not published: %s", json);
}

static void agent_events_committed(void *ud)
{
    agent *a = ud;
    kafka_out_kick(a->ko);
    live_kick(a->lv);
}

/* With no line (riding out a full disk) the decision is dropped: its inbox
 * row stays, and the intake started with the new line decides it again. */
static void agent_post_decision(void *ud, intake_decision *d)
{
    agent *a = ud;
    pthread_mutex_lock(&a->mu);
    if (a->ln) line_post_decision(a->ln, d);
    else intake_decision_free(d);
    pthread_mutex_unlock(&a->mu);
}

/* Paho thread: the payload must be durable before we return 0 (Paho then
 * acknowledges the QoS 1 message to the broker). */
static int agent_on_order(void *ud, const void *payload, size_t len)
{
    agent *a = ud;
    if (intake_accept_payload(a->sp_mqtt, payload, len) != 0) {
        log_error("cannot store an order payload of %zu bytes: %s; Paho keeps it and offers it again", len,
                  spool_errmsg(a->sp_mqtt));
        return -1;
    }
    pthread_mutex_lock(&a->mu);
    if (a->in) intake_kick(a->in);
    pthread_mutex_unlock(&a->mu);
    return 0;
}

/* Paho thread: <prefix>/command/site/resume {"station":"fct1","site":0}
 * (no site: every site of the station). */
static void agent_on_command(void *ud, const char *command, const void *payload, size_t len)
{
    agent *a = ud;
    json_error_t e;
    json_t *j = json_loadb(payload, len, 0, &e);
    const char *station = json_string_value(json_object_get(j, "station"));
    json_t *site = json_object_get(j, "site");
    if (strcmp(command, "site/resume") != 0) log_warn("mqtt: unknown command %s ignored", command);
    else if (!station || (site && (!json_is_integer(site) || json_integer_value(site) < 0)))
        log_warn("mqtt: command site/resume ignored: want {\"station\": NAME, \"site\": N}");
    else {
        pthread_mutex_lock(&a->mu);
        if (a->ln) line_site_resume(a->ln, station, site ? (int)json_integer_value(site) : -1);
        pthread_mutex_unlock(&a->mu);
    }
    json_decref(j);
}

static void agent_sites_changed(void *ud);

static int agent_publish_live(void *ud, const char *subtopic, const char *json)
{
    agent *a = ud; /* the follower publishes it: the coordinator never waits on Paho */
    return a->lv ? live_offer(a->lv, subtopic, json) : -1;
}

static void agent_low_space_detail(const agent *a, char *buf, size_t len)
{
    snprintf(buf, len, "%lld bytes free on the spool's filesystem, under min_free_bytes %lld",
             (long long)a->guard.free_bytes, (long long)a->cfg->spool_min_free_bytes);
}

static void agent_over_limit_detail(const agent *a, char *buf, size_t len)
{
    snprintf(buf, len, "spool uses %lld bytes, over max_bytes %lld", (long long)a->guard.used_bytes,
             (long long)a->cfg->spool_max_bytes);
}

/* The retained status: online, plus every alarm raised, the one that holds
 * the line first ("alarm" and "detail" name the first, for a dashboard
 * that shows one). */
static void agent_publish_status(agent *a)
{
    metrics_set_alarm(METRICS_ALARM_SPOOL_FULL, a->full_detail[0] != 0);
    metrics_set_alarm(METRICS_ALARM_SPOOL_BUSY, a->busy_since_ms != 0);
    metrics_set_alarm(METRICS_ALARM_SPOOL_LOW_SPACE, a->guard.low_space);
    metrics_set_alarm(METRICS_ALARM_SPOOL_OVER_LIMIT, a->guard.over_limit);
    metrics_set_alarm(METRICS_ALARM_KAFKA_STALLED, a->watch.stalled);
    json_t *alarms = json_array();
    metrics_set_alarm(METRICS_ALARM_FIXTURE_SITE_SUSPECT, a->ln ? line_site_alarms(a->ln, NULL) : 0);
    metrics_set_alarm(METRICS_ALARM_FIRMWARE_CORRUPT, a->ln ? line_held_lots(a->ln) : 0);
    if (!a->ml) {
        json_decref(alarms);
        return;
    }
    char detail[600];
    if (a->full_detail[0])
        json_array_append_new(alarms, json_pack("{s:s, s:s}", "alarm", "spool_full", "detail", a->full_detail));
    if (a->busy_detail[0])
        json_array_append_new(alarms, json_pack("{s:s, s:s}", "alarm", "spool_busy", "detail", a->busy_detail));
    if (a->guard.low_space) {
        agent_low_space_detail(a, detail, sizeof detail);
        json_array_append_new(alarms, json_pack("{s:s, s:s}", "alarm", "spool_low_space", "detail", detail));
    }
    if (a->guard.over_limit) {
        agent_over_limit_detail(a, detail, sizeof detail);
        json_array_append_new(alarms, json_pack("{s:s, s:s}", "alarm", "spool_over_limit", "detail", detail));
    }
    if (a->watch.stalled) {
        delivery_watch_describe(&a->watch, detail, sizeof detail);
        json_array_append_new(alarms, json_pack("{s:s, s:s}", "alarm", "kafka_stalled", "detail", detail));
    }
    if (a->ln) line_site_alarms(a->ln, alarms); /* fixture_site_suspect, one per site */
    if (!json_array_size(alarms)) {
        json_decref(alarms);
        mqtt_link_set_status(a->ml, NULL);
        return;
    }
    json_t *first = json_array_get(alarms, 0);
    int paused = a->full_detail[0] || a->busy_detail[0] || a->guard.low_space || a->guard.over_limit;
    json_t *st = json_pack("{s:s, s:s, s:O, s:O, s:b, s:I, s:o}", "state", "online", "client_id",
                           a->cfg->mqtt_client_id, "alarm", json_object_get(first, "alarm"), "detail",
                           json_object_get(first, "detail"), "paused", paused, "spool_used_bytes",
                           (json_int_t)a->guard.used_bytes, "alarms", alarms);
    char *json = st ? json_dumps(st, JSON_COMPACT) : NULL;
    if (!json || mqtt_link_set_status(a->ml, json) != 0) log_warn("alarms not published on the status topic");
    free(json);
    json_decref(st);
}

static void agent_sites_changed(void *ud) { agent_publish_status(ud); }

/* Size limit and free space: back-pressure and alarm while the spool is
 * over max_bytes or its filesystem is short of min_free_bytes. */
static void agent_apply_guard(agent *a)
{
    line_set_paused(a->ln, a->guard.over_limit || a->guard.low_space || a->busy_since_ms);
    char detail[200];
    if (a->guard.low_space) {
        agent_low_space_detail(a, detail, sizeof detail);
        log_error("ALARM spool_low_space: %s; no new boards until there is room (nothing is dropped)", detail);
    } else if (a->guard.over_limit) {
        agent_over_limit_detail(a, detail, sizeof detail);
        log_error("ALARM spool_over_limit: %s; no new boards until it drains (nothing is dropped)", detail);
    } else {
        log_info("alarm cleared: spool uses %lld bytes, %lld free; loading boards",
                 (long long)a->guard.used_bytes, (long long)a->guard.free_bytes);
    }
    agent_publish_status(a);
}

/* Once a second: spool bounds, and whether Kafka takes the events. */
static void agent_guard(agent *a)
{
    if (spool_guard_tick(&a->guard, a->sp)) agent_apply_guard(a);
    if (delivery_watch_tick(&a->watch, a->sp, clock_mono_ms())) {
        char detail[300];
        delivery_watch_describe(&a->watch, detail, sizeof detail);
        if (a->watch.stalled)
            log_error("ALARM kafka_stalled: %s; the line goes on, the spool keeps every event", detail);
        else
            log_info("alarm kafka_stalled cleared: deliveries to Kafka move again");
        agent_publish_status(a);
    }
}

/* /readyz, on the listener's thread. */
static int agent_ready(void *ud, char *why, size_t why_len)
{
    agent *a = ud;
    pthread_mutex_lock(&a->mu);
    snprintf(why, why_len, "%s", a->not_ready);
    pthread_mutex_unlock(&a->mu);
    return why[0] == 0;
}

/* Each turn of the main loop (and while riding out a full disk): what
 * /readyz answers, the backlog gauges, and systemd's STATUS and watchdog.
 * The heartbeat goes out only while this loop turns (the coordinator runs
 * on it) and the forwarder's loop turns too. */
static void agent_tick(agent *a)
{
    char why[sizeof a->not_ready] = "";
    if (a->full_detail[0]) snprintf(why, sizeof why, "spool full: %s", a->full_detail);
    else if (a->busy_since_ms) snprintf(why, sizeof why, "paused: spool busy: %s", a->busy_detail);
    else if (a->guard.low_space || a->guard.over_limit)
        snprintf(why, sizeof why, "paused: the spool is %s", a->guard.low_space ? "short of free space" : "over max_bytes");
    else if (!mqtt_link_ready(a->ml)) snprintf(why, sizeof why, "MQTT not subscribed to %s/orders", a->cfg->topic_prefix);
    pthread_mutex_lock(&a->mu);
    memcpy(a->not_ready, why, sizeof why);
    pthread_mutex_unlock(&a->mu);
    uint64_t last = live_seq(a->lv);
    int64_t pending = a->watch.first_seq && last >= a->watch.first_seq ? (int64_t)(last - a->watch.first_seq + 1) : 0;
    metrics_set(METRICS_EVENTS_PENDING, pending);
    metrics_set(METRICS_OLDEST_PENDING_MS, a->watch.first_seq ? clock_wall_ms() - a->watch.first_time_ms : 0);
    int64_t now = clock_mono_ms();
    char status[sizeof why + 300], lot[200];
    live_describe(a->lv, lot, sizeof lot);
    snprintf(status, sizeof status, "%s; backlog %lld events%s%s", lot, (long long)pending, why[0] ? "; " : "", why);
    service_tick(&a->notify, now, kafka_out_alive(a->ko, now, 10000), status);
}

/* The line could not take the spool's write lock within the busy timeout:
 * another connection (the sqlite3 shell, a backup, a tool) holds it. The
 * line's results stay queued, uncommitted and untold, so this is a pause,
 * not a failure: no new boards, the alarm up with how long it has lasted
 * (the status refreshed at each try), and the next line_step tries again. */
static void agent_spool_busy(agent *a)
{
    int64_t now = clock_mono_ms();
    int first = !a->busy_since_ms;
    if (first) a->busy_since_ms = now - spool_busy_timeout_ms(a->sp); /* the first try waited that long */
    snprintf(a->busy_detail, sizeof a->busy_detail,
             "another connection has held the spool's write lock for %lld s (%s); results wait uncommitted",
             (long long)(now - a->busy_since_ms) / 1000, spool_errmsg(a->sp));
    if (first) {
        log_error("ALARM spool_busy: %s; no new boards until it is released; nothing is lost", a->busy_detail);
        line_set_paused(a->ln, 1);
        a->busy_logged_ms = now;
    } else if (now - a->busy_logged_ms >= 30000) {
        log_warn("spool still busy: %s", a->busy_detail);
        a->busy_logged_ms = now;
    }
    agent_publish_status(a);
}

static void agent_spool_busy_cleared(agent *a)
{
    log_info("alarm spool_busy cleared: the spool's write lock was had again after %lld ms; resuming",
             (long long)(clock_mono_ms() - a->busy_since_ms));
    a->busy_since_ms = 0;
    a->busy_detail[0] = 0;
    agent_apply_guard(a); /* unpauses, or shows what still holds the line */
}

/* A commit failed with the disk full. What was committed is intact; the
 * batch that failed is treated as a crash treats it: the line and the intake
 * are restarted from the spool once space returns (boards that were mid-flow
 * restart their flow, undecided orders are decided again), without the
 * process exiting. Meanwhile no board is loaded and the alarm is up.
 * 0 when running again, -1 when stopped or on another spool error. */
static int agent_ride_out_full(agent *a)
{
    int64_t t0 = clock_mono_ms();
    char err[512];
    /* SQLITE_BUSY inside a transaction, after its begin (which the line
     * rides out on its own) is not expected in WAL mode; if it happens the
     * batch is lost as with a full disk, and the same way out is taken. */
    int busy = spool_error_is_busy(a->sp);
    if (busy) {
        agent_spool_busy(a);
    } else {
        snprintf(a->full_detail, sizeof a->full_detail, "%s", spool_errmsg(a->sp));
        log_error("ALARM spool_full: %s; no new boards until space returns; nothing committed is lost",
                  a->full_detail);
    }
    pthread_mutex_lock(&a->mu);
    line *old_ln = a->ln;
    intake *old_in = a->in;
    a->ln = NULL;
    a->in = NULL;
    pthread_mutex_unlock(&a->mu);
    agent_publish_status(a);
    line_stop(old_ln);
    intake_stop(old_in);
    int probe;
    while ((probe = spool_guard_probe(a->sp)) == 0 && !agent_stop_requested) {
        a->guard.next_ms = 0; /* prune now: it may free room */
        spool_guard_tick(&a->guard, a->sp);
        agent_tick(a);
        nanosleep(&(struct timespec){.tv_sec = 1}, NULL);
    }
    if (probe < 0) log_error("spool: %s", spool_errmsg(a->sp));
    if (probe != 1) return -1;
    line_hooks hooks = {agent_publish_result, agent_events_committed, a, agent_sites_changed,
                        a->cfg->mqtt_live_topics ? agent_publish_live : NULL};
    line *ln = line_start(a->cfg, a->sp, &hooks, err, sizeof err);
    if (!ln) {
        log_error("line: %s", err);
        return -1;
    }
    pthread_mutex_lock(&a->mu);
    a->ln = ln;
    pthread_mutex_unlock(&a->mu);
    intake *in = intake_start(a->cfg, agent_post_decision, a, err, sizeof err);
    if (!in) {
        log_error("intake: %s", err);
        return -1;
    }
    pthread_mutex_lock(&a->mu);
    a->in = in;
    pthread_mutex_unlock(&a->mu);
    if (busy)
        log_info("the spool takes writes again after %ld ms; resuming from the last commit",
                 (long)(clock_mono_ms() - t0));
    else
        log_info("the spool has space again after %ld ms; resuming from the last commit",
                 (long)(clock_mono_ms() - t0));
    a->full_detail[0] = 0;
    a->busy_detail[0] = 0;
    a->busy_since_ms = 0;
    a->guard.next_ms = 0;
    spool_guard_tick(&a->guard, a->sp);
    agent_apply_guard(a); /* clears the alarm, or shows what still holds the line */
    return 0;
}

static int agent_shutdown(agent *a)
{
    int64_t t0 = clock_mono_ms();
    long budget = a->cfg->shutdown_timeout_ms;
    int rc = 0;
    service_stopping();
    log_info("stopping: no new boards; %d on the line finish", line_in_flight(a->ln));
    line_stop_feeding(a->ln);
    /* A busy spool keeps the results queued: try again within the budget. */
    while (line_in_flight(a->ln) > 0 && clock_mono_ms() - t0 < budget && (rc == 0 || rc == LINE_BUSY))
        rc = line_step(a->ln, 50);
    if (rc == LINE_BUSY) rc = 0;
    if (line_in_flight(a->ln) > 0)
        log_warn("%d boards still on the line after %ld ms; they resume at the next start", line_in_flight(a->ln),
                 budget);
    /* The intake keeps running until the MQTT link is down (the Paho thread
     * kicks it); decisions it makes after this step are not committed, so
     * their inbox rows are simply decided again at the next start. */
    if (rc == 0) rc = line_step(a->ln, 0);
    if (rc == LINE_BUSY)
        log_warn("the spool is still busy: the last results are not committed; their boards resume at the next start");
    long left = budget - (long)(clock_mono_ms() - t0);
    int64_t pending = kafka_out_drain(a->ko, a->sp, left > 0 ? (int)left : 0);
    if (pending) log_warn("%lld events not yet acknowledged by Kafka; kept in the spool", (long long)pending);
    else log_info("spool flushed: every event acknowledged by Kafka");
    return rc;
}

int agent_run(const config *cfg)
{
    agent a = {.cfg = cfg};
    pthread_mutex_init(&a.mu, NULL);
    spool_guard_init(&a.guard, cfg);
    delivery_watch_init(&a.watch, cfg->kafka_stall_alarm_ms);
    char err[512];
    int rc = 1;
    log_set_level((enum log_level)log_level_parse(cfg->log_level));
    signal(SIGPIPE, SIG_IGN);
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = agent_on_signal;
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);

    /* What may need root is opened first (a listener on a low port), then
     * the agent becomes [agent] user before it creates any file. */
    if (cfg->http_listen) {
        if (!(a.http = http_listen_start(cfg->http_listen, agent_ready, &a, err, sizeof err))) {
            log_error("%s", err);
            goto out;
        }
        log_info("http: /metrics, /healthz, /readyz on %s (port %d)", cfg->http_listen, http_listen_port(a.http));
    }
    if (service_drop_privileges(cfg->agent_user, err, sizeof err) != 0) {
        log_error("%s", err);
        goto out;
    }
    snprintf(a.not_ready, sizeof a.not_ready, "starting");
    spool_options so = {cfg->spool_synchronous, 0};
    if (spool_open(&a.sp, cfg->spool_path, &so, err, sizeof err) ||
        spool_open(&a.sp_mqtt, cfg->spool_path, &so, err, sizeof err)) {
        log_error("spool: %s", err);
        goto out;
    }
    /* Before anything writes to it: a damaged spool is left as it is for
     * someone to restore or examine. */
    if (spool_check(a.sp, err, sizeof err) != 0) {
        log_error("spool: %s; refusing to start, the file is left untouched (restore it or move it aside)", err);
        goto out;
    }
    if (!(a.ko = kafka_out_start(cfg, err, sizeof err))) {
        log_error("kafka: %s", err);
        goto out;
    }
    if (!(a.lv = live_start(cfg, &so, err, sizeof err))) {
        log_error("%s", err);
        goto out;
    }
    line_hooks hooks = {agent_publish_result, agent_events_committed, &a, agent_sites_changed,
                        cfg->mqtt_live_topics ? agent_publish_live : NULL};
    if (!(a.ln = line_start(cfg, a.sp, &hooks, err, sizeof err))) {
        log_error("line: %s", err);
        goto out;
    }
    if (!(a.in = intake_start(cfg, agent_post_decision, &a, err, sizeof err))) {
        log_error("intake: %s", err);
        goto out;
    }
    mqtt_persist_ctx pctx = {cfg->spool_path, so};
    MQTTClient_persistence persistence;
    mqtt_persist_init(&persistence, &pctx);
    mqtt_link_config mc = {cfg->mqtt_uri,      cfg->mqtt_client_id, cfg->mqtt_username,
                           cfg->mqtt_password, cfg->mqtt_ca_file,   cfg->mqtt_cert_file,
                           cfg->mqtt_key_file, cfg->topic_prefix,   cfg->mqtt_keepalive_s,
                           &persistence,       agent_on_command};
    if (mqtt_link_start(&a.ml, &mc, agent_on_order, &a, err, sizeof err)) {
        log_error("mqtt: %s", err);
        goto out;
    }
    if (cfg->mqtt_live_topics) live_attach(a.lv, a.ml); /* else the yield is kept, never published */
    agent_publish_status(&a); /* alarms raised while starting: a lot held at resume (firmware_corrupt) */
    log_info("lineagent %s running: site %s line %s, %zu stations, orders on %s/orders", LINEAGENT_VERSION,
             cfg->site, cfg->line, cfg->n_stations, cfg->topic_prefix);
    service_ready(&a.notify, "running");
    rc = 0;
    while (!agent_stop_requested && rc == 0) {
        rc = line_step(a.ln, 100);
        if (rc == LINE_BUSY) { /* no housekeeping: it would wait for the same lock */
            agent_spool_busy(&a);
            agent_tick(&a); /* the heartbeat goes on: the loop turns */
            rc = 0;
            continue;
        }
        if (rc == 0 && a.busy_since_ms) agent_spool_busy_cleared(&a);
        if (rc != 0 && (spool_error_is_full(a.sp) || spool_error_is_busy(a.sp))) rc = agent_ride_out_full(&a);
        if (rc == 0) {
            agent_guard(&a);
            agent_tick(&a);
        }
    }
    if (rc == 0) rc = agent_shutdown(&a);
    else log_error("stopping after a spool failure; a restart resumes from the last commit");
out:
    http_listen_stop(a.http);
    live_stop(a.lv); /* publishes the last yield while the link is up */
    mqtt_link_stop(a.ml, 2000);
    intake_stop(a.in);
    line_stop(a.ln);
    kafka_out_stop(a.ko);
    spool_close(a.sp_mqtt);
    spool_close(a.sp);
    pthread_mutex_destroy(&a.mu);
    if (rc == 0) log_info("stopped cleanly");
    return rc ? 1 : 0;
}
