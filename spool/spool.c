/* spool.c - the SQLite store-and-forward spool behind spool.h: events waiting
 * for Kafka, raw MES payloads, firmware images, orders, and the lot/unit
 * state a restarted agent resumes from. One handle is one connection in WAL
 * mode; every statement is prepared once and cached on the handle. */
#include "spool.h"

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
#define SPOOL_SCHEMA_VERSION 2  /* PRAGMA user_version */
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
static const char schema_sql[] =
    "CREATE TABLE IF NOT EXISTS meta(name TEXT PRIMARY KEY, value INTEGER NOT NULL);"
    "INSERT OR IGNORE INTO meta(name, value) VALUES('next_seq', 1);"
    "INSERT OR IGNORE INTO meta(name, value) VALUES('delivered_upto', 0);"
    "CREATE TABLE IF NOT EXISTS events(seq INTEGER PRIMARY KEY, event_id TEXT NOT NULL UNIQUE,"
    " key TEXT NOT NULL, type TEXT NOT NULL, time_ms INTEGER NOT NULL, payload BLOB NOT NULL);"
    "CREATE TABLE IF NOT EXISTS deliveries(upto_seq INTEGER PRIMARY KEY, delivered_ms INTEGER NOT NULL);"
    /* AUTOINCREMENT: ids are never reused, so an after_id cursor stays valid. */
    "CREATE TABLE IF NOT EXISTS inbox(id INTEGER PRIMARY KEY AUTOINCREMENT,"
    " received_ms INTEGER NOT NULL, payload BLOB, original_len INTEGER NOT NULL);"
    "CREATE TABLE IF NOT EXISTS firmware(sha256 TEXT PRIMARY KEY, image BLOB NOT NULL);"
    "CREATE TABLE IF NOT EXISTS orders(order_id TEXT PRIMARY KEY, revision INTEGER NOT NULL,"
    " lot_id TEXT NOT NULL, encoded BLOB NOT NULL, updated_ms INTEGER NOT NULL);"
    "CREATE TABLE IF NOT EXISTS lots(lot_id TEXT PRIMARY KEY, order_id TEXT NOT NULL,"
    " active INTEGER NOT NULL, loaded INTEGER NOT NULL, passed INTEGER NOT NULL,"
    " failed INTEGER NOT NULL, written_revision INTEGER NOT NULL,"
    " written_version TEXT NOT NULL, last_written_board TEXT NOT NULL,"
    " created INTEGER NOT NULL);"
    "CREATE INDEX IF NOT EXISTS lots_created ON lots(created);"
    "CREATE TABLE IF NOT EXISTS units(lot_id TEXT NOT NULL, board_id TEXT NOT NULL,"
    " idx INTEGER NOT NULL, state INTEGER NOT NULL, steps_done INTEGER NOT NULL,"
    " revision INTEGER NOT NULL, version TEXT NOT NULL, sha256 TEXT NOT NULL,"
    " PRIMARY KEY(lot_id, board_id));"
    "CREATE INDEX IF NOT EXISTS units_in_progress ON units(lot_id, idx) WHERE state = 0;"
    "CREATE TABLE IF NOT EXISTS kv(ns TEXT NOT NULL, key TEXT NOT NULL, value BLOB NOT NULL,"
    " PRIMARY KEY(ns, key));"
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
    "CREATE TABLE deliveries(upto_seq INTEGER PRIMARY KEY, delivered_ms INTEGER NOT NULL);"
    "INSERT INTO deliveries(upto_seq, delivered_ms) SELECT max(seq), delivered_ms FROM events"
    " WHERE seq <= (SELECT value FROM meta WHERE name = 'delivered_upto') GROUP BY delivered_ms;"
    "DROP INDEX events_pending;"
    "ALTER TABLE events DROP COLUMN delivered_ms;"
    "PRAGMA user_version = " STR(SPOOL_SCHEMA_VERSION) ";";

enum stmt_id {
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
    ST_FW_GET,
    ST_ORDER_PUT,
    ST_ORDER_GET,
    ST_LOT_PUT,
    ST_LOT_GET,
    ST_LOT_ACTIVE,
    ST_UNIT_PUT,
    ST_UNIT_IN_PROGRESS,
    ST_KV_PUT,
    ST_KV_GET,
    ST_KV_DEL,
    ST_KV_KEYS,
    ST_KV_CLEAR,
    ST_COUNT
};

