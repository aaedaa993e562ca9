/* SPDX-License-Identifier: Apache-2.0 */
/* intake.c - order intake thread: inbox -> decode -> validate -> release
 * signature and version rules -> fetch (or re-hash the cached image) and
 * check firmware -> decision for the line coordinator. The inbox row stays
 * until the coordinator commits the decision, so a crash at any point means
 * the payload is simply decided again after restart. */
#include "intake.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "clock.h"
#include "digest.h"
#include "event.h"
#include "firmware.h"
#include "log.h"
#include "release_sig.h"
#include "spool.h"

#define INTAKE_BUSY_RETRY_MS 1000

struct intake {
    const config *cfg;
    spool *sp;
    intake_post_fn post;
    void *ud;
    release_keys *keys; /* [firmware] release_keys; NULL: releases need no signature */
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
    struct timespec ts = clock_deadline_ms(ms);
    pthread_mutex_lock(&in->lock);
    if (!in->stopping) pthread_cond_timedwait(&in->cond, &in->lock, &ts);
    int stop = in->stopping;
    pthread_mutex_unlock(&in->lock);
    return stop;
}

/* A version names one image per product (rule R1): a version seen before
 * with another digest is refused, naming both. */
static int intake_version_conflict(intake *in, const JobOrder *o, char *reason, size_t n)
{
    char key[2 * ORDER_ID_MAX + 2];
    snprintf(key, sizeof key, "%s %s", o->product, o->firmware->version);
    uint8_t *seen = NULL;
    size_t len = 0;
    int found = spool_kv_get(in->sp, INTAKE_RELEASES_NS, key, &seen, &len);
    int conflict = found == 1 && (len != 64 || memcmp(seen, o->firmware->sha256, 64) != 0);
    if (conflict)
        snprintf(reason, n, "firmware %s %s was released as sha256 %.*s; this order names sha256 %s: one version is "
                 "one image", o->product, o->firmware->version, (int)(len < 64 ? len : 64), (const char *)seen,
                 o->firmware->sha256);
    free(seen);
    return conflict;
}

/* Runs op until it succeeds or fails for another reason than a busy spool
 * (another connection holds the write lock), waiting out the busy spool;
 * 0 done, -1 failed (spool_errmsg says why), 1 stopped meanwhile. */
static int intake_ride_busy(intake *in, int (*op)(intake *, void *), void *arg, const char *what, int64_t inbox_id)
{
    int64_t t0 = clock_mono_ms();
    for (;;) {
        if (op(in, arg) == 0) return 0;
        if (!spool_error_is_busy(in->sp)) return -1;
        log_warn("order payload #%lld: %s not done yet, the spool is busy for %lld ms: %s", (long long)inbox_id, what,
                 (long long)(clock_mono_ms() - t0), spool_errmsg(in->sp));
        if (intake_wait(in, INTAKE_BUSY_RETRY_MS)) return 1;
    }
}

static int intake_op_delete(intake *in, void *sha256)
{
    return spool_firmware_delete(in->sp, sha256);
}

/* The image and the version it is released as, stored together. */
static int intake_op_store(intake *in, void *arg)
{
    const intake_decision *d = arg;
    const Lineagent__V1__FirmwareRelease *fw = d->order->firmware;
    char key[2 * ORDER_ID_MAX + 2];
    snprintf(key, sizeof key, "%s %s", d->order->product, fw->version);
    if (spool_firmware_put(in->sp, fw->sha256, d->image, d->image_len) != 0) return -1;
    return spool_kv_put(in->sp, INTAKE_RELEASES_NS, key, fw->sha256, 64);
}

/* The cached image, re-hashed: a spool row that no longer matches its
 * digest (disk, tampering) is not written to a board; it is deleted (image
 * and chunks) and fetched again. 1 cached image used, 0 none, -1 stopped. */
static int intake_cached_image(intake *in, const char *sha256, intake_decision *d)
{
    uint8_t *img = NULL;
    size_t len = 0;
    if (spool_firmware_get(in->sp, sha256, &img, &len) != 1) return 0;
    char now[65];
    digest_sha256_hex(img, len, now);
    if (strcmp(now, sha256) != 0) {
        log_warn("firmware %.16s... in the spool re-hashes to %.16s...: cached image discarded, fetching again", sha256,
                 now);
        free(img);
        int rc = intake_ride_busy(in, intake_op_delete, (void *)sha256, "deleting a corrupt image", d->inbox_id);
        if (rc < 0) log_error("spool: %s", spool_errmsg(in->sp));
        return rc > 0 ? -1 : 0;
    }
    d->image = img;
    d->image_len = len;
    return 1;
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
    if (in->keys && release_sig_check(in->keys, d->order, d->reason, sizeof d->reason) != 0) return d;
    if (intake_version_conflict(in, d->order, d->reason, sizeof d->reason)) return d;
    const Lineagent__V1__FirmwareRelease *fw = d->order->firmware;
    /* Before the cache too: an order names only what it may read. */
    if (!firmware_url_allowed(fw->url, in->cfg->firmware_allowed_urls, d->reason, sizeof d->reason)) return d;
    int cached = intake_cached_image(in, fw->sha256, d);
    if (cached < 0) {
        intake_decision_free(d);
        return NULL;
    }
    firmware_fetch_opts fo = {in->cfg->firmware_max_bytes, in->cfg->firmware_timeout_ms, in->cfg->firmware_ca_file,
                              in->cfg->firmware_allowed_urls};
    if (!cached &&
        firmware_fetch(fw->url, fw->sha256, &fo, &d->image, &d->image_len, d->reason, sizeof d->reason) != 0)
        return d;
    /* Cached by digest so a restarted agent resumes the lot even if the
     * release server is gone by then (a cached image is kept as it is; the
     * version is recorded either way, as another version may name the same
     * image). A busy spool (another connection holds the write lock) is
     * waited out, not taken for a reason to reject the order; stopping
     * meanwhile leaves the payload to be decided again at the next start. */
    int put = intake_ride_busy(in, intake_op_store, d, "storing the firmware", d->inbox_id);
    if (put > 0) {
        intake_decision_free(d);
        return NULL;
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
    if (cfg->firmware_release_keys && !(in->keys = release_keys_load(cfg->firmware_release_keys, err, err_len))) {
        free(in);
        return NULL;
    }
    spool_options so = {cfg->spool_synchronous, 0};
    if (spool_open(&in->sp, cfg->spool_path, &so, err, err_len) != 0) {
        release_keys_free(in->keys);
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
    release_keys_free(in->keys);
    pthread_mutex_destroy(&in->lock);
    pthread_cond_destroy(&in->cond);
    free(in);
}
