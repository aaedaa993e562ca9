/* SPDX-License-Identifier: Apache-2.0 */
/* test_tracestore.c - tracestore's pure parts: record decoding and its
 * checks (what goes to rejected_records and why), the COPY rows a batch
 * becomes (escapes, NULLs, NaN) and its facts folded per unit, lot and agent, and the configuration table (file:line
 * errors, reserved keys, deploy/tracestore.conf listing every key). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <cmocka.h>

#include "ts_batch.h"
#include "ts_config.h"
#include "ts_decode.h"

typedef Lineagent__V1__TraceEvent TraceEvent;

static uint8_t *pack(const TraceEvent *ev, size_t *len)
{
    *len = lineagent__v1__trace_event__get_packed_size(ev);
    uint8_t *buf = malloc(*len + 8);
    lineagent__v1__trace_event__pack(ev, buf);
    return buf;
}

static Lineagent__V1__UnitLocked locked = LINEAGENT__V1__UNIT_LOCKED__INIT;

static TraceEvent good_event(void)
{
    TraceEvent ev = LINEAGENT__V1__TRACE_EVENT__INIT;
    ev.event_id = "e-1", ev.seq = 7, ev.time_ms = 1767225600123LL, ev.site = "S1", ev.line = "L1";
    ev.station = "lock1", ev.lot_id = "LOT-1", ev.board_id = "LOT-1-B00001";
    locked.verified = 1;
    ev.body_case = LINEAGENT__V1__TRACE_EVENT__BODY_UNIT_LOCKED, ev.unit_locked = &locked;
    return ev;
}

/* Decodes ev; returns the reason when refused, NULL when accepted. */
static const char *refusal(const TraceEvent *ev)
{
    static char reason[200];
    size_t len;
    uint8_t *buf = pack(ev, &len);
    ts_decoded d;
    int rc = ts_decode_record(buf, len, TS_REC_TRACE, &d, reason, sizeof reason);
    free(buf);
    if (rc == 0) ts_decoded_free(&d);
    return rc == 0 ? NULL : reason;
}

static void test_decode_good(void **state)
{
    TraceEvent ev = good_event();
    size_t len;
    uint8_t *buf = pack(&ev, &len);
    ts_decoded d;
    char reason[200];
    assert_int_equal(ts_decode_record(buf, len, TS_REC_TRACE, &d, reason, sizeof reason), 0);
    assert_string_equal(d.type, "unit_locked");
    assert_string_equal(d.ev->board_id, "LOT-1-B00001");
    assert_true(d.ev->unit_locked->verified);
    ts_decoded_free(&d);
    free(buf);
}

static void test_decode_refusals(void **state)
{
    TraceEvent ev = good_event();
    ev.event_id = "";
    assert_string_equal(refusal(&ev), "missing event_id");
    ev = good_event();
    ev.body_case = LINEAGENT__V1__TRACE_EVENT__BODY__NOT_SET;
    assert_string_equal(refusal(&ev), "unknown or missing event type");
    ev = good_event();
    ev.time_ms = TS_TIME_MAX_MS;
    assert_string_equal(refusal(&ev), "time out of range");
    ev = good_event();
    ev.seq = 0;
    assert_string_equal(refusal(&ev), "seq out of range");
    ev = good_event();
    ev.station = "lock\xc3"; /* truncated two-byte sequence */
    assert_string_equal(refusal(&ev), "field station is not valid UTF-8");
    ev = good_event();
    ev.station = "\xed\xa0\x80"; /* a UTF-16 surrogate */
    assert_non_null(refusal(&ev));
    ev = good_event();
    ev.station = "caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x94\xa7"; /* 2-, 3- and 4-byte characters */
    assert_null(refusal(&ev));
}

