/* SPDX-License-Identifier: Apache-2.0 */
/* mqtt_link.c - the agent's MQTT session with the MES, on Eclipse Paho's
 * async C client (MQTT 3.1.1). Orders arrive at QoS 1 on a persistent
 * session (clean session off); results and status go out at QoS 1. Paho's
 * own threads run the callbacks; the publish helpers are called from the
 * agent's main thread. A small retry thread covers the initial connect,
 * which some Paho versions do not retry by themselves. */
#include "mqtt_link.h"

#include "log.h"
#include "metrics.h"

#include <MQTTAsync.h>

#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define MQTT_LINK_QOS 1
#define MQTT_LINK_MAX_BUFFERED 1000
#define MQTT_LINK_RETRY_MIN_S 1
#define MQTT_LINK_RETRY_MAX_S 30
#define MQTT_LINK_STOP_GRACE_MS 1500

static const char STATUS_OFFLINE[] = "{\"state\":\"offline\"}";

struct mqtt_link {
    MQTTAsync client;
    mqtt_order_cb cb;
    void *ud;

    /* Owned copies: Paho may keep pointers into the connect options, and
     * the caller's config need not outlive mqtt_link_start(). */
    char *uri;
    char *client_id;
    char *username;
    char *password;
    char *ca_file;
    char *cert_file;
    char *key_file;
    char *orders_topic;
    char *command_topic; /* <prefix>/command/# */
    mqtt_command_cb command;
    char *result_topic;
    char *status_topic;
    char *prefix;
    char *online_json;
    char *status_json;   /* under mu: replaces online_json while set (alarms) */

    MQTTAsync_connectOptions conn_opts;
    MQTTAsync_willOptions will;
    MQTTAsync_SSLOptions ssl;

    atomic_int connected;      /* CONNACK seen, no connection loss since */
    atomic_int subscribed;     /* SUBACK for <prefix>/orders on this connection */
    atomic_int ever_connected; /* after the first success Paho reconnects by itself */

    /* mu guards everything below; cv wakes the retry thread and stop(). */
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int stopping;
    int retry_armed;
    int retry_backoff_s;
    struct timespec retry_at;
    int offline_done;    /* stop(): offline status acked or failed */
    int disconnect_done; /* stop(): disconnect completed or failed */
    int have_retry_thread;
    pthread_t retry_thread;
};

static int fail(char *err, size_t err_len, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

static int fail(char *err, size_t err_len, const char *fmt, ...)
{
    if (err && err_len > 0) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(err, err_len, fmt, ap);
        va_end(ap);
    }
    return -1;
}

/* Config strings: NULL and "" both mean "not set". */
static const char *opt(const char *s) { return s && *s ? s : NULL; }

static char *dup_opt(const char *s, int *oom)
{
    if (!opt(s)) return NULL;
    char *d = strdup(s);
    if (!d) *oom = 1;
    return d;
}

static char *concat(const char *a, const char *b, int *oom)
{
    size_t la = strlen(a), lb = strlen(b);
    char *s = malloc(la + lb + 1);
    if (!s) {
        *oom = 1;
        return NULL;
    }
    memcpy(s, a, la);
    memcpy(s + la, b, lb + 1);
    return s;
}

/* {"state":"online","client_id":"..."} with the id JSON-escaped: client ids
 * come from config and may hold any UTF-8. */
static char *online_json(const char *client_id, int *oom)
{
    static const char head[] = "{\"state\":\"online\",\"client_id\":\"";
    static const char tail[] = "\"}";
    size_t n = strlen(client_id);
    char *s = malloc(sizeof head + n * 6 + sizeof tail);
    if (!s) {
        *oom = 1;
        return NULL;
    }
    char *p = s;
    memcpy(p, head, sizeof head - 1);
    p += sizeof head - 1;
    for (const unsigned char *c = (const unsigned char *)client_id; *c; c++) {
        if (*c == '"' || *c == '\\') {
            *p++ = '\\';
            *p++ = (char)*c;
        } else if (*c < 0x20) {
            p += sprintf(p, "\\u%04x", *c);
        } else {
            *p++ = (char)*c;
        }
    }
    memcpy(p, tail, sizeof tail);
    return s;
}

