/* adapter_exec.c - a station that runs an external program per step: vendor
 * programmers (openocd, STM32_Programmer_CLI, nrfjprog, esptool) and FCT
 * programs. The program is started with posix_spawn and an argv built from a
 * template, one placeholder substitution per argument and never a shell, so
 * a board id or path can never become a command. It runs in its own process
 * group, which is killed at the timeout; its exit status decides pass/fail,
 * its stdout (bounded) is parsed for measurements, and its stderr goes to
 * the log line by line (bounded too), never into memory without limit.
 *
 * Stdout, one JSON object per line (other lines are ignored):
 *   {"name":"vbus","value":5.02,"unit":"V"}          a measurement
 *     (optional "low"/"high": the station's own limits, used only when the
 *     order gives none)
 *   {"readback_sha256":"<hex>"}                        VERIFY: the digest read back
 *   {"lock_verified":true}                             LOCK: the lock was checked
 *   {"offset":..,"gain":..}                            CALIBRATE: coefficients
 *   an OpenHTF JSON test record (one line, or the whole of stdout), whose
 *   phases' measurements become measurements with limits from validators
 *   such as "4.75 <= x <= 5.25". */
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <math.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "adapter.h"
#include "adapter_exec.h"
#include "clock.h"
#include "log.h"

extern char **environ;

#define EXEC_MAX_ARGS 64
#define EXEC_ARG_MAX 1024
#define EXEC_STDERR_LINES 200 /* per run; the rest are counted, not logged */
#define EXEC_STDERR_LINE 240

enum { ST_WRITE, ST_VERIFY, ST_PROVISION, ST_TEST, ST_CALIBRATE, ST_LOCK, ST_N };
static const char *const exec_step_names[ST_N] = {"write", "verify", "provision", "test", "calibrate", "lock"};

typedef struct exec_state {
    char station[ADAPTER_ID_MAX];
    char *program[ST_N];  /* per step; NULL = exec.program */
    char *args[ST_N];     /* per step; NULL = exec.args */
    char *def_program, *def_args;
    long timeout_ms;
    size_t max_output;
    char dir[64];         /* private directory for the image file */
    char image_sha[65];   /* the image currently in dir */
    char image_path[128];
    char cal_offset[32], cal_gain[32]; /* {offset} {gain} while writing calibration */
    const char *step_name;             /* {step} override (calibrate_write) */
    char site[12];                     /* {site}: the fixture site, 0-based */
} exec_state;

/* A step's own program and argument template, overriding program/args. */
#define EXEC_STEP_KEYS(step, i)                                                                               \
    {step ".program", CONF_STRING, NULL, CONF_AT(exec_state, program[i]), .desc = "the " step " step's own program"}, \
    {step ".args", CONF_STRING, NULL, CONF_AT(exec_state, args[i]),                                           \
     .desc = "the " step " step's argument template (default: none)"}

static const conf_key exec_keys[] = {
    {"program", CONF_STRING, NULL, CONF_AT(exec_state, def_program),
     .desc = "absolute path of the program run for every step without its own"},
    {"args", CONF_STRING, "{step} {image}", CONF_AT(exec_state, def_args),
     .desc = "argument template, split on blanks; placeholders {step} {image} {board_id} {serial} {lot_id} "
             "{version} {sha256} {site}, and {offset} {gain} for calibrate_write"},
    {"timeout_ms", CONF_INT, "60000", 100, 86400000, CONF_AT(exec_state, timeout_ms),
     .desc = "the whole run; then SIGTERM to the process group, SIGKILL a second later"},
    {"max_output", CONF_SIZE, "64K", 1024, 64LL << 20, CONF_AT(exec_state, max_output),
     .desc = "stdout bytes kept for parsing (stderr goes to the log, at most 200 lines a run)"},
    EXEC_STEP_KEYS("write", ST_WRITE),
    EXEC_STEP_KEYS("verify", ST_VERIFY),
    EXEC_STEP_KEYS("provision", ST_PROVISION),
    EXEC_STEP_KEYS("test", ST_TEST),
    EXEC_STEP_KEYS("calibrate", ST_CALIBRATE),
    EXEC_STEP_KEYS("lock", ST_LOCK),
    {0}};

extern const adapter adapter_exec;

static void exec_close(void *state)
{
    exec_state *s = state;
    if (!s) return;
    if (s->image_path[0]) unlink(s->image_path);
    if (s->dir[0]) rmdir(s->dir);
    conf_free(exec_keys, s);
    free(s);
}

