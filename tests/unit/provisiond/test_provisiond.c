/* SPDX-License-Identifier: Apache-2.0 */
/* test_provisiond.c - provisiond's modules: serial formatting, MAC
 * allocation (no wrap-around), the configuration (defaults, errors with
 * FILE:LINE, rules between keys, deploy/provisiond.conf against the key
 * tables), and the ledger: one identity per board, repeats return it, bad
 * CSRs write nothing, exhaustion is an error, and audit passes on a good
 * ledger and fails on corrupted ones;
 * a rekey is listed and can be denied; GET never sees an uncommitted batch;
 * a batch SQLite rolled back by itself fails whole and leaves no board stuck. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <openssl/core_names.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <pthread.h>
#include <semaphore.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "pv_ca.h"
#include "pv_config.h"
#include "pv_ident.h"
#include "pv_ledger.h"
#include "tmpdir.h"

static tmpdir tmp;

static const char *path_of(const char *name) { return tmpdir_file(&tmp, name); }

static const char *write_file(const char *name, const char *text)
{
    const char *p = tmpdir_write(&tmp, name, text);
    assert_non_null(p);
    return p;
}

static void test_serial_format(void **s)
{
    char out[64], err[160];
    assert_int_equal(pv_serial_format_check("{product}-{yy}{ww}-{seq:06}", err, sizeof err), 0);
    assert_int_equal(pv_serial_format_check("{product}-{yy}", err, sizeof err), -1); /* no {seq} */
    assert_int_equal(pv_serial_format_check("{seq}{seq}", err, sizeof err), -1);
    assert_int_equal(pv_serial_format_check("{bogus}{seq}", err, sizeof err), -1);
    assert_int_equal(pv_serial_format_check("A B{seq}", err, sizeof err), -1);
    /* 2026-01-01 is in ISO week 1 of 2026; 2027-01-01 is in week 53 of 2026. */
    assert_int_equal(pv_serial_format(out, sizeof out, "{product}-{yy}{ww}-{seq:06}", "PCBA-100", "F1", 42,
                                      1767225600), 0);
    assert_string_equal(out, "PCBA-100-2601-000042");
    assert_int_equal(pv_serial_format(out, sizeof out, "{factory}{yyyy}W{ww}{seq}", "P", "F1", 7, 1798761600), 0);
    assert_string_equal(out, "F12026W537");
    assert_int_equal(pv_serial_format(out, 8, "{product}-{seq:06}", "PCBA-100", "F", 1, 0), -1); /* too long */
}

static void test_mac(void **s)
{
    uint64_t m, next = 0, first;
    char txt[18];
    assert_int_equal(pv_mac_parse("02:00:5E:10:00:FF", &m), 0);
    assert_true(m == 0x02005E1000FFull);
    pv_mac_format(m, txt);
    assert_string_equal(txt, "02:00:5e:10:00:ff");
    assert_int_equal(pv_mac_parse("02:00:5e:10:00", &m), -1);
    assert_int_equal(pv_mac_parse("02:00:5e:10:00:0g", &m), -1);
    /* A block of 5: two units of 2 fit, the third does not, and nothing wraps. */
    assert_int_equal(pv_mac_alloc(&next, 100, 104, 2, &first), 0);
    assert_true(first == 100 && next == 102);
    assert_int_equal(pv_mac_alloc(&next, 100, 104, 2, &first), 0);
    assert_true(first == 102 && next == 104);
    assert_int_equal(pv_mac_alloc(&next, 100, 104, 2, &first), -1);
    assert_true(next == 104);
    assert_int_equal(pv_mac_alloc(&next, 100, 104, 1, &first), 0);
    assert_true(first == 104);
    assert_int_equal(pv_mac_alloc(&next, 100, 104, 1, &first), -1);
    next = PV_MAC_MAX;
    assert_int_equal(pv_mac_alloc(&next, 0, PV_MAC_MAX, 2, &first), -1); /* top of the space */
    char a[17], b[17];
    pv_device_id(a, "F1", "P", 1);
    pv_device_id(b, "F1", "P", 2);
    assert_int_equal(strlen(a), 16);
    assert_string_not_equal(a, b);
}

