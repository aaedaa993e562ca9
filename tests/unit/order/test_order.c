/* SPDX-License-Identifier: Apache-2.0 */
/* test_order.c - job order decoding (protobuf and proto3 JSON), the
 * validation rules (test items, test plan and calibration limit included)
 * and the step vocabulary (order.c, order_json.c). */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "order.h"

#define SHA_ABC "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"

static const char valid_camel[] =
    "{\n"
    "  \"orderId\": \"ORD-2024-0001\",\n"
    "  \"revision\": 2,\n"
    "  \"lotId\": \"LOT/A:17\",\n"
    "  \"product\": \"PCBA-77.rev_b\",\n"
    "  \"quantity\": 250,\n"
    "  \"firmware\": {\"version\": \"1.4.2+g1a2b\", \"sha256\": \"" SHA_ABC "\",\n"
    "               \"url\": \"https://fw.example.com/1.4.2.bin\", \"build\": \"PRODUCTION\"},\n"
    "  \"flow\": [\"TEST\", \"WRITE\", \"VERIFY\", \"LOCK\"]\n"
    "}\n";

static const char valid_snake[] =
    "  {\"order_id\": \"ORD-2024-0001\", \"revision\": 2, \"lot_id\": \"LOT/A:17\",\n"
    "   \"product\": \"PCBA-77.rev_b\", \"quantity\": 250,\n"
    "   \"firmware\": {\"version\": \"1.4.2+g1a2b\", \"sha256\": \"" SHA_ABC "\",\n"
    "                \"url\": \"https://fw.example.com/1.4.2.bin\", \"build\": \"PRODUCTION\"},\n"
    "   \"flow\": [\"TEST\", \"WRITE\", \"VERIFY\", \"LOCK\"]}";

static const order_limits limits = {.max_quantity = 100000};

static void expect_in(const char *haystack, const char *needle)
{
    if (!strstr(haystack, needle)) {
        print_error("expected \"%s\" in reason \"%s\"\n", needle, haystack);
        fail();
    }
}

static JobOrder *parse_str(const char *s, char *reason, size_t reason_len)
{
    reason[0] = '\0';
    return order_parse(s, strlen(s), reason, reason_len);
}

/* Parsing must fail, with every needle in the reason. */
static void expect_parse_error(const char *payload, const char *needle1, const char *needle2)
{
    char reason[512];
    JobOrder *o = parse_str(payload, reason, sizeof reason);
    if (o) {
        print_error("payload unexpectedly parsed: %s\n", payload);
        order_free(o);
        fail();
    }
    expect_in(reason, needle1);
    if (needle2) expect_in(reason, needle2);
}

static void assert_reference_fields(const JobOrder *o)
{
    assert_non_null(o);
    assert_string_equal(o->order_id, "ORD-2024-0001");
    assert_int_equal(o->revision, 2);
    assert_string_equal(o->lot_id, "LOT/A:17");
    assert_string_equal(o->product, "PCBA-77.rev_b");
    assert_int_equal(o->quantity, 250);
    assert_non_null(o->firmware);
    assert_string_equal(o->firmware->version, "1.4.2+g1a2b");
    assert_string_equal(o->firmware->sha256, SHA_ABC);
    assert_string_equal(o->firmware->url, "https://fw.example.com/1.4.2.bin");
    assert_int_equal(o->firmware->build, LINEAGENT__V1__BUILD__PRODUCTION);
    assert_int_equal(o->n_flow, 4);
    assert_int_equal(o->flow[0], LINEAGENT__V1__STEP__TEST);
    assert_int_equal(o->flow[1], LINEAGENT__V1__STEP__WRITE);
    assert_int_equal(o->flow[2], LINEAGENT__V1__STEP__VERIFY);
    assert_int_equal(o->flow[3], LINEAGENT__V1__STEP__LOCK);
}

/* A valid order in caller-owned memory (not unpacked), for order_validate
 * and for packing; tests break one thing at a time. */
typedef struct fixture {
    JobOrder o;
    Lineagent__V1__FirmwareRelease fw;
    Step flow[8];
} fixture;

