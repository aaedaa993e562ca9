/* adapter_registry.c - the list of station adapters compiled into the agent,
 * and the one helper they share. */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "adapter.h"

extern const adapter adapter_sim;
extern const adapter adapter_gdb;
extern const adapter adapter_exec;

static const adapter *const adapter_registry[] = {
    &adapter_sim,
    &adapter_gdb,
    &adapter_exec,
};

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

const char *station_config_get(const station_config *st, const char *key)
{
    return kv_find(st->keys, st->n_keys, key);
}
