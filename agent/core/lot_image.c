/* SPDX-License-Identifier: Apache-2.0 */
/* lot_image.c - re-hashing a resumed lot's cached image, fetching it again
 * when the spool's copy is corrupt (see lot_image.h). Runs in line_start,
 * before any station takes a board of the lot. */
#include "lot_image.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "digest.h"
#include "firmware.h"
#include "log.h"

int lot_image_load(spool *sp, const config *cfg, const JobOrder *o, const char *lot_id, uint8_t **image,
                   size_t *len, char *why, size_t why_len)
{
    if (!o) {
        snprintf(why, why_len, "its order is unreadable in the spool");
        return -1;
    }
    const char *sha = o->firmware->sha256;
    uint8_t *img = NULL;
    size_t n = 0;
    int got = spool_firmware_get(sp, sha, &img, &n);
    if (got < 0) {
        snprintf(why, why_len, "firmware %.16s... unreadable in the spool: %s", sha, spool_errmsg(sp));
        return -1;
    }
    if (got == 1) {
        char now[65];
        digest_sha256_hex(img, n, now);
        if (strcasecmp(now, sha) == 0) {
            *image = img;
            *len = n;
            return 0;
        }
        free(img);
        log_warn("lot %s: cached firmware %.16s... re-hashes to %.16s...: not written to any board; discarded, "
                 "fetching it again from %s", lot_id, sha, now, o->firmware->url);
        if (spool_firmware_delete(sp, sha) != 0) {
            snprintf(why, why_len, "cached firmware %.16s... is corrupt and cannot be deleted: %s", sha,
                     spool_errmsg(sp));
            return -1;
        }
    } else {
        log_warn("lot %s: firmware %.16s... is not in the spool; fetching it again from %s", lot_id, sha,
                 o->firmware->url);
    }
    firmware_fetch_opts fo = {cfg->firmware_max_bytes, cfg->firmware_timeout_ms, cfg->firmware_ca_file,
                              cfg->firmware_allowed_urls};
    char reason[400];
    if (firmware_fetch(o->firmware->url, sha, &fo, &img, &n, reason, sizeof reason) != 0) {
        snprintf(why, why_len, "cached firmware %.16s... is corrupt or missing and fetching it again failed: %s",
                 sha, reason);
        return -1;
    }
    if (spool_firmware_put(sp, sha, img, n) != 0)
        log_warn("lot %s: firmware fetched again but not stored in the spool: %s", lot_id, spool_errmsg(sp));
    log_info("lot %s: firmware %.16s... fetched again and re-hashed; resuming with it", lot_id, sha);
    *image = img;
    *len = n;
    return 0;
}

void lot_image_hold(json_t *alarms, const char *lot_id, const char *why)
{
    char detail[600];
    snprintf(detail, sizeof detail, "lot %s held, not resumed, no board written: %s", lot_id, why);
    log_error("ALARM firmware_corrupt: %s", detail);
    json_array_append_new(alarms, json_pack("{s:s, s:s, s:s}", "alarm", "firmware_corrupt", "detail", detail,
                                            "lot_id", lot_id));
}