/* A body this build does not know (field 99) is refused, not stored blank. */
static void test_decode_unknown_body(void **state)
{
    TraceEvent ev = good_event();
    ev.body_case = LINEAGENT__V1__TRACE_EVENT__BODY__NOT_SET;
    size_t len;
    uint8_t *buf = pack(&ev, &len);
    /* field 99, length-delimited (tag (99 << 3) | 2 as a varint), empty */
    buf[len++] = 0x9a, buf[len++] = 0x06, buf[len++] = 0;
    ts_decoded d;
    char reason[200];
    assert_int_equal(ts_decode_record(buf, len, TS_REC_TRACE, &d, reason, sizeof reason), -1);
    assert_string_equal(reason, "unknown or missing event type");
    assert_int_equal(ts_decode_record("\xff\xff\xff", 3, TS_REC_TRACE, &d, reason, sizeof reason), -1);
    assert_string_equal(reason, "undecodable: not a TraceEvent");
    assert_int_equal(ts_decode_record(NULL, 0, TS_REC_TRACE, &d, reason, sizeof reason), -1);
    free(buf);
}

static void test_decode_field(void **state)
{
    Lineagent__V1__FieldFirmwareReport r = LINEAGENT__V1__FIELD_FIRMWARE_REPORT__INIT;
    r.serial = "SN-1", r.version = "2.0.0", r.sha256 = "ab", r.time_ms = 1767225600000LL, r.source = "ota";
    uint8_t buf[256];
    size_t len = lineagent__v1__field_firmware_report__pack(&r, buf);
    ts_decoded d;
    char reason[200];
    assert_int_equal(ts_decode_record(buf, len, TS_REC_FIELD, &d, reason, sizeof reason), 0);
    assert_string_equal(d.ff->serial, "SN-1");
    ts_decoded_free(&d);
    r.serial = "";
    len = lineagent__v1__field_firmware_report__pack(&r, buf);
    assert_int_equal(ts_decode_record(buf, len, TS_REC_FIELD, &d, reason, sizeof reason), -1);
    assert_string_equal(reason, "missing or overlong serial");
}

/* COPY text: tab, newline and backslash escaped; the events table's row
 * ends with the bytes as bytea hex; a calibration feeds its own table. */
static void test_batch_copy_text(void **state)
{
    TraceEvent ev = good_event();
    ev.station = "a\tb\nc\\d";
    Lineagent__V1__UnitCalibrated cal = LINEAGENT__V1__UNIT_CALIBRATED__INIT;
    cal.offset = 0.0 / 0.0, cal.gain = 1.5, cal.residual = -1.0 / 0.0;
    ev.body_case = LINEAGENT__V1__TRACE_EVENT__BODY_UNIT_CALIBRATED, ev.unit_calibrated = &cal;
    size_t len;
    uint8_t *buf = pack(&ev, &len);
    ts_batch b = {0};
    ts_batch_add(&b, "t", 2, 41, "k", 1, buf, len, TS_REC_TRACE);
    assert_int_equal(b.n_events, 1);
    assert_int_equal(b.n_rejected, 0);
    assert_int_equal(b.n_pos, 1);
    assert_int_equal(b.pos[0].next_offset, 42);
    char *row = strndup(b.event_rows.p, b.event_rows.len);
    assert_non_null(strstr(row, "\ta\\tb\\nc\\\\d\t"));
    assert_non_null(strstr(row, "e-1\t2026-01-01 00:00:00.123+00\t7\tS1/L1\t\tS1\tL1\t"));
    assert_non_null(strstr(row, "\tunit_calibrated\tt\t2\t41\t"));
    assert_ptr_equal(strchr(row, '\n'), row + strlen(row) - 1); /* one row, the station's newline escaped */
    char want[1024] = "\t\\\\x";
    assert_true(2 * len + 8 < sizeof want);
    for (size_t i = 0; i < len; i++) sprintf(want + strlen(want), "%02x", buf[i]);
    strcat(want, "\n");
    assert_string_equal(row + strlen(row) - strlen(want), want);
    free(row);
    row = strndup(b.rows[TS_T_CALIBRATIONS].p, b.rows[TS_T_CALIBRATIONS].len);
    assert_string_equal(row, "e-1\t2026-01-01 00:00:00.123+00\tLOT-1\tLOT-1-B00001\ta\\tb\\nc\\\\d\tNaN\t1.5\t-Infinity\t0\n");
    free(row);
    assert_int_equal(b.rows[TS_T_WRITES].len, 0);
    assert_int_equal(b.rows[TS_T_LOCKS].len, 0);
    ts_batch_add(&b, "t", 2, 43, NULL, 0, "\x01", 1, TS_REC_TRACE);
    assert_int_equal(b.n_rejected, 1);
    assert_int_equal(b.pos[0].next_offset, 44);
    ts_batch_free(&b);
    free(buf);
}

