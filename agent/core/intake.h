/* SPDX-License-Identifier: Apache-2.0 */
/* intake.h - the order intake: takes durable MES payloads from the spool's
 * inbox in arrival order, decodes and validates them, fetches and checks the
 * firmware, and hands each decision to the line coordinator. Runs on its own
 * thread so a slow firmware download never stalls the line. */
#ifndef LINEAGENT_INTAKE_H
#define LINEAGENT_INTAKE_H

#include <stddef.h>
#include <stdint.h>

#include "config.h"
#include "order.h"
#include "spool.h"

/* spool kv namespace: "<product> <version>" -> the SHA-256 first seen for
 * it (one version is one image); `spool purge-firmware` looks versions up
 * here. */
#define INTAKE_RELEASES_NS "releases"

typedef struct intake intake;

typedef struct intake_decision {
    int64_t inbox_id;
    JobOrder *order;       /* NULL when the payload did not decode */
    char reason[512];      /* non-empty: reject with this reason */
    uint8_t *image;        /* accepted: the verified firmware image (owned) */
    size_t image_len;
} intake_decision;

typedef void (*intake_post_fn)(void *ud, intake_decision *d); /* ownership passes */

/* Starts the intake thread on its own spool connection. */
intake *intake_start(const config *cfg, intake_post_fn post, void *ud, char *err, size_t err_len);
/* Wakes the intake: a new payload is in the inbox. Safe from any thread. */
void intake_kick(intake *in);
void intake_stop(intake *in);
void intake_decision_free(intake_decision *d);

/* Stores one MES payload durably in the inbox (oversize ones as their size
 * only). Called on the MQTT thread with that thread's own spool handle;
 * 0 once durable. */
int intake_accept_payload(spool *sp, const void *payload, size_t len);

#endif
