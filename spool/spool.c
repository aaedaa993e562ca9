/* SPDX-License-Identifier: Apache-2.0 */
/* spool.c - the SQLite store-and-forward spool behind spool.h: the file
 * (creation 0600, schema and its migration, WAL), the handle with its
 * statement cache and errors, and transactions. Events and their delivery
 * are in spool_events.c; orders, lots, units, inbox, firmware and the
 * key/value store in spool_state.c. One handle is one connection in WAL
 * mode; every statement is prepared once and cached on the handle. */
#include "spool_int.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <sqlite3.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define SPOOL_APP_ID 0x4C4E4147 /* "LNAG" in the database header */
#define SPOOL_SCHEMA_VERSION 5  /* PRAGMA user_version */
#define SPOOL_DEFAULT_BUSY_MS 5000

/* Schema version 2. meta.next_seq is the next event seq to hand out: it lives
 * apart from events so pruning delivered rows can never make seq go back.
 * Delivery is a watermark, meta.delivered_upto: every event with a seq up to
 * it was acknowledged by Kafka. Marking a batch delivered is then one row
 * write, not one rewrite of every event row and its index entry (which cost
 * the forwarder more than reading and producing the events). deliveries
 * records when the watermark moved, one row per second of deliveries at
 * most: an event was delivered at the delivered_ms of the first row whose
 * upto_seq reaches it. */
#define STR_(x) #x
#define STR(x) STR_(x)
/* In the schema and in the migration from version 1 alike. */
#define DELIVERIES_TABLE \
    "CREATE TABLE IF NOT EXISTS deliveries(upto_seq INTEGER PRIMARY KEY, delivered_ms INTEGER NOT NULL);"
/* Schema version 3: a firmware image is stored as chunks of its own rows,
 * each written in a short transaction of its own, before its firmware row
 * (image left empty) makes it visible; see spool_firmware_put. Rows of
 * version 2 keep the whole image in firmware.image and are read as before. */
#define FIRMWARE_CHUNK_TABLE \
    "CREATE TABLE IF NOT EXISTS firmware_chunk(sha256 TEXT NOT NULL, idx INTEGER NOT NULL," \
    " data BLOB NOT NULL, PRIMARY KEY(sha256, idx));"
/* Schema version 4: the agent instance id, a UUID (version 4) drawn once when
 * the spool is created (or first opened by version 4) and stamped into every
 * event, so a replaced spool starting again at seq 1 is another instance, not
 * a reuse of seq; and each unit's attempt (1 + the lots the same board id
 * went through before), with the index that counts them. */
#define INSTANCE_ID_SQL \
    "INSERT OR IGNORE INTO kv(ns, key, value) SELECT 'spool', 'instance_id', lower(substr(h, 1, 8) || '-'" \
    " || substr(h, 9, 4) || '-4' || substr(h, 14, 3) || '-' || substr('89ab', 1 + (abs(random()) % 4), 1)" \
    " || substr(h, 18, 3) || '-' || substr(h, 21, 12)) FROM (SELECT hex(randomblob(16)) AS h);"
#define UNITS_BOARD_INDEX "CREATE INDEX IF NOT EXISTS units_board ON units(board_id);"
/* Schema version 5: housekeeping (spool_prune.c). lots.completed_ms (when
 * the lot completed; its rows go with the retention after it),
 * orders.fw_sha256 (the image the order's latest revision names, so the
 * spool knows which images active lots use) and firmware.stored_ms (stored
 * or last reused, so an image an order is being decided on is not pruned
 * under it); board_lots, each board id's count of lots, kept by a trigger
 * on every new unit row and never pruned, so a board's attempt stays right
 * after its old units are gone; firmware_purges, what `spool
 * purge-firmware` removed. */
#define BOARD_LOTS_TABLE \
    "CREATE TABLE IF NOT EXISTS board_lots(board_id TEXT PRIMARY KEY, lots INTEGER NOT NULL);" \
    "CREATE TRIGGER IF NOT EXISTS units_board_lots AFTER INSERT ON units BEGIN" \
    " INSERT INTO board_lots(board_id, lots) VALUES(new.board_id, 1)" \
    " ON CONFLICT(board_id) DO UPDATE SET lots = lots + 1; END;"
