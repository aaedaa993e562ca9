/* SPDX-License-Identifier: Apache-2.0 */
/* exec_proc.c - one run of an external program (exec_proc.h). Standard input
 * is one end of a socket pair, written with MSG_NOSIGNAL: a program that
 * exits without reading it costs an EPIPE, never a SIGPIPE in the agent. */
#include "exec_proc.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "clock.h"
#include "log.h"

extern char **environ;

#define EXEC_STDERR_LINES 200 /* per run; the rest are counted, not logged */
#define EXEC_STDERR_LINE 240

struct exec_proc {
    exec_proc_opts o;
    const char *prog;
    pid_t pid;
    int in, out, err; /* the agent's ends; -1 once closed */
    char *buf;        /* stdout, max_output + 1 */
    size_t olen, dropped, scan;
    char eline[EXEC_STDERR_LINE + 1], last_err[EXEC_STDERR_LINE + 1];
    size_t elen;
    int elines, edropped, timed_out;
    int64_t deadline, kill_at; /* of the last exec_proc_pump */
    int at_eof;                /* it returned 0: stdout and stderr closed */
};

/* Kills the group and reaps a program that is not to run (a failed start). */
static void proc_kill_reap(pid_t pid)
{
    kill(-pid, SIGKILL);
    while (waitpid(pid, NULL, 0) < 0 && errno == EINTR) {
    }
}

exec_proc *exec_proc_start(char *const argv[], const exec_proc_opts *o, char *err, size_t err_len)
{
    int outp[2] = {-1, -1}, errp[2] = {-1, -1}, inp[2] = {-1, -1};
    pid_t pid = -1;
    posix_spawn_file_actions_t fa;
    posix_spawnattr_t at;
    posix_spawn_file_actions_init(&fa);
    posix_spawnattr_init(&at);
    int rc = pipe2(outp, O_CLOEXEC) || pipe2(errp, O_CLOEXEC) ||
                     (o->with_stdin && socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, inp))
                 ? errno
                 : 0;
    if (!rc) {
        if (o->with_stdin) posix_spawn_file_actions_adddup2(&fa, inp[1], 0);
        else posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
        posix_spawn_file_actions_adddup2(&fa, outp[1], 1);
        posix_spawn_file_actions_adddup2(&fa, errp[1], 2);
        /* The child's own process group, so the timeout kills whatever it started. */
        sigset_t none, all;
        sigemptyset(&none);
        sigfillset(&all);
        posix_spawnattr_setpgroup(&at, 0);
        posix_spawnattr_setsigmask(&at, &none);
        posix_spawnattr_setsigdefault(&at, &all);
        posix_spawnattr_setflags(&at, POSIX_SPAWN_SETPGROUP | POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF);
        rc = posix_spawn(&pid, argv[0], &fa, &at, argv, environ);
    }
    posix_spawn_file_actions_destroy(&fa);
    posix_spawnattr_destroy(&at);
    int *child_ends[] = {&outp[1], &errp[1], &inp[1]};
    for (size_t i = 0; i < 3; i++)
        if (*child_ends[i] >= 0) close(*child_ends[i]);
    if (rc) {
        snprintf(err, err_len, "cannot start %s: %s", argv[0], strerror(rc));
        int *ours[] = {&outp[0], &errp[0], &inp[0]};
        for (size_t i = 0; i < 3; i++)
            if (*ours[i] >= 0) close(*ours[i]);
        return NULL;
    }
    exec_proc *p = calloc(1, sizeof *p);
    char *buf = malloc(o->max_output + 1);
    if (!p || !buf) {
        proc_kill_reap(pid);
        int *ours[] = {&outp[0], &errp[0], &inp[0]};
        for (size_t i = 0; i < 3; i++)
            if (*ours[i] >= 0) close(*ours[i]);
        snprintf(err, err_len, "out of memory for %zu bytes of %s's output", o->max_output, argv[0]);
        free(p);
        free(buf);
        return NULL;
    }
    p->o = *o;
    p->prog = argv[0];
    p->pid = pid;
    p->in = inp[0];
    p->out = outp[0];
    p->err = errp[0];
    p->buf = buf;
    return p;
}

static void proc_stderr(exec_proc *p, const char *buf, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        if (buf[i] != '\n' && p->elen < EXEC_STDERR_LINE) {
            p->eline[p->elen++] = buf[i] >= 0x20 && buf[i] < 0x7f ? buf[i] : '?';
            continue;
        }
        if (buf[i] != '\n') continue; /* long line: the rest is cut */
        p->eline[p->elen] = 0;
        memcpy(p->last_err, p->eline, p->elen + 1);
        if (p->elines++ < EXEC_STDERR_LINES) log_info("station %s %s: %s", p->o.station, p->o.step, p->eline);
        else p->edropped++;
        p->elen = 0;
    }
}

/* Offers each complete stdout line not offered yet to stop; 1 when it paused. */
static int proc_lines(exec_proc *p, exec_proc_line_fn stop, void *ud)
{
    char *nl;
    while (stop && p->scan < p->olen && (nl = memchr(p->buf + p->scan, '\n', p->olen - p->scan))) {
        *nl = 0;
        int paused = stop(p->buf + p->scan, ud);
        *nl = '\n';
        p->scan = (size_t)(nl - p->buf) + 1;
        if (paused) return 1;
    }
    return 0;
}

