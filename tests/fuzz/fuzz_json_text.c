/* fuzz_json_text.c - src/codec/json_text.c against jansson, on any text.
 *
 * Properties (jansson's reading, JSON_DECODE_ANY | JSON_ALLOW_NUL, is the
 * reference, as in tests/unit/test_json_text.c):
 *   - json_text_parse accepts exactly what jansson accepts, as the same
 *     value, and a text jansson refuses for an integer past 64 bits as
 *     JavaScript reads it (numbers as doubles);
 *   - json_text_pretty_text either declines (appending nothing) or appends
 *     byte for byte what json_text_pretty writes for jansson's value, and
 *     it never lays out a text jansson refuses;
 *   - the member it finds on a key path (one of a few paths, picked by the
 *     input's length) is jansson's member at that path, laid out; it finds
 *     none when jansson's value has none there;
 *   - json_text_unindent of that layout is json_text_compact of the value,
 *     and the compact and pretty texts read back as the same value to
 *     JavaScript (numbers are doubles: 2.0 is written 2, as JSON.stringify
 *     writes it);
 *   - json_text_members / json_text_elements split every object / array
 *     json_text_parse reads into pieces that parse to its members (the
 *     last of a name given twice counting); a text whose pieces all
 *     parse, with names free of U+0000, is one json_text_parse reads;
 *   - json_text_plain_string says "plain" only of a literal whose bytes are
 *     the string jansson reads;
 *   - json_text_string_lossy writes any bytes as a literal jansson reads,
 *     and UTF-8 as json_text_string does.
 */
#include "../common/json_same.h"
#include "fuzz.h"

#include "idbmount/codec/json_text.h"

#include <errno.h>
#include <stdbool.h>
#include <string.h>

static const char *const paths[] = {"", "id", "a", "a.b", "k0.k1", "\xc3\xa9"};

/* A text the writers made, read as JavaScript reads it. */
static json_t *javascript(const char *text, size_t len)
{
	return json_loadb(text, len, JSON_DECODE_ANY | JSON_ALLOW_NUL | JSON_DECODE_INT_AS_REAL,
	                  NULL);
}

/* jansson's member of `v` at string key path `path`, or NULL. */
static json_t *member_at(json_t *v, const char *path)
{
	if (!*path)
		return v;
	char *copy = strdup(path);
	if (!copy)
		abort();
	char *save = NULL;
	for (char *seg = strtok_r(copy, ".", &save); v && seg; seg = strtok_r(NULL, ".", &save))
		v = json_is_object(v) ? json_object_get(v, seg) : NULL;
	free(copy);
	return v;
}

