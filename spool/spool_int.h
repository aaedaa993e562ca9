/* SPDX-License-Identifier: Apache-2.0 */
/* spool_int.h - what the spool's source files share and no one else sees:
 * the handle, the statement cache and the error helpers, all in spool.c. */
#ifndef LINEAGENT_SPOOL_INT_H
#define LINEAGENT_SPOOL_INT_H

#include <sqlite3.h>
#include <sys/types.h>

#include "spool.h"

/* One slot per cached statement; each file keeps the SQL of its own. */
enum spool_stmt {
    ST_BEGIN,
    ST_COMMIT,
    ST_ROLLBACK,
    ST_SEQ_GET,
    ST_SEQ_SET,
    ST_EVENT_ADD,
    ST_PENDING_PAGE,
    ST_WATERMARK_GET,
    ST_WATERMARK_SET,
    ST_DELIVERY_MERGE,
    ST_DELIVERY_ADD,
    ST_PENDING_COUNT,
    ST_FIRST_PENDING,
    ST_INBOX_PUT,
    ST_INBOX_NEXT,
    ST_INBOX_DEL,
    ST_FW_PUT,
    ST_FW_TOUCH,
    ST_FW_GET,
    ST_FW_DEL,
    ST_FW_CHUNK_PUT,
    ST_FW_CHUNKS,
    ST_FW_CHUNK_DEL,
    ST_ORDER_PUT,
    ST_ORDER_GET,
    ST_LOT_PUT,
    ST_LOT_GET,
    ST_LOT_ACTIVE,
    ST_UNIT_PUT,
    ST_UNIT_IN_PROGRESS,
    ST_UNIT_VERSIONS,
    ST_UNIT_EARLIER,
    ST_INSTANCE_ID,
    ST_KV_PUT,
    ST_KV_GET,
    ST_KV_DEL,
    ST_KV_KEYS,
    ST_KV_CLEAR,
    ST_PRUNE_UNITS, /* spool_prune.c */
    ST_PRUNE_ORDERS,
    ST_PRUNE_LOTS,
    ST_FW_UNUSED,
    ST_FW_USER,
    ST_FW_BYTES,
    ST_PURGE_PUT,
    ST_PURGE_LIST,
    ST_COUNT
};

struct spool {
    sqlite3 *db;
    dev_t dev;         /* the file, for the open-files registry */
    ino_t ino;
    sqlite3_stmt *stmt[ST_COUNT];
    int in_txn;        /* inside a spool_begin transaction */
    int busy_ms;       /* busy timeout: how long a write waits for the lock */
    uint64_t next_seq; /* next seq to hand out in this transaction */
    uint64_t seq_base; /* meta.next_seq as read at begin */
    int err_code;      /* SQLite result code behind err, 0 for our own errors */
    char err[512];
    char instance_id[37]; /* cached by spool_instance_id */
};

/* Every event up to this seq was acknowledged (schema 2). */
#define SPOOL_WATERMARK "(SELECT value FROM meta WHERE name = 'delivered_upto')"

/* Fill sp->err and return -1: with a message / with SQLite's error now (a
 * later reset or rollback would replace it). spool_fail is inline so the
 * compiler sees the -1, and callers' out-parameters are not reported as
 * maybe-uninitialized. */
int spool_fail_msg(spool *sp, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void spool_set_sqlite_error(spool *sp, const char *what);
static inline int spool_fail(spool *sp, const char *what)
{
    spool_set_sqlite_error(sp, what);
    return -1;
}
/* The cached statement of slot id, prepared from sql on first use; NULL
 * (err filled) if it cannot be, or if it is being iterated. */
sqlite3_stmt *spool_prep(spool *sp, enum spool_stmt id, const char *sql);
/* Steps a statement that returns no rows and resets it. */
int spool_step_done(spool *sp, sqlite3_stmt *st, const char *what);
/* Runs ST_BEGIN, ST_COMMIT or ST_ROLLBACK. */
int spool_txn(spool *sp, enum spool_stmt id, const char *what);
int spool_rollback_quiet(spool *sp);
/* -1 (err filled) inside a transaction: for calls that run their own. */
int spool_require_autocommit(spool *sp, const char *what);
int spool_bind_blob(sqlite3_stmt *st, int i, const void *p, size_t len);
/* Lowercases a hex SHA-256 into key; -1 unless it is 64 hex digits. */
int spool_sha256_key(const char *hex, char key[65]);
int spool_column_dup(spool *sp, sqlite3_stmt *st, int col, uint8_t **out, size_t *len);

#endif
