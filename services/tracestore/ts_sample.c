/* SPDX-License-Identifier: Apache-2.0 */
/* ts_sample.c - sample check (ts_sample.h): one query per sample row for
 * the unit's record, compared in C field by field, every discrepancy
 * listed (not only the first). */
#include "ts_sample.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ts_query.h"

#define TS_SAMPLE_COLS 64

static const char ts_sample_sql[] =
    "SELECT json_build_object('version', u.fw_version, 'macs', i.macs, 'deviceId', i.device_id,"
    " 'measurements', (SELECT json_object_agg(name, json_build_object('low', low, 'high', high)) FROM"
    "  (SELECT DISTINCT ON (name) name, low, high FROM measurements m WHERE m.board_id = u.board_id"
    "   AND m.lot_id = u.lot_id ORDER BY name, time DESC) m))"
    " FROM units u LEFT JOIN LATERAL (SELECT * FROM identities WHERE board_id = u.board_id AND lot_id = u.lot_id"
    "  ORDER BY time DESC LIMIT 1) i ON true WHERE u.lot_id = $1 AND u.serial = $2";

static char *ts_trim(char *s)
{
    while (*s == ' ' || *s == '\t') s++;
    char *e = s + strlen(s);
    while (e > s && strchr(" \t\r\n", e[-1])) *--e = '\0';
    return s;
}

/* Splits line at commas in place; returns the number of cells. */
static int ts_split(char *line, char **cells, int max)
{
    int n = 0;
    for (char *p = line; n < max;) {
        char *comma = strchr(p, ',');
        if (comma) *comma = '\0';
        cells[n++] = ts_trim(p);
        if (!comma) break;
        p = comma + 1;
    }
    return n;
}

static void ts_discrepancy(json_t *list, int line, const char *serial, const char *field, json_t *expected,
                           const char *found)
{
    json_array_append_new(list, json_pack("{s:i,s:s,s:s,s:o,s:s}", "line", line, "serial", serial, "field", field,
                                          "expected", expected ? expected : json_null(), "found", found));
}

/* The MACs of a cell and of the record as the same sorted, lower-case
 * list: inspection tools print MACs in either case and any order. */
static int ts_mac_cmp(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }
static int ts_macs_equal(const char *cell, const json_t *recorded)
{
    char buf[1024];
    snprintf(buf, sizeof buf, "%s", cell);
    char *got[64];
    size_t n = 0;
    for (char *save = NULL, *t = strtok_r(buf, "; ", &save); t && n < 64; t = strtok_r(NULL, "; ", &save)) {
        for (char *c = t; *c; c++) *c = (char)(*c >= 'A' && *c <= 'Z' ? *c + 32 : *c);
        got[n++] = t;
    }
    if (!json_is_array(recorded) || json_array_size(recorded) != n) return 0;
    char want_buf[1024] = "", *want[64];
    size_t off = 0;
    for (size_t i = 0; i < n; i++) {
        const char *m = json_string_value(json_array_get(recorded, i));
        int w = snprintf(want_buf + off, sizeof want_buf - off, "%s", m ? m : "");
        want[i] = want_buf + off;
        for (char *c = want[i]; *c; c++) *c = (char)(*c >= 'A' && *c <= 'Z' ? *c + 32 : *c);
        off += (size_t)w + 1;
        if (off >= sizeof want_buf) return 0;
    }
    qsort(got, n, sizeof *got, ts_mac_cmp);
    qsort(want, n, sizeof *want, ts_mac_cmp);
    for (size_t i = 0; i < n; i++)
        if (strcmp(got[i], want[i])) return 0;
    return 1;
}

