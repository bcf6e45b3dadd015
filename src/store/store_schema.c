/* store_schema.c - the database's schema, its version and the migrations
 * from one version to the next.
 *
 * The schema version is SQLite's `PRAGMA user_version`: 0 for the
 * databases made before versions were counted, then one more for each
 * entry of `steps` below. Opening a database of an older version migrates
 * it to the latest in one transaction (so a crash leaves it as it was) and
 * says so (store_open_notice); a database of a newer version is refused
 * before anything in it changes: its meaning is unknown to this code.
 * A new database is made as version 0 and migrated like any other, so the
 * next change of the schema is one entry in `steps` and nothing else.
 *
 * What needs no new version: a table or index an older idbmount can ignore,
 * made by the schema texts of store_sync.c and store_sinks.c (CREATE ... IF
 * NOT EXISTS), which run at every open. A change an older idbmount would
 * misread (a column's meaning, a table it must know) is a new step.
 *
 * The meta row `schema_version` repeats the version: idbmount before
 * user_version checked only that row, so a database migrated past version
 * 1 is refused by it too instead of being misread.
 */
#include "store_internal.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/random.h>

/* Version 0: the tables every idbmount database has had since the first
 * release, which the steps start from. */
static const char base_sql[] =
        "CREATE TABLE meta(name TEXT PRIMARY KEY, value TEXT NOT NULL);"
        "CREATE TABLE clients(id INTEGER PRIMARY KEY AUTOINCREMENT, name TEXT NOT NULL UNIQUE,"
        " fname TEXT NOT NULL UNIQUE, token_hash TEXT UNIQUE, created_ms INTEGER NOT NULL,"
        " mtime_ns INTEGER NOT NULL);"
        "CREATE TABLE dbs(id INTEGER PRIMARY KEY AUTOINCREMENT, client_id INTEGER NOT NULL,"
        " name TEXT NOT NULL, fname TEXT NOT NULL, version INTEGER NOT NULL DEFAULT 1,"
        " dropped INTEGER NOT NULL DEFAULT 0, mtime_ns INTEGER NOT NULL,"
        " UNIQUE(client_id, name), UNIQUE(client_id, fname));"
        "CREATE TABLE stores(id INTEGER PRIMARY KEY AUTOINCREMENT, db_id INTEGER NOT NULL,"
        " name TEXT NOT NULL, fname TEXT NOT NULL, keypath TEXT NOT NULL DEFAULT 'null',"
        " auto_increment INTEGER NOT NULL DEFAULT 0, indexes TEXT NOT NULL DEFAULT '[]',"
        " next_key INTEGER NOT NULL DEFAULT 1, dropped INTEGER NOT NULL DEFAULT 0,"
        " mtime_ns INTEGER NOT NULL, UNIQUE(db_id, name), UNIQUE(db_id, fname));"
        /* state: 0 live, 1 scratch, 2 tombstone, 3 orphan (name NULL). */
        "CREATE TABLE records(id INTEGER PRIMARY KEY AUTOINCREMENT,"
        " store_id INTEGER NOT NULL, state INTEGER NOT NULL, name TEXT, key TEXT, value BLOB,"
        " size INTEGER NOT NULL DEFAULT 0, rev INTEGER NOT NULL DEFAULT 0,"
        " seq INTEGER NOT NULL DEFAULT 0, mtime_ns INTEGER NOT NULL, origin INTEGER NOT NULL);"
        "CREATE UNIQUE INDEX records_by_name ON records(store_id, name);"
        "CREATE INDEX records_orphans ON records(id) WHERE state = 3;"
        "CREATE TABLE changes(seq INTEGER PRIMARY KEY AUTOINCREMENT, ts_ms INTEGER NOT NULL,"
        " client_id INTEGER NOT NULL, store_id INTEGER NOT NULL, name TEXT NOT NULL,"
        " key TEXT NOT NULL, op INTEGER NOT NULL, rev INTEGER NOT NULL,"
        " origin INTEGER NOT NULL, value TEXT);"
        "CREATE INDEX changes_by_client ON changes(client_id, seq);"
        "CREATE TABLE tree_log(id INTEGER PRIMARY KEY AUTOINCREMENT, parent INTEGER NOT NULL,"
        " name TEXT NOT NULL, origin INTEGER NOT NULL);"
        "CREATE TABLE daemon(one INTEGER PRIMARY KEY CHECK (one = 1), pid INTEGER NOT NULL,"
        " notified_seq INTEGER NOT NULL, tree_id INTEGER NOT NULL);";

/* One step: what SQL takes a database from version i (its index in
 * `steps`) to version i + 1, run inside the migration's transaction. */
struct schema_step {
	const char *sql;
};

static const struct schema_step steps[] = {
        /* 0 -> 1: the layout as it stood when versions began. The
         * application_id and readdir's covering index (records_listing:
         * a listing reads every column it shows from the index, 4 MB for
         * 100,000 records of 400 bytes where the table is 66 MB) were
         * added at an open before there were versions; a version-0
         * database may lack either. */
        {"CREATE INDEX IF NOT EXISTS records_listing ON records(store_id, id, state, name, size,"
         " mtime_ns, rev, seq, origin) WHERE state <= 1;"
         "DROP INDEX IF EXISTS records_visible;"},
};

#define SCHEMA_LATEST ((int)(sizeof(steps) / sizeof(*steps)))

int store_schema_latest(void)
{
	return SCHEMA_LATEST;
}

/* Every statement of this file, prepared once per connection on first use. */
enum stmt_id { S_META_GET, S_META_PUT, STMT_COUNT };