/* A test's measurements: one row, each field an array, element text
 * escaped for the array literal and then for COPY. */
static void test_batch_test_arrays(void **state)
{
    TraceEvent ev = good_event();
    Lineagent__V1__Measurement m1 = LINEAGENT__V1__MEASUREMENT__INIT, m2 = LINEAGENT__V1__MEASUREMENT__INIT;
    m1.name = "vbus", m1.value = 5.0, m1.low = 4.75, m1.high = 5.25, m1.unit = "V", m1.passed = 1;
    m2.name = "a\"b\\c\td", m2.value = 0.0 / 0.0, m2.low = -1.0 / 0.0, m2.high = 2, m2.unit = "", m2.passed = 0;
    Lineagent__V1__Measurement *ms[] = {&m1, &m2};
    Lineagent__V1__UnitTested t = LINEAGENT__V1__UNIT_TESTED__INIT;
    t.n_measurements = 2, t.measurements = ms;
    ev.serial = "SN", ev.station = "fct1";
    ev.body_case = LINEAGENT__V1__TRACE_EVENT__BODY_UNIT_TESTED, ev.unit_tested = &t;
    size_t len;
    uint8_t *buf = pack(&ev, &len);
    ts_batch b = {0};
    ts_batch_add(&b, "t", 0, 1, NULL, 0, buf, len, TS_REC_TRACE);
    char *row = strndup(b.rows[TS_T_TESTS].p, b.rows[TS_T_TESTS].len);
    assert_string_equal(row, "e-1\t2026-01-01 00:00:00.123+00\tLOT-1\tLOT-1-B00001\tSN\tfct1"
                             "\t{\"vbus\",\"a\\\\\"b\\\\\\\\c\\td\"}\t{5,NaN}\t{4.75,-Infinity}\t{5.25,2}"
                             "\t{\"V\",\"\"}\t{t,f}\n");
    free(row);
    ts_batch_free(&b);
    free(buf);
}

/* Adds ev to b as the record at offset off. */
static void add(ts_batch *b, const TraceEvent *ev, int64_t off)
{
    size_t len;
    uint8_t *buf = pack(ev, &len);
    ts_batch_add(b, "t", 0, off, NULL, 0, buf, len, TS_REC_TRACE);
    free(buf);
}

/* Facts folded per unit, lot and agent: the latest write and outcome by
 * event time whatever the order they came in, the serial once provisioned,
 * first and last seen; the lot's order facts and completion; seq runs. */
