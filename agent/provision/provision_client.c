/* SPDX-License-Identifier: Apache-2.0 */
/* provision_client.c - client of the provisioning server (provision_client.h). */
#include "provision_client.h"

#include <curl/curl.h>
#include <jansson.h>
#include <openssl/bio.h>
#include <openssl/crypto.h>
#include <openssl/pem.h>
#include <openssl/sha.h>
#include <openssl/x509.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <pthread.h>

#define PROVISION_MAX_RESPONSE (256 * 1024)

struct provision_client {
    CURL *curl;
    struct curl_slist *headers;
    char url[512];
    int retries;
    char cn[65];           /* the client certificate's subject CN: the server binds the station to it */
    char errbuf[CURL_ERROR_SIZE];
};

typedef struct prov_buf {
    char *data;
    size_t len, cap;
    int overflow;
} prov_buf;

static void prov_buf_wipe(prov_buf *b)
{
    if (b->data) OPENSSL_cleanse(b->data, b->cap);
    free(b->data);
    memset(b, 0, sizeof *b);
}

/* Grows by copying into a fresh buffer and wiping the old one, so a response
 * holding a private key leaves no copy behind in freed memory. */
static size_t prov_write(char *ptr, size_t size, size_t nmemb, void *ud)
{
    prov_buf *b = ud;
    size_t n = size * nmemb;
    if (b->len + n + 1 > PROVISION_MAX_RESPONSE) {
        b->overflow = 1;
        return 0;
    }
    if (b->len + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 8192;
        while (cap < b->len + n + 1) cap *= 2;
        char *nb = malloc(cap);
        if (!nb) return 0;
        if (b->data) {
            memcpy(nb, b->data, b->len);
            OPENSSL_cleanse(b->data, b->cap);
            free(b->data);
        }
        b->data = nb;
        b->cap = cap;
    }
    memcpy(b->data + b->len, ptr, n);
    b->len += n;
    b->data[b->len] = 0;
    return n;
}

/* curl_global_init counts its callers; this module's one call is never undone. */
static pthread_once_t prov_curl_once = PTHREAD_ONCE_INIT;
static void prov_curl_init(void) { curl_global_init(CURL_GLOBAL_DEFAULT); }

provision_client *provision_client_new(const provision_settings *s, char *err, size_t err_len)
{
    pthread_once(&prov_curl_once, prov_curl_init);
    provision_client *c = calloc(1, sizeof *c);
    if (!c || !(c->curl = curl_easy_init())) {
        free(c);
        return snprintf(err, err_len, "provisioning: cannot create a curl handle"), NULL;
    }
    size_t ul = strlen(s->url);
    while (ul && s->url[ul - 1] == '/') ul--;
    snprintf(c->url, sizeof c->url, "%.*s/v1/units", (int)ul, s->url);
    c->retries = s->retries;
    c->headers = curl_slist_append(NULL, "Content-Type: application/json");
    CURL *h = c->curl;
    curl_easy_setopt(h, CURLOPT_URL, c->url);
    curl_easy_setopt(h, CURLOPT_HTTPHEADER, c->headers);
    curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, s->timeout_ms);
    curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT_MS, s->timeout_ms);
    curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(h, CURLOPT_FOLLOWLOCATION, 0L);
    curl_easy_setopt(h, CURLOPT_TCP_KEEPALIVE, 1L);
    curl_easy_setopt(h, CURLOPT_ERRORBUFFER, c->errbuf);
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, prov_write);
    if (s->ca_file) { /* pinned: this CA only, not the system's directory too */
        curl_easy_setopt(h, CURLOPT_CAINFO, s->ca_file);
        curl_easy_setopt(h, CURLOPT_CAPATH, NULL);
    }
    if (s->cert_file) {
        curl_easy_setopt(h, CURLOPT_SSLCERT, s->cert_file);
        FILE *f = fopen(s->cert_file, "r");
        X509 *x = f ? PEM_read_X509(f, NULL, NULL, NULL) : NULL;
        if (f) fclose(f);
        if (!x || X509_NAME_get_text_by_NID(X509_get_subject_name(x), NID_commonName, c->cn, sizeof c->cn) <= 0) {
            X509_free(x);
            provision_client_free(c);
            return snprintf(err, err_len, "provisioning: cert_file %s holds no certificate with a subject CN",
                            s->cert_file),
                   NULL;
        }
        X509_free(x);
    }
    if (s->key_file) curl_easy_setopt(h, CURLOPT_SSLKEY, s->key_file);
    curl_easy_setopt(h, CURLOPT_SSL_VERIFYPEER, 1L);
    curl_easy_setopt(h, CURLOPT_SSL_VERIFYHOST, 2L);
    curl_easy_setopt(h, CURLOPT_SSLVERSION, (long)CURL_SSLVERSION_TLSv1_2); /* TLS 1.2 is the floor */
    return c;
}

