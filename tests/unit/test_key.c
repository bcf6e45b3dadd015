/* test_key.c - unit tests of the key codec (src/codec/key.c).
 *
 * Three kinds of test: tables of exact examples (stems, number texts,
 * rejected names), a seeded random round trip of every key type through
 * key_encode_stem / key_decode_stem and key_canonical_json /
 * key_from_json_text, and a uniqueness check that no two distinct keys share
 * a stem over the same random keys plus adversarial pairs.
 */
#include <errno.h>
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "idbmount/codec/key.h"
#include "idbmount/codec/number_text.h"

#define RANDOM_KEYS 100000

/* ---------------------------------------------------------------------------
 * Helpers.
 * ------------------------------------------------------------------------ */

/* splitmix64: small, seeded, the same sequence on every machine. */
static uint64_t rng_state;

static uint64_t rng_next(void)
{
	uint64_t z = (rng_state += 0x9E3779B97F4A7C15ull);

	z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
	z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
	return z ^ (z >> 31);
}

/* A number in [0, n). */
static uint64_t rng_below(uint64_t n)
{
	return rng_next() % n;
}

static json_t *parse(const char *text)
{
	char why[160] = "";
	json_t *key = key_from_json_text(text, strlen(text), why, sizeof(why));

	if (!key)
		fail_msg("key_from_json_text(%s): %s", text, why);
	return key;
}

static char *canonical(const json_t *key)
{
	char *text = key_canonical_json(key);

	assert_non_null(text);
	return text;
}

static int is_hashed(const char *stem)
{
	if (strlen(stem) != 66 || strncmp(stem, "~h", 2) != 0)
		return 0;
	for (size_t i = 2; i < 66; i++) {
		if (!((stem[i] >= '0' && stem[i] <= '9') || (stem[i] >= 'a' && stem[i] <= 'f')))
			return 0;
	}
	return 1;
}

/* Encodes the key given as JSON text, compares with the expected stem, and
 * decodes the stem back to the same canonical JSON. */
static void check_example(const char *json_text, const char *want_stem)
{
	json_t *key = parse(json_text), *back = NULL;
	char *stem = key_encode_stem(key, NULL);
	char *text, *back_text;

	assert_non_null(stem);
	if (strcmp(stem, want_stem) != 0)
		fail_msg("%s: stem %s, want %s", json_text, stem, want_stem);
	assert_int_equal(key_decode_stem(stem, strlen(stem), &back), KEY_DECODED);
	text = canonical(key);
	back_text = canonical(back);
	assert_string_equal(text, back_text);
	free(text);
	free(back_text);
	free(stem);
	json_decref(back);
	json_decref(key);
}

static void check_rejected_stem(const char *stem, size_t len)
{
	json_t *key = NULL;
	int rc = key_decode_stem(stem, len, &key);

	/* One case passes NULL (with length 0), which %.*s may not print. */
	if (rc != -EINVAL)
		fail_msg("stem \"%.*s\" (%zu bytes) decoded (%d)", (int)len, stem ? stem : "", len,
		         rc);
	assert_null(key);
}

static void check_number(double d, const char *want)
{
	char out[32];
	int len = number_text_format(d, out);

	if (strcmp(out, want) != 0)
		fail_msg("%.17g: got %s, want %s", d, out, want);
	assert_int_equal(len, (int)strlen(want));
}

/* Unpadded base64url of n bytes. */
static void base64url(const unsigned char *in, size_t n, char *out)
{
	static const char abc[] =
	        "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
	size_t k = 0, i;

	for (i = 0; i + 2 < n; i += 3) {
		uint32_t v = (uint32_t)in[i] << 16 | (uint32_t)in[i + 1] << 8 | in[i + 2];

		out[k++] = abc[v >> 18 & 63];
		out[k++] = abc[v >> 12 & 63];
		out[k++] = abc[v >> 6 & 63];
		out[k++] = abc[v & 63];
	}
	if (n - i == 1) {
		out[k++] = abc[in[i] >> 2];
		out[k++] = abc[(in[i] & 3) << 4];
	} else if (n - i == 2) {
		uint32_t v = (uint32_t)in[i] << 8 | in[i + 1];

		out[k++] = abc[v >> 10 & 63];
		out[k++] = abc[v >> 4 & 63];
		out[k++] = abc[(v & 15) << 2];
	}
	out[k] = '\0';
}

