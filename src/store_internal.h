/* store_internal.h - what the store's files share: the connection struct
 * and the small SQL helpers of store.c. Only src/store*.c include this: the
 * rest of idbmount sees the store through include/idbmount/store.h.
 *
 * The store is split by subject: store.c (tree, records, change log,
 * clients), store_sync.c (what the sync endpoint needs), store_sinks.c
 * (what the flusher needs). Each file keeps its own table of statements in
 * its own range of slots of the per-connection statement cache, and its
 * own schema text, run by store_open with CREATE ... IF NOT EXISTS.
 */
#ifndef IDBMOUNT_STORE_INTERNAL_H
#define IDBMOUNT_STORE_INTERNAL_H

#include "idbmount/store.h"

#include <sqlite3.h>
#include <stdint.h>

/* Statement cache slots, a range per file. */
#define STORE_SLOTS_CORE  0   /* store.c */
#define STORE_SLOTS_SYNC  96  /* store_sync.c */
#define STORE_SLOTS_SINKS 160 /* store_sinks.c */
#define STORE_STMT_SLOTS  224

struct store {
	sqlite3 *db;
	sqlite3_stmt *stmts[STORE_STMT_SLOTS];
	size_t max_record;
	int txn_depth;
	int64_t data_version;
	char epoch[17];
	char *wal_path;
	char err[512];
};

/* Returns the reset statement in `slot`, preparing `sql` on first use;
 * NULL (with the error set) if it does not prepare. */
sqlite3_stmt *store_stmt(struct store *st, int slot, const char *sql);

/* Sets the message store_last_error() returns. */
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
/* Runs SQL text (several statements allowed). */
int store_exec(struct store *st, const char *sql);

/* Transactions: BEGIN IMMEDIATE at the outermost level, SAVEPOINTs inside.
 * store_txn_end commits when rc is 0 and rolls back otherwise; returns rc
 * or the commit's failure. */
int store_txn_begin(struct store *st);
int store_txn_end(struct store *st, int rc);

/* Wall-clock time in ns. */
int64_t store_now_ns(void);

/* Schema texts of the other store files (CREATE ... IF NOT EXISTS). */
extern const char store_sync_schema_sql[];
extern const char store_sinks_schema_sql[];

#endif
