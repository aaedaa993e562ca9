/* SPDX-License-Identifier: Apache-2.0 */
/* test_config.c - config loading: defaults, validation with line numbers,
 * station/adapter keys, and secrets masked when printed. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "config.h"
#include "order.h"
#include "tmpdir.h"

static tmpdir tmp;
static const char *dir = tmp.path; /* the directory; "" outside setup..teardown */

static const char *write_file(const char *name, const char *text)
{
    const char *p = tmpdir_write(&tmp, name, text);
    assert_non_null(p);
    return p;
}

#define BASE                                                                                                  \
    "[agent]\nsite = S1\nline = L2\nspool = /tmp/x.db\n"                                                      \
    "[mqtt]\nuri = tcp://127.0.0.1:1883\n"                                                                    \
    "[kafka]\nbootstrap.servers = embedded\n"

static int load_err(const char *text, char *err, size_t n)
{
    config c;
    int rc = config_load(&c, write_file("c.conf", text), err, n);
    if (rc == 0) config_free(&c);
    return rc;
}

static void test_defaults_and_stations(void **state)
{
    config c;
    char err[512];
    const char *p = write_file("ok.conf", BASE "[station prog]\nadapter = sim\nsteps = write, verify\n"
                                              "sim.fail_rate = 0.1\n[station fct]\nadapter = sim\nsteps = TEST\n");
    assert_int_equal(config_load(&c, p, err, sizeof err), 0);
    assert_string_equal(c.mqtt_client_id, "lineagent-S1-L2");
    assert_string_equal(c.topic_prefix, "lineagent/S1/L2");
    assert_string_equal(c.kafka_topic, "lineagent.trace.v1");
    assert_int_equal(c.kafka_stall_alarm_ms, 60000);
    assert_string_equal(c.spool_synchronous, "FULL");
    assert_int_equal(c.n_stations, 2);
    assert_string_equal(c.stations[0].name, "prog");
    assert_int_equal(c.stations[0].steps_mask, 1u << LINEAGENT__V1__STEP__WRITE | 1u << LINEAGENT__V1__STEP__VERIFY);
    assert_string_equal(station_config_get(&c.stations[0], "sim.fail_rate"), "0.1");
    assert_null(station_config_get(&c.stations[1], "sim.fail_rate"));
    assert_string_equal(config_kafka_get(&c, "bootstrap.servers"), "embedded");
    config_free(&c);
}

static void test_errors_name_line_and_key(void **state)
{
    char err[512];
    assert_int_equal(load_err(BASE "[station a]\nadapter = sim\nsteps = write\nbogus = 1\n", err, sizeof err), -1);
    assert_non_null(strstr(err, ":12:"));
    assert_non_null(strstr(err, "bogus"));
    assert_int_equal(load_err(BASE "[station a]\nadapter = jtag9000\nsteps = write\n", err, sizeof err), -1);
    assert_non_null(strstr(err, "jtag9000"));
    assert_int_equal(load_err(BASE "[station a]\nadapter = sim\nsteps = write, flash\n", err, sizeof err), -1);
    assert_non_null(strstr(err, "flash"));
    assert_int_equal(load_err(BASE "[station a]\nadapter = sim\nsteps = write\nsim.speed = 3\n", err, sizeof err), -1);
    assert_non_null(strstr(err, "sim.speed"));
    assert_int_equal(load_err(BASE "[agent]\nmax_quantity = lots\n[station a]\nadapter = sim\nsteps = test\n", err,
                              sizeof err), -1);
    assert_non_null(strstr(err, "max_quantity"));
    assert_int_equal(load_err("[agent]\nline = L\nspool = x\n[mqtt]\nuri = tcp://h:1\n[kafka]\nbootstrap.servers = "
                              "embedded\n[station a]\nadapter = sim\nsteps = test\n", err, sizeof err), -1);
    assert_non_null(strstr(err, "site is required"));
    assert_int_equal(load_err(BASE "[mqtt]\nca_file = /etc/ca.pem\n[station a]\nadapter = sim\nsteps = test\n", err,
                              sizeof err), -1);
    assert_non_null(strstr(err, "ssl://"));
    assert_int_equal(load_err(BASE, err, sizeof err), -1);
    assert_non_null(strstr(err, "station"));
    assert_int_equal(load_err(BASE "[plc]\nx = 1\n", err, sizeof err), -1);
    assert_non_null(strstr(err, "[plc]"));
}