static void check_parse_and_layout(const char *text, size_t len, json_t *v, bool overflow)
{
	json_t *parsed = json_text_parse(text, len, NULL, 0);
	if (overflow) {
		/* An integer past 64 bits: read as JavaScript reads it. */
		json_t *js = javascript(text, len);
		FUZZ_CHECK(!js == !parsed, "json_text_parse %s what JavaScript %s",
		           parsed ? "accepts" : "refuses", js ? "accepts" : "refuses");
		FUZZ_CHECK(!js || json_same_to_javascript(js, parsed),
		           "json_text_parse reads another value than JavaScript");
		json_decref(js);
	} else {
		FUZZ_CHECK(!v == !parsed, "json_text_parse %s what jansson %s",
		           parsed ? "accepts" : "refuses", v ? "accepts" : "refuses");
		FUZZ_CHECK(!v || (json_typeof(v) == json_typeof(parsed) && json_equal(v, parsed)),
		           "json_text_parse reads another value than jansson");
	}
	json_decref(parsed);

	struct buf fast = BUF_INIT(SIZE_MAX / 2), slow = BUF_INIT(SIZE_MAX / 2);
	FUZZ_CHECK(buf_append(&fast, "x", 1) == 0, "out of memory");
	struct json_text_find find = {.path = paths[len % (sizeof(paths) / sizeof(*paths))]};
	int rc = json_text_pretty_text(&fast, text, len, &find);
	if (rc != 0) {
		FUZZ_CHECK(rc == JSON_TEXT_DECLINED && fast.len == 1,
		           "declined with %d, %zu bytes appended", rc, fast.len - 1);
		buf_free(&fast);
		return;
	}
	FUZZ_CHECK(v, "laid out a text jansson refuses:\n%s", fast.data + 1);
	FUZZ_CHECK(json_text_pretty(&slow, v) == 0, "json_text_pretty fails on jansson's value");
	FUZZ_CHECK(fast.len - 1 == slow.len && memcmp(fast.data + 1, slow.data, slow.len) == 0,
	           "laid out differently:\nfast: %s\njansson: %s", fast.data + 1, slow.data);

	json_t *member = member_at(v, find.path);
	FUZZ_CHECK(find.found == (member != NULL), "path '%s': found %d, jansson has %s", find.path,
	           find.found, member ? "one" : "none");
	if (member) {
		FUZZ_CHECK(find.start >= 1 && find.start <= find.end && find.end <= fast.len,
		           "span %zu..%zu", find.start, find.end);
		/* The member sits at its depth: compare its value, not the
		 * indentation of its inner lines. */
		json_t *got = javascript(fast.data + find.start, find.end - find.start);
		FUZZ_CHECK(got && json_same_to_javascript(got, member), "path '%s' spans '%.*s'",
		           find.path, (int)(find.end - find.start), fast.data + find.start);
		json_decref(got);
	}

	struct buf unindented = BUF_INIT(SIZE_MAX / 2), compact = BUF_INIT(SIZE_MAX / 2);
	FUZZ_CHECK(json_text_unindent(&unindented, fast.data + 1, fast.len - 1) == 0, "unindent");
	FUZZ_CHECK(json_text_compact(&compact, v) == 0, "compact");
	FUZZ_CHECK(unindented.len == compact.len &&
	                   memcmp(unindented.data, compact.data, compact.len) == 0,
	           "unindented: %s\ncompact: %s", unindented.data, compact.data);
	json_t *back = javascript(compact.data, compact.len);
	FUZZ_CHECK(back && json_same_to_javascript(back, v), "compact text %s reads back otherwise",
	           compact.data);
	json_decref(back);
	back = javascript(slow.data, slow.len);
	FUZZ_CHECK(back && json_same_to_javascript(back, v), "pretty text reads back otherwise");
	json_decref(back);
	buf_free(&unindented);
	buf_free(&compact);
	buf_free(&fast);
	buf_free(&slow);
}

/* Builds the value the pieces of a split give, or NULL when one does not
 * parse (or a name holds U+0000, which jansson refuses in a name). */
static json_t *value_of_members(const struct json_member *m, size_t n)
{
	json_t *obj = json_object();
	for (size_t i = 0; obj && i < n; i++) {
		json_t *name = json_text_parse(m[i].name.text, m[i].name.len, NULL, 0);
		json_t *value = json_text_parse(m[i].value.text, m[i].value.len, NULL, 0);
		const char *s = json_text_c_string(name);
		if (!s || !value || json_object_set_new(obj, s, value) != 0) {
			json_decref(value);
			json_decref(obj);
			obj = NULL;
		}
		json_decref(name);
	}
	return obj;
}

static json_t *value_of_elements(const struct json_span *e, size_t n)
{
	json_t *arr = json_array();
	for (size_t i = 0; arr && i < n; i++) {
		json_t *value = json_text_parse(e[i].text, e[i].len, NULL, 0);
		if (!value || json_array_append_new(arr, value) != 0) {
			json_decref(arr);
			arr = NULL;
		}
	}
	return arr;
}

/* Whether a value built from pieces is the whole text's value `ref`: the
 * same to jansson, or, for a text with an integer past 64 bits (whose
 * numbers are all read as doubles), the same to JavaScript. */
static bool same_as_whole(const json_t *built, const json_t *ref, bool overflow)
{
	return overflow ? json_same_to_javascript(built, ref) : json_equal(built, ref);
}

