/* store_sync_schema.c - POST /v1/schema in the store (store_sync.h): the
 * browser's description of a database checked by IndexedDB's rules (a key
 * path, indexes), its stores made or brought in line, and the schema as
 * the server has it.
 */
#include "idbmount/store/store_sync.h"

#include "store_internal.h"
#include "store_sync_internal.h"

#include "idbmount/codec/json_text.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- schema ---------------------------------------------------------------- */

/* A key path string as IndexedDB takes it: "" or identifiers joined by
 * dots (non-ASCII letters allowed), each part at most 255 bytes. */
static bool keypath_string_valid(const char *s)
{
	size_t part = 0;
	for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
		unsigned char ch = *p;
		if (ch == '.') {
			if (part == 0)
				return false;
			part = 0;
			continue;
		}
		bool letter = ch >= 0x80 || (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') ||
		              ch == '_' || ch == '$';
		bool digit = ch >= '0' && ch <= '9';
		if (!letter && !(digit && part > 0))
			return false;
		if (++part > 255)
			return false;
	}
	return *s == '\0' || part > 0;
}

const char *store_keypath_problem(const json_t *kp, bool autoincrement)
{
	if (json_is_null(kp))
		return NULL;
	if (json_is_string(kp)) {
		if (!json_text_c_string(kp))
			return "a key path cannot hold U+0000";
		if (!keypath_string_valid(json_string_value(kp)))
			return "a key path is \"\" or identifiers joined by dots, like \"a.b\"";
		if (autoincrement && !*json_string_value(kp))
			return "autoIncrement cannot go with the empty keyPath \"\"";
		return NULL;
	}
	if (!json_is_array(kp))
		return "keyPath must be null, a string or an array of strings";
	if (json_array_size(kp) == 0)
		return "an array keyPath must not be empty";
	size_t i;
	json_t *p;
	json_array_foreach(kp, i, p)
	{
		if (!json_text_c_string(p) || !keypath_string_valid(json_string_value(p)))
			return "an array keyPath holds key path strings like \"a\" or \"a.b\" "
			       "(without U+0000)";
	}
	if (autoincrement)
		return "autoIncrement cannot go with an array keyPath";
	return NULL;
}

/* Compact JSON text of `v` (malloc'd) or NULL. */
static char *compact_text(const json_t *v, size_t max)
{
	struct buf b;
	buf_init(&b, max);
	if (json_text_compact(&b, v) != 0) {
		buf_free(&b);
		return NULL;
	}
	return buf_take(&b, NULL);
}

/* Checks one index description: {name, keyPath, unique?, multiEntry?}. */
static const char *index_problem(const json_t *ix)
{
	if (!json_is_object(ix))
		return "an index is an object {name, keyPath, unique, multiEntry}";
	const json_t *name = json_object_get(ix, "name");
	if (!json_is_string(name) || json_string_length(name) == 0)
		return "an index needs a non-empty string name";
	const json_t *kp = json_object_get(ix, "keyPath");
	if (!kp || json_is_null(kp) || store_keypath_problem(kp, false))
		return "an index needs a keyPath: a key path string or an array of them";
	const json_t *u = json_object_get(ix, "unique");
	const json_t *m = json_object_get(ix, "multiEntry");
	if ((u && !json_is_boolean(u)) || (m && !json_is_boolean(m)))
		return "an index's unique and multiEntry are booleans";
	return NULL;
}

/* Brings one object store in line with the browser's description. */
static int schema_store(struct store *st, int64_t db_id, size_t index, const json_t *desc)
{
	const json_t *name = json_object_get(desc, "name");
	const json_t *kp = json_object_get(desc, "keyPath");
	const json_t *ai = json_object_get(desc, "autoIncrement");
	const json_t *ixs = json_object_get(desc, "indexes");
	if (!json_is_object(desc) || !json_is_string(name)) {
		store_set_error(st, "stores[%zu]: want {name, keyPath, autoIncrement, indexes}",
		                index);
		return -EINVAL;
	}
	const char *sname = json_text_c_string(name);
	if (!sname) {
		store_set_error(st,
		                "stores[%zu]: the store name holds U+0000, which a name "
		                "cannot hold",
		                index);
		return -EINVAL;
	}
	if (ai && !json_is_boolean(ai)) {
		store_set_error(st, "store '%s': autoIncrement is a boolean", sname);
		return -EINVAL;
	}
	bool autoinc = ai && json_is_true(ai);
	json_t *null_kp = json_null();
	if (!kp)
		kp = null_kp;
	const char *problem = store_keypath_problem(kp, autoinc);
	if (problem) {
		store_set_error(st, "store '%s': %s", sname, problem);
		return -EINVAL;
	}
	if (ixs && !json_is_array(ixs)) {
		store_set_error(st, "store '%s': indexes is an array", sname);
		return -EINVAL;
	}
	size_t i;
	json_t *ix;
	json_array_foreach(ixs, i, ix)
	{
		const char *why = index_problem(ix);
		if (why) {
			store_set_error(st, "store '%s': indexes[%zu]: %s", sname, i, why);
			return -EINVAL;
		}
	}
	char *kp_text = compact_text(kp, 64 * 1024);
	json_t *empty = json_array();
	char *ix_text = compact_text(ixs ? ixs : empty, 1024 * 1024);
	json_decref(empty);
	int rc = kp_text && ix_text ? 0 : -EINVAL;
	if (rc)
		store_set_error(st, "store '%s': keyPath or indexes too large", sname);
	int64_t store_id = 0;
	if (!rc)
		rc = store_objstore_ensure(st, db_id, sname, kp_text, autoinc, true, false,
		                           ORIGIN_BROWSER, &store_id);
	char *have_kp = NULL;
	bool have_ai = false;
	if (!rc)
		rc = store_keypath_of(st, store_id, &have_kp, &have_ai);
	if (!rc && (strcmp(have_kp, kp_text) != 0 || have_ai != autoinc)) {
		int64_t live = 0;
		rc = store_sync_step_int(st, Q_STORE_COUNT_LIVE, store_id, &live);
		if (!rc && live > 0) {
			store_set_error(
			        st,
			        "store '%s' holds records under keyPath %s%s; its keyPath or "
			        "autoIncrement cannot change while it has records",
			        sname, have_kp, have_ai ? " with autoIncrement" : "");
			rc = -EEXIST;
		}
		sqlite3_stmt *s = rc ? NULL : store_sync_stmt(st, Q_STORE_SET_SHAPE);
		if (!rc && !s)
			rc = -EIO;
		if (!rc) {
			sqlite3_bind_int64(s, 1, store_id);
			store_bind_text(s, 2, kp_text);
			sqlite3_bind_int(s, 3, autoinc);
			rc = store_step_done(st, s);
		}
	}
	if (!rc) {
		sqlite3_stmt *s = store_sync_stmt(st, Q_STORE_SET_INDEXES);
		rc = s ? 0 : -EIO;
		if (!rc) {
			sqlite3_bind_int64(s, 1, store_id);
			store_bind_text(s, 2, ix_text);
			rc = store_step_done(st, s);
		}
	}
	free(have_kp);
	free(kp_text);
	free(ix_text);
	return rc;
}