static void test_spool_retention_and_limit(void **state)
{
    config c;
    char err[512];
    const char *st = "[station a]\nadapter = sim\nsteps = test\n";
    char text[1024];
    snprintf(text, sizeof text, "%s%s", BASE, st);
    assert_int_equal(config_load(&c, write_file("d.conf", text), err, sizeof err), 0);
    assert_int_equal(c.spool_retention_ms, 30LL * 86400000); /* default 30 days */
    assert_int_equal(c.spool_max_bytes, 0);                  /* default: no limit */
    assert_int_equal(c.spool_min_free_bytes, 32LL << 20);
    config_free(&c);
    snprintf(text, sizeof text, "%s[spool]\nretention = 12h\nmax_bytes = 512M\n%s", BASE, st);
    assert_int_equal(config_load(&c, write_file("r.conf", text), err, sizeof err), 0);
    assert_int_equal(c.spool_retention_ms, 12LL * 3600000);
    assert_int_equal(c.spool_max_bytes, 512LL << 20);
    config_free(&c);
    snprintf(text, sizeof text, "%s[spool]\nretention = 90\nmax_bytes = 2G\nmin_free_bytes = 0\n%s", BASE, st);
    assert_int_equal(config_load(&c, write_file("r.conf", text), err, sizeof err), 0);
    assert_int_equal(c.spool_retention_ms, 90000);
    assert_int_equal(c.spool_max_bytes, 2LL << 30);
    assert_int_equal(c.spool_min_free_bytes, 0);
    config_free(&c);
    const char *bad[] = {"retention = 0", "retention = 3w", "retention = -1d", "retention = d",
                         "max_bytes = 10K", "max_bytes = 1T", "max_bytes = lots", "max_bytes = -5M",
                         "min_free_bytes = 5X"};
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        snprintf(text, sizeof text, "%s[spool]\n%s\n%s", BASE, bad[i], st);
        assert_int_equal(load_err(text, err, sizeof err), -1);
        assert_non_null(strstr(err, ":10:"));
    }
}

/* stall_alarm is the agent's own key, not handed to librdkafka. */
static void test_kafka_stall_alarm(void **state)
{
    config c;
    char err[512];
    const char *st = "[station a]\nadapter = sim\nsteps = test\n";
    char text[1024];
    const struct {
        const char *v;
        int64_t ms;
    } ok[] = {{"5m", 300000}, {"0", 0}, {"2s", 2000}};
    for (size_t i = 0; i < sizeof ok / sizeof *ok; i++) {
        snprintf(text, sizeof text, "%s[kafka]\nstall_alarm = %s\n%s", BASE, ok[i].v, st);
        assert_int_equal(config_load(&c, write_file("k.conf", text), err, sizeof err), 0);
        assert_int_equal(c.kafka_stall_alarm_ms, ok[i].ms);
        assert_null(config_kafka_get(&c, "stall_alarm"));
        config_free(&c);
    }
    snprintf(text, sizeof text, "%s[kafka]\nstall_alarm = soon\n%s", BASE, st);
    assert_int_equal(load_err(text, err, sizeof err), -1);
    assert_non_null(strstr(err, "stall_alarm"));
}

/* [http] listen takes host:port (port 0: any free one) and nothing else;
 * [agent] user is a plain string. */
