/* SPDX-License-Identifier: Apache-2.0 */
/* adapter_exec.h - the exec adapter's parser of a vendor program's stdout
 * (one JSON object, or JSON lines, OpenHTF records among them), apart from
 * the process handling so tests and the fuzz harness call it directly. */
#ifndef LINEAGENT_ADAPTER_EXEC_H
#define LINEAGENT_ADAPTER_EXEC_H

#include <stddef.h>

#include "adapter.h"

/* Parses out (len bytes, NUL-terminated at out[len]; modified in place)
 * into r's measurements, read-back and calibration fields. Returns 1 when
 * an OpenHTF record reports a failed measurement without limits. */
int adapter_exec_parse(char *out, size_t len, adapter_result *r);

#endif
