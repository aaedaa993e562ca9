/* station.c - station worker threads: each takes boards from its own queue,
 * enforces the route interlock, runs its steps through the adapter and posts
 * every result to the coordinator, stopping at the first failure so a failed
 * board is never written or provisioned afterwards (rule W2). */
#include "station.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "provision_step.h"

typedef struct station_node {
    station_job job;
    struct station_node *next;
} station_node;

struct station {
    char name[ADAPTER_ID_MAX];
    uint32_t steps;
    const adapter *ad;
    void *ad_state;
    station_post_fn post;
    void *ud;
    pthread_t thread;
    pthread_mutex_t lock;
    pthread_cond_t cond;
    station_node *head, *tail;
    int queued; /* including the running job */
    int stopping;
    provision_client *prov; /* NULL: no provisioning server configured */
};

int station_interlock_ok(const Step *flow, int n_flow, int from, uint32_t steps_done)
{
    for (int i = 0; i < from && i < n_flow; i++)
        if (!(steps_done & (1u << flow[i]))) return 0;
    return 1;
}

int station_judge(adapter_result *res)
{
    for (int i = 0; i < res->n_measurements; i++) {
        const adapter_measurement *m = &res->measurements[i];
        if (!(m->value >= m->low && m->value <= m->high)) {
            snprintf(res->failure_mode, sizeof res->failure_mode, "limit_exceeded");
            snprintf(res->detail, sizeof res->detail, "%s = %g %s outside [%g, %g]", m->name, m->value,
                     m->unit, m->low, m->high);
            res->passed = 0;
            return -1;
        }
    }
    return 0;
}

static adapter_step_fn station_step_fn(const adapter *ad, Step s)
{
    switch (s) {
    case LINEAGENT__V1__STEP__WRITE: return ad->write;
    case LINEAGENT__V1__STEP__VERIFY: return ad->verify;
    case LINEAGENT__V1__STEP__PROVISION: return ad->provision;
    case LINEAGENT__V1__STEP__TEST: return ad->test;
    case LINEAGENT__V1__STEP__CALIBRATE: return ad->calibrate;
    case LINEAGENT__V1__STEP__LOCK: return ad->lock;
    default: return NULL;
    }
}

static station_result *station_result_new(station *st, const station_job *job, enum station_result_kind kind)
{
    station_result *r = calloc(1, sizeof *r);
    r->kind = kind;
    r->st = st;
    r->unit = job->unit;
    snprintf(r->board_id, sizeof r->board_id, "%s", job->board_id);
    return r;
}

/* Posts one step's failure without calling the adapter (refused board). */
static void station_refuse(station *st, const station_job *job, Step s, const char *mode, const char *detail)
{
    station_result *r = station_result_new(st, job, STATION_STEP);
    r->step = s;
    snprintf(r->res.failure_mode, sizeof r->res.failure_mode, "%s", mode);
    snprintf(r->res.detail, sizeof r->res.detail, "%s", detail);
    st->post(st->ud, r);
}

static void station_run(station *st, station_job *job)
{
    if (job->load) {
        if (st->ad->load_board(st->ad_state, job->lot_id, job->idx, job->board_id, sizeof job->board_id) != 0) {
            station_result *done = station_result_new(st, job, STATION_DONE);
            done->failed = 1;
            done->next = job->from;
            st->post(st->ud, done);
            return;
        }
        st->post(st->ud, station_result_new(st, job, STATION_LOADED));
    }
    int i = job->from, failed = 0;
    if (!station_interlock_ok(job->flow, job->n_flow, job->from, job->steps_done)) {
        char detail[128];
        snprintf(detail, sizeof detail, "steps before %s have not all passed", order_step_name(job->flow[i]));
        station_refuse(st, job, job->flow[i], "route_interlock", detail);
        failed = 1;
    }
    for (; !failed && i < job->n_flow && (st->steps & (1u << job->flow[i])); i++) {
        Step s = job->flow[i];
        adapter_step_fn fn = station_step_fn(st->ad, s);
        if (!fn) {
            station_refuse(st, job, s, "step_unsupported", "this station's adapter cannot perform the step");
            failed = 1;
            break;
        }
        if ((s == LINEAGENT__V1__STEP__WRITE || s == LINEAGENT__V1__STEP__VERIFY) && !job->image) {
            station_refuse(st, job, s, "no_release", "no firmware release is bound to this board");
            failed = 1;
            break;
        }
        station_result *r = station_result_new(st, job, STATION_STEP);
        r->step = s;
        adapter_step_ctx ctx = {st->name, job->lot_id, job->board_id, job->image, job->product, NULL};
        if (s == LINEAGENT__V1__STEP__PROVISION && st->prov)
            provision_step_run(st->prov, st->ad, st->ad_state, &ctx, job->order_id, &r->res);
        else
            fn(st->ad_state, &ctx, &r->res);
        if (r->res.passed) station_judge(&r->res);
        if (!r->res.passed && !r->res.failure_mode[0])
            snprintf(r->res.failure_mode, sizeof r->res.failure_mode, "%s_failed", order_step_name(s));
        failed = !r->res.passed;
        st->post(st->ud, r);
        if (failed) break;
    }
    station_result *done = station_result_new(st, job, STATION_DONE);
    done->next = i;
    done->failed = failed;
    st->post(st->ud, done);
}

