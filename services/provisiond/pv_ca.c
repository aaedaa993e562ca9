/* SPDX-License-Identifier: Apache-2.0 */
/* pv_ca.c - the factory CA (pv_ca.h). */
#include "pv_ca.h"

#include <fcntl.h>
#include <openssl/asn1t.h>
#include <openssl/bio.h>
#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define PV_DEVICE_EXTS 4

struct pv_ca {
    X509 *cert;
    EVP_PKEY *key;
    char *pem;
    /* The device certificates' extensions, made once: building them (the
     * authority key id hashes the CA's encoded key) costs more than signing. */
    X509_EXTENSION *ext[PV_DEVICE_EXTS];
    /* Signing context for the CA key and SHA-256, set up once and copied per
     * certificate: setting one up fetches the digest and signature methods. */
    EVP_MD_CTX *sign;
    /* P-256 domain parameters without a key: device public keys are made
     * from a copy of it and their point. */
    EVP_PKEY *p256;
};

/* RFC 2986 CertificationRequest, as OpenSSL's X509_REQ but with the public
 * key kept as its bytes (SubjectPublicKeyInfo): X509_REQ decodes the key
 * through a decoder chain built anew for every CSR. */
typedef struct pv_spki {
    X509_ALGOR *algor;
    ASN1_BIT_STRING *key;
} pv_spki;

typedef struct pv_csr_info {
    ASN1_ENCODING enc; /* the signed bytes as received, for the verification */
    ASN1_INTEGER *version;
    X509_NAME *subject;
    pv_spki *spki;
    STACK_OF(X509_ATTRIBUTE) *attributes;
} pv_csr_info;

typedef struct pv_csr {
    pv_csr_info *info;
    X509_ALGOR *sig_alg;
    ASN1_BIT_STRING *signature;
} pv_csr;

ASN1_SEQUENCE(pv_spki) = {
    ASN1_SIMPLE(pv_spki, algor, X509_ALGOR),
    ASN1_SIMPLE(pv_spki, key, ASN1_BIT_STRING),
} ASN1_SEQUENCE_END(pv_spki)

ASN1_SEQUENCE_enc(pv_csr_info, enc, 0) = {
    ASN1_SIMPLE(pv_csr_info, version, ASN1_INTEGER),
    ASN1_SIMPLE(pv_csr_info, subject, X509_NAME),
    ASN1_SIMPLE(pv_csr_info, spki, pv_spki),
    /* required by RFC 2986, optional here as in OpenSSL's X509_REQ_INFO */
    ASN1_IMP_SET_OF_OPT(pv_csr_info, attributes, X509_ATTRIBUTE, 0),
} ASN1_SEQUENCE_END_enc(pv_csr_info, pv_csr_info)

ASN1_SEQUENCE(pv_csr) = {
    ASN1_SIMPLE(pv_csr, info, pv_csr_info),
    ASN1_SIMPLE(pv_csr, sig_alg, X509_ALGOR),
    ASN1_SIMPLE(pv_csr, signature, ASN1_BIT_STRING),
} ASN1_SEQUENCE_END(pv_csr)

static void pv_ssl_err(char *err, size_t err_len, const char *what)
{
    unsigned long e = ERR_get_error();
    char buf[200] = "";
    if (e) ERR_error_string_n(e, buf, sizeof buf);
    ERR_clear_error();
    snprintf(err, err_len, "%s%s%s", what, *buf ? ": " : "", buf);
}

static int pv_add_ext(X509 *cert, X509 *issuer, int nid, const char *value)
{
    X509V3_CTX ctx;
    X509V3_set_ctx(&ctx, issuer, cert, NULL, NULL, 0);
    X509_EXTENSION *ex = X509V3_EXT_conf_nid(NULL, &ctx, nid, value);
    if (!ex) return -1;
    int ok = X509_add_ext(cert, ex, -1);
    X509_EXTENSION_free(ex);
    return ok ? 0 : -1;
}

