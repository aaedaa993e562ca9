/* SPDX-License-Identifier: Apache-2.0 */
/* spool_state.c - what a restarted agent resumes from, kept in the spool:
 * raw MES payloads (the inbox, durable before the MQTT ack), firmware images
 * by SHA-256, the latest revision of each order, lot and unit state, and the
 * key/value store behind Paho's persistence. */
#include "spool_int.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* Firmware images are written in chunks of this size, one transaction each. */
#define SPOOL_FW_CHUNK (256 * 1024)

#define LOT_COLS \
    "lot_id, order_id, active, loaded, passed, failed, written_revision, written_version," \
    " last_written_board"
#define UNIT_COLS "lot_id, board_id, idx, state, steps_done, revision, version, sha256, attempt"

static const char *const stmt_sql[ST_COUNT] = {
    [ST_INBOX_PUT] = "INSERT INTO inbox(received_ms, payload, original_len) VALUES(?1, ?2, ?3)",
    [ST_INBOX_NEXT] = "SELECT id, received_ms, payload, original_len FROM inbox"
                      " WHERE id > ?1 ORDER BY id LIMIT 1",
    [ST_INBOX_DEL] = "DELETE FROM inbox WHERE id = ?1",
    /* Content-addressed: an image already stored under its hash is the same.
     * The row made last, with an empty image, says its chunks are complete. */
    [ST_FW_PUT] = "INSERT OR IGNORE INTO firmware(sha256, image, stored_ms) VALUES(?1, x'', ?2)",
    /* Stored again: the image is kept as it is, its retention starts again. */
    [ST_FW_TOUCH] = "UPDATE firmware SET stored_ms = ?2 WHERE sha256 = ?1",
    [ST_FW_GET] = "SELECT image FROM firmware WHERE sha256 = ?1",
    [ST_FW_DEL] = "DELETE FROM firmware WHERE sha256 = ?1",
    [ST_FW_CHUNK_DEL] = "DELETE FROM firmware_chunk WHERE sha256 = ?1",
    [ST_FW_CHUNK_PUT] = "INSERT OR REPLACE INTO firmware_chunk(sha256, idx, data) VALUES(?1, ?2, ?3)",
    [ST_FW_CHUNKS] = "SELECT data FROM firmware_chunk WHERE sha256 = ?1 ORDER BY idx",
    [ST_ORDER_PUT] = "INSERT INTO orders(order_id, revision, lot_id, encoded, updated_ms, fw_sha256)"
                     " VALUES(?1, ?2, ?3, ?4, ?5, ?6) ON CONFLICT(order_id) DO UPDATE SET"
                     " revision = excluded.revision, lot_id = excluded.lot_id,"
                     " encoded = excluded.encoded, updated_ms = excluded.updated_ms,"
                     " fw_sha256 = excluded.fw_sha256",
    [ST_ORDER_GET] = "SELECT revision, encoded FROM orders WHERE order_id = ?1",
    /* created is set once, on first insert, so updates keep a lot's age;
     * completed_ms when the lot first goes inactive. */
    [ST_LOT_PUT] = "INSERT INTO lots(" LOT_COLS ", created, completed_ms)"
                   " VALUES(?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9,"
                   " (SELECT coalesce(max(created), 0) + 1 FROM lots), ?10)"
                   " ON CONFLICT(lot_id) DO UPDATE SET order_id = excluded.order_id,"
                   " active = excluded.active, loaded = excluded.loaded,"
                   " passed = excluded.passed, failed = excluded.failed,"
                   " written_revision = excluded.written_revision,"
                   " written_version = excluded.written_version,"
                   " last_written_board = excluded.last_written_board,"
                   " completed_ms = CASE WHEN excluded.active THEN 0 WHEN lots.completed_ms <> 0"
                   " THEN lots.completed_ms ELSE excluded.completed_ms END",
    [ST_LOT_GET] = "SELECT " LOT_COLS " FROM lots WHERE lot_id = ?1",
    [ST_LOT_ACTIVE] = "SELECT " LOT_COLS " FROM lots WHERE active ORDER BY created",
    [ST_UNIT_PUT] = "INSERT INTO units(" UNIT_COLS ") VALUES(?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)"
                    " ON CONFLICT(lot_id, board_id) DO UPDATE SET idx = excluded.idx,"
                    " state = excluded.state, steps_done = excluded.steps_done,"
                    " revision = excluded.revision, version = excluded.version,"
                    " sha256 = excluded.sha256, attempt = excluded.attempt",
    [ST_UNIT_IN_PROGRESS] = "SELECT " UNIT_COLS " FROM units"
                            " WHERE lot_id = ?1 AND state = 0 ORDER BY idx",
    /* Per release bound (in the order first bound), the outcomes. */
    [ST_UNIT_VERSIONS] = "SELECT version, sha256, sum(state = 1), sum(state = 2), sum(state = 1 AND attempt <= 1)"
                         " FROM units WHERE lot_id = ?1 AND state <> 0 GROUP BY version, sha256 ORDER BY min(idx)",
    /* board_lots counts every lot the board went through, pruned or not
     * (schema 5); less this lot if the board already has a row in it. */
    [ST_UNIT_EARLIER] = "SELECT coalesce((SELECT lots FROM board_lots WHERE board_id = ?1), 0)"
                        " - (SELECT count(*) FROM units WHERE board_id = ?1 AND lot_id = ?2)",
    [ST_INSTANCE_ID] = "SELECT value FROM kv WHERE ns = 'spool' AND key = 'instance_id'",
    [ST_KV_PUT] = "INSERT OR REPLACE INTO kv(ns, key, value) VALUES(?1, ?2, ?3)",
    [ST_KV_GET] = "SELECT value FROM kv WHERE ns = ?1 AND key = ?2",
    [ST_KV_DEL] = "DELETE FROM kv WHERE ns = ?1 AND key = ?2",
    [ST_KV_KEYS] = "SELECT key FROM kv WHERE ns = ?1 ORDER BY key",
    [ST_KV_CLEAR] = "DELETE FROM kv WHERE ns = ?1",
};

