/* SPDX-License-Identifier: Apache-2.0 */
/* test_changeover.c - exactly one version_changeover per actual change. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <string.h>

#include "changeover.h"

static void test_first_write_is_not_a_changeover(void **state)
{
    spool_lot lot = {0};
    changeover co;
    assert_int_equal(changeover_note_write(&lot, 1, "1.0.0", "B1", &co), 0);
    assert_int_equal(lot.written_revision, 1);
    assert_string_equal(lot.written_version, "1.0.0");
    assert_string_equal(lot.last_written_board, "B1");
}

static void test_new_version_switches_once(void **state)
{
    spool_lot lot = {0};
    changeover co;
    assert_int_equal(changeover_note_write(&lot, 1, "1.0.0", "B1", &co), 0);
    assert_int_equal(changeover_note_write(&lot, 1, "1.0.0", "B2", &co), 0);
    memset(&co, 0, sizeof co);
    assert_int_equal(changeover_note_write(&lot, 2, "1.1.0", "B3", &co), 1);
    assert_string_equal(co.from_version, "1.0.0");
    assert_string_equal(co.to_version, "1.1.0");
    assert_string_equal(co.last_board_old, "B2");
    assert_string_equal(co.first_board_new, "B3");
    assert_int_equal(co.from_revision, 1);
    assert_int_equal(co.to_revision, 2);
    assert_int_equal(changeover_note_write(&lot, 2, "1.1.0", "B4", &co), 0);
    assert_string_equal(lot.last_written_board, "B4");
}

static void test_late_old_write_does_not_switch_back(void **state)
{
    spool_lot lot = {0};
    changeover co;
    changeover_note_write(&lot, 1, "1.0.0", "B1", &co);
    assert_int_equal(changeover_note_write(&lot, 2, "1.1.0", "B3", &co), 1);
    /* B2 was dispatched under revision 1 and verified after B3 */
    assert_int_equal(changeover_note_write(&lot, 1, "1.0.0", "B2", &co), 0);
    assert_string_equal(lot.written_version, "1.1.0");
    assert_int_equal(changeover_note_write(&lot, 2, "1.1.0", "B4", &co), 0);
}

static void test_revision_with_same_version_is_no_change(void **state)
{
    spool_lot lot = {0};
    changeover co;
    changeover_note_write(&lot, 1, "1.0.0", "B1", &co);
    assert_int_equal(changeover_note_write(&lot, 2, "1.0.0", "B2", &co), 0);
    assert_int_equal(lot.written_revision, 2);
    /* and going back to an earlier version is a real change too */
    assert_int_equal(changeover_note_write(&lot, 3, "0.9.0", "B3", &co), 1);
    assert_string_equal(co.from_version, "1.0.0");
    assert_int_equal(co.from_revision, 2);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_first_write_is_not_a_changeover),
        cmocka_unit_test(test_new_version_switches_once),
        cmocka_unit_test(test_late_old_write_does_not_switch_back),
        cmocka_unit_test(test_revision_with_same_version_is_no_change),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
