/* key.c - the one key codec: IndexedDB keys <-> file name stems and canonical JSON.
 *
 * A key is held as a jansson value in its tagged form (see key.h). Every
 * other representation is derived from two renderings done here, so that
 * there is exactly one way to spell a key: the canonical JSON text (compact,
 * numbers in the ECMAScript Number::toString form, strings with jansson's
 * minimal escaping) and the stem, the file name without ".json". Numbers are
 * their toString text, strings are their UTF-8 bytes with '%', '/' and the
 * control bytes written as %XX, and the other types carry a "~" tag: "~d"
 * date, "~b" binary, "~a" array (its canonical JSON, %-escaped), "~s" the
 * empty string and "~h" a hashed name. A string whose first character could
 * be mistaken for a tag, a hidden file or a number has that character
 * escaped too, which is what makes the mapping injective: number stems start
 * with a digit, '-' or 'I'; tags start with '~'; strings never read as
 * either.
 *
 * Decoding is the reverse plus one rule that keeps the mapping a bijection
 * onto the set of canonical stems: after decoding, the key is encoded again
 * and must give back the very same bytes. So "%61", "%2f", "~a[1.0]" or
 * "~d+002026-..." are not other names for an existing key; they name nothing
 * and decode to -EINVAL. A file name may hold at most KEY_NAME_MAX bytes;
 * a stem that would not fit is replaced by "~h" + SHA-256 of the long stem,
 * which only the store can map back, and the long stem itself is therefore
 * never a valid name.
 *
 * Numbers are formatted without any locale dependence: the shortest
 * round-tripping digits are found by binary search over "%.*e" precisions,
 * and round trips are tested by strtod on a "DIGITSe-N" text that holds no
 * radix character. Where the correctly rounded p-digit decimal does not read
 * back but its upper neighbour does (the narrow lower half-interval at a
 * power of two), the neighbour is taken, since ECMA-262 asks for the fewest
 * digits first and the closest value second. Integers (json_integer) are
 * numbers like any other: they are converted to double, as JavaScript would.
 *
 * Keys that come out of this module (decoded stems, parsed JSON text) are
 * normalized: a number that is an integer of magnitude at most 2^53 is a
 * json_integer, other finite numbers json_real, infinities {"~n": ...}.
 * Growable text buffers are capped at KEY_TEXT_CAP bytes; a key whose text
 * would exceed it is treated like an allocation failure (NULL).
 */
#include "idbmount/codec/key.h"

#include "idbmount/util/buf.h"
#include "idbmount/codec/json_text.h"

#include <errno.h>
#include <math.h>
#include <openssl/evp.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Hard cap on any text this module builds (stems before hashing, canonical
 * JSON). Far beyond any key a browser will send. */
#define KEY_TEXT_CAP (64u * 1024 * 1024)

/* Deepest array nesting accepted; the same limit as jansson's parser, so any
 * key that can be built can also be read back from its JSON text. */
#define KEY_MAX_DEPTH 2048

/* Largest integer magnitude a double holds exactly (2^53). */
#define KEY_SAFE_INTEGER 9007199254740992.0

/* The time value range of a JavaScript Date, in ms from the epoch. */
#define KEY_DATE_MS_MAX 8640000000000000LL

/* ---------------------------------------------------------------------------
 * Text buffers: struct buf (capped at KEY_TEXT_CAP) with a sticky failure,
 * so the builders below append without checking every step and look once
 * at the end.
 * ------------------------------------------------------------------------ */

struct textbuf {
	struct buf b;
	int failed; /* set once an append failed (allocation or the cap) */
};

#define TEXTBUF_INIT                                                                               \
	{                                                                                          \
		.b = BUF_INIT(KEY_TEXT_CAP), .failed = 0                                           \
	}

static void textbuf_append(struct textbuf *t, const char *s, size_t n)
{
	if (!t->failed && buf_append(&t->b, s, n) != 0)
		t->failed = 1;
}

static void textbuf_append_char(struct textbuf *t, char c)
{
	textbuf_append(t, &c, 1);
}

static void textbuf_append_str(struct textbuf *t, const char *s)
{
	textbuf_append(t, s, strlen(s));
}

/* Hands the NUL-terminated text over to the caller, or returns NULL (and
 * frees) when the buffer failed. An empty buffer gives "". */
