/* json_text_layout.c - json_text_pretty_text: the pretty layout of a JSON
 * text, written without parsing the text into a value (see json_text.h).
 *
 * A push of 1,000 records spent about 40% of the daemon's CPU in jansson:
 * building each value's tree (a malloc per node), walking it to write the
 * file, and freeing it. json_text_pretty_text reads the text once and
 * writes the same bytes json_text_pretty writes for the value jansson
 * parses from it. It is sure only about texts it fully understands; for
 * anything else (an error, a member name given twice, an integer past 18
 * digits, deep nesting, large objects) it declines and the caller parses
 * the text with json_text_parse, which decides and explains as before.
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
	while (r->i < r->len && json_text_is_ws(r->t[r->i]))
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

/* Writes code point `cp` (from a \u escape) as string_body writes the
 * character. */
static int relayout_code_point(struct relayout *r, unsigned cp)
{
	if (cp < 0x80) {
		char c = (char)cp;
		json_text_string_body(r->out, &c, 1);
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
		while (i < r->len && json_text_is_digit(t[i]))
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
		while (i < r->len && json_text_is_digit(t[i]))
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
		while (i < r->len && json_text_is_digit(t[i]))
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