static void *station_main(void *arg)
{
    station *st = arg;
    pthread_mutex_lock(&st->lock);
    for (;;) {
        while (!st->head && !st->stopping) pthread_cond_wait(&st->cond, &st->lock);
        if (st->stopping) break;
        station_node *n = st->head;
        st->head = n->next;
        if (!st->head) st->tail = NULL;
        pthread_mutex_unlock(&st->lock);
        station_run(st, &n->job);
        free(n);
        pthread_mutex_lock(&st->lock);
        st->queued--;
    }
    pthread_mutex_unlock(&st->lock);
    return NULL;
}

station *station_start(const config_station *cfg, station_post_fn post, void *ud, char *err, size_t err_len)
{
    const adapter *ad = adapter_find(cfg->adapter);
    if (!ad) {
        snprintf(err, err_len, "[station %s] unknown adapter %s", cfg->name, cfg->adapter);
        return NULL;
    }
    station *st = calloc(1, sizeof *st);
    snprintf(st->name, sizeof st->name, "%s", cfg->name);
    st->steps = cfg->steps_mask;
    st->ad = ad;
    st->post = post;
    st->ud = ud;
    if (ad->open(&st->ad_state, cfg, err, err_len) != 0) {
        free(st);
        return NULL;
    }
    pthread_mutex_init(&st->lock, NULL);
    pthread_cond_init(&st->cond, NULL);
    if (pthread_create(&st->thread, NULL, station_main, st) != 0) {
        snprintf(err, err_len, "[station %s] cannot start thread", cfg->name);
        ad->close(st->ad_state);
        free(st);
        return NULL;
    }
    return st;
}

int station_enable_provisioning(station *st, const config *cfg, char *err, size_t err_len)
{
    if (!cfg->prov_url || !(st->steps & (1u << LINEAGENT__V1__STEP__PROVISION))) return 0;
    provision_settings ps = {cfg->prov_url, cfg->prov_ca_file, cfg->prov_cert_file, cfg->prov_key_file,
                             cfg->prov_timeout_ms, cfg->prov_retries};
    st->prov = provision_client_new(&ps, err, err_len);
    return st->prov ? 0 : -1;
}

void station_submit(station *st, const station_job *job)
{
    station_node *n = malloc(sizeof *n);
    n->job = *job;
    n->next = NULL;
    pthread_mutex_lock(&st->lock);
    if (st->tail) st->tail->next = n;
    else st->head = n;
    st->tail = n;
    st->queued++;
    pthread_cond_signal(&st->cond);
    pthread_mutex_unlock(&st->lock);
}

int station_load(station *st)
{
    pthread_mutex_lock(&st->lock);
    int n = st->queued;
    pthread_mutex_unlock(&st->lock);
    return n;
}

const char *station_name(const station *st) { return st->name; }
uint32_t station_steps(const station *st) { return st->steps; }

void station_stop(station *st)
{
    if (!st) return;
    pthread_mutex_lock(&st->lock);
    st->stopping = 1;
    pthread_cond_signal(&st->cond);
    pthread_mutex_unlock(&st->lock);
    pthread_join(st->thread, NULL);
    for (station_node *n = st->head, *next; n; n = next) {
        next = n->next;
        free(n);
    }
    st->ad->close(st->ad_state);
    provision_client_free(st->prov);
    pthread_mutex_destroy(&st->lock);
    pthread_cond_destroy(&st->cond);
    free(st);
}