static int has_prefix(const char *s, const char *prefix)
{
    return strncmp(s, prefix, strlen(prefix)) == 0;
}

/* The TLS schemes Paho accepts (it matches them case-sensitively too). */
static int uri_is_tls(const char *uri)
{
    return has_prefix(uri, "ssl://") || has_prefix(uri, "mqtts://") || has_prefix(uri, "wss://");
}

static void free_link(mqtt_link *ml)
{
    if (ml->password) {
        explicit_bzero(ml->password, strlen(ml->password));
        free(ml->password);
    }
    free(ml->uri);
    free(ml->client_id);
    free(ml->username);
    free(ml->ca_file);
    free(ml->cert_file);
    free(ml->key_file);
    free(ml->orders_topic);
    free(ml->command_topic);
    free(ml->result_topic);
    free(ml->status_topic);
    free(ml->prefix);
    free(ml->online_json);
    free(ml->status_json);
    pthread_cond_destroy(&ml->cv);
    pthread_mutex_destroy(&ml->mu);
    free(ml);
}

/* ---- retry thread: initial connect and failed subscribe ---------------- */

/* Schedules one more attempt with exponential backoff. Called from Paho's
 * thread, which must not sleep. */
static void arm_retry(mqtt_link *ml, const char *what)
{
    pthread_mutex_lock(&ml->mu);
    if (!ml->stopping) {
        ml->retry_backoff_s = ml->retry_backoff_s ? ml->retry_backoff_s * 2 : MQTT_LINK_RETRY_MIN_S;
        if (ml->retry_backoff_s > MQTT_LINK_RETRY_MAX_S) ml->retry_backoff_s = MQTT_LINK_RETRY_MAX_S;
        clock_gettime(CLOCK_MONOTONIC, &ml->retry_at);
        ml->retry_at.tv_sec += ml->retry_backoff_s;
        ml->retry_armed = 1;
        log_info("mqtt: retrying %s in %d s", what, ml->retry_backoff_s);
        pthread_cond_broadcast(&ml->cv);
    }
    pthread_mutex_unlock(&ml->mu);
}

static void reset_backoff(mqtt_link *ml)
{
    pthread_mutex_lock(&ml->mu);
    ml->retry_backoff_s = 0;
    ml->retry_armed = 0;
    pthread_mutex_unlock(&ml->mu);
}

static void subscribe_orders(mqtt_link *ml);

static void connect_failed(void *ctx, MQTTAsync_failureData *resp)
{
    mqtt_link *ml = ctx;
    int again = atomic_load(&ml->ever_connected);
    /* After a connection loss on_connection_lost has already warned. */
    /* TLS 1.3 reports a refused client certificate only as a failed
     * connection: say what is missing. */
    int no_cert = uri_is_tls(ml->uri) && !opt(ml->cert_file);
    log_msg(again ? LL_DEBUG : LL_WARN, "mqtt: connect to %s failed: %s (rc %d)%s", ml->uri,
            resp && resp->message ? resp->message : MQTTAsync_strerror(resp ? resp->code : 0),
            resp ? resp->code : 0,
            no_cert ? "; no client certificate configured ([mqtt] cert_file), which a broker requiring one refuses"
                    : "");
    /* Once connected, Paho's automatic reconnect owns retries; a second
     * retrier would only double the attempts. */
    if (!again) arm_retry(ml, "connect");
}

static void retry_now(mqtt_link *ml)
{
    if (!atomic_load(&ml->ever_connected)) {
        int rc = MQTTAsync_connect(ml->client, &ml->conn_opts);
        if (rc != MQTTASYNC_SUCCESS) {
            log_warn("mqtt: connect to %s not started: %s", ml->uri, MQTTAsync_strerror(rc));
            arm_retry(ml, "connect");
        }
    } else if (atomic_load(&ml->connected) && !atomic_load(&ml->subscribed)) {
        subscribe_orders(ml);
    }
    /* Otherwise the link is down again: Paho reconnects and on_connected
     * subscribes. */
}

