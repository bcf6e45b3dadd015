/* fuzz_mutation.c - a push's mutation text, as store_sync_push reads it
 * (src/store/store_push_ahead.c) and prepares its put (src/store/store_keys.c),
 * without SQL.
 *
 * The input is one mutation's text. Properties:
 *   - store_sync_mutation_parse, which parses every member but "value" and
 *     leaves the value as text, reads every object json_text_parse reads
 *     whole (jansson, and JavaScript for integers past 64 bits); its
 *     members plus the parsed value text are that object, and when the
 *     value text does not parse, the whole does not either;
 *   - for a mutation with a key and a value, under one of a few keyPaths
 *     and record caps (picked by the input's length), preparing the put
 *     from the value's text (store_put_prepare_text) agrees with preparing
 *     it from the parsed value (store_put_prepare): the same key problem,
 *     or, when the text path is sure, the same record name, canonical key,
 *     file text and compact text;
 *   - a prepared value's file text and compact text are the value as
 *     JavaScript reads it (with an inline key, the key at its keyPath),
 *     and the compact text is the file text without its layout;
 *   - with the inline keyPath "id", a put of a valid key whose value is
 *     an object without "id" succeeds (within the cap): the key is added.
 */
#include "../common/json_same.h"
#include "fuzz.h"

#include "store_internal.h"

#include "idbmount/codec/json_text.h"
#include "idbmount/codec/key.h"

#include <errno.h>
#include <string.h>

static const char *const keypaths[] = {"null", "\"id\"", "\"a.b\"", "\"\"", "[\"a\",\"b\"]"};

static json_t *javascript(const char *text, size_t len)
{
	return json_loadb(text, len, JSON_DECODE_ANY | JSON_ALLOW_NUL | JSON_DECODE_INT_AS_REAL,
	                  NULL);
}

static bool same_bytes(const struct buf *a, const struct buf *b)
{
	return a->len == b->len && (a->len == 0 || memcmp(a->data, b->data, a->len) == 0);
}

/* Checks a value prepared under `keypath` for the key `canon`. */
static void check_prepared(const struct store_put_prep *p, const char *keypath, const json_t *value)
{
	json_t *file = javascript(p->value.file.data, p->value.file.len);
	json_t *compact = javascript(p->value.compact.data, p->value.compact.len);
	FUZZ_CHECK(file && compact, "prepared texts do not parse:\n%s\n%s", p->value.file.data,
	           p->value.compact.data);
	FUZZ_CHECK(json_same_to_javascript(file, compact), "file and compact texts differ:\n%s\n%s",
	           p->value.file.data, p->value.compact.data);
	struct buf unindented = BUF_INIT(SIZE_MAX / 2);
	FUZZ_CHECK(json_text_unindent(&unindented, p->value.file.data, p->value.file.len) == 0,
	           "unindent");
	FUZZ_CHECK(same_bytes(&unindented, &p->value.compact),
	           "compact is not the file unindented");
	buf_free(&unindented);
	if (strcmp(keypath, "null") == 0) {
		FUZZ_CHECK(json_same_to_javascript(file, value),
		           "the file holds another value:\n%s", p->value.file.data);
	} else if (strcmp(keypath, "\"id\"") == 0) {
		json_t *at = json_object_get(file, "id");
		json_t *key = at ? key_from_json_text(p->canon, strlen(p->canon), NULL, 0) : NULL;
		FUZZ_CHECK(key && json_same_to_javascript(at, key),
		           "the key %s is not at \"id\": %s", p->canon, p->value.file.data);
		json_decref(key);
	}
	json_decref(file);
	json_decref(compact);
}