static int pv_random_serial(X509 *cert, char serial_hex[41])
{
    unsigned char b[16];
    if (RAND_bytes(b, sizeof b) != 1) return -1;
    b[0] &= 0x7f; /* positive */
    b[0] |= 0x40; /* and always 16 bytes long, so the hex form is canonical */
    BIGNUM *bn = BN_bin2bn(b, sizeof b, NULL);
    int rc = bn && BN_to_ASN1_INTEGER(bn, X509_get_serialNumber(cert)) ? 0 : -1;
    if (rc == 0 && serial_hex) {
        char *h = BN_bn2hex(bn);
        snprintf(serial_hex, 41, "%s", h ? h : "");
        OPENSSL_free(h);
    }
    BN_free(bn);
    return rc;
}

EVP_PKEY *pv_keygen(void) { return EVP_EC_gen("P-256"); }

int pv_ca_init(const char *cert_path, const char *key_path, const char *cn, char *err, size_t err_len)
{
    if (access(cert_path, F_OK) == 0 || access(key_path, F_OK) == 0)
        return snprintf(err, err_len, "%s or %s exists already; refusing to overwrite a CA", cert_path,
                        key_path), -1;
    int rc = -1;
    EVP_PKEY *key = pv_keygen();
    X509 *cert = X509_new();
    FILE *kf = NULL, *cf = NULL;
    if (!key || !cert) goto out;
    X509_set_version(cert, 2);
    if (pv_random_serial(cert, NULL)) goto out;
    X509_gmtime_adj(X509_getm_notBefore(cert), 0);
    X509_gmtime_adj(X509_getm_notAfter(cert), 20L * 365 * 86400);
    X509_set_pubkey(cert, key);
    X509_NAME *name = X509_get_subject_name(cert);
    X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_UTF8, (const unsigned char *)cn, -1, -1, 0);
    X509_set_issuer_name(cert, name);
    if (pv_add_ext(cert, cert, NID_basic_constraints, "critical,CA:TRUE,pathlen:0") ||
        pv_add_ext(cert, cert, NID_key_usage, "critical,keyCertSign,cRLSign") ||
        pv_add_ext(cert, cert, NID_subject_key_identifier, "hash") || !X509_sign(cert, key, EVP_sha256())) {
        pv_ssl_err(err, err_len, "building the CA certificate");
        goto out;
    }
    int fd = open(key_path, O_WRONLY | O_CREAT | O_EXCL, 0600);
    if (fd < 0 || !(kf = fdopen(fd, "w"))) {
        if (fd >= 0) close(fd);
        snprintf(err, err_len, "%s: cannot create", key_path);
        goto out;
    }
    if (!PEM_write_PrivateKey(kf, key, NULL, NULL, 0, NULL, NULL)) {
        pv_ssl_err(err, err_len, "writing the CA key");
        goto out;
    }
    if (!(cf = fopen(cert_path, "wx")) || !PEM_write_X509(cf, cert)) {
        snprintf(err, err_len, "%s: cannot write", cert_path);
        goto out;
    }
    rc = 0;
out:
    if (kf && fclose(kf)) rc = -1;
    if (cf && fclose(cf)) rc = -1;
    EVP_PKEY_free(key);
    X509_free(cert);
    return rc;
}