static void *retry_main(void *arg)
{
    mqtt_link *ml = arg;
    pthread_mutex_lock(&ml->mu);
    while (!ml->stopping) {
        if (!ml->retry_armed) {
            pthread_cond_wait(&ml->cv, &ml->mu);
            continue;
        }
        struct timespec now;
        clock_gettime(CLOCK_MONOTONIC, &now);
        if (now.tv_sec < ml->retry_at.tv_sec ||
            (now.tv_sec == ml->retry_at.tv_sec && now.tv_nsec < ml->retry_at.tv_nsec)) {
            pthread_cond_timedwait(&ml->cv, &ml->mu, &ml->retry_at);
            continue;
        }
        ml->retry_armed = 0;
        /* Paho calls may run our callbacks, which take mu. */
        pthread_mutex_unlock(&ml->mu);
        retry_now(ml);
        pthread_mutex_lock(&ml->mu);
    }
    pthread_mutex_unlock(&ml->mu);
    return NULL;
}

/* ---- publishing -------------------------------------------------------- */

static void publish_failed(void *ctx, MQTTAsync_failureData *resp)
{
    (void)ctx;
    log_warn("mqtt: publish (token %d) failed: %s (rc %d)", resp ? resp->token : 0,
             resp && resp->message ? resp->message : MQTTAsync_strerror(resp ? resp->code : 0),
             resp ? resp->code : 0);
}

/* on_ok/on_fail, if given, run on Paho's thread when the publish is acked
 * or fails; by default failures are only logged. */
static int publish(mqtt_link *ml, const char *topic, const char *json, int retained,
                   MQTTAsync_onSuccess *on_ok, MQTTAsync_onFailure *on_fail)
{
    if (!ml || !json) return -1;
    size_t len = strlen(json);
    if (len > INT_MAX) {
        log_error("mqtt: payload for %s too large (%zu bytes)", topic, len);
        return -1;
    }
    MQTTAsync_message msg = MQTTAsync_message_initializer;
    msg.payload = (void *)json; /* Paho copies the payload before returning */
    msg.payloadlen = (int)len;
    msg.qos = MQTT_LINK_QOS;
    msg.retained = retained;
    MQTTAsync_responseOptions ropts = MQTTAsync_responseOptions_initializer;
    ropts.onSuccess = on_ok;
    ropts.onFailure = on_fail ? on_fail : publish_failed;
    ropts.context = ml;
    int rc = MQTTAsync_sendMessage(ml->client, topic, &msg, &ropts);
    if (rc != MQTTASYNC_SUCCESS) {
        log_error("mqtt: publish to %s failed: %s (rc %d)", topic, MQTTAsync_strerror(rc), rc);
        return -1;
    }
    return 0;
}

int mqtt_link_publish_result(mqtt_link *ml, const char *json)
{
    return ml ? publish(ml, ml->result_topic, json, 0, NULL, NULL) : -1;
}

int mqtt_link_set_status(mqtt_link *ml, const char *json)
{
    if (!ml) return -1;
    char *copy = json ? strdup(json) : NULL;
    pthread_mutex_lock(&ml->mu);
    free(ml->status_json);
    ml->status_json = copy;
    pthread_mutex_unlock(&ml->mu);
    const char *payload = json ? json : ml->online_json;
    if (publish(ml, ml->status_topic, payload, 1, NULL, NULL) == 0) return 0;
    /* A QoS 1 message goes through Paho's persistence, which lives in the
     * spool: with the disk full that fails, and the alarm saying so must
     * still get out. QoS 0 is not persisted. */
    if (!mqtt_link_ready(ml)) return -1;
    MQTTAsync_message msg = MQTTAsync_message_initializer;
    msg.payload = (void *)payload;
    msg.payloadlen = (int)strlen(payload);
    msg.qos = 0;
    msg.retained = 1;
    MQTTAsync_responseOptions ropts = MQTTAsync_responseOptions_initializer;
    return MQTTAsync_sendMessage(ml->client, ml->status_topic, &msg, &ropts) == MQTTASYNC_SUCCESS ? 0 : -1;
}

