/* store.h - the store: the only code that speaks SQL.
 *
 * One `struct store` is one SQLite connection on a data directory; it is not
 * thread-safe, so every thread (each FUSE worker, the notifier, idbmountctl)
 * opens its own. The database runs in WAL mode, so readers never wait for the
 * writer and a SIGKILL loses no committed transaction.
 *
 * The tree the mount shows is made of nodes, each with a 64-bit number that
 * is its inode: the kind in the top bits, the row id below (rows use
 * AUTOINCREMENT, so a number is never reused for something else).
 *
 *   root  /                           kind ROOT, always inode 1
 *   /<client>                         kind CLIENT    (clients row)
 *   /<client>/<db>                    kind DATABASE  (dbs row)
 *   /<client>/<db>/<objstore>         kind OBJSTORE  (stores row)
 *   /<client>/<db>/<objstore>/<file>  kind FILE      (records row)
 *
 * A records row is in one of four states:
 *   LIVE       a record: "<stem>.json", synced, in the change log;
 *   SCRATCH    a file that is not a record: a name not ending in ".json"
 *              (editor swap files, sed -i temp files) or a ".json" file
 *              created and not yet written with valid JSON; never synced;
 *   TOMBSTONE  a deleted record's name and revision, kept for sync;
 *              invisible in the mount;
 *   ORPHAN     a row the kernel may still hold (an open file that was
 *              removed or replaced); nameless, deleted once forgotten.
 *
 * Every change of a record (put or delete, whatever its origin) appends one
 * row to the change log in the same transaction; its `seq` is global.
 *
 * Functions return 0 or a negative errno; the reason for a failure a person
 * must act on is also written with store_set_error() and readable with
 * store_last_error().
 */
#ifndef IDBMOUNT_STORE_H
#define IDBMOUNT_STORE_H

#include <jansson.h>
#include <signal.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct store;

/* ---- data directory and connection ------------------------------------ */

/* Default cap on one record's size (bytes of its file). */
#define STORE_DEFAULT_MAX_RECORD (16u * 1024 * 1024)

/* Opens (creating if needed) the store in `datadir`. The first open of a new
 * directory creates the schema and a random store epoch. Returns 0 or a
 * negative errno; `err` receives a message for stderr. */
int store_open(const char *datadir, struct store **out, char *err, size_t errlen);
void store_close(struct store *st);

/* What store_open changed that the operator should hear of, "" when
 * nothing: "migrated DIR from schema 0 to 1". */
const char *store_open_notice(const struct store *st);

/* The message for the last failure on this connection ("" if none). */
const char *store_last_error(const struct store *st);

/* Sets the record size cap for this connection (default above). */
void store_set_max_record(struct store *st, size_t bytes);
/* Sets how much of the database this connection may keep in memory
 * (SQLite's page cache; 2 MiB unless set). A write transaction whose
 * changed pages pass it writes them to the WAL early, some more than once.
 * Returns 0 or -EIO. */
int store_set_cache_kib(struct store *st, int kib);

/* The store epoch: 16 hex digits made when the data directory was made. */
const char *store_epoch(const struct store *st);

/* Path of the database's WAL file (for fsync). */
const char *store_wal_path(const struct store *st);

/* ---- nodes ---------------------------------------------------------- */

enum store_kind {
	STORE_ROOT = 0,
	STORE_CLIENT = 1,
	STORE_DATABASE = 2,
	STORE_OBJSTORE = 3,
	STORE_FILE = 4,
};

#define STORE_ROOT_INO   1u
#define STORE_KIND_SHIFT 60
static inline uint64_t store_ino(enum store_kind kind, int64_t id)
{
	return kind == STORE_ROOT ? STORE_ROOT_INO
	                          : ((uint64_t)kind << STORE_KIND_SHIFT) | (uint64_t)id;
}
static inline enum store_kind store_ino_kind(uint64_t ino)
{
	return ino == STORE_ROOT_INO ? STORE_ROOT : (enum store_kind)(ino >> STORE_KIND_SHIFT);
}
static inline int64_t store_ino_id(uint64_t ino)
{
	return (int64_t)(ino & ((1ull << STORE_KIND_SHIFT) - 1));
}

