/* test_json_text.c - json_text_pretty_text (src/codec/json_text.c) against
 * jansson: for every text it lays out, jansson must parse the same text
 * and json_text_pretty must write the same bytes for that value; every text
 * jansson refuses, it must decline. Checked on hand-picked edges (escapes,
 * surrogates, numbers at the limits, bad UTF-8, member names given twice)
 * and on 20,000 random texts with random spacing and escapes, each also
 * with random bytes damaged. json_text_parse reads what jansson reads, and
 * a text with an integer past 64 bits, which jansson refuses, as
 * JavaScript reads it. It must also lay out every ordinary text
 * itself (a fast path that declined everything would pass the rest).
 * json_text_members_splitting gives what json_text_members and
 * json_text_elements give, on the same random texts wrapped in a push
 * body and on hand-picked bodies. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "../common/json_same.h"
#include "idbmount/codec/json_text.h"

#include <errno.h>

/* Checks the contract on one text; returns whether it was laid out. */
static bool agrees_with_jansson(const char *text, size_t len)
{
	struct buf fast = BUF_INIT(SIZE_MAX / 2), slow = BUF_INIT(SIZE_MAX / 2);
	assert_int_equal(buf_append(&fast, "x", 1), 0); /* appends after what is there */
	int rc = json_text_pretty_text(&fast, text, len, NULL);
	json_error_t error;
	json_t *v = json_loadb(text, len, JSON_DECODE_ANY | JSON_ALLOW_NUL, &error);
	/* json_text_parse reads plain tokens itself: the same value, or the
	 * same refusal; an integer past 64 bits as JavaScript reads it. */
	json_t *parsed = json_text_parse(text, len, NULL, 0);
	if (!v && json_error_code(&error) == json_error_numeric_overflow) {
		json_t *js = json_loadb(text, len,
		                        JSON_DECODE_ANY | JSON_ALLOW_NUL | JSON_DECODE_INT_AS_REAL,
		                        NULL);
		if (!js != !parsed || (js && !json_same_to_javascript(js, parsed)))
			fail_msg("json_text_parse does not read as JavaScript: %.*s", (int)len,
			         text);
		json_decref(js);
	} else if (!v != !parsed ||
	           (v && (json_typeof(v) != json_typeof(parsed) || !json_equal(v, parsed)))) {
		fail_msg("json_text_parse and jansson differ on: %.*s", (int)len, text);
	}
	json_decref(parsed);
	int slow_rc = v ? json_text_pretty(&slow, v) : -EINVAL;
	if (rc == 0) {
		if (slow_rc != 0 || fast.len - 1 != slow.len ||
		    memcmp(fast.data + 1, slow.data, slow.len) != 0)
			fail_msg("laid out differently from jansson: %.*s\nfast: %s\njansson: %s",
			         (int)len, text, fast.data + 1,
			         slow.data ? slow.data : "(refused)");
	} else {
		assert_int_equal(rc, JSON_TEXT_DECLINED);
		assert_int_equal(fast.len, 1);
	}
	json_decref(v);
	buf_free(&fast);
	buf_free(&slow);
	return rc == 0;
}

static bool agrees(const char *text)
{
	return agrees_with_jansson(text, strlen(text));
}

static void test_ordinary_texts_are_laid_out(void **state)
{
	(void)state;
	static const char *texts[] = {
	        "{}",
	        "[]",
	        " [ ] ",
	        "{ }",
	        "0",
	        "-0",
	        "1",
	        "-12",
	        "123456789012345678",
	        "-123456789012345678",
	        "1.5",
	        "1.50",
	        "0.1",
	        "-0.0",
	        "1e21",
	        "1E+2",
	        "2e-7",
	        "5e-324",
	        "1.7976931348623157e308",
	        "1e-400",
	        "true",
	        "false",
	        "null",
	        "\"\"",
	        "\"a/b\\/c\"",
	        "\"\\u00e9\\u20ac\\ud83d\\ude00\"",
	        "\"\\u0000\\u001f\\b\\f\\n\\r\\t\"",
	        "\"\\\"\\\\\"",
	        "\"caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80 \x7f\"",
	        "{\"a\":1,\"b\":[1,2,{\"c\":null}],\"d\":{}}",
	        "\t{\r\n \"x\" :\t[ true , false ]\n}\n",
	        "[[[[[]]]]]",
	        "{\"\\u0041\":1,\"B\":2}",
	        "{\"id\":1,\"name\":\"record 1\",\"pad\":\"xxxxxxxx\"}",
	};
	for (size_t i = 0; i < sizeof(texts) / sizeof(texts[0]); i++)
		if (!agrees(texts[i]))
			fail_msg("declined an ordinary text: %s", texts[i]);
}

