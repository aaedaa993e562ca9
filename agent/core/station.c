/* SPDX-License-Identifier: Apache-2.0 */
/* station.c - station worker threads: each takes boards from its own queue,
 * enforces the route interlock, runs its steps through the adapter and posts
 * every result to the coordinator, stopping at the first failure so a failed
 * board is never written or provisioned afterwards (rule W2). */
#include "station.h"

#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <zlib.h>

#include "digest.h"
#include "metrics.h"
#include "provision_step.h"

typedef struct station_node {
    station_job job;
    struct station_node *next;
} station_node;

/* One fixture site of a station (gang programming): its own worker thread
 * and adapter state; all sites take boards from the station's one queue,
 * so a slow or failed site never holds the others. */
typedef struct station_site {
    struct station *st;
    uint32_t site;
    void *ad_state;
    pthread_t thread;
    int started;
    latency_hist dispatch; /* written by this site's worker only */
    provision_client *prov; /* this site's own; NULL: no provisioning server */
    int paused;             /* under st->lock: takes no job (fixture_site_suspect) */
    char board[ADAPTER_ID_MAX]; /* under st->lock: the board on the site; "" when none */
} station_site;

struct station {
    char name[ADAPTER_ID_MAX];
    uint32_t steps;
    const adapter *ad;
    station_site *sites;
    uint32_t n_sites;
    station_post_fn post;
    void *ud;
    pthread_mutex_t lock;
    pthread_cond_t cond;
    station_node *head, *tail;
    int queued; /* including the running job */
    int stopping;
    int metrics; /* index in the metric registry */
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

int station_judge_items(adapter_result *res, const adapter_measurement *items, int n_items)
{
    /* A step that failed already keeps its own failure; its record still
     * gets the order's limits and the missing items. */
    int failed = !res->passed;
    for (int k = 0; k < n_items; k++) {
        const adapter_measurement *it = &items[k];
        adapter_measurement *m = NULL;
        for (int i = 0; i < res->n_measurements && !m; i++)
            if (strcmp(res->measurements[i].name, it->name) == 0) m = &res->measurements[i];
        if (!m) {
            if (res->n_measurements < ADAPTER_MAX_MEASUREMENTS) {
                m = &res->measurements[res->n_measurements++];
                *m = *it;
                m->value = NAN;
            }
            if (!failed++) {
                snprintf(res->failure_mode, sizeof res->failure_mode, "measurement_missing");
                snprintf(res->detail, sizeof res->detail, "the station did not measure %s (order item [%g, %g] %s)",
                         it->name, it->low, it->high, it->unit);
            }
            continue;
        }
        m->low = it->low;
        m->high = it->high;
        if (it->unit[0] && strcmp(m->unit, it->unit) != 0) {
            if (!failed++) {
                snprintf(res->failure_mode, sizeof res->failure_mode, "unit_mismatch");
                snprintf(res->detail, sizeof res->detail, "%s measured in \"%s\", the order's item is in \"%s\"",
                         it->name, m->unit, it->unit);
            }
        }
    }
    if (failed) {
        res->passed = 0;
        return -1;
    }
    return station_judge(res);
}

int station_check_readback(const adapter_image *img, adapter_result *res)
{
    char got[72], want[72];
    const char *method;
    if (res->readback_sha256[0]) {
        method = "sha256";
        snprintf(got, sizeof got, "%s", res->readback_sha256);
        snprintf(want, sizeof want, "%s", img->sha256);
    } else if (res->readback_crc != ADAPTER_CRC_NONE) {
        uint32_t crc = 0xffffffffu;
        if (res->readback_crc == ADAPTER_CRC32_GDB) {
            method = "crc32_gdb";
            crc = digest_crc32_gdb(crc, img->data, img->len);
        } else {
            method = "crc32";
            crc = (uint32_t)crc32_z(crc32_z(0, NULL, 0), img->data, img->len);
        }
        snprintf(got, sizeof got, "%08x", res->readback_crc32);
        snprintf(want, sizeof want, "%08x", crc);
    } else {
        if (!res->passed) return -1; /* the adapter's own failure stands */
        snprintf(res->failure_mode, sizeof res->failure_mode, "verify_unreported");
        snprintf(res->detail, sizeof res->detail, "the station reported neither a read-back digest nor a CRC");
        res->passed = 0;
        return -1;
    }
    if (strcmp(got, want) != 0) {
        /* A mismatch is the verdict even when the adapter failed later (boot). */
        snprintf(res->failure_mode, sizeof res->failure_mode, "verify_mismatch");
        snprintf(res->detail, sizeof res->detail, "read back %s %.16s%s expected %.16s%s (%s, %zu bytes)", method, got,
                 strlen(got) > 16 ? "..." : "", want, strlen(want) > 16 ? "..." : "", img->version, img->len);
        res->passed = 0;
        return -1;
    }
    snprintf(res->verify_method, sizeof res->verify_method, "%s", method);
    return res->passed ? 0 : -1;
}

int station_fit(const adapter_cal_point *pts, int n, double *offset, double *gain, double *residual)
{
    if (n < 2) return -1;
    double mx = 0, my = 0;
    for (int i = 0; i < n; i++) {
        mx += pts[i].raw;
        my += pts[i].reference;
    }
    mx /= n;
    my /= n;
    double sxx = 0, sxy = 0;
    for (int i = 0; i < n; i++) {
        sxx += (pts[i].raw - mx) * (pts[i].raw - mx);
        sxy += (pts[i].raw - mx) * (pts[i].reference - my);
    }
    if (!(sxx > 0)) return -1;
    *gain = sxy / sxx;
    *offset = my - *gain * mx;
    *residual = 0;
    for (int i = 0; i < n; i++) {
        double e = fabs(*gain * pts[i].raw + *offset - pts[i].reference);
        if (e > *residual) *residual = e;
    }
    return 0;
}

/* CALIBRATE with named channels: each fitted, checked and written (with
 * ctx->cal_channel naming it) as one channel is below; the first failure
 * fails the unit naming the channel. The single-channel fields repeat the
 * first channel's, for consumers that know one channel. */
static void station_calibrate_channels(station_site *ss, const station_job *job, const adapter_step_ctx *ctx,
                                       adapter_result *res)
{
    station *st = ss->st;
    res->passed = 0;
    if (!st->ad->write_calibration) {
        adapter_fail(res, "calibration_unwritable", "adapter %s cannot write calibration coefficients", st->ad->name);
        return;
    }
    for (int i = 0; i < res->n_cal_channels; i++) {
        adapter_cal_channel *c = &res->cal_channels[i];
        if (station_fit(c->points, c->n_points, &c->offset, &c->gain, &c->residual) != 0) {
            adapter_fail(res, "calibration_degenerate", "channel %s: %d points without two distinct raw readings",
                         c->name, c->n_points);
            return;
        }
        if (i == 0) {
            res->cal_offset = c->offset;
            res->cal_gain = c->gain;
            res->cal_residual = c->residual;
            res->n_cal_points = c->n_points;
            memcpy(res->cal_points, c->points, sizeof c->points);
        }
        if (job->cal_max_residual > 0 && c->residual > job->cal_max_residual) {
            adapter_fail(res, "calibration_residual", "channel %s: fit residual %g exceeds the order's limit %g "
                         "(gain %g, offset %g)", c->name, c->residual, job->cal_max_residual, c->gain, c->offset);
            return;
        }
    }
    adapter_step_ctx c2 = *ctx;
    for (int i = 0; i < res->n_cal_channels; i++) {
        adapter_result w = {0};
        c2.cal_channel = res->cal_channels[i].name;
        st->ad->write_calibration(ss->ad_state, &c2, res->cal_channels[i].offset, res->cal_channels[i].gain, &w);
        if (!w.passed) {
            adapter_fail(res, w.failure_mode[0] ? w.failure_mode : "calibration_failed", "channel %s: %.200s",
                         c2.cal_channel, w.detail);
            return;
        }
    }
    res->passed = 1;
}

/* CALIBRATE with raw points: the agent fits, checks the residual, and has
 * the adapter write the coefficients and read them back. */
static void station_calibrate(station_site *ss, const station_job *job, const adapter_step_ctx *ctx, adapter_result *res)
{
    station *st = ss->st;
    if (res->passed && res->n_cal_channels > 0) {
        station_calibrate_channels(ss, job, ctx, res);
        return;
    }
    if (!res->passed || res->n_cal_points == 0) return;
    double off, gain, resid;
    res->passed = 0;
    if (station_fit(res->cal_points, res->n_cal_points, &off, &gain, &resid) != 0) {
        snprintf(res->failure_mode, sizeof res->failure_mode, "calibration_degenerate");
        snprintf(res->detail, sizeof res->detail, "%d points without two distinct raw readings", res->n_cal_points);
        return;
    }
    res->cal_offset = off;
    res->cal_gain = gain;
    res->cal_residual = resid;
    if (job->cal_max_residual > 0 && resid > job->cal_max_residual) {
        snprintf(res->failure_mode, sizeof res->failure_mode, "calibration_residual");
        snprintf(res->detail, sizeof res->detail, "fit residual %g exceeds the order's limit %g (gain %g, offset %g)",
                 resid, job->cal_max_residual, gain, off);
        return;
    }
    if (!st->ad->write_calibration) {
        snprintf(res->failure_mode, sizeof res->failure_mode, "calibration_unwritable");
        snprintf(res->detail, sizeof res->detail, "adapter %s cannot write calibration coefficients", st->ad->name);
        return;
    }
    st->ad->write_calibration(ss->ad_state, ctx, off, gain, res);
    res->cal_offset = off;
    res->cal_gain = gain;
    res->cal_residual = resid;
}

/* A job's results, collected in order and posted together at its end. */
typedef struct station_out {
    station_result *first, *last;
} station_out;

static station_result *station_result_new(station_site *ss, const station_job *job, enum station_result_kind kind,
                                          station_out *out)
{
    station_result *r = calloc(1, sizeof *r);
    r->kind = kind;
    r->st = ss->st;
    r->site = ss->site;
    r->unit = job->unit;
    snprintf(r->board_id, sizeof r->board_id, "%s", job->board_id);
    if (out->last) out->last->chain = r;
    else out->first = r;
    out->last = r;
    return r;
}

/* Records one step's failure without calling the adapter (refused board). */
static void station_refuse(station_site *ss, const station_job *job, Step s, const char *mode, const char *detail,
                           station_out *out)
{
    station_result *r = station_result_new(ss, job, STATION_STEP, out);
    r->step = s;
    snprintf(r->res.failure_mode, sizeof r->res.failure_mode, "%s", mode);
    snprintf(r->res.detail, sizeof r->res.detail, "%s", detail);
}

static void station_run(station_site *ss, station_job *job)
{
    station *st = ss->st;
    station_out out = {0};
    int i = job->from, failed = 0;
    if (job->load) {
        if (st->ad->load_board(ss->ad_state, job->lot_id, job->idx, job->board_id, sizeof job->board_id) != 0) {
            failed = 1;
            goto done;
        }
        station_result_new(ss, job, STATION_LOADED, &out);
        pthread_mutex_lock(&st->lock);
        snprintf(ss->board, sizeof ss->board, "%s", job->board_id);
        pthread_mutex_unlock(&st->lock);
    }
    if (!station_interlock_ok(job->flow, job->n_flow, job->from, job->steps_done)) {
        char detail[128];
        snprintf(detail, sizeof detail, "steps before %s have not all passed", order_step_name(job->flow[i]));
        station_refuse(ss, job, job->flow[i], "route_interlock", detail, &out);
        failed = 1;
    }
    for (; !failed && i < job->n_flow && (st->steps & (1u << job->flow[i])); i++) {
        Step s = job->flow[i];
        adapter_step_fn fn = adapter_step(st->ad, (unsigned)s);
        if (!fn) {
            station_refuse(ss, job, s, "step_unsupported", "this station's adapter cannot perform the step", &out);
            failed = 1;
            break;
        }
        if ((s == LINEAGENT__V1__STEP__WRITE || s == LINEAGENT__V1__STEP__VERIFY) && !job->image) {
            station_refuse(ss, job, s, "no_release", "no firmware release is bound to this board", &out);
            failed = 1;
            break;
        }
        station_result *r = station_result_new(ss, job, STATION_STEP, &out);
        r->step = s;
        adapter_step_ctx ctx = {st->name,     job->lot_id, job->board_id, job->image,
                                job->product, NULL,         job->serial[0] ? job->serial : NULL, NULL};
        int64_t t0 = latency_now_ns();
        if (s == LINEAGENT__V1__STEP__PROVISION && ss->prov)
            provision_step_run(ss->prov, st->ad, ss->ad_state, &ctx, job->order_id, &r->res);
        else
            fn(ss->ad_state, &ctx, &r->res);
        if (s == LINEAGENT__V1__STEP__VERIFY) station_check_readback(job->image, &r->res);
        if (s == LINEAGENT__V1__STEP__CALIBRATE) station_calibrate(ss, job, &ctx, &r->res);
        int64_t took_ns = latency_now_ns() - t0; /* the step itself, for the event and the histogram */
        metrics_step_time(st->metrics, (int)s, took_ns);
        if (r->res.passed || s == LINEAGENT__V1__STEP__TEST)
            station_judge_items(&r->res, job->limits, s == LINEAGENT__V1__STEP__TEST ? job->n_limits : 0);
        if (!r->res.passed && !r->res.failure_mode[0])
            snprintf(r->res.failure_mode, sizeof r->res.failure_mode, "%s_failed", order_step_name(s));
        r->duration_ms = (uint32_t)(took_ns / 1000000);
        r->done_ns = latency_now_ns();
        if ((failed = !r->res.passed)) break;
        if (s == LINEAGENT__V1__STEP__PROVISION) /* later steps of this job see the new serial */
            snprintf(job->serial, sizeof job->serial, "%s", r->res.serial);
    }
done:;
    station_result *d = station_result_new(ss, job, STATION_DONE, &out);
    d->next = i;
    d->failed = failed;
    st->post(st->ud, out.first, out.last);
}

static void *station_main(void *arg)
{
    station_site *ss = arg;
    station *st = ss->st;
    pthread_mutex_lock(&st->lock);
    for (;;) {
        while ((!st->head || ss->paused) && !st->stopping) pthread_cond_wait(&st->cond, &st->lock);
        if (st->stopping) break;
        station_node *n = st->head;
        st->head = n->next;
        if (!st->head) st->tail = NULL;
        snprintf(ss->board, sizeof ss->board, "%s", n->job.board_id); /* "" until a load names it */
        pthread_mutex_unlock(&st->lock);
        latency_add(&ss->dispatch, latency_now_ns() - n->job.queued_ns);
        station_run(ss, &n->job);
        free(n);
        pthread_mutex_lock(&st->lock);
        ss->board[0] = 0;
        st->queued--;
    }
    pthread_mutex_unlock(&st->lock);
    return NULL;
}

station *station_start(const station_config *cfg, station_post_fn post, void *ud, char *err, size_t err_len)
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
    pthread_mutex_init(&st->lock, NULL);
    pthread_cond_init(&st->cond, NULL);
    st->n_sites = cfg->sites ? cfg->sites : 1;
    st->metrics = metrics_station(cfg->name, st->n_sites);
    for (int s = LINEAGENT__V1__STEP__WRITE; s <= LINEAGENT__V1__STEP__LOCK; s++)
        if (st->steps & (1u << s)) metrics_name_step(s, order_step_name((Step)s));
    st->sites = calloc(st->n_sites, sizeof *st->sites);
    for (uint32_t k = 0; k < st->n_sites; k++) {
        station_site *ss = &st->sites[k];
        ss->st = st;
        ss->site = k;
        station_config site_cfg = *cfg;
        site_cfg.site = k; /* each site opens its own probe / fixture channel */
        if (ad->open(&ss->ad_state, &site_cfg, err, err_len) != 0) {
            ss->ad_state = NULL;
            station_stop(st, NULL);
            return NULL;
        }
        if (pthread_create(&ss->thread, NULL, station_main, ss) != 0) {
            snprintf(err, err_len, "[station %s] cannot start thread", cfg->name);
            station_stop(st, NULL);
            return NULL;
        }
        ss->started = 1;
    }
    return st;
}

