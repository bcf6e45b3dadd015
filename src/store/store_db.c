/* store.c - the store: every SQL statement idbmount runs is in this file.
 *
 * Design. One SQLite database in WAL mode holds clients, databases, stores,
 * records, the change log and the tree log. A record row carries both what
 * the mount shows (its file name and the file's bytes) and what sync and the
 * sinks need (its canonical key, revision, last seq and origin). A write is
 * one transaction that updates the row and appends to the change log, so the
 * log holds exactly one entry per committed write, whatever its origin.
 *
 * Identity. A row's id is its inode number (with a kind tag, store.h). A
 * rename keeps the row, so the kernel's inode follows the file; a removed
 * record leaves behind a new TOMBSTONE row holding its name and revision
 * (for sync), while the old row becomes an ORPHAN the kernel may still
 * read through an open file, until the FUSE layer sees it forgotten. A
 * tombstone has never been shown to the kernel, so reviving it for a new
 * record of the same key is safe and keeps the revision history.
 *
 * Values. A record written through the mount keeps the exact bytes that
 * were written (so `cp` and `cmp` agree); one written by a browser or
 * idbmountctl is laid out as JSON.stringify(value, null, 2) plus a newline.
 * The change log keeps each change's value as compact JSON, the form the
 * change line and /v1/pull send.
 *
 * Transactions are BEGIN IMMEDIATE at the outermost level (so two writers
 * never deadlock upgrading a read lock) and SAVEPOINTs inside, so a store_*
 * call either happens whole or not at all even inside an import batch.
 */
#include "idbmount/store/store.h"

#include "store_internal.h"

#include "idbmount/util/buf.h"
#include "idbmount/util/datadir.h"
#include "idbmount/codec/json_text.h"
#include "idbmount/codec/key.h"

#include <assert.h>
#include <errno.h>
#include <fcntl.h>
#include <openssl/evp.h>
#include <pthread.h>
#include <signal.h>
#include <sqlite3.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define SCHEMA_VERSION "1"

/* Every statement, prepared once per connection on first use. */
enum stmt_id {
	S_META_GET,
	S_META_PUT,
	S_CLIENT_BY_FNAME,
	S_CLIENT_BY_NAME,
	S_CLIENT_BY_ID,
	S_CLIENT_BY_TOKEN,
	S_CLIENT_INSERT,
	S_CLIENT_LIST,
	S_CLIENT_COUNT_DBS,
	S_DB_BY_FNAME,
	S_DB_BY_NAME,
	S_DB_BY_ID,
	S_DB_INSERT,
	S_DB_REVIVE,
	S_DB_LIST,
	S_DB_COUNT_STORES,
	S_DB_DROP,
	S_DB_BUMP_VERSION,
	S_OBJSTORE_BY_FNAME,
	S_OBJSTORE_BY_NAME,
	S_OBJSTORE_BY_ID,
	S_OBJSTORE_INSERT,
	S_OBJSTORE_REVIVE,
	S_OBJSTORE_LIST,
	S_OBJSTORE_DROP,
	S_OBJSTORE_COUNT_VISIBLE,
	S_OBJSTORE_TOUCH,
	S_OBJSTORE_OWNER,
	S_REC_BY_NAME,
	S_REC_BY_ID,
	S_REC_VALUE,
	S_REC_LIST,
	S_REC_KEYS,
	S_REC_INSERT,
	S_REC_UPDATE,
	S_REC_SET_CONTENT,
	S_REC_ORPHAN,
	S_REC_DELETE,
	S_REC_ORPHANS,
	S_REC_MOVE,
	S_REC_TOTALS,
	S_CHANGE_INSERT,
	S_CHANGES_SINCE,
	S_CHANGES_SINCE_CLIENT,
	S_CHANGED_FILES,
	S_CHANGES_LAST,
	S_TREE_INSERT,
	S_TREE_SINCE,
	S_TREE_LAST,
	S_DAEMON_PUT,
	S_DAEMON_DELETE,
	S_DAEMON_NOTIFIED,
	S_DAEMON_GET,
	S_DATA_VERSION,
	STMT_COUNT
};

#define REC_COLS "id, store_id, state, name, key, size, rev, seq, mtime_ns, origin"

static const char *const stmt_sql[STMT_COUNT] = {
        [S_META_GET] = "SELECT value FROM meta WHERE name = ?1",
        [S_META_PUT] = "INSERT OR REPLACE INTO meta(name, value) VALUES (?1, ?2)",
        [S_CLIENT_BY_FNAME] = "SELECT id, mtime_ns FROM clients WHERE fname = ?1",
        [S_CLIENT_BY_NAME] = "SELECT id FROM clients WHERE name = ?1",
        [S_CLIENT_BY_ID] = "SELECT id, mtime_ns, fname FROM clients WHERE id = ?1",
        [S_CLIENT_BY_TOKEN] = "SELECT id FROM clients WHERE token_hash = ?1",
        [S_CLIENT_INSERT] = "INSERT INTO clients(name, fname, token_hash, created_ms, mtime_ns) "
                            "VALUES (?1, ?2, ?3, ?4, ?5)",
        [S_CLIENT_LIST] = "SELECT id, fname, mtime_ns, name FROM clients WHERE id > ?1 ORDER BY id",
        [S_CLIENT_COUNT_DBS] = "SELECT count(*) FROM dbs WHERE client_id = ?1 AND dropped = 0",
        [S_DB_BY_FNAME] =
                "SELECT id, mtime_ns, dropped FROM dbs WHERE client_id = ?1 AND fname = ?2",
        [S_DB_BY_NAME] = "SELECT id, dropped FROM dbs WHERE client_id = ?1 AND name = ?2",
        [S_DB_BY_ID] = "SELECT id, mtime_ns, client_id, dropped FROM dbs WHERE id = ?1",
        [S_DB_INSERT] = "INSERT INTO dbs(client_id, name, fname, mtime_ns) VALUES (?1, ?2, ?3, ?4)",
        [S_DB_REVIVE] = "UPDATE dbs SET dropped = 0, mtime_ns = ?2, version = version + 1 "
                        "WHERE id = ?1",
        [S_DB_LIST] = "SELECT id, fname, mtime_ns FROM dbs WHERE client_id = ?1 AND dropped = 0 "
                      "AND id > ?2 ORDER BY id",
        [S_DB_COUNT_STORES] = "SELECT count(*) FROM stores WHERE db_id = ?1 AND dropped = 0",
        [S_DB_DROP] = "UPDATE dbs SET dropped = 1, mtime_ns = ?2 WHERE id = ?1",
        [S_DB_BUMP_VERSION] = "UPDATE dbs SET version = version + 1, mtime_ns = ?2 WHERE id = ?1",
        [S_OBJSTORE_BY_FNAME] = "SELECT id, mtime_ns, dropped FROM stores WHERE db_id = ?1 AND "
                             "fname = ?2",
        [S_OBJSTORE_BY_NAME] = "SELECT id, dropped FROM stores WHERE db_id = ?1 AND name = ?2",
        [S_OBJSTORE_BY_ID] = "SELECT id, mtime_ns, db_id, dropped, keypath, auto_increment "
                          "FROM stores WHERE id = ?1",
        [S_OBJSTORE_INSERT] = "INSERT INTO stores(db_id, name, fname, keypath, auto_increment, "
                           "mtime_ns) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
        [S_OBJSTORE_REVIVE] = "UPDATE stores SET dropped = 0, keypath = ?2, auto_increment = ?3, "
                           "mtime_ns = ?4 WHERE id = ?1",
        [S_OBJSTORE_LIST] = "SELECT id, fname, mtime_ns FROM stores WHERE db_id = ?1 AND dropped = 0 "
                         "AND id > ?2 ORDER BY id",
        [S_OBJSTORE_DROP] = "UPDATE stores SET dropped = 1, mtime_ns = ?2 WHERE id = ?1",
        [S_OBJSTORE_COUNT_VISIBLE] = "SELECT count(*) FROM records WHERE store_id = ?1 AND state <= 1",
        [S_OBJSTORE_TOUCH] = "UPDATE stores SET mtime_ns = ?2 WHERE id = ?1",
        [S_OBJSTORE_OWNER] = "SELECT d.client_id, d.id FROM stores s JOIN dbs d ON d.id = s.db_id "
                          "WHERE s.id = ?1",
        [S_REC_BY_NAME] = "SELECT " REC_COLS " FROM records WHERE store_id = ?1 AND name = ?2",
        [S_REC_BY_ID] = "SELECT " REC_COLS " FROM records WHERE id = ?1",
        [S_REC_VALUE] = "SELECT value, rev FROM records WHERE id = ?1",
        /* Read from the index records_listing alone: no key, no value. */
        [S_REC_LIST] = "SELECT id, state, name, size, mtime_ns, rev, seq, origin FROM records "
                       "WHERE store_id = ?1 AND state <= 1 AND id > ?2 ORDER BY id",
        /* "state <= 1" lets the partial index records_listing serve it. */
        [S_REC_KEYS] = "SELECT id, key FROM records WHERE store_id = ?1 AND state <= 1 "
                       "AND state = 0 AND id > ?2 ORDER BY id",
        [S_REC_INSERT] = "INSERT INTO records(store_id, state, name, key, value, size, rev, seq, "
                         "mtime_ns, origin) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
        [S_REC_UPDATE] =
                "UPDATE records SET state = ?2, value = ?3, size = ?4, rev = ?5, seq = ?6, "
                "mtime_ns = ?7, origin = ?8 WHERE id = ?1",
        [S_REC_SET_CONTENT] =
                "UPDATE records SET value = ?2, size = ?3, mtime_ns = ?4 WHERE id = ?1",
        [S_REC_ORPHAN] = "UPDATE records SET state = 3, name = NULL WHERE id = ?1",
        [S_REC_DELETE] = "DELETE FROM records WHERE id = ?1",
        [S_REC_ORPHANS] = "SELECT id FROM records WHERE state = 3",
        [S_REC_MOVE] = "UPDATE records SET store_id = ?2, name = ?3, key = ?4 WHERE id = ?1",
        [S_REC_TOTALS] = "SELECT count(*), coalesce(sum(size), 0) FROM records WHERE state <= 1",
        [S_CHANGE_INSERT] = "INSERT INTO changes(ts_ms, client_id, store_id, name, key, op, rev, "
                            "origin, value) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
        [S_CHANGES_SINCE] =
                "SELECT c.seq, c.ts_ms, cl.name, d.name, s.name, c.key, c.op, c.rev, c.origin, "
                "c.value, c.name, c.store_id FROM changes c JOIN stores s ON s.id = c.store_id "
                "JOIN dbs d ON d.id = s.db_id JOIN clients cl ON cl.id = c.client_id "
                "WHERE c.seq > ?1 ORDER BY c.seq LIMIT ?2",
        [S_CHANGES_SINCE_CLIENT] =
                "SELECT c.seq, c.ts_ms, cl.name, d.name, s.name, c.key, c.op, c.rev, c.origin, "
                "c.value, c.name, c.store_id FROM changes c JOIN stores s ON s.id = c.store_id "
                "JOIN dbs d ON d.id = s.db_id JOIN clients cl ON cl.id = c.client_id "
                "WHERE c.client_id = ?3 AND c.seq > ?1 ORDER BY c.seq LIMIT ?2",
        /* Only what the mount's notifier needs: no value, no names of
         * clients, databases or stores, and the record's row id (its inode)
         * in the same walk instead of one lookup per change. */
        [S_CHANGED_FILES] = "SELECT c.seq, c.store_id, c.name, c.op, c.origin, r.id "
                            "FROM changes c LEFT JOIN records r ON r.store_id = c.store_id "
                            "AND r.name = c.name AND r.state <= 1 "
                            "WHERE c.seq > ?1 ORDER BY c.seq LIMIT ?2",
        [S_CHANGES_LAST] = "SELECT coalesce(max(seq), 0) FROM changes",
        [S_TREE_INSERT] = "INSERT INTO tree_log(parent, name, origin) VALUES (?1, ?2, ?3)",
        [S_TREE_SINCE] = "SELECT id, parent, name, origin FROM tree_log WHERE id > ?1 ORDER BY id",
        [S_TREE_LAST] = "SELECT coalesce(max(id), 0) FROM tree_log",
        [S_DAEMON_PUT] = "INSERT OR REPLACE INTO daemon(one, pid, notified_seq, tree_id) "
                         "VALUES (1, ?1, ?2, ?3)",
        [S_DAEMON_DELETE] = "DELETE FROM daemon",
        [S_DAEMON_NOTIFIED] = "UPDATE daemon SET notified_seq = ?1, tree_id = ?2",
        [S_DAEMON_GET] = "SELECT pid, notified_seq, tree_id FROM daemon",
        [S_DATA_VERSION] = "PRAGMA data_version",
};

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

/* A records row as the functions below pass it around. */
struct row {
	int64_t id;
	int64_t objstore_id;
	enum store_state state;
	char *name; /* NULL for an orphan */
	char *key;  /* canonical key JSON, NULL for scratch files */
	uint64_t size;
	int64_t rev;
	int64_t seq;
	int64_t mtime_ns;
	enum store_origin origin;
};