static char *textbuf_take(struct textbuf *t)
{
	char *text = t->failed ? NULL : buf_take(&t->b, NULL);
	buf_free(&t->b);
	return text;
}

static void textbuf_free(struct textbuf *t)
{
	buf_free(&t->b);
}

/* Writes `msg` into `why` when the caller asked for a reason. Returns -EINVAL
 * so that callers can `return reject(...)`. */
static int reject(char *why, size_t why_len, const char *msg)
{
	if (why && why_len)
		snprintf(why, why_len, "%s", msg);
	return -EINVAL;
}

/* ---------------------------------------------------------------------------
 * Small validators: UTF-8, base64url, ISO dates.
 * ------------------------------------------------------------------------ */

/* Returns 1 when s[0..n) is well-formed UTF-8: no overlong forms, no encoded
 * surrogates, nothing above U+10FFFF. NUL bytes are allowed. */
static int utf8_valid(const char *str, size_t n)
{
	const unsigned char *s = (const unsigned char *)str;
	size_t i = 0;

	while (i < n) {
		unsigned char c = s[i];
		size_t more;
		uint32_t cp, min;

		if (c < 0x80) {
			i++;
			continue;
		}
		if (c >= 0xC2 && c <= 0xDF) {
			more = 1;
			cp = c & 0x1F;
			min = 0x80;
		} else if ((c & 0xF0) == 0xE0) {
			more = 2;
			cp = c & 0x0F;
			min = 0x800;
		} else if (c >= 0xF0 && c <= 0xF4) {
			more = 3;
			cp = c & 0x07;
			min = 0x10000;
		} else {
			return 0;
		}
		if (n - i <= more)
			return 0;
		for (size_t k = 1; k <= more; k++) {
			if ((s[i + k] & 0xC0) != 0x80)
				return 0;
			cp = (cp << 6) | (s[i + k] & 0x3F);
		}
		if (cp < min || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF))
			return 0;
		i += more + 1;
	}
	return 1;
}

/* Returns the 6-bit value of a base64url character, or -1. */
static int base64url_value(char c)
{
	if (c >= 'A' && c <= 'Z')
		return c - 'A';
	if (c >= 'a' && c <= 'z')
		return c - 'a' + 26;
	if (c >= '0' && c <= '9')
		return c - '0' + 52;
	if (c == '-')
		return 62;
	if (c == '_')
		return 63;
	return -1;
}

/* Returns 1 when s[0..n) is canonical unpadded base64url: only the alphabet,
 * no length that leaves a lone character, and zero bits after the last
 * whole byte. The empty text (an empty buffer) is valid. */
static int base64url_valid(const char *s, size_t n)
{
	int last = 0;

	if (n % 4 == 1)
		return 0;
	for (size_t i = 0; i < n; i++) {
		last = base64url_value(s[i]);
		if (last < 0)
			return 0;
	}
	if (n % 4 == 2 && (last & 0x0F))
		return 0;
	if (n % 4 == 3 && (last & 0x03))
		return 0;
	return 1;
}

/* Reads `count` decimal digits at s; returns the value or -1. */
static long read_digits(const char *s, int count)
{
	long v = 0;

	for (int i = 0; i < count; i++) {
		if (s[i] < '0' || s[i] > '9')
			return -1;
		v = v * 10 + (s[i] - '0');
	}
	return v;
}

/* Days from 1970-01-01 to y-m-d in the proleptic Gregorian calendar
 * (H. Hinnant's days_from_civil). */
static int64_t days_from_civil(int64_t y, int m, int d)
{
	int64_t era, yoe, doy, doe;

	y -= m <= 2;
	era = (y >= 0 ? y : y - 399) / 400;
	yoe = y - era * 400;
	doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
	doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
	return era * 146097 + doe - 719468;
}

static int days_in_month(int64_t y, int m)
{
	static const int days[12] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
	int leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;

	return m == 2 && leap ? 29 : days[m - 1];
}

/* Returns 1 when s[0..n) is exactly what Date.prototype.toISOString gives
 * for some valid time value: "YYYY-MM-DDTHH:MM:SS.sssZ" for years 0..9999,
 * "+YYYYYY-..." or "-YYYYYY-..." for the others, within +-8.64e15 ms. */
