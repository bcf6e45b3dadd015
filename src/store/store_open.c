/* store_open.c - opening a data directory: the database file, its
 * identity and schema, the connection's settings, and who checkpoints the
 * WAL.
 *
 * One SQLite database in WAL mode holds clients, databases, object stores,
 * records, the change log and the tree log; its tables are made here, with
 * those of store_sync.c and store_sinks.c (CREATE ... IF NOT EXISTS).
 */
#include "idbmount/store/store.h"

#include "store_internal.h"

#include "idbmount/util/buf.h"
#include "idbmount/util/datadir.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <unistd.h>

#define SCHEMA_VERSION "1"

/* Every statement of this file, prepared once per connection on first use. */
enum stmt_id { S_META_GET, S_META_PUT, STMT_COUNT };

static const char *const stmt_sql[STMT_COUNT] = {
        [S_META_GET] = "SELECT value FROM meta WHERE name = ?1",
        [S_META_PUT] = "INSERT OR REPLACE INTO meta(name, value) VALUES (?1, ?2)",
};

STORE_SLOTS_FIT(OPEN, STMT_COUNT);

/* Returns the reset statement `id` of this file's table. */
static sqlite3_stmt *stmt(struct store *st, enum stmt_id id)
{
	return store_stmt(st, STORE_SLOTS_OPEN + (int)id, stmt_sql[id]);
}

static const char schema_sql[] =
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

/* ---- opening ----------------------------------------------------------- */

static int make_epoch(char out[17])
{
	unsigned char raw[8];
	if (getrandom(raw, sizeof(raw), 0) != (ssize_t)sizeof(raw))
		return -EIO;
	for (int i = 0; i < 8; i++)
		snprintf(out + 2 * i, 3, "%02x", raw[i]);
	return 0;
}

static int meta_get(struct store *st, const char *name, char *out, size_t outlen)
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

static int meta_put(struct store *st, const char *name, const char *value)
{
	sqlite3_stmt *s = stmt(st, S_META_PUT);
	if (!s)
		return -EIO;
	store_bind_text(s, 1, name);
	store_bind_text(s, 2, value);
	return store_step_done(st, s);
}

/* SQLite's application_id of an idbmount database: "IDBM". It tells an
 * idbmount database from another program's (file(1) shows it too). */
#define STORE_APPLICATION_ID 0x4944424du

/* The one integer a statement of no parameters answers. */
static int query_int(struct store *st, const char *sql, int64_t *out)
{
	sqlite3_stmt *s = NULL;
	*out = 0;
	if (sqlite3_prepare_v2(st->db, sql, -1, &s, NULL) != SQLITE_OK)
		return store_sql_fail(st, sqlite3_errcode(st->db));
	int rc = store_step_int(st, s, out);
	sqlite3_finalize(s);
	return rc;
}

/* Refuses the database of another program before anything in it changes
 * (even its journal mode): one with another application_id, or with none
 * and tables that are not idbmount's. One with none and idbmount's tables
 * was made before the id was set: ensure_schema adopts it. An empty one is
 * new. `path` is for the message. */
static int check_identity(struct store *st, const char *path)
{
	int64_t id = 0;
	int rc = query_int(st, "PRAGMA application_id", &id);
	if (rc || (uint32_t)id == STORE_APPLICATION_ID)
		return rc;
	if (id != 0) {
		store_set_error(st,
		                "%s is not an idbmount database: its application_id 0x%08x is "
		                "another program's (idbmount's is 0x%08x); not touching it, give "
		                "idbmount a data directory of its own",
		                path, (unsigned)id, STORE_APPLICATION_ID);
		return -EPROTO;
	}
	/* Tables every idbmount database has had since its first version. */
	static const char *const own[] = {"changes", "clients", "meta", "records"};
	sqlite3_stmt *s = NULL;
	if (sqlite3_prepare_v2(st->db,
	                       "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT "
	                       "LIKE 'sqlite\\_%' ESCAPE '\\' ORDER BY name",
	                       -1, &s, NULL) != SQLITE_OK)
		return store_sql_fail(st, sqlite3_errcode(st->db));
	struct buf names = BUF_INIT(300);
	size_t tables = 0, found = 0;
	int step;
	while ((step = sqlite3_step(s)) == SQLITE_ROW) {
		const char *name = (const char *)sqlite3_column_text(s, 0);
		for (size_t i = 0; i < sizeof(own) / sizeof(*own); i++)
			found += strcmp(name, own[i]) == 0;
		if (buf_printf(&names, "%s%s", tables++ ? ", " : "", name) != 0)
			buf_append_str(&names, "..."); /* may not fit either: enough */
	}
	rc = step == SQLITE_DONE ? 0 : store_sql_fail(st, step);
	sqlite3_finalize(s);
	if (!rc && tables > 0 && found < sizeof(own) / sizeof(*own)) {
		store_set_error(st,
		                "%s is not an idbmount database (its tables: %s); not touching it, "
		                "give idbmount a data directory of its own",
		                path, names.data);
		rc = -EPROTO;
	}
	buf_free(&names);
	return rc;
}