int station_enable_provisioning(station *st, const config *cfg, char *err, size_t err_len)
{
    if (!cfg->prov_url || !(st->steps & (1u << LINEAGENT__V1__STEP__PROVISION))) return 0;
    provision_settings ps = {cfg->prov_url, cfg->prov_ca_file, cfg->prov_cert_file, cfg->prov_key_file,
                             cfg->prov_timeout_ms, cfg->prov_retries};
    /* One client per site: a libcurl handle belongs to one thread. */
    for (uint32_t k = 0; k < st->n_sites; k++)
        if (!(st->sites[k].prov = provision_client_new(&ps, err, err_len))) return -1;
    return 0;
}

void station_submit(station *st, const station_job *job)
{
    station_node *n = malloc(sizeof *n);
    n->job = *job;
    n->job.queued_ns = latency_now_ns();
    n->next = NULL;
    pthread_mutex_lock(&st->lock);
    if (st->tail) st->tail->next = n;
    else st->head = n;
    st->tail = n;
    st->queued++;
    pthread_cond_broadcast(&st->cond); /* a paused site would swallow a signal */
    pthread_mutex_unlock(&st->lock);
}

int station_load(station *st)
{
    pthread_mutex_lock(&st->lock);
    int n = st->queued;
    pthread_mutex_unlock(&st->lock);
    return n;
}

