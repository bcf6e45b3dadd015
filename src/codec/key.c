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
 * Numbers are written by number_text.c; checking a key and reading it from
 * JSON text is key_check.c's.
 *
 * Growable text buffers are capped at KEY_TEXT_CAP bytes; a key whose text
 * would exceed it is treated like an allocation failure (NULL).
 */
#include "key_internal.h"

#include "idbmount/codec/json_text.h"
#include "idbmount/codec/number_text.h"
#include "idbmount/util/buf.h"
#include "utf8.h"

#include <errno.h>
#include <math.h>
#include <openssl/evp.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---------------------------------------------------------------------------
 * Canonical JSON.
 * ------------------------------------------------------------------------ */

static double number_key_value(const json_t *key)
{
	return json_is_integer(key) ? (double)json_integer_value(key) : json_real_value(key);
}

/* Appends the canonical JSON of a checked key. */
static void append_canonical_json(struct buf *b, const json_t *key)
{
	char num[32];
	void *iter;

	switch (json_typeof(key)) {
	case JSON_INTEGER:
	case JSON_REAL:
		buf_append(b, num, (size_t)number_text_format(number_key_value(key), num));
		break;
	case JSON_STRING:
		json_text_string(b, json_string_value(key), json_string_length(key));
		break;
	case JSON_ARRAY:
		buf_append_char(b, '[');
		for (size_t i = 0; i < json_array_size(key); i++) {
			if (i)
				buf_append_char(b, ',');
			append_canonical_json(b, json_array_get(key, i));
		}
		buf_append_char(b, ']');
		break;
	case JSON_OBJECT:
		iter = json_object_iter((json_t *)key);
		buf_append_char(b, '{');
		json_text_string(b, json_object_iter_key(iter), strlen(json_object_iter_key(iter)));
		buf_append_char(b, ':');
		json_text_string(b, json_string_value(json_object_iter_value(iter)),
		                 json_string_length(json_object_iter_value(iter)));
		buf_append_char(b, '}');
		break;
	default:
		buf_fail(b, -EINVAL); /* unreachable for a checked key */
	}
}

char *key_canonical_json(const json_t *key)
{
	struct buf b = BUF_INIT(KEY_TEXT_CAP);

	if (key_check(key, NULL, 0) < 0)
		return NULL;
	append_canonical_json(&b, key);
	return buf_take(&b, NULL);
}

/* ---------------------------------------------------------------------------
 * String escaping (string keys, array stems, names).
 * ------------------------------------------------------------------------ */

static int byte_needs_escape(unsigned char c)
{
	return c == '%' || c == '/' || c < 0x20 || c == 0x7F;
}

static void append_percent(struct buf *b, unsigned char c)
{
	static const char hex[] = "0123456789ABCDEF";
	char esc[3] = {'%', hex[c >> 4], hex[c & 0xF]};

	buf_append(b, esc, sizeof(esc));
}

/* Appends s with '%', '/' and control bytes as %XX; no first-character rule. */
static void append_escaped_body(struct buf *b, const char *s, size_t n)
{
	size_t i = 0;

	while (i < n) {
		size_t run = i;

		while (run < n && !byte_needs_escape((unsigned char)s[run]))
			run++;
		buf_append(b, s + i, run - i);
		if (run < n)
			append_percent(b, (unsigned char)s[run++]);
		i = run;
	}
}

/* Appends the escaped form of a string key or name: "~s" for the empty
 * string; the first character as %XX when it is '.', '~' or '%' or when the
 * text reads as a number. Returns -1 when s is not valid UTF-8. */
static int append_escaped_string(struct buf *b, const char *s, size_t n)
{
	double ignored;
	unsigned char first;

	if (!utf8_valid(s, n))
		return -1;
	if (n == 0) {
		buf_append_str(b, "~s");
		return 0;
	}
	first = (unsigned char)s[0];
	if (first == '.' || first == '~' || first == '%' ||
	    number_text_parse_canonical(s, n, &ignored)) {
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
	struct buf b = BUF_INIT(KEY_TEXT_CAP);

	if (!s || append_escaped_string(&b, s, len) < 0) {
		buf_free(&b);
		return NULL;
	}
	return buf_take(&b, NULL);
}

char *name_unescape(const char *name, size_t *len_out)
{
	struct buf again = BUF_INIT(KEY_TEXT_CAP);
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
	if (append_escaped_string(&again, s, len) < 0 || buf_error(&again) || again.len != n ||
	    memcmp(again.data, name, n) != 0) {
		buf_free(&again);
		free(s);
		return NULL;
	}
	buf_free(&again);
	if (len_out)
		*len_out = len;
	return s;
}

/* ---------------------------------------------------------------------------
 * Stems.
 * ------------------------------------------------------------------------ */

/* Appends the unhashed stem of a checked key. */
static void append_stem(struct buf *b, const json_t *key)
{
	char num[32];
	struct buf array_text = BUF_INIT(KEY_TEXT_CAP);
	const char *tag;
	json_t *value;

	switch (json_typeof(key)) {
	case JSON_INTEGER:
	case JSON_REAL:
		buf_append(b, num, (size_t)number_text_format(number_key_value(key), num));
		break;
	case JSON_STRING:
		if (append_escaped_string(b, json_string_value(key), json_string_length(key)) < 0)
			buf_fail(b, -EINVAL);
		break;
	case JSON_ARRAY:
		append_canonical_json(&array_text, key);
		if (buf_error(&array_text)) {
			buf_fail(b, -EINVAL);
		} else {
			buf_append_str(b, "~a");
			append_escaped_body(b, array_text.data, array_text.len);
		}
		buf_free(&array_text);
		break;
	case JSON_OBJECT:
		tag = json_object_iter_key(json_object_iter((json_t *)key));
		value = json_object_iter_value(json_object_iter((json_t *)key));
		/* "~n" stems are the number text itself: "Infinity", "-Infinity". */
		if (strcmp(tag, "~n") != 0)
			buf_append_str(b, tag);
		buf_append(b, json_string_value(value), json_string_length(value));
		break;
	default:
		buf_fail(b, -EINVAL);
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
	struct buf b = BUF_INIT(KEY_TEXT_CAP);
	char *unhashed, *stem;
	size_t len;

	if (unhashed_out)
		*unhashed_out = NULL;
	if (key_check(key, NULL, 0) < 0)
		return NULL;
	append_stem(&b, key);
	len = b.len;
	unhashed = buf_take(&b, NULL);
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
			key = key_parse_text(text, text_len, NULL, 0);
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
	if (number_text_parse_canonical(stem, len, &d))
		return key_number_new(d);
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
	struct buf again = BUF_INIT(KEY_TEXT_CAP);
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
	canonical = !buf_error(&again) && again.len == len && memcmp(again.data, stem, len) == 0;
	buf_free(&again);
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