void provision_client_free(provision_client *c)
{
    if (!c) return;
    curl_easy_cleanup(c->curl);
    curl_slist_free_all(c->headers);
    free(c);
}

void provision_identity_clear(provision_identity *id)
{
    free(id->certificate);
    free(id->ca_chain);
    if (id->private_key) {
        OPENSSL_cleanse(id->private_key, strlen(id->private_key));
        free(id->private_key);
    }
    memset(id, 0, sizeof *id);
}

int provision_cert_sha256(const char *pem, char out[65])
{
    /* The DER straight from the PEM armour: no X.509 decoding, which costs
     * far more than the hash; the adapter and the server judge the content. */
    BIO *b = BIO_new_mem_buf(pem, -1);
    char *name = NULL, *header = NULL;
    unsigned char *der = NULL;
    long n = 0;
    int ok = b && PEM_read_bio(b, &name, &header, &der, &n) == 1 && strcmp(name, "CERTIFICATE") == 0 && n > 0;
    BIO_free(b);
    if (ok) {
        unsigned char d[SHA256_DIGEST_LENGTH];
        SHA256(der, (size_t)n, d);
        for (int i = 0; i < SHA256_DIGEST_LENGTH; i++) snprintf(out + 2 * i, 3, "%02x", d[i]);
    }
    OPENSSL_free(name);
    OPENSSL_free(header);
    OPENSSL_free(der);
    return ok ? 0 : -1;
}

static const char *prov_str(json_t *o, const char *k)
{
    const char *v = json_string_value(json_object_get(o, k));
    return v ? v : "";
}

/* 1 when v is 1..max characters of [A-Za-z0-9] and extra, not starting with
 * '-' (vendor programs would read it as an option). */
static int prov_charset_ok(const char *v, size_t max, const char *extra)
{
    size_t n = strlen(v);
    if (n == 0 || n > max || v[0] == '-') return 0;
    for (; *v; v++)
        if (!((*v >= 'A' && *v <= 'Z') || (*v >= 'a' && *v <= 'z') || (*v >= '0' && *v <= '9') ||
              strchr(extra, *v)))
            return 0;
    return 1;
}

static int prov_mac_ok(const char *m)
{
    if (strlen(m) != 17) return 0;
    for (int i = 0; i < 17; i++)
        if (i % 3 == 2 ? m[i] != ':' : !strchr("0123456789abcdef", m[i])) return 0;
    return 1;
}

/* Fills out from the server's answer; -1 with reason when it is unusable. */
static int prov_parse(json_t *o, provision_identity *out, char *reason, size_t reason_len)
{
    json_t *pk = json_object_get(o, "private_key");
    if (json_is_string(pk)) {
        out->private_key = strdup(json_string_value(pk));
        /* jansson does not wipe what it frees: wipe its copy in place. */
        OPENSSL_cleanse((char *)json_string_value(pk), json_string_length(pk));
    }
    snprintf(out->serial, sizeof out->serial, "%s", prov_str(o, "serial"));
    snprintf(out->device_id, sizeof out->device_id, "%s", prov_str(o, "device_id"));
    snprintf(out->issued_at, sizeof out->issued_at, "%s", prov_str(o, "issued_at"));
    snprintf(out->factory_code, sizeof out->factory_code, "%s", prov_str(o, "factory_code"));
    snprintf(out->cert_serial, sizeof out->cert_serial, "%s", prov_str(o, "certificate_serial"));
    out->reused = json_is_true(json_object_get(o, "reused"));
    out->certificate = strdup(prov_str(o, "certificate"));
    out->ca_chain = strdup(prov_str(o, "ca_chain"));
    json_t *macs = json_object_get(o, "macs");
    size_t i;
    json_t *m;
    json_array_foreach(macs, i, m) {
        if (out->n_macs == ADAPTER_MAX_MACS) break;
        snprintf(out->macs[out->n_macs++], sizeof out->macs[0], "%s", json_string_value(m) ? json_string_value(m) : "");
    }
    if (!out->serial[0] || !out->device_id[0] || !json_is_array(macs) || json_array_size(macs) > ADAPTER_MAX_MACS)
        return snprintf(reason, reason_len, "server answer lacks serial, device_id or macs"), -1;
    if (!out->certificate || provision_cert_sha256(out->certificate, out->cert_sha256))
        return snprintf(reason, reason_len, "server answer holds no parseable certificate"), -1;
    /* Everything the server says goes on to vendor programs and events:
     * each must be what its field can hold. */
    const char *bad = !prov_charset_ok(prov_str(o, "serial"), sizeof out->serial - 1, "._:/-") ? "serial"
                      : !prov_charset_ok(prov_str(o, "device_id"), sizeof out->device_id - 1, "._:-") ? "device_id"
                      : (*out->factory_code && !prov_charset_ok(prov_str(o, "factory_code"),
                                                                sizeof out->factory_code - 1, "._-"))
                          ? "factory_code"
                      : (*out->issued_at && !prov_charset_ok(prov_str(o, "issued_at"), sizeof out->issued_at - 1, ".:+-"))
                          ? "issued_at"
                          : NULL;
    for (int k = 0; !bad && k < out->n_macs; k++)
        if (!prov_mac_ok(out->macs[k])) bad = "macs";
    if (bad) return snprintf(reason, reason_len, "server answer: %s outside its character set", bad), -1;
    return 0;
}