static void fixture_init(fixture *f)
{
    lineagent__v1__job_order__init(&f->o);
    lineagent__v1__firmware_release__init(&f->fw);
    f->o.order_id = "ORD-2024-0001";
    f->o.revision = 2;
    f->o.lot_id = "LOT/A:17";
    f->o.product = "PCBA-77.rev_b";
    f->o.quantity = 250;
    f->fw.version = "1.4.2+g1a2b";
    f->fw.sha256 = SHA_ABC;
    f->fw.url = "https://fw.example.com/1.4.2.bin";
    f->fw.build = LINEAGENT__V1__BUILD__PRODUCTION;
    f->o.firmware = &f->fw;
    f->flow[0] = LINEAGENT__V1__STEP__TEST;
    f->flow[1] = LINEAGENT__V1__STEP__WRITE;
    f->flow[2] = LINEAGENT__V1__STEP__VERIFY;
    f->flow[3] = LINEAGENT__V1__STEP__LOCK;
    f->o.flow = f->flow;
    f->o.n_flow = 4;
}

static void set_flow(fixture *f, size_t n, const Step *steps)
{
    memcpy(f->flow, steps, n * sizeof *steps);
    f->o.n_flow = n;
}

static void expect_invalid(const fixture *f, const char *needle1, const char *needle2)
{
    char reason[512] = "";
    assert_int_equal(order_validate(&f->o, &limits, reason, sizeof reason), -1);
    expect_in(reason, needle1);
    if (needle2) expect_in(reason, needle2);
}

static void expect_valid(const fixture *f)
{
    char reason[512] = "";
    int rc = order_validate(&f->o, &limits, reason, sizeof reason);
    if (rc != 0) print_error("unexpectedly invalid: %s\n", reason);
    assert_int_equal(rc, 0);
}

static uint8_t *pack_fixture(const fixture *f, size_t *len)
{
    *len = lineagent__v1__job_order__get_packed_size(&f->o);
    uint8_t *buf = malloc(*len);
    assert_non_null(buf);
    lineagent__v1__job_order__pack(&f->o, buf);
    return buf;
}

/* ---- decoding ---------------------------------------------------------- */

static void test_json_camel_case(void **state)
{
    (void)state;
    char reason[256];
    JobOrder *o = parse_str(valid_camel, reason, sizeof reason);
    assert_reference_fields(o);
    assert_int_equal(order_validate(o, &limits, reason, sizeof reason), 0);
    order_free(o);
}

static void test_json_snake_case(void **state)
{
    (void)state;
    char reason[256];
    JobOrder *o = parse_str(valid_snake, reason, sizeof reason);
    assert_reference_fields(o);
    order_free(o);
}

static void test_protobuf_round_trip(void **state)
{
    (void)state;
    fixture f;
    fixture_init(&f);
    size_t len;
    uint8_t *buf = pack_fixture(&f, &len);
    char reason[256];
    JobOrder *o = order_parse(buf, len, reason, sizeof reason);
    assert_reference_fields(o);

    /* JSON and protobuf of the same order decode to the same message. */
    JobOrder *j = parse_str(valid_camel, reason, sizeof reason);
    assert_non_null(j);
    size_t jlen = lineagent__v1__job_order__get_packed_size(j);
    assert_int_equal(jlen, len);
    uint8_t *jbuf = malloc(jlen);
    lineagent__v1__job_order__pack(j, jbuf);
    assert_memory_equal(jbuf, buf, len);

    JobOrder *d = order_dup(o);
    assert_reference_fields(d);
    assert_ptr_not_equal(d->firmware, o->firmware);
    order_free(o);
    assert_reference_fields(d); /* independent of the original */
    order_free(d);
    order_free(j);
    order_free(NULL);
    free(jbuf);
    free(buf);
}