void station_pause_site(station *st, uint32_t site, int paused)
{
    if (site >= st->n_sites) return;
    pthread_mutex_lock(&st->lock);
    st->sites[site].paused = paused;
    pthread_cond_broadcast(&st->cond);
    pthread_mutex_unlock(&st->lock);
}

int station_sites_active(station *st)
{
    int n = 0;
    pthread_mutex_lock(&st->lock);
    for (uint32_t k = 0; k < st->n_sites; k++) n += !st->sites[k].paused;
    pthread_mutex_unlock(&st->lock);
    return n;
}

uint32_t station_sites(const station *st) { return st->n_sites; }

void station_site_board(station *st, uint32_t site, char *buf, size_t len)
{
    pthread_mutex_lock(&st->lock);
    snprintf(buf, len, "%s", site < st->n_sites ? st->sites[site].board : "");
    pthread_mutex_unlock(&st->lock);
}

const char *station_name(const station *st) { return st->name; }
uint32_t station_steps(const station *st) { return st->steps; }

void station_stop(station *st, latency_hist *lat)
{
    if (!st) return;
    pthread_mutex_lock(&st->lock);
    st->stopping = 1;
    pthread_cond_broadcast(&st->cond);
    pthread_mutex_unlock(&st->lock);
    for (uint32_t k = 0; k < st->n_sites; k++)
        if (st->sites[k].started) pthread_join(st->sites[k].thread, NULL);
    for (uint32_t k = 0; lat && k < st->n_sites; k++) latency_merge(lat, &st->sites[k].dispatch);
    for (station_node *n = st->head, *next; n; n = next) {
        next = n->next;
        free(n);
    }
    for (uint32_t k = 0; k < st->n_sites; k++) {
        if (st->sites[k].ad_state) st->ad->close(st->sites[k].ad_state);
        provision_client_free(st->sites[k].prov);
    }
    free(st->sites);
    pthread_mutex_destroy(&st->lock);
    pthread_cond_destroy(&st->cond);
    free(st);
}
