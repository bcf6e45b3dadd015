/* config.c - reads and validates the configuration file (see config.h).
 *
 * Design. libinih does the lexing; this file collects each [sink NAME]
 * section's lines as given, with their line numbers, and validates a
 * section only once the file is read, because `type` (which decides what
 * keys are valid) may come after other keys. Every problem is collected,
 * not just the first, so one run of the daemon shows them all.
 *
 * Debian builds libinih without INI_HANDLER_LINENO, so the line numbers
 * come from our own reader (ini_parse_stream), which counts the lines it
 * hands to the parser: the handler for a line runs right after it is read.
 *
 * The common options and their embedded defaults (the numbers are decided
 * here; src/DESIGN.md, "Batches and their names" and "Retries and
 * parking", says what they are for):
 *   max_records 10000   a batch of 10,000 changes (~4 MB at 400 B) keeps
 *                       file counts low at high rates; the http type
 *                       lowers it to Flume's memory-channel
 *                       transactionCapacity (100);
 *   max_bytes   8M      so a batch of large records stays a sane file;
 *   max_age     500ms   half of the 1 s p99 end-to-end target
 *                       (src/DESIGN.md, "Targets");
 *   retry_initial 200ms, retry_max 60s   the backoff of a sink that is down;
 *   max_line    2048    Flume's LINE deserializer default maxLineLength:
 *                       longer lines are counted and reported;
 *   prefix      idbmount, partition none, done_flag none.
 */
#include "idbmount/sinks/config.h"
#include "config_internal.h"
#include "idbmount/sinks/partition.h"

#include <ctype.h>
#include <errno.h>
#include <ini.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_ERRORS 20
#define MAX_LINE   65535 /* bytes of a line, without its newline */

const struct sink_type *const sink_types[] = {&sink_type_dir, &sink_type_webhdfs, &sink_type_http,
                                              NULL};

const struct sink_type *sink_type_find(const char *name)
{
	for (size_t i = 0; sink_types[i]; i++)
		if (strcmp(sink_types[i]->name, name) == 0)
			return sink_types[i];
	return NULL;
}

/* ---- reading --------------------------------------------------------------- */

struct raw_line {
	char *name;
	char *value;
	int line;
};

struct raw_section {
	char *name; /* the sink's name */
	int line;
	struct raw_line *lines;
	size_t n_lines;
};

struct problem {
	int line;
	char msg[512];
};

struct reader {
	const char *path;
	FILE *file;
	int lines_done; /* lines read completely */
	int current;    /* the line the parser is on */
	struct raw_section *sections;
	size_t n_sections;
	struct raw_section *open; /* the section of the current line */
	char *err;
	size_t err_len;
	struct problem problems[MAX_ERRORS];
	size_t n_problems;
	int errors;
	int last_error_line;
	bool nomem;
};

__attribute__((format(printf, 3, 4))) static void report(struct reader *r, int line,
                                                         const char *fmt, ...)
{
	r->errors++;
	r->last_error_line = line;
	if (r->n_problems == MAX_ERRORS)
		return;
	struct problem *p = &r->problems[r->n_problems++];
	p->line = line;
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(p->msg, sizeof(p->msg), fmt, ap);
	va_end(ap);
}

/* The problems in line order (stable), one "FILE:LINE: message" each. */
static void write_problems(struct reader *r)
{
	for (size_t i = 1; i < r->n_problems; i++) {
		struct problem keep = r->problems[i];
		size_t k = i;
		for (; k > 0 && r->problems[k - 1].line > keep.line; k--)
			r->problems[k] = r->problems[k - 1];
		r->problems[k] = keep;
	}
	size_t used = 0;
	r->err[0] = '\0';
	for (size_t i = 0; i < r->n_problems && used + 1 < r->err_len; i++) {
		int n = snprintf(r->err + used, r->err_len - used, "%s%s:%d: %s", used ? "\n" : "",
		                 r->path, r->problems[i].line, r->problems[i].msg);
		if (n < 0)
			break;
		used += (size_t)n < r->err_len - used ? (size_t)n : r->err_len - used - 1;
	}
	if (r->errors > MAX_ERRORS && used + 1 < r->err_len)
		snprintf(r->err + used, r->err_len - used, "\n%s: ... and %d more problems",
		         r->path, r->errors - MAX_ERRORS);
}