enum store_state {
	STORE_LIVE = 0,
	STORE_SCRATCH = 1,
	STORE_TOMBSTONE = 2,
	STORE_ORPHAN = 3,
};

enum store_origin {
	ORIGIN_BROWSER = 0,
	ORIGIN_FS = 1,
	ORIGIN_IMPORT = 2, /* idbmountctl put / import */
};
const char *store_origin_name(enum store_origin origin);

/* What getattr, lookup and readdirplus need to know about a node. */
struct store_node {
	uint64_t ino;
	uint64_t parent; /* parent's inode (0 for an orphan) */
	enum store_kind kind;
	enum store_state state; /* FILE only */
	uint64_t size;          /* FILE: bytes of the file; dirs: 0 */
	int64_t mtime_ns;       /* last change */
	int64_t rev;            /* FILE: record revision */
	int64_t seq;            /* FILE: seq of its last change */
	enum store_origin origin;
	uint32_t subdirs; /* dirs: number of child directories (for nlink) */
};

/* Looks `name` up in directory `parent`. Returns 0, -ENOENT, or -ENOTDIR. */
int store_lookup(struct store *st, uint64_t parent, const char *name, struct store_node *out);

/* Attributes of inode `ino` (orphans included). Returns 0 or -ENOENT. */
int store_getattr(struct store *st, uint64_t ino, struct store_node *out);

/* The directory and name (malloc'd) of file `ino`. Returns 0, or -ENOENT
 * for a removed file (tombstone or orphan). */
int store_file_name(struct store *st, uint64_t ino, uint64_t *dir, char **name);

/* Called once per child by store_readdir, in cursor order; returns nonzero
 * to stop (the caller's buffer is full; that child is not consumed).
 * `name` and `node` are valid during the call only. */
typedef int (*store_readdir_fn)(void *ctx, const char *name, const struct store_node *node,
                                int64_t cursor);

/* Lists directory `dir` from just after `cursor` (0 = from the start).
 * The cursor given to `fn` is the child's row id: one indexed range query,
 * stable while entries come and go. Returns 0 or a negative errno. */
int store_readdir(struct store *st, uint64_t dir, int64_t cursor, store_readdir_fn fn, void *ctx);

/* Reads the whole content of file `ino` into a malloc'd buffer. */
int store_read_file(struct store *st, uint64_t ino, char **data, size_t *len);
/* The same, with the revision the content belongs to (one read: the two
 * always agree). */
int store_read_file_rev(struct store *st, uint64_t ino, char **data, size_t *len, int64_t *rev);

/* ---- changes through the mount --------------------------------------- */

/* Creates an empty file `name` in object store directory `dir`: a SCRATCH row (a
 * ".json" name must decode to a key; a tombstone of that name is revived so
 * the record keeps its revision history). Returns 0, -EEXIST, -EINVAL (not
 * a key, or a hand-made "~h" name), -EPERM (not a store directory),
 * -ENAMETOOLONG. */
int store_create_file(struct store *st, uint64_t dir, const char *name, struct store_node *out);

/* Commits new content for file `ino`. For a ".json" file: the content must
 * be valid JSON, within the size cap, and agree with the store's inline
 * keyPath (a missing inline key is added); the row becomes LIVE with
 * rev + 1 and one change is logged. Scratch files just take the content.
 * `rewritten` is set when the stored content differs from `data` (the key
 * was added), so the caller must drop cached pages.
 * Returns 0, -EINVAL (bad JSON or key), -EFBIG, -ENOSPC, -EIO. */
int store_commit_file(struct store *st, uint64_t ino, const char *data, size_t len, bool *rewritten,
                      struct store_node *out);

/* Removes file `name` from `dir`: a record gets a tombstone and a delete
 * change; the row itself becomes an ORPHAN. Returns 0, -ENOENT, -EISDIR. */
int store_unlink(struct store *st, uint64_t dir, const char *name);

