/* SPDX-License-Identifier: Apache-2.0 */
/* adapter_sim.c - a simulated station: boards arrive at a configured rate,
 * each board has a simulated flash that write fills and verify reads back,
 * and every step can be made to fail at random (seeded, so runs repeat).
 *
 * The flash belongs to the board, not the station (a board written at one
 * station is verified at another), so it lives in one table shared by all
 * sim stations; it keeps the most recent SIM_FLASH_SLOTS boards, far more
 * than can be in flight, so memory stays bounded on endless runs. Its
 * slots are filled in write order, which adapter_sim_writes tells tests. */
#include "adapter_sim.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <openssl/bio.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>

#include "adapter.h"
#include "digest.h"

#define SIM_FLASH_SLOTS 4096

typedef struct sim_flash_slot {
    char board_id[ADAPTER_ID_MAX];
    char sha256[65]; /* digest of the flash content */
    /* The identity area (PROVISION) and the "secure element": the digest of
     * the public key of the pair the board made (its private key never
     * leaves the simulated element: it is dropped once the CSR is signed). */
    char serial[128];
    char device_id[40];
    char macs[ADAPTER_MAX_MACS][18];
    int n_macs;
    char cert_sha256[65];
    unsigned char pub_sha256[32];
    int has_pub;
} sim_flash_slot;

static pthread_mutex_t sim_flash_lock = PTHREAD_MUTEX_INITIALIZER;
static sim_flash_slot sim_flash[SIM_FLASH_SLOTS];
static size_t sim_flash_next;

typedef struct sim_state {
    char station[ADAPTER_ID_MAX];
    double boards_per_second;
    double fail_rate;
    long step_ms;
    long step_jitter_ms;
    int64_t seed;
    int server_keys; /* the simulated board has no key generator */
    uint64_t rng;
    uint64_t jitter_rng; /* step times: apart from rng, so failures repeat as before */
    struct timespec next_arrival;
    char *cal_channels; /* CALIBRATE: names of the channels the board reports points for */
    char cal_names[ADAPTER_MAX_CAL_CHANNELS][32];
    int n_cal;
} sim_state;

static const conf_key sim_keys[] = {
    {"boards_per_second", CONF_DOUBLE, "5", .dmin = 0.001, .dmax = 1e9, CONF_AT(sim_state, boards_per_second),
     .desc = "board arrival rate at the first station"},
    {"fail_rate", CONF_DOUBLE, "0", .dmin = 0, .dmax = 1, CONF_AT(sim_state, fail_rate),
     .desc = "probability that a step fails; a failed write is a silent bit flip caught by verify"},
    {"step_ms", CONF_INT, "0", 0, 3600000, CONF_AT(sim_state, step_ms), .desc = "duration of each step in ms"},
    {"step_jitter_ms", CONF_INT, "0", 0, 3600000, CONF_AT(sim_state, step_jitter_ms),
     .desc = "each step takes up to this much longer, at random (seeded per site)"},
    {"seed", CONF_INT, "1", 0, 1000000000000000000LL, CONF_AT(sim_state, seed),
     .desc = "random seed, so a run repeats"},
    {"server_keys", CONF_BOOL, "false", CONF_AT(sim_state, server_keys),
     .desc = "the board cannot make a key pair: the provisioning server generates it"},
    {"cal_channels", CONF_STRING, NULL, CONF_AT(sim_state, cal_channels),
     .desc = "CALIBRATE: comma-separated channel names (e.g. vbus, vref): raw points per channel for the agent "
             "to fit and write back; none: the board reports its coefficients itself"},
    {0}};

extern const adapter adapter_sim;

/* xorshift64*: tiny, seedable, and good enough to pick failures. */
static double sim_random_from(uint64_t *rng)
{
    *rng ^= *rng >> 12;
    *rng ^= *rng << 25;
    *rng ^= *rng >> 27;
    return (double)((*rng * 2685821657736338717ull) >> 11) / 9007199254740992.0;
}

