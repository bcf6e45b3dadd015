/* json_text.c - JSON writing with ECMAScript numbers, parsing, and splitting
 * a text without parsing it (see json_text.h). The pretty layout of a text
 * that is not parsed is json_text_layout.c's.
 *
 * One writer serves both layouts: `indent` 0 is compact, 2 is the pretty
 * layout of JSON.stringify(value, null, 2). Empty arrays and objects are
 * written as [] and {} in both, as JSON.stringify does.
 */
#include "json_text_internal.h"

#include "idbmount/codec/number_text.h"
#include "utf8.h"

#include <errno.h>
#include <math.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Appends the characters of a string literal for `s`: as JSON.stringify
 * writes them, raw UTF-8 with only '"', '\\' and controls escaped. Like
 * every writer here it leaves a failure in the buffer's sticky error. */
void json_text_string_body(struct buf *out, const char *s, size_t len)
{
	static const char hex[] = "0123456789abcdef";
	size_t run = 0; /* start of the pending run of plain bytes */
	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)s[i];
		if (c >= 0x20 && c != '"' && c != '\\')
			continue;
		buf_append(out, s + run, i - run);
		run = i + 1;
		switch (c) {
		case '"':
			buf_append(out, "\\\"", 2);
			break;
		case '\\':
			buf_append(out, "\\\\", 2);
			break;
		case '\n':
			buf_append(out, "\\n", 2);
			break;
		case '\r':
			buf_append(out, "\\r", 2);
			break;
		case '\t':
			buf_append(out, "\\t", 2);
			break;
		case '\b':
			buf_append(out, "\\b", 2);
			break;
		case '\f':
			buf_append(out, "\\f", 2);
			break;
		default: {
			char esc[6] = {'\\', 'u', '0', '0', hex[c >> 4], hex[c & 15]};
			buf_append(out, esc, sizeof(esc));
		}
		}
	}
	buf_append(out, s + run, len - run);
}

int json_text_string(struct buf *out, const char *s, size_t len)
{
	buf_append_char(out, '"');
	json_text_string_body(out, s, len);
	return buf_append_char(out, '"');
}

int json_text_string_lossy(struct buf *out, const char *s, size_t len)
{
	static const char replacement[] = "\xEF\xBF\xBD"; /* U+FFFD */
	const unsigned char *t = (const unsigned char *)s;
	buf_append_char(out, '"');
	size_t run = 0; /* start of the pending run of valid UTF-8 */
	for (size_t i = 0; i < len;) {
		size_t n = t[i] < 0x80 ? 1 : utf8_sequence(t, len, i);
		if (n) {
			i += n;
			continue;
		}
		json_text_string_body(out, s + run, i - run);
		buf_append(out, replacement, 3);
		run = ++i;
	}
	json_text_string_body(out, s + run, len - run);
	return buf_append_char(out, '"');
}

static void newline_indent(struct buf *out, int indent, int depth)
{
	if (!indent)
		return;
	buf_append_char(out, '\n');
	for (int i = 0; i < indent * depth; i++)
		buf_append_char(out, ' ');
}

/* Stops early once the buffer failed: a value may be large. */
static void write_value(struct buf *out, const json_t *v, int indent, int depth)
{
	char num[32];
	switch (json_typeof(v)) {
	case JSON_NULL:
		buf_append(out, "null", 4);
		return;
	case JSON_TRUE:
		buf_append(out, "true", 4);
		return;
	case JSON_FALSE:
		buf_append(out, "false", 5);
		return;
	case JSON_INTEGER:
		buf_printf(out, "%" JSON_INTEGER_FORMAT, json_integer_value(v));
		return;
	case JSON_REAL: {
		double d = json_real_value(v);
		if (!isfinite(d)) {
			buf_fail(out, -EINVAL);
			return;
		}
		int n = number_text_format(d, num);
		buf_append(out, num, (size_t)n);
		return;
	}
	case JSON_STRING:
		json_text_string(out, json_string_value(v), json_string_length(v));
		return;
	case JSON_ARRAY: {
		size_t n = json_array_size(v);
		if (n == 0) {
			buf_append(out, "[]", 2);
			return;
		}
		buf_append_char(out, '[');
		for (size_t i = 0; i < n && !buf_error(out); i++) {
			if (i)
				buf_append_char(out, ',');
			newline_indent(out, indent, depth + 1);
			write_value(out, json_array_get(v, i), indent, depth + 1);
		}
		newline_indent(out, indent, depth);
		buf_append_char(out, ']');
		return;
	}
	case JSON_OBJECT: {
		if (json_object_size(v) == 0) {
			buf_append(out, "{}", 2);
			return;
		}
		buf_append_char(out, '{');
		const char *k;
		json_t *item;
		bool first = true;
		json_object_foreach((json_t *)v, k, item)
		{
			if (buf_error(out))
				break;
			if (!first)
				buf_append_char(out, ',');
			first = false;
			newline_indent(out, indent, depth + 1);
			json_text_string(out, k, strlen(k));
			buf_append(out, indent ? ": " : ":", indent ? 2 : 1);
			write_value(out, item, indent, depth + 1);
		}
		newline_indent(out, indent, depth);
		buf_append_char(out, '}');
		return;
	}
	}
	buf_fail(out, -EINVAL);
}

