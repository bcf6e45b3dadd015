/* store_sync.c - the store's part for the sync endpoint (see
 * store_internal.h for how the store is split, store_sync.h for the
 * contract and the decisions): tokens of clients and pipelines, the pull
 * and the events' query, and the statements of every sync file.
 *
 * The sync files: this one; store_sync_schema.c (POST /v1/schema);
 * store_push.c (POST /v1/push: the writes, on the push writer's thread),
 * store_push_mutation.c (reading a mutation), store_push_ahead.c (the
 * reading ahead, on the push's own thread), store_push_results.c (what
 * each mutation did, remembered per mutation id). Writes go through
 * store_records.c's record functions (store_record_put /
 * store_record_delete), so a browser's put is the same transaction shape
 * as one from idbmountctl: the row, the change log entry, the pretty file.
 *
 * The pull query walks the client's change log (index changes_by_client)
 * and keeps a change only when it is still its record's last one (the
 * records row of that name holds its seq; index records_by_name), so no
 * index is added to the write path for it.
 */
#include "idbmount/store/store_sync.h"

#include "store_internal.h"
#include "store_sync_internal.h"

#include <errno.h>
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
        /* Whether the oldest is past ?1: one row read, where
         * Q_RESULT_PRUNE reads a thousand. */
        [Q_RESULT_PRUNE_DUE] = "SELECT ts_ms < ?1 FROM sync_results ORDER BY id LIMIT 1",
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

STORE_SLOTS_FIT(SYNC, Q_COUNT);

sqlite3_stmt *store_sync_stmt(struct store *st, enum sync_stmt id)
{
	return store_stmt(st, STORE_SLOTS_SYNC + (int)id, sync_sql[id]);
}

int store_sync_step_int(struct store *st, enum sync_stmt q, int64_t a, int64_t *out)
{
	sqlite3_stmt *s = store_sync_stmt(st, q);
	if (!s)
		return -EIO;
	sqlite3_bind_int64(s, 1, a);
	return store_step_int(st, s, out);
}

/* ---- tokens --------------------------------------------------------------- */

static int64_t id_by_hash(struct store *st, enum sync_stmt q, const char *hash)
{
	sqlite3_stmt *s = store_sync_stmt(st, q);
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
	sqlite3_stmt *s = store_sync_stmt(st, Q_CLIENT_NAME);
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

int store_pipeline_add(struct store *st, const char *name, const char *node,
                       char token[STORE_TOKEN_MAX])
{
	store_set_error(st, "%s", "");
	const char *why = store_pipeline_name_problem(name);
	if (why) {
		store_set_error(st, "not a pipeline name: %s", why);
		return -EINVAL;
	}
	int rc = store_token_new(st, node, token);
	if (rc)
		return rc;
	char hash[65];
	store_token_hash(token, hash);
	sqlite3_stmt *s = store_sync_stmt(st, Q_PIPELINE_INSERT);
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
	sqlite3_stmt *s = store_sync_stmt(st, Q_PIPELINE_LIST);
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

/* ---- pull and events --------------------------------------------------------- */

int64_t store_sync_client_last_seq(struct store *st, int64_t client_id)
{
	int64_t seq = 0;
	int rc = store_sync_step_int(st, Q_CLIENT_LAST_SEQ, client_id, &seq);
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
	sqlite3_stmt *s = store_sync_stmt(st, Q_PULL);
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
		        .objstore = (const char *)sqlite3_column_text(s, 3),
		        .key = (const char *)sqlite3_column_text(s, 4),
		        .deleted = sqlite3_column_int(s, 5) != 0,
		        .rev = sqlite3_column_int64(s, 6),
		        .origin = (enum store_origin)sqlite3_column_int(s, 7),
		        .value = (const char *)sqlite3_column_text(s, 8),
		        .name = (const char *)sqlite3_column_text(s, 9),
		        .objstore_id = sqlite3_column_int64(s, 10),
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
	sqlite3_stmt *s = store_sync_stmt(st, Q_CHANGED_CLIENTS);
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