/* fgets for the parser, counting lines. */
static char *read_line(char *str, int num, void *stream)
{
	struct reader *r = stream;
	r->current = r->lines_done + 1;
	char *got = fgets(str, num, r->file);
	if (got && strchr(got, '\n'))
		r->lines_done++;
	return got;
}

static bool valid_sink_name(const char *name)
{
	if (!*name || strlen(name) > 64)
		return false;
	for (const char *p = name; *p; p++)
		if (!isalnum((unsigned char)*p) && !strchr("-_.", *p))
			return false;
	return true;
}

/* Appends a name = value line to the open section. */
static int on_entry(struct reader *r, const char *name, const char *value, int line)
{
	struct raw_section *s = r->open;
	struct raw_line *grown = realloc(s->lines, (s->n_lines + 1) * sizeof(*grown));
	if (!grown) {
		r->nomem = true;
		return 0;
	}
	s->lines = grown;
	s->lines[s->n_lines].name = strdup(name);
	s->lines[s->n_lines].value = strdup(value);
	s->lines[s->n_lines].line = line;
	if (!s->lines[s->n_lines].name || !s->lines[s->n_lines].value)
		r->nomem = true;
	s->n_lines++;
	return 1;
}

/* inih tells us of sections only through entries, so section headers are
 * found by a pass of our own over the raw lines; this keeps empty sections
 * and their line numbers. The pass also refuses what inih would read out
 * of step with it: a line holding a NUL byte, which inih's strings end at,
 * and a line past MAX_LINE, which inih reads as two, so that every header
 * after it would be a line off and its entries would land in the section
 * before. Returns 0 or -errno. */
static int scan_sections(struct reader *r)
{
	char *line = NULL;
	size_t cap = 0;
	ssize_t got;
	int lineno = 0, rc = 0;
	rewind(r->file);
	while (!rc && (got = getline(&line, &cap, r->file)) >= 0) {
		lineno++;
		size_t len = (size_t)got;
		if (len && line[len - 1] == '\n')
			line[--len] = '\0';
		if (memchr(line, '\0', len)) {
			report(r, lineno, "holds a NUL byte (is the file text?)");
			continue;
		}
		if (len > MAX_LINE) {
			report(r, lineno, "is longer than %d bytes", MAX_LINE);
			continue;
		}
		char *p = line;
		if (lineno == 1 && (unsigned char)p[0] == 0xef && (unsigned char)p[1] == 0xbb &&
		    (unsigned char)p[2] == 0xbf)
			p += 3;
		/* The blanks libinih skips before a header (isspace). */
		while (isspace((unsigned char)*p))
			p++;
		if (*p != '[')
			continue;
		char *close = strchr(p, ']');
		if (!close)
			continue; /* inih reports it */
		*close = '\0';
		const char *title = p + 1;
		struct raw_section *grown =
		        realloc(r->sections, (r->n_sections + 1) * sizeof(*grown));
		if (!grown) {
			rc = -ENOMEM;
			break;
		}
		r->sections = grown;
		struct raw_section *s = &r->sections[r->n_sections++];
		memset(s, 0, sizeof(*s));
		s->line = lineno;
		s->name = NULL;
		if (strncmp(title, "sink ", 5) == 0) {
			const char *n = title + 5;
			while (*n == ' ')
				n++;
			s->name = strdup(n);
			if (!s->name) {
				rc = -ENOMEM;
				break;
			}
			size_t nlen = strlen(s->name);
			while (nlen && s->name[nlen - 1] == ' ')
				s->name[--nlen] = '\0';
		} else if (asprintf(&s->name, "\x01%s", title) < 0) {
			/* Keeps the title for the message. */
			s->name = NULL;
			rc = -ENOMEM;
		}
	}
	free(line);
	rewind(r->file);
	return rc;
}

/* Section handler with sections known in advance: entries arrive in file
 * order, so the open section is the last header before the entry's line. */
static int on_entry_ordered(void *user, const char *section, const char *name, const char *value)
{
	struct reader *r = user;
	(void)section;
	int line = r->current;
	struct raw_section *s = NULL;
	for (size_t i = 0; i < r->n_sections; i++)
		if (r->sections[i].line < line)
			s = &r->sections[i];
	if (!s) {
		report(r, line, "'%s' is outside any section: put it under [sink NAME]", name);
		return 1;
	}
	if (s->name[0] == '\x01')
		return 1; /* reported once, for the header */
	r->open = s;
	return on_entry(r, name, value, line);
}

