/* store_files.c - changes through the mount: files created, written,
 * removed and renamed in object store directories, orphans dropped. A
 * ".json" name is a record (written through store_records.c); any other
 * name is a scratch file the store only keeps.
 */
#include "idbmount/store/store.h"

#include "store_internal.h"

#include "idbmount/codec/key.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

/* Every statement of this file, prepared once per connection on first use. */
enum stmt_id { S_REC_SET_CONTENT, S_REC_MOVE, S_REC_ORPHANS, S_REC_TOTALS, STMT_COUNT };

static const char *const stmt_sql[STMT_COUNT] = {
        [S_REC_SET_CONTENT] =
                "UPDATE records SET value = ?2, size = ?3, mtime_ns = ?4 WHERE id = ?1",
        [S_REC_MOVE] = "UPDATE records SET store_id = ?2, name = ?3, key = ?4 WHERE id = ?1",
        [S_REC_ORPHANS] = "SELECT id FROM records WHERE state = 3",
        [S_REC_TOTALS] = "SELECT count(*), coalesce(sum(size), 0) FROM records WHERE state <= 1",
};

STORE_SLOTS_FIT(FILES, STMT_COUNT);

/* Returns the reset statement `id` of this file's table. */
static sqlite3_stmt *stmt(struct store *st, enum stmt_id id)
{
	return store_stmt(st, STORE_SLOTS_FILES + (int)id, stmt_sql[id]);
}

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
	struct store_row r;
	int found = store_row_by_name(st, objstore_id, name, &r);
	if (found == 0 && r.state != STORE_TOMBSTONE) {
		rc = -EEXIST;
	} else if (found == 0) {
		/* Revive the tombstone as a pending (scratch) file: its
		 * revision carries on when valid JSON is written. */
		r.state = STORE_SCRATCH;
		r.size = 0;
		r.mtime_ns = store_now_ns();
		r.origin = ORIGIN_FS;
		rc = store_row_update(st, &r, "", 0);
	} else if (found == -ENOENT) {
		r.objstore_id = objstore_id;
		r.state = STORE_SCRATCH;
		r.name = strdup(name);
		r.mtime_ns = store_now_ns();
		r.origin = ORIGIN_FS;
		rc = r.name ? 0 : -ENOMEM;
		if (!rc && store_is_record_name(name))
			rc = store_key_for_name(st, name, NULL, &r.key);
		if (!rc)
			rc = store_row_insert(st, &r, "", 0);
	} else {
		rc = found;
	}
	if (!rc)
		rc = store_objstore_touch(st, objstore_id, r.mtime_ns);
	rc = store_txn_end(st, rc);
	if (!rc)
		store_row_node(&r, out);
	store_row_free(&r);
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
	struct store_row r;
	rc = store_row_by_id(st, store_ino_id(ino), &r);
	if (rc == 0 && r.state == STORE_TOMBSTONE)
		rc = -ENOENT;
	bool record = rc == 0 && r.state != STORE_ORPHAN && store_is_record_name(r.name);
	if (rc == 0 && record) {
		struct prepared_value p;
		rc = store_prepare_value(st, r.objstore_id, r.key, data ? data : "", len, NULL, &p);
		if (rc == 0) {
			bool created = r.state != STORE_LIVE;
			rc = store_record_write(st, &r, r.key, r.rev, &p, ORIGIN_FS, NULL, NULL);
			if (rc == 0 && created)
				rc = store_objstore_touch(st, r.objstore_id, r.mtime_ns);
			*rewritten = p.rewritten;
			store_prepared_free(&p);
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
		store_row_node(&r, out);
	store_row_free(&r);
	return rc;
}

int store_drop_new_file(struct store *st, uint64_t ino)
{
	st->err[0] = '\0';
	int rc = store_txn_begin(st);
	if (rc)
		return rc;
	struct store_row r;
	rc = store_row_by_id(st, store_ino_id(ino), &r);
	/* Only a record name that never got a record: an empty SCRATCH row
	 * (a record's failed commit leaves the record as it was). */
	bool unborn = rc == 0 && r.state == STORE_SCRATCH && r.size == 0 && r.key &&
	              store_is_record_name(r.name);
	if (rc == 0 && !unborn)
		rc = 1;
	if (rc == 0) /* a tombstone it revived comes back */
		rc = store_record_unlink(st, &r, ORIGIN_FS, NULL);
	rc = store_txn_end(st, rc); /* 1 rolls back an unchanged transaction */
	store_row_free(&r);
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
	struct store_row r;
	rc = store_row_by_name(st, store_ino_id(dir), name, &r);
	if (rc == 0 && r.state > STORE_SCRATCH)
		rc = -ENOENT;
	if (rc == 0)
		rc = store_record_unlink(st, &r, ORIGIN_FS, NULL);
	rc = store_txn_end(st, rc);
	store_row_free(&r);
	return rc;
}

/* Gives row `r` the name `name` in object store `objstore_id`, whose previous holder
 * had revision `prev_rev`: as a record if the name ends in ".json" (the
 * content must then be valid JSON for that key), else as a scratch file. */
static int bind_row(struct store *st, struct store_row *r, int64_t objstore_id, const char *name,
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
		char *data = NULL;
		size_t len = 0;
		rc = store_read_file(st, store_ino(STORE_FILE, r->id), &data, &len);
		if (rc)
			return rc;
		r->state = STORE_SCRATCH;
		r->size = len;
		r->rev = 0;
		r->seq = 0;
		r->origin = ORIGIN_FS;
		rc = store_row_update(st, r, data, len);
		free(data);
		return rc;
	}
	if (r->state == STORE_SCRATCH && r->size == 0) {
		/* An empty pending file stays pending under its new name. */
		r->rev = prev_rev;
		r->origin = ORIGIN_FS;
		return store_row_update(st, r, "", 0);
	}
	char *data = NULL;
	size_t len = 0;
	rc = store_read_file(st, store_ino(STORE_FILE, r->id), &data, &len);
	if (rc)
		return rc;
	struct prepared_value p;
	rc = store_prepare_value(st, objstore_id, key, data, len, NULL, &p);
	free(data);
	if (rc) {
		if (rc == -EINVAL)
			store_set_error(st, "cannot become %s: %s", name, store_last_error(st));
		return rc;
	}
	rc = store_record_write(st, r, key, prev_rev, &p, ORIGIN_FS, NULL, NULL);
	store_prepared_free(&p);
	return rc;
}