/* Date.prototype.toISOString of a time value (H. Hinnant's civil_from_days). */
static void iso_from_ms(int64_t ms, char out[40])
{
	int64_t days = ms / 86400000, rem = ms % 86400000;
	int64_t z, era, doe, yoe, y, doy, mp, d, m;

	if (rem < 0) {
		rem += 86400000;
		days--;
	}
	z = days + 719468;
	era = (z >= 0 ? z : z - 146096) / 146097;
	doe = z - era * 146097;
	yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
	y = yoe + era * 400;
	doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
	mp = (5 * doy + 2) / 153;
	d = doy - (153 * mp + 2) / 5 + 1;
	m = mp < 10 ? mp + 3 : mp - 9;
	y += m <= 2;
	if (y >= 0 && y <= 9999)
		snprintf(out, 40, "%04d", (int)y);
	else
		snprintf(out, 40, "%c%06d", y < 0 ? '-' : '+', (int)(y < 0 ? -y : y));
	snprintf(out + strlen(out), 40 - strlen(out), "-%02d-%02dT%02d:%02d:%02d.%03dZ", (int)m,
	         (int)d, (int)(rem / 3600000), (int)(rem / 60000 % 60), (int)(rem / 1000 % 60),
	         (int)(rem % 1000));
}

/* ---------------------------------------------------------------------------
 * Random keys.
 * ------------------------------------------------------------------------ */

static void append_utf8(char *buf, size_t *len, uint32_t cp)
{
	if (cp < 0x80) {
		buf[(*len)++] = (char)cp;
	} else if (cp < 0x800) {
		buf[(*len)++] = (char)(0xC0 | cp >> 6);
		buf[(*len)++] = (char)(0x80 | (cp & 0x3F));
	} else if (cp < 0x10000) {
		buf[(*len)++] = (char)(0xE0 | cp >> 12);
		buf[(*len)++] = (char)(0x80 | (cp >> 6 & 0x3F));
		buf[(*len)++] = (char)(0x80 | (cp & 0x3F));
	} else {
		buf[(*len)++] = (char)(0xF0 | cp >> 18);
		buf[(*len)++] = (char)(0x80 | (cp >> 12 & 0x3F));
		buf[(*len)++] = (char)(0x80 | (cp >> 6 & 0x3F));
		buf[(*len)++] = (char)(0x80 | (cp & 0x3F));
	}
}

static double random_double(void)
{
	uint64_t bits;
	double d;

	switch (rng_below(6)) {
	case 0: /* small integers: many equal keys */
		return (double)((int64_t)rng_below(201) - 100);
	case 1: /* decimal fractions across the layout ranges */
		return (double)((int64_t)rng_below(2000001) - 1000000) /
		       pow(10, (double)rng_below(30));
	case 2: /* powers of two, where the shortest digits are hardest */
		return ldexp(rng_below(2) ? 1 : -1, (int)rng_below(2098) - 1074);
	case 3:
		return ldexp((double)(rng_next() >> 11), (int)rng_below(180) - 90);
	default: /* any bit pattern but NaN */
		do {
			bits = rng_next();
			memcpy(&d, &bits, sizeof(d));
		} while (isnan(d));
		return d;
	}
}

static json_t *random_number_key(void)
{
	double d;

	if (rng_below(10) == 0)
		return json_integer((json_int_t)rng_next()); /* beyond 2^53 too */
	d = random_double();
	if (isinf(d))
		return json_pack("{s:s}", "~n", d > 0 ? "Infinity" : "-Infinity");
	if (rng_below(2) && d == trunc(d) && fabs(d) < 9e18)
		return json_integer((json_int_t)d);
	return json_real(d);
}

static json_t *random_string_key(void)
{
	static const char *const special[] = {
	        "~d2026-01-02T03:04:05.000Z",
	        "~s",
	        "~bAAEC",
	        "~a[]",
	        "~a[\"u1\",7]",
	        "Infinity",
	        "-Infinity",
	        "NaN",
	        "-0",
	        "1e21",
	        "1.50",
	        ".",
	        "..",
	        "~",
	        "~h0000000000000000000000000000000000000000000000000000000000000000",
	};
	char buf[2048], num[32];
	size_t len = 0, pieces;

	switch (rng_below(20)) {
	case 0:
	case 1: /* reads as a number */
		number_text_format(random_double(), num);
		return json_string(num);
	case 2:
		return json_string(special[rng_below(sizeof(special) / sizeof(special[0]))]);
	case 3: /* long: hashed names */
		pieces = 100 + rng_below(300);
		break;
	default:
		pieces = rng_below(12);
	}
	for (size_t i = 0; i < pieces; i++) {
		uint32_t cp;

		switch (rng_below(9)) {
		case 0:
			buf[len++] = (char)(rng_below(2) ? rng_below(0x20) : 0x7F);
			break;
		case 1:
			buf[len++] = "%/.~"[rng_below(4)];
			break;
		case 2:
			append_utf8(buf, &len, 0x80 + (uint32_t)rng_below(0x800 - 0x80));
			break;
		case 3:
			do
				cp = 0x800 + (uint32_t)rng_below(0x10000 - 0x800);
			while (cp >= 0xD800 && cp <= 0xDFFF);
			append_utf8(buf, &len, cp);
			break;
		case 4:
			append_utf8(buf, &len, 0x10000 + (uint32_t)rng_below(0x110000 - 0x10000));
			break;
		case 5:
			buf[len++] = "0123456789.-+eI\"\\"[rng_below(17)];
			break;
		default:
			buf[len++] = (char)(0x20 + rng_below(0x7F - 0x20));
		}
	}
	return json_stringn(buf, len);
}