static void test_batch_fold(void **state)
{
    ts_batch b = {0};
    TraceEvent ev = good_event();
    ev.agent_instance_id = "A", ev.order_id = "ORD";
    Lineagent__V1__LotStarted ls = LINEAGENT__V1__LOT_STARTED__INIT;
    Lineagent__V1__FirmwareRelease fw = LINEAGENT__V1__FIRMWARE_RELEASE__INIT;
    fw.version = "1.0.0", fw.sha256 = "aa";
    ls.product = "P", ls.quantity = 10, ls.order_revision = 1, ls.firmware = &fw;
    ev.event_id = "ls", ev.seq = 1, ev.time_ms = 1767225600000LL, ev.board_id = "";
    ev.body_case = LINEAGENT__V1__TRACE_EVENT__BODY_LOT_STARTED, ev.lot_started = &ls;
    add(&b, &ev, 0);
    Lineagent__V1__UnitWritten w = LINEAGENT__V1__UNIT_WRITTEN__INIT;
    w.version = "1.1.0", w.sha256 = "bb", w.readback_sha256 = "bb", w.order_revision = 2;
    ev.event_id = "w2", ev.seq = 3, ev.time_ms += 2000, ev.board_id = "B1", ev.station = "prog2";
    ev.body_case = LINEAGENT__V1__TRACE_EVENT__BODY_UNIT_WRITTEN, ev.unit_written = &w;
    add(&b, &ev, 1);
    Lineagent__V1__UnitWritten w0 = w; /* older, came later */
    w0.version = "1.0.0", w0.sha256 = "aa", w0.readback_sha256 = "aa", w0.order_revision = 1;
    ev.event_id = "w1", ev.seq = 2, ev.time_ms -= 1000, ev.station = "prog1", ev.unit_written = &w0;
    add(&b, &ev, 2);
    Lineagent__V1__UnitProvisioned pr = LINEAGENT__V1__UNIT_PROVISIONED__INIT;
    pr.serial = "SN-1", pr.device_id = "D", pr.certificate_sha256 = "cc";
    ev.event_id = "p", ev.seq = 5, ev.time_ms += 2000, ev.station = "prov";
    ev.body_case = LINEAGENT__V1__TRACE_EVENT__BODY_UNIT_PROVISIONED, ev.unit_provisioned = &pr;
    add(&b, &ev, 3);
    Lineagent__V1__UnitCompleted c = LINEAGENT__V1__UNIT_COMPLETED__INIT;
    c.passed = 1, c.firmware_version = "1.1.0", c.firmware_sha256 = "bb";
    ev.event_id = "c", ev.seq = 6, ev.time_ms += 1000, ev.station = "eol", ev.serial = "SN-1";
    ev.body_case = LINEAGENT__V1__TRACE_EVENT__BODY_UNIT_COMPLETED, ev.unit_completed = &c;
    add(&b, &ev, 4);
    ts_batch_fold(&b);
    char *units = strndup(b.rows[TS_T_UNITS].p, b.rows[TS_T_UNITS].len);
    assert_string_equal(units, "LOT-1\tB1\tORD\tS1\tL1\tSN-1\t2\t1.1.0\tbb\tbb\t2026-01-01 00:00:02.000+00\tprog2"
                               "\tt\t2026-01-01 00:00:04.000+00\t1.1.0\tbb"
                               "\t2026-01-01 00:00:01.000+00\t2026-01-01 00:00:04.000+00\n");
    free(units);
    char *lots = strndup(b.rows[TS_T_LOTS].p, b.rows[TS_T_LOTS].len);
    assert_string_equal(lots, "LOT-1\tORD\tS1\tL1\tP\t10\t2026-01-01 00:00:00.000+00\t\\N\t\\N\t\\N\n");
    free(lots);
    char *revs = strndup(b.rows[TS_T_REVISIONS].p, b.rows[TS_T_REVISIONS].len);
    assert_string_equal(revs, "LOT-1\t1\t1.0.0\taa\t2026-01-01 00:00:00.000+00\n");
    free(revs);
    char *seq = strndup(b.rows[TS_T_SEQ].p, b.rows[TS_T_SEQ].len);
    assert_string_equal(seq, "A\t1\t3\nA\t5\t6\n");
    free(seq);
    size_t writes = 0; /* both writes keep their row */
    for (size_t i = 0; i < b.rows[TS_T_WRITES].len; i++) writes += b.rows[TS_T_WRITES].p[i] == '\n';
    assert_int_equal(writes, 2);
    ts_batch_free(&b);
}

static char *write_file(const char *text)
{
    static char path[] = "/tmp/test_tracestore.XXXXXX";
    strcpy(path, "/tmp/test_tracestore.XXXXXX");
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    FILE *f = fdopen(fd, "w");
    fputs(text, f);
    fclose(f);
    return path;
}

/* Loads text as a config; returns the error with the path replaced by F. */
static const char *config_error(const char *text)
{
    static char err[512], out[512];
    char *path = write_file(text);
    ts_config c;
    int rc = ts_config_load(&c, path, err, sizeof err);
    if (rc == 0) ts_config_free(&c);
    unlink(path);
    if (rc == 0) return NULL;
    snprintf(out, sizeof out, "F%s", err + strlen(path));
    return out;
}

