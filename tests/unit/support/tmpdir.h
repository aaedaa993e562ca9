/* SPDX-License-Identifier: Apache-2.0 */
/* tmpdir.h - a private temporary directory for a unit test: made with
 * mkdtemp (mode 0700), removed with everything in it by nftw without a
 * shell, and helpers that name or write files in it. */
#ifndef LINEAGENT_TEST_TMPDIR_H
#define LINEAGENT_TEST_TMPDIR_H

typedef struct tmpdir {
    char path[64]; /* "/tmp/<tag>.XXXXXX" once made; "" before and after */
} tmpdir;

/* Makes /tmp/<tag>.XXXXXX. 0, or -1 with errno set. */
int tmpdir_make(tmpdir *t, const char *tag);

/* Removes the directory and everything below it, symbolic links as links
 * (never what they point to). 0, or -1 when anything could not be removed. */
int tmpdir_remove(tmpdir *t);

/* "<dir>/<name>" in one of eight static buffers used in turn: valid until
 * the eighth call after it. */
const char *tmpdir_file(const tmpdir *t, const char *name);

/* Writes text to <dir>/<name> (mode 0600 under the directory's 0700). Its
 * path (as tmpdir_file), or NULL. */
const char *tmpdir_write(const tmpdir *t, const char *name, const char *text);

/* Writes "#!/bin/bash\n<body>\n" to <dir>/<name> with mode 0700: a program
 * for the exec adapter to run. Its path (as tmpdir_file), or NULL. */
const char *tmpdir_script(const tmpdir *t, const char *name, const char *body);

#endif
