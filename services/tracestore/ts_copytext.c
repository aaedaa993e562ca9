/* SPDX-License-Identifier: Apache-2.0 */
/* ts_copytext.c - COPY text rows (ts_copytext.h). */
#include "ts_copytext.h"

#include <inttypes.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static void ts_buf_grow(ts_buf *b, size_t more)
{
    if (b->len + more <= b->cap) return;
    size_t cap = b->cap ? b->cap : 65536;
    while (cap < b->len + more) cap *= 2;
    char *p = realloc(b->p, cap);
    if (!p) abort(); /* a batch is bounded by batch_max; no memory left is fatal */
    b->p = p;
    b->cap = cap;
}

void ts_buf_put(ts_buf *b, const void *s, size_t n)
{
    ts_buf_grow(b, n);
    memcpy(b->p + b->len, s, n);
    b->len += n;
}

void ts_buf_printf(ts_buf *b, const char *fmt, ...)
{
    char tmp[64];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(tmp, sizeof tmp, fmt, ap);
    va_end(ap);
    ts_buf_put(b, tmp, n < 0 ? 0 : (size_t)n < sizeof tmp ? (size_t)n : sizeof tmp - 1);
}

void ts_buf_free(ts_buf *b)
{
    free(b->p);
    memset(b, 0, sizeof *b);
}

void ts_copy_text(ts_buf *b, const char *s)
{
    size_t n = strlen(s);
    ts_buf_grow(b, 2 * n + 1);
    char *o = b->p + b->len;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        if (c == '\\' || c == '\n' || c == '\r' || c == '\t') {
            *o++ = '\\';
            c = c == '\n' ? 'n' : c == '\r' ? 'r' : c == '\t' ? 't' : '\\';
        }
        *o++ = c;
    }
    *o++ = '\t';
    b->len = (size_t)(o - b->p);
}

void ts_copy_null(ts_buf *b) { ts_buf_put(b, "\\N\t", 3); }

void ts_copy_int(ts_buf *b, int64_t v) { ts_buf_printf(b, "%" PRId64 "\t", v); }

/* "nan", "-nan" and "inf" from printf are not all accepted. */
void ts_copy_double(ts_buf *b, double d)
{
    if (isnan(d)) ts_buf_put(b, "NaN\t", 4);
    else if (isinf(d)) ts_buf_printf(b, "%sInfinity\t", d < 0 ? "-" : "");
    else ts_buf_printf(b, "%.17g\t", d);
}

void ts_copy_bool(ts_buf *b, int v) { ts_buf_put(b, v ? "t\t" : "f\t", 2); }

void ts_copy_time(ts_buf *b, int64_t ms)
{
    time_t s = (time_t)(ms / 1000);
    struct tm tm;
    gmtime_r(&s, &tm);
    char t[64];
    size_t n = strftime(t, sizeof t, "%Y-%m-%d %H:%M:%S", &tm);
    n += (size_t)snprintf(t + n, sizeof t - n, ".%03d+00\t", (int)(ms % 1000));
    ts_buf_put(b, t, n);
}

void ts_copy_bytea(ts_buf *b, const void *data, size_t len)
{
    static const char hex[] = "0123456789abcdef";
    ts_buf_grow(b, 4 + 2 * len);
    char *o = b->p + b->len;
    *o++ = '\\', *o++ = '\\', *o++ = 'x'; /* \x, its backslash escaped for COPY */
    for (size_t i = 0; i < len; i++) {
        unsigned char c = ((const unsigned char *)data)[i];
        *o++ = hex[c >> 4];
        *o++ = hex[c & 15];
    }
    *o++ = '\t';
    b->len = (size_t)(o - b->p);
}

void ts_copy_array_open(ts_buf *b) { ts_buf_put(b, "{", 1); }
void ts_copy_array_close(ts_buf *b) { ts_buf_put(b, "}\t", 2); }

/* "element" with " and \ escaped for the array literal, then every
 * backslash and control character escaped again for COPY. */
void ts_copy_array_text(ts_buf *b, size_t i, const char *s)
{
    ts_buf_put(b, i ? ",\"" : "\"", i ? 2 : 1);
    for (; *s; s++) {
        const char *e = *s == '"' ? "\\\\\"" : *s == '\\' ? "\\\\\\\\" : *s == '\t' ? "\\t" : *s == '\n' ? "\\n"
                      : *s == '\r' ? "\\r" : NULL;
        if (e) ts_buf_put(b, e, strlen(e));
        else ts_buf_put(b, s, 1);
    }
    ts_buf_put(b, "\"", 1);
}

void ts_copy_array_double(ts_buf *b, size_t i, double d)
{
    if (i) ts_buf_put(b, ",", 1);
    ts_copy_double(b, d); /* NaN and Infinity read the same inside an array */
    b->len--;             /* less its tab */
}

void ts_copy_array_bool(ts_buf *b, size_t i, int v) { ts_buf_put(b, i ? (v ? ",t" : ",f") : (v ? "t" : "f"), i ? 2 : 1); }

void ts_copy_text_array(ts_buf *b, char *const *v, size_t n)
{
    ts_copy_array_open(b);
    for (size_t i = 0; i < n; i++) ts_copy_array_text(b, i, v[i]);
    ts_copy_array_close(b);
}

void ts_copy_end(ts_buf *b)
{
    if (b->len && b->p[b->len - 1] == '\t') b->p[b->len - 1] = '\n';
    else ts_buf_put(b, "\n", 1);
}
