/* SPDX-License-Identifier: Apache-2.0 */
/* gdb_identity.h - the identity record the gdb adapter writes to the target
 * at gdb.identity_address and reads back: versioned, length-prefixed, TLV
 * fields, CRC-32 at the end. The byte layout is in adapters/README.md
 * ("The identity record"). Encoding and parsing are pure functions of their
 * bytes (the parser is fuzzed: tests/fuzz/fuzz_gdb_identity.c). */
#ifndef LINEAGENT_GDB_IDENTITY_H
#define LINEAGENT_GDB_IDENTITY_H

#include <stddef.h>
#include <stdint.h>

#include "adapter.h"

#define GDB_IDENTITY_MAGIC "LAID"
#define GDB_IDENTITY_VERSION 1
#define GDB_IDENTITY_HEADER 8 /* magic, version, flags, total length */
#define GDB_IDENTITY_MIN (GDB_IDENTITY_HEADER + 4)
#define GDB_IDENTITY_MAX 512

/* TLV types; types >= 0x80 are optional: a reader that does not know one
 * skips it, an unknown type below 0x80 makes the record invalid. */
enum {
    GDB_ID_T_SERIAL = 1,       /* ASCII, 1..127 bytes */
    GDB_ID_T_DEVICE_ID = 2,    /* ASCII, 1..39 bytes */
    GDB_ID_T_MAC = 3,          /* 6 bytes; 0..8 of them, in order */
    GDB_ID_T_CERT_SHA256 = 4,  /* 32 bytes: SHA-256 of the certificate's DER */
    GDB_ID_T_FACTORY_CODE = 0x80 /* ASCII, optional, informational */
};

/* Parse outcomes (negative: the record is not a valid identity). */
enum {
    GDB_ID_OK = 0,
    GDB_ID_ETRUNCATED = -1, /* fewer bytes than the header or its total length */
    GDB_ID_EMAGIC = -2,
    GDB_ID_EVERSION = -3,
    GDB_ID_ELENGTH = -4,    /* total length outside GDB_IDENTITY_MIN..MAX */
    GDB_ID_ECRC = -5,
    GDB_ID_EFIELD = -6      /* a TLV overruns, repeats, is unknown or bad, or a required one is missing */
};

/* The identity as a record into out (cap bytes, GDB_IDENTITY_MAX is
 * enough): 0 with *len, or -1 with err (a field that does not fit). */
int gdb_identity_encode(const adapter_identity *id, uint8_t *out, size_t cap, size_t *len, char *err,
                        size_t err_len);

/* The record's total length from its first GDB_IDENTITY_HEADER bytes (how
 * much to read back): >= GDB_IDENTITY_MIN, or a negative GDB_ID_E*. */
long gdb_identity_total(const uint8_t *hdr, size_t len);

/* Parses a record of len bytes (at least its total length; bytes after it
 * are ignored) into res's serial, device_id, macs/n_macs and cert_sha256
 * (lowercase hex), leaving the rest of res alone. GDB_ID_OK, or a negative
 * GDB_ID_E* with err for people (res's identity fields are then cleared). */
int gdb_identity_parse(const uint8_t *buf, size_t len, adapter_result *res, char *err, size_t err_len);

#endif
