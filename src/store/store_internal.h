/* store_internal.h - what the store's files share: the connection struct
 * and the small SQL helpers of store.c. Only src/store/ include this (and
 * the fuzz targets of tests/fuzz, which check pieces declared here): the
 * rest of idbmount sees the store through include/idbmount/store/store.h.
 *
 * The store is split by subject: store.c (tree, records, change log,
 * clients), store_sync*.c and store_push*.c (what the sync endpoint needs,
 * store_sync.c tells which file does what), store_sinks.c
 * (what the flusher needs). Each file keeps its own table of statements in
 * its own range of slots of the per-connection statement cache, and its
 * own schema text, run by store_open with CREATE ... IF NOT EXISTS.
 */
#ifndef IDBMOUNT_STORE_INTERNAL_H
#define IDBMOUNT_STORE_INTERNAL_H

#include "idbmount/util/buf.h"
#include "idbmount/codec/json_text.h"
#include "idbmount/store/store.h"

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

/* Statement cache slots, a range per file. */
#define STORE_SLOTS_CORE  0   /* store.c */
#define STORE_SLOTS_SYNC  96  /* store_sync.c, for the sync files */
#define STORE_SLOTS_SINKS 160 /* store_sinks.c */
#define STORE_STMT_SLOTS  224

struct store {
	sqlite3 *db;
	sqlite3_stmt *stmts[STORE_STMT_SLOTS];
	size_t max_record;
	int txn_depth;
	int64_t txn_serial;                 /* counts outermost transactions */
	int64_t touched_txn, touched_store; /* store_touch_once's memory */
	int64_t data_version;
	int64_t owner_store, owner_client; /* the last store_owner answer */
	char epoch[17];
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
/* Steps a one-integer query; *out is kept when there is no row. */
int store_step_int(struct store *st, sqlite3_stmt *s, int64_t *out);
/* Reads the columns of the row a statement stands on into `out`. */
typedef void (*store_row_fn)(sqlite3_stmt *s, void *out);
/* Steps a query that answers at most one row and has `read_row` read it
 * before the statement is reset (store_step.c). Returns 0, -ENOENT when
 * there is no row (the error message is left to the caller) or -errno. */
int store_step_row(struct store *st, sqlite3_stmt *s, store_row_fn read_row, void *out);
/* Runs SQL text (several statements allowed). */
int store_exec(struct store *st, const char *sql);

/* Transactions: BEGIN IMMEDIATE at the outermost level, SAVEPOINTs inside.
 * store_txn_end commits when rc is 0 and rolls back otherwise; returns rc
 * or the commit's failure. */
int store_txn_begin(struct store *st);
int store_txn_end(struct store *st, int rc);

/* Wall-clock time in ns. */
int64_t store_now_ns(void);

/* ---- what store.c lends the other store files ---- */

/* Resolves (or with `create` makes) database `name` of a client. Returns 0,
 * -ENOENT, -EINVAL (bad name). */
int store_db_resolve(struct store *st, int64_t client_id, const char *name, bool create,
                     enum store_origin origin, int64_t *db_id);
/* Resolves (or makes) object store `name` of a database; a new one gets
 * `keypath_json` and `autoincrement`, an existing one is left as it is. */
int store_objstore_resolve(struct store *st, int64_t db_id, const char *name,
                           const char *keypath_json, bool autoincrement, bool create,
                           enum store_origin origin, int64_t *store_id);
/* An object store's keyPath (JSON text, malloc'd) and autoIncrement. */
int store_keypath_of(struct store *st, int64_t store_id, char **keypath_json, bool *autoincrement);

/* The key at inline keyPath `keypath_json` of `value` (a new reference).
 * Returns 0 or -EINVAL with the reason (out-of-line, none there, invalid). */
int store_keypath_extract(struct store *st, const char *keypath_json, const json_t *value,
                          json_t **key_out);

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
int store_record_state(struct store *st, int64_t store_id, const json_t *key,
                       struct store_record_state *out);

/* Decides, from the record's state, whether a write may go on (the sync
 * protocol's `base` check). */
typedef bool (*store_check_fn)(void *ctx, const struct store_record_state *now);

/* What store_record_put/_delete return when `check` refused the write. */
#define STORE_REFUSED 1

/* Puts / deletes record `key` of store `store_id` as store_put and
 * store_delete do, inside the caller's transaction, after `check` (when not
 * NULL) approved the record's state, which is also copied to *now. Return
 * 0, STORE_REFUSED (nothing written) or -errno. store_record_delete of an
 * absent record logs nothing (*seq 0) and gives the tombstone's revision
 * (or 0) in *rev. `keypath` is the store's keyPath JSON when the caller
 * knows it (a batch), NULL to look it up. */
int store_record_put(struct store *st, int64_t store_id, const char *keypath, const json_t *key,
                     const json_t *value, enum store_origin origin, store_check_fn check,
                     void *check_ctx, struct store_record_state *now, int64_t *rev, int64_t *seq);

int store_record_delete(struct store *st, int64_t store_id, const json_t *key,
                        enum store_origin origin, store_check_fn check, void *check_ctx,
                        struct store_record_state *now, int64_t *rev, int64_t *seq);

/* ---- a put in two steps ----
 * store_record_put looks the record up, checks it, lays its value out and
 * writes it. The part that needs no SQL (checking and encoding the key,
 * laying the value out) can run first and elsewhere: store_sync_push does
 * it for the next mutations on a second thread while this one writes. */
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
void store_put_prep_free(struct store_put_prep *p);
/* The rest of store_record_put, with `value` the same as prepared. */
int store_record_put_prepared(struct store *st, int64_t store_id, struct store_put_prep *p,
                              const json_t *value, enum store_origin origin, store_check_fn check,
                              void *check_ctx, struct store_record_state *now, int64_t *rev,
                              int64_t *seq);

/* ---- a push's mutation (store_push_ahead.c) ----
 * Parses mutation text `t` into *m without its "value" member, whose text
 * is left in *value ({NULL, 0} when absent): the value, most of the bytes,
 * can then be laid out straight from its text. Returns 0, or -EINVAL when
 * the text is not an object whose members each parse (the push then
 * parses it whole, and jansson decides). */
int store_sync_mutation_parse(struct json_span t, json_t **m, struct json_span *value);

/* Tokens: 64 random hex digits; only their SHA-256 (hex) is stored. */
int store_token_new(char token[65]);
void store_token_hash(const char *token, char out[65]);

/* Schema texts of the other store files (CREATE ... IF NOT EXISTS). */
extern const char store_sync_schema_sql[];
extern const char store_sinks_schema_sql[];

#endif