pv_ca *pv_ca_load(const char *cert_path, const char *key_path, char *err, size_t err_len)
{
    pv_ca *ca = calloc(1, sizeof *ca);
    FILE *f = fopen(cert_path, "r");
    if (!ca || !f) {
        snprintf(err, err_len, "%s: cannot read the CA certificate", cert_path);
        goto fail;
    }
    ca->cert = PEM_read_X509(f, NULL, NULL, NULL);
    fclose(f);
    if (!ca->cert) {
        pv_ssl_err(err, err_len, "CA certificate does not parse");
        goto fail;
    }
    if (!(f = fopen(key_path, "r"))) {
        snprintf(err, err_len, "%s: cannot read the CA key", key_path);
        goto fail;
    }
    ca->key = PEM_read_PrivateKey(f, NULL, NULL, NULL);
    fclose(f);
    if (!ca->key || X509_check_private_key(ca->cert, ca->key) != 1) {
        pv_ssl_err(err, err_len, "CA key does not parse or does not match the CA certificate");
        goto fail;
    }
    BIO *b = BIO_new(BIO_s_mem());
    char *p;
    long n;
    if (!b || !PEM_write_bio_X509(b, ca->cert) || (n = BIO_get_mem_data(b, &p)) <= 0 ||
        !(ca->pem = strndup(p, (size_t)n))) {
        BIO_free(b);
        snprintf(err, err_len, "out of memory");
        goto fail;
    }
    BIO_free(b);
    static const struct { int nid; const char *value; } exts[PV_DEVICE_EXTS] = {
        {NID_basic_constraints, "critical,CA:FALSE"},
        {NID_key_usage, "critical,digitalSignature,keyAgreement"},
        {NID_ext_key_usage, "clientAuth,serverAuth"},
        {NID_authority_key_identifier, "keyid:always"},
    };
    for (int i = 0; i < PV_DEVICE_EXTS; i++) {
        X509V3_CTX ctx;
        X509V3_set_ctx(&ctx, ca->cert, NULL, NULL, NULL, 0);
        if (!(ca->ext[i] = X509V3_EXT_conf_nid(NULL, &ctx, exts[i].nid, exts[i].value))) {
            pv_ssl_err(err, err_len, "CA certificate cannot issue (extensions)");
            goto fail;
        }
    }
    if (!(ca->sign = EVP_MD_CTX_new()) ||
        EVP_DigestSignInit_ex(ca->sign, NULL, "SHA256", NULL, NULL, ca->key, NULL) != 1) {
        pv_ssl_err(err, err_len, "CA key cannot sign with SHA-256");
        goto fail;
    }
    EVP_PKEY_CTX *pc = EVP_PKEY_CTX_new_from_name(NULL, "EC", NULL);
    OSSL_PARAM group[] = {OSSL_PARAM_construct_utf8_string(OSSL_PKEY_PARAM_GROUP_NAME, (char *)"prime256v1", 0),
                          OSSL_PARAM_END};
    int ok = pc && EVP_PKEY_fromdata_init(pc) == 1 &&
             EVP_PKEY_fromdata(pc, &ca->p256, EVP_PKEY_KEY_PARAMETERS, group) == 1;
    EVP_PKEY_CTX_free(pc);
    if (!ok) {
        pv_ssl_err(err, err_len, "OpenSSL offers no EC P-256");
        goto fail;
    }
    return ca;
fail:
    pv_ca_free(ca);
    return NULL;
}

void pv_ca_free(pv_ca *ca)
{
    if (!ca) return;
    X509_free(ca->cert);
    EVP_PKEY_free(ca->key);
    free(ca->pem);
    for (int i = 0; i < PV_DEVICE_EXTS; i++) X509_EXTENSION_free(ca->ext[i]);
    EVP_MD_CTX_free(ca->sign);
    EVP_PKEY_free(ca->p256);
    free(ca);
}

const char *pv_ca_pem(const pv_ca *ca) { return ca->pem; }

/* The key for pub's point (caller frees), or NULL when it is not on P-256. */
static EVP_PKEY *pv_pubkey_load(const pv_ca *ca, const pv_pubkey *pub)
{
    EVP_PKEY *k = EVP_PKEY_dup(ca->p256);
    if (k && EVP_PKEY_set1_encoded_public_key(k, pub->point, pub->len) != 1) {
        EVP_PKEY_free(k);
        k = NULL;
    }
    return k;
}

int pv_pubkey_of(EVP_PKEY *key, pv_pubkey *out)
{
    return EVP_PKEY_get_octet_string_param(key, OSSL_PKEY_PARAM_ENCODED_PUBLIC_KEY, out->point,
                                           sizeof out->point, &out->len) == 1
               ? 0
               : -1;
}