static sqlite3_stmt *prep(spool *sp, enum spool_stmt id)
{
    return spool_prep(sp, id, stmt_sql[id]);
}

/* Binds a string from a fixed spool_* array, which may lack its NUL. */
static int bind_field(sqlite3_stmt *st, int i, const char *s, size_t cap)
{
    return sqlite3_bind_text(st, i, s, (int)strnlen(s, cap), SQLITE_STATIC);
}

static void column_str(sqlite3_stmt *st, int col, char *dst, size_t cap)
{
    const unsigned char *s = sqlite3_column_text(st, col);
    snprintf(dst, cap, "%s", s ? (const char *)s : "");
}

/* ---- inbox ----------------------------------------------------------- */

/* A single autocommit INSERT is its own durable transaction; inside a caller's
 * transaction it would not be durable before the MQTT ack, so that is refused. */
int spool_inbox_put(spool *sp, int64_t received_ms, const void *payload, size_t len,
                    size_t original_len)
{
    if (spool_require_autocommit(sp, "inbox_put") < 0) return -1;
    sqlite3_stmt *st = prep(sp, ST_INBOX_PUT);
    if (!st) return -1;
    sqlite3_bind_int64(st, 1, received_ms);
    if (payload)
        spool_bind_blob(st, 2, payload, len);
    else
        sqlite3_bind_null(st, 2);
    sqlite3_bind_int64(st, 3, (sqlite3_int64)original_len);
    return spool_step_done(sp, st, "inbox_put");
}

