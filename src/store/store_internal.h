/* store_internal.h - what the store's files share: the connection struct,
 * the SQL helpers of store_db.c and what each file lends the others. Only
 * src/store/ include this (and the fuzz targets of tests/fuzz, which check
 * pieces declared here): the rest of idbmount sees the store through
 * include/idbmount/store/store.h.
 *
 * The store is split by subject, each file calling only those above it in
 * this list (so no two files call each other):
 *   store_db.c         the connection: statement cache, errors, transactions
 *   store_keys.c       keys, key paths and values laid out (no SQL)
 *   store_changes.c    the change log, the tree log, the daemon's progress
 *   store_rows.c       rows of the records table
 *   store_objstores.c  databases and object stores by name, their keyPath
 *   store_tree.c       the mount's tree: lookup, getattr, readdir, mkdir, rmdir
 *   store_records.c    records and revisions: put, delete, tombstones
 *   store_files.c      files created, written, removed, renamed; orphans
 *   store_clients.c    clients and their tokens
 *   store_bykey.c      records by CLIENT/DB/STORE path and key
 *   store_sync*.c      what the sync endpoint needs: tokens, pull, schema
 *   store_push*.c      pushes: writes, parsing ahead, results (store_sync.c
 *                      tells which file does what)
 *   store_sinks.c      what the flusher needs
 *   store_schema.c     the schema, its version and the migrations between versions
 *   store_backup.c     backup and restore of a data directory
 *   store_open.c       opening a data directory: identity, settings, checkpoints
 * Each file keeps its own table of statements in its own range of slots of
 * the per-connection statement cache; store_open runs every file's schema
 * text (CREATE ... IF NOT EXISTS).
 */
#ifndef IDBMOUNT_STORE_INTERNAL_H
#define IDBMOUNT_STORE_INTERNAL_H

#include "idbmount/codec/json_text.h"
#include "idbmount/store/store.h"
#include "idbmount/util/buf.h"

#include <assert.h>
#include <jansson.h>
#include <sqlite3.h>
#include <stdbool.h>
#include <stdint.h>

/* A value made ready for a record: its file text and its compact form
 * for the change log. */
struct prepared_value {
	struct buf file;
	struct buf compact;
	bool rewritten;
};

/* Statement cache slots: a range per file, [STORE_SLOTS_X,
 * STORE_SLOTS_X_END), each ending where the next begins. */
#define STORE_SLOTS_DB        0   /* store_db.c */
#define STORE_SLOTS_OPEN      4   /* store_schema.c (the meta table, at open) */
#define STORE_SLOTS_CHANGES   8   /* store_changes.c */
#define STORE_SLOTS_ROWS      24  /* store_rows.c */
#define STORE_SLOTS_OBJSTORES 36  /* store_objstores.c */
#define STORE_SLOTS_TREE      52  /* store_tree.c */
#define STORE_SLOTS_FILES     72  /* store_files.c */
#define STORE_SLOTS_CLIENTS   80  /* store_clients.c */
#define STORE_SLOTS_BYKEY     88  /* store_bykey.c */
#define STORE_SLOTS_SYNC      96  /* store_sync.c */
#define STORE_SLOTS_SINKS     160 /* store_sinks.c */
#define STORE_STMT_SLOTS      224

#define STORE_SLOTS_DB_END        STORE_SLOTS_OPEN
#define STORE_SLOTS_OPEN_END      STORE_SLOTS_CHANGES
#define STORE_SLOTS_CHANGES_END   STORE_SLOTS_ROWS
#define STORE_SLOTS_ROWS_END      STORE_SLOTS_OBJSTORES
#define STORE_SLOTS_OBJSTORES_END STORE_SLOTS_TREE
#define STORE_SLOTS_TREE_END      STORE_SLOTS_FILES
#define STORE_SLOTS_FILES_END     STORE_SLOTS_CLIENTS
#define STORE_SLOTS_CLIENTS_END   STORE_SLOTS_BYKEY
#define STORE_SLOTS_BYKEY_END     STORE_SLOTS_SYNC
#define STORE_SLOTS_SYNC_END      STORE_SLOTS_SINKS
#define STORE_SLOTS_SINKS_END     STORE_STMT_SLOTS

