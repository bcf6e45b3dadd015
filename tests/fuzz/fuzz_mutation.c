/* fuzz_mutation.c - a push's mutation text, as store_sync_push reads it
 * (src/store/store_push_mutation.c) and prepares its put
 * (src/store/store_keys.c), without SQL.
 *
 * The input is one mutation's text. Properties:
 *   - mutation_read, which reads every member but "value" (quickly when
 *     the text is written plainly, else by jansson member by member) and
 *     leaves the value as text, agrees with mutation_read_whole, jansson's
 *     reading of the whole text (and JavaScript's for integers past 64
 *     bits): it refuses the texts that reading refuses (or leaves a value
 *     text that does not parse), finds the same thing wrong with the
 *     shape, and otherwise the same id, db, store, op, key, base and
 *     value;
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
#include "store_sync_internal.h"

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

static void check_put(const json_t *key, struct json_span value_text, const json_t *value,
                      size_t pick)
{
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

static bool same_json(const json_t *a, const json_t *b)
{
	return (!a && !b) || (a && b && json_same_to_javascript(a, b));
}

static bool same_string(const char *a, const char *b)
{
	return (!a && !b) || (a && b && strcmp(a, b) == 0);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct json_span text = {(const char *)data, size};
	struct mutation_read whole = {0}, r;
	mutation_read_whole(text, &whole);
	mutation_read(text, &r);
	json_t *value = r.value_text.text
	                        ? json_text_parse(r.value_text.text, r.value_text.len, NULL, 0)
	                        : json_incref(r.value_parsed);
	bool value_refused = r.value_text.text && !value;
	if (whole.malformed) {
		FUZZ_CHECK(r.malformed || value_refused,
		           "read a mutation the whole reading refuses");
	} else {
		FUZZ_CHECK(!r.malformed && !value_refused,
		           "refused a mutation read whole: %s (value text refused: %d)", r.why,
		           value_refused);
		FUZZ_CHECK(same_string(r.wrong, whole.wrong), "wrong: '%s', read whole: '%s'",
		           r.wrong ? r.wrong : "", whole.wrong ? whole.wrong : "");
		FUZZ_CHECK(same_string(r.mu.id, whole.mu.id), "id");
		FUZZ_CHECK(r.has_value == whole.has_value && same_json(value, whole.value_parsed),
		           "the value differs from the whole reading's");
		if (!whole.wrong) {
			FUZZ_CHECK(same_string(r.mu.db, whole.mu.db) &&
			                   same_string(r.mu.store, whole.mu.store),
			           "db or store");
			FUZZ_CHECK(r.mu.put == whole.mu.put, "op");
			FUZZ_CHECK(same_json(r.mu.key, whole.mu.key), "key");
			FUZZ_CHECK(same_json(r.mu.base, whole.mu.base), "base");
		}
		json_t *key = whole.doc ? json_object_get(whole.doc, "key") : NULL;
		if (r.value_text.text)
			check_put(key, r.value_text, value, size);
	}
	json_decref(value);
	mutation_read_free(&r);
	mutation_read_free(&whole);
	return 0;
}