static void row_free(struct row *r)
{
	free(r->name);
	free(r->key);
	memset(r, 0, sizeof(*r));
}

/* ---- small helpers ----------------------------------------------------- */

int64_t store_now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

/* Writes a reason into a caller's buffer: for the preparation of a put,
 * which runs on threads that have no store of their own. */
static void __attribute__((format(printf, 3, 4)))
err_set(char *err, size_t errlen, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(err, errlen, fmt, ap);
	va_end(ap);
}

void store_set_error(struct store *st, const char *fmt, ...)
{
	/* Formatted aside first: an argument may be the last error itself
	 * ("cannot become %s: %s", ..., store_last_error(st)), and
	 * vsnprintf's source and destination must not overlap. */
	char msg[sizeof(st->err)];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	memcpy(st->err, msg, sizeof(msg));
}

const char *store_last_error(const struct store *st)
{
	return st->err;
}

const char *store_origin_name(enum store_origin origin)
{
	switch (origin) {
	case ORIGIN_BROWSER:
		return "browser";
	case ORIGIN_FS:
		return "fs";
	case ORIGIN_IMPORT:
		return "import";
	}
	return "unknown";
}

static bool ends_with_json(const char *name)
{
	size_t n = strlen(name);
	return n > KEY_SUFFIX_LEN &&
	       memcmp(name + n - KEY_SUFFIX_LEN, KEY_SUFFIX, KEY_SUFFIX_LEN) == 0;
}

/* Maps an SQLite result code to -errno, keeping SQLite's message. */
int store_sql_fail(struct store *st, int rc)
{
	store_set_error(st, "sqlite: %s", sqlite3_errmsg(st->db));
	switch (rc & 0xff) {
	case SQLITE_FULL:
		return -ENOSPC;
	case SQLITE_BUSY:
	case SQLITE_LOCKED:
		return -EBUSY;
	case SQLITE_CONSTRAINT:
		return -EEXIST;
	case SQLITE_NOMEM:
		return -ENOMEM;
	case SQLITE_READONLY:
	case SQLITE_PERM:
		return -EROFS;
	case SQLITE_TOOBIG:
		return -EFBIG;
	default:
		return -EIO;
	}
}

sqlite3_stmt *store_stmt(struct store *st, int slot, const char *sql)
{
	assert(slot >= 0 && slot < STORE_STMT_SLOTS);
	sqlite3_stmt *s = st->stmts[slot];
	if (!s) {
		if (sqlite3_prepare_v3(st->db, sql, -1, SQLITE_PREPARE_PERSISTENT, &s, NULL) !=
		    SQLITE_OK) {
			store_set_error(st, "sqlite prepare: %s", sqlite3_errmsg(st->db));
			return NULL;
		}
		st->stmts[slot] = s;
	} else {
		sqlite3_reset(s);
		sqlite3_clear_bindings(s);
	}
	return s;
}

/* Returns the reset statement `id` of this file's table. */
static sqlite3_stmt *stmt(struct store *st, enum stmt_id id)
{
	return store_stmt(st, STORE_SLOTS_CORE + (int)id, stmt_sql[id]);
}

void store_bind_text(sqlite3_stmt *s, int i, const char *t)
{
	if (t)
		sqlite3_bind_text(s, i, t, -1, SQLITE_STATIC);
	else
		sqlite3_bind_null(s, i);
}

char *store_col_strdup(sqlite3_stmt *s, int i)
{
	const unsigned char *t = sqlite3_column_text(s, i);
	return t ? strdup((const char *)t) : NULL;
}

/* Runs a statement that returns no rows. Returns 0 or -errno. */
/* The writers of this process queue here for SQLite's one write lock.
 * Left to SQLite, a writer that finds the lock taken sleeps in its busy
 * handler (1, 2, 5, 10... ms) and wakes late; two pushes on two
 * connections then spent much of their time asleep. Another process
 * (idbmountctl) still meets the busy handler. Recursive, so a thread that
 * opens a second connection behaves as before (SQLite says busy).
 * Writes outside a transaction queue too (store_step_done): the notifier's
 * one-row update starved behind back-to-back pushes, sleeping in the busy
 * handler while every push waited for it to show its change. */
static pthread_mutex_t writers_queue;
static pthread_once_t writers_queue_once = PTHREAD_ONCE_INIT;

static void writers_queue_init(void)
{
	pthread_mutexattr_t a;
	pthread_mutexattr_init(&a);
	pthread_mutexattr_settype(&a, PTHREAD_MUTEX_RECURSIVE);
	pthread_mutex_init(&writers_queue, &a);
	pthread_mutexattr_destroy(&a);
}

static void writers_queue_enter(void)
{
	pthread_once(&writers_queue_once, writers_queue_init);
	pthread_mutex_lock(&writers_queue);
}

static void writers_queue_leave(void)
{
	pthread_mutex_unlock(&writers_queue);
}

int store_step_done(struct store *st, sqlite3_stmt *s)
{
	bool queue = st->txn_depth == 0 && !sqlite3_stmt_readonly(s);
	if (queue)
		writers_queue_enter();
	int rc = sqlite3_step(s);
	if (queue)
		writers_queue_leave();
	int out = rc == SQLITE_DONE || rc == SQLITE_ROW ? 0 : store_sql_fail(st, rc);
	sqlite3_reset(s);
	return out;
}

int store_exec(struct store *st, const char *sql)
{
	char *msg = NULL;
	int rc = sqlite3_exec(st->db, sql, NULL, NULL, &msg);
	if (rc != SQLITE_OK) {
		int e = store_sql_fail(st, rc);
		store_set_error(st, "sqlite: %s", msg ? msg : sqlite3_errstr(rc));
		sqlite3_free(msg);
		return e;
	}
	return 0;
}

/* ---- transactions ------------------------------------------------------ */

int store_txn_begin(struct store *st)
{
	if (st->txn_depth == 0)
		writers_queue_enter();
	int rc = store_exec(st, st->txn_depth == 0 ? "BEGIN IMMEDIATE" : "SAVEPOINT nested");
	if (rc == 0 && st->txn_depth++ == 0)
		st->txn_serial++;
	else if (rc != 0 && st->txn_depth == 0)
		writers_queue_leave();
	return rc;
}

/* Commits (rc 0) or rolls back the outermost transaction; a failed
 * commit rolls back. The reason of the first failure is kept. */
static int txn_finish(struct store *st, int rc)
{
	if (rc == 0)
		rc = store_exec(st, "COMMIT");
	if (rc) {
		char keep[sizeof(st->err)];
		memcpy(keep, st->err, sizeof(keep));
		store_exec(st, "ROLLBACK");
		memcpy(st->err, keep, sizeof(keep));
	}
	return rc;
}

/* Ends what store_txn_begin started: commits when rc is 0, else rolls back.
 * Returns rc, or the commit's own failure. */
int store_txn_end(struct store *st, int rc)
{
	st->txn_depth--;
	if (st->txn_depth == 0) {
		rc = txn_finish(st, rc);
		writers_queue_leave();
		return rc;
	}
	if (rc == 0) {
		rc = store_exec(st, "RELEASE nested");
	} else {
		char keep[sizeof(st->err)];
		memcpy(keep, st->err, sizeof(keep));
		store_exec(st, "ROLLBACK TO nested");
		store_exec(st, "RELEASE nested");
		memcpy(st->err, keep, sizeof(keep));
	}
	return rc;
}

int store_begin(struct store *st)
{
	return store_txn_begin(st);
}

int store_commit(struct store *st)
{
	return store_txn_end(st, 0);
}

void store_rollback(struct store *st)
{
	while (st->txn_depth > 0)
		store_txn_end(st, -ECANCELED);
}

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

/* readdir's one range scan in row-id order over a store's visible rows,
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

/* ---- rows ---------------------------------------------------------------- */

static void row_from_stmt(sqlite3_stmt *s, void *out)
{
	struct row *r = out;
	r->id = sqlite3_column_int64(s, 0);
	r->objstore_id = sqlite3_column_int64(s, 1);
	r->state = (enum store_state)sqlite3_column_int(s, 2);
	r->name = store_col_strdup(s, 3);
	r->key = store_col_strdup(s, 4);
	r->size = (uint64_t)sqlite3_column_int64(s, 5);
	r->rev = sqlite3_column_int64(s, 6);
	r->seq = sqlite3_column_int64(s, 7);
	r->mtime_ns = sqlite3_column_int64(s, 8);
	r->origin = (enum store_origin)sqlite3_column_int(s, 9);
}

/* Loads a records row by (store, name) or by id. Returns 0 or -ENOENT. */
static int row_load(struct store *st, sqlite3_stmt *s, struct row *r)
{
	memset(r, 0, sizeof(*r));
	return store_step_row(st, s, row_from_stmt, r);
}

static int row_by_name(struct store *st, int64_t objstore_id, const char *name, struct row *r)
{
	memset(r, 0, sizeof(*r));
	sqlite3_stmt *s = stmt(st, S_REC_BY_NAME);
	if (!s)
		return -EIO;
	sqlite3_bind_int64(s, 1, objstore_id);
	store_bind_text(s, 2, name);
	return row_load(st, s, r);
}

static int row_by_id(struct store *st, int64_t id, struct row *r)
{
	memset(r, 0, sizeof(*r));
	sqlite3_stmt *s = stmt(st, S_REC_BY_ID);
	if (!s)
		return -EIO;
	sqlite3_bind_int64(s, 1, id);
	return row_load(st, s, r);
}

static void node_from_row(const struct row *r, struct store_node *n)
{
	memset(n, 0, sizeof(*n));
	n->ino = store_ino(STORE_FILE, r->id);
	n->parent = r->state == STORE_ORPHAN ? 0 : store_ino(STORE_OBJSTORE, r->objstore_id);
	n->kind = STORE_FILE;
	n->state = r->state;
	n->size = r->size;
	n->mtime_ns = r->mtime_ns;
	n->rev = r->rev;
	n->seq = r->seq;
	n->origin = r->origin;
}

/* Which client and database a store belongs to. */
/* Columns 0 and 1 as two integers. */
static void read_two_ids(sqlite3_stmt *s, void *out)
{
	int64_t *ids = out;
	ids[0] = sqlite3_column_int64(s, 0);
	ids[1] = sqlite3_column_int64(s, 1);
}

static int objstore_owner(struct store *st, int64_t objstore_id, int64_t *client_id, int64_t *db_id)
{
	sqlite3_stmt *s = stmt(st, S_OBJSTORE_OWNER);
	if (!s)
		return -EIO;
	sqlite3_bind_int64(s, 1, objstore_id);
	int64_t ids[2] = {0, 0};
	int res = store_step_row(st, s, read_two_ids, ids);
	*client_id = ids[0];
	if (db_id)
		*db_id = ids[1];
	return res;
}

static int tree_log(struct store *st, uint64_t parent, const char *name, enum store_origin origin)
{
	sqlite3_stmt *s = stmt(st, S_TREE_INSERT);
	if (!s)
		return -EIO;
	sqlite3_bind_int64(s, 1, (int64_t)parent);
	store_bind_text(s, 2, name);
	sqlite3_bind_int(s, 3, origin);
	return store_step_done(st, s);
}

static int objstore_touch(struct store *st, int64_t objstore_id, int64_t mtime)
{
	sqlite3_stmt *s = stmt(st, S_OBJSTORE_TOUCH);
	if (!s)
		return -EIO;
	sqlite3_bind_int64(s, 1, objstore_id);
	sqlite3_bind_int64(s, 2, mtime);
	return store_step_done(st, s);
}

/* objstore_touch for a record made by a put: once per store and transaction
 * (a push of 1,000 new records touched its store 1,000 times); the store's
 * mtime is then the time of the transaction's first new record. */
static int objstore_touch_once(struct store *st, int64_t objstore_id)
{
	if (st->txn_depth > 0 && st->touched_txn == st->txn_serial && st->touched_objstore == objstore_id)
		return 0;
	int rc = objstore_touch(st, objstore_id, store_now_ns());
	if (rc == 0) {
		st->touched_txn = st->txn_serial;
		st->touched_objstore = objstore_id;
	}
	return rc;
}

/* Appends one change; returns its seq in *seq. */
static int change_append(struct store *st, int64_t objstore_id, const char *name, const char *key,
                         bool deleted, int64_t rev, enum store_origin origin, const char *compact,
                         int64_t *seq)
{
	/* A store never changes owner: the last answer is remembered, which
	 * spares a query per change in a batch. */
	int64_t client_id = st->owner_objstore == objstore_id ? st->owner_client : 0;
	if (!client_id) {
		int rc = objstore_owner(st, objstore_id, &client_id, NULL);
		if (rc)
			return rc;
		st->owner_objstore = objstore_id;
		st->owner_client = client_id;
	}
	int rc;
	sqlite3_stmt *s = stmt(st, S_CHANGE_INSERT);
	if (!s)
		return -EIO;
	sqlite3_bind_int64(s, 1, store_now_ns() / 1000000);
	sqlite3_bind_int64(s, 2, client_id);
	sqlite3_bind_int64(s, 3, objstore_id);
	store_bind_text(s, 4, name);
	store_bind_text(s, 5, key);
	sqlite3_bind_int(s, 6, deleted ? 1 : 0);
	sqlite3_bind_int64(s, 7, rev);
	sqlite3_bind_int(s, 8, origin);
	store_bind_text(s, 9, compact);
	rc = store_step_done(st, s);
	if (rc == 0)
		*seq = sqlite3_last_insert_rowid(st->db);
	return rc;
}