/* The ranges follow each other in order, so no two overlap. */
static_assert(STORE_SLOTS_DB == 0 && STORE_SLOTS_DB < STORE_SLOTS_DB_END &&
                      STORE_SLOTS_OPEN < STORE_SLOTS_OPEN_END &&
                      STORE_SLOTS_CHANGES < STORE_SLOTS_CHANGES_END &&
                      STORE_SLOTS_ROWS < STORE_SLOTS_ROWS_END &&
                      STORE_SLOTS_OBJSTORES < STORE_SLOTS_OBJSTORES_END &&
                      STORE_SLOTS_TREE < STORE_SLOTS_TREE_END &&
                      STORE_SLOTS_FILES < STORE_SLOTS_FILES_END &&
                      STORE_SLOTS_CLIENTS < STORE_SLOTS_CLIENTS_END &&
                      STORE_SLOTS_BYKEY < STORE_SLOTS_BYKEY_END &&
                      STORE_SLOTS_SYNC < STORE_SLOTS_SYNC_END &&
                      STORE_SLOTS_SINKS < STORE_SLOTS_SINKS_END,
              "the statement cache's slot ranges must follow each other in order");

/* Written after a file's table of `count` statements: they fit the file's
 * range (`range` is DB, OPEN, ... as above), or the build stops. */
