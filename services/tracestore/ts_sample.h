/* SPDX-License-Identifier: Apache-2.0 */
/* ts_sample.h - the first-delivery sample check (E4): what incoming
 * inspection read from sample units, compared with the records.
 *
 * The CSV's first line names its columns: serial (required),
 * firmware_version, macs (separated by ';' or spaces), device_id, and
 * m:NAME for a measurement re-taken at inspection (compared with the limits
 * recorded for NAME). Empty cells are not compared. No quoting: values
 * hold no commas. */
#ifndef TS_SAMPLE_H
#define TS_SAMPLE_H

#include <jansson.h>
#include <libpq-fe.h>
#include <stddef.h>

/* *out: {"lot", "rows", "passed": bool, "discrepancies": [{"line",
 * "serial", "field", "expected", "found"}]}; 0, or -1 with err set (an
 * unreadable file, a malformed CSV, an unknown lot, a database error). */
int ts_sample_check(PGconn *db, const char *lot, const char *csv_path, json_t **out, char *err, size_t err_len);

#endif
