/* store_push_mutation.c - reading one mutation of a push: all of it but
 * its value, which stays text for store_put_prepare_text to lay out.
 *
 * Clients write their mutations plainly: each member once, names and
 * strings without escapes. Such a text is read here without jansson: the
 * member texts are looked at where they are, and only the key and the base
 * become values. Building a jansson object of six members for each of a
 * push's mutations took half of the time spent parsing (some twenty
 * allocations a mutation, made on one thread and freed on another).
 *
 * Any other text is read by jansson: member by member, or whole when it
 * does not split into members that parse, so that what is wrong with it is
 * said as jansson says it. Both readings end in the same rules
 * (rules_broken).
 */
#include "store_sync_internal.h"

#include "idbmount/codec/json_text.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

static const char id_wrong[] = "id is a non-empty string of at most 256 bytes";
static const char op_wrong[] = "op is \"put\" or \"delete\"";

/* Whether op `op` (len bytes) is `name`. */
static bool op_is(const char *op, size_t len, const char *name)
{
	return len == strlen(name) && memcmp(op, name, len) == 0;
}

/* What is wrong with a mutation whose id and op are strings without
 * U+0000 (and db and store too), or NULL. `key` and `base` are NULL when
 * absent. */
static const char *rules_broken(size_t id_len, const char *op, size_t op_len, const json_t *key,
                                const json_t *base, bool has_value)
{
	bool put = op_is(op, op_len, "put");
	bool removal = op_is(op, op_len, "delete");
	if (id_len == 0 || id_len > SYNC_MUTATION_ID_MAX)
		return id_wrong;
	if (!put && !removal)
		return op_wrong;
	if (base && !json_is_null(base) &&
	    !(json_is_integer(base) && json_integer_value(base) >= 0))
		return "base is null or a revision number";
	if (put && !has_value)
		return "a put needs a value";
	if (removal && json_is_null(key))
		return "a delete needs a key";
	return NULL;
}

/* ---- read quickly ---------------------------------------------------------- */

enum member { M_ID, M_DB, M_STORE, M_OP, M_KEY, M_BASE, M_VALUE, M_OTHER };

static const char *const member_names[M_OTHER] = {"id",  "db",   "store", "op",
                                                  "key", "base", "value"};

/* Which member name literal `name` (quotes included) is, written plainly;
 * M_OTHER for any other, or one written with escapes. */
static enum member member_of(struct json_span name)
{
	if (!json_text_plain_string(name.text, name.len))
		return M_OTHER;
	for (int m = 0; m < M_OTHER; m++)
		if (name.len - 2 == strlen(member_names[m]) &&
		    memcmp(name.text + 1, member_names[m], name.len - 2) == 0)
			return (enum member)m;
	return M_OTHER;
}

/* The string of literal `lit`, written plainly: its bytes, copied to `to`
 * and ended by a NUL. Returns the next free byte of `to`. */
static char *copy_string(char *to, struct json_span lit, const char **s)
{
	memcpy(to, lit.text + 1, lit.len - 2);
	to[lit.len - 2] = '\0';
	*s = to;
	return to + lit.len - 1;
}

/* Reads text `t` when it is written plainly, each of id, db, store and op
 * a string as written, and no member but the seven. Returns 0, or -EINVAL
 * for any other text (r is left empty), -ENOMEM. */
static int read_quickly(struct json_span t, struct mutation_read *r)
{
	struct json_member *members = NULL;
	size_t n = 0;
	if (json_text_members(t.text, t.len, &members, &n) != 0)
		return -EINVAL;
	struct json_span given[M_OTHER] = {{0}};
	int rc = 0;
	for (size_t k = 0; k < n && !rc; k++) {
		enum member m = member_of(members[k].name);
		if (m == M_OTHER || given[m].text)
			rc = -EINVAL;
		else
			given[m] = members[k].value;
	}
	free(members);
	for (int m = M_ID; m <= M_OP && !rc; m++)
		if (!given[m].text || !json_text_string_as_written(given[m].text, given[m].len))
			rc = -EINVAL;
	if (!rc && given[M_KEY].text &&
	    !(r->key = json_text_parse(given[M_KEY].text, given[M_KEY].len, NULL, 0)))
		rc = -EINVAL;
	if (!rc && given[M_BASE].text &&
	    !(r->base = json_text_parse(given[M_BASE].text, given[M_BASE].len, NULL, 0)))
		rc = -EINVAL;
	if (!rc) {
		r->names = malloc(given[M_ID].len + given[M_DB].len + given[M_STORE].len);
		rc = r->names ? 0 : -ENOMEM;
	}
	if (rc) {
		mutation_read_free(r);
		return rc;
	}
	char *to = copy_string(r->names, given[M_ID], &r->mu.id);
	to = copy_string(to, given[M_DB], &r->mu.db);
	copy_string(to, given[M_STORE], &r->mu.store);
	const char *op = given[M_OP].text + 1;
	size_t op_len = given[M_OP].len - 2;
	r->mu.put = op_is(op, op_len, "put");
	r->mu.key = r->key;
	r->mu.base = r->base;
	r->has_value = given[M_VALUE].text != NULL;
	r->value_text = given[M_VALUE];
	r->wrong = rules_broken(given[M_ID].len - 2, op, op_len, r->key, r->base, r->has_value);
	return 0;
}