#define FIRMWARE_PURGES_TABLE \
    "CREATE TABLE IF NOT EXISTS firmware_purges(id INTEGER PRIMARY KEY, sha256 TEXT NOT NULL," \
    " version TEXT NOT NULL, purged_ms INTEGER NOT NULL, bytes INTEGER NOT NULL);"
static const char schema_sql[] =
    "CREATE TABLE IF NOT EXISTS meta(name TEXT PRIMARY KEY, value INTEGER NOT NULL);"
    "INSERT OR IGNORE INTO meta(name, value) VALUES('next_seq', 1);"
    "INSERT OR IGNORE INTO meta(name, value) VALUES('delivered_upto', 0);"
    "CREATE TABLE IF NOT EXISTS events(seq INTEGER PRIMARY KEY, event_id TEXT NOT NULL UNIQUE,"
    " key TEXT NOT NULL, type TEXT NOT NULL, time_ms INTEGER NOT NULL, payload BLOB NOT NULL);"
    DELIVERIES_TABLE
    /* AUTOINCREMENT: ids are never reused, so an after_id cursor stays valid. */
    "CREATE TABLE IF NOT EXISTS inbox(id INTEGER PRIMARY KEY AUTOINCREMENT,"
    " received_ms INTEGER NOT NULL, payload BLOB, original_len INTEGER NOT NULL);"
    "CREATE TABLE IF NOT EXISTS firmware(sha256 TEXT PRIMARY KEY, image BLOB NOT NULL,"
    " stored_ms INTEGER NOT NULL DEFAULT 0);"
    FIRMWARE_CHUNK_TABLE
    "CREATE TABLE IF NOT EXISTS orders(order_id TEXT PRIMARY KEY, revision INTEGER NOT NULL,"
    " lot_id TEXT NOT NULL, encoded BLOB NOT NULL, updated_ms INTEGER NOT NULL,"
    " fw_sha256 TEXT NOT NULL DEFAULT '');"
    "CREATE TABLE IF NOT EXISTS lots(lot_id TEXT PRIMARY KEY, order_id TEXT NOT NULL,"
    " active INTEGER NOT NULL, loaded INTEGER NOT NULL, passed INTEGER NOT NULL,"
    " failed INTEGER NOT NULL, written_revision INTEGER NOT NULL,"
    " written_version TEXT NOT NULL, last_written_board TEXT NOT NULL,"
    " created INTEGER NOT NULL, completed_ms INTEGER NOT NULL DEFAULT 0);"
    "CREATE INDEX IF NOT EXISTS lots_created ON lots(created);"
    "CREATE TABLE IF NOT EXISTS units(lot_id TEXT NOT NULL, board_id TEXT NOT NULL,"
    " idx INTEGER NOT NULL, state INTEGER NOT NULL, steps_done INTEGER NOT NULL,"
    " revision INTEGER NOT NULL, version TEXT NOT NULL, sha256 TEXT NOT NULL,"
    " attempt INTEGER NOT NULL DEFAULT 1, PRIMARY KEY(lot_id, board_id));"
    UNITS_BOARD_INDEX
    "CREATE INDEX IF NOT EXISTS units_in_progress ON units(lot_id, idx) WHERE state = 0;"
    "CREATE TABLE IF NOT EXISTS kv(ns TEXT NOT NULL, key TEXT NOT NULL, value BLOB NOT NULL,"
    " PRIMARY KEY(ns, key));"
    BOARD_LOTS_TABLE
    FIRMWARE_PURGES_TABLE
    INSTANCE_ID_SQL
    "PRAGMA application_id = " STR(SPOOL_APP_ID) ";"
    "PRAGMA user_version = " STR(SPOOL_SCHEMA_VERSION) ";";

/* Version 1 flagged each event row (delivered_ms, with a partial index of
 * the undelivered). The watermark becomes the top of the delivered prefix;
 * the rare event delivered above it (acknowledged out of order before a
 * stop) is sent once more, with its event_id, which consumers de-duplicate. */
