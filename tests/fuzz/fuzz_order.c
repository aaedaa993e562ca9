/* SPDX-License-Identifier: Apache-2.0 */
/* fuzz_order.c - libFuzzer harness: an MQTT order payload (protobuf or JSON)
 * through order_parse, order_validate and, when refused, order_parse_ids,
 * as intake does. */
#include <stddef.h>
#include <stdint.h>

#include "order.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char reason[512];
    JobOrder *o = order_parse(data, size, reason, sizeof reason);
    if (!o) {
        order_free(order_parse_ids(data, size));
        return 0;
    }
    order_limits lim = {.max_quantity = 100000};
    if (order_validate(o, &lim, reason, sizeof reason) == 0) {
        JobOrder *c = order_dup(o);
        order_free(c);
    }
    (void)order_id_or_empty(o->order_id);
    order_free(o);
    return 0;
}
