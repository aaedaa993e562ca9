/* SPDX-License-Identifier: Apache-2.0 */
/* changeover.h - deciding where a firmware version changeover falls in a lot.
 * Fed every unit whose image was written and verified, in commit order; says
 * when a unit is the first of a new version, so the agent emits exactly one
 * version_changeover per actual change (rule R4). */
#ifndef LINEAGENT_CHANGEOVER_H
#define LINEAGENT_CHANGEOVER_H

#include <stdint.h>

#include "spool.h"

typedef struct changeover {
    char from_version[SPOOL_ID_MAX], to_version[SPOOL_ID_MAX];
    char last_board_old[SPOOL_ID_MAX], first_board_new[SPOOL_ID_MAX];
    uint32_t from_revision, to_revision;
} changeover;

/* Records that board_id was written with (revision, version) in lot, whose
 * written_* fields carry the state (and are persisted with the lot). Returns 1
 * and fills *co when this write is the first of a different version brought
 * by a newer revision; 0 otherwise. A late write bound to an older revision
 * (a board already past write dispatch when the order changed) is recorded
 * for its unit but never switches the lot back. */
int changeover_note_write(spool_lot *lot, uint32_t revision, const char *version, const char *board_id,
                          changeover *co);

#endif
