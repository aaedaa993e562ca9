/* SPDX-License-Identifier: Apache-2.0 */
/* ts_copytext.h - rows in PostgreSQL's COPY text format, built in growable
 * buffers: each value is written followed by a tab, and ts_copy_end turns
 * the row's last tab into its newline. Text is escaped (backslash, tab,
 * newline, carriage return); the caller checked it is UTF-8 without NUL
 * (ts_decode.c). */
#ifndef TS_COPYTEXT_H
#define TS_COPYTEXT_H

#include <stddef.h>
#include <stdint.h>

typedef struct ts_buf {
    char *p;
    size_t len, cap;
} ts_buf;

void ts_buf_put(ts_buf *b, const void *s, size_t n);
/* Appends up to 63 formatted bytes (%c of 0 appends a NUL). */
void ts_buf_printf(ts_buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void ts_buf_free(ts_buf *b);

void ts_copy_text(ts_buf *b, const char *s);
void ts_copy_null(ts_buf *b);
void ts_copy_int(ts_buf *b, int64_t v);
void ts_copy_double(ts_buf *b, double d); /* NaN and ±Infinity as PostgreSQL reads them */
void ts_copy_bool(ts_buf *b, int v);
void ts_copy_time(ts_buf *b, int64_t ms); /* UTC, millisecond precision */
void ts_copy_bytea(ts_buf *b, const void *p, size_t n);
void ts_copy_text_array(ts_buf *b, char *const *v, size_t n); /* text[] */
/* An array value element by element: open, then element i = 0, 1, ...
 * (each writer puts the comma before all but the first), close. */
void ts_copy_array_open(ts_buf *b);
void ts_copy_array_text(ts_buf *b, size_t i, const char *s);
void ts_copy_array_double(ts_buf *b, size_t i, double d);
void ts_copy_array_bool(ts_buf *b, size_t i, int v);
void ts_copy_array_close(ts_buf *b);
void ts_copy_end(ts_buf *b);

#endif