int pv_csr_pubkey(const pv_ca *ca, const char *pem, pv_pubkey *out, char *err, size_t err_len)
{
    /* PEM_bytes_read_bio takes the same armour PEM_read_bio_X509_REQ does. */
    BIO *b = BIO_new_mem_buf(pem, -1);
    unsigned char *der = NULL;
    long len = 0;
    int armoured = b && PEM_bytes_read_bio(&der, &len, NULL, PEM_STRING_X509_REQ, b, NULL, NULL) == 1;
    BIO_free(b);
    const unsigned char *p = der;
    pv_csr *req = armoured ? (pv_csr *)ASN1_item_d2i(NULL, &p, len, ASN1_ITEM_rptr(pv_csr)) : NULL;
    OPENSSL_free(der);
    EVP_PKEY *key = NULL;
    int rc = -1;
    if (!req) {
        pv_ssl_err(err, err_len, "csr does not parse as a PEM certificate request");
        return -1;
    }
    const ASN1_OBJECT *alg, *curve = NULL;
    int ptype;
    const void *param;
    X509_ALGOR_get0(&alg, &ptype, &param, req->info->spki->algor);
    if (ptype == V_ASN1_OBJECT) curve = param;
    const ASN1_BIT_STRING *bits = req->info->spki->key;
    if (OBJ_obj2nid(alg) != NID_X9_62_id_ecPublicKey || !curve || OBJ_obj2nid(curve) != NID_X9_62_prime256v1) {
        snprintf(err, err_len, "csr key must be EC P-256");
        goto out;
    }
    if (bits->length < 1 || (size_t)bits->length > sizeof out->point) {
        snprintf(err, err_len, "csr has no usable public key");
        goto out;
    }
    memcpy(out->point, bits->data, (size_t)bits->length);
    out->len = (size_t)bits->length;
    if (!(key = pv_pubkey_load(ca, out))) {
        pv_ssl_err(err, err_len, "csr has no usable public key");
        goto out;
    }
    /* What X509_REQ_verify does, on the same signed bytes. */
    if (ASN1_item_verify(ASN1_ITEM_rptr(pv_csr_info), req->sig_alg, req->signature, req->info, key) != 1) {
        pv_ssl_err(err, err_len, "csr signature does not verify");
        goto out;
    }
    rc = 0;
out:
    EVP_PKEY_free(key);
    ASN1_item_free((ASN1_VALUE *)req, ASN1_ITEM_rptr(pv_csr));
    ERR_clear_error();
    return rc;
}

char *pv_key_pem(EVP_PKEY *key)
{
    BIO *b = BIO_new(BIO_s_secmem());
    if (!b) b = BIO_new(BIO_s_mem());
    char *p, *out = NULL;
    long n;
    if (b && PEM_write_bio_PKCS8PrivateKey(b, key, NULL, NULL, 0, NULL, NULL) &&
        (n = BIO_get_mem_data(b, &p)) > 0 && (out = malloc((size_t)n + 1))) {
        memcpy(out, p, (size_t)n);
        out[n] = 0;
    }
    BIO_free(b); /* secure-heap buffers are cleared when freed */
    return out;
}