#define LOT_COLS \
    "lot_id, order_id, active, loaded, passed, failed, written_revision, written_version," \
    " last_written_board"
#define WATERMARK "(SELECT value FROM meta WHERE name = 'delivered_upto')"
#define UNIT_COLS "lot_id, board_id, idx, state, steps_done, revision, version, sha256"

static const char *const stmt_sql[ST_COUNT] = {
    /* IMMEDIATE takes the write lock up front, so transactions of several
     * handles serialise at begin and each reads the current next_seq. */
    [ST_KV_PUT] = "INSERT OR REPLACE INTO kv(ns, key, value) VALUES(?1, ?2, ?3)",
    [ST_KV_GET] = "SELECT value FROM kv WHERE ns = ?1 AND key = ?2",
    [ST_KV_DEL] = "DELETE FROM kv WHERE ns = ?1 AND key = ?2",
    [ST_KV_KEYS] = "SELECT key FROM kv WHERE ns = ?1 ORDER BY key",
    [ST_KV_CLEAR] = "DELETE FROM kv WHERE ns = ?1",
    [ST_BEGIN] = "BEGIN IMMEDIATE",
    [ST_COMMIT] = "COMMIT",
    [ST_ROLLBACK] = "ROLLBACK",
    [ST_SEQ_GET] = "SELECT value FROM meta WHERE name = 'next_seq'",
    [ST_SEQ_SET] = "UPDATE meta SET value = ?1 WHERE name = 'next_seq'",
    [ST_EVENT_ADD] = "INSERT INTO events(seq, event_id, key, type, time_ms, payload)"
                     " VALUES(?1, ?2, ?3, ?4, ?5, ?6)",
    [ST_PENDING_PAGE] = "SELECT seq, event_id, key, type, time_ms, payload FROM events"
                        " WHERE seq > max(?1, " WATERMARK ") ORDER BY seq LIMIT ?2",
    [ST_WATERMARK_GET] = "SELECT " WATERMARK,
    /* Never back, and never past the last event handed out. */
    [ST_WATERMARK_SET] = "UPDATE meta SET value = ?1 WHERE name = 'delivered_upto' AND value < ?1"
                         " AND ?1 < (SELECT value FROM meta WHERE name = 'next_seq')",
    /* Within the same second the newest deliveries row moves up. */
    [ST_DELIVERY_MERGE] = "UPDATE deliveries SET upto_seq = ?1, delivered_ms = ?2"
                          " WHERE upto_seq = (SELECT max(upto_seq) FROM deliveries) AND delivered_ms / 1000 = ?2 / 1000",
    [ST_DELIVERY_ADD] = "INSERT INTO deliveries(upto_seq, delivered_ms) VALUES(?1, ?2)",
    [ST_PENDING_COUNT] = "SELECT count(*) FROM events WHERE seq > " WATERMARK,
    [ST_FIRST_PENDING] = "SELECT min(seq) FROM events WHERE seq > " WATERMARK,
    [ST_INBOX_PUT] = "INSERT INTO inbox(received_ms, payload, original_len) VALUES(?1, ?2, ?3)",
    [ST_INBOX_NEXT] = "SELECT id, received_ms, payload, original_len FROM inbox"
                      " WHERE id > ?1 ORDER BY id LIMIT 1",
    [ST_INBOX_DEL] = "DELETE FROM inbox WHERE id = ?1",
    /* Content-addressed: an image already stored under its hash is the same. */
    [ST_FW_PUT] = "INSERT OR IGNORE INTO firmware(sha256, image) VALUES(?1, ?2)",
    [ST_FW_GET] = "SELECT image FROM firmware WHERE sha256 = ?1",
    [ST_ORDER_PUT] = "INSERT INTO orders(order_id, revision, lot_id, encoded, updated_ms)"
                     " VALUES(?1, ?2, ?3, ?4, ?5) ON CONFLICT(order_id) DO UPDATE SET"
                     " revision = excluded.revision, lot_id = excluded.lot_id,"
                     " encoded = excluded.encoded, updated_ms = excluded.updated_ms",
    [ST_ORDER_GET] = "SELECT revision, encoded FROM orders WHERE order_id = ?1",
    /* created is set once, on first insert, so updates keep a lot's age. */
    [ST_LOT_PUT] = "INSERT INTO lots(" LOT_COLS ", created)"
                   " VALUES(?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9,"
                   " (SELECT coalesce(max(created), 0) + 1 FROM lots))"
                   " ON CONFLICT(lot_id) DO UPDATE SET order_id = excluded.order_id,"
                   " active = excluded.active, loaded = excluded.loaded,"
                   " passed = excluded.passed, failed = excluded.failed,"
                   " written_revision = excluded.written_revision,"
                   " written_version = excluded.written_version,"
                   " last_written_board = excluded.last_written_board",
    [ST_LOT_GET] = "SELECT " LOT_COLS " FROM lots WHERE lot_id = ?1",
    [ST_LOT_ACTIVE] = "SELECT " LOT_COLS " FROM lots WHERE active ORDER BY created",
    [ST_UNIT_PUT] = "INSERT INTO units(" UNIT_COLS ") VALUES(?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)"
                    " ON CONFLICT(lot_id, board_id) DO UPDATE SET idx = excluded.idx,"
                    " state = excluded.state, steps_done = excluded.steps_done,"
                    " revision = excluded.revision, version = excluded.version,"
                    " sha256 = excluded.sha256",
    [ST_UNIT_IN_PROGRESS] = "SELECT " UNIT_COLS " FROM units"
                            " WHERE lot_id = ?1 AND state = 0 ORDER BY idx",
};