/* The database's schema as the server has it. */
static int schema_answer(struct store *st, int64_t db_id, const char *db, json_t **answer)
{
	int64_t version = 1;
	int rc = store_sync_step_int(st, Q_DB_VERSION, db_id, &version);
	sqlite3_stmt *s = rc ? NULL : store_sync_stmt(st, Q_DB_STORES);
	if (!rc && !s)
		rc = -EIO;
	if (rc)
		return rc;
	json_t *stores = json_array();
	sqlite3_bind_int64(s, 1, db_id);
	int step;
	while ((step = sqlite3_step(s)) == SQLITE_ROW) {
		json_t *kp =
		        json_loads((const char *)sqlite3_column_text(s, 1), JSON_DECODE_ANY, NULL);
		json_t *ixs = json_loads((const char *)sqlite3_column_text(s, 3), 0, NULL);
		json_array_append_new(stores, json_pack("{s:s, s:o, s:b, s:o}", "name",
		                                        (const char *)sqlite3_column_text(s, 0),
		                                        "keyPath", kp ? kp : json_null(),
		                                        "autoIncrement", sqlite3_column_int(s, 2),
		                                        "indexes", ixs ? ixs : json_array()));
	}
	if (step != SQLITE_DONE)
		rc = store_sql_fail(st, step);
	sqlite3_reset(s);
	if (rc) {
		json_decref(stores);
		return rc;
	}
	*answer = json_pack("{s:s, s:I, s:o}", "db", db, "version", (json_int_t)version, "stores",
	                    stores);
	return *answer ? 0 : -ENOMEM;
}

int store_sync_schema(struct store *st, int64_t client_id, const json_t *request, json_t **answer)
{
	store_set_error(st, "%s", "");
	*answer = NULL;
	const json_t *db = json_object_get(request, "db");
	const json_t *version = json_object_get(request, "version");
	const json_t *stores = json_object_get(request, "stores");
	if (!json_is_object(request) || !json_is_string(db)) {
		store_set_error(st, "want {db, version, stores:[...]} with db a string");
		return -EINVAL;
	}
	if (version && !(json_is_integer(version) && json_integer_value(version) >= 1)) {
		store_set_error(st, "version is a positive integer");
		return -EINVAL;
	}
	if (stores && !json_is_array(stores)) {
		store_set_error(st, "stores is an array");
		return -EINVAL;
	}
	const char *dbname = json_text_c_string(db);
	if (!dbname) {
		store_set_error(st, "the db name holds U+0000, which a name cannot hold");
		return -EINVAL;
	}
	int rc = store_txn_begin(st);
	if (rc)
		return rc;
	int64_t db_id = 0, before = 0;
	rc = store_db_resolve(st, client_id, dbname, true, ORIGIN_BROWSER, &db_id);
	if (rc == -ENAMETOOLONG)
		rc = -EINVAL;
	if (!rc)
		rc = store_sync_step_int(st, Q_DB_VERSION, db_id, &before);
	size_t i;
	json_t *desc;
	json_array_foreach(stores, i, desc)
	{
		if (rc)
			break;
		rc = schema_store(st, db_id, i, desc);
		if (rc == -ENAMETOOLONG)
			rc = -EINVAL;
	}
	/* Stores the browser described need no new version: only the ones
	 * made elsewhere (which bumped it before this call) do. */
	if (!rc) {
		int64_t v = before;
		if (version && json_integer_value(version) > v)
			v = json_integer_value(version);
		sqlite3_stmt *s = store_sync_stmt(st, Q_DB_SET_VERSION);
		rc = s ? 0 : -EIO;
		if (!rc) {
			sqlite3_bind_int64(s, 1, db_id);
			sqlite3_bind_int64(s, 2, v);
			rc = store_step_done(st, s);
		}
	}
	if (!rc)
		rc = schema_answer(st, db_id, dbname, answer);
	rc = store_txn_end(st, rc);
	if (rc) {
		json_decref(*answer);
		*answer = NULL;
	}
	return rc;
}
