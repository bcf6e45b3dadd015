/* store_rows.c - rows of the records table, one per file of the mount:
 * loaded by name or id, inserted, updated, orphaned, deleted, read.
 *
 * A row's id is its inode number (with a kind tag, store.h). A rename keeps
 * the row, so the kernel's inode follows the file; what a row's state means
 * is said in store.h (LIVE, SCRATCH, TOMBSTONE, ORPHAN).
 */
#include "idbmount/store/store.h"

#include "store_internal.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

/* Every statement of this file, prepared once per connection on first use. */
enum stmt_id {
	S_REC_BY_NAME,
	S_REC_BY_ID,
	S_REC_VALUE,
	S_REC_INSERT,
	S_REC_UPDATE,
	S_REC_ORPHAN,
	S_REC_DELETE,
	STMT_COUNT
};

#define REC_COLS "id, store_id, state, name, key, size, rev, seq, mtime_ns, origin"

static const char *const stmt_sql[STMT_COUNT] = {
        [S_REC_BY_NAME] = "SELECT " REC_COLS " FROM records WHERE store_id = ?1 AND name = ?2",
        [S_REC_BY_ID] = "SELECT " REC_COLS " FROM records WHERE id = ?1",
        [S_REC_VALUE] = "SELECT value, rev FROM records WHERE id = ?1",
        [S_REC_INSERT] = "INSERT INTO records(store_id, state, name, key, value, size, rev, seq, "
                         "mtime_ns, origin) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
        [S_REC_UPDATE] =
                "UPDATE records SET state = ?2, value = ?3, size = ?4, rev = ?5, seq = ?6, "
                "mtime_ns = ?7, origin = ?8 WHERE id = ?1",
        [S_REC_ORPHAN] = "UPDATE records SET state = 3, name = NULL WHERE id = ?1",
        [S_REC_DELETE] = "DELETE FROM records WHERE id = ?1",
};

STORE_SLOTS_FIT(ROWS, STMT_COUNT);

/* Returns the reset statement `id` of this file's table. */
static sqlite3_stmt *stmt(struct store *st, enum stmt_id id)
{
	return store_stmt(st, STORE_SLOTS_ROWS + (int)id, stmt_sql[id]);
}

void store_row_free(struct store_row *r)
{
	free(r->name);
	free(r->key);
	memset(r, 0, sizeof(*r));
}

static void row_from_stmt(sqlite3_stmt *s, void *out)
{
	struct store_row *r = out;
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

/* Loads the row statement `s` answers. Returns 0 or -ENOENT. */
static int row_load(struct store *st, sqlite3_stmt *s, struct store_row *r)
{
	memset(r, 0, sizeof(*r));
	return store_step_row(st, s, row_from_stmt, r);
}

int store_row_by_name(struct store *st, int64_t objstore_id, const char *name, struct store_row *r)
{
	memset(r, 0, sizeof(*r));
	sqlite3_stmt *s = stmt(st, S_REC_BY_NAME);
	if (!s)
		return -EIO;
	sqlite3_bind_int64(s, 1, objstore_id);
	store_bind_text(s, 2, name);
	return row_load(st, s, r);
}

int store_row_by_id(struct store *st, int64_t id, struct store_row *r)
{
	memset(r, 0, sizeof(*r));
	sqlite3_stmt *s = stmt(st, S_REC_BY_ID);
	if (!s)
		return -EIO;
	sqlite3_bind_int64(s, 1, id);
	return row_load(st, s, r);
}

void store_row_node(const struct store_row *r, struct store_node *n)
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

int store_row_insert(struct store *st, struct store_row *r, const void *value, size_t len)
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

int store_row_update(struct store *st, const struct store_row *r, const void *value, size_t len)
{
	sqlite3_stmt *s = stmt(st, S_REC_UPDATE);
	if (!s)
		return -EIO;
	sqlite3_bind_int64(s, 1, r->id);
	sqlite3_bind_int(s, 2, r->state);
	sqlite3_bind_blob(s, 3, value, (int)len, SQLITE_STATIC);
	sqlite3_bind_int64(s, 4, (int64_t)len);
	sqlite3_bind_int64(s, 5, r->rev);
	sqlite3_bind_int64(s, 6, r->seq);
	sqlite3_bind_int64(s, 7, r->mtime_ns);
	sqlite3_bind_int(s, 8, r->origin);
	return store_step_done(st, s);
}

/* Runs statement `id` of one parameter, the row's id. */
static int row_step(struct store *st, enum stmt_id id, int64_t row_id)
{
	sqlite3_stmt *s = stmt(st, id);
	if (!s)
		return -EIO;
	sqlite3_bind_int64(s, 1, row_id);
	return store_step_done(st, s);
}

int store_row_orphan(struct store *st, int64_t id)
{
	return row_step(st, S_REC_ORPHAN, id);
}

int store_row_delete(struct store *st, int64_t id)
{
	return row_step(st, S_REC_DELETE, id);
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
