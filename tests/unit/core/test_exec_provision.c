/* SPDX-License-Identifier: Apache-2.0 */
/* test_exec_provision.c - the exec adapter's PROVISION contract with the
 * example program (tests/tools/exec_provision_example.sh): the identity on
 * standard input and nowhere else, the read-back the agent compares, the
 * CSR exchange with a board-made key, an abandoned CSR; and the rest of the
 * exec contract issue 16 added: board ids from exec.board_id_program, the
 * failure-mode vocabulary, over-long measurement names, and the read-back
 * the agent (station_check_readback), not the program, compares. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

#include "digest.h"
#include "provision_client.h"
#include "provision_step.h"
#include "station.h"

#define EXAMPLE SRC_DIR "/tests/tools/exec_provision_example.sh"

static char dir[64];
static const adapter *ad;

static void sh(const char *fmt, ...)
{
    char cmd[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(cmd, sizeof cmd, fmt, ap);
    va_end(ap);
    assert_int_equal(system(cmd), 0);
}

static char *slurp(const char *name)
{
    char path[128];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    FILE *f = fopen(path, "r");
    if (!f) return NULL;
    char *buf = calloc(1, 16384);
    size_t n = fread(buf, 1, 16383, f);
    buf[n] = 0;
    fclose(f);
    return buf;
}

/* Writes dir/name; a script when body is given as one (mode 0700). */
static const char *put(const char *name, const char *content, int script)
{
    static char path[4][128];
    static int n;
    char *p = path[n++ % 4];
    snprintf(p, 128, "%s/%s", dir, name);
    FILE *f = fopen(p, "w");
    fprintf(f, "%s%s\n", script ? "#!/bin/bash\n" : "", content);
    fclose(f);
    if (script) chmod(p, 0700);
    return p;
}

/* An exec station from "key=value" strings (NULL-terminated). */
static void *station_open(const char *const *kvs, char *err)
{
    kv_pair kv[8];
    size_t n = 0;
    char copies[8][512];
    for (; kvs[n]; n++) {
        snprintf(copies[n], sizeof copies[n], "%s", kvs[n]);
        char *eq = strchr(copies[n], '=');
        *eq = 0;
        kv[n] = (kv_pair){copies[n], eq + 1};
    }
    station_config st = {.name = "p1", .adapter = "exec", .steps_mask = 0x7e, .keys = kv, .n_keys = n};
    void *s = NULL;
    char e[256];
    return ad->open(&s, &st, err ? err : e, 256) == 0 ? s : NULL;
}

static void *example_station(int csr)
{
    char args[160], prog[200];
    snprintf(prog, sizeof prog, "exec.provision.program=%s", EXAMPLE);
    snprintf(args, sizeof args, "exec.provision.args=%s/boards {board_id}%s", dir, csr ? " csr" : "");
    const char *kvs[] = {"exec.program=/bin/true", prog, args, csr ? "exec.provision_csr=true" : "exec.timeout_ms=20000",
                         NULL};
    void *s = station_open(kvs, NULL);
    assert_non_null(s);
    return s;
}

static int setup(void **state)
{
    (void)state;
    snprintf(dir, sizeof dir, "/tmp/test-execprov-XXXXXX");
    assert_non_null(mkdtemp(dir));
    ad = adapter_find("exec");
    /* A CA for board-made keys, and a unit certificate with a server-made key. */
    sh("cd %s && openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout ca.key -out ca.pem "
       "-subj /CN=test-ca -days 2 2>/dev/null && openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 "
       "-nodes -keyout unit.key -out unit.pem -subj /CN=SN-0001 -days 2 2>/dev/null", dir);
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    sh("rm -rf %s", dir);
    return 0;
}

static const char macs[2][18] = {"02:00:00:00:00:10", "02:00:00:00:00:11"};

static adapter_identity identity(const char *cert, const char *key, char sha[65])
{
    assert_int_equal(provision_cert_sha256(cert, sha), 0);
    return (adapter_identity){"SN-0001", "D0001", "F1", "2026-01-01T00:00:00Z", macs, 2, cert, cert, key, sha};
}

