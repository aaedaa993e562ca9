/* SPDX-License-Identifier: Apache-2.0 */
/* kv.c - key/value lookup (see kv.h). */
#include "kv.h"

#include <string.h>

const char *kv_find(const kv_pair *kv, size_t n, const char *key)
{
    for (size_t i = 0; i < n; i++)
        if (strcmp(kv[i].key, key) == 0) return kv[i].value;
    return NULL;
}
