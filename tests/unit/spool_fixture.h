/* spool_fixture.h - the cmocka fixture the spool's unit tests share: a
 * fresh temporary directory per test (removed with everything in it),
 * open_ok() that fails the test with the spool's own error, and
 * append_batch() that commits n events with payloads derived from seq. */
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

/* Payload derived from seq, so any mix-up shows; seq % 300 == 0 is empty. */
static inline size_t make_payload(uint64_t seq, uint8_t *buf)
{
    size_t len = (size_t)(seq % 300);
    for (size_t j = 0; j < len; j++) buf[j] = (uint8_t)(seq * 31 + j);
    return len;
}

/* Appends n events in one transaction; returns the first seq. */
static inline uint64_t append_batch(spool *sp, int n, const char *tag)
{
    uint8_t payload[300];
    char id[64];
    uint64_t first = 0;
    assert_int_equal(spool_begin(sp), 0);
    for (int i = 0; i < n; i++) {
        uint64_t seq = spool_next_seq(sp);
        if (i == 0) first = seq;
        snprintf(id, sizeof id, "%s-%llu", tag, (unsigned long long)seq);
        spool_event ev = {.seq = seq, .event_id = id, .key = "LOT-1", .type = "unit_written",
                          .time_ms = 1000 + (int64_t)seq, .payload = payload,
                          .len = make_payload(seq, payload)};
        if (spool_append_event(sp, &ev) != 0) fail_msg("append: %s", spool_errmsg(sp));
    }
    assert_int_equal(spool_commit(sp), 0);
    return first;
}

#endif