int spool_inbox_next(spool *sp, int64_t after_id, spool_inbox_row *out)
{
    memset(out, 0, sizeof *out);
    sqlite3_stmt *st = prep(sp, ST_INBOX_NEXT);
    if (!st) return -1;
    sqlite3_bind_int64(st, 1, after_id);
    int rc = sqlite3_step(st), ret = 0;
    if (rc == SQLITE_ROW) {
        out->id = sqlite3_column_int64(st, 0);
        out->received_ms = sqlite3_column_int64(st, 1);
        out->original_len = (size_t)sqlite3_column_int64(st, 3);
        ret = 1;
        /* NULL payload: refused unread, only its size was kept. */
        if (sqlite3_column_type(st, 2) != SQLITE_NULL &&
            spool_column_dup(sp, st, 2, &out->payload, &out->len) < 0)
            ret = -1;
    } else if (rc != SQLITE_DONE)
        ret = spool_fail(sp, "inbox_next");
    sqlite3_reset(st);
    return ret;
}

void spool_inbox_row_free(spool_inbox_row *row)
{
    if (!row) return;
    free(row->payload);
    row->payload = NULL;
    row->len = 0;
}

int spool_inbox_delete(spool *sp, int64_t id)
{
    sqlite3_stmt *st = prep(sp, ST_INBOX_DEL);
    if (!st) return -1;
    sqlite3_bind_int64(st, 1, id);
    return spool_step_done(sp, st, "inbox_delete");
}

/* ---- firmware -------------------------------------------------------- */

/* Orders may carry upper case (firmware_fetch compares case-insensitively),
 * and one image must have one key. */
int spool_sha256_key(const char *hex, char key[65])
{
    if (!hex || strlen(hex) != 64 || strspn(hex, "0123456789abcdefABCDEF") != 64) return -1;
    for (int i = 0; i < 64; i++) key[i] = (char)(hex[i] | 0x20); /* digits keep their value */
    key[64] = '\0';
    return 0;
}

/* Touches the image's row if it exists (stored whole): 1 touched, 0 absent,
 * -1 error. */
static int firmware_touch(spool *sp, const char *key, int64_t now_ms)
{
    sqlite3_stmt *st = prep(sp, ST_FW_TOUCH);
    if (!st) return -1;
    sqlite3_bind_text(st, 1, key, 64, SQLITE_STATIC);
    sqlite3_bind_int64(st, 2, now_ms);
    if (spool_step_done(sp, st, "firmware_put") < 0) return -1;
    return sqlite3_changes(sp->db) > 0;
}

