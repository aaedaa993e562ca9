/* SPDX-License-Identifier: Apache-2.0 */
/* ts_cli.c - answer printing (ts_cli.h). The readable form is derived from
 * the JSON, so the two never disagree: scalars as "key: value", objects and
 * arrays indented below their key, array items introduced by "-". */
#include "ts_cli.h"

#include <stdlib.h>

static void ts_cli_scalar(FILE *out, const json_t *v)
{
    if (json_is_string(v)) fputs(json_string_value(v), out);
    else if (json_is_null(v)) fputs("-", out);
    else {
        char *s = json_dumps(v, JSON_ENCODE_ANY | JSON_REAL_PRECISION(10));
        fputs(s ? s : "?", out);
        free(s);
    }
}

static int ts_cli_is_scalar(const json_t *v) { return !json_is_object(v) && !json_is_array(v); }

static void ts_cli_value(FILE *out, const json_t *v, int depth);

static void ts_cli_object(FILE *out, const json_t *o, int depth, int first_inline)
{
    const char *k;
    json_t *x;
    int first = 1;
    json_object_foreach((json_t *)o, k, x)
    {
        if (!(first && first_inline)) fprintf(out, "%*s", depth * 2, "");
        first = 0;
        fprintf(out, "%s:", k);
        if (ts_cli_is_scalar(x)) {
            fputc(' ', out);
            ts_cli_scalar(out, x);
            fputc('\n', out);
        } else if (json_is_array(x) && json_array_size(x) == 0) {
            fputs(" none\n", out);
        } else {
            fputc('\n', out);
            ts_cli_value(out, x, depth + 1);
        }
    }
}

static void ts_cli_value(FILE *out, const json_t *v, int depth)
{
    if (json_is_object(v)) {
        ts_cli_object(out, v, depth, 0);
        return;
    }
    size_t i;
    json_t *x;
    json_array_foreach(v, i, x)
    {
        fprintf(out, "%*s- ", depth * 2, "");
        if (json_is_object(x)) ts_cli_object(out, x, depth + 1, 1);
        else {
            ts_cli_scalar(out, x);
            fputc('\n', out);
        }
    }
}

void ts_cli_print(FILE *out, const json_t *v, int as_json)
{
    if (as_json) {
        json_dumpf(v, out, JSON_INDENT(2) | JSON_PRESERVE_ORDER | JSON_ENCODE_ANY);
        fputc('\n', out);
    } else {
        ts_cli_value(out, v, 0);
    }
}
