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
