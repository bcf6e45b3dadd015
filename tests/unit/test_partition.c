/* test_partition.c - unit tests of time partitions (src/sinks/partition.c): the
 * template's rendering, its period, and period bounds at the edges of the
 * calendar (a year's last millisecond, a leap February), plus a seeded
 * sweep showing that consecutive periods leave no gap and never overlap,
 * which is what a done flag for every period relies on. The sink tests
 * only see ${SECOND} periods (they cannot wait for an hour). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "idbmount/sinks/partition.h"

/* 2026-12-31T23:59:59.999Z, the last millisecond of a year. */
#define YEAR_END_MS (1798761599000LL + 999)

static void test_render(void **state)
{
	(void)state;
	char out[128];
	partition_render("${YEAR}/${MONTH}/${DAY}/${HOUR}/${MINUTE}/${SECOND}",
	                 1795428307000LL + 42, out, sizeof(out));
	assert_string_equal(out, "2026/11/23/10/05/07");
	partition_render("y=${YEAR}/m=${MONTH}/feed", 1795428307000LL, out, sizeof(out));
	assert_string_equal(out, "y=2026/m=11/feed");
	/* Not a variable: kept as it is (config.c refuses such templates). */
	partition_render("${WEEK}/${YEAR", 1795428307000LL, out, sizeof(out));
	assert_string_equal(out, "${WEEK}/${YEAR");
	/* Cut short, still terminated. */
	partition_render("${YEAR}/${MONTH}", 1795428307000LL, out, 6);
	assert_string_equal(out, "2026/");
}

static void test_period_of(void **state)
{
	(void)state;
	assert_int_equal(partition_period_of("${YEAR}"), PARTITION_YEAR);
	assert_int_equal(partition_period_of("${YEAR}/${MONTH}"), PARTITION_MONTH);
	assert_int_equal(partition_period_of("${YEAR}/${MONTH}/${DAY}"), PARTITION_DAY);
	assert_int_equal(partition_period_of("${YEAR}/${MONTH}/${DAY}/${HOUR}"), PARTITION_HOUR);
	assert_int_equal(partition_period_of("d=${DAY}/h=${HOUR}/${MINUTE}"), PARTITION_MINUTE);
	assert_int_equal(partition_period_of("${MINUTE}/${SECOND}"), PARTITION_SECOND);
	/* The finest, wherever it stands. */
	assert_int_equal(partition_period_of("${HOUR}/${YEAR}"), PARTITION_HOUR);
}

static void test_bounds_at_the_end_of_a_year(void **state)
{
	(void)state;
	const int64_t ms = YEAR_END_MS;
	assert_int_equal(partition_period_start(PARTITION_YEAR, ms), 1767225600000LL);
	assert_int_equal(partition_period_end(PARTITION_YEAR, ms), 1798761600000LL);
	assert_int_equal(partition_period_start(PARTITION_MONTH, ms), 1796083200000LL);
	assert_int_equal(partition_period_end(PARTITION_MONTH, ms), 1798761600000LL);
	assert_int_equal(partition_period_start(PARTITION_DAY, ms), 1798675200000LL);
	assert_int_equal(partition_period_end(PARTITION_DAY, ms), 1798761600000LL);
	assert_int_equal(partition_period_start(PARTITION_HOUR, ms), 1798758000000LL);
	assert_int_equal(partition_period_start(PARTITION_MINUTE, ms), 1798761540000LL);
	assert_int_equal(partition_period_start(PARTITION_SECOND, ms), 1798761599000LL);
	for (int p = PARTITION_DAY; p <= PARTITION_SECOND; p++)
		assert_int_equal(partition_period_end((enum partition_period)p, ms),
		                 1798761600000LL);
	/* The first millisecond of the next year starts every period. */
	for (int p = PARTITION_YEAR; p <= PARTITION_SECOND; p++)
		assert_int_equal(partition_period_start((enum partition_period)p, ms + 1),
		                 1798761600000LL);
}

static void test_a_leap_february(void **state)
{
	(void)state;
	const int64_t ms = 1835438400000LL; /* 2028-02-29T12:00:00Z */
	assert_int_equal(partition_period_start(PARTITION_MONTH, ms), 1832976000000LL);
	assert_int_equal(partition_period_end(PARTITION_MONTH, ms), 1835481600000LL);
}

/* Every period's end is the next one's start, the start renders to the
 * same partition as any time inside, and the end to another. */
static void test_periods_tile_time(void **state)
{
	(void)state;
	static const char *const tmpl[] = {
	        "${YEAR}",
	        "${YEAR}/${MONTH}",
	        "${YEAR}/${MONTH}/${DAY}",
	        "${YEAR}/${MONTH}/${DAY}/${HOUR}",
	        "${YEAR}/${MONTH}/${DAY}/${HOUR}/${MINUTE}",
	        "${YEAR}/${MONTH}/${DAY}/${HOUR}/${MINUTE}/${SECOND}",
	};
	uint64_t x = 0x9E3779B97F4A7C15ull;
	for (int i = 0; i < 20000; i++) {
		x ^= x << 13;
		x ^= x >> 7;
		x ^= x << 17;
		/* 1970 to about 2100 */
		int64_t ms = (int64_t)(x % 4102444800000ull);
		enum partition_period p = (enum partition_period)(i % 6);
		int64_t start = partition_period_start(p, ms);
		int64_t end = partition_period_end(p, ms);
		assert_true(start <= ms && ms < end);
		assert_int_equal(partition_period_start(p, end), end);
		assert_int_equal(partition_period_end(p, start), end);
		assert_int_equal(partition_period_start(p, end - 1), start);
		char a[64], b[64], c[64];
		partition_render(tmpl[p], ms, a, sizeof(a));
		partition_render(tmpl[p], start, b, sizeof(b));
		partition_render(tmpl[p], end, c, sizeof(c));
		assert_string_equal(a, b);
		assert_string_not_equal(a, c);
	}
}

/* Before 1970 a millisecond belongs to the second that starts before it,
 * as after: -1 is 1969-12-31T23:59:59.999Z, not 1970. */
static void test_times_before_1970(void **state)
{
	(void)state;
	char out[64];
	partition_render("${YEAR}/${MONTH}/${DAY}/${HOUR}/${MINUTE}/${SECOND}", -1, out,
	                 sizeof(out));
	assert_string_equal(out, "1969/12/31/23/59/59");
	/* 0031-09-09T01:59:59.999Z, the last millisecond of its hour. */
	partition_render("${HOUR}", -61167218400001LL, out, sizeof(out));
	assert_string_equal(out, "01");
	for (int p = PARTITION_YEAR; p <= PARTITION_SECOND; p++) {
		int64_t start = partition_period_start((enum partition_period)p, -1);
		int64_t end = partition_period_end((enum partition_period)p, -1);
		assert_true(start <= -1);
		assert_int_equal(end, 0);
	}
	assert_int_equal(partition_period_start(PARTITION_YEAR, -1), -31536000000LL);
	assert_int_equal(partition_period_start(PARTITION_MONTH, -1), -2678400000LL);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	        cmocka_unit_test(test_render),
	        cmocka_unit_test(test_period_of),
	        cmocka_unit_test(test_bounds_at_the_end_of_a_year),
	        cmocka_unit_test(test_a_leap_february),
	        cmocka_unit_test(test_periods_tile_time),
	        cmocka_unit_test(test_times_before_1970),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
