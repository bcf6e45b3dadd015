/* import_line.c - one line of `idbmountctl import` (see import_line.h).
 *
 * Apart from ctl_import.c so that a line can be read and checked on its own
 * (tests/fuzz/fuzz_import_line.c does, on any text).
 */
#include "idbmount/codec/import_line.h"

#include "idbmount/codec/json_text.h"
#include "idbmount/codec/key.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

/* Members a {"key":K,"value":V} line or a change line may hold. */
static const char *const wrapper_members[] = {
        "seq", "ts", "node", "client", "db", "store", "key", "op", "rev", "origin", "value",
};

void import_line_free(struct import_line *l)
{
	json_decref(l->doc);
	memset(l, 0, sizeof(*l));
}

/* The first member of object `doc` that a wrapper may not hold, or NULL. */
static const char *foreign_member(json_t *doc)
{
	const char *name;
	json_t *v;
	json_object_foreach(doc, name, v)
	{
		bool known = false;
		for (size_t i = 0; i < sizeof(wrapper_members) / sizeof(*wrapper_members); i++)
			if (strcmp(name, wrapper_members[i]) == 0)
				known = true;
		if (!known)
			return name;
	}
	return NULL;
}

int import_line_parse(const char *text, size_t len, bool inline_keys, struct import_line *l,
                      char *why, size_t why_len)
{
	memset(l, 0, sizeof(*l));
	char perr[200];
	l->doc = json_text_parse(text, len, perr, sizeof(perr));
	if (!l->doc) {
		/* One line: "line 1" says nothing. */
		const char *p = strncmp(perr, "line 1 ", 7) == 0 ? perr + 7 : perr;
		snprintf(why, why_len, "invalid JSON: %s", p);
		return -EINVAL;
	}
	json_t *doc = l->doc;
	json_t *key = json_is_object(doc) ? json_object_get(doc, "key") : NULL;
	json_t *value = key ? json_object_get(doc, "value") : NULL;
	json_t *op = key ? json_object_get(doc, "op") : NULL;
	const char *foreign = key && (value || op) ? foreign_member(doc) : "";
	if (key && (value || op) && !foreign) {
		const char *ops = op && json_is_string(op) ? json_string_value(op) : NULL;
		if (op && (!ops || (strcmp(ops, "put") != 0 && strcmp(ops, "delete") != 0))) {
			snprintf(why, why_len, "\"op\" must be \"put\" or \"delete\"");
			return -EINVAL;
		}
		l->del = ops && strcmp(ops, "delete") == 0;
		if (l->del && value) {
			snprintf(why, why_len, "a delete line has no \"value\"");
			return -EINVAL;
		}
		if (!l->del && !value) {
			snprintf(why, why_len, "a put line needs a \"value\"");
			return -EINVAL;
		}
		l->key = key;
		l->value = value;
		return 0;
	}
	if (inline_keys) {
		l->value = doc;
		return 0;
	}
	if (!json_is_object(doc) || !key)
		snprintf(why, why_len,
		         "not a {\"key\":K,\"value\":V} line (the store has out-of-line keys)");
	else if (!value && !op)
		snprintf(why, why_len, "a {\"key\":K} line needs \"value\" or \"op\":\"delete\"");
	else
		snprintf(why, why_len,
		         "unknown member \"%s\" in a {\"key\":K,\"value\":V} line (the store has "
		         "out-of-line keys)",
		         foreign);
	return -EINVAL;
}

/* The index in wrapper_members of the member name `lit` (a string
 * literal, quotes included), or -1 when it is none of them. */
static int wrapper_member_index(struct json_span lit)
{
	for (size_t i = 0; i < sizeof(wrapper_members) / sizeof(*wrapper_members); i++)
		if (lit.len == strlen(wrapper_members[i]) + 2 &&
		    memcmp(lit.text + 1, wrapper_members[i], lit.len - 2) == 0)
			return (int)i;
	return -1;
}

/* Splits the members of a line that is a wrapper (see import_line_parse):
 * 0, or IMPORT_LINE_DECLINED when they do not make one for certain. */
