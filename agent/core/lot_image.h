/* SPDX-License-Identifier: Apache-2.0 */
/* lot_image.h - the image a lot resumes with after a restart, re-hashed
 * before any board gets it (rule R1: verify binary integrity before each
 * production session). A cached image that no longer re-hashes to the
 * order's digest is deleted from the spool and fetched again from the
 * order's URL; when that fails the lot is held (not resumed, no board
 * written) and an alarm names it. */
#ifndef LINEAGENT_LOT_IMAGE_H
#define LINEAGENT_LOT_IMAGE_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

#include "config.h"
#include "order.h"
#include "spool.h"

/* The lot's image, checked: 0 with *image (malloc'ed) when the cached image
 * re-hashes to o's digest (o may be NULL: unreadable) or was fetched again and stored; -1 with why when
 * neither (the lot must not run). Logs what it found and did. */
int lot_image_load(spool *sp, const config *cfg, const JobOrder *o, const char *lot_id, uint8_t **image,
                   size_t *len, char *why, size_t why_len);

/* The lot is held: logs the alarm firmware_corrupt for lot_id (detail:
 * why) and appends it to alarms, the JSON array the line keeps for the
 * status topic. The lot stays active in the spool; the next start tries
 * again. */
void lot_image_hold(json_t *alarms, const char *lot_id, const char *why);

#endif