struct spool {
    sqlite3 *db;
    dev_t dev;         /* the file, for the open-files registry */
    ino_t ino;
    sqlite3_stmt *stmt[ST_COUNT];
    int in_txn;        /* inside a spool_begin transaction */
    uint64_t next_seq; /* next seq to hand out in this transaction */
    uint64_t seq_base; /* meta.next_seq as read at begin */
    int err_code;      /* SQLite result code behind err, 0 for our own errors */
    char err[512];
};

/* ---- errors and statements ------------------------------------------- */

static int fail_msg(spool *sp, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static int fail_msg(spool *sp, const char *fmt, ...)
{
    va_list ap;
    sp->err_code = 0;
    va_start(ap, fmt);
    vsnprintf(sp->err, sizeof sp->err, fmt, ap);
    va_end(ap);
    return -1;
}

/* Captures sqlite3_errmsg now: a later reset or rollback would replace it. */
static int fail(spool *sp, const char *what)
{
    int code = sqlite3_errcode(sp->db);
    fail_msg(sp, "%s: %s", what, sqlite3_errmsg(sp->db));
    sp->err_code = code;
    return -1;
}

static sqlite3_stmt *prep(spool *sp, enum stmt_id id)
{
    sqlite3_stmt *st = sp->stmt[id];
    if (!st) {
        if (sqlite3_prepare_v3(sp->db, stmt_sql[id], -1, SQLITE_PREPARE_PERSISTENT, &st, NULL) !=
            SQLITE_OK) {
            fail(sp, "prepare");
            return NULL;
        }
        sp->stmt[id] = st;
    }
    /* A callback re-entering the function that is iterating this statement
     * would reset its cursor under it. */
    if (sqlite3_stmt_busy(st)) {
        fail_msg(sp, "statement in use (re-entrant call from a callback)");
        return NULL;
    }
    return st;
}

/* Steps a statement that returns no rows and resets it. */
static int step_done(spool *sp, sqlite3_stmt *st, const char *what)
{
    int ret = 0;
    if (sqlite3_step(st) != SQLITE_DONE) ret = fail(sp, what);
    sqlite3_reset(st);
    return ret;
}

static int run(spool *sp, enum stmt_id id, const char *what)
{
    sqlite3_stmt *st = prep(sp, id);
    return st ? step_done(sp, st, what) : -1;
}

/* Rolls back whatever is open without touching sp->err, which holds the
 * reason for rolling back. SQLite may already have rolled back on its own. */
static int rollback_quiet(spool *sp)
{
    if (sqlite3_get_autocommit(sp->db)) return 0;
    sqlite3_stmt *st = prep(sp, ST_ROLLBACK);
    if (!st) return -1;
    int rc = sqlite3_step(st);
    sqlite3_reset(st);
    return rc == SQLITE_DONE ? 0 : -1;
}

static int require_autocommit(spool *sp, const char *what)
{
    if (sqlite3_get_autocommit(sp->db)) return 0;
    return fail_msg(sp, "%s: runs its own transaction; not allowed inside one", what);
}

/* A zero-length blob bound with a NULL pointer would be SQL NULL. */
static int bind_blob(sqlite3_stmt *st, int i, const void *p, size_t len)
{
    if (len == 0) return sqlite3_bind_zeroblob(st, i, 0);
    return sqlite3_bind_blob64(st, i, p, len, SQLITE_STATIC);
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

/* malloc'ed copy of a blob column; never NULL on success, even when empty. */
static int column_dup(spool *sp, sqlite3_stmt *st, int col, uint8_t **out, size_t *len)
{
    const void *p = sqlite3_column_blob(st, col);
    size_t n = (size_t)sqlite3_column_bytes(st, col);
    uint8_t *copy = malloc(n ? n : 1);
    if (!copy) return fail_msg(sp, "out of memory (%zu bytes)", n);
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

/* Run under the write lock, through SQLite, so it also sees what is still in
 * the WAL. 1: a current lineagent spool; 2: a version 1 spool, to migrate;
 * 0: an empty database, ours to initialise; -1: refused, with err filled.
 * Only reads. */
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
        return version == SPOOL_SCHEMA_VERSION ? 1 : version == 1 ? 2 : 0;
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

/* Schema creation under the write lock, re-checking the file there: another
 * handle may be initialising the same new file at the same moment. */
static int init_schema(sqlite3 *db, const char *path, char *err, size_t err_len)
{
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

int spool_set_max_pages(spool *sp, int pages)
{
    char sql[64];
    snprintf(sql, sizeof sql, "PRAGMA max_page_count=%d", pages);
    return sqlite3_exec(sp->db, sql, NULL, NULL, NULL) == SQLITE_OK ? 0 : fail(sp, "max_page_count");
}

/* ---- transactions ---------------------------------------------------- */

int spool_begin(spool *sp)
{
    if (sp->in_txn) return fail_msg(sp, "begin: a transaction is already open");
    if (run(sp, ST_BEGIN, "begin") < 0) return -1;
    sqlite3_stmt *st = prep(sp, ST_SEQ_GET);
    if (!st) goto fail;
    int rc = sqlite3_step(st);
    if (rc != SQLITE_ROW) {
        if (rc == SQLITE_DONE)
            fail_msg(sp, "begin: meta has no next_seq row");
        else
            fail(sp, "begin: reading next_seq");
        sqlite3_reset(st);
        goto fail;
    }
    sp->seq_base = sp->next_seq = (uint64_t)sqlite3_column_int64(st, 0);
    sqlite3_reset(st);
    sp->in_txn = 1;
    return 0;
fail:
    rollback_quiet(sp);
    return -1;
}

int spool_commit(spool *sp)
{
    if (!sp->in_txn) return fail_msg(sp, "commit: no transaction is open");
    sp->in_txn = 0;
    /* The counter is written once per transaction, not once per event. */
    if (sp->next_seq != sp->seq_base) {
        sqlite3_stmt *st = prep(sp, ST_SEQ_SET);
        if (!st) goto fail;
        sqlite3_bind_int64(st, 1, (sqlite3_int64)sp->next_seq);
        if (step_done(sp, st, "commit: saving next_seq") < 0) goto fail;
    }
    if (run(sp, ST_COMMIT, "commit") < 0) goto fail;
    return 0;
fail:
    rollback_quiet(sp);
    return -1;
}

void spool_rollback(spool *sp)
{
    sp->in_txn = 0;
    if (rollback_quiet(sp) < 0) fail(sp, "rollback");
}

/* ---- events ---------------------------------------------------------- */

/* 0 outside a spool_begin transaction (seq starts at 1, so 0 is never valid). */
uint64_t spool_next_seq(spool *sp)
{
    if (!sp->in_txn) {
        fail_msg(sp, "next_seq: no transaction is open");
        return 0;
    }
    return sp->next_seq++;
}

int spool_append_event(spool *sp, const spool_event *ev)
{
    if (!sp->in_txn) return fail_msg(sp, "append_event: no transaction is open");
    /* Only a reserved seq keeps meta.next_seq ahead of every stored row. */
    if (ev->seq < sp->seq_base || ev->seq >= sp->next_seq)
        return fail_msg(sp, "append_event: seq %llu was not reserved in this transaction",
                        (unsigned long long)ev->seq);
    sqlite3_stmt *st = prep(sp, ST_EVENT_ADD);
    if (!st) return -1;
    sqlite3_bind_int64(st, 1, (sqlite3_int64)ev->seq);
    sqlite3_bind_text(st, 2, ev->event_id, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 3, ev->key, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 4, ev->type, -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 5, ev->time_ms);
    bind_blob(st, 6, ev->payload, ev->len);
    return step_done(sp, st, "append_event");
}

/* An events row selected as (seq, event_id, key, type, time_ms, payload);
 * the pointers live until the statement steps again. */
static spool_event row_event(sqlite3_stmt *st)
{
    const void *payload = sqlite3_column_blob(st, 5);
    return (spool_event){
        .seq = (uint64_t)sqlite3_column_int64(st, 0),
        .event_id = (const char *)sqlite3_column_text(st, 1),
        .key = (const char *)sqlite3_column_text(st, 2),
        .type = (const char *)sqlite3_column_text(st, 3),
        .time_ms = sqlite3_column_int64(st, 4),
        .payload = payload ? payload : (const uint8_t *)"",
        .len = (size_t)sqlite3_column_bytes(st, 5),
    };
}

int spool_pending_page(spool *sp, uint64_t after_seq, int limit, spool_event_cb cb, void *ud)
{
    if (limit < 0) return fail_msg(sp, "pending_page: negative limit %d", limit);
    sqlite3_stmt *st = prep(sp, ST_PENDING_PAGE);
    if (!st) return -1;
    sqlite3_bind_int64(st, 1, (sqlite3_int64)after_seq);
    sqlite3_bind_int(st, 2, limit);
    int visited = 0, rc;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        spool_event ev = row_event(st);
        visited++;
        if (cb(ud, &ev) != 0) {
            rc = SQLITE_DONE;
            break;
        }
    }
    if (rc != SQLITE_DONE) visited = fail(sp, "pending_page");
    sqlite3_reset(st);
    return visited;
}

/* One short transaction: the watermark and, at most once a second, a new
 * deliveries row. */
int spool_mark_delivered(spool *sp, uint64_t upto_seq, int64_t now_ms)
{
    if (require_autocommit(sp, "mark_delivered") < 0) return -1;
    if (run(sp, ST_BEGIN, "mark_delivered: begin") < 0) return -1;
    sqlite3_stmt *st = prep(sp, ST_WATERMARK_SET);
    if (!st) goto fail;
    sqlite3_bind_int64(st, 1, (sqlite3_int64)upto_seq);
    if (step_done(sp, st, "mark_delivered") < 0) goto fail;
    if (sqlite3_changes(sp->db) == 1) {
        enum stmt_id ids[2] = {ST_DELIVERY_MERGE, ST_DELIVERY_ADD};
        for (int i = 0; i < 2; i++) {
            if (!(st = prep(sp, ids[i]))) goto fail;
            sqlite3_bind_int64(st, 1, (sqlite3_int64)upto_seq);
            sqlite3_bind_int64(st, 2, now_ms);
            if (step_done(sp, st, "mark_delivered: deliveries") < 0) goto fail;
            if (sqlite3_changes(sp->db) == 1) break;
        }
    }
    if (run(sp, ST_COMMIT, "mark_delivered: commit") < 0) goto fail;
    return 0;
fail:
    rollback_quiet(sp);
    return -1;
}

/* Runs a one-row, one-integer query; NULL reads as 0. */
static int query_int(spool *sp, enum stmt_id id, const char *what, int64_t *out)
{
    sqlite3_stmt *st = prep(sp, id);
    if (!st) return -1;
    int ret = 0;
    if (sqlite3_step(st) == SQLITE_ROW)
        *out = sqlite3_column_int64(st, 0);
    else
        ret = fail(sp, what);
    sqlite3_reset(st);
    return ret;
}

/* -1 on error. */
int64_t spool_pending_count(spool *sp)
{
    int64_t n = 0;
    return query_int(sp, ST_PENDING_COUNT, "pending_count", &n) < 0 ? -1 : n;
}

int64_t spool_delivered_upto(spool *sp)
{
    int64_t seq = 0;
    return query_int(sp, ST_WATERMARK_GET, "delivered_upto", &seq) < 0 ? -1 : seq;
}

/* 0 on error as well; spool_errmsg tells them apart. */
uint64_t spool_first_pending(spool *sp)
{
    int64_t seq = 0;
    return query_int(sp, ST_FIRST_PENDING, "first_pending", &seq) < 0 ? 0 : (uint64_t)seq;
}

/* ---- inbox ----------------------------------------------------------- */

/* A single autocommit INSERT is its own durable transaction; inside a caller's
 * transaction it would not be durable before the MQTT ack, so that is refused. */
int spool_inbox_put(spool *sp, int64_t received_ms, const void *payload, size_t len,
                    size_t original_len)
{
    if (require_autocommit(sp, "inbox_put") < 0) return -1;
    sqlite3_stmt *st = prep(sp, ST_INBOX_PUT);
    if (!st) return -1;
    sqlite3_bind_int64(st, 1, received_ms);
    if (payload)
        bind_blob(st, 2, payload, len);
    else
        sqlite3_bind_null(st, 2);
    sqlite3_bind_int64(st, 3, (sqlite3_int64)original_len);
    return step_done(sp, st, "inbox_put");
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
            column_dup(sp, st, 2, &out->payload, &out->len) < 0)
            ret = -1;
    } else if (rc != SQLITE_DONE)
        ret = fail(sp, "inbox_next");
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
    return step_done(sp, st, "inbox_delete");
}

/* ---- firmware -------------------------------------------------------- */

/* Lowercases a hex SHA-256 into key; -1 unless it is 64 hex digits. Orders
 * may carry upper case (firmware_fetch compares case-insensitively), and one
 * image must have one key. */
static int sha256_key(const char *hex, char key[65])
{
    if (!hex || strlen(hex) != 64 || strspn(hex, "0123456789abcdefABCDEF") != 64) return -1;
    for (int i = 0; i < 64; i++) key[i] = (char)(hex[i] | 0x20); /* digits keep their value */
    key[64] = '\0';
    return 0;
}

/* One statement: atomic on its own outside a transaction, part of the
 * caller's inside one. */
int spool_firmware_put(spool *sp, const char *sha256_hex, const uint8_t *image, size_t len)
{
    char key[65];
    if (sha256_key(sha256_hex, key) < 0)
        return fail_msg(sp, "firmware_put: \"%.80s\" is not a hex SHA-256",
                        sha256_hex ? sha256_hex : "(null)");
    sqlite3_stmt *st = prep(sp, ST_FW_PUT);
    if (!st) return -1;
    sqlite3_bind_text(st, 1, key, 64, SQLITE_STATIC);
    bind_blob(st, 2, image, len);
    return step_done(sp, st, "firmware_put");
}

int spool_firmware_get(spool *sp, const char *sha256_hex, uint8_t **image, size_t *len)
{
    *image = NULL;
    *len = 0;
    char key[65];
    if (sha256_key(sha256_hex, key) < 0) return 0; /* no such image can be stored */
    sqlite3_stmt *st = prep(sp, ST_FW_GET);
    if (!st) return -1;
    sqlite3_bind_text(st, 1, key, 64, SQLITE_STATIC);
    int rc = sqlite3_step(st), ret = 0;
    if (rc == SQLITE_ROW)
        ret = column_dup(sp, st, 0, image, len) < 0 ? -1 : 1;
    else if (rc != SQLITE_DONE)
        ret = fail(sp, "firmware_get");
    sqlite3_reset(st);
    return ret;
}

/* ---- orders ---------------------------------------------------------- */

static int64_t wall_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int spool_order_put(spool *sp, const char *order_id, uint32_t revision, const char *lot_id,
                    const uint8_t *encoded, size_t len)
{
    sqlite3_stmt *st = prep(sp, ST_ORDER_PUT);
    if (!st) return -1;
    sqlite3_bind_text(st, 1, order_id, -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 2, revision);
    sqlite3_bind_text(st, 3, lot_id, -1, SQLITE_STATIC);
    bind_blob(st, 4, encoded, len);
    sqlite3_bind_int64(st, 5, wall_ms());
    return step_done(sp, st, "order_put");
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
        ret = column_dup(sp, st, 1, encoded, len) < 0 ? -1 : 1;
    } else if (rc != SQLITE_DONE)
        ret = fail(sp, "order_get");
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
    return step_done(sp, st, "lot_put");
}