/* ---- validating --------------------------------------------------------------- */

static const struct sink_option *find_option(const struct sink_option *table, const char *name)
{
	for (size_t i = 0; table && table[i].name; i++)
		if (strcmp(table[i].name, name) == 0)
			return &table[i];
	return NULL;
}

/* The option `name` of a sink of `type` (common, file, or the type's). */
static const struct sink_option *option_for(const struct sink_type *type, const char *name)
{
	const struct sink_option *o = find_option(config_common_options, name);
	if (!o && type->files)
		o = find_option(config_file_options, name);
	if (!o)
		o = find_option(type->options, name);
	return o;
}

/* The last setting of option `o` in `cfg`, or NULL. */
static const struct sink_setting *setting_of(const struct sink_config *cfg,
                                             const struct sink_option *o)
{
	const struct sink_setting *found = NULL;
	for (size_t i = 0; i < cfg->n_settings; i++)
		if (cfg->settings[i].option == o)
			found = &cfg->settings[i];
	return found;
}

static const char *value_or_default(const struct sink_config *cfg, const struct sink_option *o)
{
	const struct sink_setting *s = setting_of(cfg, o);
	if (s)
		return s->value;
	return o->default_value ? o->default_value : "";
}

/* The index of `text` among the choices "a|b|c" of `o` (checked valid). */
static int choice_index(const struct sink_option *o, const char *text)
{
	size_t len = strlen(text);
	int index = 0;
	for (const char *c = o->choices; c && *c; index++) {
		const char *bar = strchr(c, '|');
		size_t n = bar ? (size_t)(bar - c) : strlen(c);
		if (n == len && strncmp(c, text, n) == 0)
			return index;
		c = bar ? bar + 1 : c + n;
	}
	return 0;
}

/* Collects every value of repeatable option `o`, in file order. */
static int bind_list(const struct sink_config *cfg, const struct sink_option *o,
                     struct sink_strings *out)
{
	out->values = calloc(cfg->n_settings ? cfg->n_settings : 1, sizeof(*out->values));
	out->n = 0;
	if (!out->values)
		return -ENOMEM;
	for (size_t i = 0; i < cfg->n_settings; i++)
		if (cfg->settings[i].option == o)
			out->values[out->n++] = cfg->settings[i].value;
	return 0;
}

int sink_options_bind(const struct sink_config *cfg, const struct sink_option *table, void *ctx)
{
	for (const struct sink_option *o = table; o && o->name; o++) {
		void *at = (char *)ctx + o->offset;
		const char *text = value_or_default(cfg, o);
		int64_t number = 0;
		char why[256];
		/* Checked when the file was read: this parse cannot fail. */
		if (o->field == SINK_FIELD_NUMBER || o->field == SINK_FIELD_BOOL)
			config_parse_value(o, text, &number, why, sizeof(why));
		switch (o->field) {
		case SINK_FIELD_NONE:
			break;
		case SINK_FIELD_STRING:
			*(const char **)at = text;
			break;
		case SINK_FIELD_NUMBER:
			*(int64_t *)at = number;
			break;
		case SINK_FIELD_BOOL:
			*(bool *)at = number != 0;
			break;
		case SINK_FIELD_CHOICE:
			*(int *)at = choice_index(o, text);
			break;
		case SINK_FIELD_LIST:
			if (bind_list(cfg, o, at) != 0)
				return -ENOMEM;
			break;
		}
	}
	return 0;
}

void sink_options_unbind(const struct sink_option *table, void *ctx)
{
	for (const struct sink_option *o = table; o && o->name; o++) {
		if (o->field != SINK_FIELD_LIST)
			continue;
		struct sink_strings *list = (struct sink_strings *)((char *)ctx + o->offset);
		free(list->values);
		list->values = NULL;
		list->n = 0;
	}
}

static void sink_config_free(struct sink_config *c)
{
	if (!c)
		return;
	free(c->name);
	for (size_t i = 0; i < c->n_settings; i++)
		free(c->settings[i].value);
	free(c->settings);
	for (size_t i = 0; i < c->n_select; i++)
		free(c->select[i]);
	free(c->select);
	free(c);
}