static int exec_open(void **state, const station_config *st, char *err, size_t err_len)
{
    exec_state *s = calloc(1, sizeof *s);
    if (adapter_conf_load(&adapter_exec, st, s, NULL, err, err_len) != 0) {
        free(s);
        return -1;
    }
    snprintf(s->station, sizeof s->station, "%s", st->name);
    snprintf(s->site, sizeof s->site, "%u", st->site);
    int any = s->def_program != NULL;
    for (int i = 0; i < ST_N; i++) {
        const char *prog = s->program[i] ? s->program[i] : s->def_program;
        if (s->program[i]) any = 1;
        /* An absolute path: no PATH search, so what runs is what was configured. */
        if (prog && prog[0] != '/') {
            snprintf(err, err_len, "[station %s] exec program \"%s\" must be an absolute path", st->name, prog);
            exec_close(s);
            return -1;
        }
        if (prog && (st->steps_mask & (1u << (i + 1))) && access(prog, X_OK) != 0) {
            snprintf(err, err_len, "[station %s] exec program %s is not executable: %s", st->name, prog,
                     strerror(errno));
            exec_close(s);
            return -1;
        }
        if (!prog && (st->steps_mask & (1u << (i + 1)))) {
            snprintf(err, err_len, "[station %s] no exec.program (or exec.%s.program) for step %s", st->name,
                     exec_step_names[i], exec_step_names[i]);
            exec_close(s);
            return -1;
        }
    }
    if (!any) {
        snprintf(err, err_len, "[station %s] exec.program is required", st->name);
        exec_close(s);
        return -1;
    }
    *state = s;
    return 0;
}

static int exec_load_board(void *state, const char *lot_id, uint32_t idx, char *board_id, size_t len)
{
    snprintf(board_id, len, "%s-B%05u", lot_id, idx + 1);
    return 0;
}

/* The release image as a file the program can read, written once per release. */
static int exec_image_file(exec_state *s, const adapter_image *img, char *err, size_t err_len)
{
    if (!img) return 0;
    if (strcmp(s->image_sha, img->sha256) == 0) return 0;
    if (!s->dir[0]) {
        const char *tmp = getenv("TMPDIR");
        snprintf(s->dir, sizeof s->dir, "%.40s/lineagent-exec-XXXXXX", tmp && *tmp && strlen(tmp) < 40 ? tmp : "/tmp");
        if (!mkdtemp(s->dir)) {
            snprintf(err, err_len, "cannot create a directory for the image: %s", strerror(errno));
            s->dir[0] = 0;
            return -1;
        }
    }
    if (s->image_path[0]) unlink(s->image_path);
    s->image_sha[0] = 0;
    snprintf(s->image_path, sizeof s->image_path, "%s/%.16s.bin", s->dir, img->sha256);
    int fd = open(s->image_path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    size_t off = 0;
    while (fd >= 0 && off < img->len) {
        ssize_t n = write(fd, img->data + off, img->len - off);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) break;
        off += (size_t)n;
    }
    int ok = fd >= 0 && off == img->len;
    if (fd >= 0 && close(fd) != 0) ok = 0;
    if (!ok) {
        snprintf(err, err_len, "cannot write the image to %s: %s", s->image_path, strerror(errno));
        unlink(s->image_path);
        s->image_path[0] = 0;
        return -1;
    }
    snprintf(s->image_sha, sizeof s->image_sha, "%s", img->sha256);
    return 0;
}

/* Substitutes the placeholders in one argument; -1 for an unknown one. */
static int exec_subst(const char *tok, const char *const vals[][2], char *out, size_t cap)
{
    size_t o = 0;
    for (const char *p = tok; *p;) {
        if (*p == '{') {
            const char *close = strchr(p, '}');
            int found = 0;
            for (int i = 0; close && vals[i][0]; i++) {
                size_t kl = strlen(vals[i][0]);
                if ((size_t)(close - p - 1) == kl && strncmp(p + 1, vals[i][0], kl) == 0) {
                    size_t vl = strlen(vals[i][1]);
                    if (o + vl >= cap) return -1;
                    memcpy(out + o, vals[i][1], vl);
                    o += vl;
                    p = close + 1;
                    found = 1;
                    break;
                }
            }
            if (!found) return -1;
            continue;
        }
        if (o + 1 >= cap) return -1;
        out[o++] = *p++;
    }
    out[o] = 0;
    return 0;
}

