/* SPDX-License-Identifier: Apache-2.0 */
/* test_release_sig.c - signed releases: manifests signed with the plain
 * openssl commands release_sig.h documents (Ed25519 and ECDSA P-256) are
 * accepted; a signature by a key the agent does not hold, a manifest
 * altered after signing, a missing or garbled signature are refused; keys
 * of other algorithms are refused at load. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "release_sig.h"

static char dir[64];

static void sh(const char *fmt, ...)
{
    char cmd[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(cmd, sizeof cmd, fmt, ap);
    va_end(ap);
    assert_int_equal(system(cmd), 0);
}

static int setup(void **state)
{
    (void)state;
    snprintf(dir, sizeof dir, "/tmp/test-relsig-XXXXXX");
    assert_non_null(mkdtemp(dir));
    sh("cd %s && openssl genpkey -algorithm ed25519 -out ed.pem && openssl pkey -in ed.pem -pubout -out ed.pub && "
       "openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out p256.pem && "
       "openssl pkey -in p256.pem -pubout -out p256.pub && openssl genpkey -algorithm ed25519 -out other.pem && "
       "openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:1024 -out rsa.pem 2>/dev/null && "
       "openssl pkey -in rsa.pem -pubout -out rsa.pub && cat ed.pub p256.pub >team.pub", dir);
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    sh("rm -rf %s", dir);
    return 0;
}

typedef struct order_fx {
    JobOrder o;
    Lineagent__V1__FirmwareRelease fw;
    char sig[512];
} order_fx;

static void order_init(order_fx *f)
{
    lineagent__v1__job_order__init(&f->o);
    lineagent__v1__firmware_release__init(&f->fw);
    f->o.product = "PCBA-100";
    f->fw.version = "3.1.0";
    f->fw.sha256 = "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08";
    f->fw.build = LINEAGENT__V1__BUILD__PRODUCTION;
    f->sig[0] = 0;
    f->fw.signature = f->sig;
    f->o.firmware = &f->fw;
}

/* Signs o's manifest as the release team would, with the documented command. */
static void sign(order_fx *f, const char *key, int ed25519)
{
    char manifest[512], path[128];
    size_t len = release_manifest(&f->o, manifest, sizeof manifest);
    assert_true(len > 0);
    snprintf(path, sizeof path, "%s/manifest", dir);
    FILE *m = fopen(path, "w");
    fwrite(manifest, 1, len, m);
    fclose(m);
    if (ed25519) sh("cd %s && openssl pkeyutl -sign -rawin -inkey %s -in manifest | base64 -w0 >sig", dir, key);
    else sh("cd %s && openssl dgst -sha256 -sign %s manifest | base64 -w0 >sig", dir, key);
    snprintf(path, sizeof path, "%s/sig", dir);
    m = fopen(path, "r");
    size_t n = fread(f->sig, 1, sizeof f->sig - 1, m);
    f->sig[n] = 0;
    fclose(m);
}

static release_keys *team(void)
{
    char paths[256], err[256] = "";
    snprintf(paths, sizeof paths, "%s/team.pub", dir);
    release_keys *k = release_keys_load(paths, err, sizeof err);
    if (!k) print_error("%s\n", err);
    assert_non_null(k);
    assert_int_equal(release_keys_count(k), 2);
    return k;
}

static void test_manifest_canonical(void **state)
{
    (void)state;
    order_fx f;
    order_init(&f);
    char m[512];
    release_manifest(&f.o, m, sizeof m);
    assert_string_equal(m, "lineagent-release-manifest-v1\nproduct=PCBA-100\nversion=3.1.0\n"
                           "sha256=9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08\n"
                           "build=PRODUCTION\n");
}

static void test_good_signatures(void **state)
{
    (void)state;
    release_keys *k = team();
    order_fx f;
    order_init(&f);
    char reason[256];
    sign(&f, "ed.pem", 1);
    assert_int_equal(release_sig_check(k, &f.o, reason, sizeof reason), 0);
    sign(&f, "p256.pem", 0);
    assert_int_equal(release_sig_check(k, &f.o, reason, sizeof reason), 0);
    release_keys_free(k);
}

static void test_other_key_refused(void **state)
{
    (void)state;
    release_keys *k = team();
    order_fx f;
    order_init(&f);
    char reason[256];
    sign(&f, "other.pem", 1);
    assert_int_equal(release_sig_check(k, &f.o, reason, sizeof reason), -1);
    assert_non_null(strstr(reason, "not a signature by any of the 2 release keys"));
    release_keys_free(k);
}

static void test_altered_manifest_refused(void **state)
{
    (void)state;
    release_keys *k = team();
    order_fx f;
    order_init(&f);
    char reason[256];
    sign(&f, "ed.pem", 1);
    f.fw.sha256 = "0f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"; /* another image */
    assert_int_equal(release_sig_check(k, &f.o, reason, sizeof reason), -1);
    f.fw.sha256 = "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08";
    f.fw.build = LINEAGENT__V1__BUILD__DEBUG; /* a debug build passed off under a production signature */
    assert_int_equal(release_sig_check(k, &f.o, reason, sizeof reason), -1);
    f.fw.build = LINEAGENT__V1__BUILD__PRODUCTION;
    sign(&f, "p256.pem", 0);
    f.o.product = "PCBA-200"; /* another product */
    assert_int_equal(release_sig_check(k, &f.o, reason, sizeof reason), -1);
    release_keys_free(k);
}

static void test_missing_or_garbled(void **state)
{
    (void)state;
    release_keys *k = team();
    order_fx f;
    order_init(&f);
    char reason[256];
    assert_int_equal(release_sig_check(k, &f.o, reason, sizeof reason), -1);
    assert_non_null(strstr(reason, "firmware.signature missing"));
    snprintf(f.sig, sizeof f.sig, "not base64!");
    assert_int_equal(release_sig_check(k, &f.o, reason, sizeof reason), -1);
    assert_non_null(strstr(reason, "not base64"));
    release_keys_free(k);
}

static void test_key_loading(void **state)
{
    (void)state;
    char paths[256], err[256] = "";
    snprintf(paths, sizeof paths, "%s/rsa.pub", dir);
    assert_null(release_keys_load(paths, err, sizeof err));
    assert_non_null(strstr(err, "neither Ed25519 nor ECDSA P-256"));
    snprintf(paths, sizeof paths, "%s/ed.pub, %s/p256.pub", dir, dir);
    release_keys *k = release_keys_load(paths, err, sizeof err);
    assert_int_equal(release_keys_count(k), 2);
    release_keys_free(k);
    snprintf(paths, sizeof paths, "%s/manifest", dir); /* no key in it */
    assert_null(release_keys_load(paths, err, sizeof err));
    assert_non_null(strstr(err, "no PEM public key"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_manifest_canonical),   cmocka_unit_test(test_good_signatures),
        cmocka_unit_test(test_other_key_refused),    cmocka_unit_test(test_altered_manifest_refused),
        cmocka_unit_test(test_missing_or_garbled),   cmocka_unit_test(test_key_loading),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