#define CONF_HEAD "[ledger]\npath = %s\n[ca]\ncert = %s\nkey = %s\n"
static const char *conf(const char *server, const char *products)
{
    static char text[2048];
    snprintf(text, sizeof text, "[server]\n%s\n" CONF_HEAD "%s", server, path_of("ledger.db"), path_of("ca.pem"),
             path_of("ca.key"), products);
    return write_file("pv.conf", text);
}

#define PRODUCT                                                                                                \
    "[product P1]\nserial_format = {product}-{yy}{ww}-{seq:06}\nmac_first = 02:00:00:00:00:00\n"               \
    "mac_last = 02:00:00:00:00:09\nmacs_per_unit = 2\nfactory_code = F1\n"

/* pv_config_load's error for a file that must be refused. */
static const char *config_error(const char *path)
{
    static char err[512];
    pv_config c;
    assert_int_equal(pv_config_load(&c, path, err, sizeof err), -1);
    return err;
}

/* "PATH<rest>": the message expected for the last conf(). */
static const char *at(const char *rest)
{
    static char want[512];
    snprintf(want, sizeof want, "%s%s", path_of("pv.conf"), rest);
    return want;
}

static char *printed(const pv_config *c)
{
    char *text = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&text, &len);
    pv_config_print(c, f);
    fclose(f);
    return text;
}

/* A minimal file gets every default of the tables; listen takes [v6]:0. */
static void test_config_defaults(void **s)
{
    pv_config c;
    char err[512];
    const char *path =
        conf("listen = [::1]:0", "[product P0]\nserial_format = {seq}\nfactory_code = F\nmacs_per_unit = 0\n");
    if (pv_config_load(&c, path, err, sizeof err)) fail_msg("%s", err);
    assert_string_equal(c.listen.host, "::1");
    assert_int_equal(c.listen.port, 0);
    assert_null(c.tls_cert);
    assert_int_equal(c.max_body, 16384);
    assert_int_equal(c.max_connections, 256);
    assert_int_equal(c.max_per_ip, 32);
    assert_int_equal(c.request_timeout, 10);
    assert_string_equal(c.station_eku, "1.3.6.1.5.5.7.3.2");
    assert_string_equal(c.ledger_path, path_of("ledger.db"));
    assert_int_equal(c.n_products, 1);
    const pv_product *pr = pv_config_product(&c, "P0");
    assert_non_null(pr);
    assert_int_equal(pr->cert_days, 3650);
    assert_int_equal(pr->allow_rekey, 1);
    assert_string_equal(pr->factory_code, "F");
    char *text = printed(&c);
    assert_non_null(strstr(text, "\nlisten = [::1]:0\n"));
    assert_non_null(strstr(text, "\n# tls_cert =\n"));
    assert_non_null(strstr(text, "\nrequest_timeout = 10\n"));
    assert_non_null(strstr(text, "\n[product P0]\n"));
    assert_non_null(strstr(text, "\n# mac_first =\n")); /* not given: no block, printed commented out */
    assert_non_null(strstr(text, "\nrekey = allow\n"));
    free(text);
    pv_config_free(&c);
    /* a product's keys override its defaults, and a repeated section adds to it */
    path = conf("listen = 127.0.0.1:8080\nmax_connections_per_ip = 4\nrequest_timeout = 600",
                PRODUCT "cert_days = 1\nrekey = deny\n[product P1]\nmacs_per_unit = 3\n");
    if (pv_config_load(&c, path, err, sizeof err)) fail_msg("%s", err);
    assert_int_equal(c.listen.port, 8080);
    assert_int_equal(c.max_per_ip, 4);
    assert_int_equal(c.request_timeout, 600);
    assert_int_equal(c.n_products, 1);
    assert_int_equal(c.products[0].macs_per_unit, 3);
    assert_int_equal(c.products[0].cert_days, 1);
    assert_int_equal(c.products[0].allow_rekey, 0);
    assert_true(c.products[0].mac_first == 0x020000000000ull && c.products[0].mac_last == 0x020000000009ull);
    pv_config_free(&c);
}