static void test_json_numbers_and_enums_leniency(void **state)
{
    (void)state;
    char reason[256];
    JobOrder *o = parse_str("{\"revision\": \"3\", \"quantity\": \"4294967295\", "
                            "\"firmware\": {\"build\": \"production\"}, "
                            "\"flow\": [\"write\", 2, \"Lock\"]}",
                            reason, sizeof reason);
    assert_non_null(o);
    assert_int_equal(o->revision, 3);
    assert_int_equal(o->quantity, UINT32_MAX);
    assert_int_equal(o->firmware->build, LINEAGENT__V1__BUILD__PRODUCTION);
    assert_int_equal(o->n_flow, 3);
    assert_int_equal(o->flow[0], LINEAGENT__V1__STEP__WRITE);
    assert_int_equal(o->flow[1], LINEAGENT__V1__STEP__VERIFY);
    assert_int_equal(o->flow[2], LINEAGENT__V1__STEP__LOCK);
    order_free(o);

    /* A whole number written as a JSON real is still a whole number. */
    o = parse_str("{\"quantity\": 1.5e2}", reason, sizeof reason);
    assert_non_null(o);
    assert_int_equal(o->quantity, 150);
    order_free(o);
}

static void test_json_null_is_absent(void **state)
{
    (void)state;
    char reason[256];
    JobOrder *o = parse_str("{\"orderId\": \"A\", \"lotId\": null, \"firmware\": null, \"flow\": null}", reason,
                            sizeof reason);
    assert_non_null(o);
    assert_string_equal(o->order_id, "A");
    assert_string_equal(o->lot_id, "");
    assert_null(o->firmware);
    assert_int_equal(o->n_flow, 0);
    order_free(o);
}

static void test_json_bad_numbers(void **state)
{
    (void)state;
    expect_parse_error("{\"quantity\": -1}", "quantity", "negative");
    expect_parse_error("{\"quantity\": 2.5}", "quantity", "whole number");
    expect_parse_error("{\"quantity\": 4294967296}", "quantity", "4294967296");
    expect_parse_error("{\"revision\": \"-3\"}", "revision", "negative");
    expect_parse_error("{\"revision\": \"12a\"}", "revision", "12a");
    expect_parse_error("{\"revision\": \"\"}", "revision", NULL);
    expect_parse_error("{\"revision\": \"99999999999999999999999\"}", "revision", "larger");
    expect_parse_error("{\"quantity\": true}", "quantity", "boolean");
}

static void test_json_wrong_types(void **state)
{
    (void)state;
    expect_parse_error("{\"orderId\": 17}", "orderId", "string");
    expect_parse_error("{\"firmware\": \"1.4.2\"}", "firmware", "object");
    expect_parse_error("{\"flow\": \"WRITE\"}", "flow", "array");
    expect_parse_error("{\"flow\": [\"WRITE\", null]}", "flow[1]", NULL);
    expect_parse_error("{\"firmware\": {\"sha256\": [1]}}", "firmware.sha256", "string");
    expect_parse_error("[1, 2]", "malformed protobuf", NULL); /* not '{': taken as protobuf */
}

static void test_json_unknown_enum_names(void **state)
{
    (void)state;
    expect_parse_error("{\"flow\": [\"WRITE\", \"VERIFY\", \"FLASH\"]}", "flow[2]: unknown step \"FLASH\"", NULL);
    expect_parse_error("{\"firmware\": {\"build\": \"RELEASE\"}}", "firmware.build", "\"RELEASE\"");
}

static void test_json_unknown_fields(void **state)
{
    (void)state;
    expect_parse_error("{\"orderId\": \"A\", \"quantiy\": 5}", "unknown field \"quantiy\"", NULL);
    expect_parse_error("{\"firmware\": {\"sha\": \"x\"}}", "unknown field \"firmware.sha\"", NULL);
    /* The same field under both spellings would silently drop one. */
    expect_parse_error("{\"orderId\": \"A\", \"order_id\": \"B\"}", "order_id", "twice");
    expect_parse_error("{\"quantity\": 1, \"quantity\": 2}", "duplicate", NULL);
}

static void test_json_malformed(void **state)
{
    (void)state;
    expect_parse_error("{\"orderId\": \"A\",\n \"quantity\": }", "line 2", "column");
    expect_parse_error("{\"orderId\": \"A\"} trailing", "malformed JSON", NULL);
    char reason[256];
    assert_null(order_parse_json("[17]", 4, reason, sizeof reason));
    expect_in(reason, "object");
}

static void test_malformed_protobuf(void **state)
{
    (void)state;
    /* Field 1 (order_id) claims 100 bytes and delivers 3. */
    static const uint8_t truncated[] = {0x0a, 0x64, 'A', 'B', 'C'};
    char reason[256];
    assert_null(order_parse(truncated, sizeof truncated, reason, sizeof reason));
    expect_in(reason, "malformed protobuf JobOrder (5 bytes)");
}

