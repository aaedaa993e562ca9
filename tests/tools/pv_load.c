/* SPDX-License-Identifier: Apache-2.0 */
/* pv_load.c - drives provisiond through the agent's own provisioning client
 * (agent/provision_client.c): T threads (stations), each with its own
 * keep-alive client, issue N units in total, each with a fresh EC P-256 key
 * and CSR made on the "board" (or, with --server-keys, none). Writes one line
 * per identity (board, serial, device id, MACs, certificate serial) for the
 * caller to check for duplicates, and prints the rate and this process's CPU
 * time per issuance.
 *
 * usage: pv_load URL N THREADS OUT [--product P] [--prefix BOARDPREFIX]
 *               [--ca F --cert F --key F] [--server-keys] [--pregen] [--bench SCENARIO]
 * --pregen makes every board's key and CSR before the clock starts, so the
 * rate is the issuance path alone (on a line the board makes them).
 * --bench also prints the rate as a benchmark result line (bench_util.h)
 * beside its baseline: bare OpenSSL X509_sign of an issued device
 * certificate (ECDSA P-256, SHA-256) with one thread per core. */
#include <openssl/bio.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#include "bench_util.h"
#include "provision_client.h"

static const char *url, *product = "PCBA-100", *prefix = "LOAD", *ca, *cert, *key;
static long total;
static int threads, server_keys, pregen;
static char **csrs; /* --pregen: one per unit */
static FILE *out;
static pthread_mutex_t out_lock = PTHREAD_MUTEX_INITIALIZER;
static long ok_count, refused_count, unavailable_count;
static char first_reason[256];
static char *first_cert; /* PEM of the first certificate issued, for the baseline */

