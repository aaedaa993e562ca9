/* SPDX-License-Identifier: Apache-2.0 */
/* spool.h - the SQLite store-and-forward spool: every result is committed
 * here before anyone is told, and stays until Kafka has acknowledged it.
 *
 * One spool handle is one SQLite connection and must be used by one thread
 * at a time; threads open their own handle on the same file (WAL mode lets
 * readers and the writer proceed together). */
#ifndef LINEAGENT_SPOOL_H
#define LINEAGENT_SPOOL_H

#include <stddef.h>
#include <stdint.h>

typedef struct spool spool;

typedef struct spool_options {
    /* PRAGMA synchronous in WAL mode: "FULL" (default: survives power loss)
     * or "NORMAL" (survives process crashes; may lose the last commits on
     * power loss). */
    const char *synchronous;
    int busy_timeout_ms; /* default 5000 */
} spool_options;

/* Opens (creating with mode 0600 if absent) the spool at path. A file that is
 * not a lineagent spool, or of a newer schema, is refused untouched.
 * 0 on success; -1 with err filled. */
int spool_open(spool **out, const char *path, const spool_options *opts, char *err, size_t err_len);
void spool_close(spool *sp);
/* Reads every page (PRAGMA quick_check): a corrupt file is refused before
 * anything is written to it. 0 ok; -1 with err filled. Takes about a second
 * per GiB. */
int spool_check(spool *sp, char *err, size_t err_len);
const char *spool_errmsg(spool *sp); /* last SQLite error on this handle */
/* 1 when the last error on this handle was SQLITE_FULL: the disk (or the
 * database's page limit) is full. Nothing committed is affected; the caller
 * may wait for space and try again. */
int spool_error_is_full(spool *sp);
/* 1 when the last error on this handle was SQLITE_BUSY: another connection
 * (another process: the sqlite3 shell, a backup, a tool) held the write lock
 * for longer than the busy timeout. Nothing was written by the call that
 * failed (a transaction it was in is rolled back); nothing committed is
 * affected; the caller may try again later. */
int spool_error_is_busy(spool *sp);
/* The busy timeout of this handle (spool_options.busy_timeout_ms or 5000). */
int spool_busy_timeout_ms(spool *sp);
/* Tests only: caps the database at this many pages on this connection
 * (PRAGMA max_page_count), so SQLITE_FULL can be provoked without filling a
 * disk. 0 on success. */
int spool_set_max_pages(spool *sp, int pages);

/* Explicit transaction (group commit: many appends, one fsync). */
int spool_begin(spool *sp);
int spool_commit(spool *sp);   /* on failure the transaction is rolled back */
void spool_rollback(spool *sp);

/* ---- events ---------------------------------------------------------- */
typedef struct spool_event {
    uint64_t seq;
    const char *event_id; /* UUID text */
    const char *key;      /* Kafka key: lot id (or order id) */
    const char *type;     /* e.g. "unit_written"; goes to a Kafka header */
    int64_t time_ms;
    const uint8_t *payload; /* encoded TraceEvent */
    size_t len;
} spool_event;

/* Next sequence number to stamp into an event; only valid inside a
 * transaction. Consecutive calls return consecutive numbers; a rolled back
 * transaction gives its numbers back, so seq never has gaps. Survives pruning
 * of delivered rows and reopening. */
uint64_t spool_next_seq(spool *sp);
/* Appends one event (ev->seq from spool_next_seq) inside a transaction. */
int spool_append_event(spool *sp, const spool_event *ev);

/* Streams undelivered events with seq > after_seq in seq order, at most limit
 * of them; cb returns 0 to go on, non-zero to stop early. Returns the number
 * visited or -1. Pointers in the event are valid only during the call. */
typedef int (*spool_event_cb)(void *ud, const spool_event *ev);
int spool_pending_page(spool *sp, uint64_t after_seq, int limit, spool_event_cb cb, void *ud);
/* Delivery is a watermark: records, in a transaction of its own, that every
 * event with seq <= upto_seq was acknowledged, at now_ms (kept to the
 * second). It never moves back, nor past the last event. Events acknowledged
 * out of order above it are the caller's to remember until the gap below
 * them closes. */
int spool_mark_delivered(spool *sp, uint64_t upto_seq, int64_t now_ms);
/* The watermark: every seq up to it is delivered; -1 on error. */
int64_t spool_delivered_upto(spool *sp);
/* Count of undelivered events (a range count: keep it out of tight loops);
 * the lowest undelivered seq, 0 if none (one index probe). */
int64_t spool_pending_count(spool *sp);
uint64_t spool_first_pending(spool *sp);

/* ---- history: stats, replay/export selection, retention -------------- */
typedef struct spool_stats {
    int64_t pending;            /* undelivered events */
    int64_t oldest_pending_ms;  /* time_ms of the oldest undelivered event, 0 if none */
    int64_t delivered;          /* delivered events still kept */
    int64_t last_delivered_ms;  /* latest delivery, 0 if none */
    uint64_t next_seq;          /* seq the next event will get */
    int64_t file_bytes;         /* database pages in use (page_count * page_size) */
    int64_t used_bytes;         /* of which not on the free list */
} spool_stats;
int spool_get_stats(spool *sp, spool_stats *out);
/* Bytes the database uses (pages not on the free list); -1 on error. Cheap:
 * two header reads. */
