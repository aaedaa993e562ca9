/* SPDX-License-Identifier: Apache-2.0 */
/* eol.c - the end-of-line check (see eol.h). */
#include "eol.h"

#include <stdio.h>
#include <string.h>

const char *eol_check(const eol_def *d, const eol_unit *u, char *buf, size_t n)
{
    const char *vv = u->verified_version ? u->verified_version : "";
    const char *vs = u->verified_sha256 ? u->verified_sha256 : "";
    if (!u->release_version || strcmp(vv, u->release_version) != 0)
        return snprintf(buf, n, "firmware_version: verified \"%.64s\", release \"%.64s\"", vv,
                        u->release_version ? u->release_version : ""), buf;
    if (!u->release_sha256 || strcmp(vs, u->release_sha256) != 0)
        return snprintf(buf, n, "firmware_sha256: verified %.16s..., release %.16s...", vs,
                        u->release_sha256 ? u->release_sha256 : ""), buf;
    if (d->provision && !u->provisioned) return snprintf(buf, n, "provisioning: not present"), buf;
    if (d->calibrate && !u->calibrated) return snprintf(buf, n, "calibration: not present"), buf;
    if (d->lock && !u->lock_verified) return snprintf(buf, n, "lock: debug port lock not verified"), buf;
    return NULL;
}
