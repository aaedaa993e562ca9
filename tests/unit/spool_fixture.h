/* spool_fixture.h - the cmocka fixture the spool's unit tests share: a
 * fresh temporary directory per test (removed with everything in it), and
 * open_ok() that fails the test with the spool's own error. */
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

#endif