static const char migrate_v1_sql[] =
    "INSERT OR IGNORE INTO meta(name, value) VALUES('delivered_upto',"
    " coalesce((SELECT min(seq) FROM events WHERE delivered_ms IS NULL),"
    " (SELECT value FROM meta WHERE name = 'next_seq')) - 1);"
    DELIVERIES_TABLE
    "INSERT INTO deliveries(upto_seq, delivered_ms) SELECT max(seq), delivered_ms FROM events"
    " WHERE seq <= " SPOOL_WATERMARK " GROUP BY delivered_ms;"
    "DROP INDEX events_pending;"
    "ALTER TABLE events DROP COLUMN delivered_ms;"
    FIRMWARE_CHUNK_TABLE
    "PRAGMA user_version = " STR(SPOOL_SCHEMA_VERSION) ";";

/* Version 2 lacks the firmware chunks (later additions: migrate_latest). */
static const char migrate_v2_sql[] =
    FIRMWARE_CHUNK_TABLE
    "PRAGMA user_version = " STR(SPOOL_SCHEMA_VERSION) ";";

static const char *const stmt_sql[ST_COUNT] = {
    /* IMMEDIATE takes the write lock up front, so transactions of several
     * handles serialise at begin and each reads the current next_seq. */
    [ST_BEGIN] = "BEGIN IMMEDIATE",
    [ST_COMMIT] = "COMMIT",
    [ST_ROLLBACK] = "ROLLBACK",
    [ST_SEQ_GET] = "SELECT value FROM meta WHERE name = 'next_seq'",
    [ST_SEQ_SET] = "UPDATE meta SET value = ?1 WHERE name = 'next_seq'",
};

/* ---- errors and statements ------------------------------------------- */

int spool_fail_msg(spool *sp, const char *fmt, ...)
{
    va_list ap;
    sp->err_code = 0;
    va_start(ap, fmt);
    vsnprintf(sp->err, sizeof sp->err, fmt, ap);
    va_end(ap);
    return -1;
}

/* Captures sqlite3_errmsg now: a later reset or rollback would replace it. */
void spool_set_sqlite_error(spool *sp, const char *what)
{
    int code = sqlite3_errcode(sp->db);
    spool_fail_msg(sp, "%s: %s", what, sqlite3_errmsg(sp->db));
    sp->err_code = code;
}

sqlite3_stmt *spool_prep(spool *sp, enum spool_stmt id, const char *sql)
{
    sqlite3_stmt *st = sp->stmt[id];
    if (!st) {
        if (sqlite3_prepare_v3(sp->db, sql, -1, SQLITE_PREPARE_PERSISTENT, &st, NULL) !=
            SQLITE_OK) {
            spool_fail(sp, "prepare");
            return NULL;
        }
        sp->stmt[id] = st;
    }
    /* A callback re-entering the function that is iterating this statement
     * would reset its cursor under it. */
    if (sqlite3_stmt_busy(st)) {
        spool_fail_msg(sp, "statement in use (re-entrant call from a callback)");
        return NULL;
    }
    return st;
}

/* Steps a statement that returns no rows and resets it. */
int spool_step_done(spool *sp, sqlite3_stmt *st, const char *what)
{
    int ret = 0;
    if (sqlite3_step(st) != SQLITE_DONE) ret = spool_fail(sp, what);
    sqlite3_reset(st);
    return ret;
}

static sqlite3_stmt *prep(spool *sp, enum spool_stmt id)
{
    return spool_prep(sp, id, stmt_sql[id]);
}

int spool_txn(spool *sp, enum spool_stmt id, const char *what)
{
    sqlite3_stmt *st = prep(sp, id);
    return st ? spool_step_done(sp, st, what) : -1;
}

/* Rolls back whatever is open without touching sp->err, which holds the
 * reason for rolling back. SQLite may already have rolled back on its own. */
int spool_rollback_quiet(spool *sp)
{
    if (sqlite3_get_autocommit(sp->db)) return 0;
    sqlite3_stmt *st = prep(sp, ST_ROLLBACK);
    if (!st) return -1;
    int rc = sqlite3_step(st);
    sqlite3_reset(st);
    return rc == SQLITE_DONE ? 0 : -1;
}

int spool_require_autocommit(spool *sp, const char *what)
{
    if (sqlite3_get_autocommit(sp->db)) return 0;
    return spool_fail_msg(sp, "%s: runs its own transaction; not allowed inside one", what);
}

/* A zero-length blob bound with a NULL pointer would be SQL NULL. */
int spool_bind_blob(sqlite3_stmt *st, int i, const void *p, size_t len)
{
    if (len == 0) return sqlite3_bind_zeroblob(st, i, 0);
    return sqlite3_bind_blob64(st, i, p, len, SQLITE_STATIC);
}