static int date_valid(const char *s, size_t n)
{
	/* What follows the year; '9' stands for any decimal digit. */
	static const char shape[] = "-99-99T99:99:99.999Z";
	int64_t year, ms;
	long month, day, hour, minute, second, milli;
	const char *t;

	if (n == 24) {
		year = read_digits(s, 4);
		t = s + 4;
	} else if (n == 27 && (s[0] == '+' || s[0] == '-')) {
		year = read_digits(s + 1, 6);
		t = s + 7;
	} else {
		return 0;
	}
	if (year < 0)
		return 0;
	if (n == 27) {
		if (s[0] == '-')
			year = -year;
		/* The sign form is only for years outside 0..9999 ("-000000"
		 * and "+002026" are never produced). */
		if (year >= 0 && year <= 9999)
			return 0;
	}
	for (size_t i = 0; i < sizeof(shape) - 1; i++) {
		if (shape[i] == '9' ? t[i] < '0' || t[i] > '9' : t[i] != shape[i])
			return 0;
	}
	month = read_digits(t + 1, 2);
	day = read_digits(t + 4, 2);
	hour = read_digits(t + 7, 2);
	minute = read_digits(t + 10, 2);
	second = read_digits(t + 13, 2);
	milli = read_digits(t + 16, 3);
	if (month < 1 || month > 12 || day < 1 || day > days_in_month(year, (int)month))
		return 0;
	if (hour > 23 || minute > 59 || second > 59)
		return 0;
	ms = days_from_civil(year, (int)month, (int)day) * 86400000LL + hour * 3600000LL +
	     minute * 60000LL + second * 1000LL + milli;
	return ms >= -KEY_DATE_MS_MAX && ms <= KEY_DATE_MS_MAX;
}

/* ---------------------------------------------------------------------------
 * Numbers: ECMAScript Number::toString.
 * ------------------------------------------------------------------------ */

/* Returns 1 when the decimal dg[0..k) * 10^(e-k+1) reads back as a. */
static int digits_round_trip(const char *dg, int k, int e, double a)
{
	char text[48];

	snprintf(text, sizeof(text), "%.*se%d", k, dg, e - (k - 1));
	return strtod(text, NULL) == a;
}

/* Finds a p+1 digit decimal that reads back as a, if there is one: the
 * correctly rounded one, else its upper neighbour. Fills dg (p+1 digits)
 * and *e (exponent of the first digit). Returns 1 if found. */
static int digits_at_precision(double a, int p, char dg[24], int *e)
{
	char text[48], up[24];
	const char *q;
	int k = 0, i, up_e;

	snprintf(text, sizeof(text), "%.*e", p, a);
	/* Collect the digits, skipping whatever radix character the locale uses. */
	for (q = text; *q && *q != 'e'; q++) {
		if (*q >= '0' && *q <= '9' && k < 23)
			dg[k++] = *q;
	}
	*e = (int)strtol(q + 1, NULL, 10);
	if (digits_round_trip(dg, k, *e, a))
		return 1;
	memcpy(up, dg, (size_t)k);
	up_e = *e;
	for (i = k - 1; i >= 0 && up[i] == '9'; i--)
		up[i] = '0';
	if (i < 0) {
		up[0] = '1';
		up_e++;
	} else {
		up[i]++;
	}
	if (!digits_round_trip(up, k, up_e, a))
		return 0;
	memcpy(dg, up, (size_t)k);
	*e = up_e;
	return 1;
}

/* Shortest round-trip digits of a finite a > 0: fills dg (no trailing
 * zeros), returns their count k and sets *n so that a = 0.dg * 10^n. Whether
 * some p+1 digit decimal reads back as a is monotonic in p, so p is found by
 * binary search; 17 digits always suffice. */
