/* store_open.c - opening a data directory: the database file, its
 * identity, the connection's settings, and who checkpoints the WAL.
 *
 * One SQLite database in WAL mode holds clients, databases, object stores,
 * records, the change log and the tree log; store_schema.c makes its
 * tables and migrates an older one.
 */
#include "idbmount/store/store.h"

#include "store_internal.h"

#include "idbmount/util/buf.h"
#include "idbmount/util/datadir.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* Refuses the database of another program before anything in it changes
 * (even its journal mode): one with another application_id, or with none
 * and tables that are not idbmount's. One with none and idbmount's tables
 * was made before the id was set: its migration (store_schema.c) sets it. An empty one is
 * new. `path` is for the message. */
static int check_identity(struct store *st, const char *path)
{
	int64_t id = 0;
	int rc = store_query_int(st, "PRAGMA application_id", &id);
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

/* ---- checkpoints --------------------------------------------------------- */

/* How long a statement waits for another connection's lock. */
#define STORE_BUSY_TIMEOUT_MS 30000

static pthread_mutex_t wal_delegate_lock = PTHREAD_MUTEX_INITIALIZER;
static store_wal_fn wal_delegate;
static void *wal_delegate_ctx;
static int wal_delegate_pages;
/* The delegate asked writers to wait for it. Changed under
 * wal_delegate_lock; read without it first, so that a transaction that
 * need not wait (nearly all) takes no lock for it. */
static _Atomic bool wal_hold;
static pthread_cond_t wal_hold_released = PTHREAD_COND_INITIALIZER;

void store_checkpoints_elsewhere(store_wal_fn fn, void *ctx, int pages)
{
	pthread_mutex_lock(&wal_delegate_lock);
	wal_delegate = fn;
	wal_delegate_ctx = ctx;
	wal_delegate_pages = pages;
	if (!fn) {
		wal_hold = false;
		pthread_cond_broadcast(&wal_hold_released);
	}
	pthread_mutex_unlock(&wal_delegate_lock);
}

void store_wal_hold_release(void)
{
	pthread_mutex_lock(&wal_delegate_lock);
	wal_hold = false;
	pthread_cond_broadcast(&wal_hold_released);
	pthread_mutex_unlock(&wal_delegate_lock);
}

void store_wal_hold_wait(void)
{
	/* A thread already queued as a writer (a second connection of its
	 * own) must not wait: the checkpointer queues behind it. */
	if (!wal_hold || store_writers_queue_held())
		return;
	pthread_mutex_lock(&wal_delegate_lock);
	while (wal_hold)
		pthread_cond_wait(&wal_hold_released, &wal_delegate_lock);
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
	if (wal_delegate && pages >= wal_delegate_pages && wal_delegate(wal_delegate_ctx, pages))
		wal_hold = true;
	pthread_mutex_unlock(&wal_delegate_lock);
	return SQLITE_OK;
}

void store_checkpoints_follow(struct store *st)
{
	pthread_mutex_lock(&wal_delegate_lock);
	if (wal_delegate) {
		sqlite3_wal_autocheckpoint(st->db, 0);
		sqlite3_wal_hook(st->db, wal_grown, NULL);
	}
	pthread_mutex_unlock(&wal_delegate_lock);
}

int store_checkpoint(struct store *st, int *wal_pages)
{
	int pages = 0;
	int rc = sqlite3_wal_checkpoint_v2(st->db, NULL, SQLITE_CHECKPOINT_PASSIVE, &pages, NULL);
	if (wal_pages)
		*wal_pages = pages;
	/* BUSY: another checkpoint runs; the next wake tries again. */
	return rc == SQLITE_OK || rc == SQLITE_BUSY ? 0 : store_sql_fail(st, rc);
}

int store_wal_restart(struct store *st, int wait_ms)
{
	store_writers_queue_enter();
	sqlite3_busy_timeout(st->db, wait_ms);
	int rc = sqlite3_wal_checkpoint_v2(st->db, NULL, SQLITE_CHECKPOINT_RESTART, NULL, NULL);
	sqlite3_busy_timeout(st->db, STORE_BUSY_TIMEOUT_MS);
	store_writers_queue_leave();
	if (rc == SQLITE_BUSY)
		return -EBUSY;
	return rc == SQLITE_OK ? 0 : store_sql_fail(st, rc);
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
	sqlite3_busy_timeout(st->db, STORE_BUSY_TIMEOUT_MS);
	sqlite3_extended_result_codes(st->db, 1);
	res = check_identity(st, path);
	if (!res)
		res = store_schema_check(st, path);
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
	if (!res) {
		char limit[64];
		snprintf(limit, sizeof(limit), "PRAGMA journal_size_limit=%d;",
		         STORE_WAL_LIMIT_PAGES * 4096);
		res = store_exec(st, limit);
	}
	if (!res)
		res = store_schema_ensure(st, datadir);
	if (!res)
		store_checkpoints_follow(st);
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

int store_set_cache_kib(struct store *st, int kib)
{
	char sql[64];
	snprintf(sql, sizeof(sql), "PRAGMA cache_size = -%d;", kib);
	return store_exec(st, sql);
}

const char *store_open_notice(const struct store *st)
{
	return st->notice;
}

const char *store_epoch(const struct store *st)
{
	return st->epoch;
}

const char *store_wal_path(const struct store *st)
{
	return st->wal_path;
}
