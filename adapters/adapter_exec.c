/* SPDX-License-Identifier: Apache-2.0 */
/* adapter_exec.c - a station that runs an external program per step: vendor
 * programmers (openocd, STM32_Programmer_CLI, nrfjprog, esptool) and FCT
 * programs. The program is started with an argv built from a template, one
 * placeholder substitution per argument and never a shell, so a board id or
 * path can never become a command (exec_proc.c runs it, kills its process
 * group at the timeout and bounds its output). Its exit status decides
 * pass/fail; its stdout is parsed for what the step reports.
 *
 * Stdout, one JSON object per line (other lines are ignored):
 *   {"name":"vbus","value":5.02,"unit":"V"}          a measurement
 *     (optional "low"/"high": the station's own limits, used only when the
 *     order gives none)
 *   {"readback_sha256":"<hex>"}                        VERIFY: SHA-256 of what was read back
 *   {"readback_crc32":"<8 hex>"}                       VERIFY: or the target's CRC-32 (zlib) of it
 *   {"lock_verified":true}                             LOCK: the lock was checked
 *   {"offset":..,"gain":..}                            CALIBRATE: coefficients
 *   {"channels":[{"name":"vbus","points":[[ref,raw],..]},..]}  CALIBRATE: named channels
 *   {"failure_mode":"<mode>","detail":"..."}           any step: why it failed (EXEC_FAILURE_MODES)
 *   {"csr":"-----BEGIN CERTIFICATE REQUEST-----..."}   PROVISION with exec.provision_csr
 *   {"readback":{"serial":..,"macs":[..],"device_id":..,"cert_sha256":..}}   PROVISION
 *   an OpenHTF JSON test record (one line, or the whole of stdout), whose
 *   phases' measurements become measurements with limits from validators
 *   such as "4.75 <= x <= 5.25".
 * PROVISION hands the identity to the program as one JSON document on its
 * standard input, never in argv or a file (adapters/README.md, "PROVISION through a program").
 * With exec.board_id_program the board id is what that program prints. */
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "adapter.h"
#include "adapter_exec.h"
#include "exec_proc.h"
#include "log.h"

#define EXEC_MAX_ARGS 64
#define EXEC_ARG_MAX 1024

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
    char *board_id_program;            /* exec.board_id_program: prints the board's physical id */
    int provision_csr;                 /* exec.provision_csr: the board makes its key and a CSR */
    exec_proc *pending;                /* PROVISION paused after the CSR, waiting for the identity */
} exec_state;

/* Failure modes a program may report ({"failure_mode":..}); the stable
 * vocabulary documented in adapters/README.md. Any other
 * reported mode becomes unknown_failure_mode, so consumers of the events
 * see only these. */
static const char *const exec_failure_modes[] = {
    "probe_not_found", "target_not_responding", "power_fault", "contact_fault", "board_absent",
    "erase_failed", "write_failed", "target_protected", "verify_mismatch", "verify_read_error",
    "provision_csr_failed", "provision_write_failed", "provision_key_mismatch", "test_failed",
    "measurement_error", "calibration_failed", "lock_failed", "lock_unverified", "fixture_error", NULL};

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
             "{version} {sha256} {site}, and {offset} {gain} {channel} for calibrate_write"},
    {"timeout_ms", CONF_INT, "60000", 100, 86400000, CONF_AT(exec_state, timeout_ms),
     .desc = "the whole run; then SIGTERM to the process group, SIGKILL a second later"},
    {"max_output", CONF_SIZE, "64K", 1024, 64LL << 20, CONF_AT(exec_state, max_output),
     .desc = "stdout bytes kept for parsing (stderr goes to the log, at most 200 lines a run)"},
    {"board_id_program", CONF_STRING, NULL, CONF_AT(exec_state, board_id_program),
     .desc = "absolute path of a program run as PROGRAM LOT_ID SITE when a board arrives; its first stdout line "
             "is the board id (none: <lot>-B<nnnnn>)"},
    {"provision_csr", CONF_BOOL, "false", CONF_AT(exec_state, provision_csr),
     .desc = "true: the PROVISION program has the board make its key and prints {\"csr\":\"<PEM>\"} first"},
    EXEC_STEP_KEYS("write", ST_WRITE),
    EXEC_STEP_KEYS("verify", ST_VERIFY),
    EXEC_STEP_KEYS("provision", ST_PROVISION),
    EXEC_STEP_KEYS("test", ST_TEST),
    EXEC_STEP_KEYS("calibrate", ST_CALIBRATE),
    EXEC_STEP_KEYS("lock", ST_LOCK),
    {0}};

