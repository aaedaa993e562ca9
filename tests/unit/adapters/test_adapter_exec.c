/* SPDX-License-Identifier: Apache-2.0 */
/* test_adapter_exec.c - the exec adapter with small shell scripts standing in
 * for vendor programmers and FCT programs (the adapter itself never uses a
 * shell): argv substitution without a shell, exit status, timeout killing
 * the process group, JSON-line and OpenHTF measurements (the station judges
 * them: core/test_station.c), bounded output, the image file, verify/lock
 * reporting, configuration errors. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <errno.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "adapter.h"
#include "clock.h"
#include "digest.h"
#include "tmpdir.h"

static tmpdir tmp;
static const char *dir = tmp.path; /* the directory; "" outside setup..teardown */

static const char *script(const char *name, const char *body) { return tmpdir_script(&tmp, name, body); }

static void *open_exec(const char *program, const char *args, const char *timeout, const char *maxout, char *err)
{
    kv_pair kv[4];
    size_t n = 0;
    kv[n++] = (kv_pair){"exec.program", (char *)program};
    if (args) kv[n++] = (kv_pair){"exec.args", (char *)args};
    if (timeout) kv[n++] = (kv_pair){"exec.timeout_ms", (char *)timeout};
    if (maxout) kv[n++] = (kv_pair){"exec.max_output", (char *)maxout};
    station_config st = {.name = "x1", .adapter = "exec", .steps_mask = 0x7e, .keys = kv, .n_keys = n};
    void *s = NULL;
    char e[256];
    int rc = adapter_find("exec")->open(&s, &st, err ? err : e, 256);
    return rc == 0 ? s : NULL;
}

static const uint8_t img_data[] = "exec adapter test image \x00\x01\x02";
static char img_sha[65];
static adapter_image img;

static int setup(void **state)
{
    assert_int_equal(tmpdir_make(&tmp, "test-exec"), 0);
    digest_sha256_hex(img_data, sizeof img_data, img_sha);
    img = (adapter_image){"2.1.0", img_sha, img_data, sizeof img_data, 0};
    return 0;
}

static int teardown(void **state) { return tmpdir_remove(&tmp); }

static char *slurp(const char *path)
{
    FILE *f = fopen(path, "r");
    if (!f) return NULL;
    static char buf[4096];
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = 0;
    return buf;
}

static void test_argv_substituted_without_shell(void **state)
{
    char body[256];
    snprintf(body, sizeof body, "printf '%%s\\n' \"$@\" > %s/args; cmp -s \"$2\" %s/ref && echo same >> %s/args",
             dir, dir, dir);
    const char *prog = script("argv.sh", body);
    char ref[128];
    snprintf(ref, sizeof ref, "%s/ref", dir);
    FILE *f = fopen(ref, "w");
    fwrite(img_data, 1, sizeof img_data, f);
    fclose(f);
    void *s = open_exec(prog, "--step={step} {image} id={board_id} {lot_id}:{serial} {version}", NULL, NULL, NULL);
    assert_non_null(s);
    /* Shell syntax in a value stays one literal argument. */
    adapter_step_ctx ctx = {.station = "x1", .lot_id = "LOT;$(touch pwned)", .board_id = "B 1", .image = &img};
    adapter_result r = {0};
    adapter_find("exec")->write(s, &ctx, &r);
    assert_true(r.passed);
    char path[128];
    snprintf(path, sizeof path, "%s/args", dir);
    char *args = slurp(path);
    assert_non_null(args);
    assert_non_null(strstr(args, "--step=write\n"));
    assert_non_null(strstr(args, "id=B 1\nLOT;$(touch pwned):B 1\n2.1.0\nsame\n"));
    assert_int_equal(access("pwned", F_OK), -1);
    /* once PROVISION has issued a serial, {serial} is that serial */
    ctx.serial = "PCBA-100-2648-000042";
    memset(&r, 0, sizeof r);
    adapter_find("exec")->write(s, &ctx, &r);
    assert_true(r.passed);
    args = slurp(path);
    assert_non_null(strstr(args, "LOT;$(touch pwned):PCBA-100-2648-000042\n"));
    adapter_find("exec")->close(s);
}