int exec_proc_pump(exec_proc *p, const char *in, size_t len, exec_proc_line_fn stop, void *ud)
{
    size_t sent = 0;
    if (in && len == 0 && p->in >= 0) {
        close(p->in);
        p->in = -1;
    }
    p->deadline = clock_mono_ms() + p->o.timeout_ms;
    p->kill_at = 0;
    p->at_eof = 0;
    for (;;) {
        if (proc_lines(p, stop, ud)) return 1;
        if (p->out < 0 && p->err < 0) return p->at_eof = 1, 0;
        int64_t now = clock_mono_ms();
        if (!p->timed_out && now >= p->deadline) {
            p->timed_out = 1;
            kill(-p->pid, SIGTERM);
            p->kill_at = now + 1000; /* a grace second to clean up, then no more */
        }
        if (p->timed_out && now >= p->kill_at) {
            kill(-p->pid, SIGKILL);
            return -1;
        }
        struct pollfd pfd[3] = {{p->out, POLLIN, 0}, {p->err, POLLIN, 0}, {in ? p->in : -1, POLLOUT, 0}};
        int pr = poll(pfd, 3, (int)((p->timed_out ? p->kill_at : p->deadline) - now));
        if (pr < 0 && errno != EINTR) return -1;
        if (pr <= 0) continue;
        if (pfd[2].fd >= 0 && pfd[2].revents) {
            ssize_t n = send(p->in, in + sent, len - sent, MSG_NOSIGNAL | MSG_DONTWAIT);
            if (n > 0) sent += (size_t)n;
            /* All of it, or a program that stopped reading: either way, EOF. */
            if (sent == len || (n < 0 && errno != EAGAIN && errno != EINTR)) {
                close(p->in);
                p->in = -1;
            }
        }
        for (int k = 0; k < 2; k++) {
            int *fd = k == 0 ? &p->out : &p->err;
            if (pfd[k].fd < 0 || !pfd[k].revents) continue;
            char buf[4096];
            ssize_t n = read(*fd, buf, sizeof buf);
            if (n < 0 && errno == EINTR) continue;
            if (n <= 0) {
                close(*fd);
                *fd = -1;
            } else if (k == 1) {
                proc_stderr(p, buf, (size_t)n);
            } else {
                size_t room = p->o.max_output - p->olen, take = (size_t)n < room ? (size_t)n : room;
                memcpy(p->buf + p->olen, buf, take);
                p->olen += take;
                p->dropped += (size_t)n - take;
            }
        }
    }
}

void exec_proc_finish(exec_proc *p, adapter_result *r, char **out, size_t *out_len)
{
    int *fds[] = {&p->in, &p->out, &p->err};
    for (size_t i = 0; i < 3; i++)
        if (*fds[i] >= 0) close(*fds[i]);
    if (p->elen) {
        p->eline[p->elen] = 0;
        memcpy(p->last_err, p->eline, p->elen + 1);
        log_info("station %s %s: %s", p->o.station, p->o.step, p->eline);
    }
    if (p->edropped)
        log_warn("station %s %s: %d more stderr lines not logged", p->o.station, p->o.step, p->edropped);
    if (p->dropped)
        log_warn("station %s %s: stdout over %zu bytes; %zu bytes ignored", p->o.station, p->o.step,
                 p->o.max_output, p->dropped);
    /* Both pipes closed is not the end: a program that redirected its
     * output runs on, and gets until the same deadline to exit (TERM, then
     * KILL a second later). A run ended otherwise (paused, abandoned, or
     * killed at its deadline) is not waited for. */
    int status = 0, reaped = 0;
    while (p->at_eof) {
        int64_t now = clock_mono_ms();
        pid_t w = waitpid(p->pid, &status, WNOHANG);
        if (w == p->pid) reaped = 1;
        if (w == p->pid || (w < 0 && errno != EINTR)) break;
        if (w < 0) continue;
        if (!p->timed_out && now >= p->deadline) {
            p->timed_out = 1;
            kill(-p->pid, SIGTERM);
            p->kill_at = now + 1000;
        } else if (p->timed_out && now >= p->kill_at) {
            kill(-p->pid, SIGKILL);
            break;
        } else {
            struct timespec ts = {0, 10 * 1000000L};
            nanosleep(&ts, NULL);
        }
    }
    /* Stragglers the program left in its group go too. */
    kill(-p->pid, SIGKILL);
    while (!reaped && waitpid(p->pid, &status, 0) < 0 && errno == EINTR) {
    }
    const char *sep = p->last_err[0] ? ": " : "";
    if (p->timed_out)
        adapter_fail(r, "timeout", "%s killed after %ld ms", p->prog, p->o.timeout_ms);
    else if (WIFSIGNALED(status))
        adapter_fail(r, "exit_signal", "%s killed by signal %d%s%.160s", p->prog, WTERMSIG(status), sep, p->last_err);
    else if (WEXITSTATUS(status) != 0)
        adapter_fail(r, "exit_status", "%s exited %d%s%.160s", p->prog, WEXITSTATUS(status), sep, p->last_err);
    else
        r->passed = 1;
    p->buf[p->olen] = 0;
    *out = p->buf;
    *out_len = p->olen;
    free(p);
}