static int shortest_digits(double a, char dg[24], int *n)
{
	int lo = 0, hi = 16, e, k;

	/* Most numbers were written with at most 15 significant digits. Then
	 * the 15-digit rounding reads back, and it is the shortest digits with
	 * zeros appended: a normal double is within 2^-53 (relative) of its
	 * shortest decimal, far less than half a unit of the 15th digit. So
	 * one try, not the search, finds them. (Subnormals have fewer bits:
	 * they search.) */
	bool fifteen = isnormal(a) && digits_at_precision(a, 14, dg, &e);
	if (fifteen)
		lo = hi = 14;
	while (lo < hi) {
		int mid = (lo + hi) / 2;

		if (digits_at_precision(a, mid, dg, &e))
			hi = mid;
		else
			lo = mid + 1;
	}
	if (!fifteen)
		digits_at_precision(a, lo, dg, &e);
	k = lo + 1;
	while (k > 1 && dg[k - 1] == '0')
		k--;
	*n = e + 1;
	return k;
}

int key_number_to_string(double d, char out[32])
{
	char dg[24];
	int k, n, len = 0;

	if (isnan(d))
		return snprintf(out, 32, "NaN");
	if (d == 0)
		return snprintf(out, 32, "0");
	if (isinf(d))
		return snprintf(out, 32, "%s", d > 0 ? "Infinity" : "-Infinity");
	if (d < 0) {
		out[len++] = '-';
		d = -d;
	}
	/* Integers below 2^53 are their own shortest digits: the common case
	 * (keys, counters) skips the search below. */
	if (d < 9007199254740992.0 && d == floor(d))
		return len + snprintf(out + len, 32 - (size_t)len, "%llu", (unsigned long long)d);
	k = shortest_digits(d, dg, &n);
	if (k <= n && n <= 21) {
		/* An integer: the digits and n-k zeros. */
		memcpy(out + len, dg, (size_t)k);
		len += k;
		memset(out + len, '0', (size_t)(n - k));
		len += n - k;
	} else if (0 < n && n <= 21) {
		memcpy(out + len, dg, (size_t)n);
		len += n;
		out[len++] = '.';
		memcpy(out + len, dg + n, (size_t)(k - n));
		len += k - n;
	} else if (-6 < n && n <= 0) {
		out[len++] = '0';
		out[len++] = '.';
		memset(out + len, '0', (size_t)-n);
		len += -n;
		memcpy(out + len, dg, (size_t)k);
		len += k;
	} else {
		out[len++] = dg[0];
		if (k > 1) {
			out[len++] = '.';
			memcpy(out + len, dg + 1, (size_t)(k - 1));
			len += k - 1;
		}
		len += snprintf(out + len, (size_t)(32 - len), "e%c%d", n - 1 < 0 ? '-' : '+',
		                abs(n - 1));
	}
	out[len] = '\0';
	return len;
}

/* Returns 1 and sets *out when s[0..n) is exactly key_number_to_string of
 * some number (including "Infinity" and "-Infinity"). */
static int parse_canonical_number(const char *s, size_t n, double *out)
{
	char digits[32], text[48], again[32];
	size_t i = 0, k = 0;
	long exponent = 0;
	int negative = 0, seen_dot = 0;
	double d;

	if (n == 0 || n >= sizeof(again))
		return 0;
	if (s[0] == '-') {
		negative = 1;
		i = 1;
	}
	if (n - i == 8 && memcmp(s + i, "Infinity", 8) == 0) {
		*out = negative ? -INFINITY : INFINITY;
		return 1;
	}
	/* A permissive reading of digits[.digits][e[+-]digits]; the comparison
	 * with the formatted value below rejects every non-canonical spelling. */
	for (; i < n; i++) {
		if (s[i] >= '0' && s[i] <= '9') {
			digits[k++] = s[i];
			if (seen_dot)
				exponent--;
		} else if (s[i] == '.' && !seen_dot) {
			seen_dot = 1;
		} else {
			break;
		}
	}
	if (k == 0)
		return 0;
	if (i < n) {
		long e = 0;
		int sign = 1;

		if (s[i++] != 'e')
			return 0;
		if (i < n && (s[i] == '+' || s[i] == '-'))
			sign = s[i++] == '-' ? -1 : 1;
		if (i == n)
			return 0;
		for (; i < n; i++) {
			if (s[i] < '0' || s[i] > '9')
				return 0;
			e = e * 10 + (s[i] - '0');
			if (e > 100000)
				return 0;
		}
		exponent += sign * e;
	}
	snprintf(text, sizeof(text), "%.*se%ld", (int)k, digits, exponent);
	d = strtod(text, NULL);
	if (negative)
		d = -d;
	if ((size_t)key_number_to_string(d, again) != n || memcmp(again, s, n) != 0)
		return 0;
	*out = d;
	return 1;
}