static const char *const stmt_sql[STMT_COUNT] = {
        [S_META_GET] = "SELECT value FROM meta WHERE name = ?1",
        [S_META_PUT] = "INSERT OR REPLACE INTO meta(name, value) VALUES (?1, ?2)",
};

STORE_SLOTS_FIT(OPEN, STMT_COUNT);

static sqlite3_stmt *stmt(struct store *st, enum stmt_id id)
{
	return store_stmt(st, STORE_SLOTS_OPEN + (int)id, stmt_sql[id]);
}

int store_meta_get(struct store *st, const char *name, char *out, size_t outlen)
{
	sqlite3_stmt *s = stmt(st, S_META_GET);
	if (!s)
		return -EIO;
	store_bind_text(s, 1, name);
	int rc = sqlite3_step(s);
	int res = -ENOENT;
	if (rc == SQLITE_ROW) {
		snprintf(out, outlen, "%s", (const char *)sqlite3_column_text(s, 0));
		res = 0;
	} else if (rc != SQLITE_DONE) {
		res = store_sql_fail(st, rc);
	}
	sqlite3_reset(s);
	return res;
}

int store_meta_put(struct store *st, const char *name, const char *value)
{
	sqlite3_stmt *s = stmt(st, S_META_PUT);
	if (!s)
		return -EIO;
	store_bind_text(s, 1, name);
	store_bind_text(s, 2, value);
	return store_step_done(st, s);
}

int store_epoch_new(char out[17])
{
	unsigned char raw[8];
	if (getrandom(raw, sizeof(raw), 0) != (ssize_t)sizeof(raw))
		return -EIO;
	for (int i = 0; i < 8; i++)
		snprintf(out + 2 * i, 3, "%02x", raw[i]);
	return 0;
}

/* The message for a database newer than this code; -EPROTO. */
static int refuse_newer(struct store *st, const char *path, int64_t version)
{
	store_set_error(st,
	                "%s has schema version %lld, newer than this idbmount knows (%d): it "
	                "was opened by a newer idbmount; run that one (or a newer) on it. "
	                "Nothing was changed",
	                path, (long long)version, SCHEMA_LATEST);
	return -EPROTO;
}

int store_schema_check(struct store *st, const char *path)
{
	int64_t version = 0;
	int rc = store_query_int(st, "PRAGMA user_version", &version);
	if (rc == 0 && version > SCHEMA_LATEST)
		rc = refuse_newer(st, path, version);
	return rc;
}

/* Whether the database needs the write transaction of store_schema_ensure:
 * new, older than the latest version, or without idbmount's id. */
static int needs_work(struct store *st, bool *work)
{
	int64_t tables = 0, version = 0, id = 0;
	int rc = store_query_int(st, "SELECT count(*) FROM sqlite_master WHERE name = 'meta'",
	                         &tables);
	if (!rc)
		rc = store_query_int(st, "PRAGMA user_version", &version);
	if (!rc)
		rc = store_query_int(st, "PRAGMA application_id", &id);
	*work = tables == 0 || version < SCHEMA_LATEST || (uint32_t)id != STORE_APPLICATION_ID;
	return rc;
}

/* Inside the write transaction: makes a new database's version 0, then
 * runs the steps from its version on. *from receives the version found
 * (-1 for a new database). */
static int migrate(struct store *st, const char *datadir, int64_t *from)
{
	int64_t tables = 0, version = 0;
	int rc = store_query_int(st, "SELECT count(*) FROM sqlite_master WHERE name = 'meta'",
	                         &tables);
	if (!rc)
		rc = store_query_int(st, "PRAGMA user_version", &version);
	if (rc)
		return rc;
	/* Looked at again inside the transaction: another process may have
	 * made or migrated it meanwhile. */
	if (version > SCHEMA_LATEST)
		return refuse_newer(st, datadir, version);
	*from = tables ? version : -1;
	if (!tables) {
		char epoch[17];
		rc = store_exec(st, base_sql);
		if (!rc)
			rc = store_epoch_new(epoch);
		if (!rc)
			rc = store_meta_put(st, "epoch", epoch);
	}
	for (int64_t v = version; !rc && v < SCHEMA_LATEST; v++) {
		rc = store_exec(st, steps[v].sql);
		if (rc)
			store_set_error(st, "migrating %s from schema %lld to %lld: %s", datadir,
			                (long long)v, (long long)v + 1, st->err);
	}
	char sql[160], latest[16];
	snprintf(sql, sizeof(sql), "PRAGMA application_id = %u; PRAGMA user_version = %d;",
	         STORE_APPLICATION_ID, SCHEMA_LATEST);
	snprintf(latest, sizeof(latest), "%d", SCHEMA_LATEST);
	if (!rc)
		rc = store_exec(st, sql);
	if (!rc)
		rc = store_meta_put(st, "schema_version", latest);
	return rc;
}

int store_schema_ensure(struct store *st, const char *datadir)
{
	bool work = false;
	int rc = needs_work(st, &work);
	if (!rc && work) {
		int64_t from = -1;
		rc = store_txn_begin(st);
		if (!rc)
			rc = migrate(st, datadir, &from);
		rc = store_txn_end(st, rc);
		if (!rc && from >= 0 && from < SCHEMA_LATEST)
			snprintf(st->notice, sizeof(st->notice),
			         "migrated %s from schema %lld to %d", datadir, (long long)from,
			         SCHEMA_LATEST);
	}
	/* The other store files' tables, made if missing. */
	if (!rc)
		rc = store_exec(st, store_sync_schema_sql);
	if (!rc)
		rc = store_exec(st, store_sinks_schema_sql);
	if (!rc)
		rc = store_meta_get(st, "epoch", st->epoch, sizeof(st->epoch));
	return rc;
}
