/* store_records.c - records and their revisions: a put or a delete of one
 * record, inside the caller's transaction, with its change logged.
 *
 * A write bumps the record's revision and appends one change in the same
 * transaction. A removed record leaves behind a new TOMBSTONE row holding
 * its name and revision (for sync), while its old row becomes an ORPHAN the
 * kernel may still read through an open file, until the FUSE layer sees it
 * forgotten. A tombstone has never been shown to the kernel, so reviving it
 * for a new record of the same key is safe and keeps the revision history.
 */
#include "idbmount/store/store.h"

#include "store_internal.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

int store_prepare_value(struct store *st, int64_t objstore_id, const char *key, const char *text,
                        size_t len, const json_t *value_in, struct prepared_value *out)
{
	char *keypath = NULL;
	int rc = store_keypath_of(st, objstore_id, &keypath, NULL);
	if (!rc)
		rc = store_prepare_value_keypath(st->max_record, st->err, sizeof(st->err), keypath,
		                                 key, text, len, value_in, out);
	free(keypath);
	return rc;
}

int store_record_write(struct store *st, struct store_row *r, const char *key, int64_t base_rev,
                       const struct prepared_value *p, enum store_origin origin, int64_t *rev,
                       int64_t *seq)
{
	int64_t new_rev = base_rev + 1;
	int64_t new_seq = 0;
	int rc = store_change_append(st, r->objstore_id, r->name, key, false, new_rev, origin,
	                             p->compact.data, &new_seq);
	if (rc)
		return rc;
	/* The row as it will be; *r takes it once written. */
	struct store_row next = *r;
	next.state = STORE_LIVE;
	next.size = p->file.len;
	next.rev = new_rev;
	next.seq = new_seq;
	next.mtime_ns = store_now_ns();
	next.origin = origin;
	const char *content = p->file.data ? p->file.data : "";
	if (r->id == 0) /* a new record: its row is made whole in one statement */
		rc = store_row_insert(st, &next, content, p->file.len);
	else
		rc = store_row_update(st, &next, content, p->file.len);
	if (rc)
		return rc;
	*r = next;
	if (rev)
		*rev = new_rev;
	if (seq)
		*seq = new_seq;
	return 0;
}

int store_tombstone_add(struct store *st, int64_t objstore_id, const char *name, const char *key,
                        int64_t old_rev, enum store_origin origin, int64_t *seq)
{
	int64_t new_seq = 0;
	int rc = store_change_append(st, objstore_id, name, key, true, old_rev + 1, origin, NULL,
	                             &new_seq);
	if (rc)
		return rc;
	struct store_row t = {
	        .objstore_id = objstore_id,
	        .state = STORE_TOMBSTONE,
	        .name = (char *)name,
	        .key = (char *)key,
	        .rev = old_rev + 1,
	        .seq = new_seq,
	        .mtime_ns = store_now_ns(),
	        .origin = origin,
	};
	rc = store_row_insert(st, &t, NULL, 0);
	if (rc == 0 && seq)
		*seq = new_seq;
	return rc;
}

int store_tombstone_restore(struct store *st, const struct store_row *r)
{
	/* Without it the key's next revision would start again at 1, and a
	 * browser's base from before the delete would be taken for current. */
	struct store_row t = *r;
	t.state = STORE_TOMBSTONE;
	t.size = 0;
	return store_row_insert(st, &t, NULL, 0);
}

int store_record_unlink(struct store *st, struct store_row *r, enum store_origin origin,
                        int64_t *seq)
{
	bool record = r->state == STORE_LIVE;
	int rc = store_row_orphan(st, r->id);
	if (!rc && record)
		rc = store_tombstone_add(st, r->objstore_id, r->name, r->key, r->rev, origin, seq);
	if (!rc && store_row_holds_tombstone(r))
		rc = store_tombstone_restore(st, r);
	if (!rc)
		rc = store_objstore_touch(st, r->objstore_id, store_now_ns());
	return rc;
}

