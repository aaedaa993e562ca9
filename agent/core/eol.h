/* SPDX-License-Identifier: Apache-2.0 */
/* eol.h - the end-of-line state a unit must be in before it counts as good
 * (rule E2): the firmware verified in it is its release, and every state the
 * order's flow promises (provisioning, calibration, a verified debug lock)
 * is present. Pure: the coordinator gathers the facts, this judges them. */
#ifndef LINEAGENT_EOL_H
#define LINEAGENT_EOL_H

#include <stddef.h>

typedef struct eol_def {
    int provision, calibrate, lock; /* the flow has the step */
} eol_def;

typedef struct eol_unit {
    const char *release_version, *release_sha256;   /* bound release; NULL if none */
    const char *verified_version, *verified_sha256; /* what VERIFY confirmed ("" if nothing) */
    int provisioned, calibrated, lock_verified;
} eol_unit;

/* NULL when the unit matches; else buf naming the first differing field
 * ("firmware_version: ...", "firmware_sha256: ...", "provisioning: ...",
 * "calibration: ...", "lock: ..."). */
const char *eol_check(const eol_def *d, const eol_unit *u, char *buf, size_t n);

#endif