static void test_http_listen_and_user(void **state)
{
    config c;
    char err[512], text[1024];
    const char *st = "[station a]\nadapter = sim\nsteps = test\n";
    snprintf(text, sizeof text, "%s%s", BASE, st);
    assert_int_equal(config_load(&c, write_file("h.conf", text), err, sizeof err), 0);
    assert_null(c.http_listen);
    assert_null(c.agent_user);
    config_free(&c);
    const char *ok[] = {"127.0.0.1:9464", "[::1]:0", "localhost:65535"};
    for (size_t i = 0; i < sizeof ok / sizeof *ok; i++) {
        snprintf(text, sizeof text, "[agent]\nuser = nobody\n%s[http]\nlisten = %s\n%s", BASE, ok[i], st);
        assert_int_equal(config_load(&c, write_file("h.conf", text), err, sizeof err), 0);
        assert_string_equal(c.http_listen, ok[i]);
        assert_string_equal(c.agent_user, "nobody");
        config_free(&c);
    }
    const char *bad[] = {"9464", ":9464", "127.0.0.1:", "127.0.0.1:65536", "127.0.0.1:http"};
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        snprintf(text, sizeof text, "%s[http]\nlisten = %s\n%s", BASE, bad[i], st);
        assert_int_equal(load_err(text, err, sizeof err), -1);
        assert_non_null(strstr(err, "c.conf:10: [http] listen: must be host:port"));
    }
    snprintf(text, sizeof text, "%s[http]\nport = 1\n%s", BASE, st);
    assert_int_equal(load_err(text, err, sizeof err), -1);
    assert_non_null(strstr(err, "unknown key \"port\" in [http]"));
}

static void test_secrets_never_printed(void **state)
{
    config c;
    char err[512];
    write_file("pw", "hunter2-mqtt\n");
    char text[1024];
    snprintf(text, sizeof text,
             "%s[mqtt]\nusername = line2\npassword_file = %s/pw\n[kafka]\nsasl.password = kafka-s3cret\n"
             "security.protocol = SASL_SSL\n[station a]\nadapter = sim\nsteps = test\n",
             BASE, dir);
    assert_int_equal(config_load(&c, write_file("s.conf", text), err, sizeof err), 0);
    assert_string_equal(c.mqtt_password, "hunter2-mqtt");
    char *buf = NULL;
    size_t len = 0;
    FILE *out = open_memstream(&buf, &len);
    config_print(&c, out);
    fclose(out);
    assert_null(strstr(buf, "hunter2"));
    assert_null(strstr(buf, "kafka-s3cret"));
    assert_non_null(strstr(buf, "sasl.password = ********"));
    assert_non_null(strstr(buf, "security.protocol = SASL_SSL"));
    free(buf);
    config_free(&c);
}

/* Issue 20 finding 8: a step the station's adapter has no callback for is
 * refused at load (so at start and by check-config), naming the station,
 * the step and the adapter, instead of failing every board at run time. An
 * adapter key's value is checked by the adapter's table, naming its line. */
static void test_station_steps_and_adapter_keys(void **state)
{
    char err[512];
    assert_int_equal(load_err(BASE "[station prog2]\nadapter = gdb\nsteps = write, verify, test\ngdb.port = 3333\n",
                              err, sizeof err), -1);
    assert_non_null(strstr(err, ":11: [station prog2] steps: adapter gdb cannot perform test "
                                "(it performs write, verify, provision, lock)"));
    assert_int_equal(load_err(BASE "[station prog2]\nadapter = gdb\nsteps = write, verify, lock\ngdb.port = 3333\n",
                              err, sizeof err), 0);
    assert_int_equal(load_err(BASE "[station a]\nadapter = sim\nsteps = test\nsim.fail_rate = 2\n", err, sizeof err),
                     -1);
    assert_non_null(strstr(err, ":12: [station a] sim.fail_rate: must be a number in 0..1"));
    assert_int_equal(load_err(BASE "[station g]\ngdb.port = 0x10000\nadapter = gdb\nsteps = write\n", err, sizeof err),
                     -1);
    assert_non_null(strstr(err, ":10: [station g] gdb.port: must be a whole number in 1..65535"));
}

/* Issue 20 finding 10: librdkafka's secrets have <key>_file forms, read from
 * the file, handed to librdkafka under <key>, never printed. */
