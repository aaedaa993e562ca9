/* SPDX-License-Identifier: Apache-2.0 */
/* gdb_identity.c - encoding and parsing the gdb adapter's identity record
 * (gdb_identity.h; layout in adapters/README.md). */
#include "gdb_identity.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <zlib.h>

static uint32_t gid_crc(const uint8_t *p, size_t n) { return (uint32_t)crc32(0L, p, (uInt)n); }

static void gid_put16(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)v;
    p[1] = (uint8_t)(v >> 8);
}

static int gid_hexval(int c)
{
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

/* "aa:bb:cc:dd:ee:ff" into 6 bytes; 0 or -1. */
static int gid_mac(const char *s, uint8_t out[6])
{
    for (int i = 0; i < 6; i++) {
        int h = gid_hexval(s[3 * i]), l = h < 0 ? -1 : gid_hexval(s[3 * i + 1]);
        if (l < 0 || (i < 5 && s[3 * i + 2] != ':') || (i == 5 && s[17])) return -1;
        out[i] = (uint8_t)(h << 4 | l);
    }
    return 0;
}

typedef struct gid_buf {
    uint8_t *p;
    size_t n, cap;
} gid_buf;

static int gid_tlv(gid_buf *b, int type, const void *v, size_t n)
{
    if (n > 255 || b->n + 2 + n + 4 > b->cap) return -1;
    b->p[b->n++] = (uint8_t)type;
    b->p[b->n++] = (uint8_t)n;
    memcpy(b->p + b->n, v, n);
    b->n += n;
    return 0;
}

int gdb_identity_encode(const adapter_identity *id, uint8_t *out, size_t cap, size_t *len, char *err,
                        size_t err_len)
{
    if (cap > GDB_IDENTITY_MAX) cap = GDB_IDENTITY_MAX;
    gid_buf b = {out, GDB_IDENTITY_HEADER, cap};
    if (cap < GDB_IDENTITY_MIN) goto toolong;
    size_t sl = id->serial ? strlen(id->serial) : 0, dl = id->device_id ? strlen(id->device_id) : 0;
    if (!sl || sl > 127 || !dl || dl > 39) {
        snprintf(err, err_len, "identity record: serial (1..127) or device id (1..39 bytes) out of range");
        return -1;
    }
    if (gid_tlv(&b, GDB_ID_T_SERIAL, id->serial, sl) || gid_tlv(&b, GDB_ID_T_DEVICE_ID, id->device_id, dl))
        goto toolong;
    if (id->n_macs < 0 || id->n_macs > ADAPTER_MAX_MACS) {
        snprintf(err, err_len, "identity record: %d MACs, at most %d", id->n_macs, ADAPTER_MAX_MACS);
        return -1;
    }
    for (int i = 0; i < id->n_macs; i++) {
        uint8_t m[6];
        if (gid_mac(id->macs[i], m) != 0) {
            snprintf(err, err_len, "identity record: MAC \"%.17s\" is not aa:bb:cc:dd:ee:ff", id->macs[i]);
            return -1;
        }
        if (gid_tlv(&b, GDB_ID_T_MAC, m, 6)) goto toolong;
    }
    uint8_t sha[32];
    for (int i = 0; i < 32; i++) {
        int h = id->cert_sha256 ? gid_hexval(id->cert_sha256[2 * i]) : -1;
        int l = h < 0 ? -1 : gid_hexval(id->cert_sha256[2 * i + 1]);
        if (l < 0) {
            snprintf(err, err_len, "identity record: certificate SHA-256 is not 64 hex digits");
            return -1;
        }
        sha[i] = (uint8_t)(h << 4 | l);
    }
    if (gid_tlv(&b, GDB_ID_T_CERT_SHA256, sha, 32)) goto toolong;
    if (id->factory_code && id->factory_code[0] &&
        gid_tlv(&b, GDB_ID_T_FACTORY_CODE, id->factory_code, strlen(id->factory_code)))
        goto toolong;
    size_t total = b.n + 4;
    memcpy(out, GDB_IDENTITY_MAGIC, 4);
    out[4] = GDB_IDENTITY_VERSION;
    out[5] = 0;
    gid_put16(out + 6, (uint32_t)total);
    uint32_t crc = gid_crc(out, b.n);
    gid_put16(out + b.n, crc & 0xffff);
    gid_put16(out + b.n + 2, crc >> 16);
    *len = total;
    return 0;
toolong:
    snprintf(err, err_len, "identity record longer than %zu bytes", cap);
    return -1;
}

long gdb_identity_total(const uint8_t *hdr, size_t len)
{
    if (len < GDB_IDENTITY_HEADER) return GDB_ID_ETRUNCATED;
    if (memcmp(hdr, GDB_IDENTITY_MAGIC, 4) != 0) return GDB_ID_EMAGIC;
    if (hdr[4] != GDB_IDENTITY_VERSION) return GDB_ID_EVERSION;
    long total = (long)hdr[6] | (long)hdr[7] << 8;
    if (total < GDB_IDENTITY_MIN || total > GDB_IDENTITY_MAX) return GDB_ID_ELENGTH;
    return total;
}

static int gid_fail(adapter_result *res, int code, char *err, size_t err_len, const char *fmt, ...)
    __attribute__((format(printf, 5, 6)));
static int gid_fail(adapter_result *res, int code, char *err, size_t err_len, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, err_len, fmt, ap);
    va_end(ap);
    res->serial[0] = res->device_id[0] = res->cert_sha256[0] = 0;
    res->n_macs = 0;
    return code;
}