/* malloc'ed copy of a blob column; never NULL on success, even when empty. */
int spool_column_dup(spool *sp, sqlite3_stmt *st, int col, uint8_t **out, size_t *len)
{
    const void *p = sqlite3_column_blob(st, col);
    size_t n = (size_t)sqlite3_column_bytes(st, col);
    uint8_t *copy = malloc(n ? n : 1);
    if (!copy) return spool_fail_msg(sp, "out of memory (%zu bytes)", n);
    if (n) memcpy(copy, p, n);
    *out = copy;
    *len = n;
    return 0;
}

/* ---- open and close -------------------------------------------------- */

static int pragma_int(sqlite3 *db, const char *sql, int64_t *out)
{
    sqlite3_stmt *st;
    if (sqlite3_prepare_v2(db, sql, -1, &st, NULL) != SQLITE_OK) return -1;
    int rc = sqlite3_step(st);
    if (rc == SQLITE_ROW) *out = sqlite3_column_int64(st, 0);
    sqlite3_finalize(st);
    return rc == SQLITE_ROW ? 0 : -1;
}

/* Run inside a transaction, through SQLite, so it also sees what is still in
 * the WAL. 1: a current lineagent spool; 2: a version 1 spool, 3: a version
 * 2 spool, 4: a version 3 spool, to migrate; 0: an empty database, ours to initialise; -1:
 * refused, with err filled; 5: a version 4 spool. Only reads. */
static int classify(sqlite3 *db, const char *path, char *err, size_t err_len)
{
    int64_t app_id, version, objects;
    if (pragma_int(db, "PRAGMA application_id", &app_id) < 0 ||
        pragma_int(db, "PRAGMA user_version", &version) < 0 ||
        pragma_int(db, "SELECT count(*) FROM sqlite_master", &objects) < 0) {
        snprintf(err, err_len, "%s: %s", path, sqlite3_errmsg(db));
        return -1;
    }
    if (app_id == SPOOL_APP_ID) {
        if (version > SPOOL_SCHEMA_VERSION) {
            snprintf(err, err_len, "%s: spool schema version %lld is newer than supported (%d)",
                     path, (long long)version, SPOOL_SCHEMA_VERSION);
            return -1;
        }
        return version == SPOOL_SCHEMA_VERSION ? 1 : version >= 1 && version < SPOOL_SCHEMA_VERSION ? (int)version + 1 : 0;
    }
    if (app_id != 0 || version != 0 || objects != 0) {
        snprintf(err, err_len, "%s is not a lineagent spool (application_id 0x%08x)", path,
                 (unsigned)(uint32_t)app_id);
        return -1;
    }
    return 0;
}

/* Creates the file ourselves so it is 0600 whatever the umask. SQLite gives
 * the -journal, -wal and -shm files it creates the main file's mode, so they
 * are 0600 too without a chmod of our own. */
static int create_if_absent(const char *path, char *err, size_t err_len)
{
    int fd = open(path, O_CREAT | O_EXCL | O_WRONLY | O_CLOEXEC, 0600);
    if (fd >= 0) return close(fd);
    if (errno == EEXIST) return 0;
    snprintf(err, err_len, "%s: %s", path, strerror(errno));
    return -1;
}

/* Reads the header of the file with plain read(), before SQLite touches it:
 * even a read-only SQLite connection leaves -wal/-shm files beside a WAL
 * database, or may roll back a hot journal. A non-empty spool always carries
 * our application_id in the main file, because the schema (and the id) is
 * committed there before the switch to WAL. */
static int check_header(const char *path, char *err, size_t err_len)
{
    unsigned char h[100];
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        snprintf(err, err_len, "%s: %s", path, strerror(errno));
        return -1;
    }
    ssize_t n = pread(fd, h, sizeof h, 0);
    int saved = errno;
    close(fd);
    if (n < 0) {
        snprintf(err, err_len, "%s: %s", path, strerror(saved));
        return -1;
    }
    if (n == 0) return 0; /* new, or created by a handle that has not initialised it yet */
    if ((size_t)n < sizeof h || memcmp(h, "SQLite format 3", 16) != 0) {
        snprintf(err, err_len, "%s: file is not a database", path);
        return -1;
    }
    uint32_t app_id = (uint32_t)h[68] << 24 | (uint32_t)h[69] << 16 | (uint32_t)h[70] << 8 | h[71];
    if (app_id != SPOOL_APP_ID) {
        snprintf(err, err_len, "%s is not a lineagent spool (application_id 0x%08x)", path,
                 (unsigned)app_id);
        return -1;
    }
    return 0;
}