static void check_put(const json_t *m, struct json_span value_text, const json_t *value,
                      size_t pick)
{
	const json_t *key = json_object_get(m, "key");
	if (!key || !value)
		return;
	const char *keypath = keypaths[pick % (sizeof(keypaths) / sizeof(*keypaths))];
	size_t max_record = pick % 3 == 0 ? 64 : 16u * 1024 * 1024;
	struct store_put_prep fast, slow;
	int rc_fast = store_put_prepare_text(max_record, keypath, key, value_text, &fast);
	int rc_slow = store_put_prepare(max_record, keypath, key, value, &slow);
	FUZZ_CHECK(rc_fast <= 0 || rc_fast == JSON_TEXT_DECLINED, "rc %d", rc_fast);
	if (rc_fast < 0)
		FUZZ_CHECK(slow.key_rc == rc_fast && fast.key_rc == rc_fast,
		           "key problem %d from the text, %d from the value", rc_fast, slow.key_rc);
	if (rc_fast == 0) {
		FUZZ_CHECK(rc_slow == 0, "the text is prepared, the value fails (%d): %s", rc_slow,
		           slow.err);
		FUZZ_CHECK(strcmp(fast.canon, slow.canon) == 0 && strcmp(fast.name, slow.name) == 0,
		           "key %s / %s, name %s / %s", fast.canon, slow.canon, fast.name,
		           slow.name);
		FUZZ_CHECK(same_bytes(&fast.value.file, &slow.value.file),
		           "file text from the text:\n%s\nfrom the value:\n%s",
		           fast.value.file.data, slow.value.file.data);
		FUZZ_CHECK(same_bytes(&fast.value.compact, &slow.value.compact),
		           "compact text from the text:\n%s\nfrom the value:\n%s",
		           fast.value.compact.data, slow.value.compact.data);
	}
	if (rc_slow == 0)
		check_prepared(&slow, keypath, value);
	/* An inline key the value lacks is added to it. */
	if (strcmp(keypath, "\"id\"") == 0 && slow.key_rc == 0 && json_is_object(value) &&
	    !json_object_get(value, "id"))
		FUZZ_CHECK(rc_slow == 0 || rc_slow == -EFBIG,
		           "a put of key %s without \"id\" in its value fails: %s", slow.canon,
		           slow.err);
	store_put_prep_free(&fast);
	store_put_prep_free(&slow);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct json_span text = {(const char *)data, size};
	json_error_t error;
	json_t *whole = json_loadb(text.text, size, JSON_DECODE_ANY | JSON_ALLOW_NUL, &error);
	/* With an integer past 64 bits every number is read as a double, in
	 * the whole as in each member that holds one: compare as JavaScript. */
	bool overflow = !whole && json_error_code(&error) == json_error_numeric_overflow;
	if (overflow)
		whole = json_text_parse(text.text, size, NULL, 0);
	json_t *m = NULL;
	struct json_span value_text;
	int rc = store_sync_mutation_parse(text, &m, &value_text);
	FUZZ_CHECK(rc == 0 || rc == -EINVAL, "rc %d", rc);
	FUZZ_CHECK(!json_is_object(whole) || rc == 0, "refused a mutation read whole");
	if (rc) {
		json_decref(whole);
		return 0;
	}
	FUZZ_CHECK(json_is_object(m) && !json_object_get(m, "value"), "parsed with its value");
	json_t *value =
	        value_text.text ? json_text_parse(value_text.text, value_text.len, NULL, 0) : NULL;
	if (value_text.text && !value) {
		FUZZ_CHECK(!whole, "the mutation is read whole, its value text does not parse");
	} else {
		json_t *built = json_deep_copy(m);
		FUZZ_CHECK(built, "out of memory");
		if (value)
			json_object_set(built, "value", value);
		FUZZ_CHECK(whole, "read a mutation the whole reading refuses");
		FUZZ_CHECK(overflow ? json_same_to_javascript(built, whole)
		                    : json_equal(built, whole),
		           "the mutation differs from the whole reading's");
		json_decref(built);
		check_put(m, value_text, value, size);
	}
	json_decref(value);
	json_decref(m);
	json_decref(whole);
	return 0;
}
