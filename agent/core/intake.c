/* intake.c - order intake thread: inbox -> decode -> validate -> fetch and
 * check firmware -> decision for the line coordinator. The inbox row stays
 * until the coordinator commits the decision, so a crash at any point means
 * the payload is simply decided again after restart. */
#include "intake.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "clock.h"
#include "event.h"
#include "firmware.h"
#include "log.h"
#include "spool.h"

#define INTAKE_BUSY_RETRY_MS 1000

struct intake {
    const config *cfg;
    spool *sp;
    intake_post_fn post;
    void *ud;
    pthread_t thread;
    pthread_mutex_t lock;
    pthread_cond_t cond;
    int kicked, stopping;
};

int intake_accept_payload(spool *sp, const void *payload, size_t len)
{
    int64_t now = clock_wall_ms();
    if (len > ORDER_MAX_PAYLOAD) return spool_inbox_put(sp, now, NULL, 0, len);
    return spool_inbox_put(sp, now, payload, len, len);
}

void intake_decision_free(intake_decision *d)
{
    if (!d) return;
    order_free(d->order);
    free(d->image);
    free(d);
}

/* Skips the download for a revision that can only be ignored; the
 * coordinator re-checks against its authoritative state anyway. */
static int intake_stale_revision(intake *in, const JobOrder *o, char *reason, size_t n)
{
    uint32_t have = 0;
    uint8_t *enc = NULL;
    size_t len = 0;
    int found = spool_order_get(in->sp, o->order_id, &have, &enc, &len);
    free(enc);
    if (found == 1 && o->revision <= have) {
        snprintf(reason, n, "revision %u ignored: revision %u of order %s is already in effect", o->revision,
                 have, o->order_id);
        return 1;
    }
    return 0;
}

/* Sleeps up to ms unless stopped; 1 when stopping. */
static int intake_wait(intake *in, int ms)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    ts.tv_sec += ms / 1000;
    ts.tv_nsec += (long)(ms % 1000) * 1000000L;
    if (ts.tv_nsec >= 1000000000L) {
        ts.tv_sec++;
        ts.tv_nsec -= 1000000000L;
    }
    pthread_mutex_lock(&in->lock);
    if (!in->stopping) pthread_cond_timedwait(&in->cond, &in->lock, &ts);
    int stop = in->stopping;
    pthread_mutex_unlock(&in->lock);
    return stop;
}

/* NULL when stopped while waiting for a busy spool: no decision. */
static intake_decision *intake_decide(intake *in, const spool_inbox_row *row)
{
    intake_decision *d = calloc(1, sizeof *d);
    d->inbox_id = row->id;
    if (!row->payload) {
        snprintf(d->reason, sizeof d->reason, "payload of %zu bytes exceeds the %d byte limit", row->original_len,
                 ORDER_MAX_PAYLOAD);
        return d;
    }
    d->order = order_parse(row->payload, row->len, d->reason, sizeof d->reason);
    if (!d->order) {
        /* The result still names the order when its ids can be read. */
        d->order = order_parse_ids(row->payload, row->len);
        return d;
    }
    order_limits lim = {.max_quantity = in->cfg->max_quantity};
    if (order_validate(d->order, &lim, d->reason, sizeof d->reason) != 0) return d;
    if (intake_stale_revision(in, d->order, d->reason, sizeof d->reason)) return d;
    const Lineagent__V1__FirmwareRelease *fw = d->order->firmware;
    /* Before the cache too: an order names only what it may read. */
    if (!firmware_url_allowed(fw->url, in->cfg->firmware_allowed_urls, d->reason, sizeof d->reason)) return d;
    uint8_t *cached = NULL;
    size_t cached_len = 0;
    if (spool_firmware_get(in->sp, fw->sha256, &cached, &cached_len) == 1) {
        d->image = cached;
        d->image_len = cached_len;
        return d;
    }
    firmware_fetch_opts fo = {in->cfg->firmware_max_bytes, in->cfg->firmware_timeout_ms, in->cfg->firmware_ca_file,
                              in->cfg->firmware_allowed_urls};
    if (firmware_fetch(fw->url, fw->sha256, &fo, &d->image, &d->image_len, d->reason, sizeof d->reason) != 0)
        return d;
    /* Cached by digest so a restarted agent resumes the lot even if the
     * release server is gone by then. A busy spool (another connection
     * holds the write lock) is waited out, not taken for a reason to reject
     * the order; stopping meanwhile leaves the payload to be decided again
     * at the next start. */
    int put;
    for (int64_t t0 = clock_mono_ms();
         (put = spool_firmware_put(in->sp, fw->sha256, d->image, d->image_len)) != 0 && spool_error_is_busy(in->sp);) {
        log_warn("order payload #%lld: firmware not stored yet, the spool is busy for %lld ms: %s", (long long)d->inbox_id,
                 (long long)(clock_mono_ms() - t0), spool_errmsg(in->sp));
        if (intake_wait(in, INTAKE_BUSY_RETRY_MS)) {
            intake_decision_free(d);
            return NULL;
        }
    }
    if (put != 0) {
        snprintf(d->reason, sizeof d->reason, "cannot store firmware in the spool: %s", spool_errmsg(in->sp));
        free(d->image);
        d->image = NULL;
    }
    return d;
}

static void *intake_main(void *arg)
{
    intake *in = arg;
    int64_t after = 0;
    for (;;) {
        spool_inbox_row row;
        int got = spool_inbox_next(in->sp, after, &row);
        if (got == 1) {
            after = row.id;
            intake_decision *d = intake_decide(in, &row);
            spool_inbox_row_free(&row);
            if (!d) break; /* stopping */
            if (d->reason[0])
                log_warn("order payload #%lld rejected: %s", (long long)d->inbox_id, d->reason);
            in->post(in->ud, d);
            continue;
        }
        if (got < 0) log_error("spool inbox: %s", spool_errmsg(in->sp));
        pthread_mutex_lock(&in->lock);
        while (!in->kicked && !in->stopping) pthread_cond_wait(&in->cond, &in->lock);
        int stop = in->stopping;
        in->kicked = 0;
        pthread_mutex_unlock(&in->lock);
        if (stop) break;
    }
    return NULL;
}

intake *intake_start(const config *cfg, intake_post_fn post, void *ud, char *err, size_t err_len)
{
    intake *in = calloc(1, sizeof *in);
    in->cfg = cfg;
    in->post = post;
    in->ud = ud;
    spool_options so = {cfg->spool_synchronous, 0};
    if (spool_open(&in->sp, cfg->spool_path, &so, err, err_len) != 0) {
        free(in);
        return NULL;
    }
    pthread_mutex_init(&in->lock, NULL);
    pthread_cond_init(&in->cond, NULL);
    pthread_create(&in->thread, NULL, intake_main, in);
    return in;
}

void intake_kick(intake *in)
{
    pthread_mutex_lock(&in->lock);
    in->kicked = 1;
    pthread_cond_signal(&in->cond);
    pthread_mutex_unlock(&in->lock);
}

void intake_stop(intake *in)
{
    if (!in) return;
    pthread_mutex_lock(&in->lock);
    in->stopping = 1;
    pthread_cond_signal(&in->cond);
    pthread_mutex_unlock(&in->lock);
    pthread_join(in->thread, NULL);
    spool_close(in->sp);
    pthread_mutex_destroy(&in->lock);
    pthread_cond_destroy(&in->cond);
    free(in);
}
