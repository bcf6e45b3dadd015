/* config_values.c - the values of the configuration file (see config.h):
 * the options every sink type shares, with their embedded defaults, and how
 * a value is read and checked: numbers with units, choices, `select`
 * patterns, the prefix, partition templates and done flags. config.c reads
 * the file and validates each section with these.
 */
#include "config_internal.h"
#include "idbmount/sinks/config.h"
#include "idbmount/sinks/partition.h"

#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- value checks ---------------------------------------------------------- */

bool config_glob_match(const char *pattern, const char *text)
{
	/* Iterative '*' matching with one backtrack point: linear enough. */
	const char *star = NULL, *resume = NULL;
	while (*text) {
		if (*pattern == '*') {
			star = pattern++;
			resume = text;
		} else if (*pattern == *text) {
			pattern++;
			text++;
		} else if (star) {
			pattern = star + 1;
			text = ++resume;
		} else {
			return false;
		}
	}
	while (*pattern == '*')
		pattern++;
	return *pattern == '\0';
}

/* Splits a select value into patterns: separated by commas or blanks. */
int config_split_select(const char *value, char ***out, size_t *n, char *why, size_t why_len)
{
	*out = NULL;
	*n = 0;
	char *copy = strdup(value);
	if (!copy)
		return -ENOMEM;
	int rc = 0;
	char *save = NULL;
	for (char *p = strtok_r(copy, ", \t", &save); p && !rc; p = strtok_r(NULL, ", \t", &save)) {
		int parts = 1;
		for (const char *q = p; *q; q++)
			parts += *q == '/';
		const char *end = p;
		bool empty = false;
		for (const char *q = p;; q++) {
			if (*q == '/' || *q == '\0') {
				empty |= q == end;
				end = q + 1;
			}
			if (!*q)
				break;
		}
		if (parts > 3 || empty) {
			snprintf(why, why_len,
			         "'%s' is not a CLIENT[/DB[/STORE]] pattern (use * as a wildcard)",
			         p);
			rc = -EINVAL;
			break;
		}
		char **grown = realloc(*out, (*n + 1) * sizeof(*grown));
		if (!grown) {
			rc = -ENOMEM;
			break;
		}
		*out = grown;
		/* A missing level selects everything under it. */
		if (asprintf(&(*out)[*n], "%s%s", p,
		             parts == 1   ? "/*/*"
		             : parts == 2 ? "/*"
		                          : "") < 0) {
			rc = -ENOMEM;
			break;
		}
		(*n)++;
	}
	free(copy);
	if (!rc && *n == 0) {
		snprintf(why, why_len, "no pattern given (the default selects everything: */*/*)");
		rc = -EINVAL;
	}
	return rc;
}

static bool check_select(const char *value, char *why, size_t why_len)
{
	char **patterns = NULL;
	size_t n = 0;
	int rc = config_split_select(value, &patterns, &n, why, why_len);
	for (size_t i = 0; i < n; i++)
		free(patterns[i]);
	free(patterns);
	return rc == 0;
}

/* A file name part: no '/', not hidden from the readers ('.' and '_' make
 * Flume, NiFi, Flink and Hive skip a file), printable ASCII only. */
static bool check_prefix(const char *value, char *why, size_t why_len)
{
	if (!*value || value[0] == '.' || value[0] == '_') {
		snprintf(why, why_len,
		         "must not be empty or start with '.' or '_' (readers skip "
		         "such names)");
		return false;
	}
	for (const char *p = value; *p; p++) {
		if (!isalnum((unsigned char)*p) && !strchr("-_.+", *p)) {
			snprintf(why, why_len, "may hold only letters, digits and - _ . +");
			return false;
		}
	}
	if (strlen(value) > 100) {
		snprintf(why, why_len, "is longer than 100 characters");
		return false;
	}
	return true;
}

/* The done flag: one plain name; "_SUCCESS" is what Falcon and Oozie wait
 * for. It may start with '_' (readers skip it, which is the point). */
static bool check_done_flag(const char *value, char *why, size_t why_len)
{
	if (!*value)
		return true;
	if (value[0] == '.' || strchr(value, '/') || strlen(value) > 200) {
		snprintf(why, why_len, "must be a plain file name such as _SUCCESS");
		return false;
	}
	for (const char *p = value; *p; p++) {
		if ((unsigned char)*p < 0x21 || *p == 0x7f) {
			snprintf(why, why_len, "must not hold blanks or control characters");
			return false;
		}
	}
	return true;
}

