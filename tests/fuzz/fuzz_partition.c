/* fuzz_partition.c - the partition template renderer and its periods
 * (src/sinks/partition.c).
 *
 * The input is 8 bytes of time (ms since the epoch, folded into the years
 * 0000 to 9999, which a four-digit ${YEAR} can name), 1 byte of output
 * size, and the template. Properties:
 *   - the rendering is NUL-terminated within the buffer, and a rendering
 *     into a smaller buffer is the start of the full one;
 *   - a template without "${" renders as itself;
 *   - the period of the time holds it (start <= ms < end), the next period
 *     starts where it ends, and every time of the period renders as its
 *     start does, while the next period renders otherwise (when the
 *     template names a variable): what done flags rely on;
 *   - a template config.c accepts renders as a relative path without
 *     empty parts.
 */
#include "fuzz.h"

#include "idbmount/sinks/config.h"
#include "idbmount/sinks/partition.h"

#include <string.h>

/* 0000-01-01T00:00:00Z and 10000-01-01T00:00:00Z in ms. */
#define YEAR_0_MS     (-62167219200000LL)
#define YEAR_10000_MS (253402300800000LL)

static const struct sink_option *partition_option(void)
{
	for (size_t i = 0; config_file_options[i].name; i++)
		if (strcmp(config_file_options[i].name, "partition") == 0)
			return &config_file_options[i];
	abort();
}

static void render(const char *tmpl, int64_t ms, char *out, size_t outlen)
{
	partition_render(tmpl, ms, out, outlen);
	FUZZ_CHECK(memchr(out, '\0', outlen), "not terminated within %zu bytes", outlen);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 9)
		return 0;
	uint64_t raw;
	memcpy(&raw, data, sizeof(raw));
	int64_t ms = YEAR_0_MS + (int64_t)(raw % (uint64_t)(YEAR_10000_MS - YEAR_0_MS));
	size_t small = 1 + data[8] % 64;
	char *tmpl = fuzz_strndup(data + 9, size - 9);

	char full[4096], cut[64];
	render(tmpl, ms, full, sizeof(full));
	size_t full_len = strlen(full);
	render(tmpl, ms, cut, small);
	size_t want = full_len < small - 1 ? full_len : small - 1;
	FUZZ_CHECK(strlen(cut) == want && memcmp(cut, full, want) == 0,
	           "'%s' cut to %zu bytes is '%s'", full, small, cut);
	bool variables = strstr(tmpl, "${") != NULL;
	if (!variables && strlen(tmpl) < sizeof(full))
		FUZZ_CHECK(strcmp(full, tmpl) == 0, "'%s' renders as '%s'", tmpl, full);

	enum partition_period period = partition_period_of(tmpl);
	int64_t start = partition_period_start(period, ms);
	int64_t end = partition_period_end(period, ms);
	FUZZ_CHECK(start <= ms && ms < end, "%lld is outside its period %lld..%lld", (long long)ms,
	           (long long)start, (long long)end);
	FUZZ_CHECK(partition_period_start(period, end) == end &&
	                   partition_period_start(period, end - 1) == start &&
	                   partition_period_end(period, start) == end,
	           "periods of %lld do not follow each other", (long long)ms);
	char at_start[4096], at_last[4096], next[4096];
	render(tmpl, start, at_start, sizeof(at_start));
	render(tmpl, end - 1, at_last, sizeof(at_last));
	render(tmpl, end, next, sizeof(next));
	FUZZ_CHECK(strcmp(full, at_start) == 0 && strcmp(full, at_last) == 0,
	           "one period renders as '%s', '%s' and '%s'", at_start, full, at_last);
	if (period != PARTITION_YEAR || strstr(tmpl, "${YEAR}"))
		if (strstr(tmpl, "${") && end < YEAR_10000_MS)
			FUZZ_CHECK(strcmp(full, next) != 0, "the next period renders as '%s' too",
			           next);

	char why[256];
	int64_t ignored;
	if (full_len > 0 && full_len < sizeof(full) - 1 &&
	    config_parse_value(partition_option(), tmpl, &ignored, why, sizeof(why))) {
		FUZZ_CHECK(full[0] != '/' && full[full_len - 1] != '/' && !strstr(full, "//"),
		           "accepted template '%s' renders as '%s'", tmpl, full);
	}
	free(tmpl);
	return 0;
}