/* Renames within the mount. A ".json" target is committed as that record
 * (a scratch source must hold valid JSON: -EINVAL otherwise). Flags are
 * RENAME_NOREPLACE / RENAME_EXCHANGE. Moving between stores is allowed;
 * directories cannot be renamed (-EPERM). */
int store_rename(struct store *st, uint64_t dir, const char *name, uint64_t newdir,
                 const char *newname, unsigned int flags);

/* mkdir: a client (at the root), a database, or an object store (out-of-line keys,
 * no autoIncrement). Returns 0, -EEXIST, -EINVAL, -EPERM. */
int store_mkdir(struct store *st, uint64_t parent, const char *name, struct store_node *out);

/* rmdir of an empty store, database or client. -ENOTEMPTY otherwise. */
int store_rmdir(struct store *st, uint64_t parent, const char *name);

/* Takes the name of file `ino` away if it is a ".json" file that never
 * held a record (an empty SCRATCH row): what a refused first commit
 * leaves. The row becomes an orphan, as after `rm`; a tombstone it revived
 * is put back. Returns 0 when the name went, 1 when there was nothing to
 * take (a record, a scratch file with content), or -errno. */
int store_drop_new_file(struct store *st, uint64_t ino);

/* Gives orphan `ino`, dropped by store_drop_new_file, its name back as an
 * empty pending file, before a later commit through the same open file.
 * Returns 0, -EEXIST (the name was made again meanwhile), -ENOENT (not
 * an orphan), -errno. */
int store_relink_file(struct store *st, uint64_t ino, uint64_t dir, const char *name);

/* Deletes an ORPHAN row (no-op for any other state). */
int store_drop_orphan(struct store *st, uint64_t ino);

/* Calls `fn` with the inode of every ORPHAN row (until it returns nonzero). */
typedef int (*store_ino_fn)(void *ctx, uint64_t ino);
int store_list_orphans(struct store *st, store_ino_fn fn, void *ctx);

/* Deletes every ORPHAN row: at mount time nothing can refer to them. */
int store_drop_all_orphans(struct store *st);

/* Store directory facts for the xattrs: keyPath as JSON text ("null" when
 * out-of-line) and autoIncrement. `keypath` is malloc'd. */
int store_objstore_info(struct store *st, uint64_t objstore_dir, char **keypath,
                        bool *autoincrement);

/* Totals for statfs. */
int store_count_files(struct store *st, uint64_t *files, uint64_t *bytes);

/* ---- changes by key (idbmountctl, HTTP) ------------------------------ */

/* A path CLIENT/DB/STORE, by the unescaped names. */
struct store_path {
	const char *client;
	const char *db;
	const char *objstore;
};

/* Puts `value` (any JSON) under `key` (tagged form). With `create_missing`
 * the database and store are made (out-of-line keys) when absent. Returns
 * 0 with the new revision and seq in *rev / *seq, -ENOENT (no such client or
 * store), -EINVAL (bad key, keyPath disagreement), -EFBIG. */
int store_put(struct store *st, const struct store_path *path, const json_t *key,
              const json_t *value, enum store_origin origin, bool create_missing, int64_t *rev,
              int64_t *seq);

/* Deletes the record under `key`. Returns 0 (also when already absent:
 * nothing is logged then, *seq is 0), -ENOENT for an unknown store. */
int store_delete(struct store *st, const struct store_path *path, const json_t *key,
                 enum store_origin origin, int64_t *seq);

/* Reads a record's file content (malloc'd) and revision. -ENOENT if absent. */
int store_get(struct store *st, const struct store_path *path, const json_t *key, char **data,
              size_t *len, int64_t *rev);

/* Checks, without writing, what store_put(path, key, value) with
 * create_missing would check: a valid key, agreement with the store's
 * inline keyPath, the size cap. A store (or database) that does not exist
 * is checked as the out-of-line store create_missing would make. With
 * `key` NULL the key is the one at the store's inline keyPath of `value`;
 * it is returned in *key_out (a new reference) when `key_out` is not NULL.
 * Names are not checked. Returns 0, -ENOENT (no such client), -EINVAL
 * (with the reason), -EFBIG. */