/* Writes `value`, and "\n" after it if `newline`; on failure rolls the
 * buffer back to where it was. */
static int write_text(struct buf *out, const json_t *value, int indent, bool newline)
{
	if (buf_error(out))
		return buf_error(out);
	size_t mark = out->len;
	write_value(out, value, indent, 0);
	if (newline)
		buf_append_char(out, '\n');
	int rc = buf_error(out);
	if (rc)
		buf_set_len(out, mark);
	return rc;
}

int json_text_compact(struct buf *out, const json_t *value)
{
	return write_text(out, value, 0, false);
}

int json_text_pretty(struct buf *out, const json_t *value)
{
	return write_text(out, value, 2, true);
}

/* The value of a text that is one plain token (a string without escapes,
 * an integer of up to 18 digits, null, true, false), made without
 * jansson's parser, or NULL. A push's mutation has six such members, and
 * the parser's set-up cost more than the tokens. */
bool json_text_plain_string(const char *t, size_t len)
{
	if (len < 2 || t[0] != '"' || t[len - 1] != '"')
		return false;
	for (size_t i = 1; i < len - 1; i++)
		if ((unsigned char)t[i] < 0x20 || t[i] == '"' || t[i] == '\\')
			return false;
	return true;
}

bool json_text_string_as_written(const char *t, size_t len)
{
	return json_text_plain_string(t, len) && utf8_valid(t + 1, len - 2);
}

const char *json_text_c_string(const json_t *v)
{
	const char *s = json_string_value(v);
	return s && strlen(s) == json_string_length(v) ? s : NULL;
}

static json_t *plain_token(const char *t, size_t len)
{
	if (len >= 2 && t[0] == '"')
		return json_text_plain_string(t, len)
		               ? json_stringn(t + 1, len - 2) /* NULL for bad UTF-8 */
		               : NULL;
	if (len == 4 && memcmp(t, "null", 4) == 0)
		return json_null();
	if (len == 4 && memcmp(t, "true", 4) == 0)
		return json_true();
	if (len == 5 && memcmp(t, "false", 5) == 0)
		return json_false();
	size_t i = len && t[0] == '-';
	if (i == len || len - i > 18 || (t[i] == '0' && len - i > 1))
		return NULL;
	json_int_t v = 0;
	for (; i < len; i++) {
		if (!json_text_is_digit(t[i]))
			return NULL;
		v = v * 10 + (t[i] - '0');
	}
	return json_integer(t[0] == '-' ? -v : v);
}

/* Makes every real of `v` that is a whole number a double holds exactly
 * (|x| <= 2^53) an integer, as jansson reads such a number written
 * without a fraction. Returns `v`, or NULL when out of memory. */
static json_t *integers_again(json_t *v)
{
	if (json_is_real(v)) {
		double d = json_real_value(v);
		if (d != trunc(d) || fabs(d) > 9007199254740992.0)
			return v;
		json_decref(v);
		return json_integer((json_int_t)d);
	}
	size_t i;
	const char *name;
	json_t *item;
	if (json_is_array(v)) {
		json_array_foreach(v, i, item)
		{
			json_t *n = integers_again(json_incref(item));
			if (!n || (n != item && json_array_set(v, i, n) != 0)) {
				json_decref(n);
				json_decref(v);
				return NULL;
			}
			json_decref(n);
		}
	} else if (json_is_object(v)) {
		void *tmp;
		json_object_foreach_safe(v, tmp, name, item)
		{
			json_t *n = integers_again(json_incref(item));
			if (!n || (n != item && json_object_set(v, name, n) != 0)) {
				json_decref(n);
				json_decref(v);
				return NULL;
			}
			json_decref(n);
		}
	}
	return v;
}

