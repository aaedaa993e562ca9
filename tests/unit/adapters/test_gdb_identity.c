/* SPDX-License-Identifier: Apache-2.0 */
/* test_gdb_identity.c - the gdb adapter's identity record: encoded and
 * parsed back, and refused when truncated, with a bad CRC, another version
 * or magic, a bad field; an optional unknown field is skipped. The byte
 * layout asserted here is the one adapters/README.md documents. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <string.h>
#include <zlib.h>

#include "gdb_identity.h"

static const char sha[] = "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff";
static const char macs[2][18] = {"02:00:00:00:00:01", "02:0a:bc:de:f0:99"};

static size_t encode(uint8_t *rec)
{
    adapter_identity id = {.serial = "PCBA-100-F1-000042", .device_id = "dev-42", .factory_code = "F1",
                           .macs = macs, .n_macs = 2, .cert_sha256 = sha};
    size_t n = 0;
    char err[128];
    assert_int_equal(gdb_identity_encode(&id, rec, GDB_IDENTITY_MAX, &n, err, sizeof err), 0);
    return n;
}

/* Re-seals a record edited by a test (so only the edit is wrong). */
static void reseal(uint8_t *rec, size_t n)
{
    uint32_t c = (uint32_t)crc32(0L, rec, (uInt)(n - 4));
    for (int i = 0; i < 4; i++) rec[n - 4 + (size_t)i] = (uint8_t)(c >> (8 * i));
}

static void test_good_record_layout_and_parse(void **state)
{
    (void)state;
    uint8_t rec[GDB_IDENTITY_MAX];
    size_t n = encode(rec);
    /* header: magic, version 1, flags 0, total length (LE) */
    assert_memory_equal(rec, "LAID", 4);
    assert_int_equal(rec[4], 1);
    assert_int_equal(rec[5], 0);
    assert_int_equal(rec[6] | rec[7] << 8, n);
    /* 8 + serial (2+18) + device id (2+6) + 2 MACs (2 * 8) + SHA-256 (2+32) + factory code (2+2) + CRC 4 */
    assert_int_equal(n, 8 + 20 + 8 + 16 + 34 + 4 + 4);
    assert_int_equal(rec[8], GDB_ID_T_SERIAL);
    assert_int_equal(rec[9], 18);
    assert_memory_equal(rec + 10, "PCBA-100-F1-000042", 18);
    uint32_t c = (uint32_t)crc32(0L, rec, (uInt)(n - 4));
    assert_int_equal(rec[n - 4] | rec[n - 3] << 8 | rec[n - 2] << 16 | (uint32_t)rec[n - 1] << 24, c);
    assert_int_equal(gdb_identity_total(rec, GDB_IDENTITY_HEADER), (long)n);
    adapter_result r = {0};
    char err[200] = "";
    assert_int_equal(gdb_identity_parse(rec, n, &r, err, sizeof err), GDB_ID_OK);
    assert_string_equal(r.serial, "PCBA-100-F1-000042");
    assert_string_equal(r.device_id, "dev-42");
    assert_int_equal(r.n_macs, 2);
    assert_string_equal(r.macs[0], macs[0]);
    assert_string_equal(r.macs[1], macs[1]);
    assert_string_equal(r.cert_sha256, sha);
    /* bytes after the record (the rest of the read) are ignored */
    rec[n] = 0xee;
    assert_int_equal(gdb_identity_parse(rec, n + 1, &r, err, sizeof err), GDB_ID_OK);
}

static void test_truncated(void **state)
{
    (void)state;
    uint8_t rec[GDB_IDENTITY_MAX];
    size_t n = encode(rec);
    adapter_result r = {0};
    char err[200] = "";
    assert_int_equal(gdb_identity_parse(rec, n - 1, &r, err, sizeof err), GDB_ID_ETRUNCATED);
    assert_non_null(strstr(err, "truncated"));
    assert_string_equal(r.serial, "");
    assert_int_equal(gdb_identity_parse(rec, 5, &r, err, sizeof err), GDB_ID_ETRUNCATED);
    assert_int_equal(gdb_identity_total(rec, 7), GDB_ID_ETRUNCATED);
    /* a field that claims more than the record holds */
    rec[9] = 200;
    reseal(rec, n);
    assert_int_equal(gdb_identity_parse(rec, n, &r, err, sizeof err), GDB_ID_EFIELD);
    /* a declared length below the minimum or above the maximum */
    n = encode(rec);
    rec[6] = 11;
    rec[7] = 0;
    assert_int_equal(gdb_identity_parse(rec, n, &r, err, sizeof err), GDB_ID_ELENGTH);
    rec[6] = 0x01;
    rec[7] = 0x02; /* 513 */
    assert_int_equal(gdb_identity_total(rec, 8), GDB_ID_ELENGTH);
}