int store_check_put(struct store *st, const struct store_path *path, const json_t *key,
                    const json_t *value, json_t **key_out);

/* ---- imports: records given as JSON text (idbmountctl import) ----
 * An import writes many records into one store. The target is resolved
 * once per transaction, not per record, and each key and value is laid out
 * straight from its text (no jansson tree), as a push's values are. The
 * text path takes the lines it is sure of and declines the others (errors
 * included), which the caller then gives to store_check_put / store_put /
 * store_delete: they decide and explain, so the outcome is the same. */
struct store_import;

/* What store_import_put and _delete return for a line they leave to the
 * tree path (nothing was done). */
#define STORE_IMPORT_DECLINED 1

/* Starts an import into `path`: resolves it as store_check_put does (a
 * missing database or store is the out-of-line store the first put makes).
 * Returns 0, -ENOENT (no such client), -ENOMEM. */
int store_import_open(struct store *st, const struct store_path *path, struct store_import **out);
/* Resolves the target again: at the start of each of the caller's write
 * transactions, as the store may have changed between them. */
int store_import_resolve(struct store_import *im);
void store_import_close(struct store_import *im);

/* Puts `value` (JSON text, value_len bytes) under `key` (JSON text in
 * tagged form; NULL for the key at the store's inline key path). With
 * `write` false it only checks, with no SQL; with `write`, inside the
 * caller's transaction, it writes (making the database and store when
 * missing) and gives the change's seq. Returns 0, STORE_IMPORT_DECLINED or
 * -errno. */
int store_import_put(struct store_import *im, const char *key, size_t key_len, const char *value,
                     size_t value_len, bool write, int64_t *seq);
/* Deletes `key` the same way: *seq is 0 when the record was absent. */
int store_import_delete(struct store_import *im, const char *key, size_t key_len, bool write,
                        int64_t *seq);

/* A put laid out ahead of its write (store_import_put in two halves), so
 * that one thread lays out the next lines while another writes: what the
 * layout needs is copied out of the import first (store_import_shape), so
 * the laying out needs no store and runs on any thread. */
struct store_import_shape {
	char *keypath; /* the target's key path when the shape was taken */
	size_t max_record;
};
struct store_import_ready;

/* Copies what laying out needs; free it with store_import_shape_free. */
int store_import_shape(const struct store_import *im, struct store_import_shape *out);
void store_import_shape_free(struct store_import_shape *shape);
/* Lays out the put of `value` under `key` (as store_import_put) for
 * `shape`: 0 with *out made, or STORE_IMPORT_DECLINED (the tree path
 * decides such a line), or -ENOMEM. Any thread. */
int store_import_prepare(const struct store_import_shape *shape, const char *key, size_t key_len,
                         const char *value, size_t value_len, struct store_import_ready **out);
/* Writes a put laid out by store_import_prepare, inside the caller's
 * transaction, as store_import_put does with `write`. Returns
 * STORE_IMPORT_DECLINED, writing nothing, when the target's key path is no
 * longer `shape`'s: the line is then done again from its text. */
int store_import_put_ready(struct store_import *im, const struct store_import_shape *shape,
                           struct store_import_ready *ready, int64_t *seq);
void store_import_ready_free(struct store_import_ready *ready);

/* Called by store_list_keys with a record's canonical key JSON and its
 * row id as the cursor; returns nonzero to stop. */
typedef int (*store_key_fn)(void *ctx, const char *key, int64_t cursor);

/* Lists the keys of the LIVE records of `path` from just after `cursor`
 * (0 = from the start), in row-id order (one indexed range query). Returns
 * 0, -ENOENT (no such client, database or store). */
int store_list_keys(struct store *st, const struct store_path *path, int64_t cursor,
                    store_key_fn fn, void *ctx);

/* Creates a store with a keyPath (JSON text: null, "a.b" or ["a","b"])
 * and autoIncrement, making the database when absent. -EEXIST if present. */