int mqtt_link_publish_live(mqtt_link *ml, const char *subtopic, const char *json)
{
    if (!mqtt_link_ready(ml)) return -1;
    char topic[512];
    if (snprintf(topic, sizeof topic, "%s/%s", ml->prefix, subtopic) >= (int)sizeof topic) return -1;
    MQTTAsync_message msg = MQTTAsync_message_initializer;
    msg.payload = (void *)json;
    msg.payloadlen = (int)strlen(json);
    msg.qos = 0;
    msg.retained = 1;
    MQTTAsync_responseOptions ropts = MQTTAsync_responseOptions_initializer;
    return MQTTAsync_sendMessage(ml->client, topic, &msg, &ropts) == MQTTASYNC_SUCCESS ? 0 : -1;
}

int mqtt_link_ready(mqtt_link *ml)
{
    return ml && atomic_load(&ml->connected) && atomic_load(&ml->subscribed);
}

/* ---- session callbacks (Paho's thread) --------------------------------- */

static void subscribe_ok(void *ctx, MQTTAsync_successData *resp)
{
    mqtt_link *ml = ctx;
    /* MQTT 3.1.1 reports a refused subscription as granted QoS 0x80. */
    if (resp && resp->alt.qos == 0x80) {
        log_error("mqtt: broker refused subscription to %s", ml->orders_topic);
        arm_retry(ml, "subscribe");
        return;
    }
    atomic_store(&ml->subscribed, 1);
    reset_backoff(ml);
    log_info("mqtt: subscribed to %s (granted QoS %d)", ml->orders_topic, resp ? resp->alt.qos : -1);
    if (ml->command) {
        MQTTAsync_responseOptions copts = MQTTAsync_responseOptions_initializer;
        int crc = MQTTAsync_subscribe(ml->client, ml->command_topic, MQTT_LINK_QOS, &copts);
        if (crc != MQTTASYNC_SUCCESS)
            log_warn("mqtt: subscribe to %s not sent: %s; operator commands do not reach the agent",
                     ml->command_topic, MQTTAsync_strerror(crc));
    }
    /* Announce online only once orders can actually reach us. */
    pthread_mutex_lock(&ml->mu);
    char *status = strdup(ml->status_json ? ml->status_json : ml->online_json);
    pthread_mutex_unlock(&ml->mu);
    if (status) publish(ml, ml->status_topic, status, 1, NULL, NULL);
    free(status);
}

static void subscribe_failed(void *ctx, MQTTAsync_failureData *resp)
{
    mqtt_link *ml = ctx;
    log_error("mqtt: subscribe to %s failed: %s (rc %d)", ml->orders_topic,
              resp && resp->message ? resp->message : MQTTAsync_strerror(resp ? resp->code : 0),
              resp ? resp->code : 0);
    if (atomic_load(&ml->connected)) arm_retry(ml, "subscribe");
}

static void subscribe_orders(mqtt_link *ml)
{
    MQTTAsync_responseOptions ropts = MQTTAsync_responseOptions_initializer;
    ropts.onSuccess = subscribe_ok;
    ropts.onFailure = subscribe_failed;
    ropts.context = ml;
    int rc = MQTTAsync_subscribe(ml->client, ml->orders_topic, MQTT_LINK_QOS, &ropts);
    if (rc != MQTTASYNC_SUCCESS) {
        log_error("mqtt: subscribe to %s not sent: %s (rc %d)", ml->orders_topic,
                  MQTTAsync_strerror(rc), rc);
        arm_retry(ml, "subscribe");
    }
}

/* Fires on the first connect and on every automatic reconnect. */
static void on_connected(void *ctx, char *cause)
{
    mqtt_link *ml = ctx;
    (void)cause; /* Paho 1.3 says "automatic reconnect" even the first time */
    int again = atomic_exchange(&ml->ever_connected, 1);
    atomic_store(&ml->subscribed, 0);
    atomic_store(&ml->connected, 1);
    metrics_set(METRICS_MQTT_CONNECTED, 1);
    reset_backoff(ml);
    log_info("mqtt: %s to %s as %s", again ? "reconnected" : "connected", ml->uri, ml->client_id);
    /* Subscribe every time: the broker may have lost the persistent
     * session (restart without persistence, session expiry). */
    subscribe_orders(ml);
}

