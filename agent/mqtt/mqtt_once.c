/* SPDX-License-Identifier: Apache-2.0 */
/* mqtt_once.c - one QoS 1 publish on a short-lived session of its own, for
 * the command-line tools (`lineagent site resume`): connect with the
 * agent's broker settings (TLS, user, password), publish, wait for the
 * broker's PUBACK, disconnect. */
#include "mqtt_once.h"

#include <MQTTAsync.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

typedef struct mqtt_once {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int done; /* 1 ok, -1 failed */
    char why[256];
} mqtt_once;

static void mqtt_once_finish(mqtt_once *o, int rc, const char *why)
{
    pthread_mutex_lock(&o->mu);
    if (!o->done) {
        o->done = rc;
        if (why) snprintf(o->why, sizeof o->why, "%s", why);
    }
    pthread_cond_signal(&o->cv);
    pthread_mutex_unlock(&o->mu);
}

static void mqtt_once_ok(void *ctx, MQTTAsync_successData *d)
{
    (void)d;
    mqtt_once_finish(ctx, 1, NULL);
}

static void mqtt_once_failed(void *ctx, MQTTAsync_failureData *d)
{
    char why[200];
    snprintf(why, sizeof why, "%s (code %d)", d && d->message ? d->message : MQTTAsync_strerror(d ? d->code : -1),
             d ? d->code : -1);
    mqtt_once_finish(ctx, -1, why);
}

/* Waits for the pending step; 1 ok, -1 failed or timed out (why in o). */
static int mqtt_once_wait(mqtt_once *o, int timeout_ms)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    ts.tv_sec += timeout_ms / 1000;
    ts.tv_nsec += (long)(timeout_ms % 1000) * 1000000L;
    if (ts.tv_nsec >= 1000000000L) ts.tv_sec++, ts.tv_nsec -= 1000000000L;
    pthread_mutex_lock(&o->mu);
    while (!o->done)
        if (pthread_cond_timedwait(&o->cv, &o->mu, &ts) != 0) {
            o->done = -1;
            snprintf(o->why, sizeof o->why, "no answer from the broker within %d ms", timeout_ms);
        }
    int rc = o->done;
    o->done = 0;
    pthread_mutex_unlock(&o->mu);
    return rc;
}

int mqtt_publish_once(const mqtt_link_config *cfg, const char *topic, const char *payload, int timeout_ms,
                      char *err, size_t err_len)
{
    /* A client id of its own: the agent's would take over its session. */
    char id[200];
    snprintf(id, sizeof id, "%s-cli-%ld", cfg->client_id, (long)getpid());
    MQTTAsync client;
    int rc = MQTTAsync_create(&client, cfg->uri, id, MQTTCLIENT_PERSISTENCE_NONE, NULL);
    if (rc != MQTTASYNC_SUCCESS) {
        snprintf(err, err_len, "cannot create an MQTT client for %s: %s", cfg->uri, MQTTAsync_strerror(rc));
        return -1;
    }
    mqtt_once o = {.done = 0};
    pthread_mutex_init(&o.mu, NULL);
    pthread_cond_init(&o.cv, NULL);

    MQTTAsync_connectOptions co = MQTTAsync_connectOptions_initializer;
    co.MQTTVersion = MQTTVERSION_3_1_1;
    co.keepAliveInterval = cfg->keepalive_s > 0 ? cfg->keepalive_s : 30;
    co.cleansession = 1;
    co.username = cfg->username;
    co.password = cfg->password;
    co.onSuccess = mqtt_once_ok;
    co.onFailure = mqtt_once_failed;
    co.context = &o;
    MQTTAsync_SSLOptions ssl = MQTTAsync_SSLOptions_initializer;
    if (strncmp(cfg->uri, "ssl://", 6) == 0) {
        ssl.trustStore = cfg->ca_file;
        ssl.keyStore = cfg->cert_file;
        ssl.privateKey = cfg->key_file;
        ssl.enableServerCertAuth = 1;
        ssl.verify = 1;
        ssl.sslVersion = MQTT_SSL_VERSION_TLS_1_2;
        co.ssl = &ssl;
    }
    int ok = -1;
    rc = MQTTAsync_connect(client, &co);
    if (rc != MQTTASYNC_SUCCESS) snprintf(err, err_len, "connecting to %s: %s", cfg->uri, MQTTAsync_strerror(rc));
    else if (mqtt_once_wait(&o, timeout_ms) != 1) snprintf(err, err_len, "connecting to %s: %s", cfg->uri, o.why);
    else {
        MQTTAsync_responseOptions ro = MQTTAsync_responseOptions_initializer;
        ro.onSuccess = mqtt_once_ok;
        ro.onFailure = mqtt_once_failed;
        ro.context = &o;
        rc = MQTTAsync_send(client, topic, (int)strlen(payload), payload, 1, 0, &ro);
        if (rc != MQTTASYNC_SUCCESS) snprintf(err, err_len, "publishing to %s: %s", topic, MQTTAsync_strerror(rc));
        else if (mqtt_once_wait(&o, timeout_ms) != 1) snprintf(err, err_len, "publishing to %s: %s", topic, o.why);
        else ok = 0;
        MQTTAsync_disconnectOptions dc = MQTTAsync_disconnectOptions_initializer;
        dc.timeout = 1000;
        MQTTAsync_disconnect(client, &dc);
    }
    MQTTAsync_destroy(&client);
    pthread_mutex_destroy(&o.mu);
    pthread_cond_destroy(&o.cv);
    return ok;
}