/* Files this process has spool connections on. POSIX record locks belong
 * to the process, and close() of ANY descriptor of a file drops all of the
 * process's locks on it: check_header's open()/close() while another handle
 * of ours holds SQLite's locks would let another process (lineagent spool,
 * the sqlite3 shell) checkpoint and delete the WAL under us, losing commits.
 * So the header is read only by the first opener of a file; later handles
 * of the same file were checked by it. */
typedef struct open_file {
    dev_t dev;
    ino_t ino;
    int refs;
    struct open_file *next;
} open_file;
static pthread_mutex_t open_files_mu = PTHREAD_MUTEX_INITIALIZER;
static open_file *open_files;

/* Registers the file (checking its header if this is the first handle);
 * 0 or -1 with err. */
static int open_files_acquire(const char *path, dev_t *dev, ino_t *ino, char *err, size_t err_len)
{
    struct stat sb;
    if (stat(path, &sb) != 0) {
        snprintf(err, err_len, "%s: %s", path, strerror(errno));
        return -1;
    }
    pthread_mutex_lock(&open_files_mu);
    open_file *f = open_files;
    while (f && !(f->dev == sb.st_dev && f->ino == sb.st_ino)) f = f->next;
    int rc = 0;
    if (f) {
        f->refs++;
    } else if ((rc = check_header(path, err, err_len)) == 0) {
        f = calloc(1, sizeof *f);
        if (!f) {
            snprintf(err, err_len, "out of memory");
            rc = -1;
        } else {
            *f = (open_file){sb.st_dev, sb.st_ino, 1, open_files};
            open_files = f;
        }
    }
    pthread_mutex_unlock(&open_files_mu);
    *dev = sb.st_dev;
    *ino = sb.st_ino;
    return rc;
}

static void open_files_release(dev_t dev, ino_t ino)
{
    pthread_mutex_lock(&open_files_mu);
    for (open_file **pp = &open_files; *pp; pp = &(*pp)->next)
        if ((*pp)->dev == dev && (*pp)->ino == ino) {
            if (--(*pp)->refs == 0) {
                open_file *dead = *pp;
                *pp = dead->next;
                free(dead);
            }
            break;
        }
    pthread_mutex_unlock(&open_files_mu);
}

/* Adds column col (with its definition) to table where the table exists
 * and lacks it; 0 or -1. */
static int add_column(sqlite3 *db, const char *table, const char *col, const char *def)
{
    char sql[256];
    int64_t has_table = 0, has_col = 0;
    snprintf(sql, sizeof sql, "SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name = '%s'", table);
    if (pragma_int(db, sql, &has_table) < 0) return -1;
    if (!has_table) return 0;
    snprintf(sql, sizeof sql, "SELECT count(*) FROM pragma_table_info('%s') WHERE name = '%s'", table, col);
    if (pragma_int(db, sql, &has_col) < 0) return -1;
    if (has_col) return 0;
    snprintf(sql, sizeof sql, "ALTER TABLE %s ADD COLUMN %s %s;", table, col, def);
    return sqlite3_exec(db, sql, NULL, NULL, NULL) == SQLITE_OK ? 0 : -1;
}

/* Versions 4 and 5's additions to an older spool, after its own migration:
 * the columns where their tables exist, then the schema's CREATE ... IF NOT
 * EXISTS for whatever is missing (indexes, tables an old spool never had,
 * the board_lots trigger) and the instance id; then the data: each board's
 * count of lots from the units kept, and lots completed and images stored
 * before the upgrade date from it (their retention runs from now). An old
 * spool keeps auto_vacuum off until a VACUUM (deploy/README.md). */
