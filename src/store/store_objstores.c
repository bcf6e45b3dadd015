/* store_objstores.c - databases and object stores by name: found, made
 * or revived, their keyPath, and the mtime an object store's directory
 * shows.
 */
#include "idbmount/store/store.h"

#include "store_internal.h"

#include "idbmount/codec/key.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

/* Every statement of this file, prepared once per connection on first use. */
enum stmt_id {
	S_DB_BY_NAME,
	S_DB_INSERT,
	S_DB_REVIVE,
	S_DB_BUMP_VERSION,
	S_OBJSTORE_BY_NAME,
	S_OBJSTORE_INSERT,
	S_OBJSTORE_REVIVE,
	S_OBJSTORE_TOUCH,
	S_OBJSTORE_KEYPATH,
	STMT_COUNT
};

static const char *const stmt_sql[STMT_COUNT] = {
        [S_DB_BY_NAME] = "SELECT id, dropped FROM dbs WHERE client_id = ?1 AND name = ?2",
        [S_DB_INSERT] = "INSERT INTO dbs(client_id, name, fname, mtime_ns) VALUES (?1, ?2, ?3, ?4)",
        [S_DB_REVIVE] = "UPDATE dbs SET dropped = 0, mtime_ns = ?2, version = version + 1 "
                        "WHERE id = ?1",
        [S_DB_BUMP_VERSION] = "UPDATE dbs SET version = version + 1, mtime_ns = ?2 WHERE id = ?1",
        [S_OBJSTORE_BY_NAME] = "SELECT id, dropped FROM stores WHERE db_id = ?1 AND name = ?2",
        [S_OBJSTORE_INSERT] = "INSERT INTO stores(db_id, name, fname, keypath, auto_increment, "
                              "mtime_ns) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
        [S_OBJSTORE_REVIVE] = "UPDATE stores SET dropped = 0, keypath = ?2, auto_increment = ?3, "
                              "mtime_ns = ?4 WHERE id = ?1",
        [S_OBJSTORE_TOUCH] = "UPDATE stores SET mtime_ns = ?2 WHERE id = ?1",
        [S_OBJSTORE_KEYPATH] = "SELECT keypath, auto_increment FROM stores WHERE id = ?1",
};

STORE_SLOTS_FIT(OBJSTORES, STMT_COUNT);

/* Returns the reset statement `id` of this file's table. */
static sqlite3_stmt *stmt(struct store *st, enum stmt_id id)
{
	return store_stmt(st, STORE_SLOTS_OBJSTORES + (int)id, stmt_sql[id]);
}

int store_objstore_touch(struct store *st, int64_t objstore_id, int64_t mtime)
{
	sqlite3_stmt *s = stmt(st, S_OBJSTORE_TOUCH);
	if (!s)
		return -EIO;
	sqlite3_bind_int64(s, 1, objstore_id);
	sqlite3_bind_int64(s, 2, mtime);
	return store_step_done(st, s);
}

/* For a record made by a put: once per object store and transaction (a
 * push of 1,000 new records touched its object store 1,000 times); the
 * directory's mtime is then the time of the transaction's first new
 * record. */
int store_objstore_touch_once(struct store *st, int64_t objstore_id)
{
	if (st->txn_depth > 0 && st->touched_txn == st->txn_serial &&
	    st->touched_objstore == objstore_id)
		return 0;
	int rc = store_objstore_touch(st, objstore_id, store_now_ns());
	if (rc == 0) {
		st->touched_txn = st->txn_serial;
		st->touched_objstore = objstore_id;
	}
	return rc;
}

int store_keypath_of(struct store *st, int64_t objstore_id, char **keypath, bool *autoinc)
{
	sqlite3_stmt *s = stmt(st, S_OBJSTORE_KEYPATH);
	if (!s)
		return -EIO;
	sqlite3_bind_int64(s, 1, objstore_id);
	int rc = sqlite3_step(s);
	int res = -ENOENT;
	if (rc == SQLITE_ROW) {
		*keypath = store_col_strdup(s, 0);
		if (autoinc)
			*autoinc = sqlite3_column_int(s, 1) != 0;
		res = *keypath ? 0 : -ENOMEM;
	} else if (rc != SQLITE_DONE) {
		res = store_sql_fail(st, rc);
	}
	sqlite3_reset(s);
	return res;
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

/* Looks up database or object store `name` under its parent (statement `which`:
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

/* The directory name of a new database or object store (`what`) called `name`
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

int store_db_bump_version(struct store *st, int64_t db_id, int64_t mtime)
{
	sqlite3_stmt *s = stmt(st, S_DB_BUMP_VERSION);
	if (!s)
		return -EIO;
	sqlite3_bind_int64(s, 1, db_id);
	sqlite3_bind_int64(s, 2, mtime);
	return store_step_done(st, s);
}

int store_db_resolve(struct store *st, int64_t client_id, const char *name, bool create,
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
		res = store_tree_log(st, store_ino(STORE_CLIENT, client_id), fname, origin);
	free(fname);
	return res;
}

int store_objstore_ensure(struct store *st, int64_t db_id, const char *name, const char *keypath,
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
	/* A new object store means a new schema version for the browsers. */
	if (res == 0)
		res = store_db_bump_version(st, db_id, now);
	if (res == 0)
		res = store_tree_log(st, store_ino(STORE_DATABASE, db_id), fname, origin);
	free(fname);
	return res;
}

int store_objstore_info(struct store *st, uint64_t objstore_dir, char **keypath,
                        bool *autoincrement)
{
	if (store_ino_kind(objstore_dir) != STORE_OBJSTORE)
		return -ENODATA;
	return store_keypath_of(st, store_ino_id(objstore_dir), keypath, autoincrement);
}
