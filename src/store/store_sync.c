/* store_sync.c - the store's part for the sync endpoint (see
 * store_internal.h for how the store is split, store_sync.h for the
 * contract and the decisions).
 *
 * Design. Writes go through store.c's record functions (store_record_put /
 * store_record_delete), so a browser's put is the same transaction shape as
 * one from idbmountctl: the row, the change log entry, the pretty file.
 * This file adds what only sync needs: tokens of pipelines, remembered
 * mutation ids (sync_mutations: the exact answer text, per client), the
 * conflict check against `base`, key generation for autoIncrement stores,
 * and the pull query that sends each record's latest change only.
 *
 * The pull query walks the client's change log (index changes_by_client)
 * and keeps a change only when it is still its record's last one (the
 * records row of that name holds its seq; index records_by_name), so no
 * index is added to the write path for it.
 */
#include "idbmount/store/store_sync.h"

#include "store_internal.h"

#include "idbmount/codec/json_text.h"
#include "idbmount/codec/key.h"
#include "idbmount/util/buf.h"

#include <errno.h>
#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

const char store_sync_schema_sql[] =
        "CREATE TABLE IF NOT EXISTS sync_pipelines(id INTEGER PRIMARY KEY AUTOINCREMENT,"
        " name TEXT NOT NULL UNIQUE, token_hash TEXT NOT NULL UNIQUE,"
        " created_ms INTEGER NOT NULL);"
        /* The result given to each mutation id (store_push_result), per
         * client. Rows are in time order by rowid, so pruning looks at the
         * oldest only. */
        "CREATE TABLE IF NOT EXISTS sync_results(id INTEGER PRIMARY KEY,"
        " client_id INTEGER NOT NULL, mutation_id TEXT NOT NULL,"
        " conflict INTEGER NOT NULL, rev INTEGER NOT NULL, seq INTEGER NOT NULL,"
        " key INTEGER, deleted INTEGER NOT NULL, value TEXT, ts_ms INTEGER NOT NULL,"
        " UNIQUE(client_id, mutation_id));"
        /* Before sync_results, the answers as the endpoint sent them
         * (compact JSON). Data directories made then may hold some for
         * SYNC_MUTATION_RETENTION_DAYS; they are read (Q_RESULT_GET_OLD)
         * and pruned, never written. */
        "CREATE TABLE IF NOT EXISTS sync_mutations(id INTEGER PRIMARY KEY,"
        " client_id INTEGER NOT NULL, mutation_id TEXT NOT NULL, result TEXT NOT NULL,"
        " ts_ms INTEGER NOT NULL, UNIQUE(client_id, mutation_id));";

enum sync_stmt {
	Q_PIPELINE_INSERT,
	Q_PIPELINE_LIST,
	Q_PIPELINE_BY_TOKEN,
	Q_CLIENT_BY_TOKEN,
	Q_CLIENT_NAME,
	Q_RESULT_GET,
	Q_RESULT_PUT,
	Q_RESULT_PRUNE,
	Q_RESULT_OLD_ANY,
	Q_RESULT_GET_OLD,
	Q_RESULT_PRUNE_OLD,
	Q_RECORD_VALUE,
	Q_DB_VERSION,
	Q_DB_SET_VERSION,
	Q_DB_STORES,
	Q_STORE_SET_SHAPE,
	Q_STORE_SET_INDEXES,
	Q_STORE_COUNT_LIVE,
	Q_STORE_NEXT_KEY,
	Q_STORE_SET_NEXT_KEY,
	Q_CLIENT_LAST_SEQ,
	Q_PULL,
	Q_CHANGED_CLIENTS,
	Q_COUNT
};

