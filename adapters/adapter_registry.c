/* SPDX-License-Identifier: Apache-2.0 */
/* adapter_registry.c - the list of station adapters compiled into the agent,
 * and the helpers they share. */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "adapter.h"

/* Every adapter compiled in, in the order check-config names them: adding
 * one is its adapter_<name>.c defining `const adapter adapter_<name>` and its
 * name on this line. */
#define ADAPTER_LIST(X) X(sim) X(gdb) X(exec)

#define ADAPTER_DECLARE(n) extern const adapter adapter_##n;
ADAPTER_LIST(ADAPTER_DECLARE)
#define ADAPTER_ENTRY(n) &adapter_##n,
static const adapter *const adapter_registry[] = {ADAPTER_LIST(ADAPTER_ENTRY)};

#define ADAPTER_COUNT (sizeof adapter_registry / sizeof adapter_registry[0])

const adapter *adapter_find(const char *name)
{
    for (size_t i = 0; i < ADAPTER_COUNT; i++)
        if (strcmp(adapter_registry[i]->name, name) == 0) return adapter_registry[i];
    return NULL;
}

const char *adapter_names(void)
{
    static char names[256];
    if (!names[0]) {
        size_t off = 0;
        for (size_t i = 0; i < ADAPTER_COUNT && off < sizeof names; i++)
            off += (size_t)snprintf(names + off, sizeof names - off, "%s%s", i ? ", " : "",
                                    adapter_registry[i]->name);
    }
    return names;
}

void adapter_fail(adapter_result *r, const char *mode, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    snprintf(r->failure_mode, sizeof r->failure_mode, "%s", mode);
    vsnprintf(r->detail, sizeof r->detail, fmt, ap);
    va_end(ap);
    r->passed = 0;
}

int adapter_conf_load(const adapter *ad, const station_config *st, void *state, size_t *failed, char *err,
                      size_t err_len)
{
    char section[ADAPTER_ID_MAX + 16], prefix[32];
    snprintf(section, sizeof section, "station %s", st->name);
    snprintf(prefix, sizeof prefix, "%s.", ad->name);
    conf_section s;
    if (conf_init(&s, section, prefix, ad->keys, state, err, err_len) != 0) return -1;
    return conf_load_kv(&s, st->keys, st->n_keys, failed, err, err_len);
}

adapter_step_fn adapter_step(const adapter *ad, unsigned step)
{
    const adapter_step_fn fns[] = {NULL, ad->write, ad->verify, ad->provision, ad->test, ad->calibrate, ad->lock};
    return step < sizeof fns / sizeof fns[0] ? fns[step] : NULL;
}

const char *station_config_get(const station_config *st, const char *key)
{
    return kv_find(st->keys, st->n_keys, key);
}