static void test_refused_or_unsure_texts_are_declined(void **state)
{
	(void)state;
	static const char *texts[] = {
	        "",
	        " ",
	        "{",
	        "[1,]",
	        "{\"a\":1,}",
	        "{\"a\" 1}",
	        "{a:1}",
	        "[1 2]",
	        "01",
	        "-",
	        "1.",
	        ".5",
	        "1e",
	        "1e+",
	        "+1",
	        "0x10",
	        "1e400",
	        "-1e400",
	        "tru",
	        "truex",
	        "nul",
	        "[true1]",
	        "\"abc",
	        "\"\\x\"",
	        "\"\\u12\"",
	        "\"\\ud800\"",
	        "\"\\udc00\"",
	        "\"\\ud800\\u0041\"",
	        "\"a\tb\"",
	        "\"\xc3\"",
	        "\"\xc0\xaf\"",
	        "\"\xed\xa0\x80\"",
	        "\"\xf4\x90\x80\x80\"",
	        "\"\xff\"",
	        "{\"a\\u0000\":1}",
	        "1 2",
	        "[] x",
	        /* valid, but left to jansson: */
	        "{\"a\":1,\"a\":2}",
	        "{\"a\":1,\"\\u0061\":2}",
	        "1234567890123456789",
	        "-9223372036854775808",
	        "99999999999999999999",
	};
	for (size_t i = 0; i < sizeof(texts) / sizeof(texts[0]); i++)
		if (agrees(texts[i]))
			fail_msg("laid out a text it should leave to jansson: %s", texts[i]);
	/* Plain tokens json_text_parse reads itself, and near misses. */
	static const char *tokens[] = {"\"\"",
	                               "\"abc\"",
	                               "\"caf\xc3\xa9\"",
	                               "\"\xc3\"",
	                               "\"a\tb\"",
	                               "\"a\\nb\"",
	                               "\"a\"b\"",
	                               "null",
	                               "nul",
	                               "true",
	                               "false",
	                               "0",
	                               "-0",
	                               "-",
	                               "01",
	                               "-01",
	                               "42",
	                               "-123456789012345678",
	                               "1234567890123456789",
	                               "12a",
	                               "1.5",
	                               " 1",
	                               "\"\x7f\""};
	for (size_t i = 0; i < sizeof(tokens) / sizeof(tokens[0]); i++)
		agrees(tokens[i]);
	/* A NUL byte outside a string. */
	assert_false(agrees_with_jansson("[1,\0 2]", 7));
}

static void test_limits_decline(void **state)
{
	(void)state;
	char deep[1000];
	memset(deep, '[', 400);
	memset(deep + 400, ']', 400);
	deep[800] = '\0';
	assert_false(agrees(deep));
	memset(deep, '[', 150);
	memset(deep + 150, ']', 150);
	deep[300] = '\0';
	assert_true(agrees(deep));
	struct buf big = BUF_INIT(SIZE_MAX / 2);
	assert_int_equal(buf_append_char(&big, '{'), 0);
	for (int i = 0; i < 65; i++)
		assert_int_equal(buf_printf(&big, "%s\"m%d\":%d", i ? "," : "", i, i), 0);
	assert_int_equal(buf_append_char(&big, '}'), 0);
	assert_false(agrees(big.data));
	buf_free(&big);
}

