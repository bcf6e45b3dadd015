/* json_text.c - JSON writing with ECMAScript numbers (see json_text.h).
 *
 * One writer serves both layouts: `indent` 0 is compact, 2 is the pretty
 * layout of JSON.stringify(value, null, 2). Empty arrays and objects are
 * written as [] and {} in both, as JSON.stringify does.
 */
#include "idbmount/json_text.h"

#include "idbmount/key.h"

#include <errno.h>
#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int json_text_string(struct buf *out, const char *s, size_t len)
{
	static const char hex[] = "0123456789abcdef";
	int rc = buf_append_char(out, '"');
	size_t run = 0; /* start of the pending run of plain bytes */
	for (size_t i = 0; i < len && !rc; i++) {
		unsigned char c = (unsigned char)s[i];
		if (c >= 0x20 && c != '"' && c != '\\')
			continue;
		rc = buf_append(out, s + run, i - run);
		run = i + 1;
		if (rc)
			break;
		switch (c) {
		case '"':
			rc = buf_append(out, "\\\"", 2);
			break;
		case '\\':
			rc = buf_append(out, "\\\\", 2);
			break;
		case '\n':
			rc = buf_append(out, "\\n", 2);
			break;
		case '\r':
			rc = buf_append(out, "\\r", 2);
			break;
		case '\t':
			rc = buf_append(out, "\\t", 2);
			break;
		case '\b':
			rc = buf_append(out, "\\b", 2);
			break;
		case '\f':
			rc = buf_append(out, "\\f", 2);
			break;
		default: {
			char esc[6] = {'\\', 'u', '0', '0', hex[c >> 4], hex[c & 15]};
			rc = buf_append(out, esc, sizeof(esc));
		}
		}
	}
	if (!rc)
		rc = buf_append(out, s + run, len - run);
	if (!rc)
		rc = buf_append_char(out, '"');
	return rc;
}

static int newline_indent(struct buf *out, int indent, int depth)
{
	if (!indent)
		return 0;
	int rc = buf_append_char(out, '\n');
	for (int i = 0; i < indent * depth && !rc; i++)
		rc = buf_append_char(out, ' ');
	return rc;
}

static int write_value(struct buf *out, const json_t *v, int indent, int depth)
{
	char num[32];
	int rc = 0;
	switch (json_typeof(v)) {
	case JSON_NULL:
		return buf_append(out, "null", 4);
	case JSON_TRUE:
		return buf_append(out, "true", 4);
	case JSON_FALSE:
		return buf_append(out, "false", 5);
	case JSON_INTEGER:
		return buf_printf(out, "%" JSON_INTEGER_FORMAT, json_integer_value(v));
	case JSON_REAL: {
		double d = json_real_value(v);
		if (!isfinite(d))
			return -EINVAL;
		int n = key_number_to_string(d, num);
		return buf_append(out, num, (size_t)n);
	}
	case JSON_STRING:
		return json_text_string(out, json_string_value(v), json_string_length(v));
	case JSON_ARRAY: {
		size_t n = json_array_size(v);
		if (n == 0)
			return buf_append(out, "[]", 2);
		rc = buf_append_char(out, '[');
		for (size_t i = 0; i < n && !rc; i++) {
			if (i)
				rc = buf_append_char(out, ',');
			if (!rc)
				rc = newline_indent(out, indent, depth + 1);
			if (!rc)
				rc = write_value(out, json_array_get(v, i), indent, depth + 1);
		}
		if (!rc)
			rc = newline_indent(out, indent, depth);
		return rc ? rc : buf_append_char(out, ']');
	}
	case JSON_OBJECT: {
		if (json_object_size(v) == 0)
			return buf_append(out, "{}", 2);
		rc = buf_append_char(out, '{');
		const char *k;
		json_t *item;
		bool first = true;
		json_object_foreach((json_t *)v, k, item)
		{
			if (rc)
				break;
			if (!first)
				rc = buf_append_char(out, ',');
			first = false;
			if (!rc)
				rc = newline_indent(out, indent, depth + 1);
			if (!rc)
				rc = json_text_string(out, k, strlen(k));
			if (!rc)
				rc = buf_append(out, indent ? ": " : ":", indent ? 2 : 1);
			if (!rc)
				rc = write_value(out, item, indent, depth + 1);
		}
		if (!rc)
			rc = newline_indent(out, indent, depth);
		return rc ? rc : buf_append_char(out, '}');
	}
	}
	return -EINVAL;
}

