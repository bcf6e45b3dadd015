/* partition.c - time partitions of file sinks (see partition.h). */
#include "idbmount/sinks/partition.h"

#include <stdio.h>
#include <string.h>
#include <time.h>

const char *const partition_variables[] = {"YEAR",   "MONTH",  "DAY", "HOUR",
                                           "MINUTE", "SECOND", NULL};

/* The second that holds `ms`: rounded down, also before 1970, where C's
 * division would round -1 ms up into 1970. */
static time_t second_of(int64_t ms)
{
	return (time_t)(ms / 1000 - (ms % 1000 < 0));
}

/* The variable at `p` ("${HOUR}..."): its index, and its length in *len;
 * -1 for anything else. */
static int variable_at(const char *p, size_t *len)
{
	if (p[0] != '$' || p[1] != '{')
		return -1;
	for (int i = 0; partition_variables[i]; i++) {
		size_t n = strlen(partition_variables[i]);
		if (strncmp(p + 2, partition_variables[i], n) == 0 && p[2 + n] == '}') {
			*len = n + 3;
			return i;
		}
	}
	return -1;
}

void partition_render(const char *tmpl, int64_t ms, char *out, size_t outlen)
{
	time_t secs = second_of(ms);
	struct tm tm;
	gmtime_r(&secs, &tm);
	const int values[] = {tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday,
	                      tm.tm_hour,        tm.tm_min,     tm.tm_sec};
	size_t used = 0;
	out[0] = '\0';
	for (const char *p = tmpl; *p && used + 1 < outlen;) {
		size_t len = 0;
		int var = variable_at(p, &len);
		if (var >= 0) {
			int n = snprintf(out + used, outlen - used, "%0*d",
			                 var == PARTITION_YEAR ? 4 : 2, values[var]);
			used += n > 0 ? (size_t)n : 0;
			p += len;
		} else {
			out[used++] = *p++;
			out[used] = '\0';
		}
	}
	if (used >= outlen)
		out[outlen - 1] = '\0';
}

enum partition_period partition_period_of(const char *tmpl)
{
	enum partition_period period = PARTITION_YEAR;
	for (const char *p = tmpl; *p; p++) {
		size_t len = 0;
		int var = variable_at(p, &len);
		if (var > (int)period)
			period = (enum partition_period)var;
	}
	return period;
}

/* The start of the period holding `ms`, or with `next` of the one after. */
static int64_t period_bound(enum partition_period period, int64_t ms, int next)
{
	static const int64_t length_ms[] = {0, 0, 86400000, 3600000, 60000, 1000};
	if (period >= PARTITION_DAY) {
		int64_t len = length_ms[period];
		int64_t start = ms - ((ms % len) + len) % len;
		return next ? start + len : start;
	}
	time_t secs = second_of(ms);
	struct tm tm;
	gmtime_r(&secs, &tm);
	tm.tm_mday = 1;
	tm.tm_hour = tm.tm_min = tm.tm_sec = 0;
	if (period == PARTITION_YEAR)
		tm.tm_mon = 0;
	if (next) {
		if (period == PARTITION_YEAR)
			tm.tm_year++;
		else
			tm.tm_mon++; /* timegm carries month 12 into the next year */
	}
	return (int64_t)timegm(&tm) * 1000;
}

int64_t partition_period_start(enum partition_period period, int64_t ms)
{
	return period_bound(period, ms, 0);
}

int64_t partition_period_end(enum partition_period period, int64_t ms)
{
	return period_bound(period, ms, 1);
}
