/* fuzz_push_body.c - the push body splitter (src/http/http_sync.c,
 * http_push_body_read) against the reading of the whole body by
 * json_text_parse (jansson's, and JavaScript's for integers past 64 bits;
 * fuzz_json_text holds it to those).
 *
 * POST /v1/push does not parse its body whole: it splits it into members,
 * parses those but "mutations", and leaves each mutation as text for
 * store_sync_push, which reports one that does not parse as a malformed
 * body. Together they must decide as a reading of the whole body would:
 *   - a body read whole as an object is read, and its members and the
 *     parsed mutation texts make exactly that object;
 *   - a body the whole reading refuses is refused, or holds a mutation
 *     text that does not parse (so the push is refused as malformed);
 *   - a body that is no object is refused with a reason;
 *   - the mutations are found exactly when the "mutations" member is an
 *     array;
 *   - the reason given for the first mutation text that does not parse
 *     (http_push_body_malformed, from that text's own reason) is the
 *     whole reading's reason, word for word, line and column in the body
 *     (but when the whole reading stops first at an integer past 64 bits,
 *     which it then reads again as JavaScript does and reports where the
 *     first reading stopped).
 */
#include "../common/json_same.h"
#include "fuzz.h"

#include "http_push_body.h"

#include "idbmount/codec/json_text.h"

#include <errno.h>
#include <string.h>

/* The first mutation text that does not parse is reported as the whole
 * body's reading reports it. */
static void check_malformed(const char *text, size_t size, const struct http_push_body *b,
                            bool overflow)
{
	char mutation_why[200] = "", whole_why[256] = "", why[256] = "";
	size_t i = 0;
	for (; i < b->count; i++) {
		json_t *m = json_text_parse(b->mutations[i].text, b->mutations[i].len, mutation_why,
		                            sizeof(mutation_why));
		json_decref(m);
		if (!m)
			break;
	}
	FUZZ_CHECK(i < b->count, "no mutation text fails");
	json_t *whole = http_parse_object(text, size, whole_why, sizeof(whole_why));
	FUZZ_CHECK(!whole, "the whole body parses");
	http_push_body_malformed(text, b, i, mutation_why, why, sizeof(why));
	if (!overflow)
		FUZZ_CHECK(strcmp(why, whole_why) == 0,
		           "mutation %zu's reason:\n%s\nthe whole body's:\n%s", i, why, whole_why);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const char *text = (const char *)data;
	json_error_t error;
	json_t *v = json_loadb(text, size, JSON_DECODE_ANY | JSON_ALLOW_NUL, &error);
	/* With an integer past 64 bits every number is read as a double, in
	 * the whole as in each piece that holds one: compare as JavaScript. */
	bool overflow = !v && json_error_code(&error) == json_error_numeric_overflow;
	if (overflow)
		v = json_text_parse(text, size, NULL, 0);
	struct http_push_body b;
	char why[256] = "";
	int rc = http_push_body_read(text, size, &b, why, sizeof(why));
	FUZZ_CHECK(rc == 0 || rc == -EINVAL, "rc %d", rc);
	if (rc) {
		FUZZ_CHECK(!json_is_object(v), "refused an object the whole reading reads: %s",
		           why);
		FUZZ_CHECK(why[0], "refused without a reason");
		http_push_body_free(&b);
		json_decref(v);
		return 0;
	}
	FUZZ_CHECK(json_is_object(b.doc), "read without a document");
	json_t *built = json_deep_copy(b.doc);
	FUZZ_CHECK(built, "out of memory");
	FUZZ_CHECK(!json_object_get(built, "mutations") || !b.mutations,
	           "mutations both split and parsed");
	json_t *list = b.mutations ? json_array() : NULL;
	bool all_parse = true;
	for (size_t i = 0; b.mutations && i < b.count; i++) {
		json_t *m = json_text_parse(b.mutations[i].text, b.mutations[i].len, NULL, 0);
		all_parse = all_parse && m;
		if (m)
			json_array_append_new(list, m);
	}
	if (list)
		json_object_set_new(built, "mutations", list);
	if (!all_parse) {
		FUZZ_CHECK(!v, "the whole body is read, but a mutation text does not parse");
		check_malformed(text, size, &b, overflow);
	} else {
		FUZZ_CHECK(v, "took a body the whole reading refuses");
		FUZZ_CHECK(overflow ? json_same_to_javascript(built, v) : json_equal(built, v),
		           "the split body differs from the whole body's object");
		FUZZ_CHECK(!b.mutations == !json_is_array(json_object_get(v, "mutations")),
		           "mutations found: %d", b.mutations != NULL);
	}
	json_decref(built);
	http_push_body_free(&b);
	json_decref(v);
	return 0;
}