json_t *json_text_parse(const char *text, size_t len, char *why, size_t why_len)
{
	if (len <= 64) {
		json_t *v = plain_token(text, len);
		if (v)
			return v;
	}
	json_error_t error;
	json_t *v = json_loadb(text, len, JSON_DECODE_ANY | JSON_ALLOW_NUL, &error);
	if (!v && json_error_code(&error) == json_error_numeric_overflow) {
		/* An integer past 64 bits: JSON.stringify writes 1e19 as
		 * 10000000000000000000, and JavaScript reads it back as the
		 * double it was. So do we; a real past the double range stays
		 * an error. */
		json_error_t again;
		v = integers_again(json_loadb(
		        text, len, JSON_DECODE_ANY | JSON_ALLOW_NUL | JSON_DECODE_INT_AS_REAL,
		        &again));
	}
	if (!v && why)
		snprintf(why, why_len, "line %d column %d: %s", error.line, error.column,
		         error.text);
	return v;
}

static size_t string_end(const char *t, size_t len, size_t i);

int json_text_unindent(struct buf *out, const char *text, size_t len)
{
	size_t run = 0; /* start of the pending run of kept bytes */
	for (size_t i = 0; i < len;) {
		char c = text[i];
		if (c == '"') {
			size_t e = string_end(text, len, i);
			i = e ? e : len;
		} else if (json_text_is_ws(c)) {
			buf_append(out, text + run, i - run);
			while (i < len && json_text_is_ws(text[i]))
				i++;
			run = i;
		} else {
			i++;
		}
	}
	if (run < len)
		buf_append(out, text + run, len - run);
	return buf_error(out);
}

/* ---- splitting ----------------------------------------------------------- */

static size_t skip_ws(const char *t, size_t len, size_t i)
{
	while (i < len && json_text_is_ws(t[i]))
		i++;
	return i;
}

/* The end of the string literal starting at t[i] ('"'), or 0: the first
 * quote not escaped, that is after an even run of backslashes. */
static size_t string_end(const char *t, size_t len, size_t i)
{
	for (i++; i < len;) {
		const char *q = memchr(t + i, '"', len - i);
		if (!q)
			return 0;
		size_t at = (size_t)(q - t), backslashes = 0;
		while (t[at - 1 - backslashes] == '\\') /* stops at the opening quote */
			backslashes++;
		if (backslashes % 2 == 0)
			return at + 1;
		i = at + 1;
	}
	return 0;
}

/* The end of the value starting at t[i], or 0. Brackets are counted, not
 * matched by kind, and scalars are taken up to the next delimiter: the
 * parse of the piece finds what this lets through. */
static size_t value_end(const char *t, size_t len, size_t i)
{
	if (i >= len)
		return 0;
	if (t[i] == '"')
		return string_end(t, len, i);
	if (t[i] != '{' && t[i] != '[') {
		size_t start = i;
		while (i < len && !json_text_is_ws(t[i]) && t[i] != ',' && t[i] != '}' &&
		       t[i] != ']' && t[i] != ':' && t[i] != '"' && t[i] != '{' && t[i] != '[')
			i++;
		return i > start ? i : 0;
	}
	size_t depth = 0;
	while (i < len) {
		char c = t[i];
		if (c == '"') {
			i = string_end(t, len, i);
			if (!i)
				return 0;
			continue;
		}
		if (c == '{' || c == '[') {
			depth++;
		} else if (c == '}' || c == ']') {
			if (--depth == 0)
				return i + 1;
		}
		i++;
	}
	return 0;
}

/* An array member of an object split along with the object, in the same
 * pass over the text (json_text_members_splitting). */
struct nested_split {
	const char *name; /* the member's name, as written plainly */
	struct json_member *elems;
	size_t n;
	size_t at; /* which member it is */
	bool done;
};

static bool is_name(struct json_span lit, const char *name)
{
	size_t len = strlen(name);
	return lit.len == len + 2 && memcmp(lit.text + 1, name, len) == 0;
}

/* Splits the bracketed list (`open` ... `close`) starting at t[*at] of
 * values, or of "name": value pairs when `pairs`; *at is then just past
 * it. With `nested`, the first member of that name whose value is an
 * array has its elements split on the way. */
