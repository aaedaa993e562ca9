/* SPDX-License-Identifier: Apache-2.0 */
/* spool_prune.c - the spool's housekeeping beyond events (schema 5): lots
 * completed longer than the retention ago go with their units and orders,
 * images no active lot uses go after the retention too, a release's image is
 * purged on request (and the purge recorded), and freed pages are handed
 * back to the file system a batch at a time (auto_vacuum = INCREMENTAL).
 * Every call is one short transaction of its own, like
 * spool_prune_delivered, so the line's group commits barely wait. */
#include "spool_int.h"

#include <stdio.h>
#include <string.h>

/* Active lots that use image ?1 (lower-case hex): the order names it, an
 * order of unknown image (stored before schema 5) might, or a unit is bound
 * to it (boards written before a changeover, still in progress). */
#define FW_USERS(sha)                                                                              \
    "SELECT l.lot_id FROM lots l JOIN orders o ON o.order_id = l.order_id"                         \
    " WHERE l.active AND (o.fw_sha256 = " sha " OR o.fw_sha256 = '')"                              \
    " UNION ALL SELECT l.lot_id FROM lots l JOIN units u ON u.lot_id = l.lot_id"                   \
    " WHERE l.active AND lower(u.sha256) = " sha
#define LOT_EXPIRED "NOT l.active AND l.completed_ms < ?1"

static const char *const stmt_sql[ST_COUNT] = {
    [ST_PRUNE_UNITS] = "DELETE FROM units WHERE rowid IN (SELECT u.rowid FROM lots l JOIN units u"
                       " ON u.lot_id = l.lot_id WHERE " LOT_EXPIRED " LIMIT ?2)",
    /* A lot's units are all gone before the lot and its order go. */
    [ST_PRUNE_ORDERS] = "DELETE FROM orders WHERE order_id IN (SELECT l.order_id FROM lots l WHERE " LOT_EXPIRED
                        " AND NOT EXISTS (SELECT 1 FROM units u WHERE u.lot_id = l.lot_id) LIMIT ?2)"
                        " AND NOT EXISTS (SELECT 1 FROM lots a WHERE a.order_id = orders.order_id AND a.active)",
    [ST_PRUNE_LOTS] = "DELETE FROM lots WHERE lot_id IN (SELECT l.lot_id FROM lots l WHERE " LOT_EXPIRED
                      " AND NOT EXISTS (SELECT 1 FROM units u WHERE u.lot_id = l.lot_id) LIMIT ?2)",
    [ST_FW_UNUSED] = "SELECT f.sha256 FROM firmware f WHERE f.stored_ms < ?1"
                     " AND NOT EXISTS (" FW_USERS("f.sha256") ") ORDER BY f.stored_ms LIMIT 1",
    [ST_FW_USER] = FW_USERS("?1") " LIMIT 1",
    [ST_FW_BYTES] = "SELECT (SELECT coalesce(sum(length(data)), 0) FROM firmware_chunk WHERE sha256 = ?1)"
                    " + coalesce((SELECT length(image) FROM firmware WHERE sha256 = ?1), 0)",
    [ST_PURGE_PUT] = "INSERT INTO firmware_purges(sha256, version, purged_ms, bytes) VALUES(?1, ?2, ?3, ?4)",
    [ST_PURGE_LIST] = "SELECT sha256, version, purged_ms, bytes FROM firmware_purges ORDER BY id",
};

static sqlite3_stmt *prep(spool *sp, enum spool_stmt id)
{
    return spool_prep(sp, id, stmt_sql[id]);
}

/* Runs a DELETE bound with (before_ms, batch); rows deleted or -1. */
static int delete_batch(spool *sp, enum spool_stmt id, int64_t before_ms, int batch)
{
    sqlite3_stmt *st = prep(sp, id);
    if (!st) return -1;
    sqlite3_bind_int64(st, 1, before_ms);
    sqlite3_bind_int(st, 2, batch);
    if (spool_step_done(sp, st, "prune_lots") < 0) return -1;
    return sqlite3_changes(sp->db);
}