extern const adapter adapter_exec;

/* Ends a run nobody waits for any more (a CSR without its identity). */
static void exec_drop_pending(exec_state *s)
{
    if (!s->pending) return;
    adapter_result scratch = {0};
    char *out;
    size_t len;
    exec_proc_finish(s->pending, &scratch, &out, &len);
    free(out);
    s->pending = NULL;
}

static void exec_close(void *state)
{
    exec_state *s = state;
    if (!s) return;
    exec_drop_pending(s);
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
    const char *p = s->board_id_program;
    if (p && (p[0] != '/' || access(p, X_OK) != 0)) {
        snprintf(err, err_len, "[station %s] exec.board_id_program \"%s\" must be an executable absolute path",
                 st->name, p);
        exec_close(s);
        return -1;
    }
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

/* The id printed by exec.board_id_program: its first stdout line, 1 to 64
 * characters of [A-Za-z0-9._:-] (it keys the board's identity on the
 * provisioning server, so a misread is refused, never trimmed into shape). */
static int exec_board_id_ok(const char *id, size_t n)
{
    if (n == 0 || n >= ADAPTER_ID_MAX || id[0] == '-') return 0;
    for (size_t i = 0; i < n; i++)
        if (!strchr("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789._:-", id[i])) return 0;
    return 1;
}

/* Runs exec.board_id_program LOT_ID SITE and takes the board id it prints
 * (a barcode or the MCU's unique id): the board's physical identity, the
 * same in every lot it passes through. */
static int exec_load_board(void *state, const char *lot_id, uint32_t idx, char *board_id, size_t len)
{
    exec_state *s = state;
    if (!s->board_id_program) {
        snprintf(board_id, len, "%s-B%05u", lot_id, idx + 1);
        return 0;
    }
    char *argv[] = {s->board_id_program, (char *)lot_id, s->site, NULL}, err[256];
    exec_proc_opts po = {s->station, "board_id", s->timeout_ms, 4096, 0};
    exec_proc *p = exec_proc_start(argv, &po, err, sizeof err);
    if (!p) {
        log_error("station %s: %s", s->station, err);
        return -1;
    }
    exec_proc_pump(p, NULL, 0, NULL, NULL);
    adapter_result r = {0};
    char *out;
    size_t olen;
    exec_proc_finish(p, &r, &out, &olen);
    size_t n = strcspn(out, "\r\n");
    int ok = r.passed && exec_board_id_ok(out, n) && n < len;
    if (ok) snprintf(board_id, len, "%.*s", (int)n, out);
    else if (r.passed) log_error("station %s: board id program printed no usable id (1-64 of [A-Za-z0-9._:-])", s->station);
    else log_error("station %s: board id program: %s", s->station, r.detail);
    free(out);
    return ok ? 0 : -1;
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
    /* A cut name could match another item's: the step fails instead. */
    if (strlen(name) >= sizeof r->measurements[0].name || (unit && strlen(unit) >= sizeof r->measurements[0].unit)) {
        if (r->passed || !r->failure_mode[0])
            adapter_fail(r, "measurement_name_too_long", "measurement \"%.40s...\" or its unit is longer than %zu/%zu "
                         "characters", name, sizeof r->measurements[0].name - 1, sizeof r->measurements[0].unit - 1);
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
    int lock_verified, has_cal, htf_fail, has_readback;
    int bad_channels; /* a "channels" report the agent cannot take as it is */
    char failure_mode[48], detail[200]; /* reported by the program */
} exec_out;

/* A program's string as printable ASCII, for events and logs. */
static void exec_printable(char *dst, size_t n, const char *src)
{
    size_t i = 0;
    for (; src && src[i] && i + 1 < n; i++) dst[i] = src[i] >= 0x20 && src[i] < 0x7f ? src[i] : '?';
    dst[i] = 0;
}

/* CALIBRATE's named channels; a name too long or repeated, a point that is
 * not [reference, raw], or more than the agent keeps is an error, never
 * cut short. */
static void exec_cal_channels(json_t *a, adapter_result *r, exec_out *x)
{
    size_t i, k;
    json_t *c, *p;
    json_array_foreach(a, i, c) {
        const char *name = json_string_value(json_object_get(c, "name"));
        json_t *pts = json_object_get(c, "points");
        adapter_cal_channel *ch = &r->cal_channels[r->n_cal_channels];
        if (!name || !name[0] || strlen(name) >= sizeof ch->name || !json_is_array(pts) ||
            json_array_size(pts) > ADAPTER_MAX_CAL_POINTS || r->n_cal_channels >= ADAPTER_MAX_CAL_CHANNELS) {
            x->bad_channels = 1;
            return;
        }
        for (int j = 0; j < r->n_cal_channels; j++)
            if (strcmp(r->cal_channels[j].name, name) == 0) x->bad_channels = 1;
        exec_printable(ch->name, sizeof ch->name, name);
        json_array_foreach(pts, k, p) {
            json_t *ref = json_array_get(p, 0), *raw = json_array_get(p, 1);
            if (json_array_size(p) != 2 || !json_is_number(ref) || !json_is_number(raw)) x->bad_channels = 1;
            ch->points[ch->n_points++] = (adapter_cal_point){json_number_value(ref), json_number_value(raw)};
        }
        r->n_cal_channels++;
    }
}

/* PROVISION: {"readback":{"serial":..,"macs":[..],"device_id":..,"cert_sha256":..}} */
static void exec_readback(const json_t *rb, adapter_result *r, exec_out *x)
{
    if (!json_is_object(rb)) return;
    x->has_readback = 1;
    exec_printable(r->serial, sizeof r->serial, json_string_value(json_object_get(rb, "serial")));
    exec_printable(r->device_id, sizeof r->device_id, json_string_value(json_object_get(rb, "device_id")));
    exec_printable(r->cert_sha256, sizeof r->cert_sha256, json_string_value(json_object_get(rb, "cert_sha256")));
    size_t i;
    json_t *m;
    r->n_macs = 0;
    json_array_foreach(json_object_get(rb, "macs"), i, m) {
        if (r->n_macs == ADAPTER_MAX_MACS) {
            r->n_macs++; /* more than any identity has: a mismatch, not a silent cut */
            break;
        }
        exec_printable(r->macs[r->n_macs++], sizeof r->macs[0], json_string_value(m));
    }
}

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
    const char *crc = json_string_value(json_object_get(o, "readback_crc32"));
    if (crc && strlen(crc) == 8 && strspn(crc, "0123456789abcdefABCDEF") == 8) {
        r->readback_crc32 = (uint32_t)strtoul(crc, NULL, 16);
        r->readback_crc = ADAPTER_CRC32_ZLIB;
    }
    const char *fm = json_string_value(json_object_get(o, "failure_mode"));
    if (fm && !x->failure_mode[0]) {
        exec_printable(x->failure_mode, sizeof x->failure_mode, fm);
        exec_printable(x->detail, sizeof x->detail, json_string_value(json_object_get(o, "detail")));
    }
    exec_readback(json_object_get(o, "readback"), r, x);
    if (json_is_true(json_object_get(o, "lock_verified"))) x->lock_verified = 1;
    json_t *ref = json_object_get(o, "reference"), *raw = json_object_get(o, "raw");
    if (json_is_number(ref) && json_is_number(raw) && r->n_cal_points < ADAPTER_MAX_CAL_POINTS) {
        r->cal_points[r->n_cal_points].reference = json_number_value(ref);
        r->cal_points[r->n_cal_points++].raw = json_number_value(raw);
    }
    if (json_is_array(json_object_get(o, "channels"))) exec_cal_channels(json_object_get(o, "channels"), r, x);
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

/* Starts one step's program (stdin the agent's when with_stdin); NULL with
 * r failed. */
static exec_proc *exec_start(exec_state *s, int step, const adapter_step_ctx *ctx, int with_stdin,
                             adapter_result *r)
{
    char err[256];
    if (exec_image_file(s, ctx->image, err, sizeof err)) {
        adapter_fail(r, "exec_failed", "%s", err);
        return NULL;
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
        {"channel", ctx->cal_channel ? ctx->cal_channel : ""},
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
            return NULL;
        }
        argv[argc++] = strdup(buf);
    }
    argv[argc] = NULL;
    free(copy);

    exec_proc_opts po = {s->station, s->step_name ? s->step_name : exec_step_names[step], s->timeout_ms,
                         s->max_output, with_stdin};
    exec_proc *p = exec_proc_start(argv, &po, err, sizeof err);
    for (int i = 1; i < argc; i++) free(argv[i]);
    if (!p) adapter_fail(r, "exec_failed", "%s", err);
    return p;
}

/* A failure mode the program reported replaces the exit status's: it is in
 * the vocabulary, or it is unknown_failure_mode. */
static void exec_reported_failure(adapter_result *r, const exec_out *x)
{
    for (int i = 0; exec_failure_modes[i]; i++)
        if (!strcmp(exec_failure_modes[i], x->failure_mode)) {
            adapter_fail(r, x->failure_mode, "%s", x->detail);
            return;
        }
    adapter_fail(r, "unknown_failure_mode", "the program reported failure mode \"%.40s\", not in the vocabulary: %s",
                 x->failure_mode, x->detail);
}

/* Ends a run: its exit judged into r, its stdout parsed into r and x. */
static void exec_end(exec_proc *p, adapter_result *r, exec_out *x)
{
    char *out;
    size_t olen;
    exec_proc_finish(p, r, &out, &olen);
    /* Measurements are kept even from a failed run: the test record is evidence. */
    exec_parse(out, olen, r, x);
    explicit_bzero(out, olen); /* a PROVISION program's output may echo identity data */
    free(out);
    if (x->failure_mode[0]) exec_reported_failure(r, x);
    else if (r->passed && x->htf_fail) adapter_fail(r, "test_failed", "OpenHTF reports a failed measurement without limits");
}

/* Runs one step's program; fills r (passed, or failure) and x. */
static void exec_run(exec_state *s, int step, const adapter_step_ctx *ctx, adapter_result *r, exec_out *x)
{
    exec_proc *p = exec_start(s, step, ctx, 0, r);
    if (!p) return;
    exec_proc_pump(p, NULL, 0, NULL, NULL);
    exec_end(p, r, x);
}

static void exec_write(void *state, const adapter_step_ctx *ctx, adapter_result *r)
{
    exec_out x = {0};
    exec_run(state, ST_WRITE, ctx, r, &x);
}

/* VERIFY reports what the program read back; the agent compares it with the
 * release (a program that only exits 0 has verified nothing it can show). */
static void exec_verify(void *state, const adapter_step_ctx *ctx, adapter_result *r)
{
    exec_out x = {0};
    exec_run(state, ST_VERIFY, ctx, r, &x);
}

/* ---- PROVISION ------------------------------------------------------- */

/* Appends "key":"value" (JSON-escaped) at *o; dst was sized by exec_identity_json. */
static void exec_json_put(char *dst, size_t *o, const char *key, const char *v)
{
    *o += (size_t)sprintf(dst + *o, "%s\"%s\":\"", dst[*o - 1] == '{' || dst[*o - 1] == '[' ? "" : ",", key);
    for (const unsigned char *c = (const unsigned char *)(v ? v : ""); *c; c++) {
        if (*c == '"' || *c == '\\') dst[(*o)++] = '\\', dst[(*o)++] = (char)*c;
        else if (*c == '\n') dst[(*o)++] = '\\', dst[(*o)++] = 'n';
        else if (*c < 0x20) *o += (size_t)sprintf(dst + *o, "\\u%04x", *c);
        else dst[(*o)++] = (char)*c;
    }
    dst[(*o)++] = '"';
    dst[*o] = 0;
}

/* The identity as the one-line JSON document the program reads on stdin.
 * Built by hand into one buffer the caller wipes: a JSON library would
 * leave copies of the private key in memory it frees without wiping. */
static char *exec_identity_json(const adapter_identity *id, size_t *len)
{
    const char *const f[][2] = {{"serial", id->serial},           {"device_id", id->device_id},
                                {"factory_code", id->factory_code}, {"issued_at", id->issued_at},
                                {"certificate", id->certificate}, {"ca_chain", id->ca_chain},
                                {"cert_sha256", id->cert_sha256},  {"private_key", id->private_key}};
    size_t n = 64 + (size_t)id->n_macs * 32;
    for (size_t i = 0; i < sizeof f / sizeof *f; i++) n += 16 + 6 * (f[i][1] ? strlen(f[i][1]) : 0);
    char *d = malloc(n);
    size_t o = (size_t)sprintf(d, "{\"identity\":{");
    for (size_t i = 0; i < 4; i++) exec_json_put(d, &o, f[i][0], f[i][1]);
    o += (size_t)sprintf(d + o, ",\"macs\":[");
    for (int i = 0; i < id->n_macs; i++) {
        if (i) d[o++] = ',';
        o += (size_t)sprintf(d + o, "\"%.17s\"", id->macs[i]);
    }
    d[o++] = ']';
    d[o] = 0;
    /* private_key only when the server made the key; with a CSR the key never left the board. */
    for (size_t i = 4; i < sizeof f / sizeof *f; i++)
        if (f[i][1]) exec_json_put(d, &o, f[i][0], f[i][1]);
    o += (size_t)sprintf(d + o, "}}\n");
    *len = o;
    return d;
}

/* Writes the identity to the program's stdin (a run paused after its CSR,
 * or a new one) and takes the read-back it prints. */
static void exec_provision(void *state, const adapter_step_ctx *ctx, adapter_result *r)
{
    exec_state *s = state;
    if (!ctx->identity) {
        /* Identities come only from the provisioning server (rule P1). */
        exec_drop_pending(s);
        adapter_fail(r, "provision_unavailable", "no provisioning server configured");
        return;
    }
    exec_proc *p = s->pending;
    s->pending = NULL;
    if (!p && !(p = exec_start(s, ST_PROVISION, ctx, 1, r))) return;
    size_t len;
    char *doc = exec_identity_json(ctx->identity, &len);
    exec_proc_pump(p, doc, len, NULL, NULL);
    explicit_bzero(doc, len);
    free(doc);
    exec_out x = {0};
    exec_end(p, r, &x);
    if (r->passed && !x.has_readback)
        adapter_fail(r, "provision_unverified", "the program printed no {\"readback\":{...}} of what the board holds");
}

typedef struct exec_csr {
    char *csr;
    size_t cap;
    int found;
} exec_csr;

static int exec_csr_line(const char *line, void *ud)
{
    exec_csr *c = ud;
    while (*line == ' ' || *line == '\t') line++;
    if (*line != '{') return 0;
    json_t *o = json_loads(line, 0, NULL);
    const char *v = json_string_value(json_object_get(o, "csr"));
    if (v && strlen(v) < c->cap && strstr(v, "-----BEGIN CERTIFICATE REQUEST-----")) {
        memcpy(c->csr, v, strlen(v) + 1);
        c->found = 1;
    }
    int stop = v != NULL;
    json_decref(o);
    return stop;
}

/* exec.provision_csr: starts the PROVISION program, which has the board make
 * its key pair and prints {"csr":"<PEM>"}; the run then waits, stdin open,
 * for exec_provision to hand it the identity the server issued for that CSR. */
static int exec_provision_csr(void *state, const adapter_step_ctx *ctx, char *csr, size_t len)
{
    exec_state *s = state;
    if (!s->provision_csr) return 1;
    exec_drop_pending(s);
    adapter_result r = {0};
    exec_proc *p = exec_start(s, ST_PROVISION, ctx, 1, &r);
    if (!p) {
        log_warn("station %s: %s", s->station, r.detail);
        return -1;
    }
    exec_csr c = {csr, len, 0};
    if (exec_proc_pump(p, NULL, 0, exec_csr_line, &c) == 1 && c.found) {
        s->pending = p;
        return 0;
    }
    exec_out x = {0};
    exec_end(p, &r, &x);
    log_warn("station %s: board %s: no CSR from the provision program%s%s", s->station, ctx->board_id,
             r.passed ? "" : ": ", r.passed ? "" : r.detail);
    return -1;
}

static void exec_provision_abort(void *state) { exec_drop_pending(state); }

static void exec_test(void *state, const adapter_step_ctx *ctx, adapter_result *r)
{
    exec_out x = {0};
    exec_run(state, ST_TEST, ctx, r, &x);
}

static void exec_calibrate(void *state, const adapter_step_ctx *ctx, adapter_result *r)
{
    exec_out x = {0};
    exec_run(state, ST_CALIBRATE, ctx, r, &x);
    if (r->passed && x.bad_channels)
        adapter_fail(r, "calibration_failed", "the program's \"channels\" report is malformed (a name missing, "
                     "repeated or over 31 bytes, a point not [reference, raw], over %d channels or %d points)",
                     ADAPTER_MAX_CAL_CHANNELS, ADAPTER_MAX_CAL_POINTS);
    else if (r->passed && !x.has_cal && !r->n_cal_points && !r->n_cal_channels)
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
    .provision_csr = exec_provision_csr,
    .provision_abort = exec_provision_abort,
};
