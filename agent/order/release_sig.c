/* SPDX-License-Identifier: Apache-2.0 */
/* release_sig.c - signed firmware releases (release_sig.h): the canonical
 * manifest and its verification with OpenSSL EVP against the release team's
 * public keys. */
#include "release_sig.h"

#include <openssl/evp.h>
#include <openssl/pem.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define RELEASE_MAX_KEYS 16
#define RELEASE_SIG_MAX 512 /* base64 characters: Ed25519 is 88, a P-256 DER signature at most 96 */

struct release_keys {
    EVP_PKEY *key[RELEASE_MAX_KEYS];
    size_t n;
};

void release_keys_free(release_keys *k)
{
    if (!k) return;
    for (size_t i = 0; i < k->n; i++) EVP_PKEY_free(k->key[i]);
    free(k);
}

size_t release_keys_count(const release_keys *k) { return k ? k->n : 0; }

/* Ed25519, or EC on P-256: the algorithms the release team signs with. */
static int release_key_ok(EVP_PKEY *p)
{
    if (EVP_PKEY_get_base_id(p) == EVP_PKEY_ED25519) return 1;
    char group[32] = "";
    return EVP_PKEY_get_base_id(p) == EVP_PKEY_EC &&
           EVP_PKEY_get_group_name(p, group, sizeof group, NULL) == 1 && strcmp(group, "prime256v1") == 0;
}

static int release_keys_file(release_keys *k, const char *path, char *err, size_t err_len)
{
    FILE *f = fopen(path, "r");
    if (!f) return snprintf(err, err_len, "release_keys: cannot open %s", path), -1;
    size_t before = k->n;
    EVP_PKEY *p;
    while ((p = PEM_read_PUBKEY(f, NULL, NULL, NULL))) {
        if (!release_key_ok(p) || k->n == RELEASE_MAX_KEYS) {
            EVP_PKEY_free(p);
            fclose(f);
            return snprintf(err, err_len, "release_keys: %s: %s", path,
                            k->n == RELEASE_MAX_KEYS ? "more than 16 keys" : "a key that is neither Ed25519 nor ECDSA P-256"),
                   -1;
        }
        k->key[k->n++] = p;
    }
    fclose(f);
    if (k->n == before) return snprintf(err, err_len, "release_keys: %s holds no PEM public key", path), -1;
    return 0;
}

release_keys *release_keys_load(const char *paths, char *err, size_t err_len)
{
    release_keys *k = calloc(1, sizeof *k);
    char *copy = strdup(paths), *save = NULL;
    int rc = 0;
    for (char *p = strtok_r(copy, ",", &save); p && !rc; p = strtok_r(NULL, ",", &save)) {
        while (*p == ' ') p++;
        for (char *e = p + strlen(p); e > p && e[-1] == ' ';) *--e = 0;
        if (*p) rc = release_keys_file(k, p, err, err_len);
    }
    free(copy);
    if (!rc && !k->n) {
        snprintf(err, err_len, "release_keys names no file");
        rc = -1;
    }
    if (rc) {
        release_keys_free(k);
        return NULL;
    }
    return k;
}

size_t release_manifest(const JobOrder *o, char *buf, size_t n)
{
    const Lineagent__V1__FirmwareRelease *fw = o->firmware;
    const ProtobufCEnumValue *b = protobuf_c_enum_descriptor_get_value(&lineagent__v1__build__descriptor, (int)fw->build);
    int len = snprintf(buf, n, "lineagent-release-manifest-v1\nproduct=%s\nversion=%s\nsha256=%s\nbuild=%s\n",
                       o->product, fw->version, fw->sha256, b ? b->name : "BUILD_UNSPECIFIED");
    return len > 0 && (size_t)len < n ? (size_t)len : 0;
}

/* Base64 (no line breaks) into out; its length, or -1. */
static int release_b64(const char *in, unsigned char *out)
{
    size_t n = strlen(in);
    if (n == 0 || n % 4 || n > RELEASE_SIG_MAX) return -1;
    int len = EVP_DecodeBlock(out, (const unsigned char *)in, (int)n);
    if (len < 0) return -1;
    return len - (in[n - 1] == '=') - (in[n - 2] == '='); /* DecodeBlock counts the padding as zero bytes */
}

static int release_verify(EVP_PKEY *key, const unsigned char *sig, size_t sig_len, const char *msg, size_t len)
{
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    const EVP_MD *md = EVP_PKEY_get_base_id(key) == EVP_PKEY_ED25519 ? NULL : EVP_sha256();
    int ok = ctx && EVP_DigestVerifyInit(ctx, NULL, md, NULL, key) == 1 &&
             EVP_DigestVerify(ctx, sig, sig_len, (const unsigned char *)msg, len) == 1;
    EVP_MD_CTX_free(ctx);
    return ok;
}

int release_sig_check(const release_keys *keys, const JobOrder *o, char *reason, size_t reason_len)
{
    const char *sig64 = o->firmware->signature;
    if (!sig64 || !*sig64) {
        snprintf(reason, reason_len, "firmware.signature missing: this line takes only releases signed by the "
                 "release team ([firmware] release_keys)");
        return -1;
    }
    unsigned char sig[RELEASE_SIG_MAX];
    int sig_len = release_b64(sig64, sig);
    if (sig_len <= 0) {
        snprintf(reason, reason_len, "firmware.signature is not base64 of a signature (%zu characters)", strlen(sig64));
        return -1;
    }
    char manifest[512];
    size_t len = release_manifest(o, manifest, sizeof manifest);
    for (size_t i = 0; len && i < keys->n; i++)
        if (release_verify(keys->key[i], sig, (size_t)sig_len, manifest, len)) return 0;
    snprintf(reason, reason_len, "firmware.signature is not a signature by any of the %zu release keys over the "
             "manifest of %s %s (sha256 %.16s...)", keys->n, o->product, o->firmware->version, o->firmware->sha256);
    return -1;
}
