/* SPDX-License-Identifier: Apache-2.0 */
/* test_conf_table.c - the table-driven configuration engine: each type's
 * parsing and range, defaults, required and unknown keys, "[section] key:
 * problem" errors, FILE:LINE from an INI file, printing with secrets masked,
 * secret files, and a wrong table refused. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "conf_table.h"
#include "tmpdir.h"

typedef struct demo {
    char *name, *uri, *token, *pw_file, *pw;
    int on, port;
    int64_t big;
    uint32_t word;
    uint64_t addr;
    double rate;
    int64_t bytes, wait_ms, limit;
    const char *mode;
    uint32_t parity; /* custom: "even" = 2, "odd" = 1 */
} demo;

static const char *const demo_modes[] = {"FULL", "NORMAL", NULL};
static const char *const demo_schemes[] = {"tcp://", "ssl://", NULL};

static int parity_parse(const char *v, void *field, char *problem, size_t len)
{
    uint32_t x = strcmp(v, "even") == 0 ? 2 : strcmp(v, "odd") == 0 ? 1 : 0;
    if (!x) return snprintf(problem, len, "must be even or odd"), -1;
    memcpy(field, &x, sizeof x);
    return 0;
}

static void parity_format(const void *field, char *out, size_t len)
{
    snprintf(out, len, "%s", *(const uint32_t *)field == 2 ? "even" : "odd");
}

static const conf_key demo_keys[] = {
    {"name", CONF_STRING, .flags = CONF_REQUIRED, CONF_AT(demo, name), .desc = "a name"},
    {"uri", CONF_STRING, "tcp://h:1", .choices = demo_schemes, CONF_AT(demo, uri), .desc = "a URI"},
    {"token", CONF_STRING, .flags = CONF_SECRET, CONF_AT(demo, token), .desc = "an inline secret"},
    {"password_file", CONF_SECRET_FILE, CONF_AT(demo, pw_file), .secret_at = offsetof(demo, pw),
     .desc = "a secret's file"},
    {"on", CONF_BOOL, "no", CONF_AT(demo, on), .desc = "a switch"},
    {"port", CONF_INT, "80", 1, 65535, CONF_AT(demo, port), .desc = "a port"},
    {"big", CONF_INT, "0", -5, 10000000000LL, CONF_AT(demo, big), .desc = "a wide number"},
    {"word", CONF_HEX, NULL, CONF_AT(demo, word), .desc = "a 32-bit word"},
    {"addr", CONF_HEX, "0x08000000", CONF_AT(demo, addr), .desc = "an address"},
    {"rate", CONF_DOUBLE, "0.5", .dmin = 0, .dmax = 1, CONF_AT(demo, rate), .desc = "a rate"},
    {"bytes", CONF_SIZE, "32M", 1024, INT64_MAX, CONF_AT(demo, bytes), .desc = "a size"},
    {"wait", CONF_DURATION, "30d", 1000, 86400000LL * 365, CONF_AT(demo, wait_ms), .desc = "a duration"},
    {"limit", CONF_SIZE, "0", 1 << 20, INT64_MAX, .flags = CONF_ZERO_OFF, CONF_AT(demo, limit), .desc = "0: none"},
    {"mode", CONF_ENUM, "FULL", .choices = demo_modes, CONF_AT(demo, mode), .desc = "a choice"},
    {"parity", CONF_CUSTOM, "even", .parse = parity_parse, .format = parity_format, CONF_AT(demo, parity),
     .desc = "a custom value"},
    {0}};

static tmpdir tmp;

static const char *write_file(const char *name, const char *text)
{
    const char *p = tmpdir_write(&tmp, name, text);
    assert_non_null(p);
    return p;
}

/* Sets one key on a fresh section; returns conf_set's result, err filled. */
static int set1(demo *d, const char *key, const char *value, char *err, size_t len)
{
    conf_section s;
    memset(d, 0, sizeof *d);
    assert_int_equal(conf_init(&s, "demo", "x.", demo_keys, d, err, len), 0);
    int rc = conf_set(&s, key, value, err, len);
    conf_free(demo_keys, d);
    return rc;
}