static void test_find_key_path(void **state)
{
	(void)state;
	const char *text =
	        "{\"id\": 7, \"a\": {\"b\": [1, \"x\"], \"id\": \"inner\"}, \"z\": true}";
	struct buf out = BUF_INIT(1 << 20);
	struct json_text_find find = {.path = "a.b"};
	assert_int_equal(json_text_pretty_text(&out, text, strlen(text), &find), 0);
	assert_true(find.found);
	char *span = strndup(out.data + find.start, find.end - find.start);
	assert_string_equal(span, "[\n      1,\n      \"x\"\n    ]");
	free(span);
	buf_reset(&out);
	find = (struct json_text_find){.path = "id"};
	assert_int_equal(json_text_pretty_text(&out, text, strlen(text), &find), 0);
	assert_true(find.found);
	assert_int_equal(find.end - find.start, 1);
	assert_memory_equal(out.data + find.start, "7", 1);
	buf_reset(&out);
	find = (struct json_text_find){.path = "a.missing"};
	assert_int_equal(json_text_pretty_text(&out, text, strlen(text), &find), 0);
	assert_false(find.found);
	buf_reset(&out);
	find = (struct json_text_find){.path = ""};
	assert_int_equal(json_text_pretty_text(&out, "\"k\"", 3, &find), 0);
	assert_true(find.found);
	assert_int_equal(find.start, 0);
	assert_int_equal(find.end, 3);
	/* The path's names are compared as decoded strings. */
	buf_reset(&out);
	find = (struct json_text_find){.path = "\xc3\xa9"};
	assert_int_equal(json_text_pretty_text(&out, "{\"\\u00e9\": 5}", 13, &find), 0);
	assert_true(find.found);
	buf_free(&out);
}

/* ---- random texts -------------------------------------------------------- */

static unsigned rnd(unsigned n)
{
	return (unsigned)random() % n;
}

static void gen_ws(struct buf *b)
{
	static const char ws[] = " \t\n\r";
	while (rnd(4) == 0)
		buf_append_char(b, ws[rnd(4)]);
}

static void gen_string(struct buf *b, unsigned name_index)
{
	static const char *pieces[] = {"a",
	                               "Z",
	                               "0",
	                               " ",
	                               "/",
	                               "\\/",
	                               "\\\"",
	                               "\\\\",
	                               "\\n",
	                               "\\t",
	                               "\\u0041",
	                               "\\u00e9",
	                               "\\u20AC",
	                               "\\ud83d\\ude00",
	                               "\xc3\xa9",
	                               "\xe2\x82\xac",
	                               "\xf0\x9f\x98\x80",
	                               "\\u0001",
	                               "\\b",
	                               "\x7f"};
	buf_append_char(b, '"');
	if (name_index != UINT32_MAX) {
		/* Member names stay distinct: a number of their own first. */
		buf_printf(b, "k%u", name_index);
	}
	for (unsigned n = rnd(8); n; n--)
		buf_append_str(b, pieces[rnd(sizeof(pieces) / sizeof(pieces[0]))]);
	buf_append_char(b, '"');
}

static void gen_number(struct buf *b)
{
	static const char *forms[] = {
	        "0",    "-0",     "7",       "-42",         "123456789012345678",
	        "0.5",  "-2.25",  "1e3",     "1E-3",        "6.02e+23",
	        "1.10", "0.1",    "1e21",    "123.456e-10", "9007199254740993.0",
	        "-0.0", "5e-324", "4.9e-324"};
	if (rnd(3) == 0) {
		/* A decimal: the short ones take json_text's own path. */
		if (rnd(2))
			buf_append_char(b, '-');
		if (rnd(2))
			buf_append_char(b, '0');
		else
			for (unsigned n = 1 + rnd(17), k = 0; k < n; k++)
				buf_append_char(b, (char)('0' + (k ? rnd(10) : 1 + rnd(9))));
		buf_append_char(b, '.');
		for (unsigned n = rnd(9); n; n--)
			buf_append_char(b, '0');
		for (unsigned n = rnd(18); n; n--)
			buf_append_char(b, (char)('0' + rnd(10)));
		for (unsigned n = rnd(4); n; n--)
			buf_append_char(b, '0');
		if (b->data[b->len - 1] == '.')
			buf_append_char(b, '5');
	} else if (rnd(3) == 0)
		buf_printf(b, "%d", (int)rnd(2000000) - 1000000);
	else if (rnd(3) == 0)
		buf_printf(b, "%.*g", 1 + (int)rnd(17), (double)random() / (1 + random()));
	else
		buf_append_str(b, forms[rnd(sizeof(forms) / sizeof(forms[0]))]);
}

