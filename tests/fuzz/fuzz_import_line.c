/* fuzz_import_line.c - one line of `idbmountctl import` (src/codec/import_line.c),
 * read and checked against a real store in a temporary data directory.
 *
 * The store has one client, "fuzz", and four object stores: "plain"
 * (out-of-line keys), "people" (keyPath "id"), "deep" (keyPath "a.b") and
 * "pair" (keyPath ["a","b"]); the input's length picks one. The input is
 * the first line of a file (a UTF-8 BOM is skipped). Properties:
 *   - a line jansson refuses is refused as invalid JSON (but for an integer
 *     past 64 bits, read as JavaScript reads it); a line read is jansson's
 *     value;
 *   - a line is read as {"key":K,"value":V} / {"key":K,"op":"delete"}
 *     exactly when it is an object with "key", with "value" or "op", and
 *     no other member than a change line has; K and V are its members;
 *     any other line is a record only for a store with an inline keyPath;
 *   - a line the check passes parses, and its key is a valid key;
 *   - the change line `idbmountctl log` would print for what a good line
 *     does in "plain" (put or delete) is itself a good line that does the
 *     same: the same key, the same value to JavaScript;
 *   - a line the text path takes (import_line_split, then
 *     store_import_put / _delete checking) is one the tree path takes
 *     too (import_line_parse, import_line_check), read alike: a put or a
 *     delete, its key text parsing to the same key, its value text to the
 *     same value.
 */
#include "../common/json_same.h"
#include "fuzz.h"

#include "idbmount/codec/changeline.h"
#include "idbmount/codec/import_line.h"
#include "idbmount/codec/json_text.h"
#include "idbmount/codec/key.h"
#include "idbmount/store/store.h"
#include "idbmount/util/buf.h"

#include <string.h>
#include <unistd.h>

static const char *const wrapper_members[] = {
        "seq", "ts", "node", "client", "db", "store", "key", "op", "rev", "origin", "value",
};

struct target_store {
	const char *name;
	const char *keypath;
};

static const struct target_store stores[] = {
        {"plain", "null"},
        {"people", "\"id\""},
        {"deep", "\"a.b\""},
        {"pair", "[\"a\",\"b\"]"},
};

static struct store *st;

/* Before the data directory goes (fuzz_temp_datadir). */
static void close_store(void)
{
	store_close(st);
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	(void)argc;
	(void)argv;
	const char *datadir = fuzz_temp_datadir("import");
	char err[512], token[STORE_TOKEN_MAX];
	FUZZ_CHECK(store_open(datadir, &st, err, sizeof(err)) == 0, "%s", err);
	atexit(close_store);
	FUZZ_CHECK(store_client_add(st, "fuzz", NULL, token) == 0, "client add");
	for (size_t i = 0; i < sizeof(stores) / sizeof(*stores); i++) {
		struct store_path path = {"fuzz", "db", stores[i].name};
		FUZZ_CHECK(store_make_objstore(st, &path, stores[i].keypath, false) == 0,
		           "mkstore %s", stores[i].name);
	}
	return 0;
}

/* Whether `doc` has the shape of a {"key":K,...} line. */
static bool is_wrapper(const json_t *doc)
{
	if (!json_is_object(doc) || !json_object_get(doc, "key") ||
	    !(json_object_get(doc, "value") || json_object_get(doc, "op")))
		return false;
	const char *name;
	json_t *v;
	json_object_foreach((json_t *)doc, name, v)
	{
		bool known = false;
		for (size_t i = 0; i < sizeof(wrapper_members) / sizeof(*wrapper_members); i++)
			known = known || strcmp(name, wrapper_members[i]) == 0;
		if (!known)
			return false;
	}
	return true;
}

static void check_parse(const char *text, size_t len, bool inline_keys, const struct import_line *l,
                        int rc, const char *why)
{
	json_error_t error;
	json_t *v = json_loadb(text, len, JSON_DECODE_ANY | JSON_ALLOW_NUL, &error);
	/* An integer past 64 bits: the line is read as JavaScript reads it
	 * (json_text_parse; fuzz_json_text holds it to that). */
	bool overflow = !v && json_error_code(&error) == json_error_numeric_overflow;
	if (overflow)
		v = json_text_parse(text, len, NULL, 0);
	if (!v) {
		FUZZ_CHECK(rc != 0 && strncmp(why, "invalid JSON", 12) == 0,
		           "a line jansson refuses: rc %d, '%s'", rc, why);
		return;
	}
	bool wrapper = is_wrapper(v);
	if (rc == 0) {
		FUZZ_CHECK(overflow ? json_same_to_javascript(l->doc, v) : json_equal(l->doc, v),
		           "the line is read otherwise than by jansson");
		if (l->key) {
			FUZZ_CHECK(wrapper, "a {\"key\"} line of another shape");
			const json_t *op = json_object_get(v, "op");
			FUZZ_CHECK(l->key == json_object_get(l->doc, "key"), "another key");
			FUZZ_CHECK(l->del == (op && json_is_string(op) &&
			                      strcmp(json_string_value(op), "delete") == 0),
			           "delete: %d", l->del);
			FUZZ_CHECK(l->del ? !l->value && !json_object_get(v, "value")
			                  : l->value == json_object_get(l->doc, "value") &&
			                            (!op ||
			                             (json_is_string(op) &&
			                              strcmp(json_string_value(op), "put") == 0)),
			           "a put or delete of another shape");
		} else {
			FUZZ_CHECK(inline_keys && !wrapper && !l->del && l->value == l->doc,
			           "read as a record: inline %d, wrapper %d", inline_keys, wrapper);
		}
	} else {
		FUZZ_CHECK(wrapper || !inline_keys, "a record line refused: %s", why);
	}
	json_decref(v);
}