/* ---- keys and key paths ------------------------------------------------ */

/* The key a ".json" name stands for (canonical JSON, malloc'd). A "~h"
 * name maps back only through an existing row: `known` (the row holding
 * that name, or NULL). Returns 0 or -EINVAL. */
static int key_for_name(struct store *st, const char *name, const struct row *known, char **key)
{
	*key = NULL;
	size_t len = strlen(name) - KEY_SUFFIX_LEN;
	json_t *k = NULL;
	int rc = key_decode_stem(name, len, &k);
	if (rc == KEY_HASHED) {
		if (known && known->key) {
			*key = strdup(known->key);
			return *key ? 0 : -ENOMEM;
		}
		store_set_error(st,
		                "%s: a ~h name is made by idbmount for a long key; it cannot be "
		                "made by hand",
		                name);
		return -EINVAL;
	}
	if (rc < 0) {
		store_set_error(st, "%s: not the file name of any IndexedDB key", name);
		return -EINVAL;
	}
	*key = key_canonical_json(k);
	json_decref(k);
	return *key ? 0 : -ENOMEM;
}

/* The file name for a key (malloc'd) or NULL for an invalid key. */
static char *name_for_key(const json_t *key)
{
	char *stem = key_encode_stem(key, NULL);
	if (!stem)
		return NULL;
	char *name = NULL;
	if (asprintf(&name, "%s%s", stem, KEY_SUFFIX) < 0)
		name = NULL;
	free(stem);
	return name;
}

/* Resolves one key-path string ("" = the value itself, "a.b" = nested
 * members) on `value`. Returns a borrowed reference or NULL. */
static json_t *keypath_get(json_t *value, const char *path)
{
	if (!*path)
		return value;
	json_t *cur = value;
	const char *p = path;
	while (cur) {
		const char *dot = strchr(p, '.');
		size_t n = dot ? (size_t)(dot - p) : strlen(p);
		if (!json_is_object(cur))
			return NULL;
		char member[256];
		if (n >= sizeof(member))
			return NULL;
		memcpy(member, p, n);
		member[n] = '\0';
		cur = json_object_get(cur, member);
		if (!dot)
			return cur;
		p = dot + 1;
	}
	return NULL;
}

/* Sets the key at a string key path, making intermediate objects (as
 * IndexedDB does for autoIncrement stores). Returns 0 or -EINVAL. */
static int keypath_set(json_t *value, const char *path, json_t *key)
{
	json_t *cur = value;
	const char *p = path;
	for (;;) {
		if (!json_is_object(cur))
			return -EINVAL;
		const char *dot = strchr(p, '.');
		size_t n = dot ? (size_t)(dot - p) : strlen(p);
		char member[256];
		if (n == 0 || n >= sizeof(member))
			return -EINVAL;
		memcpy(member, p, n);
		member[n] = '\0';
		if (!dot)
			return json_object_set(cur, member, key) ? -EINVAL : 0;
		json_t *next = json_object_get(cur, member);
		if (!next) {
			next = json_object();
			if (json_object_set_new(cur, member, next))
				return -EINVAL;
		}
		cur = next;
		p = dot + 1;
	}
}

/* Checks `value` against the store's inline key path for record `key`
 * (canonical JSON). A string path the value lacks is filled in and
 * *changed set. Returns 0 or -EINVAL with the reason. */
static int keypath_apply(char *err, size_t errlen, const char *keypath_json, const char *key,
                         json_t *value, bool *changed)
{
	*changed = false;
	if (strcmp(keypath_json, "null") == 0)
		return 0;
	json_t *kp = json_loads(keypath_json, JSON_DECODE_ANY, NULL);
	if (!kp || json_is_null(kp)) {
		json_decref(kp);
		return 0;
	}
	int rc = 0;
	json_t *found = NULL;
	char *found_text = NULL;
	if (json_is_string(kp)) {
		json_t *v = keypath_get(value, json_string_value(kp));
		if (v)
			found = json_incref(v);
	} else if (json_is_array(kp)) {
		found = json_array();
		size_t i;
		json_t *p;
		json_array_foreach(kp, i, p)
		{
			json_t *v =
			        json_is_string(p) ? keypath_get(value, json_string_value(p)) : NULL;
			if (!v) {
				json_decref(found);
				found = NULL;
				break;
			}
			json_array_append(found, v);
		}
	}
	if (found) {
		found_text = key_canonical_json(found);
		if (!found_text || strcmp(found_text, key) != 0) {
			err_set(err, errlen,
			        "the value's key at keyPath %s is %s, but the record's key is %s",
			        keypath_json, found_text ? found_text : "not a valid key", key);
			rc = -EINVAL;
		}
	} else if (json_is_string(kp) && *json_string_value(kp) && json_is_object(value)) {
		/* The key codec reads its own text: 1e19's is
		 * 10000000000000000000, which no 64-bit integer holds. */
		json_t *k = key_from_json_text(key, strlen(key), NULL, 0);
		rc = k ? keypath_set(value, json_string_value(kp), k) : -EINVAL;
		json_decref(k);
		if (rc == 0)
			*changed = true;
		else
			err_set(err, errlen, "cannot add the key at keyPath %s", keypath_json);
	} else {
		err_set(err, errlen, "the value has no key at keyPath %s", keypath_json);
		rc = -EINVAL;
	}
	json_decref(found);
	free(found_text);
	json_decref(kp);
	return rc;
}

/* The key at inline key path `keypath_json` of `value`, as IndexedDB
 * extracts it (a new reference in *key_out). Returns 0 or -EINVAL with the
 * reason: out-of-line keys, no key there, or not a valid key. */
static int keypath_extract(struct store *st, const char *keypath_json, json_t *value,
                           json_t **key_out)
{
	*key_out = NULL;
	json_t *kp = json_loads(keypath_json, JSON_DECODE_ANY, NULL);
	if (!kp || (!json_is_string(kp) && !json_is_array(kp))) {
		json_decref(kp);
		store_set_error(st, "the store has out-of-line keys: the key must be given");
		return -EINVAL;
	}
	json_t *key = NULL;
	if (json_is_string(kp)) {
		key = keypath_get(value, json_string_value(kp));
		if (key)
			json_incref(key);
	} else {
		key = json_array();
		size_t i;
		json_t *p;
		json_array_foreach(kp, i, p)
		{
			json_t *v =
			        json_is_string(p) ? keypath_get(value, json_string_value(p)) : NULL;
			if (!v || json_array_append(key, v)) {
				json_decref(key);
				key = NULL;
				break;
			}
		}
	}
	int rc = 0;
	char why[160];
	if (!key) {
		store_set_error(st, "the value has no key at keyPath %s", keypath_json);
		rc = -EINVAL;
	} else if (key_check(key, why, sizeof(why)) != 0) {
		store_set_error(st, "the value's key at keyPath %s is not a valid key: %s",
		                keypath_json, why);
		rc = -EINVAL;
	}
	json_decref(kp);
	if (rc)
		json_decref(key);
	else
		*key_out = key;
	return rc;
}

static int objstore_keypath(struct store *st, int64_t objstore_id, char **keypath, bool *autoinc)
{
	sqlite3_stmt *s = stmt(st, S_OBJSTORE_BY_ID);
	if (!s)
		return -EIO;
	sqlite3_bind_int64(s, 1, objstore_id);
	int rc = sqlite3_step(s);
	int res = -ENOENT;
	if (rc == SQLITE_ROW) {
		*keypath = store_col_strdup(s, 4);
		if (autoinc)
			*autoinc = sqlite3_column_int(s, 5) != 0;
		res = *keypath ? 0 : -ENOMEM;
	} else if (rc != SQLITE_DONE) {
		res = store_sql_fail(st, rc);
	}
	sqlite3_reset(s);
	return res;
}

/* A record's value made ready to store: validated, key path applied.
 * `file` is what the file holds; `compact` the change log's form. */
static void prepared_free(struct prepared_value *p)
{
	buf_free(&p->file);
	buf_free(&p->compact);
}

/* The value laid out straight from its text by json_text_pretty_text, for
 * record `key` (canonical JSON) under `keypath`: 0 when that is sure and
 * the key path adds nothing (out-of-line keys, or a string path whose
 * member holds exactly `key`). Anything else, errors included, returns
 * JSON_TEXT_DECLINED with `out` as it was: the parsed way then decides and
 * words the error. `keep_text`: the file is `text` itself (written through
 * the mount), else the pretty layout (a push's value). */
static int prepare_text_fast(const char *keypath, const char *key, const char *text, size_t len,
                             bool keep_text, struct prepared_value *out)
{
	json_t *kp = NULL;
	if (strcmp(keypath, "null") != 0) {
		kp = json_loads(keypath, JSON_DECODE_ANY, NULL);
		if (!json_is_string(kp)) {
			json_decref(kp);
			return JSON_TEXT_DECLINED;
		}
	}
	struct json_text_find find = {.path = kp ? json_string_value(kp) : NULL};
	struct buf scratch = BUF_INIT(out->file.max);
	struct buf *pretty = keep_text ? &scratch : &out->file;
	int rc = json_text_pretty_text(pretty, text, len, kp ? &find : NULL);
	if (!rc && kp) {
		json_t *found = find.found ? json_text_parse(pretty->data + find.start,
		                                             find.end - find.start, NULL, 0)
		                           : NULL;
		char *found_canon = found ? key_canonical_json(found) : NULL;
		if (!found_canon || strcmp(found_canon, key) != 0)
			rc = JSON_TEXT_DECLINED;
		free(found_canon);
		json_decref(found);
	}
	if (!rc && keep_text)
		rc = buf_append(&out->file, text, len);
	if (!rc)
		rc = json_text_unindent(&out->compact, pretty->data, pretty->len);
	if (rc) {
		buf_reset(&out->file);
		buf_reset(&out->compact);
		rc = JSON_TEXT_DECLINED;
	}
	buf_free(&scratch);
	json_decref(kp);
	return rc;
}

/* Prepares a value for record `key` (canonical JSON) under `keypath` (the
 * store's key path, JSON text). `text` (len
 * bytes, may be NULL) is file content to keep verbatim unless the key must
 * be added; otherwise `value` is laid out pretty. Returns 0, -EINVAL,
 * -EFBIG. */
static int prepare_value_keypath(size_t max_record, char *err, size_t errlen, const char *keypath,
                                 const char *key, const char *text, size_t len,
                                 const json_t *value_in, struct prepared_value *out)
{
	buf_init(&out->file, max_record);
	buf_init(&out->compact, max_record * 2 + 64);
	out->rewritten = false;
	json_t *value;
	if (text) {
		if (len > max_record) {
			err_set(err, errlen, "record of %zu bytes is over the cap of %zu bytes",
			        len, max_record);
			return -EFBIG;
		}
		if (prepare_text_fast(keypath, key, text, len, true, out) == 0)
			return 0;
		char why[200];
		value = json_text_parse(text, len, why, sizeof(why));
		if (!value) {
			err_set(err, errlen, "invalid JSON: %s", why);
			return -EINVAL;
		}
	} else if (strcmp(keypath, "null") == 0) {
		/* Out-of-line keys: nothing will touch the value, no copy. */
		value = json_incref((json_t *)value_in);
	} else {
		value = json_deep_copy(value_in);
		if (!value)
			return -ENOMEM;
	}
	bool changed = false;
	int rc = keypath_apply(err, errlen, keypath, key, value, &changed);
	bool pretty = false;
	if (!rc && text && !changed) {
		rc = buf_append(&out->file, text, len);
	} else if (!rc) {
		rc = json_text_pretty(&out->file, value);
		out->rewritten = text != NULL;
		pretty = true;
	}
	/* Our own pretty text unindents to the compact form; text written
	 * through the mount is written anew (its numbers may be "1.50"). */
	if (!rc && pretty)
		rc = json_text_unindent(&out->compact, out->file.data, out->file.len);
	else if (!rc)
		rc = json_text_compact(&out->compact, value);
	if (rc == -EFBIG)
		err_set(err, errlen, "record is over the cap of %zu bytes", max_record);
	else if (rc == -EINVAL && !err[0])
		err_set(err, errlen, "value holds a number JSON cannot write");
	json_decref(value);
	if (rc)
		prepared_free(out);
	return rc;
}

/* prepare_value_keypath with the key path of store `objstore_id`. */
static int prepare_value(struct store *st, int64_t objstore_id, const char *key, const char *text,
                         size_t len, const json_t *value_in, struct prepared_value *out)
{
	char *keypath = NULL;
	int rc = objstore_keypath(st, objstore_id, &keypath, NULL);
	if (!rc)
		rc = prepare_value_keypath(st->max_record, st->err, sizeof(st->err), keypath, key,
		                           text, len, value_in, out);
	free(keypath);
	return rc;
}

static int row_insert(struct store *st, struct row *r, const void *value, size_t len);

/* Makes row `r` (already holding its final store and name) the LIVE
 * record `key` with content `p`, revision `base_rev` + 1, and logs the
 * put. Fills *seq. */
