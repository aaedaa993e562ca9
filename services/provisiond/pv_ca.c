/* pv_ca.c - the factory CA (pv_ca.h). */
#include "pv_ca.h"

#include <fcntl.h>
#include <openssl/bio.h>
#include <openssl/bn.h>
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
};

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
    free(ca);
}

const char *pv_ca_pem(const pv_ca *ca) { return ca->pem; }

static int pv_is_p256(EVP_PKEY *k)
{
    char group[32];
    size_t len;
    return EVP_PKEY_is_a(k, "EC") &&
           EVP_PKEY_get_utf8_string_param(k, "group", group, sizeof group, &len) == 1 &&
           strcmp(group, "prime256v1") == 0;
}

EVP_PKEY *pv_csr_pubkey(const char *pem, char *err, size_t err_len)
{
    BIO *b = BIO_new_mem_buf(pem, -1);
    X509_REQ *req = b ? PEM_read_bio_X509_REQ(b, NULL, NULL, NULL) : NULL;
    BIO_free(b);
    EVP_PKEY *pub = NULL;
    if (!req) {
        pv_ssl_err(err, err_len, "csr does not parse as a PEM certificate request");
        return NULL;
    }
    pub = X509_REQ_get_pubkey(req);
    if (!pub) pv_ssl_err(err, err_len, "csr has no usable public key");
    else if (X509_REQ_verify(req, pub) != 1) {
        pv_ssl_err(err, err_len, "csr signature does not verify");
        EVP_PKEY_free(pub);
        pub = NULL;
    } else if (!pv_is_p256(pub)) {
        snprintf(err, err_len, "csr key must be EC P-256");
        EVP_PKEY_free(pub);
        pub = NULL;
    }
    X509_REQ_free(req);
    ERR_clear_error();
    return pub;
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

char *pv_ca_sign(const pv_ca *ca, EVP_PKEY *pub, const char *cn, const char *org, int days,
                 char serial_hex[41], char *err, size_t err_len)
{
    X509 *cert = X509_new();
    BIO *b = NULL;
    char *out = NULL;
    if (!cert) goto fail;
    X509_set_version(cert, 2);
    if (pv_random_serial(cert, serial_hex)) goto fail;
    X509_gmtime_adj(X509_getm_notBefore(cert), 0);
    X509_gmtime_adj(X509_getm_notAfter(cert), (long)days * 86400);
    X509_set_pubkey(cert, pub);
    X509_set_issuer_name(cert, X509_get_subject_name(ca->cert));
    X509_NAME *name = X509_get_subject_name(cert);
    if (org) X509_NAME_add_entry_by_txt(name, "O", MBSTRING_UTF8, (const unsigned char *)org, -1, -1, 0);
    X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_UTF8, (const unsigned char *)cn, -1, -1, 0);
    for (int i = 0; i < PV_DEVICE_EXTS; i++)
        if (!X509_add_ext(cert, ca->ext[i], -1)) goto fail;
    if (!X509_sign(cert, ca->key, EVP_sha256())) goto fail;
    char *p;
    long n;
    if (!(b = BIO_new(BIO_s_mem())) || !PEM_write_bio_X509(b, cert) || (n = BIO_get_mem_data(b, &p)) <= 0 ||
        !(out = strndup(p, (size_t)n)))
        goto fail;
    BIO_free(b);
    X509_free(cert);
    return out;
fail:
    pv_ssl_err(err, err_len, "signing the device certificate");
    BIO_free(b);
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

int pv_cert_has_key(const char *pem, EVP_PKEY *pub)
{
    X509 *c = pv_parse_cert(pem);
    EVP_PKEY *k = c ? X509_get0_pubkey(c) : NULL;
    int same = k && EVP_PKEY_eq(k, pub) == 1;
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