static void test_empty_payload(void **state)
{
    (void)state;
    char reason[256];
    assert_null(order_parse("", 0, reason, sizeof reason));
    expect_in(reason, "empty");
    assert_null(order_parse(" \n\t", 3, reason, sizeof reason));
    expect_in(reason, "empty");
}

static void test_payload_limit(void **state)
{
    (void)state;
    char reason[256];
    /* Exactly the limit is read: a valid order padded with blanks. */
    char *big = malloc(ORDER_MAX_PAYLOAD + 1);
    assert_non_null(big);
    memset(big, ' ', ORDER_MAX_PAYLOAD + 1);
    memcpy(big, valid_camel, strlen(valid_camel));
    JobOrder *o = order_parse(big, ORDER_MAX_PAYLOAD, reason, sizeof reason);
    assert_reference_fields(o);
    order_free(o);

    assert_null(order_parse(big, ORDER_MAX_PAYLOAD + 1, reason, sizeof reason));
    expect_in(reason, "payload of 1048577 bytes exceeds the 1 MiB limit");
    free(big);
}

/* ---- validation -------------------------------------------------------- */

static void test_validate_reference_and_boundaries(void **state)
{
    (void)state;
    fixture f;
    fixture_init(&f);
    expect_valid(&f);
    f.o.quantity = limits.max_quantity;
    expect_valid(&f);
    f.o.quantity = 1;
    expect_valid(&f);
    char id64[ORDER_ID_MAX + 1];
    memset(id64, 'x', ORDER_ID_MAX);
    id64[ORDER_ID_MAX] = '\0';
    f.o.order_id = id64;
    f.fw.version = id64;
    expect_valid(&f);
    f.fw.url = "HTTPS://fw.example.com/a.bin"; /* schemes are case-insensitive */
    expect_valid(&f);
    f.fw.url = "file:///srv/fw/a.bin";
    expect_valid(&f);
}

static void test_validate_quantity(void **state)
{
    (void)state;
    fixture f;
    fixture_init(&f);
    f.o.quantity = 0;
    expect_invalid(&f, "quantity must be at least 1", NULL);
    f.o.quantity = 5000000;
    expect_invalid(&f, "quantity 5000000 exceeds the line limit of 100000", NULL);
    f.o.quantity = limits.max_quantity + 1;
    expect_invalid(&f, "quantity", NULL);
}

static void test_validate_ids(void **state)
{
    (void)state;
    fixture f;
    char id65[ORDER_ID_MAX + 2];
    memset(id65, 'x', ORDER_ID_MAX + 1);
    id65[ORDER_ID_MAX + 1] = '\0';

    fixture_init(&f);
    f.o.order_id = id65;
    expect_invalid(&f, "order_id", "64");
    fixture_init(&f);
    f.o.order_id = "";
    expect_invalid(&f, "order_id missing", NULL);
    fixture_init(&f);
    f.o.order_id = NULL; /* hand-built messages may leave strings NULL */
    expect_invalid(&f, "order_id missing", NULL);
    fixture_init(&f);
    f.o.order_id = "ORD 1";
    expect_invalid(&f, "order_id", "[A-Za-z0-9._:/-]");
    fixture_init(&f);
    f.o.lot_id = "LOT;DROP";
    expect_invalid(&f, "lot_id", "[A-Za-z0-9._:/-]");
    fixture_init(&f);
    f.o.lot_id = "LOT\n1";
    expect_invalid(&f, "lot_id", "0x0a");
    fixture_init(&f);
    f.o.product = "PCBA+1"; /* '+' is for versions only */
    expect_invalid(&f, "product", NULL);
    fixture_init(&f);
    f.o.product = "";
    expect_invalid(&f, "product missing", NULL);
    fixture_init(&f);
    f.o.revision = 0;
    expect_invalid(&f, "revision must be at least 1", NULL);
    /* a leading '-' would be an option to a vendor program */
    const char *dash[] = {"-rf", "--help"};
    for (int i = 0; i < 2; i++) {
        fixture_init(&f);
        f.o.order_id = (char *)dash[i];
        expect_invalid(&f, "order_id must not start with '-'", NULL);
        fixture_init(&f);
        f.o.lot_id = (char *)dash[i];
        expect_invalid(&f, "lot_id must not start with '-'", NULL);
        fixture_init(&f);
        f.o.product = (char *)dash[i];
        expect_invalid(&f, "product must not start with '-'", NULL);
        fixture_init(&f);
        f.fw.version = (char *)dash[i];
        expect_invalid(&f, "firmware.version must not start with '-'", NULL);
    }
    fixture_init(&f);
    f.o.order_id = "ORD-1"; /* inside is fine */
    expect_valid(&f);
    assert_string_equal(order_id_or_empty("-x"), "");
    assert_string_equal(order_id_or_empty("A;B"), "");
    assert_string_equal(order_id_or_empty(NULL), "");
    assert_string_equal(order_id_or_empty("WO-1"), "WO-1");
}

