/* SPDX-License-Identifier: Apache-2.0 */
/* spool_fixture.h - the cmocka fixture the spool's unit tests share: a
 * fresh temporary directory per test (tmpdir.h; removed with everything in
 * it) holding the spool's path, setup_open() that opens the spool there too,
 * open_ok() that fails the test with the spool's own error, and
 * append_batch() and append_sized() that commit events with payloads
 * derived from seq. */
#ifndef LINEAGENT_TEST_SPOOL_FIXTURE_H
#define LINEAGENT_TEST_SPOOL_FIXTURE_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "spool.h"
#include "tmpdir.h"

typedef struct fixture {
    tmpdir tmp;
    const char *dir; /* tmp.path */
    char path[128];  /* <dir>/spool.db */
    spool *sp;       /* opened there by setup_open; NULL after setup */
} fixture;

static inline int setup(void **state)
{
    fixture *f = calloc(1, sizeof *f);
    if (!f) return -1;
    if (tmpdir_make(&f->tmp, "test_spool") != 0) {
        free(f);
        return -1;
    }
    f->dir = f->tmp.path;
    snprintf(f->path, sizeof f->path, "%s/spool.db", f->dir);
    *state = f;
    return 0;
}

/* Closes the spool setup_open opened, if any, and removes the directory. */
static inline int teardown(void **state)
{
    fixture *f = *state;
    if (f->sp) spool_close(f->sp);
    int rc = tmpdir_remove(&f->tmp);
    free(f);
    return rc;
}

/* setup, then the spool at path opened with default options into f->sp. */
static inline int setup_open(void **state)
{
    if (setup(state) != 0) return -1;
    fixture *f = *state;
    char err[256];
    if (spool_open(&f->sp, f->path, NULL, err, sizeof err) == 0) return 0;
    teardown(state);
    return -1;
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