static void gen_value(struct buf *b, int depth)
{
	unsigned kind = depth > 5 ? rnd(5) : rnd(7);
	switch (kind) {
	case 0:
		gen_number(b);
		break;
	case 1:
		gen_string(b, UINT32_MAX);
		break;
	case 2:
		buf_append_str(b, rnd(2) ? "true" : "false");
		break;
	case 3:
		buf_append_str(b, "null");
		break;
	case 4:
		gen_number(b);
		break;
	case 5: {
		buf_append_char(b, '[');
		gen_ws(b);
		for (unsigned i = 0, n = rnd(5); i < n; i++) {
			if (i) {
				buf_append_char(b, ',');
				gen_ws(b);
			}
			gen_value(b, depth + 1);
			gen_ws(b);
		}
		buf_append_char(b, ']');
		break;
	}
	default: {
		buf_append_char(b, '{');
		gen_ws(b);
		for (unsigned i = 0, n = rnd(6); i < n; i++) {
			if (i) {
				buf_append_char(b, ',');
				gen_ws(b);
			}
			gen_string(b, i);
			gen_ws(b);
			buf_append_char(b, ':');
			gen_ws(b);
			gen_value(b, depth + 1);
			gen_ws(b);
		}
		buf_append_char(b, '}');
	}
	}
}

/* json_text_members_splitting against the two calls it stands for. */
static void splitting_agrees(const char *t, size_t len)
{
	struct json_member *m1 = NULL, *m2 = NULL;
	struct json_span *e1 = NULL, *e2 = NULL;
	size_t n1 = 0, n2 = 0, ne1 = 0, ne2 = 0, at = 0;
	int rc1 = json_text_members(t, len, &m1, &n1);
	int rc2 = json_text_members_splitting(t, len, "mutations", &m2, &n2, &at, &e2, &ne2);
	if (rc1 != rc2 || n1 != n2)
		fail_msg("members differ (%d/%d, %zu/%zu) on: %.*s", rc1, rc2, n1, n2, (int)len, t);
	for (size_t i = 0; i < n1; i++) {
		assert_ptr_equal(m1[i].name.text, m2[i].name.text);
		assert_int_equal(m1[i].name.len, m2[i].name.len);
		assert_ptr_equal(m1[i].value.text, m2[i].value.text);
		assert_int_equal(m1[i].value.len, m2[i].value.len);
	}
	/* The elements are those of the first member written "mutations"
	 * whose value is an array that splits. */
	size_t want = SIZE_MAX;
	for (size_t i = 0; i < n1 && want == SIZE_MAX; i++) {
		if (m1[i].name.len == 11 && memcmp(m1[i].name.text, "\"mutations\"", 11) == 0 &&
		    m1[i].value.text[0] == '[' && json_text_elements(m1[i].value, &e1, &ne1) == 0)
			want = i;
	}
	if (want == SIZE_MAX) {
		if (e2)
			fail_msg("elements split where none should be: %.*s", (int)len, t);
	} else {
		if (!e2 || at != want || ne1 != ne2)
			fail_msg("elements differ on: %.*s", (int)len, t);
		for (size_t i = 0; i < ne1; i++) {
			assert_ptr_equal(e1[i].text, e2[i].text);
			assert_int_equal(e1[i].len, e2[i].len);
		}
	}
	free(m1);
	free(m2);
	free(e1);
	free(e2);
}

static void splitting_agrees_str(const char *t)
{
	splitting_agrees(t, strlen(t));
}