/* readdir's one range scan in row-id order over an object store's visible rows,
 * answered from this index alone (it holds every column a listing shows):
 * a row holds its record's value too, and reading the rows read the whole
 * table, 66 MB for 100,000 records of 400 bytes, where the index is about
 * 4 MB. Data directories made before it get it at their next open; the
 * index it replaces held (objstore_id, id) only. Updates of a record already
 * rewrote an entry of that index (they set `state`), so writes pay little
 * more. Made if missing, so no schema version change: an older idbmount
 * uses it too. */
static const char listing_index_sql[] =
        "CREATE INDEX IF NOT EXISTS records_listing ON records(store_id, id, state, name, size,"
        " mtime_ns, rev, seq, origin) WHERE state <= 1;"
        "DROP INDEX IF EXISTS records_visible;";

/* Creates the schema in a new database, or checks an existing one; gives
 * a new or adopted one idbmount's application_id. */
static int ensure_schema(struct store *st)
{
	int64_t tables = 0, id = 0;
	int rc = query_int(st, "SELECT count(*) FROM sqlite_master WHERE name = 'meta'", &tables);
	if (!rc)
		rc = query_int(st, "PRAGMA application_id", &id);
	if (rc)
		return rc;
	if (tables == 0 || (uint32_t)id != STORE_APPLICATION_ID) {
		/* Looked at again inside the write transaction: another
		 * process may be making the same new database. */
		rc = store_txn_begin(st);
		if (!rc)
			rc = query_int(st, "SELECT count(*) FROM sqlite_master WHERE name = 'meta'",
			               &tables);
		char epoch[17];
		if (!rc && tables == 0) {
			rc = store_exec(st, schema_sql);
			if (!rc)
				rc = make_epoch(epoch);
			if (!rc)
				rc = meta_put(st, "schema_version", SCHEMA_VERSION);
			if (!rc)
				rc = meta_put(st, "epoch", epoch);
		}
		char pragma[64];
		snprintf(pragma, sizeof(pragma), "PRAGMA application_id = %u;",
		         STORE_APPLICATION_ID);
		if (!rc)
			rc = store_exec(st, pragma);
		rc = store_txn_end(st, rc);
		if (rc)
			return rc;
	}
	/* The other store files' tables, made if missing. */
	rc = store_exec(st, store_sync_schema_sql);
	if (rc == 0)
		rc = store_exec(st, store_sinks_schema_sql);
	if (rc == 0)
		rc = store_exec(st, listing_index_sql);
	if (rc)
		return rc;
	char version[32];
	rc = meta_get(st, "schema_version", version, sizeof(version));
	if (rc == 0 && strcmp(version, SCHEMA_VERSION) != 0) {
		store_set_error(st, "data directory has schema version %s, this idbmount knows %s",
		                version, SCHEMA_VERSION);
		return -EPROTO;
	}
	if (rc == 0)
		rc = meta_get(st, "epoch", st->epoch, sizeof(st->epoch));
	return rc;
}

/* ---- checkpoints --------------------------------------------------------- */

static pthread_mutex_t wal_delegate_lock = PTHREAD_MUTEX_INITIALIZER;
static store_wal_fn wal_delegate;
static void *wal_delegate_ctx;
static int wal_delegate_pages;

void store_checkpoints_elsewhere(store_wal_fn fn, void *ctx, int pages)
{
	pthread_mutex_lock(&wal_delegate_lock);
	wal_delegate = fn;
	wal_delegate_ctx = ctx;
	wal_delegate_pages = pages;
	pthread_mutex_unlock(&wal_delegate_lock);
}

/* SQLite's hook after each commit of a connection opened while
 * checkpoints were delegated. */
