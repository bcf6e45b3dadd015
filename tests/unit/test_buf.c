/* test_buf.c - struct buf (src/util/buf.c): the hard cap, and the sticky
 * error the renderers rely on (the first failure stays, later appends do
 * nothing, rolling back to a mark clears it), and that a renderer that
 * fails leaves the buffer as it found it. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "idbmount/codec/json_text.h"
#include "idbmount/util/buf.h"

#include <errno.h>

static void test_cap_refuses_and_keeps(void **state)
{
	(void)state;
	struct buf b = BUF_INIT(8);
	assert_int_equal(buf_append_str(&b, "abcdef"), 0);
	assert_int_equal(buf_append_str(&b, "ghi"), -EFBIG);
	assert_int_equal(b.len, 6);
	assert_string_equal(b.data, "abcdef");
	buf_free(&b);
}

static void test_error_sticks(void **state)
{
	(void)state;
	struct buf b = BUF_INIT(8);
	assert_int_equal(buf_append_str(&b, "abcdef"), 0);
	assert_int_equal(buf_append_str(&b, "ghi"), -EFBIG);
	/* A short append would fit, but the text already has a hole. */
	assert_int_equal(buf_append_char(&b, 'x'), -EFBIG);
	assert_int_equal(buf_printf(&b, "%d", 1), -EFBIG);
	assert_int_equal(buf_error(&b), -EFBIG);
	assert_string_equal(b.data, "abcdef");
	/* buf_take hands nothing out of a failed buffer. */
	assert_null(buf_take(&b, NULL));
	buf_free(&b);
}

static void test_fail_keeps_the_first(void **state)
{
	(void)state;
	struct buf b = BUF_INIT(64);
	assert_int_equal(buf_fail(&b, -EINVAL), -EINVAL);
	assert_int_equal(buf_fail(&b, -ENOMEM), -EINVAL);
	assert_int_equal(buf_append_str(&b, "a"), -EINVAL);
	assert_int_equal(b.len, 0);
	buf_free(&b);
}

static void test_reset_and_rollback_clear(void **state)
{
	(void)state;
	struct buf b = BUF_INIT(8);
	assert_int_equal(buf_append_str(&b, "abc"), 0);
	size_t mark = b.len;
	assert_int_equal(buf_append_str(&b, "defghijk"), -EFBIG);
	assert_int_equal(buf_set_len(&b, mark), 0);
	assert_int_equal(buf_error(&b), 0);
	assert_int_equal(buf_append_str(&b, "de"), 0);
	assert_string_equal(b.data, "abcde");
	assert_int_equal(buf_append_str(&b, "fghijk"), -EFBIG);
	buf_reset(&b);
	assert_int_equal(buf_error(&b), 0);
	assert_int_equal(buf_append_str(&b, "xy"), 0);
	assert_string_equal(b.data, "xy");
	buf_free(&b);
}

/* A renderer that fails rolls back to where it began and clears only its
 * own error; one given a failed buffer appends nothing and says so. */
static void test_renderer_leaves_the_buffer(void **state)
{
	(void)state;
	struct buf b = BUF_INIT(16);
	assert_int_equal(buf_append_str(&b, "[1,"), 0);
	json_t *big = json_pack("{s:s}", "k", "a value longer than the cap");
	assert_int_equal(json_text_compact(&b, big), -EFBIG);
	assert_string_equal(b.data, "[1,");
	assert_int_equal(buf_error(&b), 0);
	assert_int_equal(buf_append_str(&b, "0123456789abcd"), -EFBIG);
	json_t *small = json_integer(2);
	assert_int_equal(json_text_compact(&b, small), -EFBIG);
	assert_string_equal(b.data, "[1,");
	assert_int_equal(buf_error(&b), -EFBIG);
	json_decref(small);
	json_decref(big);
	buf_free(&b);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	        cmocka_unit_test(test_cap_refuses_and_keeps),
	        cmocka_unit_test(test_error_sticks),
	        cmocka_unit_test(test_fail_keeps_the_first),
	        cmocka_unit_test(test_reset_and_rollback_clear),
	        cmocka_unit_test(test_renderer_leaves_the_buffer),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
