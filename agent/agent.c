/* agent.c - the agent's life cycle. Start-up order follows the data: spool
 * first (everything is committed there), then the forwarder, the line
 * (resuming lots), the intake and last the MQTT link that lets new orders
 * in. Shutdown runs the other way and bounds every wait. */
#include "agent.h"

#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "event.h"
#include "intake.h"
#include "kafka_out.h"
#include "line.h"
#include "log.h"
#include "mqtt_link.h"
#include "mqtt_persist.h"
#include "spool.h"

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
} agent;

static void agent_publish_result(void *ud, const char *json)
{
    agent *a = ud;
    if (a->ml && mqtt_link_publish_result(a->ml, json) != 0) log_warn("order result not published: %s", json);
}

static void agent_events_committed(void *ud) { kafka_out_kick(((agent *)ud)->ko); }

static void agent_post_decision(void *ud, intake_decision *d) { line_post_decision(((agent *)ud)->ln, d); }

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
    intake_kick(a->in);
    return 0;
}

static long agent_ms_since(const struct timespec *t0)
{
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    return (now.tv_sec - t0->tv_sec) * 1000 + (now.tv_nsec - t0->tv_nsec) / 1000000;
}

static int agent_shutdown(agent *a)
{
    struct timespec t0;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    long budget = a->cfg->shutdown_timeout_ms;
    int rc = 0;
    log_info("stopping: no new boards; %d on the line finish", line_in_flight(a->ln));
    line_stop_feeding(a->ln);
    while (line_in_flight(a->ln) > 0 && agent_ms_since(&t0) < budget && rc == 0) rc = line_step(a->ln, 50);
    if (line_in_flight(a->ln) > 0)
        log_warn("%d boards still on the line after %ld ms; they resume at the next start", line_in_flight(a->ln),
                 budget);
    /* The intake keeps running until the MQTT link is down (the Paho thread
     * kicks it); decisions it makes after this step are not committed, so
     * their inbox rows are simply decided again at the next start. */
    if (rc == 0) rc = line_step(a->ln, 0);
    long left = budget - agent_ms_since(&t0);
    int64_t pending = kafka_out_drain(a->ko, a->sp, left > 0 ? (int)left : 0);
    if (pending) log_warn("%lld events not yet acknowledged by Kafka; kept in the spool", (long long)pending);
    else log_info("spool flushed: every event acknowledged by Kafka");
    return rc;
}

int agent_run(const config *cfg)
{
    agent a = {.cfg = cfg};
    char err[512];
    int rc = 1;
    log_set_level((enum log_level)log_level_parse(cfg->log_level));
    signal(SIGPIPE, SIG_IGN);
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = agent_on_signal;
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);

    spool_options so = {cfg->spool_synchronous, 0};
    if (spool_open(&a.sp, cfg->spool_path, &so, err, sizeof err) ||
        spool_open(&a.sp_mqtt, cfg->spool_path, &so, err, sizeof err)) {
        log_error("spool: %s", err);
        goto out;
    }
    if (!(a.ko = kafka_out_start(cfg, err, sizeof err))) {
        log_error("kafka: %s", err);
        goto out;
    }
    line_hooks hooks = {agent_publish_result, agent_events_committed, &a};
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
                           &persistence};
    if (mqtt_link_start(&a.ml, &mc, agent_on_order, &a, err, sizeof err)) {
        log_error("mqtt: %s", err);
        goto out;
    }
    log_info("lineagent %s running: site %s line %s, %zu stations, orders on %s/orders", LINEAGENT_VERSION,
             cfg->site, cfg->line, cfg->n_stations, cfg->topic_prefix);
    rc = 0;
    while (!agent_stop_requested && rc == 0) rc = line_step(a.ln, 100);
    if (rc == 0) rc = agent_shutdown(&a);
    else log_error("stopping after a spool failure; a restart resumes from the last commit");
out:
    mqtt_link_stop(a.ml, 2000);
    intake_stop(a.in);
    line_stop(a.ln);
    kafka_out_stop(a.ko);
    spool_close(a.sp_mqtt);
    spool_close(a.sp);
    if (rc == 0) log_info("stopped cleanly");
    return rc ? 1 : 0;
}