static void test_kafka_secret_files(void **state)
{
    config c;
    char err[512], text[1024];
    write_file("kpw", "kafka-from-file\n");
    write_file("kkey", "key-pass-from-file");
    snprintf(text, sizeof text,
             "%s[kafka]\nsasl.password_file = %s/kpw\nssl.key.password_file = %s/kkey\n"
             "[station a]\nadapter = sim\nsteps = test\n", BASE, dir, dir);
    assert_int_equal(config_load(&c, write_file("kf.conf", text), err, sizeof err), 0);
    assert_string_equal(config_kafka_get(&c, "sasl.password"), "kafka-from-file");
    assert_string_equal(config_kafka_get(&c, "ssl.key.password"), "key-pass-from-file");
    assert_null(config_kafka_get(&c, "sasl.password_file")); /* not a librdkafka property */
    char *buf = NULL;
    size_t len = 0;
    FILE *out = open_memstream(&buf, &len);
    config_print(&c, out);
    fclose(out);
    assert_null(strstr(buf, "from-file"));
    char want[300];
    snprintf(want, sizeof want, "\nsasl.password_file = %s/kpw\n", dir);
    assert_non_null(strstr(buf, want));
    free(buf);
    config_free(&c);
    snprintf(text, sizeof text, "%s[kafka]\nsasl.password = inline\nsasl.password_file = %s/kpw\n"
             "[station a]\nadapter = sim\nsteps = test\n", BASE, dir);
    assert_int_equal(load_err(text, err, sizeof err), -1);
    assert_non_null(strstr(err, ":11: [kafka] sasl.password_file: sasl.password is set inline too"));
    snprintf(text, sizeof text, "%s[kafka]\nsasl.password_file = %s/nonexistent\n[station a]\nadapter = sim\n"
             "steps = test\n", BASE, dir);
    assert_int_equal(load_err(text, err, sizeof err), -1);
    assert_non_null(strstr(err, ":10: [kafka] sasl.password_file: cannot read"));
}

