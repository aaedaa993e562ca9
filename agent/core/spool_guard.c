/* SPDX-License-Identifier: Apache-2.0 */
/* spool_guard.c - retention, size limit and free-space probe for the spool
 * (see spool_guard.h). Pruning runs in batches of GUARD_PRUNE_BATCH rows (of
 * events, then of completed lots with their units and orders), one unused
 * image and GUARD_VACUUM_PAGES freed pages a tick, each its own short
 * transaction, so the line's commits are never held up for long. */
#include "spool_guard.h"

#include <libgen.h>
#include <stdlib.h>
#include <string.h>
#include <sys/statvfs.h>

#include "clock.h"
#include "log.h"

#define GUARD_PRUNE_BATCH 1000
#define GUARD_PRUNE_BATCHES 5 /* per tick: at most 5000 rows a second */
#define GUARD_PROBE_BYTES (256 * 1024)
#define GUARD_VACUUM_PAGES 1024 /* per tick: 4 MiB of 4 KiB pages back to the file system */

void spool_guard_init(spool_guard *g, const config *cfg)
{
    *g = (spool_guard){.cfg = cfg, .free_bytes = -1};
}

/* Bytes an unprivileged writer may still use on the filesystem holding the
 * spool; -1 if unknown. */
static int64_t spool_guard_free_bytes(const char *spool_path)
{
    char *copy = strdup(spool_path);
    if (!copy) return -1;
    struct statvfs vfs;
    int rc = statvfs(dirname(copy), &vfs);
    free(copy);
    return rc == 0 ? (int64_t)vfs.f_bavail * (int64_t)vfs.f_frsize : -1;
}

/* Completed lots (units, lots, orders) and images no active lot uses, older
 * than the retention; then freed pages back to the file system. */
static void spool_guard_housekeep(spool_guard *g, spool *sp, int64_t before)
{
    for (int i = 0; i < GUARD_PRUNE_BATCHES; i++) {
        int n = spool_prune_lots(sp, before, GUARD_PRUNE_BATCH);
        if (n < 0) {
            log_warn("spool: pruning completed lots: %s", spool_errmsg(sp));
            break;
        }
        g->pruned_lot_rows += n;
        if (n) log_debug("spool: pruned %d rows of lots completed before the retention", n);
        if (n < GUARD_PRUNE_BATCH) break;
    }
    char sha[65];
    int fw = spool_prune_firmware(sp, before, sha);
    if (fw < 0) log_warn("spool: pruning firmware: %s", spool_errmsg(sp));
    if (fw > 0) {
        g->pruned_images++;
        log_info("spool: firmware sha256 %s pruned: no active lot has used it for the retention", sha);
    }
    int pages = spool_vacuum_step(sp, GUARD_VACUUM_PAGES);
    if (pages < 0) log_warn("spool: incremental vacuum: %s", spool_errmsg(sp));
    else g->vacuumed_pages += pages;
}

int spool_guard_tick(spool_guard *g, spool *sp)
{
    int64_t now = clock_mono_ms();
    if (now < g->next_ms) return 0;
    g->next_ms = now + 1000;
    int64_t before = clock_wall_ms() - g->cfg->spool_retention_ms;
    for (int i = 0; i < GUARD_PRUNE_BATCHES; i++) {
        int n = spool_prune_delivered(sp, before, GUARD_PRUNE_BATCH);
        if (n < 0) {
            log_warn("spool: pruning delivered events: %s", spool_errmsg(sp));
            break;
        }
        g->pruned += n;
        if (n) log_debug("spool: pruned %d delivered events older than the retention", n);
        if (n < GUARD_PRUNE_BATCH) break;
    }
    spool_guard_housekeep(g, sp, before);
    int was_over = g->over_limit, was_low = g->low_space;
    int64_t used = spool_used_bytes(sp);
    if (used >= 0) g->used_bytes = used;
    if (g->cfg->spool_max_bytes && used >= 0) {
        if (!was_over && used > g->cfg->spool_max_bytes) g->over_limit = 1;
        else if (was_over && used < g->cfg->spool_max_bytes / 20 * 19) g->over_limit = 0;
    }
    g->free_bytes = spool_guard_free_bytes(g->cfg->spool_path);
    int64_t min_free = g->cfg->spool_min_free_bytes;
    if (min_free && g->free_bytes >= 0) {
        if (!was_low && g->free_bytes < min_free) g->low_space = 1;
        else if (was_low && g->free_bytes > min_free + min_free / 4) g->low_space = 0;
    }
    return was_over != g->over_limit || was_low != g->low_space;
}

int spool_guard_probe(spool *sp)
{
    uint8_t *buf = calloc(1, GUARD_PROBE_BYTES);
    if (!buf) return -1;
    int rc = spool_kv_put(sp, "agent", "space_probe", buf, GUARD_PROBE_BYTES);
    free(buf);
    /* Full, or the write lock held elsewhere: both pass, so both wait. */
    if (rc != 0) return spool_error_is_full(sp) || spool_error_is_busy(sp) ? 0 : -1;
    if (spool_kv_del(sp, "agent", "space_probe") == 0) return 1;
    return spool_error_is_full(sp) || spool_error_is_busy(sp) ? 0 : -1;
}