#define STORE_SLOTS_FIT(range, count)                                                              \
	static_assert((count) <= STORE_SLOTS_##range##_END - STORE_SLOTS_##range,                  \
	              "the statements of " #range " overflow its statement cache slots")

struct store {
	sqlite3 *db;
	sqlite3_stmt *stmts[STORE_STMT_SLOTS];
	size_t max_record;
	int txn_depth;
	int64_t txn_serial;                    /* counts outermost transactions */
	int64_t touched_txn, touched_objstore; /* store_objstore_touch_once's memory */
	int64_t data_version;
	int64_t owner_objstore, owner_client; /* the last objstore_owner answer */
	char epoch[17];
	char notice[600]; /* store_open_notice: what opening changed */
	char *wal_path;
	char err[512];
};

/* Returns the reset statement in `slot`, preparing `sql` on first use;
 * NULL (with the error set) if it does not prepare. */
sqlite3_stmt *store_stmt(struct store *st, int slot, const char *sql);

/* Sets the message store_last_error() returns; the arguments may point
 * into the message it replaces. */
void store_set_error(struct store *st, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Maps an SQLite result code to -errno and keeps SQLite's message. */
int store_sql_fail(struct store *st, int rc);

/* Binds text (NULL binds NULL); the text must outlive the step. */
void store_bind_text(sqlite3_stmt *s, int i, const char *t);
/* A column's text, malloc'd (NULL for NULL). */
char *store_col_strdup(sqlite3_stmt *s, int i);
/* Steps a statement that returns no rows (or ignores them); 0 or -errno. */
int store_step_done(struct store *st, sqlite3_stmt *s);
/* The queue of this process's writers for SQLite's one write lock
 * (store_db.c); recursive. */
void store_writers_queue_enter(void);
void store_writers_queue_leave(void);
/* Whether this thread is in that queue now. */
bool store_writers_queue_held(void);
/* Waits while the checkpointer holds writers back (store.h, "checkpoints";
 * store_open.c). Store_txn_begin calls it before it queues. */
void store_wal_hold_wait(void);
/* Steps a one-integer query; *out is kept when there is no row. */
int store_step_int(struct store *st, sqlite3_stmt *s, int64_t *out);
/* Reads the columns of the row a statement stands on into `out`. */
typedef void (*store_row_fn)(sqlite3_stmt *s, void *out);
/* Steps a query that answers at most one row and has `read_row` read it
 * before the statement is reset. Returns 0, -ENOENT when
 * there is no row (the error message is left to the caller) or -errno. */
int store_step_row(struct store *st, sqlite3_stmt *s, store_row_fn read_row, void *out);
/* Runs SQL text (several statements allowed). */
int store_exec(struct store *st, const char *sql);
/* The one integer that `sql` (no parameters, prepared once) answers, 0
 * when no row; for statements run once per open, not per call. */
int store_query_int(struct store *st, const char *sql, int64_t *out);

/* Transactions: BEGIN IMMEDIATE at the outermost level, SAVEPOINTs inside.
 * store_txn_end commits when rc is 0 and rolls back otherwise; returns rc
 * or the commit's failure. */
int store_txn_begin(struct store *st);
int store_txn_end(struct store *st, int rc);

/* Wall-clock time in ns. */
int64_t store_now_ns(void);

/* ---- store_keys.c: keys, key paths, values (no SQL) ---- */

/* Whether `name` is a record's (ends in ".json"), not a scratch file's. */
bool store_is_record_name(const char *name);

/* The key a ".json" name stands for (canonical JSON, malloc'd). A "~h"
 * name maps back only through the row that holds it: `known_key` is that
 * row's key (NULL when no row holds the name). Returns 0 or -EINVAL. */
int store_key_for_name(struct store *st, const char *name, const char *known_key, char **key);

/* The file name for a key (malloc'd) or NULL for an invalid key. */
char *store_name_for_key(const json_t *key);

/* Returns 0 for a key IndexedDB takes, else -EINVAL with "not a valid key:
 * REASON" as the store's error. */
int store_key_valid(struct store *st, const json_t *key);

/* The key at inline keyPath `keypath_json` of `value` (a new reference).
 * Returns 0 or -EINVAL with the reason (out-of-line, none there, invalid). */
int store_keypath_extract(struct store *st, const char *keypath_json, const json_t *value,
                          json_t **key_out);

/* Prepares a value for record `key` (canonical JSON) under `keypath` (the
 * object store's keyPath, JSON text). `text` (len bytes, may be NULL) is
 * file content to keep verbatim unless the key must be added; otherwise
 * `value` is laid out pretty. The reason of a failure goes to `err`.
 * Returns 0, -EINVAL, -EFBIG. */
int store_prepare_value_keypath(size_t max_record, char *err, size_t errlen, const char *keypath,
                                const char *key, const char *text, size_t len, const json_t *value,
                                struct prepared_value *out);
void store_prepared_free(struct prepared_value *p);

/* ---- store_changes.c: the logs ---- */

/* Appends one change of record `name` (`key`: canonical JSON) of object
 * store `objstore_id`; `compact` is the value (NULL for a delete). Returns
 * 0 with its seq in *seq, or -errno. */
int store_change_append(struct store *st, int64_t objstore_id, const char *name, const char *key,
                        bool deleted, int64_t rev, enum store_origin origin, const char *compact,
                        int64_t *seq);
/* Appends a directory made or removed under `parent` to the tree log. */
int store_tree_log(struct store *st, uint64_t parent, const char *name, enum store_origin origin);

/* ---- store_rows.c: rows of the records table ---- */

/* A records row as the store's files pass it around. */
struct store_row {
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

void store_row_free(struct store_row *r);
/* Load a row (*r is zeroed first, so store_row_free is always safe).
 * Return 0, -ENOENT or -errno. */
int store_row_by_name(struct store *st, int64_t objstore_id, const char *name, struct store_row *r);
int store_row_by_id(struct store *st, int64_t id, struct store_row *r);
/* The node getattr and lookup show for a row. */
void store_row_node(const struct store_row *r, struct store_node *n);
/* Inserts row `r` with content `value` (len bytes; NULL for none) as its
 * file; fills r->id. */
int store_row_insert(struct store *st, struct store_row *r, const void *value, size_t len);
/* Writes r's state, rev, seq, mtime and origin and content `value` (len
 * bytes) to the row r->id. */
int store_row_update(struct store *st, const struct store_row *r, const void *value, size_t len);
/* Makes row `id` a nameless ORPHAN. */
int store_row_orphan(struct store *st, int64_t id);
/* Deletes row `id`. */
int store_row_delete(struct store *st, int64_t id);

/* ---- store_objstores.c: databases and object stores ---- */

/* Resolves (or with `create` makes) database `name` of a client. Returns 0,
 * -ENOENT, -EINVAL (bad name). */
int store_db_resolve(struct store *st, int64_t client_id, const char *name, bool create,
                     enum store_origin origin, int64_t *db_id);
/* A database's schema version goes up (an object store came or went). */
int store_db_bump_version(struct store *st, int64_t db_id, int64_t mtime);
/* Resolves (or with `create` makes) object store `name` of a database; a
 * new one gets `keypath_json` and `autoincrement`, an existing one is left
 * as it is, or with `must_be_new` is -EEXIST. */
int store_objstore_ensure(struct store *st, int64_t db_id, const char *name,
                          const char *keypath_json, bool autoincrement, bool create,
                          bool must_be_new, enum store_origin origin, int64_t *objstore_id);
/* An object store's keyPath (JSON text, malloc'd) and, when
 * `autoincrement` is not NULL, its autoIncrement. */
int store_keypath_of(struct store *st, int64_t objstore_id, char **keypath_json,
                     bool *autoincrement);
/* Sets the mtime an object store's directory shows. */
int store_objstore_touch(struct store *st, int64_t objstore_id, int64_t mtime);
/* store_objstore_touch to now, once per object store and transaction. */
int store_objstore_touch_once(struct store *st, int64_t objstore_id);

/* ---- store_records.c: records and revisions ---- */

/* store_prepare_value_keypath with the keyPath of object store
 * `objstore_id`; the reason of a failure goes to the store's error. */
int store_prepare_value(struct store *st, int64_t objstore_id, const char *key, const char *text,
                        size_t len, const json_t *value, struct prepared_value *out);
/* Makes row `r` (already holding its final object store and name, r->id 0
 * for a row still to make) the LIVE record `key` with content `p`,
 * revision `base_rev` + 1, and logs the put; *rev and *seq (when not NULL)
 * receive the new revision and seq. */
int store_record_write(struct store *st, struct store_row *r, const char *key, int64_t base_rev,
                       const struct prepared_value *p, enum store_origin origin, int64_t *rev,
                       int64_t *seq);
/* Leaves a tombstone of record `name` whose last revision was `old_rev`
 * (its row has just given up the name) and logs the delete. */
int store_tombstone_add(struct store *st, int64_t objstore_id, const char *name, const char *key,
                        int64_t old_rev, enum store_origin origin, int64_t *seq);
/* Whether row `r` is a pending file (`touch` after `rm`) that took the
 * place of a deleted record's tombstone, whose revision it carries. */
static inline bool store_row_holds_tombstone(const struct store_row *r)
{
	return r->state == STORE_SCRATCH && r->rev > 0 && r->key;
}
/* Puts back the tombstone such a pending file took the place of: `r` is
 * that file's row as it was, with the deleted record's name, key,
 * revision and seq. No change is logged: the delete was logged when it
 * happened. */
int store_tombstone_restore(struct store *st, const struct store_row *r);
/* Takes row `r` out of the namespace: a record leaves a tombstone and a
 * delete change, a pending file in a deleted record's place gives the
 * tombstone back; the row becomes an ORPHAN. */
int store_record_unlink(struct store *st, struct store_row *r, enum store_origin origin,
                        int64_t *seq);

/* A record's current state, for conflict checks: `exists` once it was ever
 * committed (a tombstone exists but is not live); its row's id, whose file
 * content store_read_file(store_ino(STORE_FILE, row_id)) reads. */
struct store_record_state {
	bool exists;
	bool live;
	int64_t rev;
	int64_t seq;
	int64_t row_id;
};
int store_record_state(struct store *st, int64_t objstore_id, const json_t *key,
                       struct store_record_state *out);

/* Decides, from the record's state, whether a write may go on (the sync
 * protocol's `base` check). */
typedef bool (*store_check_fn)(void *ctx, const struct store_record_state *now);

/* What store_record_put/_delete return when `check` refused the write. */
#define STORE_REFUSED 1

/* Puts / deletes record `key` of object store `objstore_id` as store_put and
 * store_delete do, inside the caller's transaction, after `check` (when not
 * NULL) approved the record's state, which is also copied to *now. Return
 * 0, STORE_REFUSED (nothing written) or -errno. store_record_delete of an
 * absent record logs nothing (*seq 0) and gives the tombstone's revision
 * (or 0) in *rev. `keypath` is the object store's keyPath JSON when the caller
 * knows it (a batch), NULL to look it up. */
int store_record_put(struct store *st, int64_t objstore_id, const char *keypath, const json_t *key,
                     const json_t *value, enum store_origin origin, store_check_fn check,
                     void *check_ctx, struct store_record_state *now, int64_t *rev, int64_t *seq);

int store_record_delete(struct store *st, int64_t objstore_id, const json_t *key,
                        enum store_origin origin, store_check_fn check, void *check_ctx,
                        struct store_record_state *now, int64_t *rev, int64_t *seq);

/* ---- a put in two steps ----
 * store_record_put looks the record up, checks it, lays its value out and
 * writes it. The part that needs no SQL (checking and encoding the key,
 * laying the value out) can run first and elsewhere: store_sync_push does
 * it for the next mutations on the push's own thread while the writer's
 * thread writes. */
struct store_put_prep {
	int key_rc;    /* 0, or why the key is no key (err says) */
	int value_rc;  /* 0, or why the value cannot be stored (err says) */
	char *canon;   /* canonical key JSON */
	char *name;    /* the record's file name */
	bool prepared; /* value holds the laid-out value */
	struct prepared_value value;
	char err[512];
};

/* Needs no store, so any thread may call it. With keypath NULL (not known
 * yet) only the key is done; the value then waits for the write. Returns
 * the first problem (also kept in *out for the write to report). */
int store_put_prepare(size_t max_record, const char *keypath, const json_t *key,
                      const json_t *value, struct store_put_prep *out);
/* store_put_prepare for a value given as JSON text (a push's member),
 * laid out straight from the text: 0, or a problem with the key, or
 * JSON_TEXT_DECLINED (and *out empty) when the value must be parsed and
 * given to store_put_prepare, which then decides and explains. */
int store_put_prepare_text(size_t max_record, const char *keypath, const json_t *key,
                           struct json_span value, struct store_put_prep *out);
/* store_put_prepare for an import's line, key and value both as JSON text:
 * `key` ({NULL, 0}: the key at the string key path of the value) and
 * `value`, laid out straight from the text. Returns 0, or
 * JSON_TEXT_DECLINED (and *out empty) for anything it is not sure of,
 * errors included: the line is then parsed and given to the tree path,
 * which decides and explains. */
int store_put_prepare_import(size_t max_record, const char *keypath, struct json_span key,
                             struct json_span value, struct store_put_prep *out);
void store_put_prep_free(struct store_put_prep *p);
/* The rest of store_record_put, with `value` the same as prepared. */
int store_record_put_prepared(struct store *st, int64_t objstore_id, struct store_put_prep *p,
                              const json_t *value, enum store_origin origin, store_check_fn check,
                              void *check_ctx, struct store_record_state *now, int64_t *rev,
                              int64_t *seq);

/* ---- store_clients.c ---- */

/* The id of client `name`: 0, or -ENOENT with the reason. */
int store_client_id_by_name(struct store *st, const char *name, int64_t *id);

/* Tokens: 64 random hex digits after "NODE." (node not NULL); only their
 * SHA-256 (hex) is stored. Returns 0, -EINVAL (a node
 * store_node_name_problem refuses, the reason set on `st`) or -EIO. */
int store_token_new(struct store *st, const char *node, char token[STORE_TOKEN_MAX]);
void store_token_hash(const char *token, char out[65]);

/* Schema texts of the other store files (CREATE ... IF NOT EXISTS). */
extern const char store_sync_schema_sql[];
extern const char store_sinks_schema_sql[];

/* ---- store_schema.c ---- */

/* SQLite's application_id of an idbmount database: "IDBM". It tells an
 * idbmount database from another program's (file(1) shows it too). */
#define STORE_APPLICATION_ID 0x4944424du

/* The schema version this idbmount writes (PRAGMA user_version). */
int store_schema_latest(void);
/* Refuses, before anything in it changes, a database whose schema version
 * is newer than this idbmount knows; `path` is for the message. */
int store_schema_check(struct store *st, const char *path);
/* Makes the schema of a new database, or migrates an older one to the
 * latest version in one transaction (noting it for store_open_notice,
 * with `datadir` in the message); then loads the store epoch. */
int store_schema_ensure(struct store *st, const char *datadir);
/* A new store epoch: 16 random hex digits. */
int store_epoch_new(char out[17]);
/* The meta table's rows: 0, -ENOENT or -errno. */
int store_meta_get(struct store *st, const char *name, char *out, size_t outlen);
int store_meta_put(struct store *st, const char *name, const char *value);

#endif