/* Errors of a single key name FILE:LINE, the section and the key. */
static void test_config_key_errors(void **s)
{
    assert_string_equal(config_error(conf("listen = 127.0.0.1:1\nmax_body = 100", PRODUCT)),
                        at(":3: [server] max_body: must be a whole number in 1024..1048576"));
    assert_string_equal(config_error(conf("listen = 127.0.0.1:1\nbogus = 1", PRODUCT)),
                        at(":3: unknown key \"bogus\" in [server]"));
    assert_string_equal(config_error(conf("listen = 127.0.0.1", PRODUCT)),
                        at(":2: [server] listen: must be host:port or [v6]:port (port 0: any free port, logged at "
                           "start)"));
    assert_string_equal(config_error(conf("listen = 127.0.0.1:1\nstation_eku = 1..3", PRODUCT)),
                        at(":3: [server] station_eku: must be a dotted OID such as 1.3.6.1.5.5.7.3.2 (clientAuth)"));
    assert_string_equal(config_error(conf("listen = 127.0.0.1:1", PRODUCT "rekey = maybe\n")),
                        at(":14: [product P1] rekey: must be allow or deny"));
    assert_string_equal(config_error(conf("listen = 127.0.0.1:1", "[product P1]\nserial_format = {yy}\n")),
                        at(":9: [product P1] serial_format: must contain {seq} exactly once"));
    assert_string_equal(config_error(conf("listen = 127.0.0.1:1", "[product P1]\nmac_first = 02:00\n")),
                        at(":9: [product P1] mac_first: must be a MAC address like 02:00:5e:10:00:00"));
    assert_string_equal(config_error(conf("listen = 127.0.0.1:1", "[product P1]\nfactory_code = 01234567890123456\n")),
                        at(":9: [product P1] factory_code: must be 1..16 characters"));
    assert_string_equal(config_error(conf("listen = 127.0.0.1:1", "[product ]\nfactory_code = F\n")),
                        at(":9: [product NAME]: a name of 1..32 characters"));
    assert_string_equal(config_error(conf("listen = 127.0.0.1:1", "[products]\nx = 1\n")),
                        at(":9: unknown section [products]"));
}

/* Required keys and the rules between keys, after the whole file. */
static void test_config_rules(void **s)
{
    assert_string_equal(config_error(conf("listen = 127.0.0.1:1", "[product P1]\nserial_format = {seq}\n")),
                        at(": [product P1] factory_code is required"));
    assert_string_equal(config_error(conf("tls_cert = a", PRODUCT)), at(": [server] listen is required"));
    assert_string_equal(config_error(conf("listen = 127.0.0.1:1", "")),
                        at(": at least one [product NAME] section is required"));
    assert_string_equal(config_error(conf("listen = 127.0.0.1:1\nmax_connections = 8", PRODUCT)),
                        at(": [server] max_connections_per_ip exceeds max_connections"));
    /* plain HTTP off loopback is refused */
    assert_non_null(strstr(config_error(conf("listen = 0.0.0.0:8080", PRODUCT)), "loopback only"));
    /* TLS without client_ca is refused: mTLS or nothing */
    assert_string_equal(config_error(conf("listen = 0.0.0.0:8443\ntls_cert = a\ntls_key = b", PRODUCT)),
                        at(": [server] tls_cert, tls_key and client_ca go together (mutual TLS)"));
    /* MACs per unit need a block: both ends */
    assert_string_equal(
        config_error(conf("listen = 127.0.0.1:1",
                          "[product P1]\nserial_format = {seq}\nfactory_code = F\nmac_last = 02:00:00:00:00:09\n")),
        at(": [product P1] mac_first and mac_last are required, mac_first <= mac_last"));
    /* two products' blocks may not overlap */
    assert_string_equal(config_error(conf("listen = 127.0.0.1:1",
                                          PRODUCT "[product P2]\nserial_format = X{seq}\nfactory_code = F1\n"
                                                  "mac_first = 02:00:00:00:00:05\nmac_last = 02:00:00:00:00:20\n")),
                        at(": [product P2] MAC block overlaps that of [product P1]"));
    /* unless one of them issues no MACs */
    pv_config c;
    char err[512];
    const char *path = conf("listen = 127.0.0.1:1", PRODUCT "[product P2]\nserial_format = X{seq}\nfactory_code = F1\n"
                                                            "mac_first = 02:00:00:00:00:05\nmac_last = "
                                                            "02:00:00:00:00:20\nmacs_per_unit = 0\n");
    if (pv_config_load(&c, path, err, sizeof err)) fail_msg("%s", err);
    pv_config_free(&c);
}