static int64_t wall_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Why chunks: an image is up to [firmware] max_bytes (many MiB). Written as
 * one blob in one transaction it would hold the spool's write lock for as
 * long as writing and syncing all of it takes, and every other writer (the
 * line's group commit above all, which then holds the boards) would wait
 * behind it, or give up with SQLITE_BUSY past the busy timeout. So outside a
 * transaction each chunk of SPOOL_FW_CHUNK bytes is its own short
 * transaction, and the firmware row that makes the image visible is written
 * last, in one more: a crash in between leaves only chunks no reader looks
 * at, overwritten when the same image is stored again. Inside the caller's
 * transaction it is all part of that one. */
int spool_firmware_put(spool *sp, const char *sha256_hex, const uint8_t *image, size_t len)
{
    char key[65];
    if (spool_sha256_key(sha256_hex, key) < 0)
        return spool_fail_msg(sp, "firmware_put: \"%.80s\" is not a hex SHA-256",
                        sha256_hex ? sha256_hex : "(null)");
    int64_t now = wall_ms();
    int known = firmware_touch(sp, key, now);
    if (known != 0) return known < 0 ? -1 : 0;
    for (size_t off = 0, idx = 0; off < len; off += SPOOL_FW_CHUNK, idx++) {
        sqlite3_stmt *st = prep(sp, ST_FW_CHUNK_PUT);
        if (!st) return -1;
        sqlite3_bind_text(st, 1, key, 64, SQLITE_STATIC);
        sqlite3_bind_int64(st, 2, (sqlite3_int64)idx);
        spool_bind_blob(st, 3, image + off, len - off < SPOOL_FW_CHUNK ? len - off : SPOOL_FW_CHUNK);
        if (spool_step_done(sp, st, "firmware_put: chunk") < 0) return -1;
    }
    sqlite3_stmt *st = prep(sp, ST_FW_PUT);
    if (!st) return -1;
    sqlite3_bind_text(st, 1, key, 64, SQLITE_STATIC);
    sqlite3_bind_int64(st, 2, now);
    return spool_step_done(sp, st, "firmware_put");
}

/* The image of a row written in chunks, read in one statement (one read
 * transaction, so one consistent snapshot). */
static int firmware_chunks(spool *sp, const char *key, uint8_t **image, size_t *len)
{
    sqlite3_stmt *st = prep(sp, ST_FW_CHUNKS);
    if (!st) return -1;
    sqlite3_bind_text(st, 1, key, 64, SQLITE_STATIC);
    uint8_t *buf = malloc(1);
    size_t n = 0;
    int rc = SQLITE_DONE;
    while (buf && (rc = sqlite3_step(st)) == SQLITE_ROW) {
        size_t k = (size_t)sqlite3_column_bytes(st, 0);
        uint8_t *grown = k ? realloc(buf, n + k) : buf;
        if (!grown) {
            free(buf);
            buf = NULL;
            break;
        }
        buf = grown;
        if (k) memcpy(buf + n, sqlite3_column_blob(st, 0), k);
        n += k;
    }
    int ret = 0;
    if (!buf)
        ret = spool_fail_msg(sp, "firmware_get: out of memory (%zu bytes)", n);
    else if (rc != SQLITE_DONE)
        ret = spool_fail(sp, "firmware_get");
    sqlite3_reset(st);
    if (ret < 0) {
        free(buf);
        return -1;
    }
    *image = buf;
    *len = n;
    return 1;
}

int spool_firmware_get(spool *sp, const char *sha256_hex, uint8_t **image, size_t *len)
{
    *image = NULL;
    *len = 0;
    char key[65];
    if (spool_sha256_key(sha256_hex, key) < 0) return 0; /* no such image can be stored */
    sqlite3_stmt *st = prep(sp, ST_FW_GET);
    if (!st) return -1;
    sqlite3_bind_text(st, 1, key, 64, SQLITE_STATIC);
    int rc = sqlite3_step(st), ret = 0, chunked = 0;
    if (rc == SQLITE_ROW && sqlite3_column_bytes(st, 0) == 0)
        chunked = 1; /* schema 3: the image is in firmware_chunk */
    else if (rc == SQLITE_ROW)
        ret = spool_column_dup(sp, st, 0, image, len) < 0 ? -1 : 1; /* a row of schema 2 */
    else if (rc != SQLITE_DONE)
        ret = spool_fail(sp, "firmware_get");
    sqlite3_reset(st);
    return chunked ? firmware_chunks(sp, key, image, len) : ret;
}

/* The firmware row goes first, so the image is invisible before its chunks
 * go; a crash in between leaves only chunks no reader looks at. Inside the
 * caller's transaction it is all part of that one. */
int spool_firmware_delete(spool *sp, const char *sha256_hex)
{
    char key[65];
    if (spool_sha256_key(sha256_hex, key) < 0) return 0;
    sqlite3_stmt *st = prep(sp, ST_FW_DEL);
    if (!st) return -1;
    sqlite3_bind_text(st, 1, key, 64, SQLITE_STATIC);
    if (spool_step_done(sp, st, "firmware_delete") < 0) return -1;
    st = prep(sp, ST_FW_CHUNK_DEL);
    if (!st) return -1;
    sqlite3_bind_text(st, 1, key, 64, SQLITE_STATIC);
    return spool_step_done(sp, st, "firmware_delete: chunks");
}

/* ---- orders ---------------------------------------------------------- */

int spool_order_put(spool *sp, const char *order_id, uint32_t revision, const char *lot_id,
                    const char *fw_sha256, const uint8_t *encoded, size_t len)
{
    char key[65];
    if (spool_sha256_key(fw_sha256, key) < 0) key[0] = '\0'; /* unknown: its lot keeps every image */
    sqlite3_stmt *st = prep(sp, ST_ORDER_PUT);
    if (!st) return -1;
    sqlite3_bind_text(st, 1, order_id, -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 2, revision);
    sqlite3_bind_text(st, 3, lot_id, -1, SQLITE_STATIC);
    spool_bind_blob(st, 4, encoded, len);
    sqlite3_bind_int64(st, 5, wall_ms());
    sqlite3_bind_text(st, 6, key, -1, SQLITE_TRANSIENT);
    return spool_step_done(sp, st, "order_put");
}

int spool_order_get(spool *sp, const char *order_id, uint32_t *revision, uint8_t **encoded,
                    size_t *len)
{
    *encoded = NULL;
    *len = 0;
    sqlite3_stmt *st = prep(sp, ST_ORDER_GET);
    if (!st) return -1;
    sqlite3_bind_text(st, 1, order_id, -1, SQLITE_STATIC);
    int rc = sqlite3_step(st), ret = 0;
    if (rc == SQLITE_ROW) {
        *revision = (uint32_t)sqlite3_column_int64(st, 0);
        ret = spool_column_dup(sp, st, 1, encoded, len) < 0 ? -1 : 1;
    } else if (rc != SQLITE_DONE)
        ret = spool_fail(sp, "order_get");
    sqlite3_reset(st);
    return ret;
}

/* ---- lots and units -------------------------------------------------- */

int spool_lot_put(spool *sp, const spool_lot *lot)
{
    sqlite3_stmt *st = prep(sp, ST_LOT_PUT);
    if (!st) return -1;
    bind_field(st, 1, lot->lot_id, sizeof lot->lot_id);
    bind_field(st, 2, lot->order_id, sizeof lot->order_id);
    sqlite3_bind_int(st, 3, lot->active != 0);
    sqlite3_bind_int64(st, 4, lot->loaded);
    sqlite3_bind_int64(st, 5, lot->passed);
    sqlite3_bind_int64(st, 6, lot->failed);
    sqlite3_bind_int64(st, 7, lot->written_revision);
    bind_field(st, 8, lot->written_version, sizeof lot->written_version);
    bind_field(st, 9, lot->last_written_board, sizeof lot->last_written_board);
    sqlite3_bind_int64(st, 10, lot->active ? 0 : wall_ms());
    return spool_step_done(sp, st, "lot_put");
}

int spool_unit_put(spool *sp, const spool_unit *unit)
{
    if (unit->state < SPOOL_UNIT_IN_PROGRESS || unit->state > SPOOL_UNIT_FAILED)
        return spool_fail_msg(sp, "unit_put: bad state %d", unit->state);
    sqlite3_stmt *st = prep(sp, ST_UNIT_PUT);
    if (!st) return -1;
    bind_field(st, 1, unit->lot_id, sizeof unit->lot_id);
    bind_field(st, 2, unit->board_id, sizeof unit->board_id);
    sqlite3_bind_int64(st, 3, unit->idx);
    sqlite3_bind_int(st, 4, unit->state);
    sqlite3_bind_int64(st, 5, unit->steps_done);
    sqlite3_bind_int64(st, 6, unit->revision);
    bind_field(st, 7, unit->version, sizeof unit->version);
    bind_field(st, 8, unit->sha256, sizeof unit->sha256);
    sqlite3_bind_int64(st, 9, unit->attempt ? unit->attempt : 1);
    return spool_step_done(sp, st, "unit_put");
}

/* Column order is LOT_COLS. */
static void read_lot(sqlite3_stmt *st, spool_lot *lot)
{
    memset(lot, 0, sizeof *lot);
    column_str(st, 0, lot->lot_id, sizeof lot->lot_id);
    column_str(st, 1, lot->order_id, sizeof lot->order_id);
    lot->active = sqlite3_column_int(st, 2);
    lot->loaded = (uint32_t)sqlite3_column_int64(st, 3);
    lot->passed = (uint32_t)sqlite3_column_int64(st, 4);
    lot->failed = (uint32_t)sqlite3_column_int64(st, 5);
    lot->written_revision = (uint32_t)sqlite3_column_int64(st, 6);
    column_str(st, 7, lot->written_version, sizeof lot->written_version);
    column_str(st, 8, lot->last_written_board, sizeof lot->last_written_board);
}

/* Column order is UNIT_COLS. */
static void read_unit(sqlite3_stmt *st, spool_unit *unit)
{
    memset(unit, 0, sizeof *unit);
    column_str(st, 0, unit->lot_id, sizeof unit->lot_id);
    column_str(st, 1, unit->board_id, sizeof unit->board_id);
    unit->idx = (uint32_t)sqlite3_column_int64(st, 2);
    unit->state = sqlite3_column_int(st, 3);
    unit->steps_done = (uint32_t)sqlite3_column_int64(st, 4);
    unit->revision = (uint32_t)sqlite3_column_int64(st, 5);
    column_str(st, 6, unit->version, sizeof unit->version);
    column_str(st, 7, unit->sha256, sizeof unit->sha256);
    unit->attempt = (uint32_t)sqlite3_column_int64(st, 8);
}

int spool_lot_get(spool *sp, const char *lot_id, spool_lot *out)
{
    sqlite3_stmt *st = prep(sp, ST_LOT_GET);
    if (!st) return -1;
    sqlite3_bind_text(st, 1, lot_id, -1, SQLITE_STATIC);
    int rc = sqlite3_step(st), ret = 0;
    if (rc == SQLITE_ROW) {
        read_lot(st, out);
        ret = 1;
    } else if (rc != SQLITE_DONE)
        ret = spool_fail(sp, "lot_get");
    sqlite3_reset(st);
    return ret;
}

/* Both listings return the number of rows visited, or -1; cb returning
 * non-zero stops early. */
int spool_lot_list_active(spool *sp, spool_lot_cb cb, void *ud)
{
    sqlite3_stmt *st = prep(sp, ST_LOT_ACTIVE);
    if (!st) return -1;
    int visited = 0, rc;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        spool_lot lot;
        read_lot(st, &lot);
        visited++;
        if (cb(ud, &lot) != 0) {
            rc = SQLITE_DONE;
            break;
        }
    }
    if (rc != SQLITE_DONE) visited = spool_fail(sp, "lot_list_active");
    sqlite3_reset(st);
    return visited;
}