static void exec_add_measurement(adapter_result *r, const char *name, double value, double low, double high,
                                 const char *unit)
{
    if (r->n_measurements >= ADAPTER_MAX_MEASUREMENTS) {
        log_warn("exec: more than %d measurements; %s dropped", ADAPTER_MAX_MEASUREMENTS, name);
        return;
    }
    adapter_measurement *m = &r->measurements[r->n_measurements++];
    snprintf(m->name, sizeof m->name, "%s", name);
    snprintf(m->unit, sizeof m->unit, "%s", unit ? unit : "");
    m->value = value;
    m->low = low;
    m->high = high;
}

/* Limits from OpenHTF validator strings: "a <= x <= b", "x <= b", "x >= a",
 * "a < x", "x == a", ... Unparsed forms leave the limits open. */
static void exec_validator(const char *v, double *low, double *high)
{
    double a, b;
    char op1[3], op2[3];
    if (sscanf(v, " %lf %2[<=] x %2[<=] %lf", &a, op1, op2, &b) == 4) {
        *low = a;
        *high = b;
    } else if (sscanf(v, " x %2[<=>] %lf", op1, &a) == 2) {
        if (op1[0] == '<') *high = a;
        else if (op1[0] == '>') *low = a;
        else if (!strcmp(op1, "==")) *low = *high = a;
    } else if (sscanf(v, " %lf %2[<=>] x", &a, op1) == 2) {
        if (op1[0] == '<') *low = a;
        else if (op1[0] == '>') *high = a;
    }
}

static void exec_htf_measurement(const char *name, const json_t *m, adapter_result *r, int *htf_fail)
{
    json_t *val = json_object_get(m, "measured_value");
    if (!name || !json_is_number(val)) return;
    double low = -INFINITY, high = INFINITY;
    size_t vi;
    json_t *vs;
    json_array_foreach(json_object_get(m, "validators"), vi, vs)
        if (json_is_string(vs)) exec_validator(json_string_value(vs), &low, &high);
    json_t *u = json_object_get(m, "units");
    const char *unit = json_is_string(u) ? json_string_value(u) : json_string_value(json_object_get(u, "suffix"));
    const char *oc = json_string_value(json_object_get(m, "outcome"));
    /* A failure the validators do not let us re-judge is taken as reported. */
    if (oc && !strcmp(oc, "FAIL") && isinf(low) && isinf(high)) *htf_fail = 1;
    exec_add_measurement(r, name, json_number_value(val), low, high, unit);
}

static void exec_openhtf(const json_t *rec, adapter_result *r, int *htf_fail)
{
    size_t i;
    json_t *ph;
    json_array_foreach(json_object_get(rec, "phases"), i, ph) {
        json_t *ms = json_object_get(ph, "measurements"), *m;
        /* OpenHTF writes measurements as an object keyed by name; accept a list too. */
        if (json_is_array(ms)) {
            size_t k;
            json_array_foreach(ms, k, m) exec_htf_measurement(json_string_value(json_object_get(m, "name")), m, r, htf_fail);
        } else {
            const char *key;
            json_object_foreach(ms, key, m) exec_htf_measurement(key, m, r, htf_fail);
        }
    }
}

typedef struct exec_out {
    int lock_verified, has_cal, htf_fail;
} exec_out;

static void exec_json_obj(const json_t *o, adapter_result *r, exec_out *x)
{
    if (json_is_array(json_object_get(o, "phases"))) {
        exec_openhtf(o, r, &x->htf_fail);
        return;
    }
    const char *name = json_string_value(json_object_get(o, "name"));
    json_t *val = json_object_get(o, "value");
    if (name && json_is_number(val)) {
        json_t *lo = json_object_get(o, "low"), *hi = json_object_get(o, "high");
        exec_add_measurement(r, name, json_number_value(val), json_is_number(lo) ? json_number_value(lo) : -INFINITY,
                             json_is_number(hi) ? json_number_value(hi) : INFINITY,
                             json_string_value(json_object_get(o, "unit")));
    }
    const char *rb = json_string_value(json_object_get(o, "readback_sha256"));
    if (rb) snprintf(r->readback_sha256, sizeof r->readback_sha256, "%s", rb);
    if (json_is_true(json_object_get(o, "lock_verified"))) x->lock_verified = 1;
    json_t *ref = json_object_get(o, "reference"), *raw = json_object_get(o, "raw");
    if (json_is_number(ref) && json_is_number(raw) && r->n_cal_points < ADAPTER_MAX_CAL_POINTS) {
        r->cal_points[r->n_cal_points].reference = json_number_value(ref);
        r->cal_points[r->n_cal_points++].raw = json_number_value(raw);
    }
    json_t *off = json_object_get(o, "offset"), *gain = json_object_get(o, "gain");
    if (json_is_number(off) && json_is_number(gain)) {
        r->cal_offset = json_number_value(off);
        r->cal_gain = json_number_value(gain);
        x->has_cal = 1;
    }
}