/* A new number key, normalized: integers up to 2^53 as json_integer (so -0
 * becomes 0), infinities as {"~n": ...}. */
static json_t *number_key_new(double d)
{
	if (isinf(d))
		return json_pack("{s:s}", "~n", d > 0 ? "Infinity" : "-Infinity");
	if (d == trunc(d) && fabs(d) <= KEY_SAFE_INTEGER)
		return json_integer((json_int_t)d);
	return json_real(d);
}

/* Takes a reference to a checked key and returns it normalized (see
 * number_key_new), or NULL after an allocation failure. */
static json_t *key_normalize(json_t *key)
{
	if (json_is_real(key)) {
		json_t *n = number_key_new(json_real_value(key));

		json_decref(key);
		return n;
	}
	if (json_is_array(key)) {
		for (size_t i = 0; i < json_array_size(key); i++) {
			json_t *old = json_incref(json_array_get(key, i));
			json_t *n = key_normalize(old);

			if (!n) {
				json_decref(key);
				return NULL;
			}
			if (n == old)
				json_decref(n);
			else if (json_array_set_new(key, i, n) < 0) {
				json_decref(key);
				return NULL;
			}
		}
	}
	return key;
}

/* ---------------------------------------------------------------------------
 * Checking a tagged key.
 * ------------------------------------------------------------------------ */

static int check_key(const json_t *key, int depth, char *why, size_t why_len)
{
	const char *tag, *text;
	json_t *value;
	size_t len;

	switch (json_typeof(key)) {
	case JSON_INTEGER:
		return 0;
	case JSON_REAL:
		if (!isfinite(json_real_value(key)))
			return reject(why, why_len, "number is not finite");
		return 0;
	case JSON_STRING:
		if (!utf8_valid(json_string_value(key), json_string_length(key)))
			return reject(why, why_len, "string is not valid UTF-8");
		return 0;
	case JSON_ARRAY:
		if (depth >= KEY_MAX_DEPTH)
			return reject(why, why_len, "array nested too deeply");
		for (size_t i = 0; i < json_array_size(key); i++) {
			int rc = check_key(json_array_get(key, i), depth + 1, why, why_len);

			if (rc < 0)
				return rc;
		}
		return 0;
	case JSON_OBJECT:
		break;
	default:
		return reject(why, why_len, "true, false and null are not keys");
	}
	if (json_object_size(key) != 1)
		return reject(why, why_len, "a key object has exactly one member: ~d, ~b or ~n");
	tag = json_object_iter_key(json_object_iter((json_t *)key));
	value = json_object_iter_value(json_object_iter((json_t *)key));
	if (!json_is_string(value))
		return reject(why, why_len, "a key tag's value must be a string");
	text = json_string_value(value);
	len = json_string_length(value);
	if (strcmp(tag, "~d") == 0) {
		if (!date_valid(text, len))
			return reject(why, why_len, "~d is not a valid toISOString date");
	} else if (strcmp(tag, "~b") == 0) {
		if (!base64url_valid(text, len))
			return reject(why, why_len, "~b is not canonical unpadded base64url");
	} else if (strcmp(tag, "~n") == 0) {
		if (strcmp(text, "Infinity") != 0 && strcmp(text, "-Infinity") != 0)
			return reject(why, why_len, "~n must be \"Infinity\" or \"-Infinity\"");
	} else {
		return reject(why, why_len, "unknown key tag (want ~d, ~b or ~n)");
	}
	return 0;
}

int key_check(const json_t *key, char *why, size_t why_len)
{
	if (!key)
		return reject(why, why_len, "no key");
	return check_key(key, 0, why, why_len);
}

/* ---------------------------------------------------------------------------
 * Canonical JSON.
 * ------------------------------------------------------------------------ */

static double number_key_value(const json_t *key)
{
	return json_is_integer(key) ? (double)json_integer_value(key) : json_real_value(key);
}

/* Appends s as a JSON string literal, as JSON.stringify and the rest of
 * idbmount write it (json_text.c). */
