/* SPDX-License-Identifier: Apache-2.0 */
/* test_mqtt_persist.c - Paho's persistence callbacks on the spool: what Paho
 * stores survives closing and reopening (a restart), per client namespace. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <MQTTAsync.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "mqtt_persist.h"
#include "tmpdir.h"

static tmpdir tmp;
static const char *dir = tmp.path; /* the directory; "" outside setup..teardown */
static char path[128];

static void free_keys(char **keys, int n)
{
    for (int i = 0; i < n; i++) MQTTAsync_free(keys[i]);
    MQTTAsync_free(keys);
}

static void test_store_survives_reopen(void **state)
{
    mqtt_persist_ctx ctx = {path, {"FULL", 0}};
    MQTTClient_persistence p;
    mqtt_persist_init(&p, &ctx);
    void *h, *other;
    assert_int_equal(p.popen(&h, "lineagent-S1-L1", "tcp://127.0.0.1:1883", p.context), 0);
    assert_int_equal(p.popen(&other, "someone-else", "tcp://127.0.0.1:1883", p.context), 0);
    char *bufs[] = {"\x30\x10", "lineagent/S1/L1/orders", "{\"orderId\":\"WO-1\"}"};
    int lens[] = {2, 22, 18};
    assert_int_equal(p.pput(h, "r-7", 3, bufs, lens), 0);
    assert_int_equal(p.pput(h, "q-0000000001", 1, bufs + 2, lens + 2), 0);
    assert_int_equal(p.pput(other, "r-9", 1, bufs, lens), 0);
    assert_int_equal(p.pclose(h), 0);

    /* a restarted agent finds Paho's queue where it left it */
    assert_int_equal(p.popen(&h, "lineagent-S1-L1", "tcp://127.0.0.1:1883", p.context), 0);
    char **keys;
    int n;
    assert_int_equal(p.pkeys(h, &keys, &n), 0);
    assert_int_equal(n, 2);
    assert_string_equal(keys[0], "q-0000000001");
    assert_string_equal(keys[1], "r-7");
    free_keys(keys, n);
    char *buf;
    int len;
    assert_int_equal(p.pget(h, "r-7", &buf, &len), 0);
    assert_int_equal(len, 42);
    assert_memory_equal(buf + 24, "{\"orderId\":\"WO-1\"}", 18);
    MQTTAsync_free(buf);
    assert_int_equal(p.pcontainskey(h, "r-7"), 0);
    assert_int_equal(p.premove(h, "r-7"), 0);
    assert_int_not_equal(p.pcontainskey(h, "r-7"), 0);
    assert_int_not_equal(p.pget(h, "r-7", &buf, &len), 0);
    assert_int_equal(p.pclear(h), 0);
    assert_int_equal(p.pkeys(h, &keys, &n), 0);
    assert_int_equal(n, 0);
    free_keys(keys, n);
    /* another client's store is untouched by clear */
    assert_int_equal(p.pcontainskey(other, "r-9"), 0);
    p.pclose(h);
    p.pclose(other);
}

static void test_open_fails_on_foreign_file(void **state)
{
    char foreign[160];
    snprintf(foreign, sizeof foreign, "%s/foreign.db", dir);
    FILE *f = fopen(foreign, "w");
    fputs("this is not a database, and must stay as it is", f);
    fclose(f);
    mqtt_persist_ctx ctx = {foreign, {"FULL", 0}};
    MQTTClient_persistence p;
    mqtt_persist_init(&p, &ctx);
    void *h = NULL;
    assert_int_equal(p.popen(&h, "c", "tcp://h:1", p.context), MQTTCLIENT_PERSISTENCE_ERROR);
}

static int setup(void **state)
{
    if (tmpdir_make(&tmp, "test_mqtt_persist") != 0) return -1;
    snprintf(path, sizeof path, "%s/spool.db", dir);
    return 0;
}

static int teardown(void **state) { return tmpdir_remove(&tmp); }

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_store_survives_reopen),
        cmocka_unit_test(test_open_fails_on_foreign_file),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