static void on_connection_lost(void *ctx, char *cause)
{
    mqtt_link *ml = ctx;
    atomic_store(&ml->connected, 0);
    atomic_store(&ml->subscribed, 0);
    metrics_set(METRICS_MQTT_CONNECTED, 0);
    log_warn("mqtt: connection to %s lost: %s; reconnecting", ml->uri,
             cause ? cause : "no cause given");
}

static int on_message(void *ctx, char *topic, int topic_len, MQTTAsync_message *msg)
{
    mqtt_link *ml = ctx;
    size_t tlen = topic_len > 0 ? (size_t)topic_len : strlen(topic);
    size_t olen = strlen(ml->orders_topic);
    if (tlen == olen && memcmp(topic, ml->orders_topic, olen) == 0) {
        int rc = ml->cb(ml->ud, msg->payload, (size_t)msg->payloadlen);
        if (rc != 0) {
            /* Returning 0 without freeing makes Paho keep the message and
             * offer it again. Note Paho 1.3 has already sent the PUBACK:
             * the retry is from its memory only (next packet received,
             * later orders wait behind it) and dies with the process. */
            log_warn("mqtt: order handler rejected message (rc %d, %d bytes); Paho will offer it again",
                     rc, msg->payloadlen);
            return 0;
        }
    } else if (ml->command && tlen > strlen(ml->command_topic) - 1 &&
               memcmp(topic, ml->command_topic, strlen(ml->command_topic) - 1) == 0) {
        size_t clen = strlen(ml->command_topic) - 1; /* <prefix>/command/ */
        char cmd[64];
        snprintf(cmd, sizeof cmd, "%.*s", (int)(tlen - clen), topic + clen);
        ml->command(ml->ud, cmd, msg->payload, (size_t)msg->payloadlen);
    } else {
        log_debug("mqtt: ignoring message on %.*s", (int)tlen, topic);
    }
    MQTTAsync_freeMessage(&msg);
    MQTTAsync_free(topic);
    return 1;
}

static int on_ssl_error(const char *str, size_t len, void *ctx)
{
    (void)ctx;
    while (len > 0 && (str[len - 1] == '\n' || str[len - 1] == '\r')) len--; /* OpenSSL ends lines */
    log_warn("mqtt: TLS: %.*s", (int)(len > INT_MAX ? INT_MAX : len), str);
    return 0;
}

/* ---- lifecycle --------------------------------------------------------- */

static int check_config(const mqtt_link_config *cfg, char *err, size_t err_len)
{
    if (!opt(cfg->uri)) return fail(err, err_len, "mqtt: uri not set");
    if (!opt(cfg->client_id))
        return fail(err, err_len, "mqtt: client_id not set (a persistent session needs one)");
    if (!opt(cfg->topic_prefix)) return fail(err, err_len, "mqtt: topic_prefix not set");
    if (strpbrk(cfg->topic_prefix, "+#"))
        return fail(err, err_len, "mqtt: topic_prefix \"%s\" contains a wildcard", cfg->topic_prefix);
    if (!uri_is_tls(cfg->uri)) {
        if (opt(cfg->cert_file)) return fail(err, err_len, "mqtt: cert_file set but uri is %s", cfg->uri);
        if (opt(cfg->key_file)) return fail(err, err_len, "mqtt: key_file set but uri is %s", cfg->uri);
        /* Quietly ignoring the CA would send credentials in clear text to
         * an operator who believes TLS is on. */
        if (opt(cfg->ca_file)) return fail(err, err_len, "mqtt: ca_file set but uri is %s", cfg->uri);
    }
    if (!opt(cfg->cert_file) != !opt(cfg->key_file))
        return fail(err, err_len, "mqtt: cert_file and key_file must be set together");
    if (opt(cfg->password) && !opt(cfg->username))
        return fail(err, err_len, "mqtt: password set without username");
    return 0;
}