static void append_json_string(struct textbuf *t, const char *s, size_t n)
{
	if (!t->failed && json_text_string(&t->b, s, n) != 0)
		t->failed = 1;
}

/* Appends the canonical JSON of a checked key. */
static void append_canonical_json(struct textbuf *b, const json_t *key)
{
	char num[32];
	void *iter;

	switch (json_typeof(key)) {
	case JSON_INTEGER:
	case JSON_REAL:
		textbuf_append(b, num, (size_t)key_number_to_string(number_key_value(key), num));
		break;
	case JSON_STRING:
		append_json_string(b, json_string_value(key), json_string_length(key));
		break;
	case JSON_ARRAY:
		textbuf_append_char(b, '[');
		for (size_t i = 0; i < json_array_size(key); i++) {
			if (i)
				textbuf_append_char(b, ',');
			append_canonical_json(b, json_array_get(key, i));
		}
		textbuf_append_char(b, ']');
		break;
	case JSON_OBJECT:
		iter = json_object_iter((json_t *)key);
		textbuf_append_char(b, '{');
		append_json_string(b, json_object_iter_key(iter),
		                   strlen(json_object_iter_key(iter)));
		textbuf_append_char(b, ':');
		append_json_string(b, json_string_value(json_object_iter_value(iter)),
		                   json_string_length(json_object_iter_value(iter)));
		textbuf_append_char(b, '}');
		break;
	default:
		b->failed = 1; /* unreachable for a checked key */
	}
}

char *key_canonical_json(const json_t *key)
{
	struct textbuf b = TEXTBUF_INIT;

	if (key_check(key, NULL, 0) < 0)
		return NULL;
	append_canonical_json(&b, key);
	return textbuf_take(&b);
}

/* ---------------------------------------------------------------------------
 * String escaping (string keys, array stems, names).
 * ------------------------------------------------------------------------ */

static int byte_needs_escape(unsigned char c)
{
	return c == '%' || c == '/' || c < 0x20 || c == 0x7F;
}

static void append_percent(struct textbuf *b, unsigned char c)
{
	static const char hex[] = "0123456789ABCDEF";
	char esc[3] = {'%', hex[c >> 4], hex[c & 0xF]};

	textbuf_append(b, esc, sizeof(esc));
}

/* Appends s with '%', '/' and control bytes as %XX; no first-character rule. */
static void append_escaped_body(struct textbuf *b, const char *s, size_t n)
{
	size_t i = 0;

	while (i < n) {
		size_t run = i;

		while (run < n && !byte_needs_escape((unsigned char)s[run]))
			run++;
		textbuf_append(b, s + i, run - i);
		if (run < n)
			append_percent(b, (unsigned char)s[run++]);
		i = run;
	}
}

/* Appends the escaped form of a string key or name: "~s" for the empty
 * string; the first character as %XX when it is '.', '~' or '%' or when the
 * text reads as a number. Returns -1 when s is not valid UTF-8. */
static int append_escaped_string(struct textbuf *b, const char *s, size_t n)
{
	double ignored;
	unsigned char first;

	if (!utf8_valid(s, n))
		return -1;
	if (n == 0) {
		textbuf_append_str(b, "~s");
		return 0;
	}
	first = (unsigned char)s[0];
	if (first == '.' || first == '~' || first == '%' ||
	    parse_canonical_number(s, n, &ignored)) {
		append_percent(b, first);
		append_escaped_body(b, s + 1, n - 1);
	} else {
		append_escaped_body(b, s, n);
	}
	return 0;
}

static int hex_value(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	return -1;
}

/* Replaces every %XX in s[0..n) by its byte. Returns malloc'd text
 * (NUL-terminated, length in *out_len) or NULL for a malformed escape or
 * when out of memory. Canonical form is the caller's business. */
static char *percent_unescape(const char *s, size_t n, size_t *out_len)
{
	char *out = malloc(n + 1);
	size_t k = 0;

	if (!out)
		return NULL;
	for (size_t i = 0; i < n; i++) {
		if (s[i] != '%') {
			out[k++] = s[i];
			continue;
		}
		if (n - i < 3 || hex_value(s[i + 1]) < 0 || hex_value(s[i + 2]) < 0) {
			free(out);
			return NULL;
		}
		out[k++] = (char)(hex_value(s[i + 1]) << 4 | hex_value(s[i + 2]));
		i += 2;
	}
	out[k] = '\0';
	*out_len = k;
	return out;
}