static int record_write(struct store *st, struct row *r, const char *key, int64_t base_rev,
                        const struct prepared_value *p, enum store_origin origin, int64_t *rev,
                        int64_t *seq)
{
	int64_t new_rev = base_rev + 1;
	int64_t new_seq = 0;
	int rc = change_append(st, r->objstore_id, r->name, key, false, new_rev, origin,
	                       p->compact.data, &new_seq);
	if (rc)
		return rc;
	int64_t mtime = store_now_ns();
	if (r->id == 0) {
		/* A new record: its row is made whole in one statement. */
		r->state = STORE_LIVE;
		r->size = p->file.len;
		r->rev = new_rev;
		r->seq = new_seq;
		r->mtime_ns = mtime;
		r->origin = origin;
		rc = row_insert(st, r, p->file.data ? p->file.data : "", p->file.len);
		if (!rc && rev)
			*rev = new_rev;
		if (!rc && seq)
			*seq = new_seq;
		return rc;
	}
	sqlite3_stmt *s = stmt(st, S_REC_UPDATE);
	if (!s)
		return -EIO;
	sqlite3_bind_int64(s, 1, r->id);
	sqlite3_bind_int(s, 2, STORE_LIVE);
	sqlite3_bind_blob(s, 3, p->file.data ? p->file.data : "", (int)p->file.len, SQLITE_STATIC);
	sqlite3_bind_int64(s, 4, (int64_t)p->file.len);
	sqlite3_bind_int64(s, 5, new_rev);
	sqlite3_bind_int64(s, 6, new_seq);
	sqlite3_bind_int64(s, 7, mtime);
	sqlite3_bind_int(s, 8, origin);
	rc = store_step_done(st, s);
	if (rc)
		return rc;
	r->state = STORE_LIVE;
	r->size = p->file.len;
	r->rev = new_rev;
	r->seq = new_seq;
	r->mtime_ns = mtime;
	r->origin = origin;
	if (rev)
		*rev = new_rev;
	if (seq)
		*seq = new_seq;
	return 0;
}

/* Inserts a row; fills r->id. */
static int row_insert(struct store *st, struct row *r, const void *value, size_t len)
{
	sqlite3_stmt *s = stmt(st, S_REC_INSERT);
	if (!s)
		return -EIO;
	sqlite3_bind_int64(s, 1, r->objstore_id);
	sqlite3_bind_int(s, 2, r->state);
	store_bind_text(s, 3, r->name);
	store_bind_text(s, 4, r->key);
	if (value)
		sqlite3_bind_blob(s, 5, value, (int)len, SQLITE_STATIC);
	else
		sqlite3_bind_null(s, 5);
	sqlite3_bind_int64(s, 6, (int64_t)len);
	sqlite3_bind_int64(s, 7, r->rev);
	sqlite3_bind_int64(s, 8, r->seq);
	sqlite3_bind_int64(s, 9, r->mtime_ns);
	sqlite3_bind_int(s, 10, r->origin);
	int rc = store_step_done(st, s);
	if (rc == 0)
		r->id = sqlite3_last_insert_rowid(st->db);
	return rc;
}

static int row_simple(struct store *st, enum stmt_id id, int64_t row_id)
{
	sqlite3_stmt *s = stmt(st, id);
	if (!s)
		return -EIO;
	sqlite3_bind_int64(s, 1, row_id);
	return store_step_done(st, s);
}

/* Leaves a tombstone for record `r` (which has just given up its name) and
 * logs the delete. */
static int tombstone_add(struct store *st, int64_t objstore_id, const char *name, const char *key,
                         int64_t old_rev, enum store_origin origin, int64_t *seq)
{
	int64_t new_seq = 0;
	int rc = change_append(st, objstore_id, name, key, true, old_rev + 1, origin, NULL, &new_seq);
	if (rc)
		return rc;
	struct row t = {
	        .objstore_id = objstore_id,
	        .state = STORE_TOMBSTONE,
	        .name = (char *)name,
	        .key = (char *)key,
	        .rev = old_rev + 1,
	        .seq = new_seq,
	        .mtime_ns = store_now_ns(),
	        .origin = origin,
	};
	rc = row_insert(st, &t, NULL, 0);
	if (rc == 0 && seq)
		*seq = new_seq;
	return rc;
}

/* ---- directories ------------------------------------------------------- */

static int dir_node(struct store *st, uint64_t ino, struct store_node *out)
{
	memset(out, 0, sizeof(*out));
	out->ino = ino;
	out->kind = store_ino_kind(ino);
	int64_t id = store_ino_id(ino);
	sqlite3_stmt *s = NULL, *count = NULL;
	switch (out->kind) {
	case STORE_ROOT: {
		out->parent = STORE_ROOT_INO;
		s = stmt(st, S_CLIENT_LIST);
		if (!s)
			return -EIO;
		sqlite3_bind_int64(s, 1, 0);
		while (sqlite3_step(s) == SQLITE_ROW) {
			out->subdirs++;
			int64_t m = sqlite3_column_int64(s, 2);
			if (m > out->mtime_ns)
				out->mtime_ns = m;
		}
		sqlite3_reset(s);
		return 0;
	}
	case STORE_CLIENT:
		s = stmt(st, S_CLIENT_BY_ID);
		count = NULL;
		break;
	case STORE_DATABASE:
		s = stmt(st, S_DB_BY_ID);
		break;
	case STORE_OBJSTORE:
		s = stmt(st, S_OBJSTORE_BY_ID);
		break;
	default:
		return -ENOENT;
	}
	if (!s)
		return -EIO;
	sqlite3_bind_int64(s, 1, id);
	int rc = sqlite3_step(s);
	int res = -ENOENT;
	int64_t parent_id = 0;
	if (rc == SQLITE_ROW) {
		out->mtime_ns = sqlite3_column_int64(s, 1);
		parent_id = out->kind == STORE_CLIENT ? 0 : sqlite3_column_int64(s, 2);
		bool dropped = out->kind != STORE_CLIENT && sqlite3_column_int(s, 3);
		res = dropped ? -ENOENT : 0;
	} else if (rc != SQLITE_DONE) {
		res = store_sql_fail(st, rc);
	}
	sqlite3_reset(s);
	if (res)
		return res;
	int64_t n = 0;
	switch (out->kind) {
	case STORE_CLIENT:
		out->parent = STORE_ROOT_INO;
		count = stmt(st, S_CLIENT_COUNT_DBS);
		break;
	case STORE_DATABASE:
		out->parent = store_ino(STORE_CLIENT, parent_id);
		count = stmt(st, S_DB_COUNT_STORES);
		break;
	default:
		out->parent = store_ino(STORE_DATABASE, parent_id);
		break;
	}
	if (count) {
		sqlite3_bind_int64(count, 1, id);
		res = store_step_int(st, count, &n);
		out->subdirs = (uint32_t)n;
	}
	return res;
}

/* Finds child directory `fname` of `parent`; fills *id. */
static int dir_child(struct store *st, uint64_t parent, const char *fname, int64_t *id,
                     bool *dropped)
{
	enum stmt_id q;
	switch (store_ino_kind(parent)) {
	case STORE_ROOT:
		q = S_CLIENT_BY_FNAME;
		break;
	case STORE_CLIENT:
		q = S_DB_BY_FNAME;
		break;
	case STORE_DATABASE:
		q = S_OBJSTORE_BY_FNAME;
		break;
	default:
		return -ENOTDIR;
	}
	sqlite3_stmt *s = stmt(st, q);
	if (!s)
		return -EIO;
	int arg = 1;
	if (q != S_CLIENT_BY_FNAME)
		sqlite3_bind_int64(s, arg++, store_ino_id(parent));
	store_bind_text(s, arg, fname);
	int rc = sqlite3_step(s);
	int res = -ENOENT;
	if (rc == SQLITE_ROW) {
		*id = sqlite3_column_int64(s, 0);
		*dropped = q != S_CLIENT_BY_FNAME && sqlite3_column_int(s, 2);
		res = 0;
	} else if (rc != SQLITE_DONE) {
		res = store_sql_fail(st, rc);
	}
	sqlite3_reset(s);
	return res;
}

static enum store_kind child_kind(enum store_kind parent)
{
	return parent == STORE_ROOT       ? STORE_CLIENT
	       : parent == STORE_CLIENT   ? STORE_DATABASE
	       : parent == STORE_DATABASE ? STORE_OBJSTORE
	                                  : STORE_FILE;
}

int store_lookup(struct store *st, uint64_t parent, const char *name, struct store_node *out)
{
	st->err[0] = '\0';
	enum store_kind pk = store_ino_kind(parent);
	if (pk == STORE_FILE)
		return -ENOTDIR;
	if (pk == STORE_OBJSTORE) {
		struct row r;
		int rc = row_by_name(st, store_ino_id(parent), name, &r);
		if (rc == 0 && r.state > STORE_SCRATCH)
			rc = -ENOENT;
		if (rc == 0)
			node_from_row(&r, out);
		row_free(&r);
		return rc;
	}
	int64_t id = 0;
	bool dropped = false;
	int rc = dir_child(st, parent, name, &id, &dropped);
	if (rc == 0 && dropped)
		rc = -ENOENT;
	if (rc == 0)
		rc = dir_node(st, store_ino(child_kind(pk), id), out);
	return rc;
}

int store_getattr(struct store *st, uint64_t ino, struct store_node *out)
{
	if (store_ino_kind(ino) != STORE_FILE)
		return dir_node(st, ino, out);
	struct row r;
	int rc = row_by_id(st, store_ino_id(ino), &r);
	if (rc == 0 && r.state == STORE_TOMBSTONE)
		rc = -ENOENT;
	if (rc == 0)
		node_from_row(&r, out);
	row_free(&r);
	return rc;
}

int store_file_name(struct store *st, uint64_t ino, uint64_t *dir, char **name)
{
	if (store_ino_kind(ino) != STORE_FILE)
		return -EINVAL;
	struct row r;
	int rc = row_by_id(st, store_ino_id(ino), &r);
	if (rc == 0 && (r.state > STORE_SCRATCH || !r.name))
		rc = -ENOENT;
	if (rc == 0) {
		*dir = store_ino(STORE_OBJSTORE, r.objstore_id);
		*name = r.name;
		r.name = NULL;
	}
	row_free(&r);
	return rc;
}

int store_readdir(struct store *st, uint64_t dir, int64_t cursor, store_readdir_fn fn, void *ctx)
{
	enum store_kind kind = store_ino_kind(dir);
	sqlite3_stmt *s;
	switch (kind) {
	case STORE_ROOT:
		s = stmt(st, S_CLIENT_LIST);
		break;
	case STORE_CLIENT:
		s = stmt(st, S_DB_LIST);
		break;
	case STORE_DATABASE:
		s = stmt(st, S_OBJSTORE_LIST);
		break;
	case STORE_OBJSTORE:
		s = stmt(st, S_REC_LIST);
		break;
	default:
		return -ENOTDIR;
	}
	if (!s)
		return -EIO;
	if (kind == STORE_ROOT) {
		sqlite3_bind_int64(s, 1, cursor);
	} else {
		sqlite3_bind_int64(s, 1, store_ino_id(dir));
		sqlite3_bind_int64(s, 2, cursor);
	}
	/* Directory rows are few; collect them first, since computing a
	 * directory's node runs other statements. Records stream, their
	 * names passed as SQLite holds them (no copy per record). */
	int res = 0;
	if (kind == STORE_OBJSTORE) {
		int rc;
		while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
			int64_t id = sqlite3_column_int64(s, 0);
			struct store_node n = {
			        .ino = store_ino(STORE_FILE, id),
			        .parent = dir,
			        .kind = STORE_FILE,
			        .state = (enum store_state)sqlite3_column_int(s, 1),
			        .size = (uint64_t)sqlite3_column_int64(s, 3),
			        .mtime_ns = sqlite3_column_int64(s, 4),
			        .rev = sqlite3_column_int64(s, 5),
			        .seq = sqlite3_column_int64(s, 6),
			        .origin = (enum store_origin)sqlite3_column_int(s, 7),
			};
			const char *name = (const char *)sqlite3_column_text(s, 2);
			if (!name) {
				rc = SQLITE_NOMEM;
				break;
			}
			if (fn(ctx, name, &n, id))
				break;
		}
		if (rc != SQLITE_ROW && rc != SQLITE_DONE)
			res = store_sql_fail(st, rc);
		sqlite3_reset(s);
		return res;
	}
	struct entry {
		int64_t id;
		char *name;
	} *list = NULL;
	size_t n = 0, cap = 0;
	int rc;
	while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
		if (n == cap) {
			cap = cap ? cap * 2 : 16;
			struct entry *grown = realloc(list, cap * sizeof(*list));
			if (!grown) {
				res = -ENOMEM;
				break;
			}
			list = grown;
		}
		list[n].id = sqlite3_column_int64(s, 0);
		list[n].name = store_col_strdup(s, 1);
		n++;
	}
	if (!res && rc != SQLITE_DONE)
		res = store_sql_fail(st, rc);
	sqlite3_reset(s);
	for (size_t i = 0; i < n && !res; i++) {
		struct store_node node;
		if (dir_node(st, store_ino(child_kind(kind), list[i].id), &node) != 0)
			continue;
		if (fn(ctx, list[i].name, &node, list[i].id))
			break;
	}
	for (size_t i = 0; i < n; i++)
		free(list[i].name);
	free(list);
	return res;
}

