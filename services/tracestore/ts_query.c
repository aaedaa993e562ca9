/* SPDX-License-Identifier: Apache-2.0 */
/* ts_query.c - unit, lot and recall-scope answers (ts_query.h). Each is one
 * statement on indexed columns (units by board and serial, the per-unit
 * tables by board, lots by id), so its cost does not grow with the events
 * table. */
#include "ts_query.h"

#include <stdio.h>
#include <string.h>

#include "ts_db.h"

/* Rows of a per-unit table as a JSON array, oldest first. */
#define TS_UNIT_ROWS(table, fields)                                                                              \
    "(SELECT coalesce(json_agg(json_build_object(" fields ") ORDER BY t.time), '[]') FROM " table " t"          \
    " WHERE t.board_id = u.board_id AND t.lot_id = u.lot_id)"

static const char ts_unit_sql[] =
    "WITH u AS (SELECT * FROM units WHERE board_id = $1 OR serial = $1 ORDER BY last_seen DESC LIMIT 1)"
    " SELECT json_build_object('serial', u.serial, 'boardId', u.board_id, 'lot', u.lot_id,"
    " 'orderId', u.order_id, 'orderRevision', u.order_revision, 'product', l.product, 'site', u.site,"
    " 'line', u.line,"
    " 'firmware', json_build_object('version', u.fw_version, 'sha256', u.fw_sha256,"
    "  'readbackSha256', u.fw_readback_sha256, 'verified', u.fw_readback_sha256 = u.fw_sha256,"
    "  'writtenAt', u.written_at, 'station', u.write_station),"
    " 'passed', u.passed, 'completedAt', u.completed_at,"
    " 'fieldFirmware', (SELECT json_build_object('version', f.version, 'sha256', f.sha256, 'reportedAt', f.time,"
    "  'source', f.source) FROM field_firmware f WHERE f.serial = u.serial AND u.serial <> ''),"
    " 'firstSeen', u.first_seen, 'lastSeen', u.last_seen,"
    " 'writes', " TS_UNIT_ROWS("unit_writes", "'version', t.version, 'sha256', t.sha256, 'readbackSha256',"
                               " t.readback_sha256, 'orderRevision', t.order_revision, 'station', t.station,"
                               " 'time', t.time") ","
    " 'measurements', " TS_UNIT_ROWS("measurements", "'name', t.name, 'value', t.value, 'low', t.low, 'high',"
                                     " t.high, 'unit', t.unit, 'passed', t.passed, 'station', t.station,"
                                     " 'time', t.time") ","
    " 'calibrations', " TS_UNIT_ROWS("calibrations", "'offset', t.\"offset\", 'gain', t.gain, 'residual',"
                                     " t.residual, 'points', t.points, 'station', t.station, 'time', t.time") ","
    " 'locks', " TS_UNIT_ROWS("locks", "'verified', t.verified, 'station', t.station, 'time', t.time") ","
    " 'identities', " TS_UNIT_ROWS("identities", "'serial', t.serial, 'macs', t.macs, 'deviceId', t.device_id,"
                                   " 'certificateSha256', t.certificate_sha256, 'station', t.station,"
                                   " 'time', t.time") ","
    " 'failures', " TS_UNIT_ROWS("failures", "'step', t.step, 'failureMode', t.failure_mode, 'detail', t.detail,"
                                 " 'station', t.station, 'stationSite', t.station_site, 'site', t.site,"
                                 " 'time', t.time") ")"
    " FROM u LEFT JOIN lots l USING (lot_id)";