static json_t *random_date_key(void)
{
	static const int64_t edges[] = {
	        8640000000000000LL, -8640000000000000LL, 0,
	        -62198755200000LL,  -62167219200001LL,   -62167219200000LL,
	        253402300799999LL,  253402300800000LL,   951782400000LL,
	};
	char iso[40];
	int64_t ms;

	if (rng_below(10) == 0)
		ms = edges[rng_below(sizeof(edges) / sizeof(edges[0]))];
	else if (rng_below(2))
		ms = (int64_t)rng_below(17280000000000001ull) - 8640000000000000LL;
	else /* around the years 0..9999 */
		ms = (int64_t)rng_below(400000000000000ull) - 100000000000000LL;
	iso_from_ms(ms, iso);
	return json_pack("{s:s}", "~d", iso);
}

static json_t *random_binary_key(void)
{
	unsigned char bytes[200];
	char text[300];
	size_t n = rng_below(20) == 0 ? 150 + rng_below(50) : rng_below(24);

	for (size_t i = 0; i < n; i++)
		bytes[i] = (unsigned char)rng_next();
	base64url(bytes, n, text);
	return json_pack("{s:s}", "~b", text);
}

static json_t *random_key(int depth)
{
	json_t *array;
	size_t n;

	switch (rng_below(depth < 3 ? 6 : 5)) {
	case 0:
	case 1:
		return random_number_key();
	case 2:
		return random_string_key();
	case 3:
		return random_date_key();
	case 4:
		return random_binary_key();
	default:
		array = json_array();
		n = rng_below(5);
		for (size_t i = 0; i < n; i++)
			json_array_append_new(array, random_key(depth + 1));
		return array;
	}
}

/* ---------------------------------------------------------------------------
 * Tests.
 * ------------------------------------------------------------------------ */

static void test_numbers(void **state)
{
	(void)state;
	check_number(42, "42");
	check_number(-1.5, "-1.5");
	check_number(0.0, "0");
	check_number(-0.0, "0");
	check_number(INFINITY, "Infinity");
	check_number(-INFINITY, "-Infinity");
	check_number(1e21, "1e+21");
	check_number(1e20, "100000000000000000000");
	check_number(123456789012345680000.0, "123456789012345680000");
	check_number(5e-324, "5e-324");
	check_number(-5e-324, "-5e-324");
	check_number(1.7976931348623157e308, "1.7976931348623157e+308");
	check_number(0.1, "0.1");
	check_number(0.1 + 0.2, "0.30000000000000004");
	check_number(1e-7, "1e-7");
	check_number(1.5e-7, "1.5e-7");
	check_number(0.000001, "0.000001");
	check_number(0.0000015, "0.0000015");
	check_number(1.5e300, "1.5e+300");
	check_number(9007199254740993.0, "9007199254740992");
	check_number(9223372036854775807.0, "9223372036854776000");
	check_number(-123.456, "-123.456");
	check_number(100, "100");
	/* Powers of two where the correctly rounded 16 digits do not read back
	 * but their upper neighbour does (V8 prints 16 digits). */
	check_number(ldexp(1, -1017), "7.120236347223045e-307");
	check_number(ldexp(1, -1007), "7.291122019556398e-304");
}

