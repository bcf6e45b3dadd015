/* store_bykey.c - records by CLIENT/DB/STORE path and key, for
 * idbmountctl and imports: put, delete, get, check, list, object stores
 * made with a keyPath, and imports' records given as text (store.h).
 */
#include "idbmount/store/store.h"

#include "store_internal.h"

#include "idbmount/codec/key.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

/* Every statement of this file, prepared once per connection on first use. */
enum stmt_id { S_REC_KEYS, STMT_COUNT };

static const char *const stmt_sql[STMT_COUNT] = {
        /* "state <= 1" lets the partial index records_listing serve it. */
        [S_REC_KEYS] = "SELECT id, key FROM records WHERE store_id = ?1 AND state <= 1 "
                       "AND state = 0 AND id > ?2 ORDER BY id",
};

STORE_SLOTS_FIT(BYKEY, STMT_COUNT);

/* Returns the reset statement `id` of this file's table. */
static sqlite3_stmt *stmt(struct store *st, enum stmt_id id)
{
	return store_stmt(st, STORE_SLOTS_BYKEY + (int)id, stmt_sql[id]);
}

/* Resolves CLIENT/DB/STORE to an object store id, making the database
 * and the object store when `create` is set. */
static int path_resolve(struct store *st, const struct store_path *path, bool create,
                        int64_t *objstore_id)
{
	int64_t client_id = 0, db_id = 0;
	int rc = store_client_id_by_name(st, path->client, &client_id);
	if (rc == 0)
		rc = store_db_resolve(st, client_id, path->db, create, ORIGIN_IMPORT, &db_id);
	if (rc == -ENOENT && !st->err[0])
		store_set_error(st, "client '%s' has no database '%s'", path->client, path->db);
	if (rc == 0)
		rc = store_objstore_ensure(st, db_id, path->objstore, "null", false, create, false,
		                           ORIGIN_IMPORT, objstore_id);
	if (rc == -ENOENT && !st->err[0])
		store_set_error(st, "database '%s' has no store '%s'", path->db, path->objstore);
	return rc;
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
	rc = store_client_id_by_name(st, path->client, &client_id);
	if (rc == 0)
		rc = store_db_resolve(st, client_id, path->db, true, ORIGIN_IMPORT, &db_id);
	if (rc == 0)
		rc = store_objstore_ensure(st, db_id, path->objstore, keypath_json, autoincrement,
		                           true, true, ORIGIN_IMPORT, &objstore_id);
	if (rc == -EEXIST)
		store_set_error(st, "store '%s' already exists", path->objstore);
	return store_txn_end(st, rc);
}

int store_put(struct store *st, const struct store_path *path, const json_t *key,
              const json_t *value, enum store_origin origin, bool create_missing, int64_t *rev,
              int64_t *seq)
{
	st->err[0] = '\0';
	int rc = store_key_valid(st, key);
	if (!rc)
		rc = store_txn_begin(st);
	if (rc)
		return rc;
	int64_t objstore_id = 0;
	rc = path_resolve(st, path, create_missing, &objstore_id);
	if (rc == 0)
		rc = store_record_put(st, objstore_id, NULL, key, value, origin, NULL, NULL, NULL,
		                      rev, seq);
	return store_txn_end(st, rc);
}

int store_delete(struct store *st, const struct store_path *path, const json_t *key,
                 enum store_origin origin, int64_t *seq)
{
	st->err[0] = '\0';
	*seq = 0;
	int rc = store_key_valid(st, key);
	if (!rc)
		rc = store_txn_begin(st);
	if (rc)
		return rc;
	int64_t objstore_id = 0;
	rc = path_resolve(st, path, false, &objstore_id);
	if (rc == 0)
		rc = store_record_delete(st, objstore_id, key, origin, NULL, NULL, NULL, NULL, seq);
	return store_txn_end(st, rc);
}