int spool_unit_put(spool *sp, const spool_unit *unit)
{
    if (unit->state < SPOOL_UNIT_IN_PROGRESS || unit->state > SPOOL_UNIT_FAILED)
        return fail_msg(sp, "unit_put: bad state %d", unit->state);
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
    return step_done(sp, st, "unit_put");
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
        ret = fail(sp, "lot_get");
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
    if (rc != SQLITE_DONE) visited = fail(sp, "lot_list_active");
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
    if (rc != SQLITE_DONE) visited = fail(sp, "unit_list_in_progress");
    sqlite3_reset(st);
    return visited;
}

/* ---- key/value ------------------------------------------------------- */

static sqlite3_stmt *kv_prep(spool *sp, enum stmt_id id, const char *ns, const char *key)
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
    bind_blob(st, 3, value, len);
    return step_done(sp, st, "kv_put");
}

int spool_kv_get(spool *sp, const char *ns, const char *key, uint8_t **value, size_t *len)
{
    *value = NULL;
    *len = 0;
    sqlite3_stmt *st = kv_prep(sp, ST_KV_GET, ns, key);
    if (!st) return -1;
    int rc = sqlite3_step(st), ret = 0;
    if (rc == SQLITE_ROW)
        ret = column_dup(sp, st, 0, value, len) < 0 ? -1 : 1;
    else if (rc != SQLITE_DONE)
        ret = fail(sp, "kv_get");
    sqlite3_reset(st);
    return ret;
}

