/* SPDX-License-Identifier: Apache-2.0 */
/* ts_query_web.c - the questions the web page asks beyond the CLI's: every
 * line's lot in progress, a lot's boards in write order, its failures by
 * step/mode and by station/site, its measurement statistics with histogram
 * bins and Cpk, and a unit found by MAC or device id. JSON is built by the
 * database, as in ts_query.c; each query is indexed by lot or line, so its
 * cost follows the lot, not the table (migration 2 adds the indexes). */
#include "ts_query.h"

#include <stdio.h>

/* The latest lot of each line, with its counts. A line is stale when
 * nothing of it was stored for $1 seconds. */
static const char ts_lines_sql[] =
    "WITH latest AS (SELECT DISTINCT ON (site, line) * FROM lots ORDER BY site, line, started_at DESC NULLS LAST)"
    " SELECT json_build_object('now', now(), 'lines', coalesce(json_agg(json_build_object("
    " 'site', l.site, 'line', l.line, 'lotId', l.lot_id, 'orderId', l.order_id, 'product', l.product,"
    " 'quantity', l.quantity, 'startedAt', l.started_at, 'completedAt', l.completed_at,"
    " 'firmwareVersion', (SELECT fw_version FROM lot_revisions r WHERE r.lot_id = l.lot_id"
    "  ORDER BY revision DESC LIMIT 1),"
    " 'passed', s.passed, 'failed', s.failed, 'inProgress', s.units - s.passed - s.failed,"
    " 'yield', CASE WHEN s.passed + s.failed > 0 THEN round(s.passed::numeric / (s.passed + s.failed), 4) END,"
    " 'firstPassYield', CASE WHEN s.passed + s.failed > 0"
    "  THEN round(s.first_pass::numeric / (s.passed + s.failed), 4) END,"
    " 'unitsPerHour', CASE WHEN s.passed + s.failed > 0 THEN round((s.passed + s.failed) * 3600.0"
    "  / greatest(extract(epoch FROM s.last_done - s.first_seen), 60)::numeric, 1) END,"
    " 'lastEventAt', coalesce(s.last_seen, l.started_at),"
    " 'stale', coalesce(s.last_seen, l.started_at) < now() - make_interval(secs => $1::float8))"
    " ORDER BY l.site, l.line), '[]'))"
    " FROM latest l, LATERAL (SELECT count(*) units, count(*) FILTER (WHERE passed) passed,"
    "  count(*) FILTER (WHERE NOT passed) failed,"
    "  count(*) FILTER (WHERE passed AND NOT EXISTS (SELECT 1 FROM failures f WHERE f.lot_id = u.lot_id"
    "   AND f.board_id = u.board_id)) first_pass,"
    "  min(first_seen) first_seen, max(completed_at) last_done, max(last_seen) last_seen"
    "  FROM units u WHERE u.lot_id = l.lot_id) s";

/* Write order is what defines a changeover's boundary; boards not yet
 * written come last, in arrival order. */
static const char ts_lot_boards_sql[] =
    "SELECT CASE WHEN EXISTS (SELECT 1 FROM lots WHERE lot_id = $1) THEN json_build_object('lot', $1::text,"
    " 'boards', (SELECT coalesce(json_agg(json_build_object('boardId', board_id, 'serial', serial,"
    "  'version', fw_version, 'passed', passed, 'writtenAt', written_at)"
    "  ORDER BY written_at NULLS LAST, first_seen, board_id), '[]') FROM units WHERE lot_id = $1)) END";

static const char ts_lot_failures_sql[] =
    "SELECT CASE WHEN EXISTS (SELECT 1 FROM lots WHERE lot_id = $1) THEN json_build_object('lot', $1::text,"
    " 'byStepMode', (SELECT coalesce(json_agg(json_build_object('step', step, 'mode', failure_mode, 'count', n)"
    "  ORDER BY n DESC, step, failure_mode), '[]')"
    "  FROM (SELECT step, failure_mode, count(*) n FROM failures WHERE lot_id = $1 GROUP BY 1, 2) x),"
    " 'byStation', (SELECT coalesce(json_agg(json_build_object('station', station, 'site', station_site,"
    "  'count', n) ORDER BY n DESC, station, station_site), '[]')"
    "  FROM (SELECT station, station_site, count(*) n FROM failures WHERE lot_id = $1 GROUP BY 1, 2) y)) END";