/* The item cap is checked before the quadratic duplicate check: 100,000
 * items of one name are refused for their count, at once. */
static void test_validate_item_count_first(void **state)
{
    (void)state;
    fixture f;
    fixture_init(&f);
    size_t n = 100000;
    Lineagent__V1__TestItem *items = calloc(n, sizeof *items);
    Lineagent__V1__TestItem **ptrs = calloc(n, sizeof *ptrs);
    for (size_t i = 0; i < n; i++) {
        lineagent__v1__test_item__init(&items[i]);
        items[i].name = "vbus";
        items[i].low = 1;
        items[i].high = 2;
        ptrs[i] = &items[i];
    }
    static Step flow[] = {LINEAGENT__V1__STEP__WRITE, LINEAGENT__V1__STEP__VERIFY, LINEAGENT__V1__STEP__TEST,
                          LINEAGENT__V1__STEP__LOCK};
    f.o.flow = flow;
    f.o.n_flow = 4; /* LOCK: a PRODUCTION order must lock (R5) */
    f.o.test_items = ptrs;
    f.o.n_test_items = n;
    expect_invalid(&f, "100000 test items; the limit is 64", NULL);
    free(ptrs);
    free(items);
}

/* A payload order_parse refuses still yields its ids for the rejection. */
static void test_parse_ids(void **state)
{
    (void)state;
    char reason[512];
    const char *bad_step = "{\"orderId\":\"WO-S\",\"revision\":3,\"lotId\":\"LOT-S\",\"flow\":[\"WRITE\",\"FLASHIT\"]}";
    assert_null(parse_str(bad_step, reason, sizeof reason));
    JobOrder *o = order_parse_ids(bad_step, strlen(bad_step));
    assert_non_null(o);
    assert_string_equal(o->order_id, "WO-S");
    assert_string_equal(o->lot_id, "LOT-S");
    assert_int_equal(o->revision, 3);
    order_free(o);
    const char *snake = "{\"order_id\":\"WO-T\",\"lot_id\":\"-evil\",\"quantity\":\"x\"}";
    o = order_parse_ids(snake, strlen(snake));
    assert_non_null(o);
    assert_string_equal(o->order_id, "WO-T");
    assert_string_equal(o->lot_id, ""); /* not an id: not echoed */
    order_free(o);
    assert_null(order_parse_ids("{\"orderId\":7}", 13));
    assert_null(order_parse_ids("[1]", 3));
    assert_null(order_parse_ids("\x0a\x03" "abc", 5));
}