static void test_stem_examples(void **state)
{
	(void)state;
	/* src/DESIGN.md's table ("Key <-> file name"). */
	check_example("42", "42");
	check_example("-1.5", "-1.5");
	check_example("1e21", "1e+21");
	check_example("\"alice\"", "alice");
	check_example("\"a/b\"", "a%2Fb");
	check_example("\"42\"", "%342");
	check_example("{\"~d\":\"2026-01-02T03:04:05.000Z\"}", "~d2026-01-02T03:04:05.000Z");
	check_example("{\"~b\":\"AAEC\"}", "~bAAEC");
	check_example("[\"u1\",7]", "~a[\"u1\",7]");

	/* Numbers. */
	check_example("-0", "0");
	check_example("-0.0", "0");
	check_example("{\"~n\":\"Infinity\"}", "Infinity");
	check_example("{\"~n\":\"-Infinity\"}", "-Infinity");
	check_example("5e-324", "5e-324");
	check_example("1.7976931348623157e308", "1.7976931348623157e+308");
	check_example("0.1", "0.1");
	check_example("1e-7", "1e-7");
	check_example("1.5e-7", "1.5e-7");
	check_example("123456789012345680000", "123456789012345680000");
	check_example("9223372036854775807", "9223372036854776000");
	check_example("42.0", "42");

	/* Strings. */
	check_example("\"\"", "~s");
	check_example("\"~s\"", "%7Es");
	check_example("\"100%\"", "100%25");
	check_example("\"%\"", "%25");
	check_example("\"%41\"", "%2541");
	check_example("\"a/b/c\"", "a%2Fb%2Fc");
	check_example("\"/\"", "%2F");
	check_example("\"a\\u0000b\"", "a%00b");
	check_example("\"\\u0001x\\n\\u001f\"", "%01x%0A%1F");
	check_example("\"a\\u007fb\"", "a%7Fb");
	check_example("\"caf\xc3\xa9\"", "caf\xc3\xa9");
	check_example("\"\xc3\xa9t\xc3\xa9\"", "\xc3\xa9t\xc3\xa9");
	check_example("\"\xf0\x9f\x98\x80 smile\"", "\xf0\x9f\x98\x80 smile");
	check_example("\".hidden\"", "%2Ehidden");
	check_example("\".\"", "%2E");
	check_example("\"..\"", "%2E.");
	check_example("\"a.b\"", "a.b");
	check_example("\"~d2026-01-02T03:04:05.000Z\"", "%7Ed2026-01-02T03:04:05.000Z");
	check_example("\"a~b\"", "a~b");
	check_example("\"-1\"", "%2D1");
	check_example("\"-1.5\"", "%2D1.5");
	check_example("\"0\"", "%30");
	check_example("\"1e+21\"", "%31e+21");
	check_example("\"5e-324\"", "%35e-324");
	check_example("\"Infinity\"", "%49nfinity");
	check_example("\"-Infinity\"", "%2DInfinity");
	check_example("\"1e21\"", "1e21");
	check_example("\"1.50\"", "1.50");
	check_example("\"NaN\"", "NaN");
	check_example("\"-0\"", "-0");
	check_example("\"042\"", "042");
	check_example("\"42 \"", "42 ");
	check_example("\"infinity\"", "infinity");

	/* Dates, including the extended years. */
	check_example("{\"~d\":\"1970-01-01T00:00:00.000Z\"}", "~d1970-01-01T00:00:00.000Z");
	check_example("{\"~d\":\"2000-02-29T00:00:00.000Z\"}", "~d2000-02-29T00:00:00.000Z");
	check_example("{\"~d\":\"0000-01-01T00:00:00.000Z\"}", "~d0000-01-01T00:00:00.000Z");
	check_example("{\"~d\":\"9999-12-31T23:59:59.999Z\"}", "~d9999-12-31T23:59:59.999Z");
	check_example("{\"~d\":\"+010000-01-01T00:00:00.000Z\"}", "~d+010000-01-01T00:00:00.000Z");
	check_example("{\"~d\":\"-000001-12-31T23:59:59.999Z\"}", "~d-000001-12-31T23:59:59.999Z");
	check_example("{\"~d\":\"+275760-09-13T00:00:00.000Z\"}", "~d+275760-09-13T00:00:00.000Z");
	check_example("{\"~d\":\"-271821-04-20T00:00:00.000Z\"}", "~d-271821-04-20T00:00:00.000Z");

	/* Binary. */
	check_example("{\"~b\":\"\"}", "~b");
	check_example("{\"~b\":\"_-8\"}", "~b_-8");
	check_example("{\"~b\":\"AA\"}", "~bAA");

	/* Arrays. */
	check_example("[]", "~a[]");
	check_example("[[]]", "~a[[]]");
	check_example("[[], [[1]], \"x/y\", {\"~b\": \"\"}]",
	              "~a[[],[[1]],\"x%2Fy\",{\"~b\":\"\"}]");
	check_example("[\"%\"]", "~a[\"%25\"]");
	check_example("[\"\"]", "~a[\"\"]");
	check_example("[\"42\", 42, -0]", "~a[\"42\",42,0]");
	check_example("[\"a\\nb\\\"c\\\\\\u0001\\u007f\"]", "~a[\"a\\nb\\\"c\\\\\\u0001%7F\"]");
	check_example("[{\"~n\":\"-Infinity\"},1e21,1e-7]",
	              "~a[{\"~n\":\"-Infinity\"},1e+21,1e-7]");
	check_example("[{\"~d\":\"2026-01-02T03:04:05.000Z\"}]",
	              "~a[{\"~d\":\"2026-01-02T03:04:05.000Z\"}]");
	check_example("[\"caf\xc3\xa9\",[\"\\u0000\"]]", "~a[\"caf\xc3\xa9\",[\"\\u0000\"]]");
	/* Control characters as JSON.stringify writes them: lower-case hex. */
	check_example("[\"\\u001f\"]", "~a[\"\\u001f\"]");
}