provision_status provision_answer_parse(const char *buf, size_t len, long http_code, provision_identity *out,
                                        char *reason, size_t reason_len)
{
    memset(out, 0, sizeof *out);
    json_error_t je;
    json_t *o = buf ? json_loadb(buf, len, 0, &je) : NULL;
    provision_status st;
    if (http_code >= 200 && http_code < 300 && json_is_object(o)) {
        st = prov_parse(o, out, reason, reason_len) ? PROVISION_REFUSED : PROVISION_OK;
        if (st != PROVISION_OK) provision_identity_clear(out);
    } else {
        const char *why = json_string_value(json_object_get(o, "error"));
        snprintf(reason, reason_len, "HTTP %ld: %s", http_code, why ? why : "no reason given");
        st = http_code >= 400 && http_code < 500 && http_code != 408 && http_code != 429 ? PROVISION_REFUSED
                                                                                         : PROVISION_UNAVAILABLE;
    }
    json_decref(o);
    return st;
}

static void prov_sleep_ms(long ms)
{
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) != 0) {
    }
}

provision_status provision_client_issue(provision_client *c, const char *product, const char *board_id,
                                        const char *lot_id, const char *order_id, const char *station,
                                        const char *csr, provision_identity *out, char *reason,
                                        size_t reason_len)
{
    memset(out, 0, sizeof *out);
    /* The server binds the station to the certificate: CN, or CN/NAME. */
    char who[160];
    if (c->cn[0] && strcmp(station, c->cn)) snprintf(who, sizeof who, "%s/%s", c->cn, station);
    else snprintf(who, sizeof who, "%s", station);
    json_t *req = json_pack("{s:s,s:s,s:s,s:s,s:s}", "product", product, "board_id", board_id, "lot_id", lot_id,
                            "order_id", order_id, "station", who);
    if (req && csr) json_object_set_new(req, "csr", json_string(csr));
    char *body = req ? json_dumps(req, JSON_COMPACT) : NULL;
    json_decref(req);
    if (!body) return snprintf(reason, reason_len, "out of memory"), PROVISION_UNAVAILABLE;
    curl_easy_setopt(c->curl, CURLOPT_POSTFIELDS, body);
    provision_status st = PROVISION_UNAVAILABLE;
    long backoff_ms = 100;
    for (int attempt = 0; attempt <= c->retries; attempt++) {
        if (attempt) {
            prov_sleep_ms(backoff_ms);
            backoff_ms = backoff_ms * 2 > 2000 ? 2000 : backoff_ms * 2;
        }
        prov_buf b = {0};
        curl_easy_setopt(c->curl, CURLOPT_WRITEDATA, &b);
        c->errbuf[0] = 0;
        CURLcode rc = curl_easy_perform(c->curl);
        long code = 0;
        curl_easy_getinfo(c->curl, CURLINFO_RESPONSE_CODE, &code);
        if (rc != CURLE_OK) {
            snprintf(reason, reason_len, "%s: %s", c->url, c->errbuf[0] ? c->errbuf : curl_easy_strerror(rc));
            prov_buf_wipe(&b);
            continue; /* unreachable, timed out, TLS failed: try again */
        }
        st = provision_answer_parse(b.data, b.len, code, out, reason, reason_len);
        prov_buf_wipe(&b);
        if (st != PROVISION_UNAVAILABLE) break; /* a refusal: asking again changes nothing */
    }
    free(body); /* holds only the CSR, which is public */
    return st;
}