static void test_config_errors(void **state)
{
    assert_null(config_error("[kafka]\ntopic = x\nbootstrap.servers = h:1\n"));
    assert_string_equal(config_error("[kafka]\ntopic = x\n\nbatch_max = 0\n"),
                        "F:4: [kafka] batch_max: must be a whole number in 1..100000");
    assert_string_equal(config_error("[kafka]\nbatchmax = 5\n"), "F:2: unknown key \"batchmax\" in [kafka]");
    assert_string_equal(config_error("[postgres]\nconninfo = a\n[nope]\nx = 1\n"), "F:4: unknown section [nope]");
    assert_string_equal(config_error("[kafka]\nenable.auto.commit = true\n"),
                        "F:2: enable.auto.commit is set by tracestore (offsets live in PostgreSQL; the group is "
                        "[kafka] group)");
    assert_non_null(strstr(config_error("[kafka]\nno.such.property = 1\n"), "F:2: librdkafka: "));
    assert_string_equal(config_error("[postgres]\nconninfo = host=x password=secret\n"),
                        "F: [postgres] conninfo must not hold a password: use password_file");
    assert_string_equal(config_error("[http]\nlisten = 10.0.0.1:80\n"),
                        "F: [http] off loopback (10.0.0.1) tls_cert, tls_key and token_file are required");
    assert_string_equal(config_error("[http]\nlisten = nope\n"),
                        "F: [http] listen must be host:port (port 0: any free port, logged at start)");
    /* a secret file readable by others is refused */
    char *secret = write_file("pw\n");
    chmod(secret, 0644);
    char text[256], secret_path[64];
    snprintf(secret_path, sizeof secret_path, "%s", secret);
    snprintf(text, sizeof text, "[postgres]\npassword_file = %s\n", secret_path);
    assert_non_null(strstr(config_error(text), "is readable by group or others (chmod 600 it)"));
    /* so is PostgreSQL's client key, which goes with its certificate */
    snprintf(text, sizeof text, "[postgres]\nsslcert = c.pem\nsslkey = %s\n", secret_path);
    assert_non_null(strstr(config_error(text), "F: [postgres] sslkey /"));
    assert_non_null(strstr(config_error(text), "is readable by group or others (chmod 600 it)"));
    assert_string_equal(config_error("[postgres]\nsslcert = c.pem\n"), "F: [postgres] sslcert and sslkey go together");
    snprintf(text, sizeof text, "[postgres]\npassword_file = %s\n", secret_path);
    /* a secret file's first line is read at load, and may not be empty */
    chmod(secret_path, 0600);
    assert_null(config_error(text));
    FILE *f = fopen(secret_path, "w");
    fputs("\n", f);
    fclose(f);
    char want[128];
    snprintf(want, sizeof want, "[postgres] password_file %s: empty first line", secret_path);
    assert_non_null(strstr(config_error(text), want));
    unlink(secret_path);
    assert_non_null(strstr(config_error(text), "F:2: [postgres] password_file: cannot read "));
    /* the table's choices, with the line */
    assert_string_equal(config_error("[tracestore]\n\nlog_level = loud\n"),
                        "F:3: [tracestore] log_level: must be error, warn, info or debug");
}

/* deploy/tracestore.conf loads, and names every key of the table. */
static void test_config_deploy_file(void **state)
{
    ts_config c;
    char err[512];
    assert_int_equal(ts_config_load(&c, SRC_DIR "/deploy/tracestore.conf", err, sizeof err), 0);
    char *printed = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&printed, &len);
    ts_config_print(&c, f);
    fclose(f);
    ts_config_free(&c);
    FILE *deploy = fopen(SRC_DIR "/deploy/tracestore.conf", "r");
    char whole[16384];
    size_t n = fread(whole, 1, sizeof whole - 1, deploy);
    whole[n] = '\0';
    fclose(deploy);
    int keys = 0;
    for (char *save = NULL, *line = strtok_r(printed, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
        char key[64];
        int end = 0;
        if (!(sscanf(line, "%63[a-z_.] = %n", key, &end) == 1 && end) &&
            !(sscanf(line, "# %63[a-z_] =%n", key, &end) == 1 && end && !line[end]))
            continue;
        char want[80];
        snprintf(want, sizeof want, "\n%s = ", key);
        char want_commented[80];
        snprintf(want_commented, sizeof want_commented, "\n# %s = ", key);
        if (!strstr(whole, want) && !strstr(whole, want_commented)) fail_msg("deploy/tracestore.conf lacks %s", key);
        keys++;
    }
    assert_true(keys >= 15);
    free(printed);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_decode_good),        cmocka_unit_test(test_decode_refusals),
        cmocka_unit_test(test_decode_unknown_body), cmocka_unit_test(test_decode_field),
        cmocka_unit_test(test_batch_copy_text),    cmocka_unit_test(test_batch_fold),
        cmocka_unit_test(test_batch_test_arrays),
        cmocka_unit_test(test_config_errors),
        cmocka_unit_test(test_config_deploy_file),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
