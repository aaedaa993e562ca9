/* SPDX-License-Identifier: Apache-2.0 */
/* test_provision_answer.c - the agent's reading of provisiond's answers
 * (provision_answer_parse): a good identity is taken; every string the
 * server sends must fit its character set (a serial starting with '-' would
 * be an option to a vendor program); status codes map to refused or
 * unavailable. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <string.h>

#include "provision_client.h"

/* A certificate, JSON-escaped: an answer must hold one that parses. */
static const char cert_json[] = "-----BEGIN CERTIFICATE-----\\nMIIBbTCCAROgAwIBAgIUYO+IuTunh2NIZvhD9CBNa3Qfg1wwCgYIKoZIzj0EAwIw\\nDDEKMAgGA1UEAwwBeDAeFw0yNjEyMDQxNDQ5NDVaFw0yNjEyMDUxNDQ5NDVaMAwx\\nCjAIBgNVBAMMAXgwWTATBgcqhkjOPQIBBggqhkjOPQMBBwNCAATBU1IZfSvHY39Z\\nHN8v/57sC7wVK/Vim8XOA4NAy4KjZtwWsGhdOlEmgnLR4dUMdrjxTuL6K0z1F6WD\\nU8CRbn94o1MwUTAdBgNVHQ4EFgQUJ9xmyUbwuktQck0MHppeulwaEPswHwYDVR0j\\nBBgwFoAUJ9xmyUbwuktQck0MHppeulwaEPswDwYDVR0TAQH/BAUwAwEB/zAKBggq\\nhkjOPQQDAgNIADBFAiEAnjntCU0/usARTb2EzzsFOUvNuQnJygz221WTXYzjA4cC\\nIB6pFPTLN6x3HpBfayxug7lgLVdLnrSGI2qPBxMEM4fi\\n-----END CERTIFICATE-----\\n";

static provision_status answer(const char *serial, const char *mac, const char *factory, long code)
{
    static char body[4096];
    snprintf(body, sizeof body,
             "{\"serial\":\"%s\",\"device_id\":\"0123456789ABCDEF\",\"macs\":[\"%s\"],\"certificate\":\"%s\","
             "\"ca_chain\":\"x\",\"issued_at\":\"2026-01-01T00:00:00.000Z\",\"factory_code\":\"%s\"}",
             serial, mac, cert_json, factory);
    provision_identity id;
    char reason[256] = "";
    provision_status st = provision_answer_parse(body, strlen(body), code, &id, reason, sizeof reason);
    if (st == PROVISION_OK) {
        assert_string_equal(id.serial, serial);
        assert_int_equal(strlen(id.cert_sha256), 64);
        provision_identity_clear(&id);
    } else if (code >= 200 && code < 300)
        assert_non_null(strstr(reason, "server answer"));
    return st;
}

static void test_answers(void **state)
{
    (void)state;
    assert_int_equal(answer("PCBA-100-2601-000001", "02:00:5e:00:00:00", "F01", 201), PROVISION_OK);
    /* strings outside their character sets are refused, not passed on */
    assert_int_equal(answer("-rf", "02:00:5e:00:00:00", "F01", 201), PROVISION_REFUSED);
    assert_int_equal(answer("--serial=x", "02:00:5e:00:00:00", "F01", 200), PROVISION_REFUSED);
    assert_int_equal(answer("S 1", "02:00:5e:00:00:00", "F01", 200), PROVISION_REFUSED);
    assert_int_equal(answer("S;rm", "02:00:5e:00:00:00", "F01", 200), PROVISION_REFUSED);
    assert_int_equal(answer("S1", "02:00:5e:00:00:0g", "F01", 200), PROVISION_REFUSED);
    assert_int_equal(answer("S1", "-2:00:5e:00:00:00", "F01", 200), PROVISION_REFUSED);
    assert_int_equal(answer("S1", "02:00:5e:00:00:00", "-F", 200), PROVISION_REFUSED);
    assert_int_equal(answer("S1", "02:00:5e:00:00:00", "F 1", 200), PROVISION_REFUSED);
    /* status codes */
    provision_identity id;
    char reason[256];
    const char *err = "{\"error\":\"no\"}";
    assert_int_equal(provision_answer_parse(err, strlen(err), 409, &id, reason, sizeof reason), PROVISION_REFUSED);
    assert_non_null(strstr(reason, "HTTP 409: no"));
    assert_int_equal(provision_answer_parse(err, strlen(err), 429, &id, reason, sizeof reason), PROVISION_UNAVAILABLE);
    assert_int_equal(provision_answer_parse(err, strlen(err), 503, &id, reason, sizeof reason), PROVISION_UNAVAILABLE);
    assert_int_equal(provision_answer_parse("[]", 2, 200, &id, reason, sizeof reason), PROVISION_UNAVAILABLE);
    assert_int_equal(provision_answer_parse(NULL, 0, 0, &id, reason, sizeof reason), PROVISION_UNAVAILABLE);
}

int main(void)
{
    const struct CMUnitTest tests[] = {cmocka_unit_test(test_answers)};
    return cmocka_run_group_tests(tests, NULL, NULL);
}