static void test_validate_firmware(void **state)
{
    (void)state;
    fixture f;
    fixture_init(&f);
    f.o.firmware = NULL;
    expect_invalid(&f, "firmware missing", NULL);

    fixture_init(&f);
    f.fw.build = LINEAGENT__V1__BUILD__DEBUG;
    expect_invalid(&f, "firmware build is DEBUG: a production order takes only a PRODUCTION build", NULL);
    f.fw.build = LINEAGENT__V1__BUILD__BUILD_UNSPECIFIED;
    expect_invalid(&f, "firmware.build missing", NULL);
    f.fw.build = (Lineagent__V1__Build)7;
    expect_invalid(&f, "firmware.build", "7");

    fixture_init(&f);
    f.fw.version = "";
    expect_invalid(&f, "firmware.version missing", NULL);
    f.fw.version = "1.0 beta";
    expect_invalid(&f, "firmware.version", NULL);

    fixture_init(&f);
    f.fw.sha256 = "";
    expect_invalid(&f, "firmware.sha256 missing", NULL);
    f.fw.sha256 = SHA_ABC "0";
    expect_invalid(&f, "firmware.sha256", "65");
    f.fw.sha256 = "ga7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad";
    expect_invalid(&f, "firmware.sha256", "position 1");
    f.fw.sha256 = "BA7816BF8F01CFEA414140DE5DAE2223B00361A396177A9CB410FF61F20015AD";
    expect_invalid(&f, "firmware.sha256", "lowercase");

    fixture_init(&f);
    f.fw.url = "ftp://fw.example.com/a.bin";
    expect_invalid(&f, "firmware.url", "\"ftp:\"");
    f.fw.url = "/srv/fw/a.bin";
    expect_invalid(&f, "firmware.url", "no scheme");
    f.fw.url = "";
    expect_invalid(&f, "firmware.url missing", NULL);
    f.fw.url = "https://fw.example.com/a b.bin";
    expect_invalid(&f, "firmware.url", "0x20");
}

static void test_validate_flow(void **state)
{
    (void)state;
    const Step W = LINEAGENT__V1__STEP__WRITE, V = LINEAGENT__V1__STEP__VERIFY,
               P = LINEAGENT__V1__STEP__PROVISION, T = LINEAGENT__V1__STEP__TEST,
               C = LINEAGENT__V1__STEP__CALIBRATE, L = LINEAGENT__V1__STEP__LOCK,
               U = LINEAGENT__V1__STEP__STEP_UNSPECIFIED;
    fixture f;
    fixture_init(&f);

    set_flow(&f, 3, (Step[]){W, V, L});
    expect_valid(&f);
    set_flow(&f, 2, (Step[]){W, V}); /* rule R5: a production unit cannot pass with an open debug port */
    expect_invalid(&f, "no LOCK", "PRODUCTION");
    set_flow(&f, 6, (Step[]){P, T, C, W, V, L});
    expect_valid(&f);
    set_flow(&f, 6, (Step[]){W, V, L, P, T, C}); /* PROVISION has no place rule */
    expect_valid(&f);

    set_flow(&f, 0, (Step[]){W});
    expect_invalid(&f, "flow is empty", NULL);
    set_flow(&f, 3, (Step[]){W, U, V});
    expect_invalid(&f, "flow[1]", "STEP_UNSPECIFIED");
    set_flow(&f, 3, (Step[]){W, V, (Step)9});
    expect_invalid(&f, "flow[2]", "unknown step");
    set_flow(&f, 4, (Step[]){T, W, V, T});
    expect_invalid(&f, "flow", "TEST twice");
    set_flow(&f, 2, (Step[]){T, P});
    expect_invalid(&f, "flow", "no WRITE");
    set_flow(&f, 2, (Step[]){T, W});
    expect_invalid(&f, "flow", "no write without read-back verification");
    set_flow(&f, 3, (Step[]){W, T, V});
    expect_invalid(&f, "flow", "VERIFY");
    set_flow(&f, 2, (Step[]){V, W});
    expect_invalid(&f, "flow", "right after WRITE");
    set_flow(&f, 3, (Step[]){L, W, V});
    expect_invalid(&f, "flow", "LOCK");
}

static void test_validate_first_violation_wins(void **state)
{
    (void)state;
    fixture f;
    fixture_init(&f);
    f.o.quantity = 0;
    f.fw.build = LINEAGENT__V1__BUILD__DEBUG;
    f.o.n_flow = 0;
    expect_invalid(&f, "quantity", NULL);
}

/* An unknown enum value on the wire is kept by the decoder (proto3 enums are
 * open) and refused by validation. */