/* Per measurement name: count, mean, sample standard deviation, range, the
 * limits (the widest any revision set), Cpk = min(high - mean, mean - low)
 * / 3 sd, and 20 equal bins spanning both the values and the limits. */
#define TS_BINS "20"
static const char ts_lot_measurements_sql[] =
    "WITH m AS (SELECT name, value, low, high, unit FROM measurements WHERE lot_id = $1),"
    " s AS (SELECT name, max(unit) unit, count(*) n, avg(value) mean, stddev_samp(value) sd, min(value) mn,"
    "  max(value) mx, min(low) low, max(high) high, least(min(value), min(low)) lo,"
    "  greatest(max(value), max(high)) hi FROM m GROUP BY name),"
    " r AS (SELECT *, CASE WHEN hi > lo THEN hi ELSE lo + 1 END top FROM s),"
    " b AS (SELECT m.name, least(width_bucket(m.value, r.lo, r.top, " TS_BINS "), " TS_BINS ") k, count(*) c"
    "  FROM m JOIN r USING (name) GROUP BY 1, 2)"
    " SELECT CASE WHEN EXISTS (SELECT 1 FROM lots WHERE lot_id = $1) THEN json_build_object('lot', $1::text,"
    " 'measurements', coalesce((SELECT json_agg(json_build_object('name', r.name, 'unit', r.unit, 'count', r.n,"
    "  'mean', r.mean, 'stddev', r.sd, 'min', r.mn, 'max', r.mx, 'low', r.low, 'high', r.high,"
    "  'cpk', CASE WHEN r.sd > 0 THEN least(r.high - r.mean, r.mean - r.low) / (3 * r.sd) END,"
    "  'bins', (SELECT json_agg(json_build_object('lo', r.lo + (g.i - 1) * (r.top - r.lo) / " TS_BINS ","
    "   'hi', r.lo + g.i * (r.top - r.lo) / " TS_BINS ", 'count', coalesce(b.c, 0)) ORDER BY g.i)"
    "   FROM generate_series(1, " TS_BINS ") g(i) LEFT JOIN b ON b.name = r.name AND b.k = g.i))"
    "  ORDER BY r.name) FROM r), '[]')) END";

/* The board an identifier names when it is not a serial or board id: a MAC
 * (as issued, or in lower case) or a device id; the latest issuance wins. */
static const char ts_resolve_sql[] =
    "SELECT to_json(board_id) FROM identities WHERE macs @> ARRAY[$1] OR macs @> ARRAY[lower($1)]"
    " OR device_id = $1 ORDER BY time DESC LIMIT 1";

int ts_query_lines(PGconn *db, long stale_after_s, json_t **out, char *err, size_t err_len)
{
    char secs[32];
    snprintf(secs, sizeof secs, "%ld", stale_after_s);
    const char *p = secs;
    return ts_query_json(db, ts_lines_sql, 1, &p, out, err, err_len);
}

int ts_query_lot_part(PGconn *db, ts_lot_part part, const char *lot, json_t **out, char *err, size_t err_len)
{
    static const char *const sql[] = {
        [TS_LOT_BOARDS] = ts_lot_boards_sql,
        [TS_LOT_FAILURES] = ts_lot_failures_sql,
        [TS_LOT_MEASUREMENTS] = ts_lot_measurements_sql,
    };
    return ts_query_json(db, sql[part], 1, &lot, out, err, err_len);
}

int ts_query_unit_any(PGconn *db, const char *id, json_t **out, char *err, size_t err_len)
{
    int rc = ts_query_unit(db, id, out, err, err_len);
    if (rc != 1) return rc;
    json_t *board = NULL;
    rc = ts_query_json(db, ts_resolve_sql, 1, &id, &board, err, err_len);
    if (rc != 0) return rc;
    const char *b = json_string_value(board);
    rc = b ? ts_query_unit(db, b, out, err, err_len) : 1;
    json_decref(board);
    return rc;
}