/* `ref` is the whole text's value as json_text_parse reads it. */
static void check_split(const char *text, size_t len, json_t *ref, bool overflow)
{
	struct json_member *members = NULL;
	size_t n = 0;
	int rc = json_text_members(text, len, &members, &n);
	FUZZ_CHECK(rc == 0 || rc == -EINVAL, "members: %d", rc);
	FUZZ_CHECK(!json_is_object(ref) || rc == 0, "an object the split refuses");
	json_t *built = rc == 0 ? value_of_members(members, n) : NULL;
	if (built)
		FUZZ_CHECK(json_is_object(ref) && same_as_whole(built, ref, overflow),
		           "the members parse, but the whole %s",
		           ref ? "reads as another value" : "does not");
	else if (rc == 0)
		FUZZ_CHECK(!ref, "an object whose members do not parse");
	json_decref(built);
	free(members);

	struct json_span *elems = NULL;
	rc = json_text_elements((struct json_span){text, len}, &elems, &n);
	FUZZ_CHECK(rc == 0 || rc == -EINVAL, "elements: %d", rc);
	FUZZ_CHECK(!json_is_array(ref) || rc == 0, "an array the split refuses");
	built = rc == 0 ? value_of_elements(elems, n) : NULL;
	if (built)
		FUZZ_CHECK(json_is_array(ref) && same_as_whole(built, ref, overflow),
		           "the elements parse, but the whole %s",
		           ref ? "reads as another value" : "does not");
	else if (rc == 0)
		FUZZ_CHECK(!ref, "an array whose elements do not parse");
	json_decref(built);
	if (rc == 0)
		free(elems);
}

static void check_plain_string(const char *text, size_t len, json_t *v)
{
	if (!json_text_plain_string(text, len))
		return;
	FUZZ_CHECK(len >= 2, "plain string of %zu bytes", len);
	/* Its bytes are the string, when they are UTF-8 at all. */
	json_t *s = json_stringn(text + 1, len - 2);
	FUZZ_CHECK(!s == !v, "plain string: jansson %s it", v ? "reads" : "refuses");
	FUZZ_CHECK(!s || json_equal(s, v), "plain string reads as another string");
	json_decref(s);
}

/* Any bytes as a string literal for a message: JSON jansson reads; the
 * same literal as json_text_string writes when the bytes are UTF-8. */
static void check_lossy_string(const char *text, size_t len)
{
	struct buf lossy = BUF_INIT(SIZE_MAX / 2), plain = BUF_INIT(SIZE_MAX / 2);
	FUZZ_CHECK(json_text_string_lossy(&lossy, text, len) == 0, "lossy string");
	json_t *s = json_loadb(lossy.data, lossy.len, JSON_DECODE_ANY | JSON_ALLOW_NUL, NULL);
	FUZZ_CHECK(json_is_string(s), "a lossy string literal jansson does not read: %s",
	           lossy.data);
	json_t *as_is = json_stringn(text, len);
	if (as_is) {
		FUZZ_CHECK(json_text_string(&plain, text, len) == 0, "string");
		FUZZ_CHECK(lossy.len == plain.len && memcmp(lossy.data, plain.data, plain.len) == 0,
		           "UTF-8 written otherwise: %s / %s", lossy.data, plain.data);
		FUZZ_CHECK(json_equal(s, as_is), "UTF-8 read back otherwise");
	}
	json_decref(as_is);
	json_decref(s);
	buf_free(&lossy);
	buf_free(&plain);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const char *text = (const char *)data;
	json_error_t error;
	json_t *v = json_loadb(text, size, JSON_DECODE_ANY | JSON_ALLOW_NUL, &error);
	bool overflow = !v && json_error_code(&error) == json_error_numeric_overflow;
	check_parse_and_layout(text, size, v, overflow);
	json_t *whole = overflow ? json_text_parse(text, size, NULL, 0) : json_incref(v);
	check_split(text, size, whole, overflow);
	json_decref(whole);
	check_plain_string(text, size, v);
	check_lossy_string(text, size);
	json_decref(v);
	return 0;
}