static const char *const sync_sql[Q_COUNT] = {
        [Q_PIPELINE_INSERT] = "INSERT INTO sync_pipelines(name, token_hash, created_ms) "
                              "VALUES (?1, ?2, ?3)",
        [Q_PIPELINE_LIST] = "SELECT name FROM sync_pipelines ORDER BY id",
        [Q_PIPELINE_BY_TOKEN] = "SELECT id FROM sync_pipelines WHERE token_hash = ?1",
        [Q_CLIENT_BY_TOKEN] = "SELECT id FROM clients WHERE token_hash = ?1",
        [Q_CLIENT_NAME] = "SELECT name FROM clients WHERE id = ?1",
        [Q_RESULT_GET] = "SELECT conflict, rev, seq, key, deleted, value FROM sync_results "
                         "WHERE client_id = ?1 AND mutation_id = ?2",
        [Q_RESULT_PUT] = "INSERT INTO sync_results(client_id, mutation_id, conflict, rev, seq, "
                         "key, deleted, value, ts_ms) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
        [Q_RESULT_PRUNE] = "DELETE FROM sync_results WHERE id IN (SELECT id FROM "
                           "sync_results ORDER BY id LIMIT 1000) AND ts_ms < ?1",
        [Q_RESULT_OLD_ANY] = "SELECT EXISTS (SELECT 1 FROM sync_mutations)",
        /* The columns of Q_RESULT_GET, read out of an answer's JSON text
         * ({id, status:"ok", rev, seq[, key]} or {id, status:"conflict",
         * current:{rev, value, deleted}}); `->` keeps the value's text as
         * it was written (numbers past 64 bits too). */
        [Q_RESULT_GET_OLD] = "SELECT result ->> '$.status' = 'conflict', "
                             "coalesce(result ->> '$.rev', result ->> '$.current.rev', 0), "
                             "coalesce(result ->> '$.seq', 0), result ->> '$.key', "
                             "coalesce(result ->> '$.current.deleted', 0), "
                             "result -> '$.current.value' FROM sync_mutations "
                             "WHERE client_id = ?1 AND mutation_id = ?2",
        [Q_RESULT_PRUNE_OLD] = "DELETE FROM sync_mutations WHERE id IN (SELECT id FROM "
                               "sync_mutations ORDER BY id LIMIT 1000) AND ts_ms < ?1",
        /* A live record's value is its last change's (the change log is
         * never cut), compact: no need to read and parse its file. */
        [Q_RECORD_VALUE] = "SELECT value FROM changes WHERE seq = ?1 AND op = 0",
        [Q_DB_VERSION] = "SELECT version FROM dbs WHERE id = ?1",
        [Q_DB_SET_VERSION] = "UPDATE dbs SET version = ?2 WHERE id = ?1",
        [Q_DB_STORES] = "SELECT name, keypath, auto_increment, indexes FROM stores "
                        "WHERE db_id = ?1 AND dropped = 0 ORDER BY name",
        [Q_STORE_SET_SHAPE] = "UPDATE stores SET keypath = ?2, auto_increment = ?3 WHERE id = ?1",
        [Q_STORE_SET_INDEXES] = "UPDATE stores SET indexes = ?2 WHERE id = ?1",
        [Q_STORE_COUNT_LIVE] = "SELECT count(*) FROM records WHERE store_id = ?1 AND state <= 1 "
                               "AND state = 0",
        [Q_STORE_NEXT_KEY] = "SELECT next_key FROM stores WHERE id = ?1",
        [Q_STORE_SET_NEXT_KEY] = "UPDATE stores SET next_key = ?2 WHERE id = ?1",
        [Q_CLIENT_LAST_SEQ] = "SELECT coalesce(max(seq), 0) FROM changes WHERE client_id = ?1",
        /* ?4 = 1: a snapshot, puts only. */
        [Q_PULL] = "SELECT c.seq, c.ts_ms, d.name, s.name, c.key, c.op, c.rev, c.origin, "
                   "c.value, c.name, c.store_id FROM changes c "
                   "JOIN stores s ON s.id = c.store_id JOIN dbs d ON d.id = s.db_id "
                   "WHERE c.client_id = ?1 AND c.seq > ?2 AND c.seq <= ?3 "
                   "AND (?4 = 0 OR c.op = 0) "
                   "AND c.seq = (SELECT r.seq FROM records r WHERE r.store_id = c.store_id "
                   "AND r.name = c.name) ORDER BY c.seq LIMIT ?5",
        /* NOT INDEXED: by the seq range (a few new rows), not a scan of all
         * of changes_by_client, which the planner picks otherwise and which
         * made every commit cost a pass over the whole change log. */
        [Q_CHANGED_CLIENTS] = "SELECT client_id, max(seq) FROM changes NOT INDEXED "
                              "WHERE seq > ?1 GROUP BY client_id",
};

static sqlite3_stmt *sync_stmt(struct store *st, enum sync_stmt id)
{
	return store_stmt(st, STORE_SLOTS_SYNC + (int)id, sync_sql[id]);
}

/* ---- tokens --------------------------------------------------------------- */

static int64_t id_by_hash(struct store *st, enum sync_stmt q, const char *hash)
{
	sqlite3_stmt *s = sync_stmt(st, q);
	if (!s)
		return -EIO;
	store_bind_text(s, 1, hash);
	int64_t id = 0;
	int rc = store_step_int(st, s, &id);
	return rc ? rc : id;
}

int store_sync_auth(struct store *st, const char *token, struct store_principal *out)
{
	memset(out, 0, sizeof(*out));
	char hash[65];
	store_token_hash(token, hash);
	int64_t id = id_by_hash(st, Q_CLIENT_BY_TOKEN, hash);
	if (id > 0) {
		out->kind = PRINCIPAL_CLIENT;
		out->id = id;
		return 0;
	}
	if (id < 0)
		return (int)id;
	id = id_by_hash(st, Q_PIPELINE_BY_TOKEN, hash);
	if (id > 0) {
		out->kind = PRINCIPAL_PIPELINE;
		out->id = id;
		return 0;
	}
	return id < 0 ? (int)id : -EACCES;
}

int store_sync_client_name(struct store *st, int64_t client_id, char **name)
{
	*name = NULL;
	sqlite3_stmt *s = sync_stmt(st, Q_CLIENT_NAME);
	if (!s)
		return -EIO;
	sqlite3_bind_int64(s, 1, client_id);
	int rc = sqlite3_step(s);
	int res = -ENOENT;
	if (rc == SQLITE_ROW) {
		*name = store_col_strdup(s, 0);
		res = *name ? 0 : -ENOMEM;
	} else if (rc != SQLITE_DONE) {
		res = store_sql_fail(st, rc);
	}
	sqlite3_reset(s);
	return res;
}

int store_pipeline_add(struct store *st, const char *name, char token[65])
{
	store_set_error(st, "%s", "");
	const char *why = store_pipeline_name_problem(name);
	if (why) {
		store_set_error(st, "not a pipeline name: %s", why);
		return -EINVAL;
	}
	int rc = store_token_new(token);
	if (rc)
		return rc;
	char hash[65];
	store_token_hash(token, hash);
	sqlite3_stmt *s = sync_stmt(st, Q_PIPELINE_INSERT);
	if (!s)
		return -EIO;
	store_bind_text(s, 1, name);
	store_bind_text(s, 2, hash);
	sqlite3_bind_int64(s, 3, store_now_ns() / 1000000);
	rc = store_step_done(st, s);
	if (rc == -EEXIST)
		store_set_error(st, "a pipeline named '%s' exists already", name);
	return rc;
}