static int begin_own(spool *sp, const char *what)
{
    if (spool_require_autocommit(sp, what) < 0) return -1;
    return spool_txn(sp, ST_BEGIN, what);
}

static int commit_own(spool *sp, const char *what)
{
    if (spool_txn(sp, ST_COMMIT, what) == 0) return 0;
    spool_rollback_quiet(sp);
    return -1;
}

int spool_prune_lots(spool *sp, int64_t before_ms, int batch)
{
    if (begin_own(sp, "prune_lots") < 0) return -1;
    int units = delete_batch(sp, ST_PRUNE_UNITS, before_ms, batch), orders = 0, lots = 0;
    if (units >= 0 && units < batch) {
        orders = delete_batch(sp, ST_PRUNE_ORDERS, before_ms, batch - units);
        if (orders >= 0) lots = delete_batch(sp, ST_PRUNE_LOTS, before_ms, batch - units);
    }
    if (units < 0 || orders < 0 || lots < 0) {
        spool_rollback_quiet(sp);
        return -1;
    }
    return commit_own(sp, "prune_lots") < 0 ? -1 : units + orders + lots;
}

int spool_firmware_user(spool *sp, const char *sha256_hex, char lot_out[SPOOL_ID_MAX])
{
    char key[65];
    lot_out[0] = '\0';
    if (spool_sha256_key(sha256_hex, key) < 0) return 0;
    sqlite3_stmt *st = prep(sp, ST_FW_USER);
    if (!st) return -1;
    sqlite3_bind_text(st, 1, key, 64, SQLITE_TRANSIENT);
    int rc = sqlite3_step(st), ret = 0;
    if (rc == SQLITE_ROW) {
        const unsigned char *lot = sqlite3_column_text(st, 0);
        snprintf(lot_out, SPOOL_ID_MAX, "%s", lot ? (const char *)lot : "");
        ret = 1;
    } else if (rc != SQLITE_DONE)
        ret = spool_fail(sp, "firmware_user");
    sqlite3_reset(st);
    return ret;
}

int spool_prune_firmware(spool *sp, int64_t before_ms, char sha256_out[65])
{
    sha256_out[0] = '\0';
    if (begin_own(sp, "prune_firmware") < 0) return -1;
    sqlite3_stmt *st = prep(sp, ST_FW_UNUSED);
    if (!st) goto fail;
    sqlite3_bind_int64(st, 1, before_ms);
    int rc = sqlite3_step(st);
    if (rc == SQLITE_ROW) {
        const unsigned char *sha = sqlite3_column_text(st, 0);
        snprintf(sha256_out, 65, "%s", sha ? (const char *)sha : "");
    } else if (rc != SQLITE_DONE)
        spool_fail(sp, "prune_firmware");
    sqlite3_reset(st);
    if (rc != SQLITE_ROW && rc != SQLITE_DONE) goto fail;
    /* The image row goes with all its chunks: one image per transaction. */
    if (sha256_out[0] && spool_firmware_delete(sp, sha256_out) < 0) goto fail;
    if (commit_own(sp, "prune_firmware") < 0) return -1;
    return sha256_out[0] ? 1 : 0;
fail:
    spool_rollback_quiet(sp);
    return -1;
}

static int64_t firmware_bytes(spool *sp, const char *key)
{
    sqlite3_stmt *st = prep(sp, ST_FW_BYTES);
    if (!st) return -1;
    sqlite3_bind_text(st, 1, key, 64, SQLITE_TRANSIENT);
    int64_t n = sqlite3_step(st) == SQLITE_ROW ? sqlite3_column_int64(st, 0) : spool_fail(sp, "firmware_purge");
    sqlite3_reset(st);
    return n;
}