int store_read_file(struct store *st, uint64_t ino, char **data, size_t *len)
{
	return store_read_file_rev(st, ino, data, len, NULL);
}

int store_read_file_rev(struct store *st, uint64_t ino, char **data, size_t *len, int64_t *rev)
{
	*data = NULL;
	*len = 0;
	sqlite3_stmt *s = stmt(st, S_REC_VALUE);
	if (!s)
		return -EIO;
	sqlite3_bind_int64(s, 1, store_ino_id(ino));
	int rc = sqlite3_step(s);
	int res = -ENOENT;
	if (rc == SQLITE_ROW) {
		size_t n = (size_t)sqlite3_column_bytes(s, 0);
		const void *p = sqlite3_column_blob(s, 0);
		*data = malloc(n + 1);
		if (*data) {
			if (n)
				memcpy(*data, p, n);
			(*data)[n] = '\0';
			*len = n;
			if (rev)
				*rev = sqlite3_column_int64(s, 1);
			res = 0;
		} else {
			res = -ENOMEM;
		}
	} else if (rc != SQLITE_DONE) {
		res = store_sql_fail(st, rc);
	}
	sqlite3_reset(s);
	return res;
}

/* ---- changes through the mount ------------------------------------------ */

static int check_objstore_dir(struct store *st, uint64_t dir, const char *what)
{
	if (store_ino_kind(dir) == STORE_OBJSTORE)
		return 0;
	store_set_error(st, "%s: files live only in store directories (CLIENT/DB/STORE/)", what);
	return store_ino_kind(dir) == STORE_FILE ? -ENOTDIR : -EPERM;
}

int store_create_file(struct store *st, uint64_t dir, const char *name, struct store_node *out)
{
	st->err[0] = '\0';
	int rc = check_objstore_dir(st, dir, name);
	if (rc)
		return rc;
	if (strlen(name) > KEY_NAME_MAX)
		return -ENAMETOOLONG;
	int64_t objstore_id = store_ino_id(dir);
	rc = store_txn_begin(st);
	if (rc)
		return rc;
	struct row r;
	int found = row_by_name(st, objstore_id, name, &r);
	if (found == 0 && r.state != STORE_TOMBSTONE) {
		rc = -EEXIST;
	} else if (found == 0) {
		/* Revive the tombstone as a pending (scratch) file: its
		 * revision carries on when valid JSON is written. */
		sqlite3_stmt *s = stmt(st, S_REC_UPDATE);
		rc = s ? 0 : -EIO;
		if (!rc) {
			r.state = STORE_SCRATCH;
			r.size = 0;
			r.mtime_ns = store_now_ns();
			r.origin = ORIGIN_FS;
			sqlite3_bind_int64(s, 1, r.id);
			sqlite3_bind_int(s, 2, STORE_SCRATCH);
			sqlite3_bind_blob(s, 3, "", 0, SQLITE_STATIC);
			sqlite3_bind_int64(s, 4, 0);
			sqlite3_bind_int64(s, 5, r.rev);
			sqlite3_bind_int64(s, 6, r.seq);
			sqlite3_bind_int64(s, 7, r.mtime_ns);
			sqlite3_bind_int(s, 8, ORIGIN_FS);
			rc = store_step_done(st, s);
		}
	} else if (found == -ENOENT) {
		r.objstore_id = objstore_id;
		r.state = STORE_SCRATCH;
		r.name = strdup(name);
		r.mtime_ns = store_now_ns();
		r.origin = ORIGIN_FS;
		rc = r.name ? 0 : -ENOMEM;
		if (!rc && ends_with_json(name))
			rc = key_for_name(st, name, NULL, &r.key);
		if (!rc)
			rc = row_insert(st, &r, "", 0);
	} else {
		rc = found;
	}
	if (!rc)
		rc = objstore_touch(st, objstore_id, r.mtime_ns);
	rc = store_txn_end(st, rc);
	if (!rc)
		node_from_row(&r, out);
	row_free(&r);
	return rc;
}

int store_commit_file(struct store *st, uint64_t ino, const char *data, size_t len, bool *rewritten,
                      struct store_node *out)
{
	st->err[0] = '\0';
	*rewritten = false;
	int rc = store_txn_begin(st);
	if (rc)
		return rc;
	struct row r;
	rc = row_by_id(st, store_ino_id(ino), &r);
	if (rc == 0 && r.state == STORE_TOMBSTONE)
		rc = -ENOENT;
	bool record = rc == 0 && r.state != STORE_ORPHAN && ends_with_json(r.name);
	if (rc == 0 && record) {
		struct prepared_value p;
		rc = prepare_value(st, r.objstore_id, r.key, data ? data : "", len, NULL, &p);
		if (rc == 0) {
			bool created = r.state != STORE_LIVE;
			rc = record_write(st, &r, r.key, r.rev, &p, ORIGIN_FS, NULL, NULL);
			if (rc == 0 && created)
				rc = objstore_touch(st, r.objstore_id, r.mtime_ns);
			*rewritten = p.rewritten;
			prepared_free(&p);
		}
	} else if (rc == 0) {
		/* A scratch file (or an open orphan): just its bytes. */
		if (len > st->max_record) {
			store_set_error(st, "file of %zu bytes is over the cap of %zu bytes", len,
			                st->max_record);
			rc = -EFBIG;
		}
		sqlite3_stmt *s = rc ? NULL : stmt(st, S_REC_SET_CONTENT);
		if (!rc && !s)
			rc = -EIO;
		if (!rc) {
			r.size = len;
			r.mtime_ns = store_now_ns();
			sqlite3_bind_int64(s, 1, r.id);
			sqlite3_bind_blob(s, 2, data ? data : "", (int)len, SQLITE_STATIC);
			sqlite3_bind_int64(s, 3, (int64_t)len);
			sqlite3_bind_int64(s, 4, r.mtime_ns);
			rc = store_step_done(st, s);
		}
	}
	rc = store_txn_end(st, rc);
	if (rc && r.name) {
		char why[sizeof(st->err)];
		memcpy(why, st->err, sizeof(why));
		store_set_error(st, "%s: %s", r.name, why);
	}
	if (rc == 0 && out)
		node_from_row(&r, out);
	row_free(&r);
	return rc;
}

/* Takes row `r` out of the namespace: a record leaves a tombstone and a
 * delete change; the row becomes an ORPHAN. */
static int unlink_row(struct store *st, struct row *r, enum store_origin origin, int64_t *seq)
{
	bool record = r->state == STORE_LIVE;
	int rc = row_simple(st, S_REC_ORPHAN, r->id);
	if (!rc && record)
		rc = tombstone_add(st, r->objstore_id, r->name, r->key, r->rev, origin, seq);
	if (!rc)
		rc = objstore_touch(st, r->objstore_id, store_now_ns());
	return rc;
}

int store_unlink(struct store *st, uint64_t dir, const char *name)
{
	st->err[0] = '\0';
	enum store_kind kind = store_ino_kind(dir);
	if (kind != STORE_OBJSTORE) {
		struct store_node n;
		int rc = store_lookup(st, dir, name, &n);
		return rc ? rc : -EISDIR;
	}
	int rc = store_txn_begin(st);
	if (rc)
		return rc;
	struct row r;
	rc = row_by_name(st, store_ino_id(dir), name, &r);
	if (rc == 0 && r.state > STORE_SCRATCH)
		rc = -ENOENT;
	if (rc == 0)
		rc = unlink_row(st, &r, ORIGIN_FS, NULL);
	rc = store_txn_end(st, rc);
	row_free(&r);
	return rc;
}

/* Gives row `r` the name `name` in store `objstore_id`, whose previous holder
 * had revision `prev_rev`: as a record if the name ends in ".json" (the
 * content must then be valid JSON for that key), else as a scratch file. */
static int bind_row(struct store *st, struct row *r, int64_t objstore_id, const char *name,
                    const char *key, int64_t prev_rev)
{
	sqlite3_stmt *s = stmt(st, S_REC_MOVE);
	if (!s)
		return -EIO;
	sqlite3_bind_int64(s, 1, r->id);
	sqlite3_bind_int64(s, 2, objstore_id);
	store_bind_text(s, 3, name);
	store_bind_text(s, 4, key);
	int rc = store_step_done(st, s);
	if (rc)
		return rc;
	free(r->name);
	free(r->key);
	r->name = strdup(name);
	r->key = key ? strdup(key) : NULL;
	r->objstore_id = objstore_id;
	if (!r->name)
		return -ENOMEM;
	if (!key) {
		/* Now a scratch file, whatever it was. */
		s = stmt(st, S_REC_UPDATE);
		if (!s)
			return -EIO;
		r->state = STORE_SCRATCH;
		sqlite3_bind_int64(s, 1, r->id);
		sqlite3_bind_int(s, 2, STORE_SCRATCH);
		char *data = NULL;
		size_t len = 0;
		rc = store_read_file(st, store_ino(STORE_FILE, r->id), &data, &len);
		if (rc)
			return rc;
		sqlite3_bind_blob(s, 3, data, (int)len, SQLITE_TRANSIENT);
		free(data);
		sqlite3_bind_int64(s, 4, (int64_t)len);
		sqlite3_bind_int64(s, 5, 0);
		sqlite3_bind_int64(s, 6, 0);
		sqlite3_bind_int64(s, 7, r->mtime_ns);
		sqlite3_bind_int(s, 8, ORIGIN_FS);
		return store_step_done(st, s);
	}
	if (r->state == STORE_SCRATCH && r->size == 0) {
		/* An empty pending file stays pending under its new name. */
		s = stmt(st, S_REC_UPDATE);
		if (!s)
			return -EIO;
		sqlite3_bind_int64(s, 1, r->id);
		sqlite3_bind_int(s, 2, STORE_SCRATCH);
		sqlite3_bind_blob(s, 3, "", 0, SQLITE_STATIC);
		sqlite3_bind_int64(s, 4, 0);
		sqlite3_bind_int64(s, 5, prev_rev);
		sqlite3_bind_int64(s, 6, r->seq);
		sqlite3_bind_int64(s, 7, r->mtime_ns);
		sqlite3_bind_int(s, 8, ORIGIN_FS);
		r->rev = prev_rev;
		return store_step_done(st, s);
	}
	char *data = NULL;
	size_t len = 0;
	rc = store_read_file(st, store_ino(STORE_FILE, r->id), &data, &len);
	if (rc)
		return rc;
	struct prepared_value p;
	rc = prepare_value(st, objstore_id, key, data, len, NULL, &p);
	free(data);
	if (rc) {
		if (rc == -EINVAL)
			store_set_error(st, "cannot become %s: %s", name, store_last_error(st));
		return rc;
	}
	rc = record_write(st, r, key, prev_rev, &p, ORIGIN_FS, NULL, NULL);
	prepared_free(&p);
	return rc;
}

/* The key a rename target stands for (NULL for a scratch name). */
static int target_key(struct store *st, const char *name, const struct row *holder, char **key)
{
	*key = NULL;
	if (!ends_with_json(name))
		return 0;
	return key_for_name(st, name, holder, key);
}

int store_rename(struct store *st, uint64_t dir, const char *name, uint64_t newdir,
                 const char *newname, unsigned int flags)
{
	st->err[0] = '\0';
	const unsigned int noreplace = 1, exchange = 2; /* RENAME_NOREPLACE, _EXCHANGE */
	if (store_ino_kind(dir) != STORE_OBJSTORE || store_ino_kind(newdir) != STORE_OBJSTORE) {
		store_set_error(st, "only files inside store directories can be renamed");
		return -EPERM;
	}
	if (strlen(newname) > KEY_NAME_MAX)
		return -ENAMETOOLONG;
	int64_t src_objstore = store_ino_id(dir), dst_objstore = store_ino_id(newdir);
	int rc = store_txn_begin(st);
	if (rc)
		return rc;
	struct row src, dst;
	memset(&dst, 0, sizeof(dst));
	char *src_key = NULL, *dst_key = NULL;
	rc = row_by_name(st, src_objstore, name, &src);
	if (rc == 0 && src.state > STORE_SCRATCH)
		rc = -ENOENT;
	int dst_found = rc ? rc : row_by_name(st, dst_objstore, newname, &dst);
	bool dst_visible = dst_found == 0 && dst.state <= STORE_SCRATCH;
	if (rc == 0 && dst_found != 0 && dst_found != -ENOENT)
		rc = dst_found;
	if (rc == 0 && (flags & noreplace) && dst_visible)
		rc = -EEXIST;
	if (rc == 0 && (flags & exchange) && !dst_visible)
		rc = -ENOENT;
	if (rc == 0 && src.id == dst.id && dst_visible)
		goto done; /* renaming a file onto itself */
	if (rc == 0)
		rc = target_key(st, newname, dst_found == 0 ? &dst : NULL, &dst_key);
	if (rc == 0 && (flags & exchange)) {
		rc = target_key(st, name, &src, &src_key);
		/* Each row takes the other's name, and each key's revision
		 * carries on from the row that held it. Both names are taken
		 * away first: the index keeps names unique. */
		int64_t src_rev = src.rev, dst_rev = dst.rev;
		if (!rc)
			rc = row_simple(st, S_REC_ORPHAN, src.id);
		if (!rc)
			rc = row_simple(st, S_REC_ORPHAN, dst.id);
		if (!rc)
			rc = bind_row(st, &src, dst_objstore, newname, dst_key, dst_rev);
		if (!rc)
			rc = bind_row(st, &dst, src_objstore, name, src_key, src_rev);
		goto done;
	}
	if (rc == 0 && dst_found == 0) {
		/* The target's old row leaves: visible rows become orphans
		 * (the kernel may hold them), a tombstone is replaced. */
		rc = row_simple(st, dst.state == STORE_TOMBSTONE ? S_REC_DELETE : S_REC_ORPHAN,
		                dst.id);
	}
	if (rc == 0) {
		bool src_was_record = src.state == STORE_LIVE;
		char *old_name = src.name ? strdup(src.name) : NULL;
		char *old_key = src.key ? strdup(src.key) : NULL;
		int64_t old_rev = src.rev;
		int64_t prev_rev = dst_found == 0 && dst_key ? dst.rev : 0;
		rc = bind_row(st, &src, dst_objstore, newname, dst_key, prev_rev);
		if (rc == 0 && src_was_record)
			rc = tombstone_add(st, src_objstore, old_name, old_key, old_rev, ORIGIN_FS,
			                   NULL);
		free(old_name);
		free(old_key);
	}
	if (rc == 0)
		rc = objstore_touch(st, src_objstore, store_now_ns());
	if (rc == 0 && dst_objstore != src_objstore)
		rc = objstore_touch(st, dst_objstore, store_now_ns());
done:
	rc = store_txn_end(st, rc);
	row_free(&src);
	row_free(&dst);
	free(src_key);
	free(dst_key);
	return rc;
}

