/* store_db.c - the connection every store file speaks SQL through: the
 * statement cache, stepping, errors, the writers' queue and transactions.
 *
 * Transactions are BEGIN IMMEDIATE at the outermost level (so two writers
 * never deadlock upgrading a read lock) and SAVEPOINTs inside, so a store_*
 * call either happens whole or not at all even inside an import batch.
 */
#include "store_internal.h"

#include <assert.h>
#include <errno.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* Every statement of this file, prepared once per connection on first use. */
enum stmt_id { S_DATA_VERSION, STMT_COUNT };

static const char *const stmt_sql[STMT_COUNT] = {
        [S_DATA_VERSION] = "PRAGMA data_version",
};

STORE_SLOTS_FIT(DB, STMT_COUNT);

/* Returns the reset statement `id` of this file's table. */
static sqlite3_stmt *stmt(struct store *st, enum stmt_id id)
{
	return store_stmt(st, STORE_SLOTS_DB + (int)id, stmt_sql[id]);
}

int64_t store_now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
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

/* Runs a one-row, one-integer query; *out keeps its value when no row. */
int store_step_int(struct store *st, sqlite3_stmt *s, int64_t *out)
{
	int rc = sqlite3_step(s);
	if (rc == SQLITE_ROW)
		*out = sqlite3_column_int64(s, 0);
	int res = rc == SQLITE_ROW || rc == SQLITE_DONE ? 0 : store_sql_fail(st, rc);
	sqlite3_reset(s);
	return res;
}

int store_step_row(struct store *st, sqlite3_stmt *s, store_row_fn read_row, void *out)
{
	int rc = sqlite3_step(s);
	int res = -ENOENT;
	if (rc == SQLITE_ROW) {
		read_row(s, out);
		res = 0;
	} else if (rc != SQLITE_DONE) {
		res = store_sql_fail(st, rc);
	}
	sqlite3_reset(s);
	return res;
}

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

/* How many times this thread holds the queue (it is recursive). */
static _Thread_local int writers_queue_depth;

void store_writers_queue_enter(void)
{
	pthread_once(&writers_queue_once, writers_queue_init);
	pthread_mutex_lock(&writers_queue);
	writers_queue_depth++;
}

void store_writers_queue_leave(void)
{
	writers_queue_depth--;
	pthread_mutex_unlock(&writers_queue);
}

bool store_writers_queue_held(void)
{
	return writers_queue_depth > 0;
}

int store_step_done(struct store *st, sqlite3_stmt *s)
{
	bool queue = st->txn_depth == 0 && !sqlite3_stmt_readonly(s);
	if (queue)
		store_writers_queue_enter();
	int rc = sqlite3_step(s);
	if (queue)
		store_writers_queue_leave();
	int out = rc == SQLITE_DONE || rc == SQLITE_ROW ? 0 : store_sql_fail(st, rc);
	sqlite3_reset(s);
	return out;
}

int store_query_int(struct store *st, const char *sql, int64_t *out)
{
	sqlite3_stmt *s = NULL;
	*out = 0;
	if (sqlite3_prepare_v2(st->db, sql, -1, &s, NULL) != SQLITE_OK)
		return store_sql_fail(st, sqlite3_errcode(st->db));
	int rc = store_step_int(st, s, out);
	sqlite3_finalize(s);
	return rc;
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
	if (st->txn_depth == 0) {
		store_wal_hold_wait();
		store_writers_queue_enter();
	}
	int rc = store_exec(st, st->txn_depth == 0 ? "BEGIN IMMEDIATE" : "SAVEPOINT nested");
	if (rc == 0 && st->txn_depth++ == 0)
		st->txn_serial++;
	else if (rc != 0 && st->txn_depth == 0)
		store_writers_queue_leave();
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
		store_writers_queue_leave();
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