static int copy_config(mqtt_link *ml, const mqtt_link_config *cfg)
{
    int oom = 0;
    ml->uri = dup_opt(cfg->uri, &oom);
    ml->client_id = dup_opt(cfg->client_id, &oom);
    ml->username = dup_opt(cfg->username, &oom);
    ml->password = dup_opt(cfg->password, &oom);
    ml->ca_file = dup_opt(cfg->ca_file, &oom);
    ml->cert_file = dup_opt(cfg->cert_file, &oom);
    ml->key_file = dup_opt(cfg->key_file, &oom);
    ml->orders_topic = concat(cfg->topic_prefix, "/orders", &oom);
    ml->command_topic = concat(cfg->topic_prefix, "/command/#", &oom);
    ml->result_topic = concat(cfg->topic_prefix, "/orders/result", &oom);
    ml->status_topic = concat(cfg->topic_prefix, "/status", &oom);
    ml->prefix = concat(cfg->topic_prefix, "", &oom);
    ml->online_json = online_json(cfg->client_id, &oom);
    return oom ? -1 : 0;
}

static void fill_connect_options(mqtt_link *ml, int keepalive_s)
{
    MQTTAsync_willOptions will = MQTTAsync_willOptions_initializer;
    will.topicName = ml->status_topic;
    will.message = STATUS_OFFLINE;
    will.retained = 1;
    will.qos = MQTT_LINK_QOS;
    ml->will = will;

    MQTTAsync_connectOptions co = MQTTAsync_connectOptions_initializer;
    co.MQTTVersion = MQTTVERSION_3_1_1;
    co.keepAliveInterval = keepalive_s > 0 ? keepalive_s : 30;
    co.cleansession = 0;
    co.automaticReconnect = 1;
    co.minRetryInterval = MQTT_LINK_RETRY_MIN_S;
    co.maxRetryInterval = MQTT_LINK_RETRY_MAX_S;
    co.username = ml->username;
    co.password = ml->password;
    co.will = &ml->will;
    /* Success is handled by on_connected, which also covers reconnects. */
    co.onFailure = connect_failed;
    co.context = ml;

    if (uri_is_tls(ml->uri)) {
        MQTTAsync_SSLOptions ssl = MQTTAsync_SSLOptions_initializer;
        ssl.trustStore = ml->ca_file; /* NULL: OpenSSL's default store */
        ssl.keyStore = ml->cert_file;
        ssl.privateKey = ml->key_file;
        ssl.enableServerCertAuth = 1;
        ssl.verify = 1; /* host name must match the broker certificate */
        ssl.sslVersion = MQTT_SSL_VERSION_TLS_1_2;
        /* Paho ignores sslVersion with OpenSSL 1.1+ (TLS_client_method, any
         * version): TLS 1.2 is made the floor by offering only AEAD suites,
         * which TLS 1.0/1.1 cannot negotiate (TLS 1.3 suites are apart). */
        ssl.enabledCipherSuites = "ECDHE+AESGCM:ECDHE+CHACHA20:DHE+AESGCM:DHE+CHACHA20";
        ssl.ssl_error_cb = on_ssl_error;
        ssl.ssl_error_context = ml;
        ml->ssl = ssl;
        co.ssl = &ml->ssl;
    }
    ml->conn_opts = co;
}