char *name_escape(const char *s, size_t len)
{
	struct textbuf b = TEXTBUF_INIT;

	if (!s || append_escaped_string(&b, s, len) < 0) {
		textbuf_free(&b);
		return NULL;
	}
	return textbuf_take(&b);
}

char *name_unescape(const char *name, size_t *len_out)
{
	struct textbuf again = TEXTBUF_INIT;
	size_t n, len;
	char *s;

	if (!name)
		return NULL;
	n = strlen(name);
	if (n == 2 && memcmp(name, "~s", 2) == 0) {
		s = calloc(1, 1);
		if (s && len_out)
			*len_out = 0;
		return s;
	}
	s = percent_unescape(name, n, &len);
	if (!s)
		return NULL;
	if (append_escaped_string(&again, s, len) < 0 || again.failed || again.b.len != n ||
	    memcmp(again.b.data, name, n) != 0) {
		textbuf_free(&again);
		free(s);
		return NULL;
	}
	textbuf_free(&again);
	if (len_out)
		*len_out = len;
	return s;
}

/* ---------------------------------------------------------------------------
 * Stems.
 * ------------------------------------------------------------------------ */

/* Appends the unhashed stem of a checked key. */
static void append_stem(struct textbuf *b, const json_t *key)
{
	char num[32];
	struct textbuf array_text = TEXTBUF_INIT;
	const char *tag;
	json_t *value;

	switch (json_typeof(key)) {
	case JSON_INTEGER:
	case JSON_REAL:
		textbuf_append(b, num, (size_t)key_number_to_string(number_key_value(key), num));
		break;
	case JSON_STRING:
		if (append_escaped_string(b, json_string_value(key), json_string_length(key)) < 0)
			b->failed = 1;
		break;
	case JSON_ARRAY:
		append_canonical_json(&array_text, key);
		if (array_text.failed) {
			b->failed = 1;
		} else {
			textbuf_append_str(b, "~a");
			append_escaped_body(b, array_text.b.data, array_text.b.len);
		}
		textbuf_free(&array_text);
		break;
	case JSON_OBJECT:
		tag = json_object_iter_key(json_object_iter((json_t *)key));
		value = json_object_iter_value(json_object_iter((json_t *)key));
		/* "~n" stems are the number text itself: "Infinity", "-Infinity". */
		if (strcmp(tag, "~n") != 0)
			textbuf_append_str(b, tag);
		textbuf_append(b, json_string_value(value), json_string_length(value));
		break;
	default:
		b->failed = 1;
	}
}

/* Returns "~h" + 64 lowercase hex digits of SHA-256(stem), malloc'd. */
static char *hashed_stem(const char *stem, size_t len)
{
	static const char hex[] = "0123456789abcdef";
	unsigned char md[EVP_MAX_MD_SIZE];
	unsigned int md_len = 0;
	char *out;

	if (EVP_Digest(stem, len, md, &md_len, EVP_sha256(), NULL) != 1 || md_len != 32)
		return NULL;
	out = malloc(2 + 64 + 1);
	if (!out)
		return NULL;
	out[0] = '~';
	out[1] = 'h';
	for (unsigned int i = 0; i < md_len; i++) {
		out[2 + 2 * i] = hex[md[i] >> 4];
		out[3 + 2 * i] = hex[md[i] & 0xF];
	}
	out[66] = '\0';
	return out;
}

char *key_encode_stem(const json_t *key, char **unhashed_out)
{
	struct textbuf b = TEXTBUF_INIT;
	char *unhashed, *stem;
	size_t len;

	if (unhashed_out)
		*unhashed_out = NULL;
	if (key_check(key, NULL, 0) < 0)
		return NULL;
	append_stem(&b, key);
	len = b.b.len;
	unhashed = textbuf_take(&b);
	if (!unhashed)
		return NULL;
	if (len + KEY_SUFFIX_LEN <= KEY_NAME_MAX) {
		if (!unhashed_out)
			return unhashed;
		stem = malloc(len + 1);
		if (!stem) {
			free(unhashed);
			return NULL;
		}
		memcpy(stem, unhashed, len + 1);
	} else {
		stem = hashed_stem(unhashed, len);
		if (!stem) {
			free(unhashed);
			return NULL;
		}
	}
	if (unhashed_out)
		*unhashed_out = unhashed;
	else
		free(unhashed);
	return stem;
}

