/* fuzz_config.c - the configuration file reader (src/sinks/config.c), on any
 * text, read from a memory file (memfd) through config_load.
 *
 * Properties:
 *   - it answers 0 with no message, or -EINVAL with messages that are each
 *     "FILE:LINE: ..." with a line of the file (or the count of the ones
 *     left out);
 *   - what it accepts is valid: sink names of 1 to 64 [A-Za-z0-9._-],
 *     none twice, a type, values that pass their option's check again,
 *     a non-repeatable option at most once, max_records >= 1, retry_initial
 *     <= retry_max, a done_flag only with a partition, select patterns of
 *     three parts;
 *   - every entry belongs to the section libinih puts it in: the settings
 *     of each sink are, in order, the entries libinih reads under its
 *     [sink NAME] header, and libinih reads no entry elsewhere (checked on
 *     texts without NUL bytes, which libinih's string reader stops at, and
 *     without section titles libinih cuts short);
 *   - what it accepts, written out again as plain "[sink NAME]" and
 *     "name = value" lines, reads back as the same configuration.
 */
#include "fuzz.h"

#include "idbmount/util/buf.h"
#include "idbmount/sinks/config.h"

#include <ctype.h>
#include <errno.h>
#include <ini.h>
#include <stdbool.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

/* The longest section title libinih hands over whole. */
#define SECTION_TITLE_MAX 49

/* libinih's own reading of the text: each entry with its section. */
struct entry {
	char *section, *name, *value;
};

struct entries {
	struct entry *e;
	size_t n;
};

static int on_entry(void *user, const char *section, const char *name, const char *value)
{
	struct entries *es = user;
	struct entry *grown = realloc(es->e, (es->n + 1) * sizeof(*grown));
	FUZZ_CHECK(grown, "out of memory");
	es->e = grown;
	es->e[es->n++] = (struct entry){strdup(section), strdup(name), strdup(value)};
	return 1;
}

static void entries_free(struct entries *es)
{
	for (size_t i = 0; i < es->n; i++) {
		free(es->e[i].section);
		free(es->e[i].name);
		free(es->e[i].value);
	}
	free(es->e);
}

/* The sink a libinih section title names ("sink  NAME " names NAME), or
 * NULL. */
static const char *sink_of_section(char *title)
{
	if (strncmp(title, "sink ", 5) != 0)
		return NULL;
	char *name = title + 5;
	while (*name == ' ')
		name++;
	size_t n = strlen(name);
	while (n && name[n - 1] == ' ')
		name[--n] = '\0';
	return name;
}

/* Loads `text` through a memory file named by its /proc path. */
static int load(const char *text, size_t len, char *path, size_t path_len, struct config **cfg,
                char *err, size_t err_len)
{
	int fd = memfd_create("fuzz.ini", MFD_CLOEXEC);
	FUZZ_CHECK(fd >= 0, "memfd_create");
	FUZZ_CHECK(write(fd, text, len) == (ssize_t)len, "write");
	snprintf(path, path_len, "/proc/self/fd/%d", fd);
	int rc = config_load(path, cfg, err, err_len);
	close(fd);
	return rc;
}

static void check_messages(const char *err, const char *path, size_t lines)
{
	size_t plen = strlen(path);
	for (const char *line = err; *line;) {
		const char *end = strchr(line, '\n');
		FUZZ_CHECK(strncmp(line, path, plen) == 0 && line[plen] == ':',
		           "message without the file: %s", line);
		const char *p = line + plen + 1;
		if (strncmp(p, " ... and ", 9) != 0) {
			char *after = NULL;
			unsigned long n = strtoul(p, &after, 10);
			FUZZ_CHECK(after != p && *after == ':' && n >= 1 && n <= lines,
			           "message with a line outside 1..%zu: %s", lines, line);
		}
		line = end ? end + 1 : line + strlen(line);
	}
}

static void check_valid(const struct config *cfg)
{
	for (size_t i = 0; i < cfg->n_sinks; i++) {
		const struct sink_config *c = cfg->sinks[i];
		size_t n = strlen(c->name);
		FUZZ_CHECK(n >= 1 && n <= 64, "sink name '%s'", c->name);
		for (const char *p = c->name; *p; p++)
			FUZZ_CHECK(isalnum((unsigned char)*p) || strchr("-_.", *p),
			           "sink name '%s'", c->name);
		for (size_t k = 0; k < i; k++)
			FUZZ_CHECK(strcmp(cfg->sinks[k]->name, c->name) != 0, "sink %s twice",
			           c->name);
		FUZZ_CHECK(c->type, "sink %s without a type", c->name);
		for (size_t s = 0; s < c->n_settings; s++) {
			const struct sink_setting *set = &c->settings[s];
			char why[512];
			int64_t number;
			FUZZ_CHECK(config_parse_value(set->option, set->value, &number, why,
			                              sizeof(why)),
			           "sink %s: %s = '%s' was taken: %s", c->name, set->option->name,
			           set->value, why);
			for (size_t k = 0; k < s && !set->option->repeatable; k++)
				FUZZ_CHECK(c->settings[k].option != set->option,
				           "sink %s: %s twice", c->name, set->option->name);
		}
		FUZZ_CHECK(c->max_records >= 1, "sink %s: max_records %lld", c->name,
		           (long long)c->max_records);
		FUZZ_CHECK(c->retry_initial_ms <= c->retry_max_ms, "sink %s: retry %lld > %lld",
		           c->name, (long long)c->retry_initial_ms, (long long)c->retry_max_ms);
		FUZZ_CHECK(!*c->done_flag || *c->partition, "sink %s: done_flag without partition",
		           c->name);
		FUZZ_CHECK(c->n_select >= 1, "sink %s selects nothing", c->name);
		for (size_t k = 0; k < c->n_select; k++) {
			int parts = 1;
			for (const char *p = c->select[k]; *p; p++)
				parts += *p == '/';
			FUZZ_CHECK(parts == 3 && !strstr(c->select[k], "//") &&
			                   c->select[k][0] != '/',
			           "sink %s: select pattern '%s'", c->name, c->select[k]);
		}
	}
}