int store_make_objstore(struct store *st, const struct store_path *path, const char *keypath_json,
                        bool autoincrement);

/* Transactions grouping many calls (an import batch). Calls nest: only the
 * outermost begin/commit touches SQLite. store_rollback undoes everything
 * since the outermost begin. */
int store_begin(struct store *st);
int store_commit(struct store *st);
void store_rollback(struct store *st);

/* ---- clients ------------------------------------------------------- */

/* Why `name` cannot name a client, or NULL when it can. A client name is
 * a directory of the mount (255 bytes at most, escaped), the first part
 * of CLIENT/DB/STORE paths (no '/') and a line of `idbmountctl client
 * list` (no control character: U+0000-U+001F, U+007F-U+009F); it is
 * non-empty UTF-8. */
const char *store_client_name_problem(const char *name);

/* Why `name` cannot name a pipeline (a line of `pipeline list`: 1 to 255
 * bytes of UTF-8 without control characters), or NULL when it can. */
const char *store_pipeline_name_problem(const char *name);

/* A token is 64 random hex digits, or, for a client or pipeline made for
 * one node of several behind a proxy, "NODE." and 64 hex digits: the
 * proxy routes on NODE (README, "Several nodes behind nginx"). The daemon
 * only ever hashes the whole token, so it needs to know nothing of nodes.
 * NODE is 1 to STORE_NODE_MAX of a-z, 0-9 and '-'. */
#define STORE_NODE_MAX  32
#define STORE_TOKEN_MAX (STORE_NODE_MAX + 1 + 64 + 1)

/* Why `node` cannot name a node in a token, or NULL when it can. */
const char *store_node_name_problem(const char *node);

/* Creates client `name` and writes a new token (NUL-terminated) into
 * `token`, prefixed with "NODE." unless `node` is NULL; only its SHA-256
 * is stored. Returns 0, -EEXIST, -EINVAL (a name store_client_name_problem
 * or a node store_node_name_problem refuses). */
int store_client_add(struct store *st, const char *name, const char *node,
                     char token[STORE_TOKEN_MAX]);

/* Finds the client a token belongs to. Returns its id or -EACCES. */
int64_t store_client_by_token(struct store *st, const char *token);

typedef int (*store_name_fn)(void *ctx, const char *name);
int store_client_list(struct store *st, store_name_fn fn, void *ctx);

/* ---- checkpoints --------------------------------------------------------
 * By default a connection copies the WAL back into the database inside the
 * commit that makes it pass 1,000 pages: one push in ten paid for it. The
 * daemon delegates instead (src/store/checkpointer.c): stores opened afterwards skip the
 * automatic checkpoint and, after a commit that leaves the WAL at `pages`
 * or more, call `fn` on the committing thread with the WAL's length (it
 * must only wake someone), whose thread then calls store_checkpoint.
 * idbmountctl keeps the default, but for an import, which starts a
 * checkpointer of its own.
 * When `fn` returns true, the WAL has grown past what the checkpointer
 * allows: the transactions this process begins next (store_txn_begin) wait
 * until it calls store_wal_hold_release. Without that back-pressure a disk
 * slower than the pushes let the WAL grow by everything written while one
 * checkpoint round ran (150 MB seen with a test suite beside it).
 * `fn` NULL ends the delegation and releases a hold (stores already open
 * then leave the WAL to the last close). */
typedef bool (*store_wal_fn)(void *ctx, int pages);
void store_checkpoints_elsewhere(store_wal_fn fn, void *ctx, int pages);
/* Lets the transactions held back by `fn` returning true begin. */
void store_wal_hold_release(void);
/* Makes a store opened before store_checkpoints_elsewhere follow it too. */
void store_checkpoints_follow(struct store *st);
/* A passive checkpoint: copies what it can without waiting for anyone.
 * *wal_pages (may be NULL) gets the WAL's length in pages. */
int store_checkpoint(struct store *st, int *wal_pages);
/* Past this length (64 MiB of 4 KiB pages) the daemon's checkpointer makes
 * the WAL start over (store_wal_restart), and a connection that starts it
 * over cuts its file back to this size (journal_size_limit). */