int spool_firmware_purge(spool *sp, const char *sha256_hex, const char *version, int64_t now_ms,
                         char lot_out[SPOOL_ID_MAX], int64_t *bytes)
{
    char key[65];
    *bytes = 0;
    lot_out[0] = '\0';
    if (spool_sha256_key(sha256_hex, key) < 0)
        return spool_fail_msg(sp, "firmware_purge: \"%.80s\" is not a hex SHA-256", sha256_hex ? sha256_hex : "");
    if (begin_own(sp, "firmware_purge") < 0) return -1;
    int used = spool_firmware_user(sp, key, lot_out);
    if (used != 0) {
        spool_rollback_quiet(sp);
        return used;
    }
    int64_t n = firmware_bytes(sp, key);
    if (n < 0 || spool_firmware_delete(sp, key) < 0) goto fail;
    sqlite3_stmt *st = prep(sp, ST_PURGE_PUT);
    if (!st) goto fail;
    sqlite3_bind_text(st, 1, key, 64, SQLITE_TRANSIENT);
    sqlite3_bind_text(st, 2, version ? version : "", -1, SQLITE_TRANSIENT);
    sqlite3_bind_int64(st, 3, now_ms);
    sqlite3_bind_int64(st, 4, n);
    if (spool_step_done(sp, st, "firmware_purge: record") < 0) goto fail;
    if (commit_own(sp, "firmware_purge") < 0) return -1;
    *bytes = n;
    return 0;
fail:
    spool_rollback_quiet(sp);
    return -1;
}

int spool_firmware_purges(spool *sp, spool_purge_cb cb, void *ud)
{
    sqlite3_stmt *st = prep(sp, ST_PURGE_LIST);
    if (!st) return -1;
    int n = 0, rc;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        spool_purge_record r = {0};
        const unsigned char *sha = sqlite3_column_text(st, 0), *ver = sqlite3_column_text(st, 1);
        snprintf(r.sha256, sizeof r.sha256, "%s", sha ? (const char *)sha : "");
        snprintf(r.version, sizeof r.version, "%s", ver ? (const char *)ver : "");
        r.purged_ms = sqlite3_column_int64(st, 2);
        r.bytes = sqlite3_column_int64(st, 3);
        n++;
        if (cb(ud, &r) != 0) {
            rc = SQLITE_DONE;
            break;
        }
    }
    if (rc != SQLITE_DONE) n = spool_fail(sp, "firmware_purges");
    sqlite3_reset(st);
    return n;
}

static int64_t pragma_value(spool *sp, const char *sql)
{
    sqlite3_stmt *st;
    if (sqlite3_prepare_v2(sp->db, sql, -1, &st, NULL) != SQLITE_OK) return spool_fail(sp, sql);
    int64_t v = sqlite3_step(st) == SQLITE_ROW ? sqlite3_column_int64(st, 0) : spool_fail(sp, sql);
    sqlite3_finalize(st);
    return v;
}

int spool_auto_vacuum(spool *sp) { return (int)pragma_value(sp, "PRAGMA auto_vacuum"); }

int spool_vacuum_step(spool *sp, int pages)
{
    if (spool_require_autocommit(sp, "vacuum_step") < 0) return -1;
    int64_t mode = pragma_value(sp, "PRAGMA auto_vacuum"), before = pragma_value(sp, "PRAGMA freelist_count");
    if (mode < 0 || before < 0) return -1;
    if (mode != 2 || before == 0) return 0;
    char sql[64];
    snprintf(sql, sizeof sql, "PRAGMA incremental_vacuum(%d)", pages > 0 ? pages : 1);
    if (sqlite3_exec(sp->db, sql, NULL, NULL, NULL) != SQLITE_OK) return spool_fail(sp, "vacuum_step");
    int64_t after = pragma_value(sp, "PRAGMA freelist_count");
    return after < 0 ? -1 : (int)(before - after);
}