static double sim_random(sim_state *s) { return sim_random_from(&s->rng); }

static int sim_fails(sim_state *s) { return s->fail_rate > 0 && sim_random(s) < s->fail_rate; }

static void sim_sleep_ms(long ms)
{
    if (ms <= 0) return;
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) != 0) {
    }
}

/* A step's time: step_ms, plus up to step_jitter_ms at random. */
static void sim_step_sleep(sim_state *s)
{
    long extra = s->step_jitter_ms ? (long)(sim_random_from(&s->jitter_rng) * (double)(s->step_jitter_ms + 1)) : 0;
    sim_sleep_ms(s->step_ms + extra);
}

static int sim_open(void **state, const station_config *st, char *err, size_t err_len)
{
    sim_state *s = calloc(1, sizeof *s);
    if (adapter_conf_load(&adapter_sim, st, s, NULL, err, err_len) != 0) {
        free(s);
        return -1;
    }
    snprintf(s->station, sizeof s->station, "%s", st->name);
    for (char *save = NULL, *copy = s->cal_channels ? strdup(s->cal_channels) : NULL,
              *t = copy ? strtok_r(copy, ", ", &save) : NULL;
         copy; t = strtok_r(NULL, ", ", &save)) {
        if (!t) {
            free(copy);
            break;
        }
        if (strlen(t) >= sizeof s->cal_names[0] || s->n_cal >= ADAPTER_MAX_CAL_CHANNELS) {
            snprintf(err, err_len, "[station %s] sim.cal_channels: at most %d names of up to 31 bytes", st->name,
                     ADAPTER_MAX_CAL_CHANNELS);
            free(copy);
            conf_free(sim_keys, s);
            free(s);
            return -1;
        }
        snprintf(s->cal_names[s->n_cal++], sizeof s->cal_names[0], "%s", t);
    }
    s->rng = (uint64_t)s->seed * 0x9E3779B97F4A7C15ull + 1; /* never 0: xorshift would stick */
    s->jitter_rng = ((uint64_t)s->seed + st->site + 1) * 0xD1B54A32D192ED03ull | 1;
    clock_gettime(CLOCK_MONOTONIC, &s->next_arrival);
    *state = s;
    return 0;
}

static int sim_load_board(void *state, const char *lot_id, uint32_t idx, char *board_id, size_t len)
{
    sim_state *s = state;
    /* Arrivals are paced against a schedule, not slept per board, so the
     * configured rate holds however long the station's steps take. */
    long gap_ns = (long)(1e9 / s->boards_per_second);
    s->next_arrival.tv_nsec += gap_ns % 1000000000L;
    s->next_arrival.tv_sec += gap_ns / 1000000000L + s->next_arrival.tv_nsec / 1000000000L;
    s->next_arrival.tv_nsec %= 1000000000L;
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    if (now.tv_sec > s->next_arrival.tv_sec + 1) s->next_arrival = now; /* idle line: no burst */
    int due = now.tv_sec > s->next_arrival.tv_sec ||
              (now.tv_sec == s->next_arrival.tv_sec && now.tv_nsec >= s->next_arrival.tv_nsec);
    while (!due && clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &s->next_arrival, NULL) != 0) {
    }
    /* A board's id is a function of its lot and arrival index, so a restarted
     * agent sees the same board again, as a barcode scanner would. */
    snprintf(board_id, len, "%s-B%05u", lot_id, idx + 1);
    return 0;
}

size_t adapter_sim_writes(const char *prefix, adapter_sim_write *out, size_t max)
{
    size_t n = 0, plen = strlen(prefix);
    pthread_mutex_lock(&sim_flash_lock);
    for (size_t i = 0; i < SIM_FLASH_SLOTS && n < max; i++) {
        const sim_flash_slot *f = &sim_flash[(sim_flash_next + i) % SIM_FLASH_SLOTS];
        if (!f->board_id[0] || strncmp(f->board_id, prefix, plen) != 0) continue;
        snprintf(out[n].board_id, sizeof out[n].board_id, "%s", f->board_id);
        memcpy(out[n].sha256, f->sha256, sizeof out[n].sha256);
        n++;
    }
    pthread_mutex_unlock(&sim_flash_lock);
    return n;
}