static void test_bad_crc(void **state)
{
    (void)state;
    uint8_t rec[GDB_IDENTITY_MAX];
    size_t n = encode(rec);
    adapter_result r = {0};
    char err[200] = "";
    rec[12] ^= 0x01; /* one bit of the serial */
    assert_int_equal(gdb_identity_parse(rec, n, &r, err, sizeof err), GDB_ID_ECRC);
    assert_non_null(strstr(err, "CRC-32"));
    assert_string_equal(r.serial, "");
    rec[12] ^= 0x01;
    rec[n - 1] ^= 0x80; /* the CRC itself */
    assert_int_equal(gdb_identity_parse(rec, n, &r, err, sizeof err), GDB_ID_ECRC);
}

static void test_bad_version_and_magic(void **state)
{
    (void)state;
    uint8_t rec[GDB_IDENTITY_MAX];
    size_t n = encode(rec);
    adapter_result r = {0};
    char err[200] = "";
    rec[4] = 2;
    reseal(rec, n);
    assert_int_equal(gdb_identity_parse(rec, n, &r, err, sizeof err), GDB_ID_EVERSION);
    assert_non_null(strstr(err, "version 2"));
    n = encode(rec);
    memset(rec, 0xff, 4); /* erased flash */
    assert_int_equal(gdb_identity_parse(rec, n, &r, err, sizeof err), GDB_ID_EMAGIC);
}

static void test_fields(void **state)
{
    (void)state;
    uint8_t rec[GDB_IDENTITY_MAX];
    size_t n = encode(rec);
    adapter_result r = {0};
    char err[200] = "";
    /* the factory code's type 0x80 -> 0x81: optional, unknown, skipped */
    size_t fc = n - 4 - 4;
    assert_int_equal(rec[fc], GDB_ID_T_FACTORY_CODE);
    rec[fc] = 0x81;
    reseal(rec, n);
    assert_int_equal(gdb_identity_parse(rec, n, &r, err, sizeof err), GDB_ID_OK);
    /* an unknown type below 0x80 is refused */
    rec[fc] = 0x7f;
    reseal(rec, n);
    assert_int_equal(gdb_identity_parse(rec, n, &r, err, sizeof err), GDB_ID_EFIELD);
    /* a second serial (the device id's type changed to the serial's) */
    n = encode(rec);
    rec[8 + 20] = GDB_ID_T_SERIAL;
    reseal(rec, n);
    assert_int_equal(gdb_identity_parse(rec, n, &r, err, sizeof err), GDB_ID_EFIELD);
    /* a control character in the serial */
    n = encode(rec);
    rec[10] = '\n';
    reseal(rec, n);
    assert_int_equal(gdb_identity_parse(rec, n, &r, err, sizeof err), GDB_ID_EFIELD);
    /* encoding refuses what it cannot represent */
    adapter_identity id = {.serial = "S", .device_id = "D", .macs = macs, .n_macs = 1, .cert_sha256 = "zz"};
    size_t len;
    assert_int_equal(gdb_identity_encode(&id, rec, sizeof rec, &len, err, sizeof err), -1);
    static const char badmac[1][18] = {"02-00-00-00-00-01"};
    id.cert_sha256 = sha;
    id.macs = badmac;
    assert_int_equal(gdb_identity_encode(&id, rec, sizeof rec, &len, err, sizeof err), -1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_good_record_layout_and_parse),
        cmocka_unit_test(test_truncated),
        cmocka_unit_test(test_bad_crc),
        cmocka_unit_test(test_bad_version_and_magic),
        cmocka_unit_test(test_fields),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