int64_t spool_used_bytes(spool *sp);

/* Which delivered events replay/export take. Zero fields do not restrict. */
typedef struct spool_selection {
    int64_t since_ms, until_ms; /* time_ms in [since, until) */
    uint64_t from_seq, until_seq; /* seq in [from, until) */
    const char *lot;            /* key (lot id, or order id for order events) */
    int include_pending;        /* also undelivered events (export only) */
} spool_selection;
/* Streams selected events with seq > after_seq, in seq order, at most limit;
 * delivered_ms (0 while pending) is passed beside each event. Returns the
 * number visited or -1. Each call is one short read: pages keep memory and
 * the read snapshot bounded while the agent keeps writing. */
typedef int (*spool_history_cb)(void *ud, const spool_event *ev, int64_t delivered_ms);
int spool_select_page(spool *sp, const spool_selection *sel, uint64_t after_seq, int limit,
                      spool_history_cb cb, void *ud);
int64_t spool_select_count(spool *sp, const spool_selection *sel);
/* Deletes up to batch of the oldest events, those delivered before
 * before_ms, in a transaction of its own; undelivered events are never
 * touched. Cheap enough to call every second. Returns the number deleted
 * or -1. */
int spool_prune_delivered(spool *sp, int64_t before_ms, int batch);

/* ---- inbox: raw MES payloads, made durable before the MQTT ack --------- */
typedef struct spool_inbox_row {
    int64_t id;
    int64_t received_ms;
    uint8_t *payload;     /* malloc'ed, NULL when the payload was refused unread */
    size_t len;
    size_t original_len;  /* size as received (> len when refused as oversize) */
} spool_inbox_row;

/* Stores one payload in a transaction of its own (fsync'ed). payload may be
 * NULL (oversize: only original_len is kept). */
int spool_inbox_put(spool *sp, int64_t received_ms, const void *payload, size_t len, size_t original_len);
/* Oldest row with id > after_id: 1 found (free with spool_inbox_row_free),
 * 0 none, -1 error. */
int spool_inbox_next(spool *sp, int64_t after_id, spool_inbox_row *out);
void spool_inbox_row_free(spool_inbox_row *row);
int spool_inbox_delete(spool *sp, int64_t id); /* inside the caller's transaction */

/* ---- firmware images, content-addressed by SHA-256 --------------------- */
int spool_firmware_put(spool *sp, const char *sha256_hex, const uint8_t *image, size_t len);
/* 1 found (malloc'ed copy), 0 absent, -1 error. */
int spool_firmware_get(spool *sp, const char *sha256_hex, uint8_t **image, size_t *len);
/* Removes the image stored under that hash (one that no longer re-hashes to
 * it); 0 also when there was none. */
int spool_firmware_delete(spool *sp, const char *sha256_hex);

/* ---- orders: the latest accepted revision of each order ---------------- */
/* fw_sha256: the image the revision names (what housekeeping keeps for an
 * active lot); NULL or not a SHA-256: unknown, and every image is kept while
 * its lot is active. */
int spool_order_put(spool *sp, const char *order_id, uint32_t revision, const char *lot_id,
                    const char *fw_sha256, const uint8_t *encoded, size_t len);
/* 1 found (encoded is malloc'ed), 0 absent, -1 error. */
int spool_order_get(spool *sp, const char *order_id, uint32_t *revision, uint8_t **encoded, size_t *len);

/* ---- lots and units: what a restarted agent resumes from --------------- */
#define SPOOL_ID_MAX 65 /* 64 characters + NUL */

typedef struct spool_lot {
    char lot_id[SPOOL_ID_MAX];
    char order_id[SPOOL_ID_MAX];
    int active;                 /* 1 until lot_completed was committed */
    uint32_t loaded;            /* boards taken onto the line so far */
    uint32_t passed, failed;
    uint32_t written_revision;  /* highest order revision written to a board */
    char written_version[SPOOL_ID_MAX];
    char last_written_board[SPOOL_ID_MAX];
} spool_lot;

enum spool_unit_state { SPOOL_UNIT_IN_PROGRESS = 0, SPOOL_UNIT_PASSED = 1, SPOOL_UNIT_FAILED = 2 };

typedef struct spool_unit {
    char lot_id[SPOOL_ID_MAX];
    char board_id[SPOOL_ID_MAX];
    uint32_t idx;          /* 0-based arrival index within the lot */
    int state;             /* enum spool_unit_state */
    uint32_t steps_done;   /* bit (1 << Step) per passed step */
    uint32_t revision;     /* order revision bound at write dispatch, 0 before */
    char version[SPOOL_ID_MAX];
    char sha256[65];
    uint32_t attempt;      /* 1 + the earlier lots this board id went through (rework); 0 stored as 1 */
} spool_unit;