/* A TLV's value as a string field: printable ASCII, 1..cap-1 bytes. */
static int gid_text(char *dst, size_t cap, const uint8_t *v, size_t n)
{
    if (!n || n >= cap) return -1;
    for (size_t i = 0; i < n; i++)
        if (v[i] < 0x20 || v[i] > 0x7e) return -1;
    memcpy(dst, v, n);
    dst[n] = 0;
    return 0;
}

int gdb_identity_parse(const uint8_t *buf, size_t len, adapter_result *res, char *err, size_t err_len)
{
    static const char *const why[] = {"", "truncated", "bad magic (not an identity record)", "unknown version",
                                      "total length out of range"};
    long total = gdb_identity_total(buf, len);
    if (total == GDB_ID_EVERSION)
        return gid_fail(res, GDB_ID_EVERSION, err, err_len, "identity record version %u, this agent reads %d",
                        buf[4], GDB_IDENTITY_VERSION);
    if (total < 0) return gid_fail(res, (int)total, err, err_len, "identity record: %s", why[-total]);
    if ((size_t)total > len)
        return gid_fail(res, GDB_ID_ETRUNCATED, err, err_len, "identity record truncated: %zu of %ld bytes", len,
                        total);
    size_t end = (size_t)total - 4;
    uint32_t want = (uint32_t)buf[end] | (uint32_t)buf[end + 1] << 8 | (uint32_t)buf[end + 2] << 16 |
                    (uint32_t)buf[end + 3] << 24;
    uint32_t got = gid_crc(buf, end);
    if (got != want)
        return gid_fail(res, GDB_ID_ECRC, err, err_len, "identity record CRC-32 %08x, computed %08x", want, got);
    res->serial[0] = res->device_id[0] = res->cert_sha256[0] = 0;
    res->n_macs = 0;
    for (size_t p = GDB_IDENTITY_HEADER; p < end;) {
        if (p + 2 > end || p + 2 + buf[p + 1] > end)
            return gid_fail(res, GDB_ID_EFIELD, err, err_len, "identity record: field at %zu overruns", p);
        int type = buf[p];
        size_t n = buf[p + 1];
        const uint8_t *v = buf + p + 2;
        int bad = 0;
        switch (type) {
        case GDB_ID_T_SERIAL: bad = res->serial[0] || gid_text(res->serial, sizeof res->serial, v, n); break;
        case GDB_ID_T_DEVICE_ID:
            bad = res->device_id[0] || gid_text(res->device_id, sizeof res->device_id, v, n);
            break;
        case GDB_ID_T_MAC:
            bad = n != 6 || res->n_macs >= ADAPTER_MAX_MACS;
            if (!bad)
                snprintf(res->macs[res->n_macs++], sizeof res->macs[0], "%02x:%02x:%02x:%02x:%02x:%02x", v[0], v[1],
                         v[2], v[3], v[4], v[5]);
            break;
        case GDB_ID_T_CERT_SHA256:
            bad = n != 32 || res->cert_sha256[0];
            for (size_t i = 0; !bad && i < 32; i++) snprintf(res->cert_sha256 + 2 * i, 3, "%02x", v[i]);
            break;
        default: bad = type < 0x80; /* optional types are skipped */
        }
        if (bad)
            return gid_fail(res, GDB_ID_EFIELD, err, err_len, "identity record: field type %d at %zu is bad, "
                            "repeated or unknown", type, p);
        p += 2 + n;
    }
    if (!res->serial[0] || !res->device_id[0] || !res->cert_sha256[0])
        return gid_fail(res, GDB_ID_EFIELD, err, err_len, "identity record lacks its serial, device id or "
                        "certificate SHA-256");
    return GDB_ID_OK;
}
