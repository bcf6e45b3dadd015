/* store_changes.c - the change log, the tree log and the daemon's progress.
 *
 * Every write of a record (put or delete, whatever its origin) appends one
 * row to `changes` in its own transaction, so the log holds exactly one
 * entry per committed write; its seq is global and only grows. The tree
 * log records directories made and removed, for the kernel's caches, and
 * the `daemon` row says how far the mounted daemon has shown both.
 */
#include "idbmount/store/store.h"

#include "store_internal.h"

#include "idbmount/util/datadir.h"

#include <errno.h>
#include <signal.h>
#include <time.h>

/* Every statement of this file, prepared once per connection on first use. */
enum stmt_id {
	S_OBJSTORE_OWNER,
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
	STMT_COUNT
};

static const char *const stmt_sql[STMT_COUNT] = {
        [S_OBJSTORE_OWNER] = "SELECT d.client_id, d.id FROM stores s JOIN dbs d ON d.id = s.db_id "
                             "WHERE s.id = ?1",
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
         * in the same walk instead of one lookup per change; but not for
         * a put that made its record (revision 1): no node the kernel
         * holds for it can be older than the change, and a bulk insert
         * would otherwise read every new row back (half the notifier's
         * time, which a push waits for). CASE evaluates the lookup only
         * when it is wanted. */
        [S_CHANGED_FILES] = "SELECT c.seq, c.store_id, c.name, c.op, c.origin, "
                            "CASE WHEN c.op != 0 OR c.rev != 1 THEN (SELECT r.id FROM records r "
                            "WHERE r.store_id = c.store_id AND r.name = c.name AND r.state <= 1) "
                            "END FROM changes c WHERE c.seq > ?1 ORDER BY c.seq LIMIT ?2",
        [S_CHANGES_LAST] = "SELECT coalesce(max(seq), 0) FROM changes",
        [S_TREE_INSERT] = "INSERT INTO tree_log(parent, name, origin) VALUES (?1, ?2, ?3)",
        [S_TREE_SINCE] = "SELECT id, parent, name, origin FROM tree_log WHERE id > ?1 ORDER BY id",
        [S_TREE_LAST] = "SELECT coalesce(max(id), 0) FROM tree_log",
        [S_DAEMON_PUT] = "INSERT OR REPLACE INTO daemon(one, pid, notified_seq, tree_id) "
                         "VALUES (1, ?1, ?2, ?3)",
        [S_DAEMON_DELETE] = "DELETE FROM daemon",
        [S_DAEMON_NOTIFIED] = "UPDATE daemon SET notified_seq = ?1, tree_id = ?2",
        [S_DAEMON_GET] = "SELECT pid, notified_seq, tree_id FROM daemon",
};

STORE_SLOTS_FIT(CHANGES, STMT_COUNT);

/* Returns the reset statement `id` of this file's table. */
static sqlite3_stmt *stmt(struct store *st, enum stmt_id id)
{
	return store_stmt(st, STORE_SLOTS_CHANGES + (int)id, stmt_sql[id]);
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

/* Columns 0 and 1 as two integers. */
static void read_two_ids(sqlite3_stmt *s, void *out)
{
	int64_t *ids = out;
	ids[0] = sqlite3_column_int64(s, 0);
	ids[1] = sqlite3_column_int64(s, 1);
}

/* Which client and database an object store belongs to. */
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

int store_tree_log(struct store *st, uint64_t parent, const char *name, enum store_origin origin)
{
	sqlite3_stmt *s = stmt(st, S_TREE_INSERT);
	if (!s)
		return -EIO;
	sqlite3_bind_int64(s, 1, (int64_t)parent);
	store_bind_text(s, 2, name);
	sqlite3_bind_int(s, 3, origin);
	return store_step_done(st, s);
}

int store_change_append(struct store *st, int64_t objstore_id, const char *name, const char *key,
                        bool deleted, int64_t rev, enum store_origin origin, const char *compact,
                        int64_t *seq)
{
	/* An object store never changes owner: the last answer is remembered, which
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