static int split_wrapper(const struct json_member *m, size_t n, struct import_line_split *out)
{
	const struct json_span *key = NULL, *value = NULL, *op = NULL;
	bool seen[sizeof(wrapper_members) / sizeof(*wrapper_members)] = {false};
	for (size_t i = 0; i < n; i++) {
		int w = wrapper_member_index(m[i].name);
		if (w < 0 || seen[w]) /* one given twice: import_line_parse reads it */
			return IMPORT_LINE_DECLINED;
		seen[w] = true;
		const char *name = wrapper_members[w];
		if (strcmp(name, "key") == 0) {
			key = &m[i].value;
		} else if (strcmp(name, "value") == 0) {
			value = &m[i].value;
		} else if (strcmp(name, "op") == 0) {
			op = &m[i].value;
		} else {
			/* Ignored, but the line must be JSON. */
			json_t *v = json_text_parse(m[i].value.text, m[i].value.len, NULL, 0);
			json_decref(v);
			if (!v)
				return IMPORT_LINE_DECLINED;
		}
	}
	bool put_op = op && op->len == 5 && memcmp(op->text, "\"put\"", 5) == 0;
	bool delete_op = op && op->len == 8 && memcmp(op->text, "\"delete\"", 8) == 0;
	if (!key || (op && !put_op && !delete_op) || (delete_op && value) || (!delete_op && !value))
		return IMPORT_LINE_DECLINED;
	out->del = delete_op;
	out->key = key->text;
	out->key_len = key->len;
	if (value) {
		out->value = value->text;
		out->value_len = value->len;
	}
	return 0;
}

/* Whether members `m` make the line a wrapper: 1, 0 when they make it
 * none for certain, -1 when a name is written otherwise than plainly
 * (escaped), so that only parsing it tells. */
static int is_wrapper(const struct json_member *m, size_t n)
{
	bool key = false, value_or_op = false, foreign = false;
	for (size_t i = 0; i < n; i++) {
		if (!json_text_plain_string(m[i].name.text, m[i].name.len))
			return -1;
		int w = wrapper_member_index(m[i].name);
		if (w < 0)
			foreign = true;
		else if (strcmp(wrapper_members[w], "key") == 0)
			key = true;
		else if (strcmp(wrapper_members[w], "value") == 0 ||
		         strcmp(wrapper_members[w], "op") == 0)
			value_or_op = true;
	}
	return key && value_or_op && !foreign;
}

int import_line_split(const char *text, size_t len, bool inline_keys, struct import_line_split *out)
{
	memset(out, 0, sizeof(*out));
	struct json_member *m = NULL;
	size_t n = 0;
	int wrapper = json_text_members(text, len, &m, &n) == 0 ? is_wrapper(m, n) : 0;
	int rc = IMPORT_LINE_DECLINED;
	if (wrapper == 1) {
		rc = split_wrapper(m, n, out);
		if (rc)
			memset(out, 0, sizeof(*out));
	} else if (wrapper == 0 && inline_keys) {
		/* A record: the whole line, its key at the keyPath. */
		out->value = text;
		out->value_len = len;
		rc = 0;
	}
	free(m);
	return rc;
}

void import_line_check(struct store *st, const struct store_path *path, bool inline_keys,
                       const char *text, size_t len, char *why, size_t why_len)
{
	struct import_line l;
	if (import_line_parse(text, len, inline_keys, &l, why, why_len) == 0) {
		char kwhy[200];
		if (l.del && key_check(l.key, kwhy, sizeof(kwhy)) != 0) {
			snprintf(why, why_len, "not a valid key: %s", kwhy);
		} else if (!l.del) {
			int rc = store_check_put(st, path, l.key, l.value, NULL);
			const char *err = store_last_error(st);
			if (rc)
				snprintf(why, why_len, "%s", *err ? err : strerror(-rc));
		}
	}
	import_line_free(&l);
}

const char *import_line_text(const char *text, size_t *len, uint64_t lineno)
{
	if (lineno == 1 && *len >= 3 && memcmp(text, "\xEF\xBB\xBF", 3) == 0) {
		text += 3;
		*len -= 3;
	}
	return text;
}

bool import_line_is_blank(const char *text, size_t len)
{
	return strspn(text, " \t\r") == len;
}