int spool_kv_del(spool *sp, const char *ns, const char *key)
{
    sqlite3_stmt *st = kv_prep(sp, ST_KV_DEL, ns, key);
    return st ? step_done(sp, st, "kv_del") : -1;
}

int spool_kv_clear(spool *sp, const char *ns)
{
    sqlite3_stmt *st = kv_prep(sp, ST_KV_CLEAR, ns, NULL);
    return st ? step_done(sp, st, "kv_clear") : -1;
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
    if (rc != SQLITE_ROW && rc != SQLITE_DONE) n = fail(sp, "kv_keys");
    sqlite3_reset(st);
    return n;
}

/* ---- history: stats, selection, retention ----------------------------
 * Ad hoc statements, prepared per call: these run seldom (tools, a prune
 * every few seconds) and their SQL depends on the selection. */

static int sql_int(spool *sp, const char *sql, int64_t *out)
{
    sqlite3_stmt *st;
    if (sqlite3_prepare_v2(sp->db, sql, -1, &st, NULL) != SQLITE_OK) return fail(sp, sql);
    int rc = sqlite3_step(st), ret = 0;
    if (rc == SQLITE_ROW)
        *out = sqlite3_column_int64(st, 0);
    else
        ret = fail(sp, sql);
    sqlite3_finalize(st);
    return ret;
}