static void test_defaults_and_values(void **state)
{
    demo d = {0};
    char err[256];
    conf_section s;
    assert_int_equal(conf_init(&s, "demo", "x.", demo_keys, &d, err, sizeof err), 0);
    assert_string_equal(d.uri, "tcp://h:1");
    assert_int_equal(d.port, 80);
    assert_int_equal(d.addr, 0x08000000);
    assert_int_equal(d.bytes, 32LL << 20);
    assert_int_equal(d.wait_ms, 30LL * 86400000);
    assert_string_equal(d.mode, "FULL");
    assert_int_equal(d.parity, 2);
    const struct {
        const char *k, *v;
    } set[] = {{"x.name", "n1"},      {"x.uri", "ssl://b:8883"}, {"x.on", "TRUE"},    {"x.port", "0x1F90"},
               {"x.big", "-5"},       {"x.word", "0xFFFFFFFF"},  {"x.addr", "4096"},  {"x.rate", "1"},
               {"x.bytes", "2G"},     {"x.wait", "1500ms"},      {"x.limit", "0"},    {"x.mode", "normal"},
               {"x.parity", "odd"}};
    for (size_t i = 0; i < sizeof set / sizeof *set; i++)
        if (conf_set(&s, set[i].k, set[i].v, err, sizeof err) != 0) fail_msg("%s", err);
    assert_int_equal(conf_done(&s, err, sizeof err), 0);
    assert_string_equal(d.name, "n1");
    assert_string_equal(d.uri, "ssl://b:8883");
    assert_int_equal(d.on, 1);
    assert_int_equal(d.port, 8080);
    assert_int_equal(d.big, -5);
    assert_int_equal(d.word, 0xFFFFFFFFu);
    assert_int_equal(d.addr, 4096);
    assert_true(d.rate == 1.0);
    assert_int_equal(d.bytes, 2LL << 30);
    assert_int_equal(d.wait_ms, 1500);
    assert_int_equal(d.limit, 0);
    assert_ptr_equal(d.mode, demo_modes[1]); /* the table's spelling */
    assert_int_equal(d.parity, 1);
    conf_free(demo_keys, &d);
    assert_null(d.name);
    assert_null(d.uri);
}