int spool_unit_list_in_progress(spool *sp, const char *lot_id, spool_unit_cb cb, void *ud)
{
    sqlite3_stmt *st = prep(sp, ST_UNIT_IN_PROGRESS);
    if (!st) return -1;
    sqlite3_bind_text(st, 1, lot_id, -1, SQLITE_STATIC);
    int visited = 0, rc;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        spool_unit unit;
        read_unit(st, &unit);
        visited++;
        if (cb(ud, &unit) != 0) {
            rc = SQLITE_DONE;
            break;
        }
    }
    if (rc != SQLITE_DONE) visited = spool_fail(sp, "unit_list_in_progress");
    sqlite3_reset(st);
    return visited;
}

int spool_unit_versions(spool *sp, const char *lot_id, spool_version_cb cb, void *ud)
{
    sqlite3_stmt *st = prep(sp, ST_UNIT_VERSIONS);
    if (!st) return -1;
    sqlite3_bind_text(st, 1, lot_id, -1, SQLITE_STATIC);
    int visited = 0, rc;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        spool_version_count vc = {0};
        column_str(st, 0, vc.version, sizeof vc.version);
        column_str(st, 1, vc.sha256, sizeof vc.sha256);
        vc.passed = (uint32_t)sqlite3_column_int64(st, 2);
        vc.failed = (uint32_t)sqlite3_column_int64(st, 3);
        vc.passed_first = (uint32_t)sqlite3_column_int64(st, 4);
        visited++;
        if (cb(ud, &vc) != 0) {
            rc = SQLITE_DONE;
            break;
        }
    }
    if (rc != SQLITE_DONE) visited = spool_fail(sp, "unit_versions");
    sqlite3_reset(st);
    return visited;
}