/* User + system CPU seconds of this process. */
static double cpu_s(void)
{
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return (double)(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) + (ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / 1e6;
}

static int make_csr(const char *cn, char *buf, size_t len)
{
    EVP_PKEY *k = EVP_EC_gen("P-256");
    X509_REQ *req = X509_REQ_new();
    BIO *b = BIO_new(BIO_s_mem());
    char *p;
    long n;
    int rc = -1;
    if (k && req && b && X509_REQ_set_pubkey(req, k) &&
        X509_NAME_add_entry_by_txt(X509_REQ_get_subject_name(req), "CN", MBSTRING_ASC, (const unsigned char *)cn,
                                   -1, -1, 0) &&
        X509_REQ_sign(req, k, EVP_sha256()) > 0 && PEM_write_bio_X509_REQ(b, req) &&
        (n = BIO_get_mem_data(b, &p)) > 0 && (size_t)n < len) {
        memcpy(buf, p, (size_t)n);
        buf[n] = 0;
        rc = 0;
    }
    BIO_free(b);
    X509_REQ_free(req);
    EVP_PKEY_free(k);
    return rc;
}

static void *worker(void *arg)
{
    long t = (long)(intptr_t)arg;
    provision_settings ps = {url, ca, cert, key, 10000, 3};
    char err[256];
    provision_client *pc = provision_client_new(&ps, err, sizeof err);
    if (!pc) {
        fprintf(stderr, "pv_load: %s\n", err);
        return NULL;
    }
    char station[32];
    snprintf(station, sizeof station, "st%02ld", t);
    for (long i = t; i < total; i += threads) {
        pthread_mutex_lock(&out_lock);
        int hopeless = ok_count == 0 && unavailable_count >= 32; /* no server: stop, don't wait out every retry */
        pthread_mutex_unlock(&out_lock);
        if (hopeless) break;
        char board[64], csr[4096];
        snprintf(board, sizeof board, "%s-B%07ld", prefix, i);
        if (!server_keys && !pregen && make_csr(board, csr, sizeof csr)) {
            fprintf(stderr, "pv_load: cannot make a CSR\n");
            break;
        }
        provision_identity id;
        char reason[256] = "";
        provision_status st = provision_client_issue(pc, product, board, "LOT-LOAD", "WO-LOAD", station,
                                                     server_keys ? NULL : pregen ? csrs[i] : csr, &id, reason,
                                                     sizeof reason);
        pthread_mutex_lock(&out_lock);
        if (st == PROVISION_OK) {
            ok_count++;
            if (!first_cert) first_cert = strdup(id.certificate);
            fprintf(out, "%s %s %s %s", board, id.serial, id.device_id, id.cert_sha256);
            for (int m = 0; m < id.n_macs; m++) fprintf(out, " %s", id.macs[m]);
            fprintf(out, " reused=%d key=%d\n", id.reused, id.private_key != NULL);
        } else {
            if (st == PROVISION_REFUSED) refused_count++;
            else unavailable_count++;
            if (!first_reason[0]) snprintf(first_reason, sizeof first_reason, "%s", reason);
        }
        pthread_mutex_unlock(&out_lock);
        provision_identity_clear(&id);
    }
    provision_client_free(pc);
    return NULL;
}

/* The baseline: X509_sign of one issued certificate, again and again, with a
 * fresh P-256 key standing in for the CA's; one thread per core. */
typedef struct sign_run {
    X509 *cert;
    EVP_PKEY *key;
    double seconds;
    long n;
} sign_run;

static void *sign_loop(void *arg)
{
    sign_run *r = arg;
    double t0 = bench_now();
    do {
        for (int i = 0; i < 50; i++)
            if (!X509_sign(r->cert, r->key, EVP_sha256())) {
                r->n = 0; /* no rate, so no baseline */
                return NULL;
            }
        r->n += 50;
    } while (bench_now() - t0 < r->seconds);
    return NULL;
}

static double bench_sign(const char *pem, int nthreads, double seconds)
{
    EVP_PKEY *signer = EVP_EC_gen("P-256");
    sign_run *runs = calloc((size_t)nthreads, sizeof *runs);
    pthread_t *th = calloc((size_t)nthreads, sizeof *th);
    double t0 = bench_now(), rate = 0;
    int started = 0;
    for (; signer && runs && th && started < nthreads; started++) {
        BIO *b = BIO_new_mem_buf(pem, -1);
        runs[started] = (sign_run){b ? PEM_read_bio_X509(b, NULL, NULL, NULL) : NULL, signer, seconds, 0};
        BIO_free(b);
        if (!runs[started].cert || pthread_create(&th[started], NULL, sign_loop, &runs[started])) break;
    }
    for (int t = 0; t < started; t++) pthread_join(th[t], NULL);
    double el = bench_now() - t0;
    int ok = started == nthreads;
    for (int t = 0; runs && t < nthreads; t++) {
        ok = ok && runs[t].n > 0;
        rate += (double)runs[t].n / el;
        X509_free(runs[t].cert);
    }
    free(runs);
    free(th);
    EVP_PKEY_free(signer);
    return ok ? rate : 0;
}

int main(int argc, char **argv)
{
    if (argc < 5) {
        fprintf(stderr, "usage: pv_load URL N THREADS OUT [--product P] [--prefix B] [--ca F --cert F --key F] "
                        "[--server-keys] [--pregen] [--bench SCENARIO]\n");
        return 2;
    }
    url = argv[1];
    total = atol(argv[2]);
    threads = atoi(argv[3]);
    const char *bench = NULL;
    for (int i = 5; i < argc; i++) {
        if (!strcmp(argv[i], "--server-keys")) server_keys = 1;
        else if (i + 1 < argc && !strcmp(argv[i], "--bench")) bench = argv[++i];
        else if (!strcmp(argv[i], "--pregen")) pregen = 1;
        else if (i + 1 < argc && !strcmp(argv[i], "--product")) product = argv[++i];
        else if (i + 1 < argc && !strcmp(argv[i], "--prefix")) prefix = argv[++i];
        else if (i + 1 < argc && !strcmp(argv[i], "--ca")) ca = argv[++i];
        else if (i + 1 < argc && !strcmp(argv[i], "--cert")) cert = argv[++i];
        else if (i + 1 < argc && !strcmp(argv[i], "--key")) key = argv[++i];
        else return fprintf(stderr, "pv_load: unknown argument %s\n", argv[i]), 2;
    }
    if (total < 1 || threads < 1 || threads > 256) return fprintf(stderr, "pv_load: bad N or THREADS\n"), 2;
    if (!(out = fopen(argv[4], "w"))) return fprintf(stderr, "pv_load: cannot write %s\n", argv[4]), 2;
    pthread_t *th = calloc((size_t)threads, sizeof *th);
    if (pregen && !server_keys) {
        csrs = calloc((size_t)total, sizeof *csrs);
        for (long i = 0; i < total; i++) {
            char board[64], csr[4096];
            snprintf(board, sizeof board, "%s-B%07ld", prefix, i);
            if (make_csr(board, csr, sizeof csr)) return fprintf(stderr, "pv_load: cannot make a CSR\n"), 1;
            csrs[i] = strdup(csr);
        }
    }
    double t0 = bench_now(), c0 = cpu_s();
    for (long t = 0; t < threads; t++) pthread_create(&th[t], NULL, worker, (void *)(intptr_t)t);
    for (int t = 0; t < threads; t++) pthread_join(th[t], NULL);
    double el = bench_now() - t0, cpu = cpu_s() - c0;
    fclose(out);
    free(th);
    for (long i = 0; csrs && i < total; i++) free(csrs[i]);
    free(csrs);
    printf("pv_load: %ld ok, %ld refused, %ld unavailable in %.2f s: %.0f issuances/s (%d clients, %s)\n", ok_count,
           refused_count, unavailable_count, el, (double)ok_count / el, threads,
           server_keys ? "server-generated keys"
           : pregen    ? "CSRs made beforehand, signed by the server"
                       : "CSR made per unit, signed by the server");
    if (ok_count) printf("pv_load: client CPU %.0f us per issuance\n", cpu / (double)ok_count * 1e6);
    if (first_reason[0]) printf("pv_load: first failure: %s\n", first_reason);
    if (bench && first_cert) {
        long cores = sysconf(_SC_NPROCESSORS_ONLN);
        char note[400];
        snprintf(note, sizeof note,
                 "the agent's provisioning client, keep-alive, %d stations, a CSR (EC P-256) per unit, provisiond "
                 "on the same %ld cores; baseline = bare OpenSSL X509_sign of an issued certificate (ECDSA P-256, "
                 "SHA-256), %ld threads",
                 threads, cores, cores);
        bench_report(bench, (double)ok_count / el, "issuances/s", bench_sign(first_cert, (int)cores, 1.0),
                     ">= 1000/s", note);
    }
    free(first_cert);
    return ok_count == total ? 0 : 1;
}