int store_relink_file(struct store *st, uint64_t ino, uint64_t dir, const char *name)
{
	st->err[0] = '\0';
	int rc = store_txn_begin(st);
	if (rc)
		return rc;
	struct store_row r, holder;
	memset(&holder, 0, sizeof(holder));
	char *key = NULL;
	rc = store_row_by_id(st, store_ino_id(ino), &r);
	if (rc == 0 && r.state != STORE_ORPHAN)
		rc = -ENOENT; /* already gone, or named again: nothing to do here */
	int found = rc ? rc : store_row_by_name(st, store_ino_id(dir), name, &holder);
	if (rc == 0 && found == 0 && holder.state != STORE_TOMBSTONE) {
		store_set_error(st, "%s: made again by another program meanwhile", name);
		rc = -EEXIST;
	} else if (rc == 0 && found != 0 && found != -ENOENT) {
		rc = found;
	}
	if (rc == 0)
		rc = store_key_for_name(st, name, found == 0 ? holder.key : NULL, &key);
	/* As at create: a tombstone's revision carries on. */
	if (rc == 0 && found == 0)
		rc = store_row_delete(st, holder.id);
	if (rc == 0) {
		/* An empty pending file again, under its name. */
		r.state = STORE_SCRATCH;
		r.size = 0;
		r.seq = found == 0 ? holder.seq : 0;
		r.mtime_ns = store_now_ns();
		rc = bind_row(st, &r, store_ino_id(dir), name, key, found == 0 ? holder.rev : 0);
	}
	if (rc == 0)
		rc = store_objstore_touch(st, store_ino_id(dir), r.mtime_ns);
	rc = store_txn_end(st, rc);
	store_row_free(&r);
	store_row_free(&holder);
	free(key);
	return rc;
}

/* The key a rename target stands for (NULL for a scratch name). */
static int target_key(struct store *st, const char *name, const struct store_row *holder,
                      char **key)
{
	*key = NULL;
	if (!store_is_record_name(name))
		return 0;
	return store_key_for_name(st, name, holder ? holder->key : NULL, key);
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
	struct store_row src, dst;
	memset(&dst, 0, sizeof(dst));
	char *src_key = NULL, *dst_key = NULL;
	rc = store_row_by_name(st, src_objstore, name, &src);
	if (rc == 0 && src.state > STORE_SCRATCH)
		rc = -ENOENT;
	int dst_found = rc ? rc : store_row_by_name(st, dst_objstore, newname, &dst);
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
			rc = store_row_orphan(st, src.id);
		if (!rc)
			rc = store_row_orphan(st, dst.id);
		if (!rc)
			rc = bind_row(st, &src, dst_objstore, newname, dst_key, dst_rev);
		if (!rc)
			rc = bind_row(st, &dst, src_objstore, name, src_key, src_rev);
		goto done;
	}
	if (rc == 0 && dst_found == 0) {
		/* The target's old row leaves: visible rows become orphans
		 * (the kernel may hold them), a tombstone is replaced. */
		rc = dst.state == STORE_TOMBSTONE ? store_row_delete(st, dst.id)
		                                  : store_row_orphan(st, dst.id);
	}
	if (rc == 0) {
		/* The row as it was: what it leaves behind under its old name. */
		struct store_row before = src;
		before.name = src.name ? strdup(src.name) : NULL;
		before.key = src.key ? strdup(src.key) : NULL;
		int64_t prev_rev = dst_found == 0 && dst_key ? dst.rev : 0;
		rc = bind_row(st, &src, dst_objstore, newname, dst_key, prev_rev);
		if (rc == 0 && before.state == STORE_LIVE)
			rc = store_tombstone_add(st, src_objstore, before.name, before.key,
			                         before.rev, ORIGIN_FS, NULL);
		else if (rc == 0 && store_row_holds_tombstone(&before))
			rc = store_tombstone_restore(st, &before);
		store_row_free(&before);
	}
	if (rc == 0)
		rc = store_objstore_touch(st, src_objstore, store_now_ns());
	if (rc == 0 && dst_objstore != src_objstore)
		rc = store_objstore_touch(st, dst_objstore, store_now_ns());
done:
	rc = store_txn_end(st, rc);
	store_row_free(&src);
	store_row_free(&dst);
	free(src_key);
	free(dst_key);
	return rc;
}

int store_drop_orphan(struct store *st, uint64_t ino)
{
	struct store_row r;
	int rc = store_row_by_id(st, store_ino_id(ino), &r);
	if (rc == 0 && r.state == STORE_ORPHAN)
		rc = store_row_delete(st, r.id);
	store_row_free(&r);
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
