/* SPDX-License-Identifier: Apache-2.0 */
/* ts_prune.c - dropping months of raw events (ts_prune.h). Partitions are
 * found by name (events_YYYY_MM, as ts_ensure_month makes them), so a table
 * attached by hand under another name is never touched. */
#include "ts_prune.h"

#include <ctype.h>
#include <stdio.h>
#include <string.h>

#include "ts_db.h"
#include "ts_query.h"

static const char ts_prune_list_sql[] =
    "SELECT coalesce(json_agg(json_build_object('name', c.relname, 'month', replace(substr(c.relname, 8), '_', '-'))"
    " ORDER BY c.relname), '[]') FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid"
    " WHERE i.inhparent = 'events'::regclass AND c.relname ~ '^events_[0-9]{4}_[0-9]{2}$'"
    " AND replace(substr(c.relname, 8), '_', '-') < $1";

static int ts_prune_month_ok(const char *m)
{
    if (strlen(m) != 7 || m[4] != '-') return 0;
    for (int i = 0; i < 7; i++)
        if (i != 4 && !isdigit((unsigned char)m[i])) return 0;
    return (m[5] == '0' && m[6] >= '1') || (m[5] == '1' && m[6] <= '2');
}

int ts_prune(PGconn *db, const char *before, int drop, json_t **out, int *usage, char *err, size_t err_len)
{
    *usage = 0;
    if (!ts_prune_month_ok(before)) {
        *usage = 1;
        return snprintf(err, err_len, "--before %s: want a month as YYYY-MM", before), -1;
    }
    json_t *now;
    const char *p[] = {before};
    if (ts_query_json(db, "SELECT to_json(to_char(now() AT TIME ZONE 'UTC', 'YYYY-MM'))", 0, NULL, &now, err,
                      err_len))
        return -1;
    int future = strcmp(before, json_string_value(now)) > 0;
    if (future) {
        *usage = 1;
        snprintf(err, err_len, "--before %s is later than the current month %s, which is still being written", before,
                 json_string_value(now));
    }
    json_decref(now);
    if (future) return -1;
    json_t *parts;
    if (ts_query_json(db, ts_prune_list_sql, 1, p, &parts, err, err_len)) return -1;
    size_t i;
    json_t *part;
    json_array_foreach(parts, i, part) {
        char sql[160];
        const char *name = json_string_value(json_object_get(part, "name")); /* matched ^events_YYYY_MM$ */
        snprintf(sql, sizeof sql, "SELECT to_json(count(*)) FROM %s", name);
        json_t *rows;
        if (ts_query_json(db, sql, 0, NULL, &rows, err, err_len)) {
            json_decref(parts);
            return -1;
        }
        json_object_set_new(part, "rows", rows);
        snprintf(sql, sizeof sql, "DROP TABLE %s", name);
        if (drop && ts_db_exec(db, sql, err, err_len)) {
            json_decref(parts);
            return -1;
        }
    }
    *out = json_pack("{s:s, s:b, s:o}", "before", before, "dropped", drop, "partitions", parts);
    return 0;
}
