/* spool_fixture.h - the cmocka fixture the spool's unit tests share: a
 * fresh temporary directory per test (removed with everything in it),
 * open_ok() that fails the test with the spool's own error, and
 * append_batch() and append_sized() that commit events with payloads
 * derived from seq. */
#ifndef LINEAGENT_TEST_SPOOL_FIXTURE_H
#define LINEAGENT_TEST_SPOOL_FIXTURE_H

#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "spool.h"

typedef struct fixture {
    char dir[64];
    char path[128];
} fixture;

static inline int setup(void **state)
{
    fixture *f = calloc(1, sizeof *f);
    if (!f) return -1;
    snprintf(f->dir, sizeof f->dir, "/tmp/test_spool.XXXXXX");
    if (!mkdtemp(f->dir)) {
        free(f);
        return -1;
    }
    snprintf(f->path, sizeof f->path, "%s/spool.db", f->dir);
    *state = f;
    return 0;
}

static inline int teardown(void **state)
{
    fixture *f = *state;
    DIR *d = opendir(f->dir);
    if (d) {
        struct dirent *e;
        char p[512];
        while ((e = readdir(d)))
            if (strcmp(e->d_name, ".") != 0 && strcmp(e->d_name, "..") != 0) {
                snprintf(p, sizeof p, "%s/%s", f->dir, e->d_name);
                unlink(p);
            }
        closedir(d);
    }
    rmdir(f->dir);
    free(f);
    return 0;
}

static inline spool *open_ok(const char *path, const spool_options *opts)
{
    spool *sp = NULL;
    char err[512] = "";
    int rc = spool_open(&sp, path, opts, err, sizeof err);
    if (rc != 0) fail_msg("spool_open(%s): %s", path, err);
    assert_non_null(sp);
    return sp;
}

/* len payload bytes derived from seq, so any mix-up shows. */
static inline void fill_payload(uint64_t seq, uint8_t *buf, size_t len)
{
    for (size_t j = 0; j < len; j++) buf[j] = (uint8_t)(seq * 31 + j);
}

/* A payload of seq % 300 bytes (seq % 300 == 0 is empty); its length. */
static inline size_t make_payload(uint64_t seq, uint8_t *buf)
{
    size_t len = (size_t)(seq % 300);
    fill_payload(seq, buf, len);
    return len;
}

/* Appends event seq inside the caller's transaction: id "tag-SEQ", key
 * LOT-1, type unit_written, time 1000 + seq. */
static inline void append_in_txn(spool *sp, uint64_t seq, const char *tag, const uint8_t *payload, size_t len)
{
    char id[64];
    snprintf(id, sizeof id, "%s-%llu", tag, (unsigned long long)seq);
    spool_event ev = {.seq = seq, .event_id = id, .key = "LOT-1", .type = "unit_written",
                      .time_ms = 1000 + (int64_t)seq, .payload = payload, .len = len};
    if (spool_append_event(sp, &ev) != 0) fail_msg("append: %s", spool_errmsg(sp));
}

/* Appends n events in one transaction; returns the first seq. */
static inline uint64_t append_batch(spool *sp, int n, const char *tag)
{
    uint8_t payload[300];
    uint64_t first = 0;
    assert_int_equal(spool_begin(sp), 0);
    for (int i = 0; i < n; i++) {
        uint64_t seq = spool_next_seq(sp);
        if (i == 0) first = seq;
        append_in_txn(sp, seq, tag, payload, make_payload(seq, payload));
    }
    assert_int_equal(spool_commit(sp), 0);
    return first;
}

/* Appends one event of len payload bytes (fill_payload) in a transaction
 * of its own; returns its seq. */
static inline uint64_t append_sized(spool *sp, const char *tag, size_t len)
{
    uint8_t *payload = malloc(len ? len : 1);
    assert_non_null(payload);
    assert_int_equal(spool_begin(sp), 0);
    uint64_t seq = spool_next_seq(sp);
    fill_payload(seq, payload, len);
    append_in_txn(sp, seq, tag, payload, len);
    assert_int_equal(spool_commit(sp), 0);
    free(payload);
    return seq;
}

#endif