/* Upserts, inside the caller's transaction. */
int spool_lot_put(spool *sp, const spool_lot *lot);
int spool_unit_put(spool *sp, const spool_unit *unit);
/* 1 found, 0 absent, -1 error. */
int spool_lot_get(spool *sp, const char *lot_id, spool_lot *out);
/* Visits active lots (oldest first) / a lot's in-progress units (by idx). */
typedef int (*spool_lot_cb)(void *ud, const spool_lot *lot);
typedef int (*spool_unit_cb)(void *ud, const spool_unit *unit);
int spool_lot_list_active(spool *sp, spool_lot_cb cb, void *ud);
int spool_unit_list_in_progress(spool *sp, const char *lot_id, spool_unit_cb cb, void *ud);

/* A lot's finished units per release they were bound to ("" before any
 * write), in the order first bound; passed_first: passed at attempt 1. */
typedef struct spool_version_count {
    char version[SPOOL_ID_MAX];
    char sha256[65];
    uint32_t passed, failed, passed_first;
} spool_version_count;
typedef int (*spool_version_cb)(void *ud, const spool_version_count *vc);
int spool_unit_versions(spool *sp, const char *lot_id, spool_version_cb cb, void *ud);
/* Lots other than lot_id that board_id went through, counted when each of
 * its unit rows was first written: pruning the rows keeps the count; -1 on
 * error. */
int spool_unit_earlier_lots(spool *sp, const char *board_id, const char *lot_id);

/* ---- housekeeping (spool_prune.c) --------------------------------------
 * Each call is one short transaction of its own (refused inside one), so the
 * line's commits wait behind it for milliseconds at most. */

/* Prunes lots that completed before before_ms: up to batch of their units
 * first; when fewer were left, also the lots left without units (the rest
 * of the batch of them) with their orders. Active lots are never touched;
 * board_lots keeps each board's count. Returns the rows deleted (0:
 * nothing left to prune) or -1. */
int spool_prune_lots(spool *sp, int64_t before_ms, int batch);
/* Deletes one image (its row and all its chunks) stored or last reused
 * before before_ms that no active lot uses (spool_firmware_user); its hash
 * in sha256_out. 1 deleted, 0 none, -1 error. */
int spool_prune_firmware(spool *sp, int64_t before_ms, char sha256_out[65]);
/* 1 when an active lot uses the image: its order names it, or a unit of it
 * is bound to it (a changeover mid-lot), or its order's image is unknown (an
 * order stored before schema 5); the lot's id in lot_out. 0 none, -1 error. */
int spool_firmware_user(spool *sp, const char *sha256_hex, char lot_out[SPOOL_ID_MAX]);
/* Removes a release's image (row and all chunks) and records it in
 * firmware_purges (sha256, version, now_ms, bytes removed; 0 when it was no
 * longer stored), in one transaction. 0 done (*bytes set), 1 refused because
 * an active lot uses it (lot_out names it), -1 error. */
int spool_firmware_purge(spool *sp, const char *sha256_hex, const char *version, int64_t now_ms,
                         char lot_out[SPOOL_ID_MAX], int64_t *bytes);
typedef struct spool_purge_record {
    char sha256[65];
    char version[SPOOL_ID_MAX];
    int64_t purged_ms, bytes;
} spool_purge_record;
typedef int (*spool_purge_cb)(void *ud, const spool_purge_record *rec);
/* Visits the purge records, oldest first; count or -1. */
int spool_firmware_purges(spool *sp, spool_purge_cb cb, void *ud);
/* PRAGMA auto_vacuum: 0 none (a spool created before schema 5, until a
 * VACUUM), 1 full, 2 incremental (new spools); -1 error. */
int spool_auto_vacuum(spool *sp);
/* Returns up to pages free pages to the file system (incremental_vacuum;
 * the file shrinks at the next checkpoint). Pages returned, 0 when none are
 * free or auto_vacuum is not incremental, -1 error. */
int spool_vacuum_step(spool *sp, int pages);

/* The agent instance id: a UUID drawn when the spool was created (or first
 * opened by schema 4); "" only if it cannot be read. */
const char *spool_instance_id(spool *sp);

/* ---- key/value: the MQTT client's own persistence ---------------------
 * Paho acknowledges a QoS 1 message before our callback runs; with its
 * persistence kept here the message is durable before that ack, and is
 * delivered again after a crash. Each call is its own transaction. */
int spool_kv_put(spool *sp, const char *ns, const char *key, const void *value, size_t len);
/* 1 found (value malloc'ed), 0 absent, -1 error. */
int spool_kv_get(spool *sp, const char *ns, const char *key, uint8_t **value, size_t *len);
int spool_kv_del(spool *sp, const char *ns, const char *key);
int spool_kv_clear(spool *sp, const char *ns);
/* Visits the keys of ns in order; returns how many were visited or -1. */
typedef int (*spool_key_cb)(void *ud, const char *key);
int spool_kv_keys(spool *sp, const char *ns, spool_key_cb cb, void *ud);

#endif