/* Returns 1 when s[0..n) is "~h" followed by exactly 64 lowercase hex digits. */
static int is_hashed_stem(const char *s, size_t n)
{
	if (n != 66 || s[0] != '~' || s[1] != 'h')
		return 0;
	for (size_t i = 2; i < n; i++) {
		if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f')))
			return 0;
	}
	return 1;
}

/* Parses the JSON text of a key with the flags every key reader uses: any
 * top-level value, NUL in strings, integers as doubles (as JavaScript reads
 * them; "123456789012345680000" would overflow json_int_t), no duplicate
 * members. Returns a checked, normalized key or NULL. */
static json_t *parse_key_text(const char *text, size_t len, char *why, size_t why_len)
{
	json_error_t error;
	json_t *key;

	key = json_loadb(text, len,
	                 JSON_DECODE_ANY | JSON_ALLOW_NUL | JSON_DECODE_INT_AS_REAL |
	                         JSON_REJECT_DUPLICATES,
	                 &error);
	if (!key) {
		reject(why, why_len, error.text);
		return NULL;
	}
	if (key_check(key, why, why_len) < 0) {
		json_decref(key);
		return NULL;
	}
	key = key_normalize(key);
	if (!key)
		reject(why, why_len, "out of memory");
	return key;
}

json_t *key_from_json_text(const char *text, size_t len, char *why, size_t why_len)
{
	if (!text) {
		reject(why, why_len, "no text");
		return NULL;
	}
	return parse_key_text(text, len, why, why_len);
}

/* Decodes a stem without the canonical-form check. Returns a new key or
 * NULL. */
static json_t *decode_stem_loosely(const char *stem, size_t len)
{
	json_t *key = NULL;
	size_t text_len;
	char *text;
	double d;

	if (stem[0] == '~') {
		if (len < 2)
			return NULL;
		switch (stem[1]) {
		case 's':
			return len == 2 ? json_string("") : NULL;
		case 'd':
		case 'b': {
			char tag[3] = {'~', stem[1], '\0'};

			return json_pack("{s:s%}", tag, stem + 2, len - 2);
		}
		case 'a':
			text = percent_unescape(stem + 2, len - 2, &text_len);
			if (!text)
				return NULL;
			key = parse_key_text(text, text_len, NULL, 0);
			free(text);
			if (key && !json_is_array(key)) {
				json_decref(key);
				key = NULL;
			}
			return key;
		default:
			return NULL;
		}
	}
	if (parse_canonical_number(stem, len, &d))
		return number_key_new(d);
	text = percent_unescape(stem, len, &text_len);
	if (!text)
		return NULL;
	if (utf8_valid(text, text_len))
		key = json_stringn(text, text_len);
	free(text);
	return key;
}

int key_decode_stem(const char *stem, size_t len, json_t **key_out)
{
	struct textbuf again = TEXTBUF_INIT;
	json_t *key;
	int canonical;

	if (key_out)
		*key_out = NULL;
	/* A stem that does not fit a file name is never canonical: only its
	 * "~h" form is. */
	if (!stem || len == 0 || len + KEY_SUFFIX_LEN > KEY_NAME_MAX)
		return -EINVAL;
	if (memchr(stem, '/', len) || memchr(stem, '\0', len))
		return -EINVAL;
	if (len >= 2 && stem[0] == '~' && stem[1] == 'h')
		return is_hashed_stem(stem, len) ? KEY_HASHED : -EINVAL;
	key = decode_stem_loosely(stem, len);
	if (!key || key_check(key, NULL, 0) < 0) {
		json_decref(key);
		return -EINVAL;
	}
	append_stem(&again, key);
	canonical = !again.failed && again.b.len == len && memcmp(again.b.data, stem, len) == 0;
	textbuf_free(&again);
	if (!canonical) {
		json_decref(key);
		return -EINVAL;
	}
	if (key_out)
		*key_out = key;
	else
		json_decref(key);
	return KEY_DECODED;
}
