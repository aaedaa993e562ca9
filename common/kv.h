/* SPDX-License-Identifier: Apache-2.0 */
/* kv.h - key/value pairs kept verbatim from a configuration file (a
 * station's adapter keys, librdkafka's properties), looked up by name. */
#ifndef LINEAGENT_KV_H
#define LINEAGENT_KV_H

#include <stddef.h>

typedef struct kv_pair {
    char *key;
    char *value;
} kv_pair;

/* The value of key among n pairs, or NULL. */
const char *kv_find(const kv_pair *kv, size_t n, const char *key);

#endif