int mqtt_link_start(mqtt_link **out, const mqtt_link_config *cfg, mqtt_order_cb cb, void *ud,
                    char *err, size_t err_len)
{
    if (!out || !cfg || !cb) return fail(err, err_len, "mqtt: missing argument");
    *out = NULL;
    if (check_config(cfg, err, err_len) != 0) return -1;

    mqtt_link *ml = calloc(1, sizeof *ml);
    if (!ml) return fail(err, err_len, "mqtt: out of memory");
    pthread_mutex_init(&ml->mu, NULL);
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&ml->cv, &ca);
    pthread_condattr_destroy(&ca);
    ml->cb = cb;
    ml->ud = ud;
    ml->command = cfg->command;
    if (copy_config(ml, cfg) != 0) {
        free_link(ml);
        return fail(err, err_len, "mqtt: out of memory");
    }
    int tls = uri_is_tls(ml->uri);
    fill_connect_options(ml, cfg->keepalive_s);

    /* With cfg->persistence, Paho writes each received QoS 1 message (and
     * each queued result) to that store before acting on it. */
    MQTTAsync_createOptions copts = MQTTAsync_createOptions_initializer;
    copts.MQTTVersion = MQTTVERSION_3_1_1;
    copts.sendWhileDisconnected = 1;
    copts.maxBufferedMessages = MQTT_LINK_MAX_BUFFERED;
    int rc = MQTTAsync_createWithOptions(&ml->client, ml->uri, ml->client_id,
                                         cfg->persistence ? MQTTCLIENT_PERSISTENCE_USER : MQTTCLIENT_PERSISTENCE_NONE,
                                         cfg->persistence, &copts);
    if (rc != MQTTASYNC_SUCCESS) {
        if (tls && (rc == MQTTASYNC_BAD_PROTOCOL || rc == MQTTASYNC_SSL_NOT_SUPPORTED))
            fail(err, err_len, "mqtt: %s needs TLS but this Paho library has none "
                               "(link paho-mqtt3as): %s", ml->uri, MQTTAsync_strerror(rc));
        else
            fail(err, err_len, "mqtt: cannot create client for %s: %s", ml->uri,
                 MQTTAsync_strerror(rc));
        free_link(ml);
        return -1;
    }
    rc = MQTTAsync_setCallbacks(ml->client, ml, on_connection_lost, on_message, NULL);
    if (rc == MQTTASYNC_SUCCESS) rc = MQTTAsync_setConnected(ml->client, ml, on_connected);
    if (rc != MQTTASYNC_SUCCESS) {
        fail(err, err_len, "mqtt: cannot set callbacks: %s", MQTTAsync_strerror(rc));
        goto destroy;
    }
    rc = pthread_create(&ml->retry_thread, NULL, retry_main, ml);
    if (rc != 0) {
        fail(err, err_len, "mqtt: cannot start retry thread: %s", strerror(rc));
        goto destroy;
    }
    ml->have_retry_thread = 1;

    rc = MQTTAsync_connect(ml->client, &ml->conn_opts);
    if (rc != MQTTASYNC_SUCCESS) {
        if (tls && rc == MQTTASYNC_SSL_NOT_SUPPORTED)
            fail(err, err_len, "mqtt: %s needs TLS but this Paho library has none "
                               "(link paho-mqtt3as)", ml->uri);
        else
            fail(err, err_len, "mqtt: cannot connect to %s: %s", ml->uri, MQTTAsync_strerror(rc));
        goto destroy;
    }
    log_info("mqtt: connecting to %s as %s%s%s, orders on %s", ml->uri, ml->client_id,
             ml->username ? ", user " : "", ml->username ? ml->username : "", ml->orders_topic);
    *out = ml;
    return 0;

destroy:
    mqtt_link_stop(ml, 0);
    return -1;
}

/* ---- stop -------------------------------------------------------------- */

static void set_flag(mqtt_link *ml, int *flag)
{
    pthread_mutex_lock(&ml->mu);
    *flag = 1;
    pthread_cond_broadcast(&ml->cv);
    pthread_mutex_unlock(&ml->mu);
}

/* Waits until *flag is set or deadline (CLOCK_MONOTONIC) passes. */
static int wait_flag(mqtt_link *ml, int *flag, const struct timespec *deadline)
{
    pthread_mutex_lock(&ml->mu);
    int rc = 0;
    while (!*flag && rc != ETIMEDOUT) rc = pthread_cond_timedwait(&ml->cv, &ml->mu, deadline);
    int set = *flag;
    pthread_mutex_unlock(&ml->mu);
    return set;
}