/* The settings of every sink, in order, are libinih's entries under its
 * header, and there are no other entries. */
static void check_sections(const struct config *cfg, const char *text, size_t len)
{
	if (memchr(text, '\0', len))
		return;
	struct entries es = {NULL, 0};
	char *copy = fuzz_strndup((const uint8_t *)text, len);
	ini_parse_string(copy, on_entry, &es);
	free(copy);
	/* libinih cuts section titles to 49 bytes (its MAX_SECTION); config.c
	 * reads the titles itself, whole. Such texts are not compared. */
	for (size_t k = 0; k < es.n; k++) {
		if (strlen(es.e[k].section) >= SECTION_TITLE_MAX) {
			entries_free(&es);
			return;
		}
	}
	size_t matched = 0;
	for (size_t i = 0; i < cfg->n_sinks; i++) {
		const struct sink_config *c = cfg->sinks[i];
		size_t s = 0;
		for (size_t k = 0; k < es.n; k++) {
			const char *sink = sink_of_section(es.e[k].section);
			if (!sink || strcmp(sink, c->name) != 0)
				continue;
			matched++;
			FUZZ_CHECK(s < c->n_settings &&
			                   strcmp(c->settings[s].option->name, es.e[k].name) == 0 &&
			                   strcmp(c->settings[s].value, es.e[k].value) == 0,
			           "sink %s: libinih reads '%s = %s' in its section, the sink "
			           "has setting %zu of %zu as '%s = %s'",
			           c->name, es.e[k].name, es.e[k].value, s, c->n_settings,
			           s < c->n_settings ? c->settings[s].option->name : "",
			           s < c->n_settings ? c->settings[s].value : "");
			s++;
		}
		FUZZ_CHECK(s == c->n_settings, "sink %s has %zu settings, libinih reads %zu",
		           c->name, c->n_settings, s);
	}
	FUZZ_CHECK(matched == es.n, "libinih reads %zu entries outside the sinks taken",
	           es.n - matched);
	entries_free(&es);
}

static void check_written_again(const struct config *cfg)
{
	struct buf b = BUF_INIT(SIZE_MAX / 2);
	for (size_t i = 0; i < cfg->n_sinks; i++) {
		const struct sink_config *c = cfg->sinks[i];
		buf_printf(&b, "[sink %s]\n", c->name);
		for (size_t s = 0; s < c->n_settings; s++)
			buf_printf(&b, "%s = %s\n", c->settings[s].option->name,
			           c->settings[s].value);
	}
	struct config *again = NULL;
	char path[64], err[4096];
	int rc = load(b.data ? b.data : "", b.len, path, sizeof(path), &again, err, sizeof(err));
	FUZZ_CHECK(rc == 0, "written again, it is refused:\n%s\n%s", b.data, err);
	FUZZ_CHECK(again->n_sinks == cfg->n_sinks, "%zu sinks, %zu read again", cfg->n_sinks,
	           again->n_sinks);
	for (size_t i = 0; i < cfg->n_sinks; i++) {
		const struct sink_config *c = cfg->sinks[i], *d = again->sinks[i];
		FUZZ_CHECK(strcmp(c->name, d->name) == 0 && c->type == d->type &&
		                   c->n_settings == d->n_settings &&
		                   c->max_records == d->max_records &&
		                   c->max_bytes == d->max_bytes && c->max_age_ms == d->max_age_ms &&
		                   c->retry_initial_ms == d->retry_initial_ms &&
		                   c->retry_max_ms == d->retry_max_ms &&
		                   c->max_line == d->max_line &&
		                   strcmp(c->prefix, d->prefix) == 0 &&
		                   strcmp(c->partition, d->partition) == 0 &&
		                   strcmp(c->done_flag, d->done_flag) == 0 &&
		                   c->flag_empty_periods == d->flag_empty_periods &&
		                   c->n_select == d->n_select,
		           "sink %s reads back otherwise", c->name);
		for (size_t s = 0; s < c->n_settings; s++)
			FUZZ_CHECK(c->settings[s].option == d->settings[s].option &&
			                   strcmp(c->settings[s].value, d->settings[s].value) == 0,
			           "sink %s: %s = '%s' reads back as '%s'", c->name,
			           c->settings[s].option->name, c->settings[s].value,
			           d->settings[s].value);
	}
	config_free(again);
	buf_free(&b);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const char *text = (const char *)data;
	struct config *cfg = NULL;
	char path[64], err[8192];
	int rc = load(text, size, path, sizeof(path), &cfg, err, sizeof(err));
	FUZZ_CHECK(rc == 0 || rc == -EINVAL, "rc %d: %s", rc, err);
	size_t lines = 1;
	for (size_t i = 0; i < size; i++)
		lines += data[i] == '\n';
	if (rc) {
		FUZZ_CHECK(!cfg && err[0], "refused without a message");
		check_messages(err, path, lines);
		return 0;
	}
	FUZZ_CHECK(cfg && !err[0], "taken with a message: %s", err);
	check_valid(cfg);
	check_sections(cfg, text, size);
	check_written_again(cfg);
	config_free(cfg);
	return 0;
}