/* What config_load writes to stderr (the log) for text at mode. */
static char *load_log(const char *text, mode_t mode)
{
    const char *p = write_file("w.conf", text);
    chmod(p, mode);
    char logp[256];
    snprintf(logp, sizeof logp, "%s/stderr", dir);
    fflush(stderr);
    int saved = dup(2), fd = open(logp, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    dup2(fd, 2);
    config c;
    char err[512];
    int rc = config_load(&c, p, err, sizeof err);
    fflush(stderr);
    dup2(saved, 2);
    close(saved);
    close(fd);
    assert_int_equal(rc, 0);
    config_free(&c);
    static char log[2048];
    FILE *f = fopen(logp, "r");
    log[fread(log, 1, sizeof log - 1, f)] = 0;
    fclose(f);
    return log;
}

/* Issue 20 finding 10: an inline secret in a file others can read is warned
 * about, naming the key and the fix, never the secret. */
static void test_inline_secret_in_readable_file_warns(void **state)
{
    char text[1024];
    snprintf(text, sizeof text, "%s[kafka]\nsasl.password = inl1ne-s3cret\n[station a]\nadapter = sim\nsteps = test\n",
             BASE);
    const char *log = load_log(text, 0644);
    assert_non_null(strstr(log, "w.conf:10: [kafka] sasl.password is inline in a file readable by others (mode 0644)"));
    assert_non_null(strstr(log, "use sasl.password_file"));
    assert_null(strstr(log, "inl1ne"));
    assert_non_null(strstr(load_log(text, 0640), "readable by its group"));
    assert_string_equal(load_log(text, 0600), "");
    write_file("kpw", "kafka-from-file\n");
    snprintf(text, sizeof text, "%s[kafka]\nsasl.password_file = %s/kpw\n[station a]\nadapter = sim\nsteps = test\n",
             BASE, dir);
    assert_string_equal(load_log(text, 0644), "");
}

static int setup(void **state) { return tmpdir_make(&tmp, "test_config"); }
static int teardown(void **state) { return tmpdir_remove(&tmp); }

/* [provisioning]: defaults, https with pinned CA and client certificate,
 * plain http only to loopback, cert and key together, url required. */
static void test_provisioning(void **state)
{
#define ST "[station p]\nadapter = sim\nsteps = provision\n"
    config c;
    char err[512];
    const char *p = write_file("prov.conf", BASE "[provisioning]\nurl = https://pv.factory:8443\nca_file = /ca.pem\n"
                                                 "cert_file = /st.pem\nkey_file = /st.key\n" ST);
    assert_int_equal(config_load(&c, p, err, sizeof err), 0);
    assert_string_equal(c.prov_url, "https://pv.factory:8443");
    assert_int_equal(c.prov_timeout_ms, 5000);
    assert_int_equal(c.prov_retries, 3);
    config_free(&c);
    assert_int_equal(load_err(BASE "[provisioning]\nurl = http://127.0.0.1:8080\nretries = 0\n" ST, err, sizeof err), 0);
    assert_int_equal(load_err(BASE "[provisioning]\nurl = http://pv.factory:8080\n" ST, err, sizeof err), -1);
    assert_non_null(strstr(err, "loopback"));
    assert_int_equal(load_err(BASE "[provisioning]\nurl = http://127.0.0.1.evil.example/\n" ST, err, sizeof err), -1);
    assert_int_equal(load_err(BASE "[provisioning]\nurl = http://[::1]:80\n" ST, err, sizeof err), 0);
    assert_int_equal(load_err(BASE "[provisioning]\nurl = http://localhost\n" ST, err, sizeof err), 0);
    assert_int_equal(load_err(BASE "[provisioning]\nurl = https://pv:1\ncert_file = /a\n" ST, err, sizeof err), -1);
    assert_int_equal(load_err(BASE "[provisioning]\nca_file = /a\n" ST, err, sizeof err), -1);
    assert_int_equal(load_err(BASE "[provisioning]\nurl = ftp://pv\n" ST, err, sizeof err), -1);
    assert_int_equal(load_err(BASE "[provisioning]\nurl = https://pv\nretries = 99\n" ST, err, sizeof err), -1);
    assert_int_equal(load_err(BASE "[provisioning]\nurl = https://pv\nbogus = 1\n" ST, err, sizeof err), -1);
#undef ST
}

/* [firmware] allowed_urls: none by default (every order refused), a list
 * kept as written, and every prefix in it checked, the error naming the
 * line and the key. */
static void test_firmware_allowed_urls(void **state)
{
#define ST "[station a]\nadapter = sim\nsteps = test\n"
    config c;
    char err[512];
    assert_int_equal(config_load(&c, write_file("fw0.conf", BASE ST), err, sizeof err), 0);
    assert_null(c.firmware_allowed_urls);
    config_free(&c);
    const char *list = "file:///srv/firmware/, https://fw.example.com/releases/";
    char text[1024];
    snprintf(text, sizeof text, "%s[firmware]\nallowed_urls = %s\n%s", BASE, list, ST);
    assert_int_equal(config_load(&c, write_file("fw1.conf", text), err, sizeof err), 0);
    assert_string_equal(c.firmware_allowed_urls, list);
    char *printed = NULL;
    size_t plen = 0;
    FILE *out = open_memstream(&printed, &plen);
    config_print(&c, out);
    fclose(out);
    assert_non_null(strstr(printed, "[firmware]"));
    assert_non_null(strstr(printed, list));
    free(printed);
    config_free(&c);
    const char *bad[] = {"file:///srv/firmware",          /* no trailing '/' */
                         "ftp://fw.example.com/",         /* scheme */
                         "file:///srv/../etc/",           /* dot segment */
                         "https:///releases/",            /* no host */
                         "file:///srv/%2e%2e/",           /* escapes */
                         "file:///srv/fw/, /etc/"};       /* the second prefix */
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        snprintf(text, sizeof text, "%s[firmware]\nallowed_urls = %s\n%s", BASE, bad[i], ST);
        assert_int_equal(load_err(text, err, sizeof err), -1);
        assert_non_null(strstr(err, ":10:"));
        assert_non_null(strstr(err, "[firmware] allowed_urls"));
    }
    assert_int_equal(load_err(BASE "[firmware]\nallowed = file:///srv/\n" ST, err, sizeof err), -1);
    assert_non_null(strstr(err, "allowed"));
#undef ST
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_defaults_and_stations),
        cmocka_unit_test(test_errors_name_line_and_key),
        cmocka_unit_test(test_secrets_never_printed),
        cmocka_unit_test(test_provisioning),
        cmocka_unit_test(test_firmware_allowed_urls),
        cmocka_unit_test(test_spool_retention_and_limit),
        cmocka_unit_test(test_kafka_stall_alarm),
        cmocka_unit_test(test_http_listen_and_user),
        cmocka_unit_test(test_station_steps_and_adapter_keys),
        cmocka_unit_test(test_kafka_secret_files),
        cmocka_unit_test(test_inline_secret_in_readable_file_warns),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