/* A row's id and whether it is dropped (columns 0 and 1). */
struct id_dropped {
	int64_t id;
	bool dropped;
};

static void read_id_dropped(sqlite3_stmt *s, void *out)
{
	struct id_dropped *d = out;
	d->id = sqlite3_column_int64(s, 0);
	d->dropped = sqlite3_column_int(s, 1) != 0;
}

/* Looks up database or store `name` under its parent (statement `which`:
 * S_DB_BY_NAME or S_OBJSTORE_BY_NAME). Returns 0 with *id and *dropped, or
 * -ENOENT, or a SQL error. */
static int child_by_name(struct store *st, int which, int64_t parent_id, const char *name,
                         int64_t *id, bool *dropped)
{
	sqlite3_stmt *s = stmt(st, which);
	if (!s)
		return -EIO;
	sqlite3_bind_int64(s, 1, parent_id);
	store_bind_text(s, 2, name);
	struct id_dropped found = {0, false};
	int res = store_step_row(st, s, read_id_dropped, &found);
	*id = found.id;
	*dropped = found.dropped;
	return res;
}

/* The directory name of a new database or store (`what`) called `name`
 * (*fname malloc'd): -EINVAL or -ENAMETOOLONG with the reason. */
static int child_file_name(struct store *st, const char *what, const char *name, char **fname)
{
	*fname = name_escape(name, strlen(name));
	if (!*fname) {
		store_set_error(st, "%s name is not valid UTF-8", what);
		return -EINVAL;
	}
	if (strlen(*fname) > KEY_NAME_MAX) {
		free(*fname);
		*fname = NULL;
		store_set_error(st, "%s name is too long", what);
		return -ENAMETOOLONG;
	}
	return 0;
}

/* Resolves or makes a database; *id receives its row id. */
static int db_ensure(struct store *st, int64_t client_id, const char *name, bool create,
                     enum store_origin origin, int64_t *id)
{
	bool dropped = false;
	int res = child_by_name(st, S_DB_BY_NAME, client_id, name, id, &dropped);
	if (res == 0 && !dropped)
		return 0;
	if ((res != 0 && res != -ENOENT) || !create)
		return res ? res : -ENOENT;
	char *fname = NULL;
	int rc = child_file_name(st, "database", name, &fname);
	if (rc)
		return rc;
	sqlite3_stmt *s;
	if (res == 0) {
		s = stmt(st, S_DB_REVIVE);
		sqlite3_bind_int64(s, 1, *id);
		sqlite3_bind_int64(s, 2, store_now_ns());
		res = store_step_done(st, s);
	} else {
		s = stmt(st, S_DB_INSERT);
		sqlite3_bind_int64(s, 1, client_id);
		store_bind_text(s, 2, name);
		store_bind_text(s, 3, fname);
		sqlite3_bind_int64(s, 4, store_now_ns());
		res = store_step_done(st, s);
		if (res == 0)
			*id = sqlite3_last_insert_rowid(st->db);
	}
	if (res == 0)
		res = tree_log(st, store_ino(STORE_CLIENT, client_id), fname, origin);
	free(fname);
	return res;
}

/* Resolves or makes a store; *id receives its row id. */
static int objstore_ensure(struct store *st, int64_t db_id, const char *name, const char *keypath,
                        bool autoinc, bool create, bool must_be_new, enum store_origin origin,
                        int64_t *id)
{
	bool dropped = false;
	int res = child_by_name(st, S_OBJSTORE_BY_NAME, db_id, name, id, &dropped);
	if (res == 0 && !dropped)
		return must_be_new ? -EEXIST : 0;
	if ((res != 0 && res != -ENOENT) || !create)
		return res ? res : -ENOENT;
	char *fname = NULL;
	int rc = child_file_name(st, "store", name, &fname);
	if (rc)
		return rc;
	sqlite3_stmt *s;
	int64_t now = store_now_ns();
	if (res == 0) {
		s = stmt(st, S_OBJSTORE_REVIVE);
		sqlite3_bind_int64(s, 1, *id);
		store_bind_text(s, 2, keypath);
		sqlite3_bind_int(s, 3, autoinc);
		sqlite3_bind_int64(s, 4, now);
		res = store_step_done(st, s);
	} else {
		s = stmt(st, S_OBJSTORE_INSERT);
		sqlite3_bind_int64(s, 1, db_id);
		store_bind_text(s, 2, name);
		store_bind_text(s, 3, fname);
		store_bind_text(s, 4, keypath);
		sqlite3_bind_int(s, 5, autoinc);
		sqlite3_bind_int64(s, 6, now);
		res = store_step_done(st, s);
		if (res == 0)
			*id = sqlite3_last_insert_rowid(st->db);
	}
	/* A new store means a new schema version for the browsers. */
	if (res == 0) {
		s = stmt(st, S_DB_BUMP_VERSION);
		sqlite3_bind_int64(s, 1, db_id);
		sqlite3_bind_int64(s, 2, now);
		res = store_step_done(st, s);
	}
	if (res == 0)
		res = tree_log(st, store_ino(STORE_DATABASE, db_id), fname, origin);
	free(fname);
	return res;
}

int store_mkdir(struct store *st, uint64_t parent, const char *name, struct store_node *out)
{
	st->err[0] = '\0';
	enum store_kind pk = store_ino_kind(parent);
	if (pk == STORE_ROOT) {
		store_set_error(st, "clients are made with 'idbmountctl client add NAME'");
		return -EPERM;
	}
	if (pk == STORE_OBJSTORE || pk == STORE_FILE) {
		store_set_error(st, "%s: a store directory holds only files", name);
		return pk == STORE_FILE ? -ENOTDIR : -EPERM;
	}
	size_t raw_len = 0;
	char *raw = name_unescape(name, &raw_len);
	if (!raw || strlen(raw) != raw_len) {
		free(raw);
		store_set_error(st, "%s: not a canonical escaped name", name);
		return -EINVAL;
	}
	int rc = store_txn_begin(st);
	if (rc) {
		free(raw);
		return rc;
	}
	int64_t id = 0;
	bool dropped = false;
	int found = dir_child(st, parent, name, &id, &dropped);
	if (found == 0 && !dropped) {
		rc = -EEXIST;
	} else if (found != 0 && found != -ENOENT) {
		rc = found;
	} else if (pk == STORE_CLIENT) {
		rc = db_ensure(st, store_ino_id(parent), raw, true, ORIGIN_FS, &id);
	} else {
		rc = objstore_ensure(st, store_ino_id(parent), raw, "null", false, true, true,
		                  ORIGIN_FS, &id);
	}
	rc = store_txn_end(st, rc);
	free(raw);
	if (rc == 0)
		rc = dir_node(st, store_ino(child_kind(pk), id), out);
	return rc;
}

int store_rmdir(struct store *st, uint64_t parent, const char *name)
{
	st->err[0] = '\0';
	enum store_kind pk = store_ino_kind(parent);
	if (pk == STORE_ROOT) {
		store_set_error(st, "clients are removed with idbmountctl");
		return -EPERM;
	}
	if (pk == STORE_OBJSTORE) {
		struct row r;
		int rc = row_by_name(st, store_ino_id(parent), name, &r);
		row_free(&r);
		return rc == 0 && r.state <= STORE_SCRATCH ? -ENOTDIR : -ENOENT;
	}
	int rc = store_txn_begin(st);
	if (rc)
		return rc;
	int64_t id = 0, n = 0;
	bool dropped = false;
	rc = dir_child(st, parent, name, &id, &dropped);
	if (rc == 0 && dropped)
		rc = -ENOENT;
	sqlite3_stmt *s = NULL;
	if (rc == 0) {
		s = stmt(st, pk == STORE_CLIENT ? S_DB_COUNT_STORES : S_OBJSTORE_COUNT_VISIBLE);
		sqlite3_bind_int64(s, 1, id);
		rc = store_step_int(st, s, &n);
	}
	if (rc == 0 && n > 0)
		rc = -ENOTEMPTY;
	if (rc == 0) {
		s = stmt(st, pk == STORE_CLIENT ? S_DB_DROP : S_OBJSTORE_DROP);
		sqlite3_bind_int64(s, 1, id);
		sqlite3_bind_int64(s, 2, store_now_ns());
		rc = store_step_done(st, s);
	}
	if (rc == 0 && pk == STORE_DATABASE) {
		s = stmt(st, S_DB_BUMP_VERSION);
		sqlite3_bind_int64(s, 1, store_ino_id(parent));
		sqlite3_bind_int64(s, 2, store_now_ns());
		rc = store_step_done(st, s);
	}
	if (rc == 0)
		rc = tree_log(st, parent, name, ORIGIN_FS);
	return store_txn_end(st, rc);
}

int store_drop_orphan(struct store *st, uint64_t ino)
{
	struct row r;
	int rc = row_by_id(st, store_ino_id(ino), &r);
	if (rc == 0 && r.state == STORE_ORPHAN)
		rc = row_simple(st, S_REC_DELETE, r.id);
	row_free(&r);
	return rc == -ENOENT ? 0 : rc;
}

int store_list_orphans(struct store *st, store_ino_fn fn, void *ctx)
{
	sqlite3_stmt *s = stmt(st, S_REC_ORPHANS);
	if (!s)
		return -EIO;
	/* Collect first: the callback may delete rows. */
	int64_t *ids = NULL;
	size_t n = 0, cap = 0;
	int rc, res = 0;
	while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
		if (n == cap) {
			cap = cap ? cap * 2 : 64;
			int64_t *grown = realloc(ids, cap * sizeof(*ids));
			if (!grown) {
				res = -ENOMEM;
				break;
			}
			ids = grown;
		}
		ids[n++] = sqlite3_column_int64(s, 0);
	}
	sqlite3_reset(s);
	for (size_t i = 0; i < n && !res; i++)
		if (fn(ctx, store_ino(STORE_FILE, ids[i])))
			break;
	free(ids);
	return res;
}

int store_drop_all_orphans(struct store *st)
{
	return store_exec(st, "DELETE FROM records WHERE state = 3");
}

int store_objstore_info(struct store *st, uint64_t objstore_dir, char **keypath, bool *autoincrement)
{
	if (store_ino_kind(objstore_dir) != STORE_OBJSTORE)
		return -ENODATA;
	return objstore_keypath(st, store_ino_id(objstore_dir), keypath, autoincrement);
}

int store_count_files(struct store *st, uint64_t *files, uint64_t *bytes)
{
	sqlite3_stmt *s = stmt(st, S_REC_TOTALS);
	if (!s)
		return -EIO;
	int rc = sqlite3_step(s);
	int res = 0;
	if (rc == SQLITE_ROW) {
		*files = (uint64_t)sqlite3_column_int64(s, 0);
		*bytes = (uint64_t)sqlite3_column_int64(s, 1);
	} else {
		res = store_sql_fail(st, rc);
	}
	sqlite3_reset(s);
	return res;
}

/* ---- changes by key ---------------------------------------------------- */

static int client_id_by_name(struct store *st, const char *name, int64_t *id)
{
	sqlite3_stmt *s = stmt(st, S_CLIENT_BY_NAME);
	if (!s)
		return -EIO;
	store_bind_text(s, 1, name);
	*id = 0;
	int rc = store_step_int(st, s, id);
	if (rc == 0 && *id == 0) {
		store_set_error(st, "no client named '%s'", name);
		rc = -ENOENT;
	}
	return rc;
}

