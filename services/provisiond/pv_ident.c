/* SPDX-License-Identifier: Apache-2.0 */
/* pv_ident.c - serial formatting, MAC arithmetic and device ids (pv_ident.h). */
#include "pv_ident.h"

#include <ctype.h>
#include <inttypes.h>
#include <openssl/sha.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Parses the placeholder starting after '{' at p; returns its length up to
 * and including '}', or 0. kind: 'p' product, 'f' factory, 'y' yy, 'Y' yyyy,
 * 'w' ww, 's' seq (width in *width, 0 = no padding). */
static size_t pv_placeholder(const char *p, char *kind, int *width)
{
    static const struct { const char *name; char kind; } names[] = {
        {"product}", 'p'}, {"factory}", 'f'}, {"yyyy}", 'Y'}, {"yy}", 'y'}, {"ww}", 'w'}, {"seq}", 's'}};
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
        size_t l = strlen(names[i].name);
        if (strncmp(p, names[i].name, l) == 0) {
            *kind = names[i].kind;
            *width = 0;
            return l;
        }
    }
    if (strncmp(p, "seq:0", 5) == 0 && isdigit((unsigned char)p[5])) {
        char *end;
        long w = strtol(p + 5, &end, 10);
        if (*end == '}' && w >= 1 && w <= 12) {
            *kind = 's';
            *width = (int)w;
            return (size_t)(end - p) + 1;
        }
    }
    return 0;
}

int pv_serial_format_check(const char *fmt, char *err, size_t err_len)
{
    int seqs = 0;
    for (const char *p = fmt; *p; p++) {
        if (*p == '}') return snprintf(err, err_len, "'}' without its '{'"), -1;
        if (*p != '{') {
            if (!isalnum((unsigned char)*p) && !strchr("-_./:", *p))
                return snprintf(err, err_len, "character '%c' not allowed", *p), -1;
            continue;
        }
        char kind;
        int width;
        size_t l = pv_placeholder(p + 1, &kind, &width);
        if (!l)
            return snprintf(err, err_len,
                            "unknown placeholder at \"%.16s\" (known: {product} {factory} "
                            "{yy} {yyyy} {ww} {seq} {seq:0N})", p), -1;
        if (kind == 's') seqs++;
        p += l;
    }
    if (seqs != 1) return snprintf(err, err_len, "must contain {seq} exactly once"), -1;
    return 0;
}

/* ISO 8601 week number and its year (which differs from the calendar year
 * around new year). */
static void pv_iso_week(time_t t, int *year, int *week)
{
    struct tm tm;
    gmtime_r(&t, &tm);
    char buf[8];
    strftime(buf, sizeof buf, "%V", &tm);
    *week = atoi(buf);
    strftime(buf, sizeof buf, "%G", &tm);
    *year = atoi(buf);
}

int pv_serial_format(char *out, size_t n, const char *fmt, const char *product, const char *factory,
                     uint64_t seq, time_t t)
{
    int year, week;
    pv_iso_week(t, &year, &week);
    size_t o = 0;
    for (const char *p = fmt; *p; p++) {
        char piece[64];
        const char *add = piece;
        if (*p != '{') {
            piece[0] = *p;
            piece[1] = 0;
        } else {
            char kind;
            int width;
            size_t l = pv_placeholder(p + 1, &kind, &width);
            if (!l) return -1;
            p += l;
            switch (kind) {
            case 'p': add = product; break;
            case 'f': add = factory ? factory : ""; break;
            case 'Y': snprintf(piece, sizeof piece, "%04d", year); break;
            case 'y': snprintf(piece, sizeof piece, "%02d", year % 100); break;
            case 'w': snprintf(piece, sizeof piece, "%02d", week); break;
            default: snprintf(piece, sizeof piece, "%0*" PRIu64, width, seq); break;
            }
        }
        size_t l = strlen(add);
        if (o + l >= n) return -1;
        memcpy(out + o, add, l);
        o += l;
    }
    out[o] = 0;
    return 0;
}

int pv_mac_parse(const char *s, uint64_t *mac)
{
    uint64_t v = 0;
    for (int i = 0; i < 6; i++) {
        if (!isxdigit((unsigned char)s[0]) || !isxdigit((unsigned char)s[1])) return -1;
        char h[3] = {s[0], s[1], 0};
        v = v << 8 | (uint64_t)strtoul(h, NULL, 16);
        s += 2;
        if (i < 5) {
            if (*s != ':' && *s != '-') return -1;
            s++;
        }
    }
    if (*s) return -1;
    *mac = v;
    return 0;
}

void pv_mac_format(uint64_t mac, char out[18])
{
    snprintf(out, 18, "%02x:%02x:%02x:%02x:%02x:%02x", (unsigned)(mac >> 40 & 0xff),
             (unsigned)(mac >> 32 & 0xff), (unsigned)(mac >> 24 & 0xff), (unsigned)(mac >> 16 & 0xff),
             (unsigned)(mac >> 8 & 0xff), (unsigned)(mac & 0xff));
}

int pv_mac_alloc(uint64_t *next, uint64_t first, uint64_t last, int n, uint64_t *first_out)
{
    if (n < 0 || last > PV_MAC_MAX || first > last) return -1;
    if (*next < first) *next = first;
    if (n == 0) {
        *first_out = *next;
        return 0;
    }
    /* Compare without computing next + n - 1, which could pass last. */
    if (*next > last || last - *next < (uint64_t)(n - 1)) return -1;
    *first_out = *next;
    *next += (uint64_t)n;
    return 0;
}

void pv_device_id(char out[17], const char *factory, const char *product, uint64_t seq)
{
    char in[512];
    int l = snprintf(in, sizeof in, "%s/%s/%" PRIu64, factory ? factory : "", product, seq);
    unsigned char d[SHA256_DIGEST_LENGTH];
    SHA256((const unsigned char *)in, (size_t)(l < (int)sizeof in ? l : (int)sizeof in - 1), d);
    for (int i = 0; i < 8; i++) snprintf(out + 2 * i, 3, "%02X", d[i]);
}