/* Builds and checks one sink from its raw section. */
static struct sink_config *validate_section(struct reader *r, const struct raw_section *s,
                                            struct config *cfg)
{
	if (s->name[0] == '\x01') {
		report(r, s->line, "unknown section [%s]: sections are [sink NAME]", s->name + 1);
		return NULL;
	}
	if (!valid_sink_name(s->name)) {
		report(r, s->line,
		       "[sink %s]: a sink name is 1 to 64 letters, digits, '-', '_' or '.'",
		       s->name);
		return NULL;
	}
	for (const struct raw_section *e = r->sections; e < s; e++) {
		if (strcmp(e->name, s->name) == 0) {
			report(r, s->line, "[sink %s] is defined twice (first on line %d)", s->name,
			       e->line);
			return NULL;
		}
	}
	const struct raw_line *type_line = NULL;
	for (size_t i = 0; i < s->n_lines; i++)
		if (strcmp(s->lines[i].name, "type") == 0)
			type_line = &s->lines[i];
	if (!type_line) {
		report(r, s->line, "[sink %s] has no 'type = ' (one of dir, webhdfs, http)",
		       s->name);
		return NULL;
	}
	const struct sink_type *type = sink_type_find(type_line->value);
	if (!type) {
		report(r, type_line->line, "type '%s' is not a sink type (dir, webhdfs, http)",
		       type_line->value);
		return NULL;
	}
	struct sink_config *c = calloc(1, sizeof(*c));
	if (!c) {
		r->nomem = true;
		return NULL;
	}
	c->name = strdup(s->name);
	c->type = type;
	c->file = cfg->path;
	c->line = s->line;
	c->settings = calloc(s->n_lines ? s->n_lines : 1, sizeof(*c->settings));
	if (!c->name || !c->settings) {
		r->nomem = true;
		sink_config_free(c);
		return NULL;
	}
	int before = r->errors;
	for (size_t i = 0; i < s->n_lines; i++) {
		const struct raw_line *l = &s->lines[i];
		const struct sink_option *o = option_for(type, l->name);
		if (!o) {
			bool other = find_option(config_file_options, l->name) != NULL;
			report(r, l->line, "[sink %s]: unknown key '%s' for type %s%s", s->name,
			       l->name, type->name,
			       other ? " (batches of this type are not files)"
			             : " ('idbmountctl sink list' shows the keys)");
			continue;
		}
		const struct sink_setting *dup = setting_of(c, o);
		if (dup && !o->repeatable) {
			report(r, l->line, "[sink %s]: '%s' is set twice (first on line %d)",
			       s->name, l->name, dup->line);
			continue;
		}
		char why[512];
		int64_t number;
		if (!config_parse_value(o, l->value, &number, why, sizeof(why)) ||
		    (type->check_file_option && find_option(config_file_options, o->name) &&
		     !type->check_file_option(o->name, l->value, why, sizeof(why)))) {
			report(r, l->line, "[sink %s]: %s: %s", s->name, l->name, why);
			continue;
		}
		c->settings[c->n_settings].option = o;
		c->settings[c->n_settings].value = strdup(l->value);
		c->settings[c->n_settings].line = l->line;
		if (!c->settings[c->n_settings].value)
			r->nomem = true;
		c->n_settings++;
	}
	/* Required options of the type (a bad value was reported already). */
	for (size_t i = 0; type->options && type->options[i].name; i++) {
		bool given = false;
		for (size_t k = 0; k < s->n_lines && !given; k++)
			given = strcmp(s->lines[k].name, type->options[i].name) == 0;
		if (!type->options[i].default_value && !given)
			report(r, s->line, "[sink %s]: type %s needs '%s' (%s)", s->name,
			       type->name, type->options[i].name, type->options[i].help);
	}
	if (r->errors != before) {
		sink_config_free(c);
		return NULL;
	}
	const struct sink_option *select = find_option(config_common_options, "select");
	const struct sink_option *max_records = find_option(config_common_options, "max_records");
	char why[512];
	if (config_split_select(value_or_default(c, select), &c->select, &c->n_select, why,
	                        sizeof(why)) != 0) {
		report(r, s->line, "[sink %s]: select: %s", s->name, why);
		sink_config_free(c);
		return NULL;
	}
	/* The common options are bound into the sink's config once, here, as
	 * a sink binds its own into its context. */
	sink_options_bind(c, config_common_options, c);
	if (!setting_of(c, max_records) && type->default_max_records)
		c->max_records = type->default_max_records;
	if (type->files) {
		sink_options_bind(c, config_file_options, c);
	} else {
		c->prefix = "idbmount";
		c->partition = "";
		c->done_flag = "";
		c->flag_empty_periods = false;
	}
	if (c->max_records == 0) {
		const struct sink_setting *m = setting_of(c, max_records);
		report(r, m ? m->line : s->line, "[sink %s]: max_records must be at least 1",
		       s->name);
	}
	if (c->retry_initial_ms > c->retry_max_ms)
		report(r, s->line,
		       "[sink %s]: retry_initial (%lld ms) is above retry_max (%lld ms)", s->name,
		       (long long)c->retry_initial_ms, (long long)c->retry_max_ms);
	if (*c->done_flag && !*c->partition)
		report(r, s->line,
		       "[sink %s]: done_flag needs a partition (a flag marks a closed period)",
		       s->name);
	if (r->errors != before) {
		sink_config_free(c);
		return NULL;
	}
	return c;
}

