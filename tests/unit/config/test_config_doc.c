/* SPDX-License-Identifier: Apache-2.0 */
/* test_config_doc.c - deploy/lineagent.conf, the commented reference, and
 * the key tables agree: every key a table declares (the agent's sections,
 * [station NAME]'s own keys, every registered adapter's keys) is documented
 * in its section, and every documented key is declared; in [kafka], a key no
 * table declares must be one librdkafka knows (a secret's <key>_file too).
 *
 * A documented key is a line "KEY = VALUE" or "# KEY = VALUE" (one space
 * after '#'); its section is the last "[NAME]" or "# [NAME]" above it, every
 * [station NAME] counting as "station". */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <ctype.h>
#include <librdkafka/rdkafka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "adapter.h"
#include "config.h"

#define DOC_MAX 512

typedef struct doc_key {
    char section[64], key[64];
    int line, declared;
} doc_key;

static doc_key doc[DOC_MAX];
static size_t n_doc;

static void doc_read(const char *path)
{
    FILE *f = fopen(path, "r");
    assert_non_null(f);
    char line[512], section[64] = "";
    int lineno = 0;
    while (fgets(line, sizeof line, f)) {
        lineno++;
        const char *p = line;
        if (p[0] == '#' && p[1] == ' ') p += 2;
        char name[64];
        int n = 0;
        if (sscanf(p, "[%63[^]]]%n", name, &n) == 1 && n > 0) {
            snprintf(section, sizeof section, "%s", strncmp(name, "station ", 8) == 0 ? "station" : name);
            continue;
        }
        size_t klen = 0;
        while (isalnum((unsigned char)p[klen]) || p[klen] == '_' || p[klen] == '.') klen++;
        if (klen == 0 || klen >= sizeof doc[0].key || !isalpha((unsigned char)p[0])) continue;
        const char *q = p + klen;
        while (*q == ' ') q++;
        if (*q != '=') continue;
        assert_true(n_doc < DOC_MAX);
        doc_key *d = &doc[n_doc++];
        snprintf(d->section, sizeof d->section, "%s", section);
        snprintf(d->key, sizeof d->key, "%.*s", (int)klen, p);
        d->line = lineno;
    }
    fclose(f);
}

/* Marks section/key documented-and-declared; fails when it is not documented. */
static void declared(const char *section, const char *prefix, const char *key)
{
    char full[96];
    snprintf(full, sizeof full, "%s%s", prefix, key);
    int found = 0;
    for (size_t i = 0; i < n_doc; i++)
        if (strcmp(doc[i].section, section) == 0 && strcmp(doc[i].key, full) == 0) doc[i].declared = found = 1;
    if (!found) fail_msg("deploy/lineagent.conf does not document [%s] %s, which a table declares", section, full);
}

static void test_every_declared_key_is_documented(void **state)
{
    const char *name;
    const conf_key *keys;
    for (size_t i = 0; (keys = config_section_keys(i, &name)); i++)
        for (const conf_key *k = keys; k->name; k++) declared(name, "", k->name);
    char names[256];
    snprintf(names, sizeof names, "%s", adapter_names());
    char *save = NULL;
    int n_adapters = 0;
    for (char *a = strtok_r(names, ", ", &save); a; a = strtok_r(NULL, ", ", &save), n_adapters++) {
        const adapter *ad = adapter_find(a);
        char prefix[32];
        snprintf(prefix, sizeof prefix, "%s.", ad->name);
        for (const conf_key *k = ad->keys; k->name; k++) declared("station", prefix, k->name);
    }
    assert_true(n_adapters > 0);
}

static void test_every_documented_key_is_declared(void **state)
{
    test_every_declared_key_is_documented(state); /* marks the declared ones */
    rd_kafka_conf_t *kc = rd_kafka_conf_new();
    for (size_t i = 0; i < n_doc; i++) {
        doc_key *d = &doc[i];
        if (d->declared) continue;
        if (strcmp(d->section, "kafka") == 0) {
            char prop[64], errstr[256];
            snprintf(prop, sizeof prop, "%s", d->key);
            size_t n = strlen(prop);
            if (n > 5 && strcmp(prop + n - 5, "_file") == 0 && config_is_secret(prop)) prop[n - 5] = 0;
            if (rd_kafka_conf_set(kc, prop, "1", errstr, sizeof errstr) != RD_KAFKA_CONF_UNKNOWN) continue;
        }
        fail_msg("deploy/lineagent.conf:%d documents [%s] %s, which no table declares", d->line, d->section, d->key);
    }
    rd_kafka_conf_destroy(kc);
}

static int setup(void **state)
{
    doc_read(SRC_DIR "/deploy/lineagent.conf");
    return n_doc ? 0 : -1;
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_every_declared_key_is_documented),
        cmocka_unit_test(test_every_documented_key_is_declared),
    };
    return cmocka_run_group_tests(tests, setup, NULL);
}