int64_t spool_used_bytes(spool *sp)
{
    int64_t pages, free_pages, page_size;
    if (sql_int(sp, "PRAGMA page_count", &pages) < 0 || sql_int(sp, "PRAGMA freelist_count", &free_pages) < 0 ||
        sql_int(sp, "PRAGMA page_size", &page_size) < 0)
        return -1;
    return (pages - free_pages) * page_size;
}

int spool_get_stats(spool *sp, spool_stats *out)
{
    memset(out, 0, sizeof *out);
    int64_t pages, page_size, seq;
    out->pending = spool_pending_count(sp);
    if (out->pending < 0 ||
        sql_int(sp, "SELECT coalesce((SELECT time_ms FROM events WHERE seq > " WATERMARK " ORDER BY seq LIMIT 1), 0)",
                &out->oldest_pending_ms) < 0 ||
        sql_int(sp, "SELECT count(*) FROM events WHERE seq <= " WATERMARK, &out->delivered) < 0 ||
        sql_int(sp, "SELECT coalesce(max(delivered_ms), 0) FROM deliveries", &out->last_delivered_ms) < 0 ||
        sql_int(sp, "SELECT value FROM meta WHERE name = 'next_seq'", &seq) < 0 ||
        sql_int(sp, "PRAGMA page_count", &pages) < 0 || sql_int(sp, "PRAGMA page_size", &page_size) < 0)
        return -1;
    out->next_seq = (uint64_t)seq;
    out->file_bytes = pages * page_size;
    out->used_bytes = spool_used_bytes(sp);
    return out->used_bytes < 0 ? -1 : 0;
}