static struct timespec deadline_in(long long ms)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    long long ns = t.tv_nsec + ms * 1000000LL;
    t.tv_sec += (time_t)(ns / 1000000000LL);
    t.tv_nsec = (long)(ns % 1000000000LL);
    return t;
}

static int ms_until(const struct timespec *deadline)
{
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    long long ms = (long long)(deadline->tv_sec - now.tv_sec) * 1000 +
                   (deadline->tv_nsec - now.tv_nsec) / 1000000;
    return ms < 0 ? 0 : ms > INT_MAX ? INT_MAX : (int)ms;
}

static void offline_sent(void *ctx, MQTTAsync_successData *resp)
{
    mqtt_link *ml = ctx;
    (void)resp;
    set_flag(ml, &ml->offline_done);
}

static void offline_failed(void *ctx, MQTTAsync_failureData *resp)
{
    mqtt_link *ml = ctx;
    publish_failed(ctx, resp);
    set_flag(ml, &ml->offline_done);
}

static void disconnect_ok(void *ctx, MQTTAsync_successData *resp)
{
    mqtt_link *ml = ctx;
    (void)resp;
    set_flag(ml, &ml->disconnect_done);
}

static void disconnect_failed(void *ctx, MQTTAsync_failureData *resp)
{
    mqtt_link *ml = ctx;
    log_warn("mqtt: disconnect from %s failed: %s (rc %d)", ml->uri,
             resp && resp->message ? resp->message : MQTTAsync_strerror(resp ? resp->code : 0),
             resp ? resp->code : 0);
    set_flag(ml, &ml->disconnect_done);
}

static void disconnect(mqtt_link *ml, int timeout_ms)
{
    struct timespec deadline = deadline_in(timeout_ms);
    /* A clean disconnect suppresses the will, so say offline ourselves.
     * Waiting for its PUBACK first matters: Paho re-checks in-flight
     * messages during a disconnect only every few seconds, so
     * disconnecting with one outstanding costs the whole timeout. */
    if (publish(ml, ml->status_topic, STATUS_OFFLINE, 1, offline_sent, offline_failed) == 0 &&
        !wait_flag(ml, &ml->offline_done, &deadline))
        log_warn("mqtt: offline status not acknowledged within %d ms", timeout_ms);

    MQTTAsync_disconnectOptions dopts = MQTTAsync_disconnectOptions_initializer;
    dopts.timeout = ms_until(&deadline); /* lets other in-flight results finish */
    dopts.onSuccess = disconnect_ok;
    dopts.onFailure = disconnect_failed;
    dopts.context = ml;
    int rc = MQTTAsync_disconnect(ml->client, &dopts);
    if (rc != MQTTASYNC_SUCCESS) {
        log_warn("mqtt: disconnect from %s: %s", ml->uri, MQTTAsync_strerror(rc));
        return;
    }
    /* Paho checks its disconnect timer from its own loop, so the callback
     * can come a little after the timeout. */
    deadline = deadline_in((long long)dopts.timeout + MQTT_LINK_STOP_GRACE_MS);
    if (wait_flag(ml, &ml->disconnect_done, &deadline))
        log_info("mqtt: disconnected from %s", ml->uri);
    else
        log_warn("mqtt: disconnect from %s did not complete in time", ml->uri);
}

void mqtt_link_stop(mqtt_link *ml, int timeout_ms)
{
    if (!ml) return;

    pthread_mutex_lock(&ml->mu);
    ml->stopping = 1;
    pthread_cond_broadcast(&ml->cv);
    pthread_mutex_unlock(&ml->mu);
    /* Joined first so no retry can reconnect behind the disconnect. */
    if (ml->have_retry_thread) pthread_join(ml->retry_thread, NULL);

    atomic_store(&ml->subscribed, 0);
    if (MQTTAsync_isConnected(ml->client)) disconnect(ml, timeout_ms < 0 ? 0 : timeout_ms);
    atomic_store(&ml->connected, 0);
    metrics_set(METRICS_MQTT_CONNECTED, 0);
    /* Stops Paho's threads for this client: no callback runs after this. */
    MQTTAsync_destroy(&ml->client);
    free_link(ml);
}
