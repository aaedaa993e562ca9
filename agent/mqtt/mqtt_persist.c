/* SPDX-License-Identifier: Apache-2.0 */
/* mqtt_persist.c - MQTTClient_persistence callbacks on the spool's key/value
 * table, one namespace per client id and broker. Paho frees what pget and
 * pkeys return, so those buffers come from MQTTAsync_malloc. */
#include "mqtt_persist.h"

#include <MQTTAsync.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"

#define MQTT_PERSIST_BUSY_MS 250

typedef struct mqtt_store {
    spool *sp;
    pthread_mutex_t lock; /* Paho may call from its send and receive threads */
    char ns[512];
} mqtt_store;

static int mp_open(void **handle, const char *client_id, const char *server_uri, void *context)
{
    mqtt_persist_ctx *ctx = context;
    mqtt_store *s = calloc(1, sizeof *s);
    char err[256];
    /* Paho calls us holding its client lock, from the publishing thread and
     * its own send and receive threads: a write waiting the spool's full
     * busy timeout while another process holds the write lock would stall
     * the whole MQTT session (keepalive, the status alarm saying the spool
     * is busy) again at every message. So persistence waits briefly and
     * fails: a put that fails leaves the message sent but not durable
     * (Paho still sends it), a remove that fails leaves a key that is sent
     * once more after a restart (at least once, as QoS 1 is anyway). */
    spool_options opts = ctx->opts;
    opts.busy_timeout_ms = MQTT_PERSIST_BUSY_MS;
    if (!s || spool_open(&s->sp, ctx->spool_path, &opts, err, sizeof err) != 0) {
        log_error("mqtt persistence: %s", s ? err : "out of memory");
        free(s);
        return MQTTCLIENT_PERSISTENCE_ERROR;
    }
    pthread_mutex_init(&s->lock, NULL);
    snprintf(s->ns, sizeof s->ns, "mqtt:%s@%s", client_id, server_uri);
    *handle = s;
    return 0;
}

static int mp_close(void *handle)
{
    mqtt_store *s = handle;
    spool_close(s->sp);
    pthread_mutex_destroy(&s->lock);
    free(s);
    return 0;
}

static int mp_result(mqtt_store *s, int rc, const char *what)
{
    if (rc < 0) log_error("mqtt persistence %s: %s", what, spool_errmsg(s->sp));
    return rc < 0 ? MQTTCLIENT_PERSISTENCE_ERROR : 0;
}

static int mp_put(void *handle, char *key, int bufcount, char *buffers[], int buflens[])
{
    mqtt_store *s = handle;
    size_t total = 0;
    for (int i = 0; i < bufcount; i++) total += (size_t)buflens[i];
    uint8_t *v = malloc(total ? total : 1);
    if (!v) return MQTTCLIENT_PERSISTENCE_ERROR;
    size_t off = 0;
    for (int i = 0; i < bufcount; i++) {
        memcpy(v + off, buffers[i], (size_t)buflens[i]);
        off += (size_t)buflens[i];
    }
    pthread_mutex_lock(&s->lock);
    int rc = spool_kv_put(s->sp, s->ns, key, v, total);
    pthread_mutex_unlock(&s->lock);
    free(v);
    return mp_result(s, rc, "put");
}

/* 1 found (v malloc'ed), 0 absent, -1 error. */
static int mp_lookup(mqtt_store *s, const char *key, uint8_t **v, size_t *len)
{
    pthread_mutex_lock(&s->lock);
    int rc = spool_kv_get(s->sp, s->ns, key, v, len);
    pthread_mutex_unlock(&s->lock);
    return rc;
}

static int mp_get(void *handle, char *key, char **buffer, int *buflen)
{
    mqtt_store *s = handle;
    uint8_t *v;
    size_t len;
    int rc = mp_lookup(s, key, &v, &len);
    if (rc != 1) {
        mp_result(s, rc, "get");
        return MQTTCLIENT_PERSISTENCE_ERROR; /* absent is an error to Paho too */
    }
    *buffer = MQTTAsync_malloc(len ? len : 1);
    if (*buffer) memcpy(*buffer, v, len);
    *buflen = (int)len;
    free(v);
    return *buffer ? 0 : MQTTCLIENT_PERSISTENCE_ERROR;
}

static int mp_remove(void *handle, char *key)
{
    mqtt_store *s = handle;
    pthread_mutex_lock(&s->lock);
    int rc = spool_kv_del(s->sp, s->ns, key);
    pthread_mutex_unlock(&s->lock);
    return mp_result(s, rc, "remove");
}

typedef struct mp_keys {
    char **keys;
    int n, cap;
} mp_keys;

static int mp_collect(void *ud, const char *key)
{
    mp_keys *k = ud;
    if (k->n == k->cap) {
        int cap = k->cap ? k->cap * 2 : 16;
        char **grown = MQTTAsync_malloc((size_t)cap * sizeof *grown);
        if (!grown) return -1;
        if (k->n) memcpy(grown, k->keys, (size_t)k->n * sizeof *grown);
        MQTTAsync_free(k->keys);
        k->keys = grown;
        k->cap = cap;
    }
    size_t len = strlen(key) + 1;
    if (!(k->keys[k->n] = MQTTAsync_malloc(len))) return -1;
    memcpy(k->keys[k->n++], key, len);
    return 0;
}

static int mp_keys_list(void *handle, char ***keys, int *nkeys)
{
    mqtt_store *s = handle;
    mp_keys k = {0};
    pthread_mutex_lock(&s->lock);
    int rc = spool_kv_keys(s->sp, s->ns, mp_collect, &k);
    pthread_mutex_unlock(&s->lock);
    *keys = k.keys;
    *nkeys = k.n;
    return mp_result(s, rc, "keys");
}

static int mp_clear(void *handle)
{
    mqtt_store *s = handle;
    pthread_mutex_lock(&s->lock);
    int rc = spool_kv_clear(s->sp, s->ns);
    pthread_mutex_unlock(&s->lock);
    return mp_result(s, rc, "clear");
}

static int mp_contains(void *handle, char *key)
{
    uint8_t *v;
    size_t len;
    int rc = mp_lookup(handle, key, &v, &len);
    free(v);
    return rc == 1 ? 0 : MQTTCLIENT_PERSISTENCE_ERROR;
}

void mqtt_persist_init(MQTTClient_persistence *p, mqtt_persist_ctx *ctx)
{
    *p = (MQTTClient_persistence){ctx, mp_open, mp_close, mp_put, mp_get, mp_remove, mp_keys_list, mp_clear, mp_contains};
}
