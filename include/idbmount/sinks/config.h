/* config.h - the daemon's configuration file (`idbmount --config FILE`).
 *
 * An INI file, read with Debian's libinih, one section per sink:
 *
 *   [sink spool]
 *   type = dir
 *   path = /var/spool/idbmount
 *   select = alice/shop/orders, bob   ; CLIENT[/DB[/STORE]], * as a wildcard
 *   max_records = 10000
 *
 * Every setting has an embedded default (a file with no sections is valid:
 * no sinks, as without --config). Unknown sections, unknown keys, keys
 * given twice, missing required options and bad values are rejected when
 * the daemon starts, each with "FILE:LINE: what is wrong" on stderr, so a
 * typo never silently becomes a default. Lines starting with ';' or '#'
 * are comments; there are no inline comments (a ';' belongs to the value,
 * e.g. in an HTTP header) and no continuation lines. A line longer than
 * 65535 bytes, or holding a NUL byte, is refused.
 */
#ifndef IDBMOUNT_CONFIG_H
#define IDBMOUNT_CONFIG_H

#include "idbmount/sinks/sink.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* One `name = value` line as given (type options and common ones). */
struct sink_setting {
	const struct sink_option *option;
	char *value;
	int line;
};

/* One [sink NAME] section, validated. */
struct sink_config {
	char *name;
	const struct sink_type *type;
	const char *file; /* the config file, for messages */
	int line;         /* of the section header */
	struct sink_setting *settings;
	size_t n_settings;

	/* The common options, parsed (see config.c for their defaults). */
	char **select; /* "CLIENT/DB/STORE" patterns, '*' matches any run */
	size_t n_select;
	int64_t max_records;
	int64_t max_bytes;
	int64_t max_age_ms;
	int64_t retry_initial_ms;
	int64_t retry_max_ms;
	int64_t max_line;        /* characters; 0: lines are not checked */
	const char *prefix;      /* file names (files types) */
	const char *partition;   /* "" for none */
	const char *done_flag;   /* "" for none */
	bool flag_empty_periods; /* flag periods that got no batch too */
};

struct config {
	char *path;
	struct sink_config **sinks;
	size_t n_sinks;
};

/* Reads and validates `path`. Returns 0, or -EINVAL with every problem
 * found (one "FILE:LINE: message" per line) in `err`, or -errno when the
 * file cannot be read. */
int config_load(const char *path, struct config **out, char *err, size_t err_len);
void config_free(struct config *cfg);

/* Fills the fields of `ctx` that the options of `table` are bound to
 * (SINK_BIND, sink.h), each from its value in `cfg` or its default, as the
 * config check parsed it. A sink's init calls it once; nothing looks an
 * option up by name after. Returns 0 or -ENOMEM. */
int sink_options_bind(const struct sink_config *cfg, const struct sink_option *table, void *ctx);
/* Frees what binding `table` into `ctx` allocated (the lists). */
void sink_options_unbind(const struct sink_option *table, void *ctx);

/* The options every sink has, and those of file-writing types; each ends
 * with {NULL}. For `idbmountctl sink list`. */
extern const struct sink_option config_common_options[];
extern const struct sink_option config_file_options[];

/* Parses a value of `kind` (SIZE in bytes, DURATION in ms, BOOL as 0/1).
 * false with the reason in `why`. */
bool config_parse_value(const struct sink_option *opt, const char *text, int64_t *number, char *why,
                        size_t why_len);

/* Whether `text` matches `pattern`, where '*' matches any run of bytes. */
bool config_glob_match(const char *pattern, const char *text);

#endif
