/* SPDX-License-Identifier: Apache-2.0 */
/* fuzz_trace_records.c - libFuzzer harness: Kafka record values as
 * `lineagent trace` decodes and accounts them (summary mode), and each
 * decoded event rendered as JSON. Input: records, each a 2-byte big-endian
 * length and that many bytes. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#include <jansson.h>

#include "lineagent/v1/trace_event.pb-c.h"
#include "proto_json.h"
#include "trace_reader.h"

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc, (void)argv;
    if (!freopen("/dev/null", "w", stdout)) return 0; /* the summary */
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const void *vals[64];
    size_t lens[64], n = 0;
    while (size >= 2 && n < 64) {
        size_t l = (size_t)data[0] << 8 | data[1];
        data += 2, size -= 2;
        if (l > size) l = size;
        vals[n] = data;
        lens[n++] = l;
        data += l, size -= l;
        Lineagent__V1__TraceEvent *ev = lineagent__v1__trace_event__unpack(NULL, l, vals[n - 1]);
        if (ev) {
            json_decref(proto_json_from_message(&ev->base));
            lineagent__v1__trace_event__free_unpacked(ev, NULL);
        }
    }
    trace_reader_feed(vals, lens, n);
    return 0;
}