static void test_unknown_wire_step(void **state)
{
    (void)state;
    fixture f;
    fixture_init(&f);
    set_flow(&f, 3, (Step[]){LINEAGENT__V1__STEP__WRITE, LINEAGENT__V1__STEP__VERIFY, (Step)42});
    size_t len;
    uint8_t *buf = pack_fixture(&f, &len);
    char reason[256];
    JobOrder *o = order_parse(buf, len, reason, sizeof reason);
    assert_non_null(o);
    assert_int_equal(o->n_flow, 3);
    assert_int_equal(order_validate(o, &limits, reason, sizeof reason), -1);
    expect_in(reason, "flow[2]");
    order_free(o);
    free(buf);

    o = parse_str("{\"flow\": [\"WRITE\", \"VERIFY\", 42]}", reason, sizeof reason);
    assert_non_null(o);
    assert_int_equal(o->flow[2], 42);
    order_free(o);
}

static void test_json_validation_end_to_end(void **state)
{
    (void)state;
    char reason[256];
    JobOrder *o = parse_str("{\"orderId\": \"O1\", \"revision\": 1, \"lotId\": \"L1\", \"product\": \"P\", "
                            "\"quantity\": \"100\", \"firmware\": {\"version\": \"1\", \"sha256\": \"" SHA_ABC "\", "
                            "\"url\": \"file:///fw.bin\", \"build\": \"DEBUG\"}, \"flow\": [\"WRITE\", \"VERIFY\"]}",
                            reason, sizeof reason);
    assert_non_null(o);
    assert_int_equal(order_validate(o, &limits, reason, sizeof reason), -1);
    expect_in(reason, "DEBUG");
    order_free(o);
}

/* ---- the order's test items ------------------------------------------ */

#define ORDER_HEAD "{\"orderId\":\"WO-1\",\"revision\":1,\"lotId\":\"L1\",\"product\":\"P\",\"quantity\":2," \
    "\"firmware\":{\"version\":\"1.0.0\",\"sha256\":\"" \
    "0000000000000000000000000000000000000000000000000000000000000000\",\"url\":\"file:///x\",\"build\":\"PRODUCTION\"}," \
    "\"flow\":[\"WRITE\",\"VERIFY\",\"TEST\",\"LOCK\"]"

static const char *order_reason(const char *tail)
{
    static char reason[256];
    char buf[2048];
    snprintf(buf, sizeof buf, "%s%s}", ORDER_HEAD, tail);
    order_limits lim = {.max_quantity = 100};
    JobOrder *o = order_parse(buf, strlen(buf), reason, sizeof reason);
    if (o && order_validate(o, &lim, reason, sizeof reason) == 0) snprintf(reason, sizeof reason, "valid");
    order_free(o);
    return reason;
}

static void test_order_test_items_json(void **state)
{
    const char *j = ORDER_HEAD ",\"testItems\":[{\"name\":\"vbus\",\"low\":4.75,\"high\":5.25,\"unit\":\"V\"},"
                    "{\"name\":\"i_idle\",\"low\":\"-Infinity\",\"high\":0.05,\"unit\":\"A\"}],"
                    "\"testPlan\":{\"version\":\"FCT-3.2\",\"sha256\":\"" 
                    "abababababababababababababababababababababababababababababababab\"},\"calibrationMaxResidual\":0.02}";
    char reason[256];
    JobOrder *o = order_parse(j, strlen(j), reason, sizeof reason);
    assert_non_null(o);
    assert_int_equal(o->n_test_items, 2);
    assert_string_equal(o->test_items[0]->name, "vbus");
    assert_true(o->test_items[0]->low == 4.75 && o->test_items[0]->high == 5.25);
    assert_true(isinf(o->test_items[1]->low) && o->test_items[1]->low < 0);
    assert_string_equal(o->test_plan->version, "FCT-3.2");
    assert_true(o->calibration_max_residual == 0.02);
    order_limits lim = {.max_quantity = 100};
    assert_int_equal(order_validate(o, &lim, reason, sizeof reason), 0);
    order_free(o);

    /* A missing limit is refused, never read as 0 (proto3 would default it). */
    assert_string_equal(order_reason(",\"testItems\":[{\"name\":\"vbus\",\"low\":5}]"),
                        "test_items[0] (vbus): high limit missing; an item needs both");
    assert_string_equal(order_reason(",\"testItems\":[{\"name\":\"vbus\",\"high\":5}]"),
                        "test_items[0] (vbus): low limit missing; an item needs both");
    assert_string_equal(order_reason(",\"testItems\":[{\"name\":\"vbus\",\"low\":5,\"high\":0}]"),
                        "test_items[0] (vbus): low 5 must not exceed high 0");
    assert_string_equal(order_reason(",\"testItems\":[{\"name\":\"z\",\"low\":0,\"high\":0}]"), "valid");
    assert_non_null(strstr(order_reason(",\"testItems\":[{\"name\":\"a\",\"low\":0,\"high\":1},"
                                        "{\"name\":\"a\",\"low\":0,\"high\":2}]"),
                           "lists a twice"));
    assert_non_null(strstr(order_reason(",\"testItems\":[{\"name\":\"bad name\",\"low\":0,\"high\":1}]"),
                           "test_items[0].name"));
    assert_non_null(strstr(order_reason(",\"testItems\":[{\"name\":\"a\",\"high\":\"lots\"}]"), "testItems[0].high"));
    assert_non_null(strstr(order_reason(",\"testItems\":[{\"nmae\":\"a\"}]"), "nmae"));
    assert_non_null(strstr(order_reason(",\"testPlan\":{\"version\":\"1\",\"sha256\":\"ABC\"}"), "test_plan.sha256"));
    assert_non_null(strstr(order_reason(",\"calibrationMaxResidual\":-1"), "calibration_max_residual"));
    assert_string_equal(order_reason(",\"testItems\":[{\"name\":\"a\",\"low\":-1,\"high\":1}]"), "valid");
}

