/* SPDX-License-Identifier: Apache-2.0 */
/* ts_audit.c - the audit's queries (ts_audit.h). Each kind of finding is
 * one SELECT producing JSON objects; the audit is their union. */
#include "ts_audit.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ts_query.h"

/* Gaps: between two consecutive runs of an agent's seq; since when the
 * later run was first seen. $1: seconds a gap may stay open. */
#define TS_GAPS_SQL                                                                                         \
    "SELECT json_build_object('kind', 'seq_gap', 'agent', agent_key, 'fromSeq', prev_hi + 1,"              \
    " 'toSeq', lo - 1, 'since', first_seen) AS f FROM (SELECT agent_key, lo, first_seen,"                 \
    " lag(hi) OVER (PARTITION BY agent_key ORDER BY lo) prev_hi FROM seq_ranges) g"                       \
    " WHERE prev_hi IS NOT NULL AND first_seen < clock_timestamp() - $1::bigint * interval '1 second'"

static const char ts_audit_sql[] =
    "SELECT json_build_object('consistent', count(f) = 0, 'findings', coalesce(json_agg(f), '[]')) FROM ("
    " SELECT json_build_object('kind', 'serial_on_two_boards', 'serial', serial,"
    "  'boards', array_agg(DISTINCT board_id), 'lines', array_agg(DISTINCT site || '/' || line)) AS f"
    "  FROM identities WHERE serial <> '' GROUP BY serial HAVING count(DISTINCT board_id) > 1"
    " UNION ALL"
    " SELECT json_build_object('kind', 'mac_on_two_boards', 'mac', mac, 'boards', array_agg(DISTINCT board_id),"
    "  'lines', array_agg(DISTINCT site || '/' || line))"
    "  FROM identities, unnest(macs) AS mac GROUP BY mac HAVING count(DISTINCT board_id) > 1"
    " UNION ALL"
    " SELECT json_build_object('kind', 'unit_without_outcome', 'boardId', u.board_id, 'lot', u.lot_id,"
    "  'serial', u.serial, 'lastSeen', u.last_seen)"
    "  FROM units u LEFT JOIN lots l USING (lot_id) WHERE u.passed IS NULL"
    "  AND (l.completed_at IS NOT NULL OR u.last_seen < clock_timestamp() - $2::bigint * interval '1 second')"
    " UNION ALL (" TS_GAPS_SQL ")"
    " UNION ALL"
    " SELECT json_build_object('kind', 'rejected_record', 'topic', topic, 'partition', kafka_partition,"
    "  'offset', kafka_offset, 'reason', reason, 'rejectedAt', rejected_at) FROM rejected_records"
    " UNION ALL"
    " SELECT json_build_object('kind', 'records_lost', 'group', group_id, 'topic', topic,"
    "  'partition', kafka_partition, 'fromOffset', from_offset, 'toOffset', to_offset - 1,"
    "  'count', to_offset - from_offset, 'detectedAt', detected_at) FROM lost_records WHERE NOT before_first_read"
    ") x";

int ts_audit(PGconn *db, long unit_timeout_s, long gap_timeout_s, json_t **out, char *err, size_t err_len)
{
    char gap[24], unit[24];
    snprintf(gap, sizeof gap, "%ld", gap_timeout_s);
    snprintf(unit, sizeof unit, "%ld", unit_timeout_s);
    const char *params[] = {gap, unit};
    return ts_query_json(db, ts_audit_sql, 2, params, out, err, err_len) ? -1 : 0;
}

long ts_audit_gaps(PGconn *db, long gap_timeout_s, json_t **list, char *err, size_t err_len)
{
    char gap[24];
    snprintf(gap, sizeof gap, "%ld", gap_timeout_s);
    const char *params[] = {gap};
    json_t *v;
    if (ts_query_json(db, "SELECT json_build_object('count', count(*), 'first', coalesce(json_agg(f) FILTER"
                          " (WHERE n <= 20), '[]')) FROM (SELECT f, row_number() OVER () n FROM (" TS_GAPS_SQL
                          ") g) x",
                      1, params, &v, err, err_len))
        return -1;
    long n = (long)json_integer_value(json_object_get(v, "count"));
    if (list) *list = json_incref(json_object_get(v, "first"));
    json_decref(v);
    return n;
}