static int migrate_latest(sqlite3 *db)
{
    int64_t had_board_lots = 0;
    if (pragma_int(db, "SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name = 'board_lots'",
                   &had_board_lots) < 0 ||
        add_column(db, "units", "attempt", "INTEGER NOT NULL DEFAULT 1") < 0 ||
        add_column(db, "lots", "completed_ms", "INTEGER NOT NULL DEFAULT 0") < 0 ||
        add_column(db, "orders", "fw_sha256", "TEXT NOT NULL DEFAULT ''") < 0 ||
        add_column(db, "firmware", "stored_ms", "INTEGER NOT NULL DEFAULT 0") < 0 ||
        sqlite3_exec(db, schema_sql, NULL, NULL, NULL) != SQLITE_OK)
        return -1;
#define NOW_MS "CAST((julianday('now') - 2440587.5) * 86400000 AS INTEGER)"
    static const char data_sql[] =
        "UPDATE lots SET completed_ms = " NOW_MS ""
        " WHERE NOT active AND completed_ms = 0;"
        "UPDATE firmware SET stored_ms = " NOW_MS " WHERE stored_ms = 0;";
    if (sqlite3_exec(db, data_sql, NULL, NULL, NULL) != SQLITE_OK) return -1;
    if (!had_board_lots &&
        sqlite3_exec(db, "INSERT INTO board_lots(board_id, lots) SELECT board_id, count(*) FROM units"
                         " GROUP BY board_id;", NULL, NULL, NULL) != SQLITE_OK)
        return -1;
    return 0;
}

/* A current spool is only read here, in a read transaction: opening one
 * never waits for the write lock, so a handle opens while another process
 * (the sqlite3 shell, a backup) holds it. Creation and migration run under
 * the write lock, re-checking the file there: another handle may be
 * initialising the same new file at the same moment. */
static int init_schema(sqlite3 *db, const char *path, char *err, size_t err_len)
{
    if (sqlite3_exec(db, "BEGIN", NULL, NULL, NULL) != SQLITE_OK) {
        snprintf(err, err_len, "%s: begin: %s", path, sqlite3_errmsg(db));
        return -1;
    }
    int current = classify(db, path, err, err_len);
    sqlite3_exec(db, "COMMIT", NULL, NULL, NULL); /* a read: nothing to commit */
    if (current < 0) {
        sqlite3_db_config(db, SQLITE_DBCONFIG_NO_CKPT_ON_CLOSE, 1, NULL);
        return -1;
    }
    if (current == 1) return 0;
    /* A new spool returns freed pages in batches (spool_vacuum_step). The
     * mode must be set before the first table exists, and outside a
     * transaction; on a database with tables it is a no-op. */
    if (current == 0 && sqlite3_exec(db, "PRAGMA auto_vacuum = INCREMENTAL", NULL, NULL, NULL) != SQLITE_OK) {
        snprintf(err, err_len, "%s: auto_vacuum: %s", path, sqlite3_errmsg(db));
        return -1;
    }
    if (sqlite3_exec(db, "BEGIN IMMEDIATE", NULL, NULL, NULL) != SQLITE_OK) {
        snprintf(err, err_len, "%s: begin: %s", path, sqlite3_errmsg(db));
        return -1;
    }
    int kind = classify(db, path, err, err_len);
    if (kind == 0 && sqlite3_exec(db, schema_sql, NULL, NULL, NULL) != SQLITE_OK) {
        snprintf(err, err_len, "%s: creating schema: %s", path, sqlite3_errmsg(db));
        kind = -1;
    }
    if (kind == 2 && sqlite3_exec(db, migrate_v1_sql, NULL, NULL, NULL) != SQLITE_OK) {
        snprintf(err, err_len, "%s: migrating schema 1 to %d: %s", path, SPOOL_SCHEMA_VERSION, sqlite3_errmsg(db));
        kind = -1;
    }
    if (kind == 3 && sqlite3_exec(db, migrate_v2_sql, NULL, NULL, NULL) != SQLITE_OK) {
        snprintf(err, err_len, "%s: migrating schema 2 to %d: %s", path, SPOOL_SCHEMA_VERSION, sqlite3_errmsg(db));
        kind = -1;
    }
    if (kind >= 2 && migrate_latest(db) != 0) {
        snprintf(err, err_len, "%s: migrating to schema %d: %s", path, SPOOL_SCHEMA_VERSION, sqlite3_errmsg(db));
        kind = -1;
    }
    if (kind >= 0 && sqlite3_exec(db, "COMMIT", NULL, NULL, NULL) != SQLITE_OK) {
        snprintf(err, err_len, "%s: commit: %s", path, sqlite3_errmsg(db));
        kind = -1;
    }
    if (kind < 0) {
        sqlite3_exec(db, "ROLLBACK", NULL, NULL, NULL);
        /* A refused WAL file (say, of a newer schema) must not be
         * checkpointed into by our close. */
        sqlite3_db_config(db, SQLITE_DBCONFIG_NO_CKPT_ON_CLOSE, 1, NULL);
    }
    return kind < 0 ? -1 : 0;
}