static int wal_grown(void *arg, sqlite3 *db, const char *name, int pages)
{
	(void)arg;
	(void)db;
	(void)name;
	pthread_mutex_lock(&wal_delegate_lock);
	if (wal_delegate && pages >= wal_delegate_pages)
		wal_delegate(wal_delegate_ctx);
	pthread_mutex_unlock(&wal_delegate_lock);
	return SQLITE_OK;
}

int store_checkpoint(struct store *st)
{
	int rc = sqlite3_wal_checkpoint_v2(st->db, NULL, SQLITE_CHECKPOINT_PASSIVE, NULL, NULL);
	/* BUSY: another checkpoint runs; the next wake tries again. */
	return rc == SQLITE_OK || rc == SQLITE_BUSY ? 0 : store_sql_fail(st, rc);
}

int store_open(const char *datadir, struct store **out, char *err, size_t errlen)
{
	*out = NULL;
	if (mkdir(datadir, 0700) != 0 && errno != EEXIST) {
		snprintf(err, errlen, "cannot create data directory %s: %s", datadir,
		         strerror(errno));
		return -errno;
	}
	struct store *st = calloc(1, sizeof(*st));
	if (!st)
		return -ENOMEM;
	st->max_record = STORE_DEFAULT_MAX_RECORD;
	char path[4096];
	snprintf(path, sizeof(path), "%s/idbmount.db", datadir);
	if (asprintf(&st->wal_path, "%s-wal", path) < 0) {
		free(st);
		return -ENOMEM;
	}
	/* Only its owner may read the records and token hashes, whatever the
	 * umask and the directory's mode: a new database is made 0600 before
	 * SQLite opens it (SQLite makes -wal and -shm with its mode); one of
	 * an earlier version is made so once it is known to be idbmount's. */
	struct stat sb;
	bool existed = stat(path, &sb) == 0 && sb.st_size > 0;
	int res = existed ? 0 : datadir_private_file(path, true);
	if (res) {
		snprintf(err, errlen, "cannot open %s: %s", path, strerror(-res));
		goto out;
	}
	int rc = sqlite3_open_v2(path, &st->db,
	                         SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX,
	                         NULL);
	if (rc != SQLITE_OK) {
		snprintf(err, errlen, "cannot open %s: %s", path,
		         st->db ? sqlite3_errmsg(st->db) : sqlite3_errstr(rc));
		res = -EIO;
		goto out;
	}
	sqlite3_busy_timeout(st->db, 30000);
	sqlite3_extended_result_codes(st->db, 1);
	res = check_identity(st, path);
	for (int i = 0; !res && existed && i < 3; i++) {
		char file[sizeof(path) + 8];
		snprintf(file, sizeof(file), "%s%s", path, (const char *[]){"", "-wal", "-shm"}[i]);
		res = datadir_private_file(file, false);
		if (res)
			store_set_error(st, "%s: %s", file, strerror(-res));
	}
	/* WAL: readers never block the writer; NORMAL sync: a committed
	 * transaction survives a crash of the process (the OS has it), and
	 * fsync() on a file syncs the WAL for power-loss durability. */
	if (!res)
		res = store_exec(st, "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;"
		                     "PRAGMA foreign_keys=OFF; PRAGMA temp_store=MEMORY;");
	if (!res)
		res = ensure_schema(st);
	pthread_mutex_lock(&wal_delegate_lock);
	if (!res && wal_delegate) {
		sqlite3_wal_autocheckpoint(st->db, 0);
		sqlite3_wal_hook(st->db, wal_grown, NULL);
	}
	pthread_mutex_unlock(&wal_delegate_lock);
	if (res)
		snprintf(err, errlen, "cannot open store in %s: %s", datadir, st->err);
out:
	if (res) {
		store_close(st);
		return res;
	}
	*out = st;
	return 0;
}

void store_close(struct store *st)
{
	if (!st)
		return;
	for (int i = 0; i < STORE_STMT_SLOTS; i++)
		sqlite3_finalize(st->stmts[i]);
	sqlite3_close(st->db);
	free(st->wal_path);
	free(st);
}

void store_set_max_record(struct store *st, size_t bytes)
{
	st->max_record = bytes;
}

const char *store_epoch(const struct store *st)
{
	return st->epoch;
}

const char *store_wal_path(const struct store *st)
{
	return st->wal_path;
}
