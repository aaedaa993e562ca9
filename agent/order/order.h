/* SPDX-License-Identifier: Apache-2.0 */
/* order.h - decoding and validating MES job orders (protobuf binary or
 * proto3 JSON), and the step vocabulary shared by the whole agent. */
#ifndef LINEAGENT_ORDER_H
#define LINEAGENT_ORDER_H

#include <stddef.h>
#include <stdint.h>
#include "lineagent/v1/job_order.pb-c.h"

typedef Lineagent__V1__JobOrder JobOrder;
typedef Lineagent__V1__Step Step;

#define ORDER_MAX_PAYLOAD (1024 * 1024) /* larger payloads are refused unread */
#define ORDER_ID_MAX 64                 /* order_id, lot_id, product, version */

typedef struct order_limits {
    uint32_t max_quantity; /* quantity above this is "absurd" and refused */
} order_limits;

/* Decodes a payload: JSON when its first non-blank byte is '{', protobuf
 * otherwise. Returns a message the caller frees with order_free(), or NULL
 * with a human-readable reason. Never validates semantics. */
JobOrder *order_parse(const void *payload, size_t len, char *reason, size_t reason_len);

/* JSON half of order_parse (order_json.c): proto3 JSON mapping, lowerCamelCase
 * or snake_case keys; unknown keys are an error. */
JobOrder *order_parse_json(const char *json, size_t len, char *reason, size_t reason_len);
/* For the rejection of a JSON payload order_parse refused: an order holding
 * only the orderId, revision and lotId that could be read (each id only
 * when order_id_or_empty keeps it), or NULL when none could (order_json.c). */
JobOrder *order_parse_ids(const void *payload, size_t len);
/* v when it is a well-formed id (the charset, length, no leading '-'),
 * else "": what a rejection may echo of an order's ids. */
const char *order_id_or_empty(const char *v);

/* Checks every rule an order must meet before the line may run it (ids, revision,
 * quantity, firmware fields, production build, flow shape). 0 when valid;
 * otherwise -1 and the first violated rule in reason. */
int order_validate(const JobOrder *o, const order_limits *lim, char *reason, size_t reason_len);

/* Deep copy through the wire format; NULL on allocation failure. */
JobOrder *order_dup(const JobOrder *o);
void order_free(JobOrder *o);

/* "WRITE", "VERIFY", ... ; "STEP_UNSPECIFIED" for anything else. */
const char *order_step_name(Step s);
/* Case-insensitive; 0 on success, -1 for unknown names. */
int order_step_parse(const char *name, Step *out);
/* Index of step in the order's flow, or -1. */
int order_flow_index(const JobOrder *o, Step s);

#endif