/* Only after init_schema(): switching to WAL writes page 1 at once, and a
 * crash right then must not leave a main file without our application_id.
 * The switch needs an exclusive lock that SQLite takes without calling the
 * busy handler (the statement already holds a read lock), so a handle racing
 * another's first open of a new file retries here; on a WAL file it is a
 * no-op. */
static int set_wal(sqlite3 *db, const char *path, int busy_ms, char *err, size_t err_len)
{
    sqlite3_stmt *st;
    if (sqlite3_prepare_v2(db, "PRAGMA journal_mode=WAL", -1, &st, NULL) != SQLITE_OK) {
        snprintf(err, err_len, "%s: journal_mode: %s", path, sqlite3_errmsg(db));
        return -1;
    }
    int ret = -1;
    for (int waited_ms = 0;; waited_ms += 10) {
        int rc = sqlite3_step(st);
        if (rc == SQLITE_ROW) {
            const char *mode = (const char *)sqlite3_column_text(st, 0);
            if (mode && strcmp(mode, "wal") == 0)
                ret = 0;
            else
                snprintf(err, err_len, "%s: cannot switch to WAL mode (still %s)", path,
                         mode ? mode : "unknown");
            break;
        }
        if ((rc & 0xff) != SQLITE_BUSY || waited_ms >= busy_ms) {
            snprintf(err, err_len, "%s: cannot switch to WAL mode: %s", path, sqlite3_errmsg(db));
            break;
        }
        sqlite3_reset(st);
        nanosleep(&(struct timespec){.tv_nsec = 10 * 1000000}, NULL);
    }
    sqlite3_finalize(st);
    return ret;
}

static int set_synchronous(sqlite3 *db, const char *path, const char *sync, char *err,
                           size_t err_len)
{
    char sql[64];
    snprintf(sql, sizeof sql, "PRAGMA synchronous=%s", sync);
    if (sqlite3_exec(db, sql, NULL, NULL, NULL) == SQLITE_OK) return 0;
    snprintf(err, err_len, "%s: synchronous: %s", path, sqlite3_errmsg(db));
    return -1;
}

int spool_open(spool **out, const char *path, const spool_options *opts, char *err, size_t err_len)
{
    *out = NULL;
    const char *sync = opts && opts->synchronous ? opts->synchronous : "FULL";
    if (strcasecmp(sync, "FULL") != 0 && strcasecmp(sync, "NORMAL") != 0) {
        snprintf(err, err_len, "synchronous must be FULL or NORMAL, not \"%s\"", sync);
        return -1;
    }
    int busy_ms = opts && opts->busy_timeout_ms > 0 ? opts->busy_timeout_ms : SPOOL_DEFAULT_BUSY_MS;

    dev_t dev;
    ino_t ino;
    if (create_if_absent(path, err, err_len) < 0 || open_files_acquire(path, &dev, &ino, err, err_len) < 0)
        return -1;

    spool *sp = calloc(1, sizeof *sp);
    if (!sp) {
        open_files_release(dev, ino);
        snprintf(err, err_len, "out of memory");
        return -1;
    }
    sp->dev = dev;
    sp->ino = ino;
    /* No SQLITE_OPEN_CREATE: the file exists, and if it vanished meanwhile
     * we would rather fail than make one with the umask's mode. */
    if (sqlite3_open_v2(path, &sp->db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOMUTEX, NULL) !=
        SQLITE_OK) {
        snprintf(err, err_len, "%s: %s", path, sp->db ? sqlite3_errmsg(sp->db) : "out of memory");
        goto fail;
    }
    sqlite3_busy_timeout(sp->db, busy_ms);
    sp->busy_ms = busy_ms;

    if (init_schema(sp->db, path, err, err_len) < 0 ||
        set_wal(sp->db, path, busy_ms, err, err_len) < 0 ||
        set_synchronous(sp->db, path, sync, err, err_len) < 0)
        goto fail;

    *out = sp;
    return 0;
fail:
    spool_close(sp);
    return -1;
}

