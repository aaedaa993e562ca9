/* SPDX-License-Identifier: Apache-2.0 */
/* ts_cli.h - printing an answer: JSON (--json) or a readable indented
 * listing of the same keys, for people at a terminal. */
#ifndef TS_CLI_H
#define TS_CLI_H

#include <jansson.h>
#include <stdio.h>

void ts_cli_print(FILE *out, const json_t *v, int as_json);

#endif
