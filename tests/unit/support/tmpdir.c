/* SPDX-License-Identifier: Apache-2.0 */
/* tmpdir.c - the unit tests' temporary directory (tmpdir.h): mkdtemp to
 * make it, nftw depth-first to remove it, no shell involved. */
#include "tmpdir.h"

#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>

int tmpdir_make(tmpdir *t, const char *tag)
{
    snprintf(t->path, sizeof t->path, "/tmp/%s.XXXXXX", tag);
    if (mkdtemp(t->path)) return 0;
    t->path[0] = 0;
    return -1;
}

static int remove_one(const char *path, const struct stat *st, int type, struct FTW *ftw)
{
    (void)st;
    (void)type;
    (void)ftw;
    return remove(path) == 0 ? 0 : -1;
}

int tmpdir_remove(tmpdir *t)
{
    if (!t->path[0]) return 0;
    /* FTW_DEPTH: a directory after its contents; FTW_PHYS: links not followed. */
    int rc = nftw(t->path, remove_one, 16, FTW_DEPTH | FTW_PHYS);
    t->path[0] = 0;
    return rc == 0 ? 0 : -1;
}

const char *tmpdir_file(const tmpdir *t, const char *name)
{
    static char buf[8][256];
    static int i;
    i = (i + 1) % 8;
    snprintf(buf[i], sizeof buf[i], "%s/%s", t->path, name);
    return buf[i];
}

const char *tmpdir_write(const tmpdir *t, const char *name, const char *text)
{
    const char *path = tmpdir_file(t, name);
    FILE *f = fopen(path, "w");
    if (!f) return NULL;
    int ok = fputs(text, f) >= 0;
    return fclose(f) == 0 && ok ? path : NULL;
}

const char *tmpdir_script(const tmpdir *t, const char *name, const char *body)
{
    char text[8192];
    if ((size_t)snprintf(text, sizeof text, "#!/bin/bash\n%s\n", body) >= sizeof text) return NULL;
    const char *path = tmpdir_write(t, name, text);
    return path && chmod(path, 0700) == 0 ? path : NULL;
}