static void test_members_splitting_an_array_member(void **state)
{
	(void)state;
	splitting_agrees_str("{\"mutations\":[{\"id\":\"a\"},{\"id\":\"b\",\"v\":[1,[2]]}]}");
	splitting_agrees_str(" { \"x\" : 1 , \"mutations\" : [ ] , \"y\":\"]\" } ");
	splitting_agrees_str("{\"mutations\":{\"not\":\"an array\"}}");
	splitting_agrees_str("{\"mutations\":[1,2],\"mutations\":[3]}");
	splitting_agrees_str("{\"mut\\u0061tions\":[1,2]}"); /* escaped: not split */
	splitting_agrees_str("{\"mutations\":[1,,2],\"mutations\":[3]}");
	splitting_agrees_str("{\"mutations\":[1,2}");
	splitting_agrees_str("{\"mutations\":[\"a\\\"]\",{\"b\":\"]\"}]}");
	splitting_agrees_str("{\"mutations\":[1 2]}");
	splitting_agrees_str("{\"mutations\":[1],}");
	splitting_agrees_str("[\"mutations\",[1]]");
	splitting_agrees_str("{}");
	splitting_agrees_str("");
	srandom(20261206);
	static const char junk[] = "{}[],:\"\\ 0-.eEtfnu";
	unsigned split = 0;
	for (int n = 0; n < 5000; n++) {
		struct buf b = BUF_INIT(1 << 20);
		buf_append_str(&b, "{\"mutations\":[");
		for (int k = rnd(4); k > 0; k--) {
			gen_value(&b, 0);
			if (k > 1)
				buf_append_char(&b, ',');
		}
		buf_append_str(&b, "],\"other\":");
		gen_value(&b, 0);
		buf_append_char(&b, '}');
		struct json_member *m = NULL;
		struct json_span *e = NULL;
		size_t nm = 0, ne = 0, at = 0;
		if (json_text_members_splitting(b.data, b.len, "mutations", &m, &nm, &at, &e,
		                                &ne) == 0 &&
		    e)
			split++;
		free(m);
		free(e);
		splitting_agrees(b.data, b.len);
		for (int k = 0; k < 3; k++) { /* one byte changed, at random */
			struct buf d = BUF_INIT(1 << 20);
			buf_append(&d, b.data, b.len);
			d.data[rnd((unsigned)d.len)] = junk[rnd(sizeof(junk) - 1)];
			splitting_agrees(d.data, d.len);
			buf_free(&d);
		}
		buf_free(&b);
	}
	/* The bodies as generated are all split. */
	assert_int_equal(split, 5000);
}

static void test_random_texts_and_their_damage(void **state)
{
	(void)state;
	srandom(20261123);
	unsigned laid_out = 0, damaged_laid_out = 0, damaged = 0;
	static const char junk[] = "{}[],:\"\\ 0-.eEtfnu\x01\xc3\xff";
	for (int n = 0; n < 20000; n++) {
		struct buf b = BUF_INIT(1 << 20);
		gen_ws(&b);
		gen_value(&b, 0);
		gen_ws(&b);
		if (!agrees_with_jansson(b.data, b.len))
			fail_msg("declined an ordinary random text: %s", b.data);
		laid_out++;
		/* The same text with one byte changed, dropped or added. */
		for (int k = 0; k < 3 && b.len; k++) {
			struct buf d = BUF_INIT(1 << 20);
			buf_append(&d, b.data, b.len);
			size_t at = rnd((unsigned)d.len);
			char c = junk[rnd(sizeof(junk) - 1)];
			if (k == 0) {
				d.data[at] = c;
			} else if (k == 1) {
				memmove(d.data + at, d.data + at + 1, d.len - at - 1);
				buf_set_len(&d, d.len - 1);
			} else {
				buf_append_char(&d, 0);
				memmove(d.data + at + 1, d.data + at, d.len - at - 1);
				d.data[at] = c;
			}
			damaged++;
			damaged_laid_out += agrees_with_jansson(d.data, d.len);
			buf_free(&d);
		}
		buf_free(&b);
	}
	print_message("laid out %u random texts; of %u damaged ones, laid out %u (still valid), "
	              "declined the rest\n",
	              laid_out, damaged, damaged_laid_out);
	/* Most damage breaks the text: the declining path ran many times. */
	assert_true(damaged_laid_out < damaged / 2);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	        cmocka_unit_test(test_ordinary_texts_are_laid_out),
	        cmocka_unit_test(test_refused_or_unsure_texts_are_declined),
	        cmocka_unit_test(test_limits_decline),
	        cmocka_unit_test(test_find_key_path),
	        cmocka_unit_test(test_random_texts_and_their_damage),
	        cmocka_unit_test(test_members_splitting_an_array_member),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