static sim_flash_slot *sim_flash_find(const char *board_id)
{
    for (size_t i = 0; i < SIM_FLASH_SLOTS; i++) {
        sim_flash_slot *f = &sim_flash[(sim_flash_next + SIM_FLASH_SLOTS - 1 - i) % SIM_FLASH_SLOTS];
        if (strcmp(f->board_id, board_id) == 0) return f;
    }
    return NULL;
}

static void sim_write(void *state, const adapter_step_ctx *ctx, adapter_result *r)
{
    sim_state *s = state;
    sim_step_sleep(s);
    char digest[65];
    if (sim_fails(s)) {
        /* A silent bit flip: the programmer reports success and only the
         * read-back can catch it, which is the point of VERIFY. */
        uint8_t *bad = malloc(ctx->image->len + 1);
        memcpy(bad, ctx->image->data, ctx->image->len);
        bad[ctx->image->len / 2] ^= 0x01;
        digest_sha256_hex(bad, ctx->image->len ? ctx->image->len : 1, digest);
        free(bad);
    } else {
        /* The image's digest was checked when the order was taken; a
         * faithful copy of it reads back as that digest. */
        memcpy(digest, ctx->image->sha256, sizeof digest);
    }
    /* Always a new slot: lookups go newest first, so a rewrite shadows the
     * old content, and a write never pays for a search. */
    pthread_mutex_lock(&sim_flash_lock);
    sim_flash_slot *f = &sim_flash[sim_flash_next];
    sim_flash_next = (sim_flash_next + 1) % SIM_FLASH_SLOTS;
    snprintf(f->board_id, sizeof f->board_id, "%s", ctx->board_id);
    memcpy(f->sha256, digest, sizeof digest);
    pthread_mutex_unlock(&sim_flash_lock);
    r->passed = 1;
}

static void sim_verify(void *state, const adapter_step_ctx *ctx, adapter_result *r)
{
    sim_state *s = state;
    sim_step_sleep(s);
    pthread_mutex_lock(&sim_flash_lock);
    sim_flash_slot *f = sim_flash_find(ctx->board_id);
    if (f) memcpy(r->readback_sha256, f->sha256, sizeof r->readback_sha256);
    pthread_mutex_unlock(&sim_flash_lock);
    if (!f) {
        adapter_fail(r, "verify_blank", "board %s reads back blank: nothing was written", ctx->board_id);
    } else if (strcmp(r->readback_sha256, ctx->image->sha256) != 0) {
        adapter_fail(r, "verify_mismatch", "read back sha256 %.16s... expected %.16s... (%s)",
                 r->readback_sha256, ctx->image->sha256, ctx->image->version);
    } else {
        r->passed = 1;
    }
}

/* The slot of a board, made when the board has none yet (lock held). */
static sim_flash_slot *sim_slot_get(const char *board_id)
{
    sim_flash_slot *f = sim_flash_find(board_id);
    if (!f) {
        f = &sim_flash[sim_flash_next];
        sim_flash_next = (sim_flash_next + 1) % SIM_FLASH_SLOTS;
        memset(f, 0, sizeof *f);
        snprintf(f->board_id, sizeof f->board_id, "%s", board_id);
    }
    return f;
}

/* SHA-256 of a public key's DER (SubjectPublicKeyInfo). */
static int sim_pub_digest(EVP_PKEY *k, unsigned char out[32])
{
    unsigned char *der = NULL;
    int n = i2d_PUBKEY(k, &der);
    unsigned int len = 0;
    int ok = n > 0 && EVP_Digest(der, (size_t)n, out, &len, EVP_sha256(), NULL) == 1 && len == 32;
    OPENSSL_free(der);
    return ok ? 0 : -1;
}

