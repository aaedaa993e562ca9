/* digest.h - SHA-256 as lowercase hex, the form every digest takes in
 * orders, events and the spool. */
#ifndef LINEAGENT_DIGEST_H
#define LINEAGENT_DIGEST_H

#include <stddef.h>

/* Lowercase hex SHA-256 of data into out (65 bytes with the NUL); "" if
 * OpenSSL cannot allocate, which then matches no expected digest. */
void digest_sha256_hex(const void *data, size_t len, char out[65]);

#endif