/* A relative path of ${YEAR} ${MONTH} ${DAY} ${HOUR} ${MINUTE} ${SECOND} and
 * text. */
static bool check_partition(const char *value, char *why, size_t why_len)
{
	if (!*value)
		return true;
	if (value[0] == '/' || value[strlen(value) - 1] == '/') {
		snprintf(why, why_len, "must be a relative path without a leading or trailing '/'");
		return false;
	}
	const char *component = value;
	for (const char *p = value;; p++) {
		if (*p == '/' || *p == '\0') {
			size_t len = (size_t)(p - component);
			if (len == 0 || component[0] == '.' || component[0] == '_') {
				snprintf(why, why_len,
				         "empty path parts and parts starting with '.' or '_' are "
				         "not allowed (readers skip such directories)");
				return false;
			}
			component = p + 1;
		}
		if (!*p)
			break;
		if ((unsigned char)*p < 0x20 || *p == '\\') {
			snprintf(why, why_len, "must not hold control characters or '\\'");
			return false;
		}
		if (*p == '$') {
			bool known = false;
			for (size_t i = 0; partition_variables[i] && !known; i++) {
				size_t n = strlen(partition_variables[i]);
				if (p[1] == '{' && strncmp(p + 2, partition_variables[i], n) == 0 &&
				    p[2 + n] == '}') {
					known = true;
					p += 2 + n;
				}
			}
			if (!known) {
				snprintf(why, why_len,
				         "unknown variable at '%s': use ${YEAR}, "
				         "${MONTH}, ${DAY}, ${HOUR}, ${MINUTE}, ${SECOND}",
				         p);
				return false;
			}
		}
	}
	if (!strstr(value, "${")) {
		snprintf(why, why_len,
		         "has no ${...} time variable: every batch would land in "
		         "one directory and its period never closes");
		return false;
	}
	return true;
}

const struct sink_option config_common_options[] = {
        {.name = "type",
         .kind = SINK_OPT_CHOICE,
         .help = "the sink type",
         .choices = "dir|webhdfs|http"},
        {.name = "select",
         .kind = SINK_OPT_STRING,
         .default_value = "*/*/*",
         .help = "CLIENT[/DB[/STORE]] patterns, comma-separated, * matches any run of characters",
         .check = check_select},
        {.name = "max_records",
         .kind = SINK_OPT_COUNT,
         .default_value = "10000",
         .help = "a batch closes at this many changes",
         SINK_BIND(struct sink_config, max_records)},
        {.name = "max_bytes",
         .kind = SINK_OPT_SIZE,
         .default_value = "8M",
         .help = "... or at this many bytes of change lines",
         SINK_BIND(struct sink_config, max_bytes)},
        {.name = "max_age",
         .kind = SINK_OPT_DURATION,
         .default_value = "500ms",
         .help = "... or when its first change is this old",
         SINK_BIND(struct sink_config, max_age_ms)},
        {.name = "retry_initial",
         .kind = SINK_OPT_DURATION,
         .default_value = "200ms",
         .help = "first wait after a failed attempt (then doubled, with jitter)",
         SINK_BIND(struct sink_config, retry_initial_ms)},
        {.name = "retry_max",
         .kind = SINK_OPT_DURATION,
         .default_value = "60s",
         .help = "the longest wait between attempts",
         SINK_BIND(struct sink_config, retry_max_ms)},
        {.name = "max_line",
         .kind = SINK_OPT_COUNT,
         .default_value = "2048",
         .help = "lines longer than this many characters are counted and reported (Flume's "
                 "maxLineLength); 0 turns the check off",
         SINK_BIND(struct sink_config, max_line)},
        {0},
};

const struct sink_option config_file_options[] = {
        {.name = "prefix",
         .kind = SINK_OPT_STRING,
         .default_value = "idbmount",
         .help = "file names are PREFIX-NODE-EPOCH-FIRSTSEQ-LASTSEQ.jsonl",
         .check = check_prefix,
         SINK_BIND(struct sink_config, prefix)},
        {.name = "partition",
         .kind = SINK_OPT_STRING,
         .default_value = "",
         .help = "subdirectory template in UTC, e.g. ${YEAR}/${MONTH}/${DAY}/${HOUR}",
         .check = check_partition,
         SINK_BIND(struct sink_config, partition)},
        {.name = "done_flag",
         .kind = SINK_OPT_STRING,
         .default_value = "",
         .help = "empty file (e.g. _SUCCESS) written in a partition once its period closed and "
                 "its last batch landed",
         .check = check_done_flag,
         SINK_BIND(struct sink_config, done_flag)},
        {.name = "flag_empty_periods",
         .kind = SINK_OPT_BOOL,
         .default_value = "true",
         .help = "with done_flag: a period without any batch still gets its directory and flag "
                 "when it closes (from the sink's first period on), as Falcon feeds and Oozie "
                 "datasets expect; false: flags only where batches landed",
         SINK_BIND(struct sink_config, flag_empty_periods)},
        {0},
};