/* WHERE clause for a selection; parameters ?1..?6 are bound by bind_sel. */
#define SEL_WHERE                                                                      \
    " WHERE seq > ?1 AND (?2 OR seq <= " WATERMARK ") AND (?3 = 0 OR time_ms >= ?3)" \
    " AND (?4 = 0 OR time_ms < ?4) AND (?5 = 0 OR seq >= ?5) AND (?6 = 0 OR seq < ?6)"   \
    " AND (?7 IS NULL OR key = ?7)"

static void bind_sel(sqlite3_stmt *st, const spool_selection *sel, uint64_t after_seq)
{
    sqlite3_bind_int64(st, 1, (sqlite3_int64)after_seq);
    sqlite3_bind_int(st, 2, sel->include_pending != 0);
    sqlite3_bind_int64(st, 3, sel->since_ms);
    sqlite3_bind_int64(st, 4, sel->until_ms);
    sqlite3_bind_int64(st, 5, (sqlite3_int64)sel->from_seq);
    sqlite3_bind_int64(st, 6, (sqlite3_int64)sel->until_seq);
    if (sel->lot) sqlite3_bind_text(st, 7, sel->lot, -1, SQLITE_STATIC);
}

int spool_select_page(spool *sp, const spool_selection *sel, uint64_t after_seq, int limit,
                      spool_history_cb cb, void *ud)
{
    sqlite3_stmt *st;
    if (sqlite3_prepare_v2(sp->db,
                           "SELECT seq, event_id, key, type, time_ms, payload,"
                           " coalesce((SELECT delivered_ms FROM deliveries WHERE upto_seq >= seq"
                           " ORDER BY upto_seq LIMIT 1), 0)"
                           " FROM events" SEL_WHERE " ORDER BY seq LIMIT ?8",
                           -1, &st, NULL) != SQLITE_OK)
        return fail(sp, "select_page");
    bind_sel(st, sel, after_seq);
    sqlite3_bind_int(st, 8, limit);
    int visited = 0, rc;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        spool_event ev = row_event(st);
        visited++;
        if (cb(ud, &ev, sqlite3_column_int64(st, 6)) != 0) {
            rc = SQLITE_DONE;
            break;
        }
    }
    if (rc != SQLITE_DONE) visited = fail(sp, "select_page");
    sqlite3_finalize(st);
    return visited;
}