int spool_unit_earlier_lots(spool *sp, const char *board_id, const char *lot_id)
{
    sqlite3_stmt *st = prep(sp, ST_UNIT_EARLIER);
    if (!st) return -1;
    sqlite3_bind_text(st, 1, board_id, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 2, lot_id, -1, SQLITE_STATIC);
    int rc = sqlite3_step(st), n = -1;
    if (rc == SQLITE_ROW) n = sqlite3_column_int(st, 0);
    else spool_fail(sp, "unit_earlier_lots");
    sqlite3_reset(st);
    return n;
}

const char *spool_instance_id(spool *sp)
{
    if (sp->instance_id[0]) return sp->instance_id;
    sqlite3_stmt *st = prep(sp, ST_INSTANCE_ID);
    if (!st) return "";
    if (sqlite3_step(st) == SQLITE_ROW) column_str(st, 0, sp->instance_id, sizeof sp->instance_id);
    sqlite3_reset(st);
    return sp->instance_id;
}

/* ---- key/value ------------------------------------------------------- */

static sqlite3_stmt *kv_prep(spool *sp, enum spool_stmt id, const char *ns, const char *key)
{
    sqlite3_stmt *st = prep(sp, id);
    if (!st) return NULL;
    sqlite3_bind_text(st, 1, ns, -1, SQLITE_STATIC);
    if (key) sqlite3_bind_text(st, 2, key, -1, SQLITE_STATIC);
    return st;
}