static void test_decoded_forms(void **state)
{
	json_t *key = NULL;

	(void)state;
	/* Integers up to 2^53 come back as json_integer, others as real. */
	assert_int_equal(key_decode_stem("42", 2, &key), KEY_DECODED);
	assert_true(json_is_integer(key));
	assert_int_equal(json_integer_value(key), 42);
	json_decref(key);
	assert_int_equal(key_decode_stem("-1.5", 4, &key), KEY_DECODED);
	assert_true(json_is_real(key));
	assert_true(json_real_value(key) == -1.5);
	json_decref(key);
	assert_int_equal(key_decode_stem("Infinity", 8, &key), KEY_DECODED);
	assert_true(json_is_object(key));
	assert_string_equal(json_string_value(json_object_get(key, "~n")), "Infinity");
	json_decref(key);
	assert_int_equal(key_decode_stem("~s", 2, &key), KEY_DECODED);
	assert_true(json_is_string(key));
	assert_int_equal(json_string_length(key), 0);
	json_decref(key);
	assert_int_equal(key_decode_stem("a%00b", 5, &key), KEY_DECODED);
	assert_int_equal(json_string_length(key), 3);
	assert_memory_equal(json_string_value(key), "a\0b", 3);
	json_decref(key);
	/* A NULL key_out is allowed. */
	assert_int_equal(key_decode_stem("alice", 5, NULL), KEY_DECODED);

	key = parse("-0");
	assert_true(json_is_integer(key));
	assert_int_equal(json_integer_value(key), 0);
	json_decref(key);
	key = parse("[1.0, [2.5]]");
	assert_true(json_is_integer(json_array_get(key, 0)));
	assert_true(json_is_real(json_array_get(json_array_get(key, 1), 0)));
	json_decref(key);
}

static void test_hashed(void **state)
{
	char long_string[320], *stem, *unhashed = NULL, *stem250;
	json_t *key, *back = NULL;

	(void)state;
	/* 300 bytes: hashed, and the store is asked. */
	memset(long_string, 'a', 300);
	key = json_stringn(long_string, 300);
	stem = key_encode_stem(key, &unhashed);
	assert_non_null(stem);
	assert_string_equal(stem,
	                    "~h9835fa6bf4e20a9b9ea812506302e98982721a6cf8d2cae67af57129bf21ae90");
	assert_non_null(unhashed);
	assert_int_equal(strlen(unhashed), 300);
	assert_memory_equal(unhashed, long_string, 300);
	assert_int_equal(key_decode_stem(stem, strlen(stem), &back), KEY_HASHED);
	assert_null(back);
	check_rejected_stem(unhashed, 300);
	free(stem);
	free(unhashed);
	json_decref(key);

	/* The boundary: 250 + ".json" = 255 bytes fits, 251 does not. */
	memset(long_string, 'b', 251);
	key = json_stringn(long_string, 250);
	stem250 = key_encode_stem(key, &unhashed);
	assert_int_equal(strlen(stem250), 250);
	assert_string_equal(stem250, unhashed);
	assert_int_equal(key_decode_stem(stem250, 250, &back), KEY_DECODED);
	assert_int_equal(json_string_length(back), 250);
	json_decref(back);
	free(stem250);
	free(unhashed);
	json_decref(key);
	key = json_stringn(long_string, 251);
	stem = key_encode_stem(key, NULL);
	assert_string_equal(stem,
	                    "~h412d6dbd8f5b586f4d075e0e0537147502185fd63a1144f961955d4a7f86b1ed");
	check_rejected_stem(long_string, 251);
	free(stem);
	json_decref(key);

	/* An array whose text is long is hashed as well. */
	key = json_pack("[s%,i]", long_string, (size_t)250, 7);
	stem = key_encode_stem(key, &unhashed);
	assert_true(is_hashed(stem));
	assert_int_equal(strncmp(unhashed, "~a[\"bbb", 7), 0);
	free(stem);
	free(unhashed);
	json_decref(key);

	/* "~h" stems: exactly 64 lowercase hex digits. */
	assert_int_equal(key_decode_stem("~h0123456789abcdef0123456789abcdef0123456789abcdef"
	                                 "0123456789abcdef",
	                                 66, NULL),
	                 KEY_HASHED);
	check_rejected_stem("~h0123456789ABCDEF0123456789abcdef0123456789abcdef0123456789abcdef",
	                    66);
	check_rejected_stem("~h0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcde",
	                    65);
	check_rejected_stem("~h0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef0",
	                    67);
	check_rejected_stem("~h", 2);
}