static void test_exit_status_and_stderr(void **state)
{
    const char *prog = script("fail.sh", "echo 'probe not found' >&2; exit 3");
    void *s = open_exec(prog, NULL, NULL, NULL, NULL);
    adapter_step_ctx ctx = {.station = "x1", .lot_id = "LOT", .board_id = "B1", .image = &img};
    adapter_result r = {0};
    adapter_find("exec")->write(s, &ctx, &r);
    assert_false(r.passed);
    assert_string_equal(r.failure_mode, "exit_status");
    assert_non_null(strstr(r.detail, "exited 3: probe not found"));
    adapter_find("exec")->close(s);
}

/* Closing stdout and stderr is not exiting: the program runs on and its
 * exit status counts (it used to be killed as soon as both pipes closed). */
static void test_closed_pipes_wait_for_exit(void **state)
{
    const char *prog = script("redirect.sh", "exec >/dev/null 2>&1; sleep 0.5; exit 3");
    void *s = open_exec(prog, NULL, "5000", NULL, NULL);
    adapter_step_ctx ctx = {.station = "x1", .lot_id = "LOT", .board_id = "B1", .image = &img};
    adapter_result r = {0};
    adapter_find("exec")->write(s, &ctx, &r);
    assert_false(r.passed);
    assert_string_equal(r.failure_mode, "exit_status");
    assert_non_null(strstr(r.detail, "exited 3"));
    /* ...and the deadline still holds for one that never exits */
    prog = script("redirect-hang.sh", "exec >/dev/null 2>&1; sleep 30");
    adapter_find("exec")->close(s);
    s = open_exec(prog, NULL, "300", NULL, NULL);
    memset(&r, 0, sizeof r);
    int64_t t0 = clock_mono_ms();
    adapter_find("exec")->write(s, &ctx, &r);
    assert_true(clock_mono_ms() - t0 < 3000);
    assert_string_equal(r.failure_mode, "timeout");
    adapter_find("exec")->close(s);
}

static void test_timeout_kills_process_group(void **state)
{
    char body[256];
    snprintf(body, sizeof body, "sleep 30 & echo $! > %s/child; trap '' TERM; sleep 30", dir);
    const char *prog = script("hang.sh", body);
    void *s = open_exec(prog, NULL, "300", NULL, NULL);
    adapter_step_ctx ctx = {.station = "x1", .lot_id = "LOT", .board_id = "B1", .image = &img};
    adapter_result r = {0};
    int64_t t0 = clock_mono_ms();
    adapter_find("exec")->test(s, &ctx, &r);
    int64_t ms = clock_mono_ms() - t0;
    assert_false(r.passed);
    assert_string_equal(r.failure_mode, "timeout");
    assert_true(ms < 3000); /* TERM ignored: SIGKILL after the grace second */
    char path[128];
    snprintf(path, sizeof path, "%s/child", dir);
    pid_t child = (pid_t)atoi(slurp(path));
    assert_true(child > 0);
    int gone = 0;
    for (int i = 0; i < 50 && !gone; i++) {
        char st[64];
        snprintf(st, sizeof st, "/proc/%d/stat", (int)child);
        char *txt = slurp(st);
        gone = !txt || strstr(txt, ") Z ") != NULL;
        if (!gone) usleep(20000);
    }
    assert_true(gone); /* the program's own child died with it */
    adapter_find("exec")->close(s);
}