int store_pipeline_list(struct store *st, store_name_fn fn, void *ctx)
{
	sqlite3_stmt *s = sync_stmt(st, Q_PIPELINE_LIST);
	if (!s)
		return -EIO;
	int rc;
	while ((rc = sqlite3_step(s)) == SQLITE_ROW)
		if (fn(ctx, (const char *)sqlite3_column_text(s, 0)))
			break;
	int res = rc == SQLITE_ROW || rc == SQLITE_DONE ? 0 : store_sql_fail(st, rc);
	sqlite3_reset(s);
	return res;
}

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

static int step_int_stmt(struct store *st, enum sync_stmt q, int64_t a, int64_t *out)
{
	sqlite3_stmt *s = sync_stmt(st, q);
	if (!s)
		return -EIO;
	sqlite3_bind_int64(s, 1, a);
	return store_step_int(st, s, out);
}

/* Brings one object store in line with the browser's description. */
static int schema_store(struct store *st, int64_t db_id, size_t index, const json_t *desc)
{
	const json_t *name = json_object_get(desc, "name");
	const json_t *kp = json_object_get(desc, "keyPath");
	const json_t *ai = json_object_get(desc, "autoIncrement");
	const json_t *ixs = json_object_get(desc, "indexes");
	if (!json_is_object(desc) || !json_is_string(name) || json_string_length(name) == 0) {
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
		rc = store_objstore_resolve(st, db_id, sname, kp_text, autoinc, true,
		                            ORIGIN_BROWSER, &store_id);
	char *have_kp = NULL;
	bool have_ai = false;
	if (!rc)
		rc = store_keypath_of(st, store_id, &have_kp, &have_ai);
	if (!rc && (strcmp(have_kp, kp_text) != 0 || have_ai != autoinc)) {
		int64_t live = 0;
		rc = step_int_stmt(st, Q_STORE_COUNT_LIVE, store_id, &live);
		if (!rc && live > 0) {
			store_set_error(
			        st,
			        "store '%s' holds records under keyPath %s%s; its keyPath or "
			        "autoIncrement cannot change while it has records",
			        sname, have_kp, have_ai ? " with autoIncrement" : "");
			rc = -EEXIST;
		}
		sqlite3_stmt *s = rc ? NULL : sync_stmt(st, Q_STORE_SET_SHAPE);
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
		sqlite3_stmt *s = sync_stmt(st, Q_STORE_SET_INDEXES);
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
	int rc = step_int_stmt(st, Q_DB_VERSION, db_id, &version);
	sqlite3_stmt *s = rc ? NULL : sync_stmt(st, Q_DB_STORES);
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
	if (!json_is_object(request) || !json_is_string(db) || json_string_length(db) == 0) {
		store_set_error(st, "want {db, version, stores:[...]} with a non-empty db name");
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
		rc = step_int_stmt(st, Q_DB_VERSION, db_id, &before);
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
		sqlite3_stmt *s = sync_stmt(st, Q_DB_SET_VERSION);
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

/* ---- push ------------------------------------------------------------------ */

/* A (db, store) of this push, resolved once. */
struct target {
	char *db;
	char *store;
	int64_t store_id;
	char *keypath;
	bool autoincrement;
};

/* A push of at least this many mutations is parsed and prepared ahead on a
 * second thread (push_ahead) while this one writes: on two CPUs the JSON
 * work and the SQL work overlap. A small push is done in line. */
#define PUSH_AHEAD_MIN 16

enum slot_state { SLOT_FREE, SLOT_TAKEN, SLOT_READY };

/* One mutation, parsed and, when it can be done without SQL, prepared. */
struct slot {
	atomic_int state;
	json_t *m;      /* the parsed mutation but its value, NULL when it does not parse */
	bool has_value; /* whether it has a "value" member */
	json_t *value;  /* the value, parsed: NULL when laid out straight from its text */
	char why[200];  /* why it does not parse */
	bool prepped;
	struct store_put_prep prep; /* for a put with a key, when prepped */
};

struct push {
	struct store *st;
	int64_t client_id;
	int64_t now_ms;
	const struct json_span *texts;
	size_t count;
	struct slot *slots;
	/* targets grows on this thread and is read by push_ahead. */
	pthread_mutex_t targets_lock;
	struct target *targets;
	size_t ntargets, cap;
	atomic_size_t next;         /* push_ahead's next slot, from the front */
	pthread_mutex_t ready_lock; /* with `ready`: push_ahead filled a slot */
	pthread_cond_t ready;
	size_t back; /* the writer's next slot to fill, from the back */
	atomic_bool stop;
	struct store_push_outcome *outcome;
	store_push_result_fn result_fn;
	void *result_ctx;
	struct buf value; /* the value of the result being handed over */
	bool old_results; /* sync_mutations holds rows (Q_RESULT_GET_OLD) */
};

static void slot_clear(struct slot *sl)
{
	json_decref(sl->m);
	sl->m = NULL;
	json_decref(sl->value);
	sl->value = NULL;
	if (sl->prepped)
		store_put_prep_free(&sl->prep);
	sl->prepped = false;
}

static void push_free(struct push *p)
{
	for (size_t i = 0; p->slots && i < p->count; i++)
		slot_clear(&p->slots[i]);
	free(p->slots);
	for (size_t i = 0; i < p->ntargets; i++) {
		free(p->targets[i].db);
		free(p->targets[i].store);
		free(p->targets[i].keypath);
	}
	free(p->targets);
	pthread_mutex_destroy(&p->targets_lock);
	pthread_mutex_destroy(&p->ready_lock);
	pthread_cond_destroy(&p->ready);
}

/* The key path of a target already resolved, or NULL: for push_ahead,
 * which cannot resolve one (that takes SQL). The text lives until the
 * push ends. */
static const char *resolved_keypath(struct push *p, const char *db, const char *store)
{
	const char *keypath = NULL;
	pthread_mutex_lock(&p->targets_lock);
	for (size_t i = 0; i < p->ntargets && !keypath; i++)
		if (strcmp(p->targets[i].db, db) == 0 && strcmp(p->targets[i].store, store) == 0)
			keypath = p->targets[i].keypath;
	pthread_mutex_unlock(&p->targets_lock);
	return keypath;
}

int store_sync_mutation_parse(struct json_span t, json_t **m, struct json_span *value)
{
	struct json_member *members = NULL;
	size_t n = 0;
	*m = NULL;
	*value = (struct json_span){NULL, 0};
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
			if (value->text && !(v = json_text_parse(value->text, value->len, NULL, 0)))
				rc = -EINVAL;
			json_decref(v);
			*value = members[k].value;
		} else {
			v = json_text_parse(members[k].value.text, members[k].value.len, NULL, 0);
			rc = v && json_object_setn_new(obj, s, len, v) == 0 ? 0 : -EINVAL;
		}
		json_decref(name);
	}
	free(members);
	if (rc) {
		json_decref(obj);
		*value = (struct json_span){NULL, 0};
		return rc;
	}
	*m = obj;
	return 0;
}

/* Parses mutation `i` whole, as jansson does: for a text that does not
 * split into members that parse, so that the error says where. */
static void parse_whole(struct push *p, size_t i)
{
	struct slot *sl = &p->slots[i];
	json_decref(sl->m);
	json_decref(sl->value);
	sl->m = json_text_parse(p->texts[i].text, p->texts[i].len, sl->why, sizeof(sl->why));
	sl->value = json_incref(json_object_get(sl->m, "value"));
	sl->has_value = sl->value != NULL;
}

/* Parses mutation `i` and, for a put with a key into a store whose key
 * path is known, prepares the write (key encoding, the value's file text
 * and compact form): from the value's text when json_text_pretty_text is
 * sure of it, else from the parsed value. Anything wrong is left for
 * push_one to find and report in order. */
static void fill_slot(struct push *p, size_t i)
{
	struct slot *sl = &p->slots[i];
	struct json_span value_text;
	if (store_sync_mutation_parse(p->texts[i], &sl->m, &value_text) != 0) {
		parse_whole(p, i);
	} else {
		sl->has_value = value_text.text != NULL;
	}
	if (!json_is_object(sl->m))
		return;
	const char *op = json_string_value(json_object_get(sl->m, "op"));
	const char *db = json_string_value(json_object_get(sl->m, "db"));
	const char *store = json_string_value(json_object_get(sl->m, "store"));
	const json_t *key = json_object_get(sl->m, "key");
	bool put_with_key = op && strcmp(op, "put") == 0 && db && store && key &&
	                    !json_is_null(key) && sl->has_value;
	const char *keypath = put_with_key ? resolved_keypath(p, db, store) : NULL;
	if (keypath && value_text.text) {
		if (store_put_prepare_text(p->st->max_record, keypath, key, value_text,
		                           &sl->prep) == 0) {
			sl->prepped = true;
			return;
		}
		store_put_prep_free(&sl->prep);
	}
	if (value_text.text) {
		sl->value = json_text_parse(value_text.text, value_text.len, NULL, 0);
		if (!sl->value) {
			parse_whole(p, i);
			if (!json_is_object(sl->m))
				return;
		}
	}
	if (keypath) {
		store_put_prepare(p->st->max_record, keypath, key, sl->value, &sl->prep);
		sl->prepped = true;
	}
}

/* Fills slot `i` if no thread has taken it yet, and says it is ready to
 * a writer that may sleep on it. Returns whether this thread filled it. */
static bool fill_if_free(struct push *p, size_t i)
{
	struct slot *sl = &p->slots[i];
	int free_state = SLOT_FREE;
	if (!atomic_compare_exchange_strong(&sl->state, &free_state, SLOT_TAKEN))
		return false;
	fill_slot(p, i);
	pthread_mutex_lock(&p->ready_lock);
	atomic_store(&sl->state, SLOT_READY);
	pthread_cond_signal(&p->ready);
	pthread_mutex_unlock(&p->ready_lock);
	return true;
}

/* The second thread: fills slots ahead of the writer. */
static void *push_ahead(void *arg)
{
	struct push *p = arg;
	while (!atomic_load(&p->stop)) {
		size_t i = atomic_fetch_add(&p->next, 1);
		if (i >= p->count)
			break;
		fill_if_free(p, i);
	}
	return NULL;
}

/* Slot `i`, filled: by this thread if push_ahead has not taken it yet. */
static struct slot *take_slot(struct push *p, size_t i)
{
	struct slot *sl = &p->slots[i];
	fill_if_free(p, i);
	while (atomic_load(&sl->state) != SLOT_READY) {
		/* push_ahead is on it: rather than wait, fill one from the far
		 * end (parsing is the larger half of the work). */
		bool filled = false;
		while (!filled && p->back > i + 1)
			filled = fill_if_free(p, --p->back);
		if (!filled) {
			/* Nothing left to fill: sleep until push_ahead has done
			 * a slot, rather than spin (on a busy machine it may be
			 * waiting for a CPU this thread would be burning). */
			pthread_mutex_lock(&p->ready_lock);
			while (atomic_load(&sl->state) != SLOT_READY)
				pthread_cond_wait(&p->ready, &p->ready_lock);
			pthread_mutex_unlock(&p->ready_lock);
		}
	}
	return sl;
}

/* Finds or resolves the target of a mutation. -ENOENT for a database or
 * store this client does not have. */
static int push_target(struct push *p, const char *db, const char *store, struct target **out)
{
	for (size_t i = 0; i < p->ntargets; i++) {
		if (strcmp(p->targets[i].db, db) == 0 && strcmp(p->targets[i].store, store) == 0) {
			*out = &p->targets[i];
			return 0;
		}
	}
	struct target t = {0};
	int64_t db_id = 0;
	int rc = store_db_resolve(p->st, p->client_id, db, false, ORIGIN_BROWSER, &db_id);
	if (!rc)
		rc = store_objstore_resolve(p->st, db_id, store, "null", false, false,
		                            ORIGIN_BROWSER, &t.store_id);
	if (rc == -ENOENT) {
		store_set_error(p->st, "no store '%s' in database '%s' (POST /v1/schema first)",
		                store, db);
		return rc;
	}
	if (!rc)
		rc = store_keypath_of(p->st, t.store_id, &t.keypath, &t.autoincrement);
	if (rc)
		return rc;
	t.db = strdup(db);
	t.store = strdup(store);
	pthread_mutex_lock(&p->targets_lock);
	if (t.db && t.store && p->ntargets == p->cap) {
		size_t cap = p->cap ? p->cap * 2 : 8;
		struct target *grown = realloc(p->targets, cap * sizeof(*grown));
		if (grown) {
			p->targets = grown;
			p->cap = cap;
		}
	}
	if (t.db && t.store && p->ntargets < p->cap) {
		p->targets[p->ntargets] = t;
		*out = &p->targets[p->ntargets++];
	} else {
		rc = -ENOMEM;
	}
	pthread_mutex_unlock(&p->targets_lock);
	if (rc) {
		free(t.db);
		free(t.store);
		free(t.keypath);
	}
	return rc;
}

/* Copies `len` bytes of a column into p->value, where res->value then
 * points (until the next mutation). */
static int value_copy(struct push *p, sqlite3_stmt *s, int col, struct store_push_result *res)
{
	buf_reset(&p->value);
	int rc = buf_append(&p->value, sqlite3_column_text(s, col),
	                    (size_t)sqlite3_column_bytes(s, col));
	res->value = p->value.data;
	res->value_len = p->value.len;
	return rc;
}

/* Reads a row of Q_RESULT_GET or Q_RESULT_GET_OLD into `res`. */
static int result_of_row(struct push *p, sqlite3_stmt *s, struct store_push_result *res)
{
	res->status = sqlite3_column_int(s, 0) ? STORE_PUSH_CONFLICT : STORE_PUSH_OK;
	res->rev = sqlite3_column_int64(s, 1);
	res->seq = sqlite3_column_int64(s, 2);
	res->has_key = sqlite3_column_type(s, 3) != SQLITE_NULL;
	res->key = sqlite3_column_int64(s, 3);
	res->deleted = sqlite3_column_int(s, 4) != 0;
	res->replayed = true;
	if (sqlite3_column_type(s, 5) == SQLITE_NULL)
		return 0;
	return value_copy(p, s, 5, res);
}

/* Looks up the result remembered for mutation `id` in `q`; *found says
 * whether there is one. */
static int recall_in(struct push *p, enum sync_stmt q, const char *id,
                     struct store_push_result *res, bool *found)
{
	sqlite3_stmt *s = sync_stmt(p->st, q);
	if (!s)
		return -EIO;
	sqlite3_bind_int64(s, 1, p->client_id);
	store_bind_text(s, 2, id);
	int rc = sqlite3_step(s);
	int out = 0;
	*found = rc == SQLITE_ROW;
	if (rc == SQLITE_ROW)
		out = result_of_row(p, s, res);
	else if (rc != SQLITE_DONE)
		out = store_sql_fail(p->st, rc);
	sqlite3_reset(s);
	return out;
}

/* Fills `res` with the result remembered for mutation `id`, if there is
 * one: *found says so. */
static int recall(struct push *p, const char *id, struct store_push_result *res, bool *found)
{
	int rc = recall_in(p, Q_RESULT_GET, id, res, found);
	if (!rc && !*found && p->old_results)
		rc = recall_in(p, Q_RESULT_GET_OLD, id, res, found);
	if (!rc && *found)
		p->outcome->replayed++;
	return rc;
}

/* Remembers result `res` of mutation `id`. */
static int remember(struct push *p, const char *id, const struct store_push_result *res)
{
	sqlite3_stmt *s = sync_stmt(p->st, Q_RESULT_PUT);
	if (!s)
		return -EIO;
	sqlite3_bind_int64(s, 1, p->client_id);
	store_bind_text(s, 2, id);
	sqlite3_bind_int(s, 3, res->status == STORE_PUSH_CONFLICT);
	sqlite3_bind_int64(s, 4, res->rev);
	sqlite3_bind_int64(s, 5, res->seq);
	if (res->has_key)
		sqlite3_bind_int64(s, 6, res->key);
	sqlite3_bind_int(s, 7, res->deleted);
	if (res->value)
		sqlite3_bind_text(s, 8, res->value, (int)res->value_len, SQLITE_STATIC);
	sqlite3_bind_int64(s, 9, p->now_ms);
	return store_step_done(p->st, s);
}

/* Drops the results remembered longer than SYNC_MUTATION_RETENTION_DAYS,
 * the oldest thousand at most (a push at a time keeps up). */
static int forget_old(struct push *p)
{
	int64_t before = p->now_ms - (int64_t)SYNC_MUTATION_RETENTION_DAYS * 86400000;
	int rc = 0;
	for (int old = 0; old < 2 && !rc; old++) {
		if (old && !p->old_results)
			break;
		sqlite3_stmt *s = sync_stmt(p->st, old ? Q_RESULT_PRUNE_OLD : Q_RESULT_PRUNE);
		rc = s ? 0 : -EIO;
		if (!rc) {
			sqlite3_bind_int64(s, 1, before);
			rc = store_step_done(p->st, s);
		}
	}
	return rc;
}

/* Moves the store's key generator past number key `key` (IndexedDB:
 * an explicit number key >= the generator sets it to floor(key) + 1). */
static int advance_generator(struct push *p, struct target *t, const json_t *key)
{
	if (!t->autoincrement || !json_is_number(key))
		return 0;
	double k = json_number_value(key);
	int64_t next = 0;
	int rc = step_int_stmt(p->st, Q_STORE_NEXT_KEY, t->store_id, &next);
	if (rc || !(k >= (double)next))
		return rc;
	double want = floor(k) + 1;
	next = want > 9007199254740992.0 ? INT64_MAX : (int64_t)want;
	sqlite3_stmt *s = sync_stmt(p->st, Q_STORE_SET_NEXT_KEY);
	if (!s)
		return -EIO;
	sqlite3_bind_int64(s, 1, t->store_id);
	sqlite3_bind_int64(s, 2, next);
	return store_step_done(p->st, s);
}

/* Makes the next key of an autoIncrement store, stepping over numbers a
 * live record already holds. */
static int generate_key(struct push *p, struct target *t, json_t **key)
{
	int64_t next = 1;
	int rc = step_int_stmt(p->st, Q_STORE_NEXT_KEY, t->store_id, &next);
	while (!rc) {
		if (next > 9007199254740992LL) {
			store_set_error(p->st, "the key generator of store '%s' is exhausted",
			                t->store);
			return -EINVAL;
		}
		json_t *k = json_integer(next);
		struct store_record_state now;
		rc = store_record_state(p->st, t->store_id, k, &now);
		if (!rc && !now.live) {
			*key = k;
			return advance_generator(p, t, k);
		}
		json_decref(k);
		next++;
	}
	return rc;
}

/* Checks the shape of mutation `m` (number `i`). */
static int mutation_shape(struct push *p, size_t i, const json_t *m, bool has_value,
                          const char **id, bool *put)
{
	const json_t *jid = json_object_get(m, "id");
	const json_t *db = json_object_get(m, "db");
	const json_t *store = json_object_get(m, "store");
	const json_t *op = json_object_get(m, "op");
	const json_t *base = json_object_get(m, "base");
	const char *why = NULL;
	if (!json_is_object(m))
		why = "a mutation is an object {id, db, store, key, op, value, base}";
	else if (!json_is_string(jid) || json_string_length(jid) == 0 ||
	         json_string_length(jid) > SYNC_MUTATION_ID_MAX)
		why = "id is a non-empty string of at most 256 bytes";
	else if (!json_text_c_string(jid))
		why = "id holds U+0000 (it would be taken for the id cut there)";
	else if (!json_is_string(db) || !json_is_string(store))
		why = "db and store are strings";
	else if (!json_text_c_string(db) || !json_text_c_string(store))
		why = "db or store holds U+0000, which a name cannot hold";
	else if (!json_text_c_string(op) || (strcmp(json_string_value(op), "put") != 0 &&
	                                     strcmp(json_string_value(op), "delete") != 0))
		why = "op is \"put\" or \"delete\"";
	else if (base && !json_is_null(base) &&
	         !(json_is_integer(base) && json_integer_value(base) >= 0))
		why = "base is null or a revision number";
	else if (strcmp(json_string_value(op), "put") == 0 && !has_value)
		why = "a put needs a value";
	else if (strcmp(json_string_value(op), "delete") == 0 &&
	         json_is_null(json_object_get(m, "key")))
		why = "a delete needs a key";
	if (why) {
		if (json_is_string(jid))
			store_set_error(p->st, "mutation %zu (id %.64s): %s", i,
			                json_string_value(jid), why);
		else
			store_set_error(p->st, "mutation %zu: %s", i, why);
		return -EINVAL;
	}
	*id = json_string_value(jid);
	*put = strcmp(json_string_value(op), "put") == 0;
	return 0;
}

/* Whether the record's state is what `base` (the mutation's member, or
 * NULL when absent) says the browser saw: the write may go on. */
static bool base_agrees(void *ctx, const struct store_record_state *now)
{
	const json_t *base = ctx;
	if (!base)
		return true;
	if (json_is_null(base))
		return !now->live;
	return json_integer_value(base) == (now->exists ? now->rev : 0);
}

/* The result of a mutation whose base disagrees: the record as it is. */
static int conflict_result(struct push *p, const struct store_record_state *now,
                           struct store_push_result *res)
{
	res->status = STORE_PUSH_CONFLICT;
	res->rev = now->exists ? now->rev : 0;
	res->deleted = !now->live;
	p->outcome->conflicts++;
	if (!now->live)
		return 0;
	sqlite3_stmt *s = sync_stmt(p->st, Q_RECORD_VALUE);
	if (!s)
		return -EIO;
	sqlite3_bind_int64(s, 1, now->seq);
	int rc = sqlite3_step(s);
	int out = 0;
	if (rc == SQLITE_ROW && sqlite3_column_type(s, 0) != SQLITE_NULL)
		out = value_copy(p, s, 0, res);
	else if (rc != SQLITE_ROW && rc != SQLITE_DONE)
		out = store_sql_fail(p->st, rc);
	sqlite3_reset(s);
	return out;
}

/* The result of a mutation that was applied. */
static void ok_result(struct push *p, int64_t rev, int64_t seq, const json_t *generated_key,
                      struct store_push_result *res)
{
	res->status = STORE_PUSH_OK;
	res->rev = rev;
	res->seq = seq;
	res->has_key = generated_key != NULL;
	res->key = generated_key ? (int64_t)json_integer_value(generated_key) : 0;
	p->outcome->ok++;
	if (seq > p->outcome->last_seq)
		p->outcome->last_seq = seq;
}

/* Applies mutation number `i` and fills its result. */
static int push_one(struct push *p, size_t i)
{
	struct slot *sl = take_slot(p, i);
	const json_t *m = sl->m;
	if (!m) {
		store_set_error(p->st, "malformed JSON: mutation %zu: %s", i, sl->why);
		p->outcome->malformed = true;
		p->outcome->malformed_index = i;
		snprintf(p->outcome->malformed_why, sizeof(p->outcome->malformed_why), "%s",
		         sl->why);
		return -EINVAL;
	}
	const char *id = NULL;
	bool put = false;
	int rc = mutation_shape(p, i, m, sl->has_value, &id, &put);
	if (rc)
		return rc;
	struct store_push_result res = {.id = id, .id_len = strlen(id)};
	bool known = false;
	rc = recall(p, id, &res, &known);
	if (!rc && known)
		rc = p->result_fn(p->result_ctx, i, &res);
	if (rc || known)
		return rc;
	struct target *t = NULL;
	rc = push_target(p, json_string_value(json_object_get(m, "db")),
	                 json_string_value(json_object_get(m, "store")), &t);
	const json_t *given = json_object_get(m, "key");
	json_t *key = NULL;
	const json_t *value = sl->value; /* NULL when prepared from its text */
	bool generated = false;
	if (!rc && (!given || json_is_null(given))) {
		bool inline_keys = strcmp(t->keypath, "null") != 0;
		if (inline_keys && store_keypath_extract(p->st, t->keypath, value, &key) == 0) {
			/* the key is in the value */
		} else if (t->autoincrement) {
			rc = generate_key(p, t, &key);
			generated = rc == 0;
		} else {
			if (!inline_keys)
				store_set_error(
				        p->st,
				        "store '%s' has out-of-line keys and no key generator: "
				        "the mutation needs a key",
				        t->store);
			rc = -EINVAL;
		}
	} else if (!rc) {
		key = json_incref((json_t *)given);
	}
	struct store_record_state now = {0};
	json_t *base = json_object_get(m, "base");
	int64_t rev = 0, seq = 0;
	if (!rc && put && sl->prepped) {
		/* push_ahead did the key and the value (the key was given). */
		rc = store_record_put_prepared(p->st, t->store_id, &sl->prep, value, ORIGIN_BROWSER,
		                               base_agrees, base, &now, &rev, &seq);
		if (!rc)
			rc = advance_generator(p, t, key);
	} else if (!rc && put) {
		rc = store_record_put(p->st, t->store_id, t->keypath, key, value, ORIGIN_BROWSER,
		                      base_agrees, base, &now, &rev, &seq);
		if (!rc && !generated)
			rc = advance_generator(p, t, key);
	} else if (!rc) {
		rc = store_record_delete(p->st, t->store_id, key, ORIGIN_BROWSER, base_agrees, base,
		                         &now, &rev, &seq);
	}
	if (rc == STORE_REFUSED)
		rc = conflict_result(p, &now, &res);
	else if (!rc)
		ok_result(p, rev, seq, generated ? key : NULL, &res);
	json_decref(key);
	if (!rc)
		rc = remember(p, id, &res);
	if (!rc) {
		rc = p->result_fn(p->result_ctx, i, &res);
		if (rc)
			return rc; /* the callback's reason, not the store's */
	}
	if (rc) {
		/* Name the mutation in the reason. */
		char reason[sizeof(((struct store *)0)->err)];
		snprintf(reason, sizeof(reason), "%s", store_last_error(p->st));
		store_set_error(p->st, "mutation %zu (id %.64s): %s", i, id,
		                reason[0] ? reason : strerror(-rc));
	}
	return rc;
}

int store_sync_push(struct store *st, int64_t client_id, const struct json_span *mutations,
                    size_t count, store_push_result_fn fn, void *ctx,
                    struct store_push_outcome *outcome)
{
	store_set_error(st, "%s", "");
	memset(outcome, 0, sizeof(*outcome));
	struct push p = {.st = st,
	                 .client_id = client_id,
	                 .now_ms = store_now_ns() / 1000000,
	                 .texts = mutations,
	                 .count = count,
	                 .back = count,
	                 .outcome = outcome,
	                 .result_fn = fn,
	                 .result_ctx = ctx,
	                 /* a record's compact form (prepared_value) */
	                 .value = BUF_INIT(st->max_record * 2 + 64)};
	pthread_mutex_init(&p.targets_lock, NULL);
	pthread_mutex_init(&p.ready_lock, NULL);
	pthread_cond_init(&p.ready, NULL);
	p.slots = calloc(count ? count : 1, sizeof(*p.slots));
	int rc = p.slots ? 0 : -ENOMEM;
	/* Started before the transaction: while this thread waits for the
	 * write lock (another push writing), the next mutations get parsed. */
	pthread_t ahead;
	bool ahead_runs =
	        !rc && count >= PUSH_AHEAD_MIN && pthread_create(&ahead, NULL, push_ahead, &p) == 0;
	if (!rc)
		rc = store_txn_begin(st);
	bool in_txn = !rc;
	if (!rc) {
		sqlite3_stmt *s = sync_stmt(st, Q_RESULT_OLD_ANY);
		int64_t any = 0;
		rc = s ? store_step_int(st, s, &any) : -EIO;
		p.old_results = any != 0;
	}
	for (size_t i = 0; i < count && !rc; i++)
		rc = push_one(&p, i);
	atomic_store(&p.stop, true);
	if (ahead_runs)
		pthread_join(ahead, NULL);
	/* The slots are freed only now, by push_free, once push_ahead has
	 * ended: freeing its allocations while it allocates made both threads
	 * fight over its malloc arena (twice the CPU time, and slower). */
	if (!rc)
		rc = forget_old(&p);
	if (in_txn)
		rc = store_txn_end(st, rc);
	push_free(&p);
	buf_free(&p.value);
	if (rc) {
		struct store_push_outcome failed = *outcome;
		memset(outcome, 0, sizeof(*outcome));
		outcome->malformed = failed.malformed;
		outcome->malformed_index = failed.malformed_index;
		memcpy(outcome->malformed_why, failed.malformed_why, sizeof(failed.malformed_why));
	}
	return rc;
}

/* ---- pull and events --------------------------------------------------------- */

int64_t store_sync_client_last_seq(struct store *st, int64_t client_id)
{
	int64_t seq = 0;
	int rc = step_int_stmt(st, Q_CLIENT_LAST_SEQ, client_id, &seq);
	return rc ? rc : seq;
}

int store_sync_pull(struct store *st, int64_t client_id, int64_t since, int64_t limit,
                    store_change_fn fn, void *ctx, int64_t *checkpoint, bool *more)
{
	*more = false;
	*checkpoint = since;
	/* The end is fixed first, so a change committed during the query is
	 * left for the next pull rather than skipped. */
	int64_t high = store_sync_client_last_seq(st, client_id);
	if (high < 0)
		return (int)high;
	sqlite3_stmt *s = sync_stmt(st, Q_PULL);
	if (!s)
		return -EIO;
	sqlite3_bind_int64(s, 1, client_id);
	sqlite3_bind_int64(s, 2, since);
	sqlite3_bind_int64(s, 3, high);
	sqlite3_bind_int(s, 4, since == 0);
	sqlite3_bind_int64(s, 5, limit + 1);
	int64_t n = 0, last = since;
	int rc;
	bool stopped = false;
	while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
		if (n == limit) {
			*more = true;
			break;
		}
		struct store_change c = {
		        .seq = sqlite3_column_int64(s, 0),
		        .ts_ms = sqlite3_column_int64(s, 1),
		        .db = (const char *)sqlite3_column_text(s, 2),
		        .store = (const char *)sqlite3_column_text(s, 3),
		        .key = (const char *)sqlite3_column_text(s, 4),
		        .deleted = sqlite3_column_int(s, 5) != 0,
		        .rev = sqlite3_column_int64(s, 6),
		        .origin = (enum store_origin)sqlite3_column_int(s, 7),
		        .value = (const char *)sqlite3_column_text(s, 8),
		        .name = (const char *)sqlite3_column_text(s, 9),
		        .store_id = sqlite3_column_int64(s, 10),
		};
		n++;
		last = c.seq;
		if (fn(ctx, &c)) {
			stopped = true;
			break;
		}
	}
	int res = rc == SQLITE_ROW || rc == SQLITE_DONE ? 0 : store_sql_fail(st, rc);
	sqlite3_reset(s);
	if (res)
		return res;
	if (*more || stopped)
		*checkpoint = last;
	else
		*checkpoint = high > since ? high : since;
	*more = *more || stopped;
	return 0;
}

int64_t store_sync_changed_clients(struct store *st, int64_t since, store_client_seq_fn fn,
                                   void *ctx)
{
	sqlite3_stmt *s = sync_stmt(st, Q_CHANGED_CLIENTS);
	if (!s)
		return -EIO;
	sqlite3_bind_int64(s, 1, since);
	int64_t high = since;
	int rc;
	while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
		int64_t seq = sqlite3_column_int64(s, 1);
		if (seq > high)
			high = seq;
		if (fn(ctx, sqlite3_column_int64(s, 0), seq))
			break;
	}
	int64_t res = rc == SQLITE_ROW || rc == SQLITE_DONE ? high : store_sql_fail(st, rc);
	sqlite3_reset(s);
	return res;
}
