/* SPDX-License-Identifier: Apache-2.0 */
/* proto_json.h - any protobuf-c message to a jansson JSON value in the proto3
 * JSON mapping, driven only by the message's descriptors (so schema changes
 * need no code here). Used by `lineagent trace --format jsonl`. */
#ifndef LINEAGENT_PROTO_JSON_H
#define LINEAGENT_PROTO_JSON_H

#include <stddef.h>
#include <jansson.h>
#include <protobuf-c/protobuf-c.h>

/* A new JSON object for msg (caller json_decref()s it), or NULL when out of
 * memory. Keys are lowerCamelCase; enums are value names; of a oneof only the
 * set member appears; proto3 scalars appear even at their default value. */
json_t *proto_json_from_message(const ProtobufCMessage *msg);

/* A JSON string holding data in standard base64 (the proto3 mapping of
 * bytes), or NULL when out of memory. */
json_t *proto_json_base64(const void *data, size_t len);

#endif