int spool_kv_put(spool *sp, const char *ns, const char *key, const void *value, size_t len)
{
    sqlite3_stmt *st = kv_prep(sp, ST_KV_PUT, ns, key);
    if (!st) return -1;
    spool_bind_blob(st, 3, value, len);
    return spool_step_done(sp, st, "kv_put");
}

int spool_kv_get(spool *sp, const char *ns, const char *key, uint8_t **value, size_t *len)
{
    *value = NULL;
    *len = 0;
    sqlite3_stmt *st = kv_prep(sp, ST_KV_GET, ns, key);
    if (!st) return -1;
    int rc = sqlite3_step(st), ret = 0;
    if (rc == SQLITE_ROW)
        ret = spool_column_dup(sp, st, 0, value, len) < 0 ? -1 : 1;
    else if (rc != SQLITE_DONE)
        ret = spool_fail(sp, "kv_get");
    sqlite3_reset(st);
    return ret;
}

int spool_kv_del(spool *sp, const char *ns, const char *key)
{
    sqlite3_stmt *st = kv_prep(sp, ST_KV_DEL, ns, key);
    return st ? spool_step_done(sp, st, "kv_del") : -1;
}

int spool_kv_clear(spool *sp, const char *ns)
{
    sqlite3_stmt *st = kv_prep(sp, ST_KV_CLEAR, ns, NULL);
    return st ? spool_step_done(sp, st, "kv_clear") : -1;
}

int spool_kv_keys(spool *sp, const char *ns, spool_key_cb cb, void *ud)
{
    sqlite3_stmt *st = kv_prep(sp, ST_KV_KEYS, ns, NULL);
    if (!st) return -1;
    int n = 0, rc;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        n++;
        if (cb(ud, (const char *)sqlite3_column_text(st, 0)) != 0) break;
    }
    if (rc != SQLITE_ROW && rc != SQLITE_DONE) n = spool_fail(sp, "kv_keys");
    sqlite3_reset(st);
    return n;
}