static const char ts_lot_sql[] =
    "SELECT json_build_object('lot', l.lot_id, 'orderId', l.order_id, 'product', l.product,"
    " 'quantity', l.quantity, 'site', l.site, 'line', l.line, 'startedAt', l.started_at,"
    " 'completedAt', l.completed_at, 'units', s.units, 'passed', s.passed, 'failed', s.failed,"
    " 'inProgress', s.units - s.passed - s.failed,"
    " 'firstPassYield', CASE WHEN s.passed + s.failed > 0 THEN round(s.first_pass::numeric / (s.passed + s.failed), 4)"
    "  END,"
    " 'reported', CASE WHEN l.completed_at IS NOT NULL THEN json_build_object('passed', l.reported_passed,"
    "  'failed', l.reported_failed) END,"
    " 'versions', (SELECT coalesce(json_object_agg(v, n ORDER BY v), '{}') FROM (SELECT fw_version v, count(*) n"
    "  FROM units WHERE lot_id = l.lot_id AND fw_version IS NOT NULL GROUP BY 1) x),"
    " 'orderRevisions', (SELECT coalesce(json_agg(json_build_object('revision', revision, 'version', fw_version,"
    "  'sha256', fw_sha256, 'acceptedAt', accepted_at) ORDER BY revision), '[]') FROM lot_revisions"
    "  WHERE lot_id = l.lot_id),"
    " 'changeovers', (SELECT coalesce(json_agg(json_build_object('fromVersion', from_version, 'toVersion',"
    "  to_version, 'lastOldBoard', last_old_board, 'firstNewBoard', first_new_board, 'fromRevision',"
    "  from_revision, 'toRevision', to_revision, 'time', time, 'station', station) ORDER BY time), '[]')"
    "  FROM changeovers WHERE lot_id = l.lot_id),"
    " 'failures', (SELECT coalesce(json_agg(json_build_object('step', step, 'failureMode', failure_mode,"
    "  'count', n) ORDER BY n DESC, step, failure_mode), '[]') FROM (SELECT step, failure_mode, count(*) n"
    "  FROM failures WHERE lot_id = l.lot_id GROUP BY 1, 2) f))"
    " FROM lots l, LATERAL (SELECT count(*) units, count(*) FILTER (WHERE passed) passed,"
    "  count(*) FILTER (WHERE NOT passed) failed,"
    "  count(*) FILTER (WHERE passed AND NOT EXISTS (SELECT 1 FROM failures f WHERE f.board_id = u.board_id"
    "   AND f.lot_id = u.lot_id)) first_pass"
    "  FROM units u WHERE u.lot_id = l.lot_id) s"
    " WHERE l.lot_id = $1";

static const char ts_find_factory_sql[] =
    "SELECT json_build_object('version', $1::text, 'current', false, 'product', nullif($2, ''),"
    " 'count', count(*), 'units', coalesce(json_agg(json_build_object('serial', u.serial, 'boardId', u.board_id,"
    " 'lot', u.lot_id, 'product', l.product, 'sha256', u.fw_sha256, 'passed', u.passed)"
    " ORDER BY u.lot_id, u.board_id), '[]'))"
    " FROM units u LEFT JOIN lots l USING (lot_id) WHERE u.fw_version = $1 AND ($2 = '' OR l.product = $2)";

static const char ts_find_current_sql[] =
    "SELECT json_build_object('version', $1::text, 'current', true, 'product', nullif($2, ''),"
    " 'count', count(*), 'units', coalesce(json_agg(json_build_object('serial', f.serial, 'boardId', u.board_id,"
    " 'lot', u.lot_id, 'product', l.product, 'sha256', f.sha256, 'reportedAt', f.time, 'source', f.source)"
    " ORDER BY f.serial), '[]'))"
    " FROM field_firmware f LEFT JOIN LATERAL (SELECT * FROM units WHERE serial = f.serial"
    "  ORDER BY last_seen DESC LIMIT 1) u ON true LEFT JOIN lots l ON l.lot_id = u.lot_id"
    " WHERE f.version = $1 AND ($2 = '' OR l.product = $2)";

int ts_query_json(PGconn *db, const char *sql, int n, const char *const *params, json_t **out, char *err,
                  size_t err_len)
{
    *out = NULL;
    PGresult *r = PQexecParams(db, sql, n, NULL, params, NULL, NULL, 0);
    int rc = -1;
    if (PQresultStatus(r) != PGRES_TUPLES_OK) {
        ts_db_error(db, r, err, err_len);
    } else if (PQntuples(r) == 0 || PQgetisnull(r, 0, 0)) {
        rc = 1;
    } else {
        json_error_t je;
        *out = json_loads(PQgetvalue(r, 0, 0), JSON_DECODE_ANY, &je);
        if (*out) rc = 0;
        else snprintf(err, err_len, "database answer is not JSON: %s", je.text);
    }
    PQclear(r);
    return rc;
}

int ts_query_unit(PGconn *db, const char *id, json_t **out, char *err, size_t err_len)
{
    return ts_query_json(db, ts_unit_sql, 1, &id, out, err, err_len);
}

int ts_query_lot(PGconn *db, const char *lot, json_t **out, char *err, size_t err_len)
{
    return ts_query_json(db, ts_lot_sql, 1, &lot, out, err, err_len);
}

int ts_query_find(PGconn *db, const char *version, const char *product, int current, json_t **out, char *err,
                  size_t err_len)
{
    const char *params[] = {version, product ? product : ""};
    return ts_query_json(db, current ? ts_find_current_sql : ts_find_factory_sql, 2, params, out, err, err_len);
}