/* Parses digits into *out; false on anything else or overflow. */
static bool parse_digits(const char *text, size_t len, int64_t *out)
{
	if (len == 0 || len > 15)
		return false;
	int64_t v = 0;
	for (size_t i = 0; i < len; i++) {
		if (text[i] < '0' || text[i] > '9')
			return false;
		v = v * 10 + (text[i] - '0');
	}
	*out = v;
	return true;
}

bool config_parse_value(const struct sink_option *opt, const char *text, int64_t *number, char *why,
                        size_t why_len)
{
	size_t len = strlen(text);
	int64_t v = 0;
	*number = 0;
	switch (opt->kind) {
	case SINK_OPT_STRING:
		break;
	case SINK_OPT_COUNT:
		if (!parse_digits(text, len, &v) || v > 1000000000) {
			snprintf(why, why_len, "'%s' is not a whole number from 0 to 1000000000",
			         text);
			return false;
		}
		*number = v;
		break;
	case SINK_OPT_SIZE: {
		int64_t mult = 1;
		size_t digits = len;
		if (len && strchr("kKMG", text[len - 1])) {
			char s = text[len - 1];
			mult = s == 'G' ? 1 << 30 : s == 'M' ? 1 << 20 : 1 << 10;
			digits--;
		}
		if (!parse_digits(text, digits, &v) || v == 0 || v > (INT64_C(1) << 40) / mult) {
			snprintf(why, why_len,
			         "'%s' is not a size: a number of bytes above 0, optionally "
			         "with k, M or G",
			         text);
			return false;
		}
		*number = v * mult;
		break;
	}
	case SINK_OPT_DURATION: {
		size_t digits = 0;
		while (digits < len && text[digits] >= '0' && text[digits] <= '9')
			digits++;
		const char *unit = text + digits;
		int64_t mult = strcmp(unit, "ms") == 0  ? 1
		               : strcmp(unit, "s") == 0 ? 1000
		               : strcmp(unit, "m") == 0 ? 60000
		               : strcmp(unit, "h") == 0 ? 3600000
		                                        : 0;
		if (!mult || !parse_digits(text, digits, &v) || v == 0 ||
		    v > INT64_C(30) * 86400000 / mult) {
			snprintf(why, why_len,
			         "'%s' is not a duration: a number above 0 with a unit, ms, s, m "
			         "or h (e.g. 500ms, 30s)",
			         text);
			return false;
		}
		*number = v * mult;
		break;
	}
	case SINK_OPT_BOOL:
		if (!strcmp(text, "true") || !strcmp(text, "yes") || !strcmp(text, "on") ||
		    !strcmp(text, "1"))
			*number = 1;
		else if (!strcmp(text, "false") || !strcmp(text, "no") || !strcmp(text, "off") ||
		         !strcmp(text, "0"))
			*number = 0;
		else {
			snprintf(why, why_len, "'%s' is not true or false", text);
			return false;
		}
		break;
	case SINK_OPT_CHOICE: {
		bool found = false;
		for (const char *c = opt->choices; c && *c && !found;) {
			const char *bar = strchr(c, '|');
			size_t n = bar ? (size_t)(bar - c) : strlen(c);
			found = n == len && strncmp(c, text, n) == 0;
			c = bar ? bar + 1 : c + n;
		}
		if (!found) {
			snprintf(why, why_len, "'%s' is not one of %s", text, opt->choices);
			return false;
		}
		break;
	}
	case SINK_OPT_URL:
		if ((strncmp(text, "http://", 7) != 0 && strncmp(text, "https://", 8) != 0) ||
		    strpbrk(text, " \t\"<>\\^`{|}") || len < 9) {
			snprintf(why, why_len, "'%s' is not an http:// or https:// URL", text);
			return false;
		}
		break;
	case SINK_OPT_PATH:
		if (text[0] != '/') {
			snprintf(why, why_len, "'%s' is not an absolute path", text);
			return false;
		}
		break;
	}
	if (opt->check && !opt->check(text, why, why_len))
		return false;
	return true;
}