static void test_rejected_stems(void **state)
{
	static const char *const stems[] = {
	        "%61",        /* "a" spelled with an escape */
	        "%2f",        /* lower-case hex */
	        "%2",         /* truncated escape */
	        "%zz",        /* not hex */
	        "%",          /* lone percent */
	        ".",          /* must be %2E */
	        "..",         /* must be %2E. */
	        ".hidden",    /* must be %2Ehidden */
	        "%342x",      /* "42x" does not read as a number: no escape */
	        "%2D0",       /* "-0" needs no escape */
	        "~",          /* bare tilde */
	        "~x",         /* unknown tag */
	        "~n",         /* ~n is not a stem tag */
	        "~nInfinity", /* ditto */
	        "~sx",        /* ~s is only the empty string */
	        "~bAAE=",     /* padding */
	        "~bA",        /* a lone sextet */
	        "~bAAF",      /* non-zero trailing bits */
	        "~bAB",       /* non-zero trailing bits */
	        "~bAA+/",     /* standard base64 */
	        "~d2026-13-01T00:00:00.000Z",
	        "~d2026-02-29T00:00:00.000Z",
	        "~d1900-02-29T00:00:00.000Z",
	        "~d2026-04-31T00:00:00.000Z",
	        "~d2026-01-01T24:00:00.000Z",
	        "~d2026-01-01T00:60:00.000Z",
	        "~d2026-01-01T00:00:60.000Z",
	        "~d2026-01-01T00:00:00Z",
	        "~d2026-01-01T00:00:00.000",
	        "~d2026-01-01 00:00:00.000Z",
	        "~d2026-1-01T00:00:00.000Z",
	        "~d+002026-01-01T00:00:00.000Z",
	        "~d-000000-01-01T00:00:00.000Z",
	        "~d+275760-09-13T00:00:00.001Z",
	        "~d-271821-04-19T23:59:59.999Z",
	        "~d2026-01-01T00:00:00.000z",
	        "~a",              /* no JSON text */
	        "~a[",             /* bad JSON text */
	        "~a1",             /* not an array */
	        "~a\"x\"",         /* not an array */
	        "~a{\"~b\":\"\"}", /* not an array */
	        "~a[\"u1\", 7]",   /* not compact */
	        "~a[1.0]",         /* not the canonical number */
	        "~a[1e21]",        /* ditto */
	        "~a[-0]",          /* ditto */
	        "~a[\"%2f\"]",     /* lower-case escape */
	        "~a[\"%\"]",       /* raw percent */
	        "~a[\"\\u00e9\"]", /* escaped non-ASCII */
	        "~a[\"\\u001F\"]", /* upper-case hex in JSON */
	        "~a[\"\\/\"]",     /* needless escape */
	        "~a[null]",
	        "~a[true]",
	        "~a[{}]",
	        "~a[{\"~d\":\"x\"}]",
	        "~a[{\"~b\":\"\",\"~b\":\"\"}]",
	        "~a[{\"~n\":\"NaN\"}]",
	        "~a[{\"~n\":\"Infinity\",\"type\":\"x\"}]",
	        "\xff",
	        "a\xc3",            /* truncated sequence */
	        "\xc0\xaf",         /* overlong '/' */
	        "\xed\xa0\x80",     /* encoded surrogate */
	        "\xf4\x90\x80\x80", /* above U+10FFFF */
	        "%FF",              /* invalid UTF-8 through an escape */
	        "%ED%A0%80",        /* an escaped surrogate */
	        "a/b",              /* raw slash */
	        "a\x01",            /* raw control byte */
	        "a\x7f",            /* raw DEL */
	};
	/* Stems that look odd but are the canonical names of strings. */
	static const char *const accepted[] = {"-0", "1.50e0", "%7E", "%2E.", "a~b%25", "NaN"};

	(void)state;
	for (size_t i = 0; i < sizeof(stems) / sizeof(stems[0]); i++)
		check_rejected_stem(stems[i], strlen(stems[i]));
	for (size_t i = 0; i < sizeof(accepted) / sizeof(accepted[0]); i++)
		assert_int_equal(key_decode_stem(accepted[i], strlen(accepted[i]), NULL),
		                 KEY_DECODED);
	check_rejected_stem("", 0);
	check_rejected_stem("a\0b", 3);
	check_rejected_stem(NULL, 0);
}