#define STORE_WAL_LIMIT_PAGES 16384
/* Makes the WAL start over from its beginning at the next write (a RESTART
 * checkpoint), queued as a writer of this process so that no push begins
 * meanwhile: it copies what is left and waits up to `wait_ms` for the
 * readers to reach the newest snapshot. -EBUSY when one did not (a long
 * reader, such as a backup). */
int store_wal_restart(struct store *st, int wait_ms);

/* ---- the change log -------------------------------------------------- */

/* One change as every reader sees it (fields borrowed for the callback). */
struct store_change {
	int64_t seq;
	int64_t ts_ms;
	const char *client;
	const char *db;
	const char *objstore;
	const char *key; /* canonical key JSON */
	bool deleted;    /* op: delete (else put) */
	int64_t rev;
	enum store_origin origin;
	const char *value; /* compact JSON, NULL for a delete */
	const char *name;  /* the record's file name */
	int64_t objstore_id;
};

typedef int (*store_change_fn)(void *ctx, const struct store_change *change);

/* Calls `fn` for up to `limit` changes with seq > `since`, in order; stops
 * early when `fn` returns nonzero. `client_id` > 0 restricts to one client.
 * Returns the number delivered or a negative errno. */
int64_t store_changes_since(struct store *st, int64_t since, int64_t limit, int64_t client_id,
                            store_change_fn fn, void *ctx);

/* One change as the mount's notifier needs it: which directory entry and
 * which inode the kernel may hold stale. */
struct store_changed_file {
	int64_t seq;
	uint64_t dir;     /* the store's directory inode */
	const char *name; /* the record's file name (borrowed) */
	/* the live record's inode; 0 when there is none, or when this change
	 * made the record (a put of revision 1), so the kernel cannot hold
	 * an older state of it */
	uint64_t ino;
	bool deleted;
	enum store_origin origin;
};

typedef int (*store_changed_file_fn)(void *ctx, const struct store_changed_file *f);

/* Like store_changes_since, without values: for invalidating caches. */
int64_t store_changed_files_since(struct store *st, int64_t since, int64_t limit,
                                  store_changed_file_fn fn, void *ctx);

/* The highest seq in the change log (0 when empty). */
int64_t store_last_seq(struct store *st);

/* ---- the tree log: directory changes (for kernel invalidation) --------- */

typedef int (*store_tree_fn)(void *ctx, int64_t id, uint64_t parent, const char *name,
                             enum store_origin origin);
/* Directory creations/removals with id > since. Returns the last id seen. */
int64_t store_tree_changes_since(struct store *st, int64_t since, store_tree_fn fn, void *ctx);

/* Whether another connection committed since the last call (cheap). */
bool store_changed_elsewhere(struct store *st);

/* The mounted daemon's progress in invalidating kernel caches, so that
 * idbmountctl can wait until what it wrote shows in the mount. */
int store_daemon_register(struct store *st, int pid);
int store_daemon_unregister(struct store *st);
int store_daemon_set_notified(struct store *st, int64_t seq, int64_t tree_id);
/* Returns the live daemon's pid (0 when none) and how far it notified. */
int store_daemon_status(struct store *st, int *pid, int64_t *seq, int64_t *tree_id);
/* Waits until the daemon serving this data directory shows change `seq` and
 * tree-log entry `tree_id` in the mount (its notifier has invalidated the
 * kernel's caches for them), polling every millisecond or two. Returns 0
 * once shown or when no daemon runs; -ETIMEDOUT when the daemon made no
 * progress for idle_ms; -EINTR when *stop became set. For idbmountctl, so
 * that what it changed is visible to the next read; the daemon's own
 * threads wait on the notifier directly (shown.h). */
int store_daemon_wait_shown(struct store *st, int64_t seq, int64_t tree_id, int idle_ms,
                            const volatile sig_atomic_t *stop);
int64_t store_last_tree_id(struct store *st);

#endif
