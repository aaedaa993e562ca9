/* SPDX-License-Identifier: Apache-2.0 */
/* test_eol.c - the end-of-line check (core/eol.c): a unit passes only with
 * the release's version and digest verified in it, and provisioning,
 * calibration and a verified debug-port lock when its flow promises them;
 * the first thing missing is named. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <string.h>

#include "eol.h"

static void test_end_of_line_check(void **state)
{
    char buf[256];
    eol_def all = {1, 1, 1};
    eol_unit good = {"1.1.0", "ab12", "1.1.0", "ab12", 1, 1, 1};
    assert_null(eol_check(&all, &good, buf, sizeof buf));
    eol_unit u = good;
    u.verified_version = "1.0.0"; /* an old image verified in it */
    assert_non_null(strstr(eol_check(&all, &u, buf, sizeof buf), "firmware_version: verified \"1.0.0\", release \"1.1.0\""));
    u = good;
    u.verified_sha256 = "";
    assert_true(strncmp(eol_check(&all, &u, buf, sizeof buf), "firmware_sha256:", 16) == 0);
    u = good;
    u.release_version = NULL; /* never bound to a release */
    assert_true(strncmp(eol_check(&all, &u, buf, sizeof buf), "firmware_version:", 17) == 0);
    u = good;
    u.provisioned = 0;
    assert_string_equal(eol_check(&all, &u, buf, sizeof buf), "provisioning: not present");
    u = good;
    u.calibrated = 0;
    assert_string_equal(eol_check(&all, &u, buf, sizeof buf), "calibration: not present");
    u = good;
    u.lock_verified = 0; /* every test passed, the debug port is open */
    assert_string_equal(eol_check(&all, &u, buf, sizeof buf), "lock: debug port lock not verified");
    eol_def none = {0, 0, 0}; /* what the flow does not promise is not asked */
    eol_unit bare = {"1.1.0", "ab12", "1.1.0", "ab12", 0, 0, 0};
    assert_null(eol_check(&none, &bare, buf, sizeof buf));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_end_of_line_check),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