/* The change line of what the good line `l` does in store "plain", read
 * as a line again: it must do the same. */
static void check_change_line(const struct import_line *l)
{
	char *canon = key_canonical_json(l->key);
	FUZZ_CHECK(canon, "a checked key without canonical JSON");
	struct buf value = BUF_INIT(SIZE_MAX / 2), line = BUF_INIT(SIZE_MAX / 2);
	if (!l->del)
		FUZZ_CHECK(json_text_compact(&value, l->value) == 0, "compact");
	struct store_change c = {.seq = 7,
	                         .ts_ms = 1795428307123LL,
	                         .client = "fuzz",
	                         .db = "db",
	                         .objstore = "plain",
	                         .key = canon,
	                         .deleted = l->del,
	                         .rev = 2,
	                         .origin = ORIGIN_IMPORT,
	                         .value = l->del ? NULL : value.data};
	FUZZ_CHECK(changeline_render(&line, &c, "node") == 0, "render");
	FUZZ_CHECK(line.len && line.data[line.len - 1] == '\n', "no newline");
	struct import_line again;
	char why[400] = "";
	int rc = import_line_parse(line.data, line.len - 1, false, &again, why, sizeof(why));
	FUZZ_CHECK(rc == 0, "the change line does not read back: %s\n%s", why, line.data);
	FUZZ_CHECK(again.del == l->del, "delete %d read back as %d", l->del, again.del);
	char *canon2 = key_canonical_json(again.key);
	FUZZ_CHECK(canon2 && strcmp(canon, canon2) == 0, "key %s read back as %s", canon,
	           canon2 ? canon2 : "(none)");
	if (!l->del)
		FUZZ_CHECK(json_same_to_javascript(again.value, l->value),
		           "the value reads back otherwise:\n%s", line.data);
	struct store_path path = {"fuzz", "db", "plain"};
	why[0] = '\0';
	import_line_check(st, &path, false, line.data, line.len - 1, why, sizeof(why));
	FUZZ_CHECK(!why[0], "the change line is refused: %s\n%s", why, line.data);
	free(canon2);
	import_line_free(&again);
	buf_free(&value);
	buf_free(&line);
	free(canon);
}

/* The text path on the same line (see the properties above): `rc` and
 * `l` are import_line_parse's, `check_why` import_line_check's. */
static void check_text_path(const struct target_store *target, const char *text, size_t len,
                            bool inline_keys, int rc, const struct import_line *l,
                            const char *check_why)
{
	struct import_line_split split;
	if (import_line_split(text, len, inline_keys, &split) != 0)
		return;
	struct store_path path = {"fuzz", "db", target->name};
	struct store_import *im = NULL;
	FUZZ_CHECK(store_import_open(st, &path, &im) == 0, "import open");
	int64_t seq = 0;
	int took = split.del ? store_import_delete(im, split.key, split.key_len, false, &seq)
	                     : store_import_put(im, split.key, split.key_len, split.value,
	                                        split.value_len, false, &seq);
	store_import_close(im);
	FUZZ_CHECK(took == 0 || took == STORE_IMPORT_DECLINED, "the text path failed: %d", took);
	if (took != 0)
		return;
	FUZZ_CHECK(rc == 0 && !check_why[0], "the text path takes a line the tree path refuses: %s",
	           check_why);
	FUZZ_CHECK(split.del == l->del, "delete %d read as %d", l->del, split.del);
	FUZZ_CHECK(!split.key == !l->key, "a key given and not");
	if (split.key) {
		json_t *k = json_text_parse(split.key, split.key_len, NULL, 0);
		FUZZ_CHECK(k && json_same_to_javascript(k, l->key), "another key");
		json_decref(k);
	}
	FUZZ_CHECK(!split.value == !l->value, "a value given and not");
	if (split.value) {
		json_t *v = json_text_parse(split.value, split.value_len, NULL, 0);
		FUZZ_CHECK(v && json_same_to_javascript(v, l->value), "another value");
		json_decref(v);
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const struct target_store *target = &stores[size % (sizeof(stores) / sizeof(*stores))];
	bool inline_keys = strcmp(target->keypath, "null") != 0;
	char *copy = fuzz_strndup(data, size);
	size_t len = size;
	const char *text = import_line_text(copy, &len, 1);
	if (import_line_is_blank(text, len)) {
		FUZZ_CHECK(strspn(text, " \t\r") == len, "a line with text taken for blank");
		free(copy);
		return 0;
	}
	struct import_line l;
	char why[400] = "";
	int rc = import_line_parse(text, len, inline_keys, &l, why, sizeof(why));
	check_parse(text, len, inline_keys, &l, rc, why);

	struct store_path path = {"fuzz", "db", target->name};
	char check_why[400] = "";
	FUZZ_CHECK(store_begin(st) == 0, "begin");
	import_line_check(st, &path, inline_keys, text, len, check_why, sizeof(check_why));
	store_rollback(st);
	check_text_path(target, text, len, inline_keys, rc, &l, check_why);
	if (!check_why[0]) {
		FUZZ_CHECK(rc == 0, "the check passes a line that does not parse");
		FUZZ_CHECK(!l.key || key_check(l.key, NULL, 0) == 0, "the check passes a bad key");
		if (l.key && !inline_keys)
			check_change_line(&l);
	}
	import_line_free(&l);
	free(copy);
	return 0;
}
