/* key_check.c - what makes a jansson value a key, and reading one from JSON
 * text (see key.h).
 *
 * Keys that come out of the codec (decoded stems, parsed JSON text) are
 * normalized here: a number that is an integer of magnitude at most 2^53 is
 * a json_integer, other finite numbers json_real, infinities {"~n": ...}.
 */
#include "key_internal.h"
#include "utf8.h"

#include <errno.h>
#include <math.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int key_reject(char *why, size_t why_len, const char *msg)
{
	if (why && why_len)
		snprintf(why, why_len, "%s", msg);
	return -EINVAL;
}

/* ---------------------------------------------------------------------------
 * Small validators: base64url, ISO dates (UTF-8 is utf8.c's).
 * ------------------------------------------------------------------------ */

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

json_t *key_number_new(double d)
{
	if (isinf(d))
		return json_pack("{s:s}", "~n", d > 0 ? "Infinity" : "-Infinity");
	if (d == trunc(d) && fabs(d) <= KEY_SAFE_INTEGER)
		return json_integer((json_int_t)d);
	return json_real(d);
}

/* Takes a reference to a checked key and returns it normalized (see
 * key_number_new), or NULL after an allocation failure. */
static json_t *key_normalize(json_t *key)
{
	if (json_is_real(key)) {
		json_t *n = key_number_new(json_real_value(key));

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
			return key_reject(why, why_len, "number is not finite");
		return 0;
	case JSON_STRING:
		if (!utf8_valid(json_string_value(key), json_string_length(key)))
			return key_reject(why, why_len, "string is not valid UTF-8");
		return 0;
	case JSON_ARRAY:
		if (depth >= KEY_MAX_DEPTH)
			return key_reject(why, why_len, "array nested too deeply");
		for (size_t i = 0; i < json_array_size(key); i++) {
			int rc = check_key(json_array_get(key, i), depth + 1, why, why_len);

			if (rc < 0)
				return rc;
		}
		return 0;
	case JSON_OBJECT:
		break;
	default:
		return key_reject(why, why_len, "true, false and null are not keys");
	}
	if (json_object_size(key) != 1)
		return key_reject(why, why_len,
		                  "a key object has exactly one member: ~d, ~b or ~n");
	tag = json_object_iter_key(json_object_iter((json_t *)key));
	value = json_object_iter_value(json_object_iter((json_t *)key));
	if (!json_is_string(value))
		return key_reject(why, why_len, "a key tag's value must be a string");
	text = json_string_value(value);
	len = json_string_length(value);
	if (strcmp(tag, "~d") == 0) {
		if (!date_valid(text, len))
			return key_reject(why, why_len, "~d is not a valid toISOString date");
	} else if (strcmp(tag, "~b") == 0) {
		if (!base64url_valid(text, len))
			return key_reject(why, why_len, "~b is not canonical unpadded base64url");
	} else if (strcmp(tag, "~n") == 0) {
		if (strcmp(text, "Infinity") != 0 && strcmp(text, "-Infinity") != 0)
			return key_reject(why, why_len, "~n must be \"Infinity\" or \"-Infinity\"");
	} else {
		return key_reject(why, why_len, "unknown key tag (want ~d, ~b or ~n)");
	}
	return 0;
}

int key_check(const json_t *key, char *why, size_t why_len)
{
	if (!key)
		return key_reject(why, why_len, "no key");
	return check_key(key, 0, why, why_len);
}

/* Parses the JSON text of a key with the flags every key reader uses: any
 * top-level value, NUL in strings, integers as doubles (as JavaScript reads
 * them; "123456789012345680000" would overflow json_int_t), no duplicate
 * members. Returns a checked, normalized key or NULL. */
json_t *key_parse_text(const char *text, size_t len, char *why, size_t why_len)
{
	json_error_t error;
	json_t *key;

	key = json_loadb(text, len,
	                 JSON_DECODE_ANY | JSON_ALLOW_NUL | JSON_DECODE_INT_AS_REAL |
	                         JSON_REJECT_DUPLICATES,
	                 &error);
	if (!key) {
		key_reject(why, why_len, error.text);
		return NULL;
	}
	if (key_check(key, why, why_len) < 0) {
		json_decref(key);
		return NULL;
	}
	key = key_normalize(key);
	if (!key)
		key_reject(why, why_len, "out of memory");
	return key;
}

json_t *key_from_json_text(const char *text, size_t len, char *why, size_t why_len)
{
	if (!text) {
		key_reject(why, why_len, "no text");
		return NULL;
	}
	return key_parse_text(text, len, why, why_len);
}
