/* SPDX-License-Identifier: Apache-2.0 */
/* exec_proc.h - one run of an external program for the exec adapter: started
 * with posix_spawn in its own process group (never through a shell), stdout
 * collected up to a bound, stderr logged line by line (bounded too), an
 * optional standard input the agent writes to, and a deadline after which
 * the whole group is killed. A run may pause at a stdout line the caller
 * waits for (the CSR of a board-made key) and resume later with more input. */
#ifndef LINEAGENT_EXEC_PROC_H
#define LINEAGENT_EXEC_PROC_H

#include <stddef.h>

#include "adapter.h"

typedef struct exec_proc exec_proc;

typedef struct exec_proc_opts {
    const char *station, *step; /* for log lines */
    long timeout_ms;            /* per exec_proc_pump call */
    size_t max_output;          /* stdout kept; the rest is counted and dropped */
    int with_stdin;             /* stdin is the agent's (exec_proc_pump's input); else /dev/null */
} exec_proc_opts;

/* Starts argv[0] (an absolute path) with argv. NULL with err on failure
 * (no memory for the output buffer included: the program is killed). */
exec_proc *exec_proc_start(char *const argv[], const exec_proc_opts *o, char *err, size_t err_len);

/* Called for each complete stdout line while pumping; nonzero pauses the run. */
typedef int (*exec_proc_line_fn)(const char *line, void *ud);

/* Writes in (len bytes; may be NULL) to the program's standard input and
 * closes it once written, while collecting its output, until the program
 * closes stdout and stderr (0), the deadline passes (-1: the group is killed),
 * or until a line makes stop return nonzero (1: the run is paused, stdin
 * still open when in is NULL). */
int exec_proc_pump(exec_proc *p, const char *in, size_t len, exec_proc_line_fn stop, void *ud);

/* Ends the run: after exec_proc_pump returned 0 (both pipes closed), waits
 * for the program's exit until that pump's deadline (a program that
 * redirected its output runs on); then kills what is left of its process
 * group, reaps the program and judges it into r (passed, or timeout / exit_signal / exit_status with
 * its last stderr line). Hands back stdout (NUL-terminated, caller frees) and
 * frees p. */
void exec_proc_finish(exec_proc *p, adapter_result *r, char **out, size_t *out_len);

#endif
