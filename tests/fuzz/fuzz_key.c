/* fuzz_key.c - the key codec (src/codec/key.c), file names both ways.
 *
 * The input is read five ways, each with its properties:
 *   - as a file name stem: a stem that decodes encodes back to the very
 *     same bytes, and its key's canonical JSON reads back as that key; a
 *     "~h" stem is reported only when it is "~h" + 64 lowercase hex digits;
 *   - as the JSON text of a key: its stem is a valid file name part (no
 *     '/', no NUL, not hidden, at most 250 bytes), decodes to the same key
 *     (canonical JSON and normalized value), or is the "~h" hash of the
 *     long stem, which itself never decodes; a string key's stem is its
 *     name_escape;
 *   - as two key texts split at the first newline: two keys get one stem
 *     exactly when their canonical JSON is the same (uniqueness);
 *   - as a name: name_escape refuses exactly what jansson refuses as
 *     UTF-8, and name_unescape gives the bytes back; a name that unescapes
 *     escapes back to itself;
 *   - its first 8 bytes as a double: number_text_format reads back as the
 *     same number, with no shorter correctly rounded form that does.
 */
#include "fuzz.h"

#include "idbmount/codec/key.h"
#include "idbmount/codec/number_text.h"

#include <errno.h>
#include <math.h>
#include <stdbool.h>
#include <string.h>

static bool is_hashed_name(const char *s, size_t n)
{
	if (n != 66 || s[0] != '~' || s[1] != 'h')
		return false;
	for (size_t i = 2; i < n; i++)
		if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f')))
			return false;
	return true;
}

/* The canonical JSON of a key that must have one. */
static char *canonical(const json_t *key)
{
	char *c = key_canonical_json(key);
	FUZZ_CHECK(c, "a checked key has no canonical JSON");
	return c;
}

static void check_stem(const char *stem, size_t len)
{
	json_t *key = NULL;
	int rc = key_decode_stem(stem, len, &key);
	FUZZ_CHECK(rc == KEY_DECODED || rc == KEY_HASHED || rc == -EINVAL, "rc %d", rc);
	if (rc == KEY_HASHED)
		FUZZ_CHECK(is_hashed_name(stem, len), "'%.*s' taken for a hashed stem", (int)len,
		           stem);
	if (rc != KEY_DECODED) {
		FUZZ_CHECK(!key, "a key for a stem that did not decode");
		return;
	}
	FUZZ_CHECK(key_check(key, NULL, 0) == 0, "a decoded key fails key_check");
	char *unhashed = NULL;
	char *again = key_encode_stem(key, &unhashed);
	FUZZ_CHECK(again && strlen(again) == len && memcmp(again, stem, len) == 0,
	           "stem '%.*s' decodes to a key whose stem is '%s'", (int)len, stem,
	           again ? again : "(none)");
	char *canon = canonical(key);
	json_t *reread = key_from_json_text(canon, strlen(canon), NULL, 0);
	FUZZ_CHECK(reread, "canonical JSON %s does not read back", canon);
	char *canon2 = canonical(reread);
	FUZZ_CHECK(strcmp(canon, canon2) == 0, "%s reads back as %s", canon, canon2);
	FUZZ_CHECK(json_equal(key, reread), "%s: decoded and reread keys differ", canon);
	free(canon2);
	json_decref(reread);
	free(canon);
	free(again);
	free(unhashed);
	json_decref(key);
}

/* The stem of a key read from JSON text; checks the round trip through
 * the stem and returns the canonical JSON and the unhashed stem. */
static json_t *check_key_text(const char *text, size_t len, char **canon_out, char **stem_out,
                              char **unhashed_out)
{
	json_t *key = key_from_json_text(text, len, NULL, 0);
	if (!key)
		return NULL;
	char *canon = canonical(key);
	char *unhashed = NULL;
	char *stem = key_encode_stem(key, &unhashed);
	FUZZ_CHECK(stem && unhashed, "no stem for key %s", canon);
	size_t n = strlen(stem);
	FUZZ_CHECK(n > 0 && n + KEY_SUFFIX_LEN <= KEY_NAME_MAX, "stem of %zu bytes for %s", n,
	           canon);
	FUZZ_CHECK(!strchr(stem, '/') && stem[0] != '.', "stem '%s' is no file name", stem);
	json_t *decoded = NULL;
	int rc = key_decode_stem(stem, n, &decoded);
	if (strcmp(stem, unhashed) == 0) {
		FUZZ_CHECK(rc == KEY_DECODED, "stem '%s' of %s does not decode (%d)", stem, canon,
		           rc);
		char *canon2 = canonical(decoded);
		FUZZ_CHECK(strcmp(canon, canon2) == 0, "%s -> '%s' -> %s", canon, stem, canon2);
		FUZZ_CHECK(json_equal(key, decoded), "%s: decoded key differs in type", canon);
		free(canon2);
	} else {
		FUZZ_CHECK(rc == KEY_HASHED && is_hashed_name(stem, n),
		           "hashed stem '%s' of %s: %d", stem, canon, rc);
		FUZZ_CHECK(strlen(unhashed) + KEY_SUFFIX_LEN > KEY_NAME_MAX,
		           "%s hashed though its stem fits", canon);
		FUZZ_CHECK(key_decode_stem(unhashed, strlen(unhashed), NULL) == -EINVAL,
		           "the long stem of %s decodes", canon);
	}
	if (json_is_string(key)) {
		char *escaped = name_escape(json_string_value(key), json_string_length(key));
		FUZZ_CHECK(escaped && strcmp(escaped, unhashed) == 0,
		           "string key %s: stem '%s', name_escape '%s'", canon, unhashed,
		           escaped ? escaped : "(none)");
		free(escaped);
	}
	json_decref(decoded);
	*canon_out = canon;
	*stem_out = stem;
	*unhashed_out = unhashed;
	return key;
}