/* ---- step vocabulary --------------------------------------------------- */

static void test_step_names(void **state)
{
    (void)state;
    static const char *const names[] = {"STEP_UNSPECIFIED", "WRITE", "VERIFY", "PROVISION", "TEST", "CALIBRATE",
                                        "LOCK"};
    for (int s = 0; s <= 6; s++) {
        assert_string_equal(order_step_name((Step)s), names[s]);
        Step back = (Step)-1;
        assert_int_equal(order_step_parse(names[s], &back), 0);
        assert_int_equal(back, s);
    }
    Step s;
    assert_int_equal(order_step_parse("calibrate", &s), 0);
    assert_int_equal(s, LINEAGENT__V1__STEP__CALIBRATE);
    assert_int_equal(order_step_parse("FLASH", &s), -1);
    assert_int_equal(order_step_parse("", &s), -1);
    assert_string_equal(order_step_name((Step)99), "STEP_UNSPECIFIED");
    assert_string_equal(order_step_name((Step)-1), "STEP_UNSPECIFIED");
}

static void test_flow_index(void **state)
{
    (void)state;
    fixture f;
    fixture_init(&f);
    assert_int_equal(order_flow_index(&f.o, LINEAGENT__V1__STEP__TEST), 0);
    assert_int_equal(order_flow_index(&f.o, LINEAGENT__V1__STEP__LOCK), 3);
    assert_int_equal(order_flow_index(&f.o, LINEAGENT__V1__STEP__PROVISION), -1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_json_camel_case),
        cmocka_unit_test(test_json_snake_case),
        cmocka_unit_test(test_protobuf_round_trip),
        cmocka_unit_test(test_json_numbers_and_enums_leniency),
        cmocka_unit_test(test_json_null_is_absent),
        cmocka_unit_test(test_json_bad_numbers),
        cmocka_unit_test(test_json_wrong_types),
        cmocka_unit_test(test_json_unknown_enum_names),
        cmocka_unit_test(test_json_unknown_fields),
        cmocka_unit_test(test_json_malformed),
        cmocka_unit_test(test_malformed_protobuf),
        cmocka_unit_test(test_empty_payload),
        cmocka_unit_test(test_payload_limit),
        cmocka_unit_test(test_validate_reference_and_boundaries),
        cmocka_unit_test(test_validate_quantity),
        cmocka_unit_test(test_validate_ids),
        cmocka_unit_test(test_validate_item_count_first),
        cmocka_unit_test(test_parse_ids),
        cmocka_unit_test(test_validate_firmware),
        cmocka_unit_test(test_validate_flow),
        cmocka_unit_test(test_validate_first_violation_wins),
        cmocka_unit_test(test_unknown_wire_step),
        cmocka_unit_test(test_json_validation_end_to_end),
        cmocka_unit_test(test_order_test_items_json),
        cmocka_unit_test(test_step_names),
        cmocka_unit_test(test_flow_index),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