static void ts_check_row(json_t *rec, char **head, char **cells, int n, int line, json_t *list)
{
    const char *serial = cells[0];
    for (int c = 1; c < n; c++) {
        const char *v = cells[c];
        if (!*v) continue;
        if (strcmp(head[c], "firmware_version") == 0) {
            const char *want = json_string_value(json_object_get(rec, "version"));
            if (!want || strcmp(want, v))
                ts_discrepancy(list, line, serial, "firmware_version", json_incref(json_object_get(rec, "version")), v);
        } else if (strcmp(head[c], "device_id") == 0) {
            const char *want = json_string_value(json_object_get(rec, "deviceId"));
            if (!want || strcmp(want, v))
                ts_discrepancy(list, line, serial, "device_id", json_incref(json_object_get(rec, "deviceId")), v);
        } else if (strcmp(head[c], "macs") == 0) {
            if (!ts_macs_equal(v, json_object_get(rec, "macs")))
                ts_discrepancy(list, line, serial, "macs", json_incref(json_object_get(rec, "macs")), v);
        } else { /* m:NAME, checked when the header was read */
            json_t *m = json_object_get(json_object_get(rec, "measurements"), head[c] + 2);
            char *end;
            double x = strtod(v, &end);
            if (!m) ts_discrepancy(list, line, serial, head[c], NULL, v);
            else if (*end || end == v || x < json_number_value(json_object_get(m, "low")) ||
                     x > json_number_value(json_object_get(m, "high")))
                ts_discrepancy(list, line, serial, head[c], json_incref(m), v);
        }
    }
}

int ts_sample_check(PGconn *db, const char *lot, const char *csv_path, json_t **out, char *err, size_t err_len)
{
    json_t *exists;
    int rc = ts_query_json(db, "SELECT to_json(lot_id) FROM lots WHERE lot_id = $1", 1, &lot, &exists, err, err_len);
    if (rc) {
        if (rc == 1) snprintf(err, err_len, "no lot %s", lot);
        return -1;
    }
    json_decref(exists);
    json_t *list = json_array();
    char header[4096], row[4096];
    char *head[TS_SAMPLE_COLS], *cells[TS_SAMPLE_COLS];
    int line = 1, rows = 0, nh = 0;
#define TS_BAD(...) do { snprintf(err, err_len, __VA_ARGS__); goto bad; } while (0)
    FILE *f = fopen(csv_path, "r");
    if (!f) TS_BAD("%s: %s", csv_path, strerror(errno));
    if (!fgets(header, sizeof header, f)) TS_BAD("%s: empty", csv_path);
    nh = ts_split(header, head, TS_SAMPLE_COLS);
    if (strcmp(head[0], "serial")) TS_BAD("%s:1: the first column must be serial", csv_path);
    for (int c = 1; c < nh; c++)
        if (strcmp(head[c], "firmware_version") && strcmp(head[c], "macs") && strcmp(head[c], "device_id") &&
            (strncmp(head[c], "m:", 2) || !head[c][2]))
            TS_BAD("%s:1: unknown column \"%s\" (serial, firmware_version, macs, device_id, m:NAME)", csv_path,
                   head[c]);
    while (fgets(row, sizeof row, f)) {
        line++;
        int n = ts_split(row, cells, TS_SAMPLE_COLS);
        if (n == 1 && !cells[0][0]) continue; /* blank line */
        if (n != nh) TS_BAD("%s:%d: %d cells, the header has %d", csv_path, line, n, nh);
        rows++;
        const char *params[] = {lot, cells[0]};
        json_t *rec;
        rc = ts_query_json(db, ts_sample_sql, 2, params, &rec, err, err_len);
        if (rc < 0) goto bad;
        if (rc == 1) {
            ts_discrepancy(list, line, cells[0], "serial", json_string(lot), "not in this lot");
            continue;
        }
        ts_check_row(rec, head, cells, n, line, list);
        json_decref(rec);
    }
#undef TS_BAD
    fclose(f);
    *out = json_pack("{s:s,s:i,s:b,s:o}", "lot", lot, "rows", rows, "passed", json_array_size(list) == 0,
                     "discrepancies", list);
    return 0;
bad:
    if (f) fclose(f);
    json_decref(list);
    return -1;
}
