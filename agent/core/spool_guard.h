/* SPDX-License-Identifier: Apache-2.0 */
/* spool_guard.h - keeps the spool within its bounds from the running agent:
 * prunes delivered events older than [spool] retention in small batches
 * (undelivered ones never), lots completed longer ago than that with their
 * units and orders, and images no active lot uses; returns freed pages to
 * the file system (incremental vacuum); watches [spool] max_bytes, and probes for free
 * space after a full disk. It decides; the agent applies back-pressure and
 * raises the alarm. Main thread only. */
#ifndef LINEAGENT_SPOOL_GUARD_H
#define LINEAGENT_SPOOL_GUARD_H

#include <stdint.h>

#include "config.h"
#include "spool.h"

typedef struct spool_guard {
    const config *cfg;
    int64_t next_ms;   /* next housekeeping (monotonic ms) */
    int over_limit;    /* max_bytes exceeded: back-pressure is on */
    int low_space;     /* filesystem free space under min_free_bytes */
    int64_t used_bytes;
    int64_t free_bytes; /* on the spool's filesystem, -1 unknown */
    int64_t pruned;    /* events pruned since start */
    int64_t pruned_lot_rows; /* units, lots and orders pruned since start */
    int64_t pruned_images;   /* firmware images pruned since start */
    int64_t vacuumed_pages;  /* pages returned to the file system since start */
} spool_guard;

void spool_guard_init(spool_guard *g, const config *cfg);
/* Housekeeping at most once a second: prune, then measure the spool against
 * max_bytes and its filesystem's free space against min_free_bytes. Returns
 * 1 when over_limit or low_space changed, 0 otherwise. Both clear with some
 * hysteresis (5% of max_bytes, 25% of min_free_bytes) so the line does not
 * flap. Pausing before the disk is full keeps SQLITE_FULL, which costs the
 * batch being committed, for when something else fills the disk fast. */
int spool_guard_tick(spool_guard *g, spool *sp);
/* 1 when a write of a few hundred KiB commits again (space has returned,
 * the write lock is free), 0 when still full or busy, -1 on another error.
 * Leaves nothing behind. */
int spool_guard_probe(spool *sp);

#endif