int store_get(struct store *st, const struct store_path *path, const json_t *key, char **data,
              size_t *len, int64_t *rev)
{
	st->err[0] = '\0';
	*data = NULL;
	char *name = store_name_for_key(key);
	if (!name) {
		store_set_error(st, "not a valid key");
		return -EINVAL;
	}
	int64_t objstore_id = 0;
	int rc = path_resolve(st, path, false, &objstore_id);
	struct store_row r;
	memset(&r, 0, sizeof(r));
	if (rc == 0)
		rc = store_row_by_name(st, objstore_id, name, &r);
	if (rc == 0 && r.state != STORE_LIVE)
		rc = -ENOENT;
	if (rc == 0) {
		*rev = r.rev;
		rc = store_read_file(st, store_ino(STORE_FILE, r.id), data, len);
	}
	store_row_free(&r);
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
	int rc = store_client_id_by_name(st, path->client, &client_id);
	if (rc)
		return rc;
	rc = store_db_resolve(st, client_id, path->db, false, ORIGIN_IMPORT, &db_id);
	if (rc == 0)
		rc = store_objstore_ensure(st, db_id, path->objstore, "null", false, false, false,
		                           ORIGIN_IMPORT, &objstore_id);
	/* A missing store is what create_missing would make: out-of-line. */
	char *keypath = NULL;
	if (rc == 0)
		rc = store_keypath_of(st, objstore_id, &keypath, NULL);
	else if (rc == -ENOENT)
		rc = (keypath = strdup("null")) ? 0 : -ENOMEM;
	if (rc)
		return rc;
	json_t *extracted = NULL;
	if (!key) {
		rc = store_keypath_extract(st, keypath, (json_t *)value, &extracted);
		key = extracted;
	} else {
		rc = store_key_valid(st, key);
	}
	char *canon = rc ? NULL : key_canonical_json(key);
	if (!rc && !canon)
		rc = -ENOMEM;
	struct prepared_value p;
	if (!rc)
		rc = store_prepare_value_keypath(st->max_record, st->err, sizeof(st->err), keypath,
		                                 canon, NULL, 0, value, &p);
	if (!rc)
		store_prepared_free(&p);
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

/* ---- imports ---------------------------------------------------------- */

struct store_import {
	struct store *st;
	struct store_path path;
	int64_t objstore_id; /* 0 while the store does not exist */
	char *keypath;       /* "null" while it does not exist */
};

/* Finds the target (with `create`, making it) and its key path. */
static int import_target(struct store_import *im, bool create)
{
	struct store *st = im->st;
	int64_t client_id = 0, db_id = 0, objstore_id = 0;
	int rc = store_client_id_by_name(st, im->path.client, &client_id);
	if (rc)
		return rc;
	rc = store_db_resolve(st, client_id, im->path.db, create, ORIGIN_IMPORT, &db_id);
	if (rc == 0)
		rc = store_objstore_ensure(st, db_id, im->path.objstore, "null", false, create,
		                           false, ORIGIN_IMPORT, &objstore_id);
	char *keypath = NULL;
	if (rc == 0)
		rc = store_keypath_of(st, objstore_id, &keypath, NULL);
	else if (rc == -ENOENT && !create)
		rc = (keypath = strdup("null")) ? 0 : -ENOMEM;
	if (rc)
		return rc;
	free(im->keypath);
	im->keypath = keypath;
	im->objstore_id = objstore_id;
	return 0;
}

int store_import_open(struct store *st, const struct store_path *path, struct store_import **out)
{
	st->err[0] = '\0';
	*out = NULL;
	struct store_import *im = calloc(1, sizeof(*im));
	if (!im)
		return -ENOMEM;
	im->st = st;
	im->path = *path;
	int rc = import_target(im, false);
	if (rc) {
		store_import_close(im);
		return rc;
	}
	*out = im;
	return 0;
}

int store_import_resolve(struct store_import *im)
{
	im->st->err[0] = '\0';
	return import_target(im, false);
}

void store_import_close(struct store_import *im)
{
	if (!im)
		return;
	free(im->keypath);
	free(im);
}

int store_import_put(struct store_import *im, const char *key, size_t key_len, const char *value,
                     size_t value_len, bool write, int64_t *seq)
{
	struct store *st = im->st;
	st->err[0] = '\0';
	*seq = 0;
	/* The store is made before the value is laid out for its key path. */
	int rc = write && im->objstore_id == 0 ? import_target(im, true) : 0;
	if (rc)
		return rc;
	struct store_put_prep p;
	if (store_put_prepare_import(st->max_record, im->keypath, (struct json_span){key, key_len},
	                             (struct json_span){value, value_len}, &p) != 0)
		return STORE_IMPORT_DECLINED;
	if (write)
		rc = store_record_put_prepared(st, im->objstore_id, &p, NULL, ORIGIN_IMPORT, NULL,
		                               NULL, NULL, NULL, seq);
	store_put_prep_free(&p);
	return rc;
}

int store_import_shape(const struct store_import *im, struct store_import_shape *out)
{
	out->max_record = im->st->max_record;
	out->keypath = strdup(im->keypath);
	return out->keypath ? 0 : -ENOMEM;
}

void store_import_shape_free(struct store_import_shape *shape)
{
	free(shape->keypath);
	shape->keypath = NULL;
}

struct store_import_ready {
	struct store_put_prep prep;
};

int store_import_prepare(const struct store_import_shape *shape, const char *key, size_t key_len,
                         const char *value, size_t value_len, struct store_import_ready **out)
{
	*out = NULL;
	struct store_import_ready *r = malloc(sizeof(*r));
	if (!r)
		return -ENOMEM;
	if (store_put_prepare_import(shape->max_record, shape->keypath,
	                             (struct json_span){key, key_len},
	                             (struct json_span){value, value_len}, &r->prep) != 0) {
		free(r);
		return STORE_IMPORT_DECLINED;
	}
	*out = r;
	return 0;
}

int store_import_put_ready(struct store_import *im, const struct store_import_shape *shape,
                           struct store_import_ready *ready, int64_t *seq)
{
	struct store *st = im->st;
	st->err[0] = '\0';
	*seq = 0;
	int rc = im->objstore_id == 0 ? import_target(im, true) : 0;
	if (rc)
		return rc;
	if (strcmp(shape->keypath, im->keypath) != 0 || shape->max_record != st->max_record)
		return STORE_IMPORT_DECLINED;
	return store_record_put_prepared(st, im->objstore_id, &ready->prep, NULL, ORIGIN_IMPORT,
	                                 NULL, NULL, NULL, NULL, seq);
}

void store_import_ready_free(struct store_import_ready *ready)
{
	if (!ready)
		return;
	store_put_prep_free(&ready->prep);
	free(ready);
}

int store_import_delete(struct store_import *im, const char *key, size_t key_len, bool write,
                        int64_t *seq)
{
	struct store *st = im->st;
	st->err[0] = '\0';
	*seq = 0;
	json_t *k = json_text_parse(key, key_len, NULL, 0);
	int rc = k && key_check(k, NULL, 0) == 0 ? 0 : STORE_IMPORT_DECLINED;
	if (!rc && write && im->objstore_id == 0) {
		/* A store made since the transaction began (by the tree path). */
		rc = import_target(im, false);
	}
	if (!rc && write && im->objstore_id != 0)
		rc = store_record_delete(st, im->objstore_id, k, ORIGIN_IMPORT, NULL, NULL, NULL,
		                         NULL, seq);
	json_decref(k);
	return rc;
}