static void assert_readback(const adapter_result *r, const char *cert_sha)
{
    assert_true(r->passed);
    assert_string_equal(r->serial, "SN-0001");
    assert_string_equal(r->device_id, "D0001");
    assert_int_equal(r->n_macs, 2);
    assert_string_equal(r->macs[1], "02:00:00:00:00:11");
    assert_string_equal(r->cert_sha256, cert_sha);
}

/* The server made the key: identity and key go through stdin only. */
static void test_identity_on_stdin(void **state)
{
    (void)state;
    char *cert = slurp("unit.pem"), *key = slurp("unit.key"), sha[65];
    adapter_identity id = identity(cert, key, sha);
    void *s = example_station(0);
    adapter_step_ctx ctx = {.station = "p1", .lot_id = "LOT", .board_id = "B1", .identity = &id};
    adapter_result r = {0};
    assert_int_equal(ad->provision_csr(s, &ctx, (char[4096]){0}, 4096), 1); /* no exec.provision_csr */
    ad->provision(s, &ctx, &r);
    assert_readback(&r, sha);
    char *written = slurp("boards/B1/key.pem");
    assert_string_equal(written, key); /* it reached the board */
    free(written);
    ad->close(s);

    /* What exactly the program gets: argv without identity, stdin one JSON line. */
    char body[512];
    snprintf(body, sizeof body, "printf '%%s\\n' \"$@\" >%s/argv; cat >%s/stdin; echo '{\"readback\":{}}'", dir, dir);
    char prog[160];
    snprintf(prog, sizeof prog, "exec.program=%s", put("dump.sh", body, 1));
    const char *kvs[] = {prog, "exec.args={step} {board_id} {serial}", NULL};
    s = station_open(kvs, NULL);
    memset(&r, 0, sizeof r);
    ad->provision(s, &ctx, &r);
    ad->close(s);
    char *argv = slurp("argv"), *in = slurp("stdin");
    assert_string_equal(argv, "provision\nB1\nB1\n");
    assert_non_null(strstr(in, "\"private_key\":\"-----BEGIN PRIVATE KEY-----\\n"));
    assert_non_null(strstr(in, "\"macs\":[\"02:00:00:00:00:10\",\"02:00:00:00:00:11\"]"));
    assert_ptr_equal(strchr(in, '\n'), in + strlen(in) - 1); /* one line */
    free(argv);
    free(in);
    free(cert);
    free(key);
}

/* The read-back must be the issued identity: provision_step compares. */
static void test_readback_compared(void **state)
{
    (void)state;
    char *cert = slurp("unit.pem"), *key = slurp("unit.key"), sha[65];
    adapter_identity id = identity(cert, key, sha);
    void *s = example_station(0);
    adapter_step_ctx ctx = {.station = "p1", .lot_id = "LOT", .board_id = "B2", .identity = &id};
    adapter_result r = {0};
    ad->provision(s, &ctx, &r);
    assert_readback(&r, sha);
    /* A program that says nothing of what the board holds fails. */
    ad->close(s);
    const char *kvs[] = {"exec.program=/bin/true", NULL};
    s = station_open(kvs, NULL);
    memset(&r, 0, sizeof r);
    ad->provision(s, &ctx, &r);
    assert_false(r.passed);
    assert_string_equal(r.failure_mode, "provision_unverified");
    ad->close(s);
    free(cert);
    free(key);
}

/* exec.provision_csr: the board makes its key, the CSR comes first, the
 * identity (no key) follows on the same run's stdin. */
static void test_csr_exchange(void **state)
{
    (void)state;
    void *s = example_station(1);
    adapter_step_ctx ctx = {.station = "p1", .lot_id = "LOT", .board_id = "B3"};
    char csr[4096];
    assert_int_equal(ad->provision_csr(s, &ctx, csr, sizeof csr), 0);
    assert_non_null(strstr(csr, "-----BEGIN CERTIFICATE REQUEST-----\n"));
    /* Signed as the server would (its own key in the certificate). */
    put("b3.csr", csr, 0);
    sh("cd %s && openssl x509 -req -in b3.csr -CA ca.pem -CAkey ca.key -set_serial 7 -days 2 -out b3.pem 2>/dev/null",
       dir);
    char *cert = slurp("b3.pem"), sha[65];
    adapter_identity id = identity(cert, NULL, sha);
    ctx.identity = &id;
    adapter_result r = {0};
    ad->provision(s, &ctx, &r);
    assert_readback(&r, sha);
    /* The key stayed on the board: only the CSR's public half went out. */
    char *key = slurp("boards/B3/key.pem");
    assert_non_null(strstr(key, "PRIVATE KEY"));
    free(key);
    free(cert);

    /* A certificate for some other key: the program reports the mismatch. */
    assert_int_equal(ad->provision_csr(s, &ctx, csr, sizeof csr), 0);
    cert = slurp("unit.pem");
    id = identity(cert, NULL, sha);
    memset(&r, 0, sizeof r);
    ad->provision(s, &ctx, &r);
    assert_false(r.passed);
    assert_string_equal(r.failure_mode, "provision_key_mismatch");
    free(cert);
    ad->close(s);
}

