/* json_text.c - JSON writing with ECMAScript numbers (see json_text.h).
 *
 * One writer serves both layouts: `indent` 0 is compact, 2 is the pretty
 * layout of JSON.stringify(value, null, 2). Empty arrays and objects are
 * written as [] and {} in both, as JSON.stringify does.
 */
#include "idbmount/codec/json_text.h"

#include "idbmount/codec/number_text.h"

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
static void string_body(struct buf *out, const char *s, size_t len)
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
	string_body(out, s, len);
	return buf_append_char(out, '"');
}

static size_t utf8_sequence(const unsigned char *t, size_t len, size_t i);

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
		string_body(out, s + run, i - run);
		buf_append(out, replacement, 3);
		run = ++i;
	}
	string_body(out, s + run, len - run);
	return buf_append_char(out, '"');
}

static bool is_digit(char c)
{
	return c >= '0' && c <= '9';
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
		if (!is_digit(t[i]))
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

static bool is_ws(char c);
static size_t string_end(const char *t, size_t len, size_t i);

int json_text_unindent(struct buf *out, const char *text, size_t len)
{
	size_t run = 0; /* start of the pending run of kept bytes */
	for (size_t i = 0; i < len;) {
		char c = text[i];
		if (c == '"') {
			size_t e = string_end(text, len, i);
			i = e ? e : len;
		} else if (is_ws(c)) {
			buf_append(out, text + run, i - run);
			while (i < len && is_ws(text[i]))
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

/* ---- laying out a text without parsing it into a value -------------------
 *
 * A push of 1,000 records spent about 40% of the daemon's CPU in jansson:
 * building each value's tree (a malloc per node), walking it to write the
 * file, and freeing it. json_text_pretty_text reads the text once and
 * writes the same bytes json_text_pretty writes for the value jansson
 * parses from it. It is sure only about texts it fully understands; for
 * anything else (an error, a member name given twice, an integer past 18
 * digits, deep nesting, large objects) it declines and the caller parses
 * the text with json_text_parse, which decides and explains as before. */

enum { RELAYOUT_MAX_DEPTH = 200, RELAYOUT_MAX_MEMBERS = 64, RELAYOUT_MAX_SEGMENTS = 8 };

struct relayout {
	const char *t;
	size_t len;
	size_t i;
	struct buf *out;
	/* The canonical name of every member of the objects being written,
	 * innermost last, to find a name given twice. */
	struct {
		size_t at, len;
	} names[512];
	size_t nnames;
	/* The key path being looked for, as canonical name literals. */
	struct json_text_find *find;
	struct buf segments;
	size_t seg_at[RELAYOUT_MAX_SEGMENTS + 1];
	size_t nseg;
};

static int relayout_value(struct relayout *r, int depth, size_t path_depth);

static void relayout_ws(struct relayout *r)
{
	while (r->i < r->len && is_ws(r->t[r->i]))
		r->i++;
}

static int relayout_indent(struct relayout *r, int depth)
{
	static const char spaces[] = "\n                                                  ";
	int rc = buf_append(r->out, spaces, 1);
	for (size_t left = 2 * (size_t)depth; left && !rc;) {
		size_t n = left < sizeof(spaces) - 2 ? left : sizeof(spaces) - 2;
		rc = buf_append(r->out, spaces + 1, n);
		left -= n;
	}
	return rc;
}

static int hex4(const char *t, size_t len, size_t i, unsigned *cp)
{
	if (i + 4 > len)
		return -1;
	*cp = 0;
	for (size_t k = i; k < i + 4; k++) {
		char c = t[k];
		unsigned d;
		if (c >= '0' && c <= '9')
			d = (unsigned)(c - '0');
		else if (c >= 'a' && c <= 'f')
			d = (unsigned)(c - 'a' + 10);
		else if (c >= 'A' && c <= 'F')
			d = (unsigned)(c - 'A' + 10);
		else
			return -1;
		*cp = *cp << 4 | d;
	}
	return 0;
}

/* The length of the UTF-8 sequence at t[i] (first byte >= 0x80), or 0 when
 * it is not one jansson takes: no overlong forms, no surrogates, nothing
 * past U+10FFFF. */
static size_t utf8_sequence(const unsigned char *t, size_t len, size_t i)
{
	unsigned c = t[i];
	size_t n;
	unsigned cp;
	if (c >= 0xC2 && c <= 0xDF) {
		n = 2;
		cp = c & 0x1F;
	} else if (c >= 0xE0 && c <= 0xEF) {
		n = 3;
		cp = c & 0x0F;
	} else if (c >= 0xF0 && c <= 0xF4) {
		n = 4;
		cp = c & 0x07;
	} else {
		return 0;
	}
	if (i + n > len)
		return 0;
	for (size_t k = 1; k < n; k++) {
		if ((t[i + k] & 0xC0) != 0x80)
			return 0;
		cp = cp << 6 | (t[i + k] & 0x3F);
	}
	if ((n == 3 && (cp < 0x800 || (cp >= 0xD800 && cp <= 0xDFFF))) ||
	    (n == 4 && (cp < 0x10000 || cp > 0x10FFFF)))
		return 0;
	return n;
}

/* Writes code point `cp` (from a \u escape) as string_body writes the
 * character. */
static int relayout_code_point(struct relayout *r, unsigned cp)
{
	if (cp < 0x80) {
		char c = (char)cp;
		string_body(r->out, &c, 1);
		return buf_error(r->out);
	}
	char u[4];
	size_t n = cp < 0x800 ? 2 : cp < 0x10000 ? 3 : 4;
	static const unsigned char lead[5] = {0, 0, 0xC0, 0xE0, 0xF0};
	for (size_t k = n - 1; k > 0; k--) {
		u[k] = (char)(0x80 | (cp & 0x3F));
		cp >>= 6;
	}
	u[0] = (char)(lead[n] | cp);
	return buf_append(r->out, u, n);
}

/* The string literal at t[i] ('"'), written anew. A member name (`name`)
 * may not hold U+0000, as in jansson. */
static int relayout_string(struct relayout *r, bool name)
{
	const unsigned char *t = (const unsigned char *)r->t;
	size_t i = r->i + 1, run = i;
	int rc = buf_append_char(r->out, '"');
	while (!rc) {
		if (i >= r->len)
			return 1;
		unsigned c = t[i];
		if (c == '"' || c == '\\') {
			rc = buf_append(r->out, r->t + run, i - run);
			if (rc || c == '"')
				break;
			if (++i >= r->len)
				return 1;
			unsigned cp;
			switch (t[i]) {
			case '"':
			case '\\':
			case '/':
				cp = t[i];
				break;
			case 'b':
				cp = '\b';
				break;
			case 'f':
				cp = '\f';
				break;
			case 'n':
				cp = '\n';
				break;
			case 'r':
				cp = '\r';
				break;
			case 't':
				cp = '\t';
				break;
			case 'u':
				if (hex4(r->t, r->len, i + 1, &cp))
					return 1;
				i += 4;
				if (cp >= 0xDC00 && cp <= 0xDFFF)
					return 1;
				if (cp >= 0xD800 && cp <= 0xDBFF) {
					unsigned low;
					if (i + 2 >= r->len || t[i + 1] != '\\' ||
					    t[i + 2] != 'u' || hex4(r->t, r->len, i + 3, &low) ||
					    low < 0xDC00 || low > 0xDFFF)
						return 1;
					i += 6;
					cp = 0x10000 + ((cp - 0xD800) << 10) + (low - 0xDC00);
				}
				if (cp == 0 && name)
					return 1;
				break;
			default:
				return 1;
			}
			rc = relayout_code_point(r, cp);
			run = ++i;
		} else if (c < 0x20) {
			return 1;
		} else if (c < 0x80) {
			i++;
		} else {
			size_t n = utf8_sequence(t, r->len, i);
			if (!n)
				return 1;
			i += n;
		}
	}
	if (!rc)
		rc = buf_append_char(r->out, '"');
	r->i = i + 1;
	return rc;
}

/* A decimal without exponent, start..end with its point at `dot`, of at
 * most 15 significant digits: the double nearest to it prints back as
 * those digits (DBL_DIG), so ECMAScript's shortest form is the token less
 * the fraction's trailing zeros, in fixed notation while the first digit
 * is at most 6 places after the point. Returns 1 for any other decimal
 * (and writes nothing): number_text_format does those. */
static int relayout_short_decimal(struct relayout *r, size_t start, size_t dot, size_t end)
{
	const char *t = r->t;
	bool negative = t[start] == '-';
	size_t int_start = start + negative;
	while (end > dot + 1 && t[end - 1] == '0')
		end--;
	size_t significant;
	if (dot - int_start == 1 && t[int_start] == '0') {
		size_t first = dot + 1;
		while (first < end && t[first] == '0')
			first++;
		if (first == end) /* zero, -0 included, is written 0 */
			return buf_append_char(r->out, '0');
		if (first - (dot + 1) >= 6)
			return 1;
		significant = end - first;
	} else {
		significant = (dot - int_start) + (end - dot - 1);
	}
	if (significant > 15)
		return 1;
	/* A fraction of only zeros leaves no point. */
	return buf_append(r->out, t + start, (end == dot + 1 ? dot : end) - start);
}

/* A number as jansson reads it (an integer unless it has a fraction or an
 * exponent) and write_value writes it. */
static int relayout_number(struct relayout *r)
{
	const char *t = r->t;
	size_t start = r->i, i = start;
	if (i < r->len && t[i] == '-')
		i++;
	size_t int_start = i;
	if (i < r->len && t[i] == '0')
		i++;
	else if (i < r->len && t[i] >= '1' && t[i] <= '9')
		while (i < r->len && is_digit(t[i]))
			i++;
	else
		return 1;
	size_t int_digits = i - int_start;
	bool real = false, exponent = false;
	size_t dot = 0;
	if (i < r->len && t[i] == '.') {
		real = true;
		dot = i;
		size_t d = ++i;
		while (i < r->len && is_digit(t[i]))
			i++;
		if (i == d)
			return 1;
	}
	if (i < r->len && (t[i] == 'e' || t[i] == 'E')) {
		real = exponent = true;
		i++;
		if (i < r->len && (t[i] == '+' || t[i] == '-'))
			i++;
		size_t d = i;
		while (i < r->len && is_digit(t[i]))
			i++;
		if (i == d)
			return 1;
	}
	r->i = i;
	if (!real) {
		/* Up to 18 digits fit any json_int_t; "-0" is the integer 0. */
		if (int_digits > 18)
			return 1;
		if (i - start == 2 && t[start] == '-' && t[start + 1] == '0')
			return buf_append_char(r->out, '0');
		return buf_append(r->out, t + start, i - start);
	}
	if (dot && !exponent && relayout_short_decimal(r, start, dot, i) == 0)
		return 0;
	char token[64], num[32];
	if (i - start >= sizeof(token))
		return 1;
	memcpy(token, t + start, i - start);
	token[i - start] = '\0';
	double d = strtod(token, NULL);
	if (!isfinite(d))
		return 1;
	int n = number_text_format(d, num);
	return buf_append(r->out, num, (size_t)n);
}

static int relayout_word(struct relayout *r, const char *word, size_t n)
{
	if (r->len - r->i < n || memcmp(r->t + r->i, word, n) != 0)
		return 1;
	r->i += n;
	return buf_append(r->out, word, n);
}

/* Reads the opening bracket at t[i] and the spacing after it: true when
 * `close` follows at once (read too), an empty object or array. */
static bool relayout_list_open(struct relayout *r, char close)
{
	r->i++;
	relayout_ws(r);
	if (r->i < r->len && r->t[r->i] == close) {
		r->i++;
		return true;
	}
	return false;
}

/* After a member or element: 1 when a ',' says another follows (read,
 * with the spacing after it), 0 when `close` ends the list (read), -1 for
 * anything else. */
static int relayout_list_next(struct relayout *r, char close)
{
	relayout_ws(r);
	if (r->i < r->len && r->t[r->i] == ',') {
		r->i++;
		relayout_ws(r);
		return 1;
	}
	if (r->i < r->len && r->t[r->i] == close) {
		r->i++;
		return 0;
	}
	return -1;
}

/* The end of a list that had members: a new line at the list's own depth
 * and `close`. */
static int relayout_list_close(struct relayout *r, int depth, char close)
{
	int rc = relayout_indent(r, depth);
	return rc ? rc : buf_append_char(r->out, close);
}

/* Whether the name just written (at..out->len) is one of the names of
 * this object (from `first` on): jansson would keep one of them. */
static bool relayout_name_repeated(const struct relayout *r, size_t first, size_t at)
{
	size_t len = r->out->len - at;
	for (size_t k = first; k < r->nnames; k++)
		if (r->names[k].len == len &&
		    memcmp(r->out->data + r->names[k].at, r->out->data + at, len) == 0)
			return true;
	return false;
}

/* Whether the member name at..out->len is segment `seg` of the path. */
static bool relayout_on_path(const struct relayout *r, size_t seg, size_t at)
{
	size_t len = r->out->len - at;
	return seg < r->nseg && r->seg_at[seg + 1] - r->seg_at[seg] == len &&
	       memcmp(r->segments.data + r->seg_at[seg], r->out->data + at, len) == 0;
}

/* An object whose members are matched against the key path from segment
 * `path_depth` on (past the end: not on the path). */
static int relayout_object(struct relayout *r, int depth, size_t path_depth)
{
	if (relayout_list_open(r, '}'))
		return buf_append(r->out, "{}", 2);
	size_t first = r->nnames;
	int rc = buf_append_char(r->out, '{');
	for (size_t n = 0; !rc; n++) {
		if (n == RELAYOUT_MAX_MEMBERS ||
		    r->nnames == sizeof(r->names) / sizeof(r->names[0]))
			return 1;
		if (n)
			rc = buf_append_char(r->out, ',');
		if (!rc)
			rc = relayout_indent(r, depth + 1);
		size_t at = r->out->len;
		if (!rc && (r->i >= r->len || r->t[r->i] != '"'))
			return 1;
		if (!rc)
			rc = relayout_string(r, true);
		if (rc)
			return rc;
		if (relayout_name_repeated(r, first, at))
			return 1;
		r->names[r->nnames].at = at;
		r->names[r->nnames++].len = r->out->len - at;
		bool on_path = relayout_on_path(r, path_depth, at);
		relayout_ws(r);
		if (r->i >= r->len || r->t[r->i] != ':')
			return 1;
		r->i++;
		relayout_ws(r);
		rc = buf_append(r->out, ": ", 2);
		size_t value_at = r->out->len;
		if (!rc)
			rc = relayout_value(r, depth + 1, on_path ? path_depth + 1 : SIZE_MAX);
		if (!rc && on_path && path_depth + 1 == r->nseg) {
			r->find->found = true;
			r->find->start = value_at;
			r->find->end = r->out->len;
		}
		if (rc)
			return rc;
		int more = relayout_list_next(r, '}');
		if (more < 0)
			return 1;
		if (!more)
			break;
	}
	r->nnames = first;
	return rc ? rc : relayout_list_close(r, depth, '}');
}

static int relayout_array(struct relayout *r, int depth)
{
	if (relayout_list_open(r, ']'))
		return buf_append(r->out, "[]", 2);
	int rc = buf_append_char(r->out, '[');
	for (size_t n = 0; !rc; n++) {
		if (n)
			rc = buf_append_char(r->out, ',');
		if (!rc)
			rc = relayout_indent(r, depth + 1);
		if (!rc)
			rc = relayout_value(r, depth + 1, SIZE_MAX);
		if (rc)
			return rc;
		int more = relayout_list_next(r, ']');
		if (more < 0)
			return 1;
		if (!more)
			break;
	}
	return rc ? rc : relayout_list_close(r, depth, ']');
}

static int relayout_value(struct relayout *r, int depth, size_t path_depth)
{
	if (depth >= RELAYOUT_MAX_DEPTH || r->i >= r->len)
		return 1;
	switch (r->t[r->i]) {
	case '{':
		return relayout_object(r, depth, path_depth);
	case '[':
		return relayout_array(r, depth);
	case '"':
		return relayout_string(r, false);
	case 't':
		return relayout_word(r, "true", 4);
	case 'f':
		return relayout_word(r, "false", 5);
	case 'n':
		return relayout_word(r, "null", 4);
	default:
		return relayout_number(r);
	}
}

/* Splits the string key path into canonical name literals. */
static int relayout_path(struct relayout *r, const char *path)
{
	r->nseg = 0;
	r->seg_at[0] = 0;
	for (const char *p = path;;) {
		const char *dot = strchr(p, '.');
		size_t n = dot ? (size_t)(dot - p) : strlen(p);
		if (r->nseg == RELAYOUT_MAX_SEGMENTS)
			return 1;
		int rc = json_text_string(&r->segments, p, n);
		if (rc)
			return rc;
		r->seg_at[++r->nseg] = r->segments.len;
		if (!dot)
			return 0;
		p = dot + 1;
	}
}

int json_text_pretty_text(struct buf *out, const char *text, size_t len,
                          struct json_text_find *find)
{
	struct relayout rl, *r = &rl;
	r->t = text;
	r->len = len;
	r->i = 0;
	r->out = out;
	r->nnames = 0;
	r->find = find;
	r->nseg = 0;
	/* The rollback below would clear an error the buffer came with. */
	if (buf_error(out))
		return JSON_TEXT_DECLINED;
	buf_init(&r->segments, 4096);
	size_t mark = out->len;
	int rc = 0;
	if (find) {
		find->found = false;
		if (*find->path)
			rc = relayout_path(r, find->path);
	}
	relayout_ws(r);
	if (!rc)
		rc = relayout_value(r, 0, find && *find->path ? 0 : SIZE_MAX);
	relayout_ws(r);
	if (!rc && r->i != len)
		rc = 1;
	if (!rc && find && !*find->path) {
		find->found = true;
		find->start = mark;
		find->end = out->len;
	}
	if (!rc)
		rc = buf_append_char(out, '\n');
	if (rc) {
		buf_set_len(out, mark);
		rc = JSON_TEXT_DECLINED;
	}
	buf_free(&r->segments);
	return rc;
}