char *pv_ca_sign(const pv_ca *ca, const pv_pubkey *pub, const char *cn, const char *org, int days,
                 char serial_hex[41], char *err, size_t err_len)
{
    X509 *cert = X509_new();
    EVP_MD_CTX *sign = EVP_MD_CTX_new();
    BIO *b = NULL;
    char *out = NULL;
    unsigned char *point = NULL;
    if (!cert || !sign) goto fail;
    X509_set_version(cert, 2);
    if (pv_random_serial(cert, serial_hex)) goto fail;
    X509_gmtime_adj(X509_getm_notBefore(cert), 0);
    X509_gmtime_adj(X509_getm_notAfter(cert), (long)days * 86400);
    /* The key's bytes as they are, named-curve P-256: what X509_set_pubkey
     * writes, without its encoder and decoder round trip. */
    if (!(point = OPENSSL_memdup(pub->point, pub->len)) ||
        !X509_PUBKEY_set0_param(X509_get_X509_PUBKEY(cert), OBJ_nid2obj(NID_X9_62_id_ecPublicKey), V_ASN1_OBJECT,
                                OBJ_nid2obj(NID_X9_62_prime256v1), point, (int)pub->len))
        goto fail;
    point = NULL; /* the certificate owns it */
    X509_set_issuer_name(cert, X509_get_subject_name(ca->cert));
    X509_NAME *name = X509_get_subject_name(cert);
    if (org)
        X509_NAME_add_entry_by_NID(name, NID_organizationName, MBSTRING_UTF8, (const unsigned char *)org, -1, -1, 0);
    X509_NAME_add_entry_by_NID(name, NID_commonName, MBSTRING_UTF8, (const unsigned char *)cn, -1, -1, 0);
    for (int i = 0; i < PV_DEVICE_EXTS; i++)
        if (!X509_add_ext(cert, ca->ext[i], -1)) goto fail;
    if (!EVP_MD_CTX_copy_ex(sign, ca->sign) || X509_sign_ctx(cert, sign) <= 0) goto fail;
    char *p;
    long n;
    if (!(b = BIO_new(BIO_s_mem())) || !PEM_write_bio_X509(b, cert) || (n = BIO_get_mem_data(b, &p)) <= 0 ||
        !(out = strndup(p, (size_t)n)))
        goto fail;
    BIO_free(b);
    EVP_MD_CTX_free(sign);
    X509_free(cert);
    return out;
fail:
    pv_ssl_err(err, err_len, "signing the device certificate");
    OPENSSL_free(point);
    BIO_free(b);
    EVP_MD_CTX_free(sign);
    X509_free(cert);
    return NULL;
}

static X509 *pv_parse_cert(const char *pem)
{
    BIO *b = BIO_new_mem_buf(pem, -1);
    X509 *c = b ? PEM_read_bio_X509(b, NULL, NULL, NULL) : NULL;
    BIO_free(b);
    return c;
}

int pv_cert_has_key(const pv_ca *ca, const char *pem, const pv_pubkey *pub)
{
    X509 *c = pv_parse_cert(pem);
    EVP_PKEY *k = c ? X509_get0_pubkey(c) : NULL, *want = k ? pv_pubkey_load(ca, pub) : NULL;
    int same = want && EVP_PKEY_eq(k, want) == 1;
    EVP_PKEY_free(want);
    X509_free(c);
    ERR_clear_error();
    return same;
}

int pv_ca_check_cert(const pv_ca *ca, const char *pem, const char *cn, const char *serial_hex, char *err,
                     size_t err_len)
{
    X509 *c = pv_parse_cert(pem);
    int rc = -1;
    if (!c) {
        snprintf(err, err_len, "certificate does not parse");
        goto out;
    }
    if (X509_check_issued(ca->cert, c) != X509_V_OK || X509_verify(c, ca->key) != 1) {
        snprintf(err, err_len, "certificate does not chain to the factory CA");
        goto out;
    }
    char got[256] = "";
    X509_NAME_get_text_by_NID(X509_get_subject_name(c), NID_commonName, got, sizeof got);
    if (strcmp(got, cn) != 0) {
        snprintf(err, err_len, "certificate CN \"%s\" is not the serial \"%s\"", got, cn);
        goto out;
    }
    BIGNUM *bn = ASN1_INTEGER_to_BN(X509_get0_serialNumber(c), NULL);
    char *h = bn ? BN_bn2hex(bn) : NULL;
    if (!h || strcmp(h, serial_hex) != 0)
        snprintf(err, err_len, "certificate serial %s differs from the ledger's %s", h ? h : "?", serial_hex);
    else
        rc = 0;
    OPENSSL_free(h);
    BN_free(bn);
out:
    X509_free(c);
    ERR_clear_error();
    return rc;
}
