/* SPDX-License-Identifier: Apache-2.0 */
/* changeover.c - exactly-once version changeover detection per lot. */
#include "changeover.h"

#include <stdio.h>
#include <string.h>

int changeover_note_write(spool_lot *lot, uint32_t revision, const char *version, const char *board_id,
                          changeover *co)
{
    if (lot->written_revision && revision < lot->written_revision) return 0;
    int changed = lot->written_revision && revision > lot->written_revision &&
                  strcmp(version, lot->written_version) != 0;
    if (changed) {
        snprintf(co->from_version, sizeof co->from_version, "%s", lot->written_version);
        snprintf(co->to_version, sizeof co->to_version, "%s", version);
        snprintf(co->last_board_old, sizeof co->last_board_old, "%s", lot->last_written_board);
        snprintf(co->first_board_new, sizeof co->first_board_new, "%s", board_id);
        co->from_revision = lot->written_revision;
        co->to_revision = revision;
    }
    lot->written_revision = revision;
    snprintf(lot->written_version, sizeof lot->written_version, "%s", version);
    snprintf(lot->last_written_board, sizeof lot->last_written_board, "%s", board_id);
    return changed;
}
