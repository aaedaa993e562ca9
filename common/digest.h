/* SPDX-License-Identifier: Apache-2.0 */
/* digest.h - SHA-256 as lowercase hex, the form every digest takes in
 * orders, events and the spool; and the CRC-32 GDB's qCRC computes. */
#ifndef LINEAGENT_DIGEST_H
#define LINEAGENT_DIGEST_H

#include <stddef.h>
#include <stdint.h>

/* Lowercase hex SHA-256 of data into out (65 bytes with the NUL); "" if
 * OpenSSL cannot allocate, which then matches no expected digest. */
void digest_sha256_hex(const void *data, size_t len, char out[65]);

/* GDB's CRC-32 (qCRC: polynomial 0x04c11db7, not reflected, no final XOR;
 * CRC-32/MPEG-2), continuing from crc; start with 0xffffffff. Not zlib's. */
uint32_t digest_crc32_gdb(uint32_t crc, const void *data, size_t len);

#endif