void spool_close(spool *sp)
{
    if (!sp) return;
    for (int i = 0; i < ST_COUNT; i++) sqlite3_finalize(sp->stmt[i]);
    sqlite3_close(sp->db); /* rolls back an open transaction */
    open_files_release(sp->dev, sp->ino);
    free(sp);
}

const char *spool_errmsg(spool *sp) { return sp->err; }

int spool_check(spool *sp, char *err, size_t err_len)
{
    sqlite3_stmt *st;
    const char *db_path = sqlite3_db_filename(sp->db, "main");
    int n = snprintf(err, err_len, "%s is corrupt:", db_path), rc = SQLITE_ERROR, rows = 0, ok = 0;
    if (sqlite3_prepare_v2(sp->db, "PRAGMA quick_check(4)", -1, &st, NULL) == SQLITE_OK) {
        while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
            const char *line = (const char *)sqlite3_column_text(st, 0);
            if (rows++ == 0 && line && strcmp(line, "ok") == 0) ok = 1;
            if (line && n >= 0 && (size_t)n < err_len)
                n += snprintf(err + n, err_len - (size_t)n, " %s", line); /* quick_check's own report */
        }
        sqlite3_finalize(st);
    }
    if (rc != SQLITE_DONE && n >= 0 && (size_t)n < err_len)
        snprintf(err + n, err_len - (size_t)n, " %s", sqlite3_errmsg(sp->db));
    for (char *c = err; *c; c++)
        if (*c == '\n') *c = ' '; /* one log line */
    return rc == SQLITE_DONE && ok && rows == 1 ? 0 : -1;
}

int spool_error_is_full(spool *sp) { return (sp->err_code & 0xff) == SQLITE_FULL; }
int spool_error_is_busy(spool *sp) { return (sp->err_code & 0xff) == SQLITE_BUSY; }
int spool_busy_timeout_ms(spool *sp) { return sp->busy_ms; }

int spool_set_max_pages(spool *sp, int pages)
{
    char sql[64];
    snprintf(sql, sizeof sql, "PRAGMA max_page_count=%d", pages);
    return sqlite3_exec(sp->db, sql, NULL, NULL, NULL) == SQLITE_OK ? 0 : spool_fail(sp, "max_page_count");
}

/* ---- transactions ---------------------------------------------------- */

int spool_begin(spool *sp)
{
    if (sp->in_txn) return spool_fail_msg(sp, "begin: a transaction is already open");
    if (spool_txn(sp, ST_BEGIN, "begin") < 0) return -1;
    sqlite3_stmt *st = prep(sp, ST_SEQ_GET);
    if (!st) goto fail;
    int rc = sqlite3_step(st);
    if (rc != SQLITE_ROW) {
        if (rc == SQLITE_DONE)
            spool_fail_msg(sp, "begin: meta has no next_seq row");
        else
            spool_fail(sp, "begin: reading next_seq");
        sqlite3_reset(st);
        goto fail;
    }
    sp->seq_base = sp->next_seq = (uint64_t)sqlite3_column_int64(st, 0);
    sqlite3_reset(st);
    sp->in_txn = 1;
    return 0;
fail:
    spool_rollback_quiet(sp);
    return -1;
}

int spool_commit(spool *sp)
{
    if (!sp->in_txn) return spool_fail_msg(sp, "commit: no transaction is open");
    sp->in_txn = 0;
    /* The counter is written once per transaction, not once per event. */
    if (sp->next_seq != sp->seq_base) {
        sqlite3_stmt *st = prep(sp, ST_SEQ_SET);
        if (!st) goto fail;
        sqlite3_bind_int64(st, 1, (sqlite3_int64)sp->next_seq);
        if (spool_step_done(sp, st, "commit: saving next_seq") < 0) goto fail;
    }
    if (spool_txn(sp, ST_COMMIT, "commit") < 0) goto fail;
    return 0;
fail:
    spool_rollback_quiet(sp);
    return -1;
}

void spool_rollback(spool *sp)
{
    sp->in_txn = 0;
    if (spool_rollback_quiet(sp) < 0) spool_fail(sp, "rollback");
}