static void test_check_and_parse(void **state)
{
	static const char *const bad_texts[] = {
	        "null",
	        "true",
	        "false",
	        "{}",
	        "{\"~d\":\"x\"}",
	        "{\"~d\":\"2026-01-02T03:04:05.000Z\",\"type\":\"Date\"}",
	        "{\"~d\":\"2026-01-02T03:04:05.000Z\",\"~d\":\"2026-01-02T03:04:05.000Z\"}",
	        "{\"~x\":\"a\"}",
	        "{\"~n\":\"NaN\"}",
	        "{\"~n\":\"42\"}",
	        "{\"~n\":\"infinity\"}",
	        "{\"~b\":1}",
	        "{\"~b\":\"AAE=\"}",
	        "{\"~d\":\"+002026-01-02T03:04:05.000Z\"}",
	        "[null]",
	        "[1,[2,[true]]]",
	        "NaN",
	        "Infinity",
	        "1e400",
	        "\"\\ud800\"",
	        "[1,]",
	        "",
	};
	char why[160], *text;
	json_t *key;

	(void)state;
	for (size_t i = 0; i < sizeof(bad_texts) / sizeof(bad_texts[0]); i++) {
		why[0] = '\0';
		key = key_from_json_text(bad_texts[i], strlen(bad_texts[i]), why, sizeof(why));
		if (key)
			fail_msg("accepted %s", bad_texts[i]);
		assert_true(strlen(why) > 0);
	}

	/* key_check on values built in C. */
	key = json_stringn_nocheck("\xed\xa0\x80", 3);
	assert_int_equal(key_check(key, why, sizeof(why)), -EINVAL);
	assert_null(key_encode_stem(key, NULL));
	assert_null(key_canonical_json(key));
	json_decref(key);
	key = json_null();
	assert_int_equal(key_check(key, NULL, 0), -EINVAL);
	assert_int_equal(key_check(NULL, why, sizeof(why)), -EINVAL);
	key = json_pack("{s:s,s:s}", "~b", "", "type", "ArrayBuffer");
	assert_int_equal(key_check(key, why, sizeof(why)), -EINVAL);
	json_decref(key);
	key = json_integer(INT64_MIN);
	assert_int_equal(key_check(key, why, sizeof(why)), 0);
	json_decref(key);

	/* Whitespace and escapes in the text are fine; the key is what counts. */
	key = parse(" [ \"\\u0061\" , 1E2 ] ");
	text = canonical(key);
	assert_string_equal(text, "[\"a\",100]");
	free(text);
	json_decref(key);
}

static void test_names(void **state)
{
	static const struct {
		const char *raw;
		size_t len;
		const char *escaped;
	} names[] = {
	        {"alice", 5, "alice"},
	        {"", 0, "~s"},
	        {"~s", 2, "%7Es"},
	        {"42", 2, "%342"},
	        {"-1", 2, "%2D1"},
	        {"Infinity", 8, "%49nfinity"},
	        {"a/b", 3, "a%2Fb"},
	        {"100%", 4, "100%25"},
	        {".git", 4, "%2Egit"},
	        {"~tmp", 4, "%7Etmp"},
	        {"a\0b", 3, "a%00b"},
	        {"tab\there", 8, "tab%09here"},
	        {"caf\xc3\xa9", 5, "caf\xc3\xa9"},
	        {"1.50", 4, "1.50"},
	};
	static const char *const bad_names[] = {"42", "%61", "%2f", ".", "..",   "~",
	                                        "~x", "",    "a/b", "%", "\xff", "%C3"};
	size_t len;
	char *s;

	(void)state;
	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
		s = name_escape(names[i].raw, names[i].len);
		assert_non_null(s);
		assert_string_equal(s, names[i].escaped);
		free(s);
		s = name_unescape(names[i].escaped, &len);
		assert_non_null(s);
		assert_int_equal(len, names[i].len);
		assert_memory_equal(s, names[i].raw, len);
		assert_int_equal(s[len], '\0');
		free(s);
	}
	for (size_t i = 0; i < sizeof(bad_names) / sizeof(bad_names[0]); i++) {
		s = name_unescape(bad_names[i], &len);
		if (s)
			fail_msg("name_unescape accepted \"%s\"", bad_names[i]);
	}
	assert_null(name_escape("\xff", 1));
	assert_null(name_escape("\xed\xa0\x80", 3));
	assert_null(name_unescape(NULL, &len));
}

/* decode(encode(k)) is k, and the canonical JSON reads back as k. */
static void test_random_round_trip(void **state)
{
	size_t hashed = 0;

	(void)state;
	rng_state = 20260102;
	for (int i = 0; i < RANDOM_KEYS; i++) {
		json_t *key = random_key(0), *back = NULL, *parsed;
		char *stem, *unhashed = NULL, *text, *back_text, why[160] = "";
		int rc;

		assert_int_equal(key_check(key, why, sizeof(why)), 0);
		text = canonical(key);
		stem = key_encode_stem(key, &unhashed);
		assert_non_null(stem);
		assert_non_null(unhashed);
		assert_null(memchr(unhashed, '/', strlen(unhashed)));
		rc = key_decode_stem(stem, strlen(stem), &back);
		if (strlen(unhashed) + KEY_SUFFIX_LEN > KEY_NAME_MAX) {
			hashed++;
			if (!is_hashed(stem))
				fail_msg("%s: long stem not hashed: %s", text, stem);
			assert_int_equal(rc, KEY_HASHED);
			check_rejected_stem(unhashed, strlen(unhashed));
		} else {
			assert_string_equal(stem, unhashed);
			if (rc != KEY_DECODED)
				fail_msg("%s: stem %s did not decode (%d)", text, stem, rc);
			back_text = canonical(back);
			if (strcmp(text, back_text) != 0)
				fail_msg("%s: stem %s decoded to %s", text, stem, back_text);
			free(back_text);
		}
		parsed = key_from_json_text(text, strlen(text), why, sizeof(why));
		if (!parsed)
			fail_msg("%s: canonical JSON not read back: %s", text, why);
		back_text = canonical(parsed);
		assert_string_equal(text, back_text);
		free(back_text);
		json_decref(parsed);
		json_decref(back);
		free(text);
		free(stem);
		free(unhashed);
		json_decref(key);
	}
	/* The generator must reach the hashed form often enough to matter. */
	print_message("%d random keys round-tripped, %zu of them hashed\n", RANDOM_KEYS, hashed);
	assert_true(hashed > RANDOM_KEYS / 100);
}

