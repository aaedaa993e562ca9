/* SPDX-License-Identifier: Apache-2.0 */
/* ts_query.h - the questions tracestore answers, as JSON built by the
 * database, for the CLI and the HTTP API alike. Each returns 0 with *out set
 * (caller json_decref()s it), 1 when there is nothing by that name, or -1 on
 * a database error with err set. */
#ifndef TS_QUERY_H
#define TS_QUERY_H

#include <jansson.h>
#include <libpq-fe.h>
#include <stddef.h>

/* A unit by serial or board id (the most recently seen, if several):
 * serial, boardId, lot, firmware {version, sha256, ...}, passed,
 * fieldFirmware, and every measurement, calibration, lock, identity and
 * failure with times and stations. */
int ts_query_unit(PGconn *db, const char *id, json_t **out, char *err, size_t err_len);

/* A lot: units, passed, failed, versions {version: count}, orderRevisions,
 * changeovers [{fromVersion, toVersion, lastOldBoard, firstNewBoard}]. */
int ts_query_lot(PGconn *db, const char *lot, json_t **out, char *err, size_t err_len);

/* Units carrying version (factory-written, or with current set as last
 * reported from the field), optionally of one product: the recall scope. */
int ts_query_find(PGconn *db, const char *version, const char *product, int current, json_t **out, char *err,
                  size_t err_len);

/* Every line's latest lot with its counts, yield, first-pass yield, units
 * per hour and last event time; stale when nothing came for stale_after_s. */
int ts_query_lines(PGconn *db, long stale_after_s, json_t **out, char *err, size_t err_len);

/* The parts of a lot the web page draws (ts_query_web.c). */
typedef enum ts_lot_part {
    TS_LOT_BOARDS,      /* boards [{boardId, serial, version, passed, writtenAt}] in write order */
    TS_LOT_FAILURES,    /* byStepMode [{step, mode, count}], byStation [{station, site, count}] */
    TS_LOT_MEASUREMENTS /* measurements [{name, count, mean, stddev, min, max, low, high, cpk, bins}] */
} ts_lot_part;
int ts_query_lot_part(PGconn *db, ts_lot_part part, const char *lot, json_t **out, char *err, size_t err_len);

/* A unit by serial or board id, else by MAC or device id. */
int ts_query_unit_any(PGconn *db, const char *id, json_t **out, char *err, size_t err_len);

/* Runs sql (one row, one json column, or no row) with text parameters. */
int ts_query_json(PGconn *db, const char *sql, int n, const char *const *params, json_t **out, char *err,
                  size_t err_len);

#endif