static void exec_parse(char *out, size_t len, adapter_result *r, exec_out *x)
{
    json_error_t e;
    json_t *whole = json_loadb(out, len, 0, &e);
    if (json_is_object(whole)) {
        exec_json_obj(whole, r, x);
        json_decref(whole);
        return;
    }
    json_decref(whole);
    char *save = NULL;
    for (char *line = strtok_r(out, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
        while (*line == ' ' || *line == '\t') line++;
        if (*line != '{') continue;
        json_t *o = json_loads(line, 0, &e);
        if (json_is_object(o)) exec_json_obj(o, r, x);
        json_decref(o);
    }
}

int adapter_exec_parse(char *out, size_t len, adapter_result *r)
{
    exec_out x = {0};
    exec_parse(out, len, r, &x);
    return x.htf_fail;
}

/* Runs one step's program; fills r (passed, or failure) and x. */
static void exec_run(exec_state *s, int step, const adapter_step_ctx *ctx, adapter_result *r, exec_out *x)
{
    char err[256];
    if (exec_image_file(s, ctx->image, err, sizeof err)) {
        adapter_fail(r, "exec_failed", "%s", err);
        return;
    }
    const char *prog = s->program[step] ? s->program[step] : s->def_program;
    const char *tmpl = s->args[step] ? s->args[step] : s->program[step] ? "" : s->def_args;
    const char *const vals[][2] = {
        {"image", ctx->image ? s->image_path : ""},
        {"board_id", ctx->board_id},
        {"serial", ctx->serial ? ctx->serial : ctx->board_id}, /* the board id until PROVISION issues one */
        {"lot_id", ctx->lot_id},
        {"step", s->step_name ? s->step_name : exec_step_names[step]},
        {"site", s->site},
        {"offset", s->cal_offset},
        {"gain", s->cal_gain},
        {"version", ctx->image ? ctx->image->version : ""},
        {"sha256", ctx->image ? ctx->image->sha256 : ""},
        {NULL, NULL}};
    char *argv[EXEC_MAX_ARGS + 2];
    int argc = 0;
    argv[argc++] = (char *)prog;
    char *copy = strdup(tmpl), *save = NULL;
    for (char *tok = strtok_r(copy, " \t", &save); tok; tok = strtok_r(NULL, " \t", &save)) {
        char buf[EXEC_ARG_MAX];
        if (argc > EXEC_MAX_ARGS || exec_subst(tok, vals, buf, sizeof buf) != 0) {
            adapter_fail(r, "exec_failed", "argument template: bad or unknown placeholder in \"%.60s\"", tok);
            for (int i = 1; i < argc; i++) free(argv[i]);
            free(copy);
            return;
        }
        argv[argc++] = strdup(buf);
    }
    argv[argc] = NULL;
    free(copy);

    int outp[2] = {-1, -1}, errp[2] = {-1, -1};
    pid_t pid = -1;
    posix_spawn_file_actions_t fa;
    posix_spawnattr_t at;
    posix_spawn_file_actions_init(&fa);
    posix_spawnattr_init(&at);
    int rc = pipe2(outp, O_CLOEXEC) || pipe2(errp, O_CLOEXEC) ? errno : 0;
    if (!rc) {
        posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
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
        rc = posix_spawn(&pid, prog, &fa, &at, argv, environ);
    }
    posix_spawn_file_actions_destroy(&fa);
    posix_spawnattr_destroy(&at);
    for (int i = 1; i < argc; i++) free(argv[i]);
    if (outp[1] >= 0) close(outp[1]);
    if (errp[1] >= 0) close(errp[1]);
    if (rc) {
        adapter_fail(r, "exec_failed", "cannot start %s: %s", prog, strerror(rc));
        if (outp[0] >= 0) close(outp[0]);
        if (errp[0] >= 0) close(errp[0]);
        return;
    }

    char *out = malloc(s->max_output + 1);
    if (!out) {
        kill(-pid, SIGKILL);
        while (waitpid(pid, NULL, 0) < 0 && errno == EINTR) {
        }
        close(outp[0]);
        close(errp[0]);
        adapter_fail(r, "exec_failed", "out of memory for %zu bytes of %s's output", s->max_output, prog);
        return;
    }
    size_t olen = 0, dropped = 0;
    char eline[EXEC_STDERR_LINE + 1], last_err[EXEC_STDERR_LINE + 1] = "";
    size_t elen = 0;
    int elines = 0, edropped = 0, timed_out = 0;
    int64_t deadline = clock_mono_ms() + s->timeout_ms, kill_at = 0;
    struct pollfd pfd[2] = {{outp[0], POLLIN, 0}, {errp[0], POLLIN, 0}};
    while (pfd[0].fd >= 0 || pfd[1].fd >= 0) {
        int64_t now = clock_mono_ms();
        if (!timed_out && now >= deadline) {
            timed_out = 1;
            kill(-pid, SIGTERM);
            kill_at = now + 1000; /* a grace second to clean up, then no more */
        }
        if (timed_out && now >= kill_at) {
            kill(-pid, SIGKILL);
            break;
        }
        int wait = (int)((timed_out ? kill_at : deadline) - now);
        int pr = poll(pfd, 2, wait);
        if (pr < 0 && errno != EINTR) break;
        if (pr <= 0) continue;
        for (int k = 0; k < 2; k++) {
            if (pfd[k].fd < 0 || !pfd[k].revents) continue;
            char buf[4096];
            ssize_t n = read(pfd[k].fd, buf, sizeof buf);
            if (n < 0 && errno == EINTR) continue;
            if (n <= 0) {
                close(pfd[k].fd);
                pfd[k].fd = -1;
                continue;
            }
            if (k == 0) {
                size_t take = (size_t)n < s->max_output - olen ? (size_t)n : s->max_output - olen;
                memcpy(out + olen, buf, take);
                olen += take;
                dropped += (size_t)n - take;
                continue;
            }
            for (ssize_t i = 0; i < n; i++) {
                if (buf[i] != '\n' && elen < EXEC_STDERR_LINE) {
                    eline[elen++] = buf[i] >= 0x20 && buf[i] < 0x7f ? buf[i] : '?';
                    continue;
                }
                if (buf[i] != '\n') continue; /* long line: the rest is cut */
                eline[elen] = 0;
                memcpy(last_err, eline, elen + 1);
                if (elines++ < EXEC_STDERR_LINES) log_info("station %s %s: %s", s->station, exec_step_names[step], eline);
                else edropped++;
                elen = 0;
            }
        }
    }
    for (int k = 0; k < 2; k++)
        if (pfd[k].fd >= 0) close(pfd[k].fd);
    if (elen) {
        eline[elen] = 0;
        memcpy(last_err, eline, elen + 1);
        log_info("station %s %s: %s", s->station, exec_step_names[step], eline);
    }
    if (edropped) log_warn("station %s %s: %d more stderr lines not logged", s->station, exec_step_names[step], edropped);
    if (dropped) log_warn("station %s %s: stdout over %zu bytes; %zu bytes ignored", s->station, exec_step_names[step],
                          s->max_output, dropped);
    /* Both pipes closed is not the end: a program that redirected its
     * output runs on. It gets until the same deadline to exit. */
    int status = 0;
    for (;;) {
        int64_t now = clock_mono_ms();
        int block = timed_out && now >= kill_at;
        pid_t w = waitpid(pid, &status, block ? 0 : WNOHANG);
        if (w == pid || (w < 0 && errno != EINTR)) break;
        if (w < 0) continue;
        if (!timed_out && now >= deadline) {
            timed_out = 1;
            kill(-pid, SIGTERM);
            kill_at = now + 1000;
        } else if (timed_out && now >= kill_at) {
            kill(-pid, SIGKILL);
        } else {
            struct timespec ts = {0, 10 * 1000000L};
            nanosleep(&ts, NULL);
        }
    }
    /* Stragglers the program left in its group go too. */
    kill(-pid, SIGKILL);
    out[olen] = 0;
    if (timed_out) {
        adapter_fail(r, "timeout", "%s killed after %ld ms", prog, s->timeout_ms);
    } else if (WIFSIGNALED(status)) {
        adapter_fail(r, "exit_signal", "%s killed by signal %d%s%.160s", prog, WTERMSIG(status), last_err[0] ? ": " : "",
                  last_err);
    } else if (WEXITSTATUS(status) != 0) {
        adapter_fail(r, "exit_status", "%s exited %d%s%.160s", prog, WEXITSTATUS(status), last_err[0] ? ": " : "",
                  last_err);
    } else {
        r->passed = 1;
    }
    /* Measurements are kept even from a failed run: the test record is evidence. */
    exec_parse(out, olen, r, x);
    free(out);
    if (r->passed && x->htf_fail) adapter_fail(r, "test_failed", "OpenHTF reports a failed measurement without limits");
}

static void exec_write(void *state, const adapter_step_ctx *ctx, adapter_result *r)
{
    exec_out x = {0};
    exec_run(state, ST_WRITE, ctx, r, &x);
}

static void exec_verify(void *state, const adapter_step_ctx *ctx, adapter_result *r)
{
    exec_out x = {0};
    exec_run(state, ST_VERIFY, ctx, r, &x);
    if (!r->passed) return;
    if (!r->readback_sha256[0]) {
        /* The program verified and said so by its exit status. */
        snprintf(r->readback_sha256, sizeof r->readback_sha256, "%s", ctx->image->sha256);
    } else if (strcmp(r->readback_sha256, ctx->image->sha256) != 0) {
        adapter_fail(r, "verify_mismatch", "read back sha256 %.16s... expected %.16s... (%s)", r->readback_sha256,
                  ctx->image->sha256, ctx->image->version);
    }
}

static void exec_provision(void *state, const adapter_step_ctx *ctx, adapter_result *r)
{
    exec_out x = {0};
    exec_run(state, ST_PROVISION, ctx, r, &x);
}

static void exec_test(void *state, const adapter_step_ctx *ctx, adapter_result *r)
{
    exec_out x = {0};
    exec_run(state, ST_TEST, ctx, r, &x);
}

static void exec_calibrate(void *state, const adapter_step_ctx *ctx, adapter_result *r)
{
    exec_out x = {0};
    exec_run(state, ST_CALIBRATE, ctx, r, &x);
    if (r->passed && !x.has_cal && !r->n_cal_points)
        adapter_fail(r, "calibration_missing", "the program reported neither reference points nor coefficients");
}

/* Runs the calibrate program again with {step} = calibrate_write and the
 * agent's {offset} and {gain}; it must print the coefficients it reads back
 * from the board's non-volatile memory. */
static void exec_write_calibration(void *state, const adapter_step_ctx *ctx, double offset, double gain,
                                   adapter_result *r)
{
    exec_state *s = state;
    adapter_result w = {0};
    exec_out x = {0};
    snprintf(s->cal_offset, sizeof s->cal_offset, "%.17g", offset);
    snprintf(s->cal_gain, sizeof s->cal_gain, "%.17g", gain);
    s->step_name = "calibrate_write";
    exec_run(s, ST_CALIBRATE, ctx, &w, &x);
    s->step_name = NULL;
    s->cal_offset[0] = s->cal_gain[0] = 0;
    r->passed = 0;
    if (!w.passed) {
        memcpy(r->failure_mode, w.failure_mode, sizeof r->failure_mode);
        memcpy(r->detail, w.detail, sizeof r->detail);
        return;
    }
    double tol_o = 1e-6 * (fabs(offset) > 1 ? fabs(offset) : 1), tol_g = 1e-6 * (fabs(gain) > 1 ? fabs(gain) : 1);
    if (!x.has_cal || fabs(w.cal_offset - offset) > tol_o || fabs(w.cal_gain - gain) > tol_g) {
        adapter_fail(r, "calibration_readback_mismatch", "wrote offset %g gain %g, read back %s%g %g", offset, gain,
                  x.has_cal ? "" : "(nothing) ", w.cal_offset, w.cal_gain);
        return;
    }
    r->passed = 1;
}

static void exec_lock(void *state, const adapter_step_ctx *ctx, adapter_result *r)
{
    exec_out x = {0};
    exec_run(state, ST_LOCK, ctx, r, &x);
    if (r->passed && !x.lock_verified)
        adapter_fail(r, "lock_unverified", "the program did not report {\"lock_verified\":true}");
    r->lock_verified = r->passed;
}

const adapter adapter_exec = {
    .name = "exec",
    .keys = exec_keys,
    .conf_size = sizeof(exec_state),
    .open = exec_open,
    .load_board = exec_load_board,
    .write = exec_write,
    .verify = exec_verify,
    .provision = exec_provision,
    .test = exec_test,
    .calibrate = exec_calibrate,
    .lock = exec_lock,
    .close = exec_close,
    .write_calibration = exec_write_calibration,
};
