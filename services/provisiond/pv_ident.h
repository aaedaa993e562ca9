/* SPDX-License-Identifier: Apache-2.0 */
/* pv_ident.h - the unit identifiers provisiond issues, as pure functions:
 * serial numbers from a product's format, MAC addresses as 48-bit integers,
 * and the device id derived from factory, product and sequence number. */
#ifndef PV_IDENT_H
#define PV_IDENT_H

#include <stddef.h>
#include <stdint.h>
#include <time.h>

#define PV_MAC_MAX 0xFFFFFFFFFFFFull

/* Checks a serial format: known placeholders only ({product}, {factory},
 * {yy}, {yyyy}, {ww}, {seq} or {seq:0N} with N 1..12) and {seq} exactly once,
 * so distinct sequence numbers give distinct serials. 0, or -1 with the
 * problem in err ("must contain {seq} exactly once"; the caller names the key). */
int pv_serial_format_check(const char *fmt, char *err, size_t err_len);
/* Formats a serial; week is the ISO 8601 week of t (UTC). 0, or -1 when it
 * does not fit. */
int pv_serial_format(char *out, size_t n, const char *fmt, const char *product,
                     const char *factory, uint64_t seq, time_t t);
/* "02:00:5e:10:00:00" (':' or '-') to an integer; 0 or -1. */
int pv_mac_parse(const char *s, uint64_t *mac);
/* Lowercase colon form, 18 bytes with NUL. */
void pv_mac_format(uint64_t mac, char out[18]);
/* Allocates n consecutive MACs at *next inside [first, last]: 0 and *first_out
 * set, *next advanced; -1 when the block cannot hold n more (never wraps). */
int pv_mac_alloc(uint64_t *next, uint64_t first, uint64_t last, int n, uint64_t *first_out);
/* 16 uppercase hex characters: SHA-256 of "factory/product/seq", truncated.
 * The ledger's UNIQUE constraint catches the (negligible) collision. */
void pv_device_id(char out[17], const char *factory, const char *product, uint64_t seq);

#endif