/* ---- read by jansson -------------------------------------------------------- */

/* Parses text `t` member by member into r->doc, but the "value" member,
 * whose text is left in r->value_text. Returns 0, or -EINVAL when the text
 * is not an object whose members each parse, -ENOMEM. */
static int read_by_members(struct json_span t, struct mutation_read *r)
{
	struct json_member *members = NULL;
	size_t n = 0;
	struct json_span value = {NULL, 0};
	if (json_text_members(t.text, t.len, &members, &n) != 0)
		return -EINVAL;
	json_t *obj = json_object();
	int rc = obj ? 0 : -ENOMEM;
	for (size_t k = 0; k < n && !rc; k++) {
		/* A name written plainly is its own text (jansson checks its
		 * UTF-8 when it is set); others are parsed. */
		struct json_span lit = members[k].name;
		const char *s = lit.text + 1;
		size_t len = lit.len - 2;
		bool plain = json_text_plain_string(lit.text, lit.len);
		json_t *name = plain ? NULL : json_text_parse(lit.text, lit.len, NULL, 0);
		if (!plain) {
			s = json_string_value(name);
			len = json_string_length(name);
		}
		json_t *v = NULL;
		if (!plain && (!s || strlen(s) != len)) {
			/* a name that does not parse, or holds U+0000, which
			 * jansson refuses in a member name */
			rc = -EINVAL;
		} else if (len == 5 && memcmp(s, "value", 5) == 0) {
			/* The last one counts, as in jansson; an earlier one
			 * must still parse. */
			if (value.text && !(v = json_text_parse(value.text, value.len, NULL, 0)))
				rc = -EINVAL;
			json_decref(v);
			value = members[k].value;
		} else {
			v = json_text_parse(members[k].value.text, members[k].value.len, NULL, 0);
			rc = v && json_object_setn_new(obj, s, len, v) == 0 ? 0 : -EINVAL;
		}
		json_decref(name);
	}
	free(members);
	if (rc) {
		json_decref(obj);
		return rc;
	}
	r->doc = obj;
	r->has_value = value.text != NULL;
	r->value_text = value;
	return 0;
}

/* Checks the shape of r->doc, jansson's reading, and points r->mu into it. */
static void check_doc(struct mutation_read *r)
{
	const json_t *m = r->doc;
	const json_t *id = json_object_get(m, "id");
	const json_t *db = json_object_get(m, "db");
	const json_t *store = json_object_get(m, "store");
	const json_t *op = json_object_get(m, "op");
	const json_t *key = json_object_get(m, "key");
	const json_t *base = json_object_get(m, "base");
	r->mu.id = json_string_value(id); /* to name the mutation, even when wrong */
	if (!json_is_object(m))
		r->wrong = "a mutation is an object {id, db, store, key, op, value, base}";
	else if (!json_is_string(id))
		r->wrong = id_wrong;
	else if (!json_text_c_string(id))
		r->wrong = "id holds U+0000 (it would be taken for the id cut there)";
	else if (!json_is_string(db) || !json_is_string(store))
		r->wrong = "db and store are strings";
	else if (!json_text_c_string(db) || !json_text_c_string(store))
		r->wrong = "db or store holds U+0000, which a name cannot hold";
	else if (!json_text_c_string(op))
		r->wrong = op_wrong;
	else
		r->wrong = rules_broken(json_string_length(id), json_string_value(op),
		                        json_string_length(op), key, base, r->has_value);
	if (r->wrong)
		return;
	r->mu.db = json_string_value(db);
	r->mu.store = json_string_value(store);
	r->mu.put = op_is(json_string_value(op), json_string_length(op), "put");
	r->mu.key = key;
	r->mu.base = base;
}

void mutation_read_whole(struct json_span t, struct mutation_read *r)
{
	mutation_read_free(r);
	r->doc = json_text_parse(t.text, t.len, r->why, sizeof(r->why));
	if (!r->doc) {
		r->malformed = true;
		return;
	}
	r->value_parsed = json_incref(json_object_get(r->doc, "value"));
	r->has_value = r->value_parsed != NULL;
	check_doc(r);
}

void mutation_read(struct json_span t, struct mutation_read *r)
{
	memset(r, 0, sizeof(*r));
	if (read_quickly(t, r) == 0)
		return;
	if (read_by_members(t, r) == 0)
		check_doc(r);
	else
		mutation_read_whole(t, r);
}

void mutation_read_free(struct mutation_read *r)
{
	json_decref(r->doc);
	json_decref(r->key);
	json_decref(r->base);
	json_decref(r->value_parsed);
	free(r->names);
	memset(r, 0, sizeof(*r));
}