/* Resolves CLIENT/DB/STORE to a store id, making the database and store
 * when `create` is set. */
static int path_resolve(struct store *st, const struct store_path *path, bool create,
                        int64_t *objstore_id)
{
	int64_t client_id = 0, db_id = 0;
	int rc = client_id_by_name(st, path->client, &client_id);
	if (rc == 0)
		rc = db_ensure(st, client_id, path->db, create, ORIGIN_IMPORT, &db_id);
	if (rc == -ENOENT && !st->err[0])
		store_set_error(st, "client '%s' has no database '%s'", path->client, path->db);
	if (rc == 0)
		rc = objstore_ensure(st, db_id, path->objstore, "null", false, create, false,
		                  ORIGIN_IMPORT, objstore_id);
	if (rc == -ENOENT && !st->err[0])
		store_set_error(st, "database '%s' has no store '%s'", path->db, path->objstore);
	return rc;
}

/* ---- for the other store files (store_internal.h) ---------------------- */

int store_db_resolve(struct store *st, int64_t client_id, const char *name, bool create,
                     enum store_origin origin, int64_t *db_id)
{
	return db_ensure(st, client_id, name, create, origin, db_id);
}

int store_objstore_resolve(struct store *st, int64_t db_id, const char *name,
                           const char *keypath_json, bool autoincrement, bool create,
                           enum store_origin origin, int64_t *objstore_id)
{
	return objstore_ensure(st, db_id, name, keypath_json, autoincrement, create, false, origin,
	                    objstore_id);
}

int store_keypath_extract(struct store *st, const char *keypath_json, const json_t *value,
                          json_t **key_out)
{
	return keypath_extract(st, keypath_json, (json_t *)value, key_out);
}

int store_keypath_of(struct store *st, int64_t objstore_id, char **keypath_json, bool *autoincrement)
{
	return objstore_keypath(st, objstore_id, keypath_json, autoincrement);
}

int store_make_objstore(struct store *st, const struct store_path *path, const char *keypath_json,
                     bool autoincrement)
{
	st->err[0] = '\0';
	json_t *kp = json_loads(keypath_json, JSON_DECODE_ANY, NULL);
	bool ok = kp && (json_is_null(kp) || json_is_string(kp) || json_is_array(kp));
	json_decref(kp);
	if (!ok) {
		store_set_error(st, "keyPath must be null, a string or an array of strings (JSON)");
		return -EINVAL;
	}
	int rc = store_txn_begin(st);
	if (rc)
		return rc;
	int64_t client_id = 0, db_id = 0, objstore_id = 0;
	rc = client_id_by_name(st, path->client, &client_id);
	if (rc == 0)
		rc = db_ensure(st, client_id, path->db, true, ORIGIN_IMPORT, &db_id);
	if (rc == 0)
		rc = objstore_ensure(st, db_id, path->objstore, keypath_json, autoincrement, true, true,
		                  ORIGIN_IMPORT, &objstore_id);
	if (rc == -EEXIST)
		store_set_error(st, "store '%s' already exists", path->objstore);
	return store_txn_end(st, rc);
}

/* What a row says of its record, for a write's check. */
static void state_of_row(const struct row *r, bool found, struct store_record_state *out)
{
	memset(out, 0, sizeof(*out));
	/* A pending (scratch) file is not a record yet: its last committed
	 * state (rev > 0) was a delete. */
	if (!found || r->rev == 0)
		return;
	out->exists = true;
	out->live = r->state == STORE_LIVE;
	out->rev = r->rev;
	out->seq = r->seq;
	out->row_id = r->id;
}

int store_put_prepare(size_t max_record, const char *keypath, const json_t *key,
                      const json_t *value, struct store_put_prep *out)
{
	memset(out, 0, sizeof(*out));
	char why[160];
	if (key_check(key, why, sizeof(why)) != 0) {
		err_set(out->err, sizeof(out->err), "not a valid key: %s", why);
		out->key_rc = -EINVAL;
		return out->key_rc;
	}
	out->canon = key_canonical_json(key);
	out->name = name_for_key(key);
	if (!out->canon || !out->name) {
		out->key_rc = -ENOMEM;
		return out->key_rc;
	}
	if (keypath) {
		out->value_rc =
		        prepare_value_keypath(max_record, out->err, sizeof(out->err), keypath,
		                              out->canon, NULL, 0, value, &out->value);
		out->prepared = out->value_rc == 0;
	}
	return out->value_rc;
}

int store_put_prepare_text(size_t max_record, const char *keypath, const json_t *key,
                           struct json_span value, struct store_put_prep *out)
{
	int rc = store_put_prepare(max_record, NULL, key, NULL, out);
	if (rc)
		return rc;
	buf_init(&out->value.file, max_record);
	buf_init(&out->value.compact, max_record * 2 + 64);
	out->value.rewritten = false;
	rc = prepare_text_fast(keypath, out->canon, value.text, value.len, false, &out->value);
	if (rc) {
		prepared_free(&out->value);
		store_put_prep_free(out);
		return rc;
	}
	out->prepared = true;
	return 0;
}

void store_put_prep_free(struct store_put_prep *p)
{
	if (p->prepared)
		prepared_free(&p->value);
	free(p->canon);
	free(p->name);
	memset(p, 0, sizeof(*p));
}

int store_record_put_prepared(struct store *st, int64_t objstore_id, struct store_put_prep *p,
                              const json_t *value, enum store_origin origin, store_check_fn check,
                              void *check_ctx, struct store_record_state *now, int64_t *rev,
                              int64_t *seq)
{
	if (p->key_rc) {
		store_set_error(st, "%s", p->err);
		return p->key_rc;
	}
	struct row r;
	memset(&r, 0, sizeof(r));
	int found = row_by_name(st, objstore_id, p->name, &r);
	int rc = found != 0 && found != -ENOENT ? found : 0;
	if (rc == 0 && check) {
		struct store_record_state state;
		state_of_row(&r, found == 0, &state);
		if (now)
			*now = state;
		if (!check(check_ctx, &state))
			rc = STORE_REFUSED;
	}
	/* A value's problem counts only for a write that goes ahead: a
	 * refused one is answered with the record as it is, as before the
	 * preparation moved ahead of the lookup. */
	if (rc == 0 && p->value_rc) {
		store_set_error(st, "%s", p->err);
		rc = p->value_rc;
	}
	if (rc == 0 && !p->prepared) {
		rc = prepare_value(st, objstore_id, p->canon, NULL, 0, value, &p->value);
		p->prepared = rc == 0;
	}
	if (rc == 0 && found == -ENOENT) {
		/* record_write makes the row. */
		r.objstore_id = objstore_id;
		r.name = strdup(p->name);
		r.key = strdup(p->canon);
		rc = r.name && r.key ? objstore_touch_once(st, objstore_id) : -ENOMEM;
	}
	if (rc == 0)
		rc = record_write(st, &r, p->canon, r.rev, &p->value, origin, rev, seq);
	row_free(&r);
	return rc;
}

/* The core of store_put: writes record `key` of store `objstore_id`, inside
 * the caller's transaction. */
int store_record_put(struct store *st, int64_t objstore_id, const char *keypath, const json_t *key,
                     const json_t *value, enum store_origin origin, store_check_fn check,
                     void *check_ctx, struct store_record_state *now, int64_t *rev, int64_t *seq)
{
	struct store_put_prep p;
	store_put_prepare(st->max_record, keypath, key, value, &p);
	int rc = store_record_put_prepared(st, objstore_id, &p, value, origin, check, check_ctx, now,
	                                   rev, seq);
	store_put_prep_free(&p);
	return rc;
}

int store_put(struct store *st, const struct store_path *path, const json_t *key,
              const json_t *value, enum store_origin origin, bool create_missing, int64_t *rev,
              int64_t *seq)
{
	st->err[0] = '\0';
	char why[160];
	if (key_check(key, why, sizeof(why)) != 0) {
		store_set_error(st, "not a valid key: %s", why);
		return -EINVAL;
	}
	int rc = store_txn_begin(st);
	if (rc)
		return rc;
	int64_t objstore_id = 0;
	rc = path_resolve(st, path, create_missing, &objstore_id);
	if (rc == 0)
		rc = store_record_put(st, objstore_id, NULL, key, value, origin, NULL, NULL, NULL, rev,
		                      seq);
	return store_txn_end(st, rc);
}

/* The core of store_delete, inside the caller's transaction. */
int store_record_delete(struct store *st, int64_t objstore_id, const json_t *key,
                        enum store_origin origin, store_check_fn check, void *check_ctx,
                        struct store_record_state *now, int64_t *rev, int64_t *seq)
{
	*seq = 0;
	if (rev)
		*rev = 0;
	char why[160];
	if (key_check(key, why, sizeof(why)) != 0) {
		store_set_error(st, "not a valid key: %s", why);
		return -EINVAL;
	}
	char *name = name_for_key(key);
	if (!name)
		return -ENOMEM;
	struct row r;
	int rc = row_by_name(st, objstore_id, name, &r);
	if ((rc == 0 || rc == -ENOENT) && check) {
		struct store_record_state state;
		state_of_row(&r, rc == 0, &state);
		if (now)
			*now = state;
		if (!check(check_ctx, &state)) {
			row_free(&r);
			free(name);
			return STORE_REFUSED;
		}
	}
	if (rc == 0 && r.state == STORE_LIVE) {
		rc = unlink_row(st, &r, origin, seq);
		if (rc == 0 && rev)
			*rev = r.rev + 1;
	} else if (rc == 0 || rc == -ENOENT) {
		if (rc == 0 && rev && r.state == STORE_TOMBSTONE)
			*rev = r.rev;
		rc = 0;
	}
	row_free(&r);
	free(name);
	return rc;
}

int store_delete(struct store *st, const struct store_path *path, const json_t *key,
                 enum store_origin origin, int64_t *seq)
{
	st->err[0] = '\0';
	*seq = 0;
	char why[160];
	if (key_check(key, why, sizeof(why)) != 0) {
		store_set_error(st, "not a valid key: %s", why);
		return -EINVAL;
	}
	int rc = store_txn_begin(st);
	if (rc)
		return rc;
	int64_t objstore_id = 0;
	rc = path_resolve(st, path, false, &objstore_id);
	if (rc == 0)
		rc = store_record_delete(st, objstore_id, key, origin, NULL, NULL, NULL, NULL, seq);
	return store_txn_end(st, rc);
}

/* What record `key` of store `objstore_id` is now (see store_internal.h). */
int store_record_state(struct store *st, int64_t objstore_id, const json_t *key,
                       struct store_record_state *out)
{
	memset(out, 0, sizeof(*out));
	char *name = name_for_key(key);
	if (!name)
		return -EINVAL;
	struct row r;
	int rc = row_by_name(st, objstore_id, name, &r);
	if (rc == 0 || rc == -ENOENT) {
		state_of_row(&r, rc == 0, out);
		rc = 0;
	}
	row_free(&r);
	free(name);
	return rc;
}

int store_get(struct store *st, const struct store_path *path, const json_t *key, char **data,
              size_t *len, int64_t *rev)
{
	st->err[0] = '\0';
	*data = NULL;
	char *name = name_for_key(key);
	if (!name) {
		store_set_error(st, "not a valid key");
		return -EINVAL;
	}
	int64_t objstore_id = 0;
	int rc = path_resolve(st, path, false, &objstore_id);
	struct row r;
	memset(&r, 0, sizeof(r));
	if (rc == 0)
		rc = row_by_name(st, objstore_id, name, &r);
	if (rc == 0 && r.state != STORE_LIVE)
		rc = -ENOENT;
	if (rc == 0) {
		*rev = r.rev;
		rc = store_read_file(st, store_ino(STORE_FILE, r.id), data, len);
	}
	row_free(&r);
	free(name);
	return rc;
}

int store_check_put(struct store *st, const struct store_path *path, const json_t *key,
                    const json_t *value, json_t **key_out)
{
	st->err[0] = '\0';
	if (key_out)
		*key_out = NULL;
	int64_t client_id = 0, db_id = 0, objstore_id = 0;
	int rc = client_id_by_name(st, path->client, &client_id);
	if (rc)
		return rc;
	rc = db_ensure(st, client_id, path->db, false, ORIGIN_IMPORT, &db_id);
	if (rc == 0)
		rc = objstore_ensure(st, db_id, path->objstore, "null", false, false, false,
		                  ORIGIN_IMPORT, &objstore_id);
	/* A missing store is what create_missing would make: out-of-line. */
	char *keypath = NULL;
	if (rc == 0)
		rc = objstore_keypath(st, objstore_id, &keypath, NULL);
	else if (rc == -ENOENT)
		rc = (keypath = strdup("null")) ? 0 : -ENOMEM;
	if (rc)
		return rc;
	json_t *extracted = NULL;
	char why[160];
	if (!key) {
		rc = keypath_extract(st, keypath, (json_t *)value, &extracted);
		key = extracted;
	} else if (key_check(key, why, sizeof(why)) != 0) {
		store_set_error(st, "not a valid key: %s", why);
		rc = -EINVAL;
	}
	char *canon = rc ? NULL : key_canonical_json(key);
	if (!rc && !canon)
		rc = -ENOMEM;
	struct prepared_value p;
	if (!rc)
		rc = prepare_value_keypath(st->max_record, st->err, sizeof(st->err), keypath, canon,
		                           NULL, 0, value, &p);
	if (!rc)
		prepared_free(&p);
	free(canon);
	free(keypath);
	if (!rc && key_out && extracted)
		*key_out = extracted;
	else
		json_decref(extracted);
	return rc;
}