int json_text_compact(struct buf *out, const json_t *value)
{
	size_t mark = out->len;
	int rc = write_value(out, value, 0, 0);
	if (rc)
		buf_set_len(out, mark);
	return rc;
}

int json_text_pretty(struct buf *out, const json_t *value)
{
	size_t mark = out->len;
	int rc = write_value(out, value, 2, 0);
	if (!rc)
		rc = buf_append_char(out, '\n');
	if (rc)
		buf_set_len(out, mark);
	return rc;
}

json_t *json_text_parse(const char *text, size_t len, char *why, size_t why_len)
{
	json_error_t error;
	json_t *v = json_loadb(text, len, JSON_DECODE_ANY | JSON_ALLOW_NUL, &error);
	if (!v && why)
		snprintf(why, why_len, "line %d column %d: %s", error.line, error.column,
		         error.text);
	return v;
}

int json_text_unindent(struct buf *out, const char *text, size_t len)
{
	size_t run = 0; /* start of the pending run of kept bytes */
	bool in_string = false;
	int rc = 0;
	for (size_t i = 0; i < len && !rc; i++) {
		char c = text[i];
		if (in_string) {
			if (c == '\\')
				i++; /* the escaped byte cannot end the string */
			else if (c == '"')
				in_string = false;
			continue;
		}
		if (c == '"') {
			in_string = true;
		} else if (c == ' ' || c == '\n' || c == '\t' || c == '\r') {
			rc = buf_append(out, text + run, i - run);
			run = i + 1;
		}
	}
	if (!rc && run < len)
		rc = buf_append(out, text + run, len - run);
	return rc;
}

/* ---- splitting ----------------------------------------------------------- */

static bool is_ws(char c)
{
	return c == ' ' || c == '\t' || c == '\n' || c == '\r';
}

static size_t skip_ws(const char *t, size_t len, size_t i)
{
	while (i < len && is_ws(t[i]))
		i++;
	return i;
}

/* The end of the string literal starting at t[i] ('"'), or 0. */
static size_t string_end(const char *t, size_t len, size_t i)
{
	for (i++; i < len; i++) {
		if (t[i] == '\\')
			i++;
		else if (t[i] == '"')
			return i + 1;
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
		while (i < len && !is_ws(t[i]) && t[i] != ',' && t[i] != '}' && t[i] != ']' &&
		       t[i] != ':' && t[i] != '"' && t[i] != '{' && t[i] != '[')
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

/* Splits a bracketed list (`open` ... `close`) of values, or of
 * "name": value pairs when `pairs`. */
static int split_list(const char *t, size_t len, char open, char close, bool pairs,
                      struct json_member **out, size_t *n)
{
	*out = NULL;
	*n = 0;
	size_t cap = 0;
	size_t i = skip_ws(t, len, 0);
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
		size_t e = value_end(t, len, i);
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
	if (!rc && skip_ws(t, len, i) != len)
		rc = -EINVAL;
	if (rc) {
		free(*out);
		*out = NULL;
		*n = 0;
	}
	return rc;
}

int json_text_members(const char *text, size_t len, struct json_member **members, size_t *n)
{
	return split_list(text, len, '{', '}', true, members, n);
}

int json_text_elements(struct json_span span, struct json_span **elems, size_t *n)
{
	struct json_member *list = NULL;
	int rc = split_list(span.text, span.len, '[', ']', false, &list, n);
	if (rc)
		return rc;
	struct json_span *out = malloc((*n ? *n : 1) * sizeof(*out));
	if (!out) {
		free(list);
		return -ENOMEM;
	}
	for (size_t i = 0; i < *n; i++)
		out[i] = list[i].value;
	free(list);
	*elems = out;
	return 0;
}
