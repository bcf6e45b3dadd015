/* store_tree.c - the tree the mount shows: its nodes, looked up, listed,
 * and its directories made and removed (clients, databases, object
 * stores; see store.h for the layout).
 */
#include "idbmount/store/store.h"

#include "store_internal.h"

#include "idbmount/codec/key.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

/* Every statement of this file, prepared once per connection on first use. */
enum stmt_id {
	S_CLIENT_BY_FNAME,
	S_CLIENT_BY_ID,
	S_CLIENT_LIST,
	S_CLIENT_COUNT_DBS,
	S_DB_BY_FNAME,
	S_DB_BY_ID,
	S_DB_LIST,
	S_DB_COUNT_STORES,
	S_DB_DROP,
	S_OBJSTORE_BY_FNAME,
	S_OBJSTORE_BY_ID,
	S_OBJSTORE_LIST,
	S_OBJSTORE_DROP,
	S_OBJSTORE_COUNT_VISIBLE,
	S_REC_LIST,
	STMT_COUNT
};

static const char *const stmt_sql[STMT_COUNT] = {
        [S_CLIENT_BY_FNAME] = "SELECT id, mtime_ns FROM clients WHERE fname = ?1",
        [S_CLIENT_BY_ID] = "SELECT id, mtime_ns, fname FROM clients WHERE id = ?1",
        [S_CLIENT_LIST] = "SELECT id, fname, mtime_ns FROM clients WHERE id > ?1 ORDER BY id",
        [S_CLIENT_COUNT_DBS] = "SELECT count(*) FROM dbs WHERE client_id = ?1 AND dropped = 0",
        [S_DB_BY_FNAME] =
                "SELECT id, mtime_ns, dropped FROM dbs WHERE client_id = ?1 AND fname = ?2",
        [S_DB_BY_ID] = "SELECT id, mtime_ns, client_id, dropped FROM dbs WHERE id = ?1",
        [S_DB_LIST] = "SELECT id, fname, mtime_ns FROM dbs WHERE client_id = ?1 AND dropped = 0 "
                      "AND id > ?2 ORDER BY id",
        [S_DB_COUNT_STORES] = "SELECT count(*) FROM stores WHERE db_id = ?1 AND dropped = 0",
        [S_DB_DROP] = "UPDATE dbs SET dropped = 1, mtime_ns = ?2 WHERE id = ?1",
        [S_OBJSTORE_BY_FNAME] = "SELECT id, mtime_ns, dropped FROM stores WHERE db_id = ?1 AND "
                                "fname = ?2",
        [S_OBJSTORE_BY_ID] = "SELECT id, mtime_ns, db_id, dropped FROM stores WHERE id = ?1",
        [S_OBJSTORE_LIST] =
                "SELECT id, fname, mtime_ns FROM stores WHERE db_id = ?1 AND dropped = 0 "
                "AND id > ?2 ORDER BY id",
        [S_OBJSTORE_DROP] = "UPDATE stores SET dropped = 1, mtime_ns = ?2 WHERE id = ?1",
        [S_OBJSTORE_COUNT_VISIBLE] =
                "SELECT count(*) FROM records WHERE store_id = ?1 AND state <= 1",
        /* Read from the index records_listing alone: no key, no value. */
        [S_REC_LIST] = "SELECT id, state, name, size, mtime_ns, rev, seq, origin FROM records "
                       "WHERE store_id = ?1 AND state <= 1 AND id > ?2 ORDER BY id",
};

STORE_SLOTS_FIT(TREE, STMT_COUNT);

/* Returns the reset statement `id` of this file's table. */
static sqlite3_stmt *stmt(struct store *st, enum stmt_id id)
{
	return store_stmt(st, STORE_SLOTS_TREE + (int)id, stmt_sql[id]);
}

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
		struct store_row r;
		int rc = store_row_by_name(st, store_ino_id(parent), name, &r);
		if (rc == 0 && r.state > STORE_SCRATCH)
			rc = -ENOENT;
		if (rc == 0)
			store_row_node(&r, out);
		store_row_free(&r);
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
	struct store_row r;
	int rc = store_row_by_id(st, store_ino_id(ino), &r);
	if (rc == 0 && r.state == STORE_TOMBSTONE)
		rc = -ENOENT;
	if (rc == 0)
		store_row_node(&r, out);
	store_row_free(&r);
	return rc;
}

int store_file_name(struct store *st, uint64_t ino, uint64_t *dir, char **name)
{
	if (store_ino_kind(ino) != STORE_FILE)
		return -EINVAL;
	struct store_row r;
	int rc = store_row_by_id(st, store_ino_id(ino), &r);
	if (rc == 0 && (r.state > STORE_SCRATCH || !r.name))
		rc = -ENOENT;
	if (rc == 0) {
		*dir = store_ino(STORE_OBJSTORE, r.objstore_id);
		*name = r.name;
		r.name = NULL;
	}
	store_row_free(&r);
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
		rc = store_db_resolve(st, store_ino_id(parent), raw, true, ORIGIN_FS, &id);
	} else {
		rc = store_objstore_ensure(st, store_ino_id(parent), raw, "null", false, true, true,
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
		struct store_row r;
		int rc = store_row_by_name(st, store_ino_id(parent), name, &r);
		store_row_free(&r);
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
	if (rc == 0 && pk == STORE_DATABASE)
		rc = store_db_bump_version(st, store_ino_id(parent), store_now_ns());
	if (rc == 0)
		rc = store_tree_log(st, parent, name, ORIGIN_FS);
	return store_txn_end(st, rc);
}
