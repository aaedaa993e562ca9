/* SPDX-License-Identifier: Apache-2.0 */
/* firmware.h - fetching a release image from its URL (libcurl: file, http,
 * https) and checking it against the order's SHA-256. */
#ifndef LINEAGENT_FIRMWARE_H
#define LINEAGENT_FIRMWARE_H

#include <stddef.h>
#include <stdint.h>

typedef struct firmware_fetch_opts {
    size_t max_bytes;     /* images larger than this are refused */
    long timeout_ms;      /* whole transfer */
    const char *ca_file;  /* optional CA bundle for https; NULL = system store */
    const char *allowed_urls; /* [firmware] allowed_urls; NULL or "": nothing is allowed */
} firmware_fetch_opts;

/* Checks an allowed_urls value: comma-separated prefixes, each file:///PATH/,
 * http://HOST[:PORT]/[PATH/] or https://..., ending in '/'. 0 or -1 with err. */
int firmware_allowed_check(const char *list, char *err, size_t err_len);
/* 1 when url lies under one of the allowed prefixes (and holds no dot
 * segments, no percent escapes in a file: URL, nothing but printable ASCII);
 * 0 with a reason that names no local fact (existence, size). */
int firmware_url_allowed(const char *url, const char *list, char *reason, size_t reason_len);

/* Fetches url into a malloc'ed buffer the caller frees, then compares its
 * SHA-256 with sha256_hex (case-insensitive). 0 on success; -1 with reason
 * (not allowed, fetch error, size limit, digest mismatch naming both
 * digests). Nothing is read unless firmware_url_allowed says so, each
 * redirect included; a file: URL is read by the agent itself: its real path
 * inside the allowed root, O_NOFOLLOW, a regular file (a FIFO or device
 * cannot hang intake), and every failure gives the same reason. */
int firmware_fetch(const char *url, const char *sha256_hex, const firmware_fetch_opts *opts,
                   uint8_t **image, size_t *len, char *reason, size_t reason_len);

#endif