/* deploy/provisiond.conf, the commented reference, loads and documents
 * exactly the keys of the tables: every key pv_config_print names is in it
 * ("KEY = " or "# KEY = "), and every key it shows is printed. */
static void test_config_deploy_file(void **s)
{
    pv_config c;
    char err[512];
    if (pv_config_load(&c, SRC_DIR "/deploy/provisiond.conf", err, sizeof err)) fail_msg("%s", err);
    assert_non_null(pv_config_product(&c, "PCBA-100"));
    char *text = printed(&c);
    pv_config_free(&c);
    FILE *f = fopen(SRC_DIR "/deploy/provisiond.conf", "r");
    assert_non_null(f);
    char deploy[16384];
    size_t n = fread(deploy, 1, sizeof deploy - 1, f);
    fclose(f);
    deploy[n] = 0;
    /* "\nKEY = " of the one text found in the other, commented or not */
    const char *texts[2] = {text, deploy};
    int keys[2] = {0, 0};
    for (int t = 0; t < 2; t++) {
        char *copy = strdup(texts[t]), *save = NULL;
        for (char *line = strtok_r(copy, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
            char key[64], want[80], want_commented[80];
            int end = 0;
            if (sscanf(line + (strncmp(line, "# ", 2) == 0 ? 2 : 0), "%63[a-z_] =%n", key, &end) != 1 || !end)
                continue;
            snprintf(want, sizeof want, "\n%s =", key);
            snprintf(want_commented, sizeof want_commented, "\n# %s =", key);
            const char *other = texts[1 - t];
            if (!strstr(other, want) && !strstr(other, want_commented)) {
                if (t == 0) fail_msg("deploy/provisiond.conf lacks %s", key);
                fail_msg("deploy/provisiond.conf shows %s, which no table declares", key);
            }
            keys[t]++;
        }
        free(copy);
    }
    assert_true(keys[0] >= 19 && keys[1] >= 19);
    free(text);
}

/* A PEM CSR for k, signed by signer (k itself for a good one). */
static char *csr_of(EVP_PKEY *k, EVP_PKEY *signer)
{
    X509_REQ *r = X509_REQ_new();
    X509_REQ_set_pubkey(r, k);
    X509_REQ_sign(r, signer, EVP_sha256());
    BIO *b = BIO_new(BIO_s_mem());
    PEM_write_bio_X509_REQ(b, r);
    char *p;
    long n = BIO_get_mem_data(b, &p);
    char *out = strndup(p, (size_t)n);
    BIO_free(b);
    X509_REQ_free(r);
    return out;
}

static char *make_csr(EVP_PKEY **keep)
{
    EVP_PKEY *k = EVP_EC_gen("P-256");
    char *out = csr_of(k, k);
    if (keep) *keep = k;
    else EVP_PKEY_free(k);
    return out;
}

typedef struct fixture {
    pv_config cfg;
    pv_ca *ca;
    pv_ledger *l;
} fixture;

static void fx_open(fixture *f)
{
    char err[512];
    unlink(path_of("ledger.db"));
    unlink(path_of("ledger.db-wal"));
    unlink(path_of("ledger.db-shm"));
    assert_int_equal(pv_config_load(&f->cfg, conf("listen = 127.0.0.1:1", PRODUCT), err, sizeof err), 0);
    if (access(path_of("ca.pem"), F_OK) != 0)
        assert_int_equal(pv_ca_init(path_of("ca.pem"), path_of("ca.key"), "test CA", err, sizeof err), 0);
    assert_int_equal(pv_ca_init(path_of("ca.pem"), path_of("ca.key"), "again", err, sizeof err), -1);
    assert_non_null(f->ca = pv_ca_load(path_of("ca.pem"), path_of("ca.key"), err, sizeof err));
    assert_non_null(f->l = pv_ledger_open(path_of("ledger.db"), err, sizeof err));
}

static void fx_close(fixture *f)
{
    pv_ledger_close(f->l);
    pv_ca_free(f->ca);
    pv_config_free(&f->cfg);
}

static long audit(fixture *f)
{
    FILE *devnull = fopen("/dev/null", "w");
    long n = pv_ledger_audit(f->l, &f->cfg, f->ca, devnull);
    fclose(devnull);
    return n;
}

static pv_status issue(fixture *f, const char *board, const char *csr, pv_identity *id)
{
    char err[256];
    pv_request r = {"P1", board, "LOT1", "WO1", "st1", csr};
    return pv_ledger_issue(f->l, f->ca, &f->cfg.products[0], &r, id, err, sizeof err);
}

static int count(fixture *f, const char *table)
{
    sqlite3 *db;
    sqlite3_open(path_of("ledger.db"), &db);
    char sql[64];
    snprintf(sql, sizeof sql, "SELECT count(*) FROM %s", table);
    sqlite3_stmt *st;
    sqlite3_prepare_v2(db, sql, -1, &st, NULL);
    sqlite3_step(st);
    int n = sqlite3_column_int(st, 0);
    sqlite3_finalize(st);
    sqlite3_close(db);
    return n;
}

static void test_ledger_issue(void **s)
{
    fixture f;
    fx_open(&f);
    EVP_PKEY *k;
    char *csr = make_csr(&k);
    pv_identity a, b, c;
    assert_int_equal(issue(&f, "B1", csr, &a), PV_OK);
    assert_false(a.reused);
    assert_null(a.private_key);
    assert_int_equal(a.mac_count, 2);
    assert_true(a.mac_first == 0x020000000000ull);
    pv_pubkey kp;
    assert_int_equal(pv_pubkey_of(k, &kp), 0);
    assert_true(pv_cert_has_key(f.ca, a.certificate, &kp));
    /* The same board again: the same identity and the same certificate. */
    assert_int_equal(issue(&f, "B1", csr, &b), PV_OK);
    assert_true(b.reused);
    assert_string_equal(a.serial, b.serial);
    assert_string_equal(a.device_id, b.device_id);
    assert_string_equal(a.cert_serial, b.cert_serial);
    assert_true(a.mac_first == b.mac_first);
    pv_identity_clear(&b);
    /* The board lost its key: same serial, MACs, device id; a new certificate. */
    char *csr2 = make_csr(NULL);
    assert_int_equal(issue(&f, "B1", csr2, &b), PV_OK);
    assert_string_equal(a.serial, b.serial);
    assert_true(a.mac_first == b.mac_first);
    assert_string_not_equal(a.cert_serial, b.cert_serial);
    assert_string_equal(b.supersedes, a.cert_serial); /* a rekey, listing what it replaces */
    assert_int_equal(count(&f, "superseded"), 1);
    pv_identity_clear(&b);
    /* Server-generated key: returned, once. */
    assert_int_equal(issue(&f, "B2", NULL, &c), PV_OK);
    assert_non_null(c.private_key);
    assert_non_null(strstr(c.private_key, "PRIVATE KEY"));
    assert_string_not_equal(a.serial, c.serial);
    assert_true(c.mac_first == a.mac_first + 2);
    pv_identity_clear(&c);
    /* A CSR that does not parse, or whose signature fails: nothing written. */
    int units = count(&f, "units"), iss = count(&f, "issuances");
    assert_int_equal(issue(&f, "B3", "garbage", &c), PV_BAD_REQUEST);
    char *tampered = strdup(csr);
    char *mid = tampered + strlen(tampered) / 2;
    *mid = *mid == 'A' ? 'B' : 'A';
    assert_int_equal(issue(&f, "B3", tampered, &c), PV_BAD_REQUEST);
    assert_int_equal(count(&f, "units"), units);
    assert_int_equal(count(&f, "issuances"), iss);
    /* The block of 10 MACs holds 5 units: B1, B2, then three more, then no more. */
    for (int i = 0; i < 3; i++) {
        char board[16];
        snprintf(board, sizeof board, "C%d", i);
        assert_int_equal(issue(&f, board, NULL, &c), PV_OK);
        pv_identity_clear(&c);
    }
    assert_int_equal(issue(&f, "C9", NULL, &c), PV_CONFLICT);
    assert_int_equal(count(&f, "units"), 5);
    /* ...and an issued board still gets its identity back. */
    assert_int_equal(issue(&f, "C0", NULL, &c), PV_OK);
    pv_identity_clear(&c);
    assert_int_equal(audit(&f), 0);
    pv_identity_clear(&a);
    free(csr);
    free(csr2);
    free(tampered);
    EVP_PKEY_free(k);
    fx_close(&f);
}

/* CSR keys: P-256 in either point encoding is taken as it is and certified;
 * another curve, a broken signature or no CSR at all is refused with why. */
static void test_csr_keys(void **s)
{
    fixture f;
    fx_open(&f);
    char err[256];
    pv_pubkey got, want;
    EVP_PKEY *k = EVP_EC_gen("P-256");
    char *csr = csr_of(k, k);
    assert_int_equal(pv_csr_pubkey(f.ca, csr, &got, err, sizeof err), 0);
    assert_int_equal(pv_pubkey_of(k, &want), 0);
    assert_int_equal(got.len, 65);
    assert_memory_equal(got.point, want.point, 65);
    free(csr);
    /* compressed: the certificate carries the same 33 bytes, and is the same key */
    assert_int_equal(EVP_PKEY_set_utf8_string_param(k, OSSL_PKEY_PARAM_EC_POINT_CONVERSION_FORMAT, "compressed"), 1);
    csr = csr_of(k, k);
    assert_int_equal(pv_csr_pubkey(f.ca, csr, &got, err, sizeof err), 0);
    assert_int_equal(got.len, 33);
    char serial[41];
    char *cert = pv_ca_sign(f.ca, &got, "S1", "F1", 10, serial, err, sizeof err);
    assert_non_null(cert);
    assert_true(pv_cert_has_key(f.ca, cert, &want));
    assert_int_equal(pv_ca_check_cert(f.ca, cert, "S1", serial, err, sizeof err), 0);
    free(cert);
    free(csr);
    /* the signature must be the key's own */
    EVP_PKEY *other = EVP_EC_gen("P-256");
    csr = csr_of(k, other);
    assert_int_equal(pv_csr_pubkey(f.ca, csr, &got, err, sizeof err), -1);
    assert_non_null(strstr(err, "does not verify"));
    free(csr);
    EVP_PKEY_free(other);
    EVP_PKEY_free(k);
    k = EVP_EC_gen("P-384");
    csr = csr_of(k, k);
    assert_int_equal(pv_csr_pubkey(f.ca, csr, &got, err, sizeof err), -1);
    assert_string_equal(err, "csr key must be EC P-256");
    free(csr);
    EVP_PKEY_free(k);
    const char *junk = "-----BEGIN CERTIFICATE REQUEST-----\nAAAA\n-----END CERTIFICATE REQUEST-----\n";
    assert_int_equal(pv_csr_pubkey(f.ca, junk, &got, err, sizeof err), -1);
    assert_non_null(strstr(err, "does not parse"));
    fx_close(&f);
}

/* Issues a few units, applies one corruption with the sqlite3 API behind the
 * server's back, and expects the audit to find it. */
static void corrupt_and_audit(const char *sql)
{
    fixture f;
    fx_open(&f);
    pv_identity id;
    const char *boards[] = {"B1", "B2", "B3"};
    for (int i = 0; i < 3; i++) {
        assert_int_equal(issue(&f, boards[i], NULL, &id), PV_OK);
        pv_identity_clear(&id);
    }
    assert_int_equal(audit(&f), 0);
    sqlite3 *db;
    assert_int_equal(sqlite3_open(path_of("ledger.db"), &db), SQLITE_OK);
    char *msg = NULL;
    int rc = sqlite3_exec(db, sql, NULL, NULL, &msg);
    if (rc != SQLITE_OK) fail_msg("%s: %s (%d)", sql, msg ? msg : "?", rc);
    sqlite3_close(db);
    long n = audit(&f);
    if (n <= 0) fail_msg("audit found nothing after: %s", sql);
    fx_close(&f);
}

static void test_audit_finds_corruption(void **s)
{
    /* counter set back: the next issuance would repeat a serial */
    corrupt_and_audit("UPDATE counters SET next_seq = 2");
    corrupt_and_audit("UPDATE counters SET next_mac = next_mac - 2");
    /* duplicate serial, in a table rebuilt without its UNIQUE constraints */
    corrupt_and_audit("CREATE TABLE u2 AS SELECT * FROM units; DROP TABLE units; ALTER TABLE u2 RENAME TO units; "
                      "UPDATE units SET serial = (SELECT serial FROM units WHERE id = 1) WHERE id = 2");
    /* a MAC range moved outside the block, or onto another unit's */
    corrupt_and_audit("UPDATE units SET mac_first = mac_first + 1000 WHERE id = 3");
    corrupt_and_audit("UPDATE units SET mac_first = (SELECT mac_first FROM units WHERE id = 1) WHERE id = 2");
    /* a certificate that no longer parses, or is not the CA's */
    corrupt_and_audit("UPDATE certs SET pem = replace(pem, 'MII', 'MIJ') WHERE rowid = 1");
    corrupt_and_audit("UPDATE units SET device_id = 'FFFFFFFFFFFFFFFF' WHERE id = 2");
}

/* Rekey denied by the product's configuration: 409, nothing written. */
static void test_rekey_denied(void **s)
{
    fixture f;
    fx_open(&f);
    f.cfg.products[0].allow_rekey = 0;
    pv_identity a, b;
    char *csr = make_csr(NULL), *csr2 = make_csr(NULL);
    assert_int_equal(issue(&f, "K1", csr, &a), PV_OK);
    int certs = count(&f, "certs"), iss = count(&f, "issuances");
    assert_int_equal(issue(&f, "K1", csr, &b), PV_OK); /* the same key: the same certificate, not a rekey */
    assert_string_equal(a.cert_serial, b.cert_serial);
    pv_identity_clear(&b);
    assert_int_equal(issue(&f, "K1", csr2, &b), PV_CONFLICT);
    assert_int_equal(issue(&f, "K1", NULL, &b), PV_CONFLICT); /* a server key would be a rekey too */
    assert_int_equal(count(&f, "certs"), certs);
    assert_int_equal(count(&f, "issuances"), iss + 1);
    assert_int_equal(count(&f, "superseded"), 0);
    pv_identity_clear(&a);
    free(csr);
    free(csr2);
    fx_close(&f);
}

/* Fault injection through pv_ledger_test_hook. */
static struct {
    fixture *f;
    sem_t finished;
    char serial_b[128];
    int rollback_at_join, fail_signing;
    pv_status status_b, get_b_during;
} inj;

static void *issue_b(void *arg)
{
    pv_identity id;
    inj.status_b = issue(inj.f, "GB", NULL, &id);
    pv_identity_clear(&id);
    return NULL;
}

static int hook(sqlite3 *db, const char *point, const pv_request *req)
{
    if (strcmp(point, "joined") == 0 && inj.rollback_at_join) {
        /* What SQLite does by itself after SQLITE_FULL or SQLITE_IOERR in a
         * transaction: the batch's transaction is gone. */
        inj.rollback_at_join = 0;
        assert_int_equal(sqlite3_exec(db, "ROLLBACK", NULL, NULL, NULL), SQLITE_OK);
    }
    if (strcmp(point, "finished") == 0 && strcmp(req->board_id, "GB") == 0) {
        sqlite3_stmt *st;
        sqlite3_prepare_v2(db, "SELECT serial FROM units WHERE board_id='GB'", -1, &st, NULL);
        if (sqlite3_step(st) == SQLITE_ROW)
            snprintf(inj.serial_b, sizeof inj.serial_b, "%s", (const char *)sqlite3_column_text(st, 0));
        sqlite3_finalize(st);
        sem_post(&inj.finished);
    }
    if (strcmp(point, "signed") == 0 && strcmp(req->board_id, "GA") == 0) {
        /* GA is signing; GB joins the same batch and writes all its rows. */
        pthread_t t;
        pthread_create(&t, NULL, issue_b, NULL);
        pthread_detach(t);
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        ts.tv_sec += 10;
        assert_int_equal(sem_timedwait(&inj.finished, &ts), 0);
        pv_identity id;
        char err[160];
        inj.get_b_during = pv_ledger_get(inj.f->l, &inj.f->cfg, inj.serial_b, &id, err, sizeof err);
        pv_identity_clear(&id);
        return 1; /* GA's signing fails: the batch, GB's rows with it, is rolled back */
    }
    if (strcmp(point, "signed") == 0 && inj.fail_signing) return inj.fail_signing--, 1;
    return 0;
}

/* GET must not return an identity of a batch that is not committed, and
 * that batch may yet be rolled back. */
static void test_get_sees_committed_only(void **s)
{
    fixture f;
    fx_open(&f);
    memset(&inj, 0, sizeof inj);
    inj.f = &f;
    sem_init(&inj.finished, 0, 0);
    pv_ledger_test_hook = hook;
    pv_identity a;
    assert_int_equal(issue(&f, "GA", NULL, &a), PV_INTERNAL);
    for (int i = 0; i < 500 && inj.status_b == PV_OK; i++) usleep(10000); /* GB answers after the rollback */
    pv_ledger_test_hook = NULL;
    assert_true(inj.serial_b[0]);
    assert_int_equal(inj.get_b_during, PV_NOT_FOUND);
    assert_int_equal(inj.status_b, PV_INTERNAL);
    pv_identity id;
    char err[160];
    assert_int_equal(pv_ledger_get(f.l, &f.cfg, inj.serial_b, &id, err, sizeof err), PV_NOT_FOUND);
    assert_int_equal(count(&f, "units"), 0);
    /* asked again, both get identities, and GET finds them */
    assert_int_equal(issue(&f, "GB", NULL, &a), PV_OK);
    assert_int_equal(pv_ledger_get(f.l, &f.cfg, a.serial, &id, err, sizeof err), PV_OK);
    assert_string_equal(id.cert_serial, a.cert_serial);
    pv_identity_clear(&id);
    pv_identity_clear(&a);
    assert_int_equal(audit(&f), 0);
    sem_destroy(&inj.finished);
    fx_close(&f);
}

/* SQLite rolled the batch back by itself (after SQLITE_FULL or IOERR): the
 * request fails, nothing of it is committed behind the batch's back, and the
 * board is issued when it asks again instead of being refused for ever. */
static void test_auto_rollback_detected(void **s)
{
    fixture f;
    fx_open(&f);
    memset(&inj, 0, sizeof inj);
    inj.f = &f;
    pv_ledger_test_hook = hook;
    pv_identity a, b;
    assert_int_equal(issue(&f, "R0", NULL, &a), PV_OK); /* a healthy batch first */
    inj.rollback_at_join = 1;
    inj.fail_signing = 1;
    assert_int_equal(issue(&f, "R1", NULL, &b), PV_INTERNAL);
    assert_int_equal(count(&f, "units"), 1);
    pv_ledger_test_hook = NULL;
    assert_int_equal(issue(&f, "R1", NULL, &b), PV_OK);
    assert_false(b.reused);
    assert_int_equal(count(&f, "units"), 2);
    assert_int_equal(audit(&f), 0);
    pv_identity_clear(&a);
    pv_identity_clear(&b);
    fx_close(&f);
}

int main(void)
{
    if (tmpdir_make(&tmp, "test_provisiond") != 0) return 1;
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_serial_format),
        cmocka_unit_test(test_mac),
        cmocka_unit_test(test_config_defaults),
        cmocka_unit_test(test_config_key_errors),
        cmocka_unit_test(test_config_rules),
        cmocka_unit_test(test_config_deploy_file),
        cmocka_unit_test(test_ledger_issue),
        cmocka_unit_test(test_csr_keys),
        cmocka_unit_test(test_audit_finds_corruption),
        cmocka_unit_test(test_rekey_denied),
        cmocka_unit_test(test_get_sees_committed_only),
        cmocka_unit_test(test_auto_rollback_detected),
    };
    int rc = cmocka_run_group_tests(tests, NULL, NULL);
    if (tmpdir_remove(&tmp) != 0) rc = rc ? rc : 1;
    return rc;
}