/* A CSR whose identity never comes: the waiting program is ended, not left. */
static void test_csr_abandoned(void **state)
{
    (void)state;
    char body[256];
    snprintf(body, sizeof body, "echo $$ >%s/pid; echo '{\"csr\":\"-----BEGIN CERTIFICATE REQUEST-----x\"}'; cat; "
             "touch %s/wrote", dir, dir);
    char prog[160];
    snprintf(prog, sizeof prog, "exec.program=%s", put("wait.sh", body, 1));
    const char *kvs[] = {prog, "exec.provision_csr=true", NULL};
    void *s = station_open(kvs, NULL);
    adapter_step_ctx ctx = {.station = "p1", .lot_id = "LOT", .board_id = "B4"};
    char csr[256];
    assert_int_equal(ad->provision_csr(s, &ctx, csr, sizeof csr), 0);
    char *pid = slurp("pid");
    assert_int_equal(kill(atoi(pid), 0), 0); /* waiting for its identity */
    ad->provision_abort(s);
    assert_int_not_equal(kill(atoi(pid), 0), 0);
    free(pid);
    char *wrote = slurp("wrote");
    assert_null(wrote); /* killed, not fed an EOF it could take for an identity */
    ad->close(s);
}

static void test_board_id_program(void **state)
{
    (void)state;
    char k[160];
    snprintf(k, sizeof k, "exec.board_id_program=%s", put("id.sh", "echo \"SN-$1-$2\"; echo ignored", 1));
    const char *kvs[] = {"exec.program=/bin/true", k, NULL};
    void *s = station_open(kvs, NULL);
    char id[ADAPTER_ID_MAX];
    assert_int_equal(ad->load_board(s, "LOT7", 3, id, sizeof id), 0);
    assert_string_equal(id, "SN-LOT7-0"); /* the program's id, not LOT7-B00004 */
    ad->close(s);
    snprintf(k, sizeof k, "exec.board_id_program=%s", put("badid.sh", "echo \"bad id!\"", 1));
    s = station_open(kvs, NULL);
    assert_int_equal(ad->load_board(s, "LOT7", 3, id, sizeof id), -1);
    ad->close(s);
    char err[256];
    const char *rel[] = {"exec.program=/bin/true", "exec.board_id_program=id.sh", NULL};
    assert_null(station_open(rel, err));
    assert_non_null(strstr(err, "exec.board_id_program"));
}

static void run_body(const char *body, adapter_result *r)
{
    char prog[160];
    snprintf(prog, sizeof prog, "exec.program=%s", put("body.sh", body, 1));
    const char *kvs[] = {prog, NULL};
    void *s = station_open(kvs, NULL);
    adapter_step_ctx ctx = {.station = "p1", .lot_id = "LOT", .board_id = "B5"};
    memset(r, 0, sizeof *r);
    ad->test(s, &ctx, r);
    ad->close(s);
}

static void test_failure_mode_vocabulary(void **state)
{
    (void)state;
    adapter_result r;
    run_body("echo \"{\\\"failure_mode\\\":\\\"probe_not_found\\\",\\\"detail\\\":\\\"no J-Link on USB\\\"}\"; exit 2", &r);
    assert_false(r.passed);
    assert_string_equal(r.failure_mode, "probe_not_found");
    assert_string_equal(r.detail, "no J-Link on USB");
    run_body("echo \"{\\\"failure_mode\\\":\\\"frobnicated\\\",\\\"detail\\\":\\\"x\\\"}\"; exit 2", &r);
    assert_string_equal(r.failure_mode, "unknown_failure_mode");
    assert_non_null(strstr(r.detail, "frobnicated"));
    run_body("echo \"{\\\"failure_mode\\\":\\\"fixture_error\\\"}\"; exit 0", &r); /* a reported failure is one */
    assert_false(r.passed);
    assert_string_equal(r.failure_mode, "fixture_error");
}