static void test_json_line_measurements(void **state)
{
    const char *prog = script("fct.sh", "echo 'FCT v3 starting'\n"
                                         "echo '{\"name\":\"vbus\",\"value\":5.02,\"unit\":\"V\",\"low\":4.75,\"high\":5.25}'\n"
                                         "echo 'not json {'\n"
                                         "echo '{\"name\":\"i_idle\",\"value\":0.031,\"unit\":\"A\"}'");
    void *s = open_exec(prog, NULL, NULL, NULL, NULL);
    adapter_step_ctx ctx = {.station = "x1", .lot_id = "LOT", .board_id = "B1", .image = NULL};
    adapter_result r = {0};
    adapter_find("exec")->test(s, &ctx, &r);
    assert_true(r.passed);
    assert_int_equal(r.n_measurements, 2);
    assert_string_equal(r.measurements[0].name, "vbus");
    assert_true(fabs(r.measurements[0].value - 5.02) < 1e-9);
    assert_true(r.measurements[0].low == 4.75 && r.measurements[0].high == 5.25);
    assert_string_equal(r.measurements[0].unit, "V");
    assert_string_equal(r.measurements[1].name, "i_idle");
    assert_true(isinf(r.measurements[1].high)); /* judged by the station: core/test_station.c */
    adapter_find("exec")->close(s);
}

static void test_openhtf_record(void **state)
{
    const char *prog = script("htf.sh", "cat <<'EOF'\n"
                                         "{\n  \"dut_id\": \"B1\", \"outcome\": \"PASS\",\n"
                                         "  \"phases\": [\n"
                                         "    {\"name\": \"power\", \"measurements\": {\n"
                                         "       \"vbus\": {\"name\": \"vbus\", \"outcome\": \"PASS\", \"measured_value\": 5.01,\n"
                                         "                \"validators\": [\"4.75 <= x <= 5.25\"], \"units\": {\"name\": \"volt\", \"suffix\": \"V\"}},\n"
                                         "       \"ripple\": {\"outcome\": \"PASS\", \"measured_value\": 0.02, \"validators\": [\"x <= 0.05\"]}}},\n"
                                         "    {\"name\": \"boot\", \"measurements\": {\n"
                                         "       \"boot_ms\": {\"outcome\": \"PASS\", \"measured_value\": 130, \"validators\": [\"x >= 10\"], \"units\": \"ms\"},\n"
                                         "       \"banner\": {\"outcome\": \"PASS\", \"measured_value\": \"fw 2.1.0\"}}}\n"
                                         "  ]\n}\nEOF");
    void *s = open_exec(prog, NULL, NULL, NULL, NULL);
    adapter_step_ctx ctx = {.station = "x1", .lot_id = "LOT", .board_id = "B1", .image = NULL};
    adapter_result r = {0};
    adapter_find("exec")->test(s, &ctx, &r);
    assert_true(r.passed);
    assert_int_equal(r.n_measurements, 3); /* the string measurement has no value to judge */
    assert_string_equal(r.measurements[0].name, "vbus");
    assert_true(r.measurements[0].low == 4.75 && r.measurements[0].high == 5.25);
    assert_string_equal(r.measurements[0].unit, "V");
    assert_string_equal(r.measurements[1].name, "ripple");
    assert_true(isinf(r.measurements[1].low) && r.measurements[1].high == 0.05);
    assert_string_equal(r.measurements[2].name, "boot_ms");
    assert_true(r.measurements[2].low == 10 && isinf(r.measurements[2].high));
    assert_string_equal(r.measurements[2].unit, "ms");
    adapter_find("exec")->close(s);
}

static void test_output_bounded(void **state)
{
    /* 2 MB of stdout and 5000 stderr lines against a 4 KiB limit */
    const char *prog = script("flood.sh", "echo '{\"name\":\"first\",\"value\":1}'\n"
                                           "head -c 2000000 /dev/zero | tr '\\0' x\n"
                                           "for i in $(seq 5000); do echo \"noise $i\" >&2; done\n"
                                           "echo '{\"name\":\"late\",\"value\":2}'");
    void *s = open_exec(prog, NULL, NULL, "4096", NULL);
    adapter_step_ctx ctx = {.station = "x1", .lot_id = "LOT", .board_id = "B1", .image = NULL};
    adapter_result r = {0};
    adapter_find("exec")->test(s, &ctx, &r);
    assert_true(r.passed);
    assert_int_equal(r.n_measurements, 1); /* the line past the limit is not seen */
    assert_string_equal(r.measurements[0].name, "first");
    adapter_find("exec")->close(s);
}