/* The board makes its key pair and a CSR, as a secure element would. */
static int sim_provision_csr(void *state, const adapter_step_ctx *ctx, char *csr, size_t len)
{
    if (((sim_state *)state)->server_keys) return 1;
    EVP_PKEY *k = EVP_EC_gen("P-256");
    X509_REQ *req = X509_REQ_new();
    BIO *b = BIO_new(BIO_s_mem());
    unsigned char digest[32];
    int rc = -1;
    char *p;
    long n;
    if (k && req && b && X509_REQ_set_pubkey(req, k) &&
        X509_NAME_add_entry_by_txt(X509_REQ_get_subject_name(req), "CN", MBSTRING_ASC,
                                   (const unsigned char *)ctx->board_id, -1, -1, 0) &&
        X509_REQ_sign(req, k, EVP_sha256()) > 0 && PEM_write_bio_X509_REQ(b, req) &&
        (n = BIO_get_mem_data(b, &p)) > 0 && (size_t)n < len && sim_pub_digest(k, digest) == 0) {
        memcpy(csr, p, (size_t)n);
        csr[n] = 0;
        pthread_mutex_lock(&sim_flash_lock);
        sim_flash_slot *f = sim_slot_get(ctx->board_id);
        memcpy(f->pub_sha256, digest, sizeof digest);
        f->has_pub = 1;
        pthread_mutex_unlock(&sim_flash_lock);
        rc = 0;
    }
    BIO_free(b);
    X509_REQ_free(req);
    EVP_PKEY_free(k); /* frees (and clears) the private key */
    return rc;
}

/* Writes the identity into the board's identity area, then reads it back
 * into r; the agent compares. A certificate whose key is not the board's
 * own is refused, as a real secure element would. */
static void sim_provision(void *state, const adapter_step_ctx *ctx, adapter_result *r)
{
    sim_state *s = state;
    const adapter_identity *id = ctx->identity;
    if (!id) {
        /* Identities come only from the provisioning server (rule P1). */
        adapter_fail(r, "provision_unavailable", "no provisioning server configured");
        return;
    }
    sim_step_sleep(s);
    unsigned char cert_pub[32];
    int key_ok = 0;
    BIO *b = BIO_new_mem_buf(id->certificate, -1);
    X509 *x = b ? PEM_read_bio_X509(b, NULL, NULL, NULL) : NULL;
    BIO_free(b);
    int have_cert_pub = x && sim_pub_digest(X509_get0_pubkey(x), cert_pub) == 0;
    X509_free(x);
    if (sim_fails(s)) {
        adapter_fail(r, "provision_write_failed", "identity area did not accept the write");
        return;
    }
    pthread_mutex_lock(&sim_flash_lock);
    sim_flash_slot *f = sim_slot_get(ctx->board_id);
    /* With a server-made key (no CSR) the element takes the key it is given. */
    key_ok = have_cert_pub && (id->private_key ? 1 : f->has_pub && memcmp(f->pub_sha256, cert_pub, 32) == 0);
    if (key_ok) {
        snprintf(f->serial, sizeof f->serial, "%s", id->serial);
        snprintf(f->device_id, sizeof f->device_id, "%s", id->device_id);
        f->n_macs = id->n_macs < ADAPTER_MAX_MACS ? id->n_macs : ADAPTER_MAX_MACS;
        for (int i = 0; i < f->n_macs; i++) snprintf(f->macs[i], sizeof f->macs[i], "%s", id->macs[i]);
        snprintf(f->cert_sha256, sizeof f->cert_sha256, "%s", id->cert_sha256 ? id->cert_sha256 : "");
        /* read back */
        memcpy(r->serial, f->serial, sizeof r->serial);
        memcpy(r->device_id, f->device_id, sizeof r->device_id);
        memcpy(r->macs, f->macs, sizeof r->macs);
        r->n_macs = f->n_macs;
        memcpy(r->cert_sha256, f->cert_sha256, sizeof r->cert_sha256);
    }
    pthread_mutex_unlock(&sim_flash_lock);
    if (!key_ok) {
        adapter_fail(r, "provision_key_mismatch", "certificate for %s does not hold the board's own key", id->serial);
        return;
    }
    r->passed = 1;
}