void config_free(struct config *cfg)
{
	if (!cfg)
		return;
	for (size_t i = 0; i < cfg->n_sinks; i++)
		sink_config_free(cfg->sinks[i]);
	free(cfg->sinks);
	free(cfg->path);
	free(cfg);
}

static void free_reader(struct reader *r)
{
	for (size_t i = 0; i < r->n_sections; i++) {
		struct raw_section *s = &r->sections[i];
		for (size_t k = 0; k < s->n_lines; k++) {
			free(s->lines[k].name);
			free(s->lines[k].value);
		}
		free(s->lines);
		free(s->name);
	}
	free(r->sections);
}

int config_load(const char *path, struct config **out, char *err, size_t err_len)
{
	*out = NULL;
	err[0] = '\0';
	struct reader r;
	memset(&r, 0, sizeof(r));
	r.path = path;
	r.err = err;
	r.err_len = err_len;
	r.file = fopen(path, "r");
	if (!r.file) {
		int e = errno;
		snprintf(err, err_len, "%s: cannot read the configuration: %s", path, strerror(e));
		return -e;
	}
	struct config *cfg = calloc(1, sizeof(*cfg));
	int rc = cfg && (cfg->path = strdup(path)) ? scan_sections(&r) : -ENOMEM;
	/* Lines inih would misread stop the reading: nothing after them is
	 * sure. */
	bool unreadable = r.errors != 0;
	if (!rc && !unreadable) {
		/* Values keep their ';' and '#' (URLs, headers); continuation
		 * lines would hide a missing '='. The globals are Debian's
		 * runtime switches of its libinih build. */
		ini_allow_inline_comments = false;
		ini_allow_multiline = false;
		ini_use_stack = false;
		ini_allow_realloc = true;
		ini_max_line = MAX_LINE + 2; /* the newline and the NUL */
		int bad = ini_parse_stream(read_line, &r, on_entry_ordered, &r);
		if (bad == -2 || r.nomem)
			rc = -ENOMEM;
		else if (bad > 0 && r.last_error_line != bad)
			report(&r, bad,
			       "not a 'name = value' line, a [section] header or a comment");
	}
	for (size_t i = 0; !rc && !unreadable && i < r.n_sections; i++) {
		struct sink_config *c = validate_section(&r, &r.sections[i], cfg);
		if (!c)
			continue;
		struct sink_config **grown =
		        realloc(cfg->sinks, (cfg->n_sinks + 1) * sizeof(*grown));
		if (!grown) {
			sink_config_free(c);
			rc = -ENOMEM;
			break;
		}
		cfg->sinks = grown;
		cfg->sinks[cfg->n_sinks++] = c;
	}
	if (r.nomem)
		rc = -ENOMEM;
	fclose(r.file);
	free_reader(&r);
	if (!rc && r.errors) {
		write_problems(&r);
		rc = -EINVAL;
	}
	if (rc == -ENOMEM)
		snprintf(err, err_len, "%s: out of memory reading the configuration", path);
	if (rc) {
		config_free(cfg);
		return rc;
	}
	*out = cfg;
	return 0;
}