/* What a row says of its record, for a write's check. */
static void state_of_row(const struct store_row *r, bool found, struct store_record_state *out)
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

int store_record_put_prepared(struct store *st, int64_t objstore_id, struct store_put_prep *p,
                              const json_t *value, enum store_origin origin, store_check_fn check,
                              void *check_ctx, struct store_record_state *now, int64_t *rev,
                              int64_t *seq)
{
	if (p->key_rc) {
		store_set_error(st, "%s", p->err);
		return p->key_rc;
	}
	struct store_row r;
	memset(&r, 0, sizeof(r));
	int found = store_row_by_name(st, objstore_id, p->name, &r);
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
		rc = store_prepare_value(st, objstore_id, p->canon, NULL, 0, value, &p->value);
		p->prepared = rc == 0;
	}
	if (rc == 0 && found == -ENOENT) {
		/* store_record_write makes the row. */
		r.objstore_id = objstore_id;
		r.name = strdup(p->name);
		r.key = strdup(p->canon);
		rc = r.name && r.key ? store_objstore_touch_once(st, objstore_id) : -ENOMEM;
	}
	if (rc == 0)
		rc = store_record_write(st, &r, p->canon, r.rev, &p->value, origin, rev, seq);
	store_row_free(&r);
	return rc;
}

/* The core of store_put: writes record `key` of object store `objstore_id`, inside
 * the caller's transaction. */
int store_record_put(struct store *st, int64_t objstore_id, const char *keypath, const json_t *key,
                     const json_t *value, enum store_origin origin, store_check_fn check,
                     void *check_ctx, struct store_record_state *now, int64_t *rev, int64_t *seq)
{
	struct store_put_prep p;
	store_put_prepare(st->max_record, keypath, key, value, &p);
	int rc = store_record_put_prepared(st, objstore_id, &p, value, origin, check, check_ctx,
	                                   now, rev, seq);
	store_put_prep_free(&p);
	return rc;
}

/* The core of store_delete, inside the caller's transaction. */
int store_record_delete(struct store *st, int64_t objstore_id, const json_t *key,
                        enum store_origin origin, store_check_fn check, void *check_ctx,
                        struct store_record_state *now, int64_t *rev, int64_t *seq)
{
	*seq = 0;
	if (rev)
		*rev = 0;
	int rc = store_key_valid(st, key);
	if (rc)
		return rc;
	char *name = store_name_for_key(key);
	if (!name)
		return -ENOMEM;
	struct store_row r;
	rc = store_row_by_name(st, objstore_id, name, &r);
	if ((rc == 0 || rc == -ENOENT) && check) {
		struct store_record_state state;
		state_of_row(&r, rc == 0, &state);
		if (now)
			*now = state;
		if (!check(check_ctx, &state)) {
			store_row_free(&r);
			free(name);
			return STORE_REFUSED;
		}
	}
	if (rc == 0 && r.state == STORE_LIVE) {
		rc = store_record_unlink(st, &r, origin, seq);
		if (rc == 0 && rev)
			*rev = r.rev + 1;
	} else if (rc == 0 || rc == -ENOENT) {
		if (rc == 0 && rev && r.state == STORE_TOMBSTONE)
			*rev = r.rev;
		rc = 0;
	}
	store_row_free(&r);
	free(name);
	return rc;
}

/* What record `key` of object store `objstore_id` is now (see store_internal.h). */
int store_record_state(struct store *st, int64_t objstore_id, const json_t *key,
                       struct store_record_state *out)
{
	memset(out, 0, sizeof(*out));
	char *name = store_name_for_key(key);
	if (!name)
		return -EINVAL;
	struct store_row r;
	int rc = store_row_by_name(st, objstore_id, name, &r);
	if (rc == 0 || rc == -ENOENT) {
		state_of_row(&r, rc == 0, out);
		rc = 0;
	}
	store_row_free(&r);
	free(name);
	return rc;
}