int64_t spool_select_count(spool *sp, const spool_selection *sel)
{
    sqlite3_stmt *st;
    if (sqlite3_prepare_v2(sp->db, "SELECT count(*) FROM events" SEL_WHERE, -1, &st, NULL) != SQLITE_OK)
        return fail(sp, "select_count");
    bind_sel(st, sel, 0);
    int64_t n = sqlite3_step(st) == SQLITE_ROW ? sqlite3_column_int64(st, 0) : fail(sp, "select_count");
    sqlite3_finalize(st);
    return n;
}

int spool_prune_delivered(spool *sp, int64_t before_ms, int batch)
{
    if (require_autocommit(sp, "prune_delivered") < 0) return -1;
    /* The batch keeps the write lock short so the line's commits are not
     * held up. Expired events are a prefix of the spool: everything up to
     * the highest watermark recorded before before_ms. deliveries rows
     * below the oldest event left describe nothing any more; the newest is
     * kept for last_delivered_ms. */
    static const char *const sql[2] = {
        "DELETE FROM events WHERE seq IN (SELECT seq FROM events WHERE seq <= (SELECT"
        " coalesce(max(upto_seq), 0) FROM deliveries WHERE delivered_ms < ?1) ORDER BY seq LIMIT ?2)",
        "DELETE FROM deliveries WHERE upto_seq < (SELECT max(upto_seq) FROM deliveries)"
        " AND upto_seq < coalesce((SELECT min(seq) FROM events), " WATERMARK " + 1)",
    };
    if (run(sp, ST_BEGIN, "prune_delivered: begin") < 0) return -1;
    int n = 0;
    for (int i = 0; i < 2; i++) {
        sqlite3_stmt *st;
        if (sqlite3_prepare_v2(sp->db, sql[i], -1, &st, NULL) != SQLITE_OK) {
            fail(sp, "prune_delivered");
            goto fail;
        }
        sqlite3_bind_int64(st, 1, before_ms);
        sqlite3_bind_int(st, 2, batch);
        int rc = sqlite3_step(st);
        if (rc != SQLITE_DONE) fail(sp, "prune_delivered");
        if (i == 0) n = sqlite3_changes(sp->db);
        sqlite3_finalize(st);
        if (rc != SQLITE_DONE) goto fail;
    }
    if (run(sp, ST_COMMIT, "prune_delivered: commit") < 0) goto fail;
    return n;
fail:
    rollback_quiet(sp);
    return -1;
}