static void test_verify_and_lock_reports(void **state)
{
    char body[512];
    snprintf(body, sizeof body,
             "case $1 in\n"
             " verify) [ \"$(stat -c %%a \"$2\")\" = 600 ] || exit 9; echo \"{\\\"readback_sha256\\\":\\\"$(sha256sum < \"$2\" | cut -c1-64)\\\"}\";;\n"
             " lock) [ -e %s/lock_ok ] && echo '{\"lock_verified\":true}';;\n"
             "esac; exit 0", dir);
    const char *prog = script("prog.sh", body);
    void *s = open_exec(prog, "{step} {image}", NULL, NULL, NULL);
    const adapter *ad = adapter_find("exec");
    adapter_step_ctx ctx = {.station = "x1", .lot_id = "LOT", .board_id = "B1", .image = &img};
    adapter_result r = {0};
    ad->verify(s, &ctx, &r); /* the image file holds exactly the release, mode 0600 */
    assert_true(r.passed);
    assert_string_equal(r.readback_sha256, img_sha);
    char other[65];
    memset(other, 'a', 64);
    other[64] = 0;
    adapter_image wrong = img;
    wrong.sha256 = other; /* a different release than the one on the board */
    ctx.image = &wrong;
    memset(&r, 0, sizeof r);
    ad->verify(s, &ctx, &r);
    /* The program's read-back, not the expected digest: the agent compares
     * (verify_mismatch: test_exec_provision's test_readback_checked_by_agent). */
    assert_true(r.passed);
    assert_string_equal(r.readback_sha256, img_sha);
    assert_string_not_equal(r.readback_sha256, wrong.sha256);
    ctx.image = &img;
    memset(&r, 0, sizeof r);
    ad->lock(s, &ctx, &r); /* exit 0 but no verification reported */
    assert_false(r.passed);
    assert_false(r.lock_verified);
    assert_string_equal(r.failure_mode, "lock_unverified");
    char p[128];
    snprintf(p, sizeof p, "%s/lock_ok", dir);
    fclose(fopen(p, "w"));
    memset(&r, 0, sizeof r);
    ad->lock(s, &ctx, &r);
    assert_true(r.passed);
    assert_true(r.lock_verified);
    ad->close(s);
}

static void test_config_errors(void **state)
{
    char err[256];
    assert_null(open_exec("relative/prog", NULL, NULL, NULL, err));
    assert_non_null(strstr(err, "absolute path"));
    assert_null(open_exec("/nonexistent/prog", NULL, NULL, NULL, err));
    assert_non_null(strstr(err, "not executable"));
    const char *prog = script("ok.sh", "exit 0");
    assert_null(open_exec(prog, NULL, "abc", NULL, err));
    assert_non_null(strstr(err, "exec.timeout_ms"));
    void *s = open_exec(prog, "{nosuch}", NULL, NULL, NULL);
    assert_non_null(s);
    adapter_step_ctx ctx = {.station = "x1", .lot_id = "LOT", .board_id = "B1", .image = &img};
    adapter_result r = {0};
    adapter_find("exec")->write(s, &ctx, &r);
    assert_false(r.passed);
    assert_string_equal(r.failure_mode, "exec_failed");
    adapter_find("exec")->close(s);
}

int main(void)
{
    signal(SIGPIPE, SIG_IGN);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_argv_substituted_without_shell),
        cmocka_unit_test(test_exit_status_and_stderr),
        cmocka_unit_test(test_timeout_kills_process_group),
        cmocka_unit_test(test_closed_pipes_wait_for_exit),
        cmocka_unit_test(test_json_line_measurements),
        cmocka_unit_test(test_openhtf_record),
        cmocka_unit_test(test_output_bounded),
        cmocka_unit_test(test_verify_and_lock_reports),
        cmocka_unit_test(test_config_errors),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