struct key_texts {
	char *canonical;
	char *stem; /* unhashed */
};

static int compare_by_stem(const void *a, const void *b)
{
	return strcmp(((const struct key_texts *)a)->stem, ((const struct key_texts *)b)->stem);
}

static int compare_by_canonical(const void *a, const void *b)
{
	return strcmp(((const struct key_texts *)a)->canonical,
	              ((const struct key_texts *)b)->canonical);
}

/* No two distinct keys share a stem, and equal keys share one. */
static void test_uniqueness(void **state)
{
	static const char *const adversarial[] = {
	        "42",
	        "\"42\"",
	        "[42]",
	        "[\"42\"]",
	        "\"~a[42]\"",
	        "\"~d2026-01-02T03:04:05.000Z\"",
	        "{\"~d\":\"2026-01-02T03:04:05.000Z\"}",
	        "\"%7Ed2026-01-02T03:04:05.000Z\"",
	        "\"\"",
	        "\"~s\"",
	        "\"%7Es\"",
	        "{\"~n\":\"Infinity\"}",
	        "\"Infinity\"",
	        "\"%49nfinity\"",
	        "{\"~n\":\"-Infinity\"}",
	        "\"-Infinity\"",
	        "[]",
	        "\"~a[]\"",
	        "{\"~b\":\"AAEC\"}",
	        "\"~bAAEC\"",
	        "{\"~b\":\"\"}",
	        "\"~b\"",
	        "1e21",
	        "\"1e+21\"",
	        "\"1e21\"",
	        "\"%\"",
	        "\"%25\"",
	        "\"a/b\"",
	        "\"a%2Fb\"",
	        "0",
	        "-0",
	        "\"0\"",
	        "\"-0\"",
	        "[\"\"]",
	        "[\"~s\"]",
	        "[[]]",
	        "[\"[]\"]",
	        "\".\"",
	        "\"%2E\"",
	        "1.5",
	        "\"1.5\"",
	        "[\"a\",\"b\"]",
	        "[\"a,b\"]",
	        "\"[\\\"a\\\",\\\"b\\\"]\"",
	        "\"\\u0000\"",
	        "\"%00\"",
	        "\"~h0000000000000000000000000000000000000000000000000000000000000000\"",
	};
	size_t n_adv = sizeof(adversarial) / sizeof(adversarial[0]);
	size_t n = RANDOM_KEYS + n_adv, distinct = 1;
	struct key_texts *all = calloc(n, sizeof(*all));

	(void)state;
	assert_non_null(all);
	rng_state = 424242;
	for (size_t i = 0; i < n; i++) {
		json_t *key = i < n_adv ? parse(adversarial[i]) : random_key(0);
		char *stem;

		all[i].canonical = canonical(key);
		stem = key_encode_stem(key, &all[i].stem);
		assert_non_null(stem);
		free(stem);
		json_decref(key);
	}
	qsort(all, n, sizeof(*all), compare_by_stem);
	for (size_t i = 1; i < n; i++) {
		if (strcmp(all[i - 1].stem, all[i].stem) == 0 &&
		    strcmp(all[i - 1].canonical, all[i].canonical) != 0)
			fail_msg("keys %s and %s share the stem %s", all[i - 1].canonical,
			         all[i].canonical, all[i].stem);
	}
	qsort(all, n, sizeof(*all), compare_by_canonical);
	for (size_t i = 1; i < n; i++) {
		if (strcmp(all[i - 1].canonical, all[i].canonical) != 0) {
			distinct++;
			continue;
		}
		if (strcmp(all[i - 1].stem, all[i].stem) != 0)
			fail_msg("key %s has two stems: %s and %s", all[i].canonical,
			         all[i - 1].stem, all[i].stem);
	}
	/* Equal keys must have occurred, or the second check proved nothing. */
	print_message("%zu keys, %zu distinct, no shared stems\n", n, distinct);
	assert_true(distinct < n);
	for (size_t i = 0; i < n; i++) {
		free(all[i].canonical);
		free(all[i].stem);
	}
	free(all);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	        cmocka_unit_test(test_numbers),        cmocka_unit_test(test_stem_examples),
	        cmocka_unit_test(test_decoded_forms),  cmocka_unit_test(test_hashed),
	        cmocka_unit_test(test_rejected_stems), cmocka_unit_test(test_check_and_parse),
	        cmocka_unit_test(test_names),          cmocka_unit_test(test_random_round_trip),
	        cmocka_unit_test(test_uniqueness),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