static int split_at(const char *t, size_t len, size_t *at, char open, char close, bool pairs,
                    struct nested_split *nested, struct json_member **out, size_t *n)
{
	*out = NULL;
	*n = 0;
	size_t cap = 0;
	size_t i = skip_ws(t, len, *at);
	if (i >= len || t[i] != open)
		return -EINVAL;
	i = skip_ws(t, len, i + 1);
	bool first = true;
	int rc = 0;
	while (!rc) {
		if (i < len && t[i] == close && first) {
			i++;
			break;
		}
		struct json_member m = {{NULL, 0}, {NULL, 0}};
		if (pairs) {
			size_t e = i < len && t[i] == '"' ? string_end(t, len, i) : 0;
			if (!e) {
				rc = -EINVAL;
				break;
			}
			m.name = (struct json_span){t + i, e - i};
			i = skip_ws(t, len, e);
			if (i >= len || t[i] != ':') {
				rc = -EINVAL;
				break;
			}
			i = skip_ws(t, len, i + 1);
		}
		size_t e = 0;
		if (nested && !nested->done && i < len && t[i] == '[' && is_name(m.name, nested->name)) {
			e = i;
			rc = split_at(t, len, &e, '[', ']', false, NULL, &nested->elems, &nested->n);
			if (rc == -ENOMEM)
				break;
			nested->done = rc == 0;
			nested->at = *n;
			if (rc) /* taken as a value, as json_text_members does */
				e = value_end(t, len, i);
			rc = 0;
		} else {
			e = value_end(t, len, i);
		}
		if (!e) {
			rc = -EINVAL;
			break;
		}
		m.value = (struct json_span){t + i, e - i};
		if (*n == cap) {
			cap = cap ? cap * 2 : 64;
			struct json_member *grown = realloc(*out, cap * sizeof(*grown));
			if (!grown) {
				rc = -ENOMEM;
				break;
			}
			*out = grown;
		}
		(*out)[(*n)++] = m;
		first = false;
		i = skip_ws(t, len, e);
		if (i < len && t[i] == ',') {
			i = skip_ws(t, len, i + 1);
			continue;
		}
		if (i < len && t[i] == close) {
			i++;
			break;
		}
		rc = -EINVAL;
	}
	if (rc) {
		free(*out);
		*out = NULL;
		*n = 0;
	}
	*at = i;
	return rc;
}

/* split_at for a list that is the whole of the text. */
static int split_list(const char *t, size_t len, char open, char close, bool pairs,
                      struct nested_split *nested, struct json_member **out, size_t *n)
{
	size_t at = 0;
	int rc = split_at(t, len, &at, open, close, pairs, nested, out, n);
	if (!rc && skip_ws(t, len, at) != len) {
		rc = -EINVAL;
		free(*out);
		*out = NULL;
		*n = 0;
	}
	return rc;
}

/* The values of a split list, without names (*elems malloc'd). Frees
 * `list`. */
static int values_of(struct json_member *list, size_t n, struct json_span **elems)
{
	struct json_span *out = malloc((n ? n : 1) * sizeof(*out));
	if (!out) {
		free(list);
		return -ENOMEM;
	}
	for (size_t i = 0; i < n; i++)
		out[i] = list[i].value;
	free(list);
	*elems = out;
	return 0;
}

int json_text_members(const char *text, size_t len, struct json_member **members, size_t *n)
{
	return split_list(text, len, '{', '}', true, NULL, members, n);
}

int json_text_members_splitting(const char *text, size_t len, const char *name,
                                struct json_member **members, size_t *n, size_t *at,
                                struct json_span **elems, size_t *nelems)
{
	struct nested_split nested = {.name = name};
	*elems = NULL;
	*nelems = 0;
	int rc = split_list(text, len, '{', '}', true, &nested, members, n);
	if (rc || !nested.done) {
		free(nested.elems);
		return rc;
	}
	*at = nested.at;
	*nelems = nested.n;
	return values_of(nested.elems, nested.n, elems);
}

int json_text_elements(struct json_span span, struct json_span **elems, size_t *n)
{
	struct json_member *list = NULL;
	int rc = split_list(span.text, span.len, '[', ']', false, NULL, &list, n);
	return rc ? rc : values_of(list, *n, elems);
}