int store_list_keys(struct store *st, const struct store_path *path, int64_t cursor,
                    store_key_fn fn, void *ctx)
{
	st->err[0] = '\0';
	int64_t objstore_id = 0;
	int rc = path_resolve(st, path, false, &objstore_id);
	if (rc)
		return rc;
	sqlite3_stmt *s = stmt(st, S_REC_KEYS);
	if (!s)
		return -EIO;
	sqlite3_bind_int64(s, 1, objstore_id);
	sqlite3_bind_int64(s, 2, cursor);
	while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
		if (fn(ctx, (const char *)sqlite3_column_text(s, 1), sqlite3_column_int64(s, 0)))
			break;
	}
	int res = rc == SQLITE_ROW || rc == SQLITE_DONE ? 0 : store_sql_fail(st, rc);
	sqlite3_reset(s);
	return res;
}

/* ---- clients ------------------------------------------------------------ */

void store_token_hash(const char *token, char out[65])
{
	unsigned char digest[32];
	unsigned int n = 0;
	EVP_Digest(token, strlen(token), digest, &n, EVP_sha256(), NULL);
	for (int i = 0; i < 32; i++)
		snprintf(out + 2 * i, 3, "%02x", digest[i]);
}

int store_token_new(char token[65])
{
	unsigned char raw[32];
	if (getrandom(raw, sizeof(raw), 0) != (ssize_t)sizeof(raw))
		return -EIO;
	for (int i = 0; i < 32; i++)
		snprintf(token + 2 * i, 3, "%02x", raw[i]);
	return 0;
}

/* What client and pipeline names share: non-empty UTF-8 without control
 * characters, which would split or garble the lines of a listing. */
static const char *listed_name_problem(const char *name)
{
	if (!*name)
		return "the name is empty";
	char *escaped = name_escape(name, strlen(name));
	free(escaped);
	if (!escaped)
		return "the name is not valid UTF-8";
	for (const unsigned char *p = (const unsigned char *)name; *p; p++)
		if (*p < 0x20 || *p == 0x7f || (p[0] == 0xc2 && p[1] >= 0x80 && p[1] <= 0x9f))
			return "the name holds a control character (U+0000-U+001F or "
			       "U+007F-U+009F)";
	return NULL;
}

const char *store_client_name_problem(const char *name)
{
	const char *why = listed_name_problem(name);
	if (why)
		return why;
	if (strchr(name, '/'))
		return "the name holds '/' (paths are CLIENT/DB/STORE)";
	char *fname = name_escape(name, strlen(name));
	size_t len = fname ? strlen(fname) : 0;
	free(fname);
	if (len > KEY_NAME_MAX)
		return "the name is too long (255 bytes at most as a directory name of the mount)";
	return NULL;
}

const char *store_pipeline_name_problem(const char *name)
{
	const char *why = listed_name_problem(name);
	if (!why && strlen(name) > 255)
		why = "the name is longer than 255 bytes";
	return why;
}

int store_client_add(struct store *st, const char *name, char token[65])
{
	st->err[0] = '\0';
	const char *why = store_client_name_problem(name);
	if (why) {
		store_set_error(st, "not a client name: %s", why);
		return -EINVAL;
	}
	char *fname = name_escape(name, strlen(name));
	if (!fname)
		return -ENOMEM;
	if (store_token_new(token) != 0) {
		free(fname);
		return -EIO;
	}
	char hash[65];
	store_token_hash(token, hash);
	int rc = store_txn_begin(st);
	if (rc) {
		free(fname);
		return rc;
	}
	sqlite3_stmt *s = stmt(st, S_CLIENT_INSERT);
	if (!s)
		rc = -EIO;
	if (!rc) {
		store_bind_text(s, 1, name);
		store_bind_text(s, 2, fname);
		store_bind_text(s, 3, hash);
		sqlite3_bind_int64(s, 4, store_now_ns() / 1000000);
		sqlite3_bind_int64(s, 5, store_now_ns());
		rc = store_step_done(st, s);
		if (rc == -EEXIST)
			store_set_error(st, "a client named '%s' exists already", name);
	}
	if (!rc)
		rc = tree_log(st, STORE_ROOT_INO, fname, ORIGIN_IMPORT);
	rc = store_txn_end(st, rc);
	free(fname);
	return rc;
}

int64_t store_client_by_token(struct store *st, const char *token)
{
	char hash[65];
	store_token_hash(token, hash);
	sqlite3_stmt *s = stmt(st, S_CLIENT_BY_TOKEN);
	if (!s)
		return -EIO;
	store_bind_text(s, 1, hash);
	int64_t id = 0;
	int rc = store_step_int(st, s, &id);
	if (rc)
		return rc;
	return id > 0 ? id : -EACCES;
}

int store_client_list(struct store *st, store_name_fn fn, void *ctx)
{
	sqlite3_stmt *s = stmt(st, S_CLIENT_LIST);
	if (!s)
		return -EIO;
	sqlite3_bind_int64(s, 1, 0);
	int rc;
	while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
		if (fn(ctx, (const char *)sqlite3_column_text(s, 3)))
			break;
	}
	int res = rc == SQLITE_ROW || rc == SQLITE_DONE ? 0 : store_sql_fail(st, rc);
	sqlite3_reset(s);
	return res;
}

/* ---- the change log ----------------------------------------------------- */

int64_t store_changes_since(struct store *st, int64_t since, int64_t limit, int64_t client_id,
                            store_change_fn fn, void *ctx)
{
	sqlite3_stmt *s = stmt(st, client_id > 0 ? S_CHANGES_SINCE_CLIENT : S_CHANGES_SINCE);
	if (!s)
		return -EIO;
	sqlite3_bind_int64(s, 1, since);
	sqlite3_bind_int64(s, 2, limit);
	if (client_id > 0)
		sqlite3_bind_int64(s, 3, client_id);
	int64_t n = 0;
	int rc;
	while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
		struct store_change c = {
		        .seq = sqlite3_column_int64(s, 0),
		        .ts_ms = sqlite3_column_int64(s, 1),
		        .client = (const char *)sqlite3_column_text(s, 2),
		        .db = (const char *)sqlite3_column_text(s, 3),
		        .objstore = (const char *)sqlite3_column_text(s, 4),
		        .key = (const char *)sqlite3_column_text(s, 5),
		        .deleted = sqlite3_column_int(s, 6) != 0,
		        .rev = sqlite3_column_int64(s, 7),
		        .origin = (enum store_origin)sqlite3_column_int(s, 8),
		        .value = (const char *)sqlite3_column_text(s, 9),
		        .name = (const char *)sqlite3_column_text(s, 10),
		        .objstore_id = sqlite3_column_int64(s, 11),
		};
		n++;
		if (fn(ctx, &c))
			break;
	}
	int64_t res = rc == SQLITE_ROW || rc == SQLITE_DONE ? n : store_sql_fail(st, rc);
	sqlite3_reset(s);
	return res;
}

int64_t store_changed_files_since(struct store *st, int64_t since, int64_t limit,
                                  store_changed_file_fn fn, void *ctx)
{
	sqlite3_stmt *s = stmt(st, S_CHANGED_FILES);
	if (!s)
		return -EIO;
	sqlite3_bind_int64(s, 1, since);
	sqlite3_bind_int64(s, 2, limit);
	int64_t n = 0;
	int rc;
	while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
		int64_t row_id = sqlite3_column_int64(s, 5); /* 0 for NULL */
		struct store_changed_file f = {
		        .seq = sqlite3_column_int64(s, 0),
		        .dir = store_ino(STORE_OBJSTORE, sqlite3_column_int64(s, 1)),
		        .name = (const char *)sqlite3_column_text(s, 2),
		        .deleted = sqlite3_column_int(s, 3) != 0,
		        .origin = (enum store_origin)sqlite3_column_int(s, 4),
		        .ino = row_id > 0 ? store_ino(STORE_FILE, row_id) : 0,
		};
		n++;
		if (fn(ctx, &f))
			break;
	}
	int64_t res = rc == SQLITE_ROW || rc == SQLITE_DONE ? n : store_sql_fail(st, rc);
	sqlite3_reset(s);
	return res;
}

int64_t store_last_seq(struct store *st)
{
	sqlite3_stmt *s = stmt(st, S_CHANGES_LAST);
	int64_t v = 0;
	if (!s || store_step_int(st, s, &v))
		return -EIO;
	return v;
}

int64_t store_tree_changes_since(struct store *st, int64_t since, store_tree_fn fn, void *ctx)
{
	sqlite3_stmt *s = stmt(st, S_TREE_SINCE);
	if (!s)
		return since;
	sqlite3_bind_int64(s, 1, since);
	int64_t last = since;
	while (sqlite3_step(s) == SQLITE_ROW) {
		last = sqlite3_column_int64(s, 0);
		if (fn(ctx, last, (uint64_t)sqlite3_column_int64(s, 1),
		       (const char *)sqlite3_column_text(s, 2),
		       (enum store_origin)sqlite3_column_int(s, 3)))
			break;
	}
	sqlite3_reset(s);
	return last;
}

int64_t store_last_tree_id(struct store *st)
{
	sqlite3_stmt *s = stmt(st, S_TREE_LAST);
	int64_t v = 0;
	if (!s || store_step_int(st, s, &v))
		return -EIO;
	return v;
}

bool store_changed_elsewhere(struct store *st)
{
	/* The pragma reads the WAL index, so it sees other connections'
	 * commits (the file-control version does not, outside a read). */
	sqlite3_stmt *s = stmt(st, S_DATA_VERSION);
	int64_t v = st->data_version;
	if (!s || store_step_int(st, s, &v) != 0)
		return true;
	if (v == st->data_version)
		return false;
	st->data_version = v;
	return true;
}

int store_daemon_register(struct store *st, int pid)
{
	int64_t seq = store_last_seq(st), tree = store_last_tree_id(st);
	if (seq < 0 || tree < 0)
		return -EIO;
	sqlite3_stmt *s = stmt(st, S_DAEMON_PUT);
	if (!s)
		return -EIO;
	sqlite3_bind_int(s, 1, pid);
	sqlite3_bind_int64(s, 2, seq);
	sqlite3_bind_int64(s, 3, tree);
	return store_step_done(st, s);
}

int store_daemon_unregister(struct store *st)
{
	sqlite3_stmt *s = stmt(st, S_DAEMON_DELETE);
	return s ? store_step_done(st, s) : -EIO;
}

int store_daemon_set_notified(struct store *st, int64_t seq, int64_t tree_id)
{
	sqlite3_stmt *s = stmt(st, S_DAEMON_NOTIFIED);
	if (!s)
		return -EIO;
	sqlite3_bind_int64(s, 1, seq);
	sqlite3_bind_int64(s, 2, tree_id);
	return store_step_done(st, s);
}

int store_daemon_wait_shown(struct store *st, int64_t seq, int64_t tree_id, int idle_ms,
                            const volatile sig_atomic_t *stop)
{
	int pid = 0;
	int64_t nseq = 0, ntree = 0;
	if (store_daemon_status(st, &pid, &nseq, &ntree) != 0 || pid <= 0)
		return 0;
	int64_t last_move = store_now_ns();
	/* Short pauses first: the daemon usually shows a change within a
	 * millisecond or two, and a push waits here before it answers. */
	long pause_ns = 100000;
	while (nseq < seq || ntree < tree_id) {
		if (store_now_ns() - last_move >= (int64_t)idle_ms * 1000000)
			return -ETIMEDOUT;
		if (stop && *stop)
			return -EINTR;
		struct timespec pause = {0, pause_ns};
		nanosleep(&pause, NULL);
		if (pause_ns < 1500000)
			pause_ns *= 2;
		int64_t pseq = nseq, ptree = ntree;
		if (store_daemon_status(st, &pid, &nseq, &ntree) != 0 || pid <= 0)
			return 0;
		if (nseq != pseq || ntree != ptree)
			last_move = store_now_ns();
	}
	return 0;
}

int store_daemon_status(struct store *st, int *pid, int64_t *seq, int64_t *tree_id)
{
	*pid = 0;
	*seq = *tree_id = 0;
	sqlite3_stmt *s = stmt(st, S_DAEMON_GET);
	if (!s)
		return -EIO;
	int rc = sqlite3_step(s);
	if (rc == SQLITE_ROW) {
		*pid = sqlite3_column_int(s, 0);
		*seq = sqlite3_column_int64(s, 1);
		*tree_id = sqlite3_column_int64(s, 2);
	}
	sqlite3_reset(s);
	/* A daemon that died (or is dying) without unregistering is no
	 * daemon: nothing will show a change any more. */
	if (*pid > 0 && process_state(*pid) != PROCESS_ALIVE)
		*pid = 0;
	return rc == SQLITE_ROW || rc == SQLITE_DONE ? 0 : -EIO;
}
