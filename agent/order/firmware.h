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
} firmware_fetch_opts;

/* Fetches url into a malloc'ed buffer the caller frees, then compares its
 * SHA-256 with sha256_hex (case-insensitive). 0 on success; -1 with reason
 * (fetch error, size limit, digest mismatch naming both digests). */
int firmware_fetch(const char *url, const char *sha256_hex, const firmware_fetch_opts *opts,
                   uint8_t **image, size_t *len, char *reason, size_t reason_len);

#endif