static void check_one_key(const char *text, size_t len)
{
	char *canon = NULL, *stem = NULL, *unhashed = NULL;
	json_t *key = check_key_text(text, len, &canon, &stem, &unhashed);
	if (!key)
		return;
	/* The canonical text is itself a key text that changes nothing. */
	char *canon2 = NULL, *stem2 = NULL, *unhashed2 = NULL;
	json_t *again = check_key_text(canon, strlen(canon), &canon2, &stem2, &unhashed2);
	FUZZ_CHECK(again && strcmp(canon, canon2) == 0 && strcmp(stem, stem2) == 0,
	           "canonical JSON %s is not stable", canon);
	json_decref(again);
	free(canon2);
	free(stem2);
	free(unhashed2);
	json_decref(key);
	free(canon);
	free(stem);
	free(unhashed);
}

static void check_two_keys(const char *a, size_t alen, const char *b, size_t blen)
{
	char *ca = NULL, *sa = NULL, *ua = NULL, *cb = NULL, *sb = NULL, *ub = NULL;
	json_t *ka = check_key_text(a, alen, &ca, &sa, &ua);
	json_t *kb = ka ? check_key_text(b, blen, &cb, &sb, &ub) : NULL;
	if (ka && kb) {
		bool same = strcmp(ca, cb) == 0;
		FUZZ_CHECK(same == (strcmp(sa, sb) == 0), "keys %s and %s, stems '%s' and '%s'", ca,
		           cb, sa, sb);
		FUZZ_CHECK(same == (strcmp(ua, ub) == 0), "keys %s and %s, long stems equal: %d",
		           ca, cb, !same);
	}
	json_decref(ka);
	json_decref(kb);
	free(ca);
	free(sa);
	free(ua);
	free(cb);
	free(sb);
	free(ub);
}

static void check_name(const char *s, size_t len)
{
	char *escaped = name_escape(s, len);
	json_t *as_string = json_stringn(s, len); /* NULL: not UTF-8 to jansson */
	FUZZ_CHECK(!escaped == !as_string, "name_escape %s a name jansson %s",
	           escaped ? "takes" : "refuses", as_string ? "takes" : "refuses");
	json_decref(as_string);
	if (escaped) {
		FUZZ_CHECK(escaped[0] && escaped[0] != '.' && !strchr(escaped, '/'),
		           "name_escape gives '%s'", escaped);
		size_t back_len = 0;
		char *back = name_unescape(escaped, &back_len);
		FUZZ_CHECK(back && back_len == len && memcmp(back, s, len) == 0,
		           "'%s' does not unescape to the name it escapes", escaped);
		free(back);
		free(escaped);
	}
	if (memchr(s, '\0', len))
		return;
	size_t plain_len = 0;
	char *plain = name_unescape(s, &plain_len);
	if (plain) {
		char *again = name_escape(plain, plain_len);
		FUZZ_CHECK(again && strcmp(again, s) == 0, "'%s' unescapes, escapes to '%s'", s,
		           again ? again : "(none)");
		free(again);
		free(plain);
	}
}

static void check_number(double d)
{
	if (isnan(d))
		return;
	char text[32];
	int n = number_text_format(d, text);
	FUZZ_CHECK(n > 0 && n < 32 && (size_t)n == strlen(text), "length %d", n);
	if (isinf(d)) {
		FUZZ_CHECK(strcmp(text, d > 0 ? "Infinity" : "-Infinity") == 0, "%s", text);
		return;
	}
	double back = strtod(text, NULL);
	FUZZ_CHECK(back == d, "%.17g is written %s, which reads as %.17g", d, text, back);
	/* Shortest: no correctly rounded form with one digit less reads back. */
	/* Significant digits: from the first non-zero digit to the last one
	 * before any exponent. */
	int first = -1, last = -1, at = 0;
	for (const char *p = text; *p && *p != 'e'; p++) {
		if (*p < '0' || *p > '9')
			continue;
		if (*p != '0') {
			if (first < 0)
				first = at;
			last = at;
		}
		at++;
	}
	int significant = first < 0 ? 0 : last - first + 1;
	if (significant > 1) {
		char shorter[40];
		snprintf(shorter, sizeof(shorter), "%.*e", significant - 2, d);
		FUZZ_CHECK(strtod(shorter, NULL) != d, "%.17g is written %s but %s reads back", d,
		           text, shorter);
	}
	json_t *key = key_from_json_text(text, (size_t)n, NULL, 0);
	FUZZ_CHECK(key && json_is_number(key) && json_number_value(key) == d,
	           "%s is no number key of %.17g", text, d);
	char *stem = key_encode_stem(key, NULL);
	FUZZ_CHECK(stem && strcmp(stem, text) == 0, "number %s has stem %s", text,
	           stem ? stem : "(none)");
	free(stem);
	json_decref(key);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *text = fuzz_strndup(data, size);
	check_stem(text, size);
	check_one_key(text, size);
	const char *nl = memchr(text, '\n', size);
	if (nl)
		check_two_keys(text, (size_t)(nl - text), nl + 1, size - (size_t)(nl - text) - 1);
	check_name(text, size);
	if (size >= sizeof(double)) {
		double d;
		memcpy(&d, data, sizeof(d));
		check_number(d);
	}
	free(text);
	return 0;
}