static void test_errors_name_section_key_and_rule(void **state)
{
    demo d;
    char err[256];
    const struct {
        const char *k, *v, *want;
    } bad[] = {
        {"x.port", "0", "[demo] x.port: must be a whole number in 1..65535"},
        {"x.port", "80x", "x.port: must be a whole number"},
        {"x.big", "10000000001", "x.big: must be a whole number in -5..10000000000"},
        {"x.word", "0x100000000", "x.word: must be a number in 0..0xffffffff"},
        {"x.addr", "-1", "x.addr: must be a number in 0..0xffffffffffffffff"},
        {"x.rate", "1.5", "x.rate: must be a number in 0..1"},
        {"x.bytes", "1T", "x.bytes: must be a size (bytes, or with K, M or G) of at least 1K"},
        {"x.bytes", "-5M", "x.bytes: must be a size"},
        {"x.wait", "3w", "x.wait: must be a duration (500ms, 45s, 90m, 12h, 30d; plain: seconds) in 1s..365d"},
        {"x.wait", "0", "in 1s..365d"},
        {"x.wait", "-1d", "x.wait: must be a duration"},
        {"x.limit", "10K", "x.limit: must be 0 (none) or a size (bytes, or with K, M or G) of at least 1M"},
        {"x.mode", "FAST", "x.mode: must be FULL or NORMAL"},
        {"x.on", "maybe", "x.on: must be true or false"},
        {"x.uri", "http://h", "x.uri: must start with tcp:// or ssl://"},
        {"x.name", "", "x.name: must not be empty"},
        {"x.parity", "none", "x.parity: must be even or odd"},
        {"x.password_file", "/nonexistent/pw", "x.password_file: cannot read /nonexistent/pw"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        assert_int_equal(set1(&d, bad[i].k, bad[i].v, err, sizeof err), -1);
        if (!strstr(err, bad[i].want)) fail_msg("%s = %s: \"%s\" lacks \"%s\"", bad[i].k, bad[i].v, err, bad[i].want);
    }
    assert_int_equal(set1(&d, "x.nosuch", "1", err, sizeof err), CONF_UNKNOWN);
    assert_string_equal(err, "unknown key \"x.nosuch\" in [demo]");
    assert_int_equal(set1(&d, "port", "1", err, sizeof err), CONF_UNKNOWN); /* the prefix is part of the name */
}

static void test_required_and_kv(void **state)
{
    demo d = {0};
    char err[256];
    conf_section s;
    kv_pair none[] = {{"x.port", "8"}};
    assert_int_equal(conf_init(&s, "station a", "x.", demo_keys, &d, err, sizeof err), 0);
    size_t failed = 99;
    assert_int_equal(conf_load_kv(&s, none, 1, &failed, err, sizeof err), -1);
    assert_string_equal(err, "[station a] x.name is required");
    assert_int_equal(failed, 1);
    assert_null(d.uri); /* freed on failure */
    kv_pair kv[] = {{"x.name", "a"}, {"x.port", "9"}, {"x.speed", "3"}};
    assert_int_equal(conf_init(&s, "station a", "x.", demo_keys, &d, err, sizeof err), 0);
    assert_int_equal(conf_load_kv(&s, kv, 3, &failed, err, sizeof err), -1);
    assert_int_equal(failed, 2);
    assert_non_null(strstr(err, "x.speed"));
    assert_int_equal(conf_init(&s, "station a", "x.", demo_keys, &d, err, sizeof err), 0);
    assert_int_equal(conf_load_kv(&s, kv, 2, &failed, err, sizeof err), 0);
    assert_int_equal(d.port, 9);
    conf_free(demo_keys, &d);
}

static void test_print_masks_secrets(void **state)
{
    demo d = {0};
    char err[256];
    conf_section s;
    assert_int_equal(conf_init(&s, "demo", "x.", demo_keys, &d, err, sizeof err), 0);
    char path[300];
    snprintf(path, sizeof path, "%s", write_file("pw", "hunter2\nsecond line\n"));
    assert_int_equal(conf_set(&s, "x.password_file", path, err, sizeof err), 0);
    assert_string_equal(d.pw, "hunter2");
    assert_int_equal(conf_set(&s, "x.token", "t0ken-inline", err, sizeof err), 0);
    assert_int_equal(conf_set(&s, "x.wait", "90m", err, sizeof err), 0);
    char *buf = NULL;
    size_t len = 0;
    FILE *out = open_memstream(&buf, &len);
    conf_print(&s, out);
    fclose(out);
    assert_null(strstr(buf, "hunter2"));
    assert_null(strstr(buf, "t0ken"));
    assert_non_null(strstr(buf, "x.token = ********\n"));
    assert_non_null(strstr(buf, "\nx.password_file = "));
    assert_non_null(strstr(buf, "# a duration (default 30d)\nx.wait = 90m\n"));
    assert_non_null(strstr(buf, "\n# x.name =\n"));     /* unset string */
    assert_non_null(strstr(buf, "\n# x.word =\n"));     /* no default, not given */
    assert_non_null(strstr(buf, "\nx.addr = 0x8000000\n"));
    assert_non_null(strstr(buf, "\nx.bytes = 32M\n"));
    assert_non_null(strstr(buf, "\nx.parity = even\n"));
    free(buf);
    conf_free(demo_keys, &d);
    assert_null(d.pw);
}

typedef struct seen {
    int n, lines[8];
    char last[64];
} seen;

static int on_line(void *user, const char *section, const char *key, const char *value, int line, char *err,
                   size_t len)
{
    seen *s = user;
    if (s->n < 8) s->lines[s->n] = line;
    s->n++;
    snprintf(s->last, sizeof s->last, "[%s] %s", section, key);
    if (strcmp(key, "bad") == 0) return snprintf(err, len, "[%s] bad: no good", section), -1;
    return 0;
}

static void test_parse_file_lines(void **state)
{
    char err[512];
    const char *p = write_file("f.ini", "[a]\nk1 = 1\n# comment\n\n; note\nk2 = 2\n[b]\nbad = 3\nk3 = 4\n");
    seen s = {0};
    assert_int_equal(conf_parse_file(p, on_line, &s, err, sizeof err), -1);
    assert_int_equal(s.lines[0], 2);
    assert_int_equal(s.lines[1], 6);
    assert_string_equal(s.last, "[b] bad");
    assert_int_equal(s.n, 3); /* parsing stops at the first error */
    char want[300];
    snprintf(want, sizeof want, "%s:8: [b] bad: no good", p);
    assert_string_equal(err, want);
    p = write_file("g.ini", "[a]\nk1 = 1\nno equals sign here\n");
    assert_int_equal(conf_parse_file(p, on_line, &(seen){0}, err, sizeof err), -1);
    assert_non_null(strstr(err, "g.ini:3: syntax error"));
    assert_int_equal(conf_parse_file("/nonexistent.ini", on_line, &(seen){0}, err, sizeof err), -1);
    assert_non_null(strstr(err, "/nonexistent.ini: cannot open"));
    /* A line over libinih's buffer is refused by its number, not split into
     * a second line; one that just fits (199 characters) is read whole. */
    char text[1024];
    snprintf(text, sizeof text, "[a]\nk1 = %0194d\nk2 = %0300d\nk3 = 3\n", 0, 0);
    p = write_file("h.ini", text);
    seen h = {0};
    assert_int_equal(conf_parse_file(p, on_line, &h, err, sizeof err), -1);
    assert_non_null(strstr(err, "h.ini:3: line longer than 199 characters"));
    assert_int_equal(h.n, 3); /* k1, the head of k2, k3: nothing read from k2's tail */
    snprintf(text, sizeof text, "[a]\nk1 = %0194d\nk2 = 2\n", 0);
    p = write_file("i.ini", text);
    assert_int_equal(conf_parse_file(p, on_line, &(seen){0}, err, sizeof err), 0);
}

/* A row whose default does not parse, or whose field is the wrong size, is
 * a bug in the table: refused the first time the table is used. */
static void test_wrong_table_refused(void **state)
{
    demo d = {0};
    char err[256];
    conf_section s;
    const conf_key bad_default[] = {{"port", CONF_INT, "99999", 1, 65535, CONF_AT(demo, port), .desc = "p"}, {0}};
    assert_int_equal(conf_init(&s, "t", "", bad_default, &d, err, sizeof err), -1);
    assert_non_null(strstr(err, "port (default \"99999\")"));
    const conf_key bad_width[] = {{"word", CONF_INT, "1", 0, 1LL << 40, CONF_AT(demo, word), .desc = "w"}, {0}};
    assert_int_equal(conf_init(&s, "t", "", bad_width, &d, err, sizeof err), -1);
    const conf_key bad_string[] = {{"port", CONF_STRING, "x", CONF_AT(demo, port), .desc = "p"}, {0}};
    assert_int_equal(conf_init(&s, "t", "", bad_string, &d, err, sizeof err), -1);
}

static int setup(void **state) { return tmpdir_make(&tmp, "test_conf_table"); }
static int teardown(void **state) { return tmpdir_remove(&tmp); }

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_defaults_and_values),
        cmocka_unit_test(test_errors_name_section_key_and_rule),
        cmocka_unit_test(test_required_and_kv),
        cmocka_unit_test(test_print_masks_secrets),
        cmocka_unit_test(test_parse_file_lines),
        cmocka_unit_test(test_wrong_table_refused),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