static void test_measurement_name_too_long(void **state)
{
    (void)state;
    adapter_result r;
    /* 32 characters: one more than a name holds; cut, it would be the 31-character item. */
    run_body("echo \"{\\\"name\\\":\\\"supply_rail_3v3_ripple_pk_to_pk2\\\",\\\"value\\\":1}\"", &r);
    assert_false(r.passed);
    assert_string_equal(r.failure_mode, "measurement_name_too_long");
    assert_int_equal(r.n_measurements, 0);
    run_body("echo \"{\\\"name\\\":\\\"supply_rail_3v3_ripple_pk_to_pk\\\",\\\"value\\\":1}\"", &r); /* 31: kept */
    assert_true(r.passed);
    assert_string_equal(r.measurements[0].name, "supply_rail_3v3_ripple_pk_to_pk");
}

static const uint8_t img_data[] = "release image for the read-back checks";

/* The agent compares: a digest or a CRC read back, never the adapter's word. */
static void test_readback_checked_by_agent(void **state)
{
    (void)state;
    char sha[65];
    digest_sha256_hex(img_data, sizeof img_data, sha);
    adapter_image img = {"1.0.0", sha, img_data, sizeof img_data, 0};
    adapter_result r = {.passed = 1};
    assert_int_equal(station_check_readback(&img, &r), -1); /* exit 0 alone proves nothing */
    assert_string_equal(r.failure_mode, "verify_unreported");
    r = (adapter_result){.passed = 1};
    memcpy(r.readback_sha256, sha, 65);
    assert_int_equal(station_check_readback(&img, &r), 0);
    assert_string_equal(r.verify_method, "sha256");
    r = (adapter_result){.passed = 1, .readback_crc = ADAPTER_CRC32_ZLIB};
    r.readback_crc32 = (uint32_t)crc32(0, img_data, sizeof img_data);
    assert_int_equal(station_check_readback(&img, &r), 0);
    assert_string_equal(r.verify_method, "crc32");
    r.readback_crc32 ^= 1;
    assert_int_equal(station_check_readback(&img, &r), -1);
    assert_string_equal(r.failure_mode, "verify_mismatch");
    r = (adapter_result){.passed = 1, .readback_crc = ADAPTER_CRC32_GDB};
    r.readback_crc32 = digest_crc32_gdb(0xffffffffu, img_data, sizeof img_data);
    assert_int_equal(station_check_readback(&img, &r), 0);
    assert_string_equal(r.verify_method, "crc32_gdb");
    /* A mismatch is the verdict even when the adapter failed afterwards. */
    r = (adapter_result){.passed = 0};
    memset(r.readback_sha256, 'a', 64);
    snprintf(r.failure_mode, sizeof r.failure_mode, "boot_no_console");
    assert_int_equal(station_check_readback(&img, &r), -1);
    assert_string_equal(r.failure_mode, "verify_mismatch");

    /* The exec program reports what it read; it is not taken as a match. */
    char body[256];
    snprintf(body, sizeof body, "echo \"{\\\"readback_crc32\\\":\\\"%08x\\\"}\"", (unsigned)crc32(0, img_data, 5));
    run_body(body, &r);
    assert_true(r.passed);
    assert_int_equal(r.readback_crc, ADAPTER_CRC32_ZLIB);
    assert_int_equal(station_check_readback(&img, &r), -1);
    assert_string_equal(r.failure_mode, "verify_mismatch");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_identity_on_stdin),
        cmocka_unit_test(test_readback_compared),
        cmocka_unit_test(test_csr_exchange),
        cmocka_unit_test(test_csr_abandoned),
        cmocka_unit_test(test_board_id_program),
        cmocka_unit_test(test_failure_mode_vocabulary),
        cmocka_unit_test(test_measurement_name_too_long),
        cmocka_unit_test(test_readback_checked_by_agent),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
