/* SPDX-License-Identifier: Apache-2.0 */
/* release_sig.h - signed firmware releases: with [firmware] release_keys set
 * (PEM public keys of the firmware release team, Ed25519 or ECDSA P-256), an
 * order's firmware must carry a detached signature (firmware.signature,
 * base64) made by one of them over the release's canonical manifest:
 *
 *   lineagent-release-manifest-v1\n
 *   product=<product>\n
 *   version=<version>\n
 *   sha256=<sha256, lowercase hex>\n
 *   build=<PRODUCTION|DEBUG>\n
 *
 * Signing one (deploy/README.md has the whole procedure):
 *   openssl pkeyutl -sign -rawin -inkey release-ed25519.pem -in manifest | base64 -w0   (Ed25519)
 *   openssl dgst -sha256 -sign release-p256.pem manifest | base64 -w0                   (ECDSA P-256)
 * The agent holds public keys only. */
#ifndef LINEAGENT_RELEASE_SIG_H
#define LINEAGENT_RELEASE_SIG_H

#include <stddef.h>

#include "order.h"

typedef struct release_keys release_keys;

/* Loads every public key in the PEM files listed in paths (comma-separated;
 * a file may hold several keys). NULL with err when a file is unreadable,
 * holds no key, or a key is neither Ed25519 nor ECDSA P-256. */
release_keys *release_keys_load(const char *paths, char *err, size_t err_len);
void release_keys_free(release_keys *k);
/* Number of keys loaded. */
size_t release_keys_count(const release_keys *k);

/* The canonical manifest of o's release into buf; its length, or 0 when it
 * does not fit. */
size_t release_manifest(const JobOrder *o, char *buf, size_t n);

/* 0 when o's firmware.signature is a valid signature of its manifest by one
 * of keys; otherwise -1 with the reason (missing, not base64, no key's). */
int release_sig_check(const release_keys *keys, const JobOrder *o, char *reason, size_t reason_len);

#endif