static void sim_test(void *state, const adapter_step_ctx *ctx, adapter_result *r)
{
    sim_state *s = state;
    sim_step_sleep(s);
    int fail = sim_fails(s);
    adapter_measurement *m = &r->measurements[r->n_measurements++];
    snprintf(m->name, sizeof m->name, "vbus");
    snprintf(m->unit, sizeof m->unit, "V");
    m->low = 4.75;
    m->high = 5.25;
    m->value = fail ? 4.41 : 5.0 + (sim_random(s) - 0.5) * 0.1;
    m = &r->measurements[r->n_measurements++];
    snprintf(m->name, sizeof m->name, "boot_ms");
    snprintf(m->unit, sizeof m->unit, "ms");
    m->low = 0;
    m->high = 500;
    m->value = 120 + sim_random(s) * 40;
    r->passed = 1; /* the station judges the measurements against their limits */
}

static void sim_calibrate(void *state, const adapter_step_ctx *ctx, adapter_result *r)
{
    sim_state *s = state;
    sim_step_sleep(s);
    if (sim_fails(s)) {
        adapter_fail(r, "calibration_residual", "residual 0.31 exceeds limit 0.05");
        return;
    }
    if (s->n_cal) {
        /* raw readings of a slightly off channel at references 0..3 (scaled
         * per channel); the agent fits them and writes the coefficients */
        for (int i = 0; i < s->n_cal; i++) {
            adapter_cal_channel *c = &r->cal_channels[r->n_cal_channels++];
            snprintf(c->name, sizeof c->name, "%s", s->cal_names[i]);
            double off = (sim_random(s) - 0.5) * 0.02, gain = 1.0 + (sim_random(s) - 0.5) * 0.01;
            for (int k = 0; k < 4; k++) {
                double ref = k * (i + 1.0);
                c->points[c->n_points++] = (adapter_cal_point){ref, (ref - off) / gain};
            }
        }
        r->passed = 1;
        return;
    }
    r->cal_offset = (sim_random(s) - 0.5) * 0.02;
    r->cal_gain = 1.0 + (sim_random(s) - 0.5) * 0.01;
    r->passed = 1;
}

/* The simulated board's non-volatile memory keeps what it is given. */
static void sim_write_calibration(void *state, const adapter_step_ctx *ctx, double offset, double gain,
                                  adapter_result *r)
{
    (void)state;
    (void)ctx;
    (void)offset;
    (void)gain;
    r->passed = 1;
}

static void sim_lock(void *state, const adapter_step_ctx *ctx, adapter_result *r)
{
    sim_state *s = state;
    sim_step_sleep(s);
    if (sim_fails(s)) {
        adapter_fail(r, "lock_unverified", "debug port still answers after lock");
        return;
    }
    r->lock_verified = 1;
    r->passed = 1;
}

static void sim_close(void *state)
{
    conf_free(sim_keys, state);
    free(state);
}

const adapter adapter_sim = {
    .name = "sim",
    .keys = sim_keys,
    .conf_size = sizeof(sim_state),
    .open = sim_open,
    .load_board = sim_load_board,
    .write = sim_write,
    .verify = sim_verify,
    .provision = sim_provision,
    .test = sim_test,
    .calibrate = sim_calibrate,
    .lock = sim_lock,
    .close = sim_close,
    .write_calibration = sim_write_calibration,
    .provision_csr = sim_provision_csr,
};
