/* store_sync.h - what the sync endpoint (src/http/) and idbmountctl's
 * `pipeline` command ask of the store (src/DESIGN.md, "Sync protocol").
 *
 * Requests arrive as jansson values and are checked here, where the rules
 * live (a key is a key, a keyPath is a keyPath); the HTTP layer only maps
 * the returned -errno to a status: -EINVAL 400, -ENOENT 404 (a database or
 * store this client does not have), -EFBIG 413, -EEXIST 409 (a schema
 * change that would reinterpret stored records), anything else 500. The
 * reason is in store_last_error() and never names another client's data.
 *
 * Decisions (src/DESIGN.md, "Endpoints", has them in short):
 *   - Mutation ids are remembered per client with the result given, for
 *     SYNC_MUTATION_RETENTION_DAYS; a retry within that time is given the
 *     stored result, whatever the retried mutation holds.
 *     Conflicts are remembered too: resolving one is a new mutation.
 *   - `base` absent means "write whatever is there" (no check); null means
 *     "I saw no record" (a live record is a conflict; a tombstone is not);
 *     a number N means "I saw revision N" (anything else is a conflict; a
 *     record never stored has revision 0).
 *   - A push is all or nothing for errors (400/404/413 roll back the whole
 *     batch); conflicts are answers, not errors: the other mutations apply.
 *   - autoIncrement: a put without a key (absent or null) in an
 *     autoIncrement store gets the store's next number, skipping numbers
 *     already used by a live record (keys written through the mount or
 *     idbmountctl do not advance the generator, so it steps over them);
 *     an explicit number advances it as IndexedDB does. The result then
 *     carries the "key". With an inline keyPath the key is taken from the
 *     value when the value has one, and put into it when generated.
 *   - Pull: since=0 is a snapshot (live records only, no tombstones); any
 *     pull sends each record's latest change only, so history that was
 *     overwritten is not replayed. The checkpoint is a change seq.
 */
#ifndef IDBMOUNT_STORE_SYNC_H
#define IDBMOUNT_STORE_SYNC_H

#include "idbmount/codec/json_text.h"
#include "idbmount/store/store.h"
#include "idbmount/util/buf.h"

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>

#define SYNC_MUTATION_RETENTION_DAYS 30
#define SYNC_MUTATION_ID_MAX         256 /* bytes of a mutation id */

/* ---- tokens ---------------------------------------------------------- */

enum store_principal_kind {
	PRINCIPAL_CLIENT = 1,   /* a browser client: its own tree only */
	PRINCIPAL_PIPELINE = 2, /* a pipeline: /v1/changes only */
};

struct store_principal {
	enum store_principal_kind kind;
	int64_t id;
};

/* Finds who a bearer token belongs to. Returns 0 or -EACCES. */
int store_sync_auth(struct store *st, const char *token, struct store_principal *out);

/* The name of client `client_id` (malloc'd). Returns 0 or -ENOENT. */
int store_sync_client_name(struct store *st, int64_t client_id, char **name);

/* Creates pipeline `name` and writes its new token (NUL-terminated) into
 * `token`, prefixed with "NODE." unless `node` is NULL (store.h, "A token
 * is"); only its SHA-256 is stored. Returns 0, -EEXIST, -EINVAL. */
int store_pipeline_add(struct store *st, const char *name, const char *node,
                       char token[STORE_TOKEN_MAX]);
int store_pipeline_list(struct store *st, store_name_fn fn, void *ctx);

/* ---- schema ---------------------------------------------------------- */

/* Why `keypath` (JSON) cannot be an object store's keyPath together with
 * `autoincrement`, or NULL when it can (IndexedDB's rules). */
const char *store_keypath_problem(const json_t *keypath, bool autoincrement);

/* POST /v1/schema: `request` is {db, version, stores:[{name, keyPath,
 * autoIncrement, indexes}]}. Makes the database and the stores it lacks,
 * sets indexes, never deletes a store. *answer (new reference) is the
 * database's whole schema as the server has it: {db, version, stores},
 * including stores made on the mount or with idbmountctl; version is the
 * highest of the browser's and the server's (which counts stores made
 * elsewhere). A store that exists with another keyPath or autoIncrement
 * is changed only while it holds no record (-EEXIST otherwise). */
int store_sync_schema(struct store *st, int64_t client_id, const json_t *request, json_t **answer);

/* ---- push -------------------------------------------------------------- */

enum store_push_status {
	STORE_PUSH_OK,       /* applied */
	STORE_PUSH_CONFLICT, /* refused: the base disagrees with the record */
};

/* What the store says of one mutation; src/http/ renders it. A retry is
 * given the result remembered for its id (`replayed`), with the values of
 * the first time. The texts are borrowed for the call that hands it over. */
struct store_push_result {
	enum store_push_status status;
	bool replayed;
	const char *id; /* the mutation's id, NUL-terminated, id_len bytes */
	size_t id_len;
	/* ok: the revision written; conflict: the record's (0: never stored) */
	int64_t rev;
	int64_t seq; /* ok: its change (0: the delete of an absent record) */
	bool has_key;
	int64_t key;  /* ok, has_key: the key the server generated */
	bool deleted; /* conflict: the record is deleted or was never stored */
	/* conflict: the record's value as compact JSON (as the change log and
	 * a pull carry it), value_len bytes; NULL when it has none */
	const char *value;
	size_t value_len;
};

/* Takes the result of mutation `index`, in order, inside the push's
 * transaction. Returns 0, or -errno to fail the push (nothing applied):
 * -EFBIG when the answer would be too large. */
typedef int (*store_push_result_fn)(void *ctx, size_t index, const struct store_push_result *res);

/* What a push did, in sum. */
struct store_push_outcome {
	int64_t ok, conflicts;
	int64_t replayed; /* retried ids answered from memory */
	int64_t last_seq; /* the highest seq applied (0 when none) */
	/* The error is mutation `malformed_index`'s text, which does not
	 * parse: `malformed_why` is json_text_parse's reason, its line and
	 * column counted in that text. */
	bool malformed;
	size_t malformed_index;
	char malformed_why[200];
};

/* The push writer: one thread and one connection that write every push,
 * in the order they come. In WAL mode a connection drops its whole page
 * cache when it finds that another connection has committed, so pushes
 * arriving on several server threads, each writing through its own
 * connection, each began by reading back the pages the last one wrote (2
 * and 4 client connections cost 30% more CPU a mutation than one, and
 * were slower). SQLite has one writer anyway. The thread starts and the
 * connection opens on first use, with `max_record` (0: the default);
 * store_writer_free waits for the pushes queued. It takes NULL. */
struct store_writer;
int store_writer_new(const char *datadir, size_t max_record, struct store_writer **out);
void store_writer_free(struct store_writer *w);

/* POST /v1/push: applies `count` mutations (each one JSON text, an element
 * of the body's array, json_text_elements) in one transaction with origin
 * "browser", through `writer`, handing each one's result to `fn` (on the
 * writer's thread, while this one waits). On an error (`fn`'s included)
 * nothing is applied, the outcome is zero (but for `malformed`: a text did
 * not parse), and `st`'s reason names the mutation by index and id (but
 * for `fn`'s own, which `fn` knows). From PUSH_AHEAD_MIN mutations on, the
 * calling thread parses and lays out the mutations once the push is next
 * in line for the writer and while it is written (`st`, the caller's own
 * connection, looks up where they go). */
int store_sync_push(struct store *st, struct store_writer *writer, int64_t client_id,
                    const struct json_span *mutations, size_t count, store_push_result_fn fn,
                    void *ctx, struct store_push_outcome *outcome);

/* ---- pull and events ------------------------------------------------- */

/* Calls `fn` (fields borrowed, client left NULL) for up to `limit` changes
 * of client `client_id` after `since`, each record's latest change only, in
 * seq order; at since 0 without deletes. *checkpoint is where the next pull
 * starts, *more whether it has more to fetch. Returns 0 or -errno. */
int store_sync_pull(struct store *st, int64_t client_id, int64_t since, int64_t limit,
                    store_change_fn fn, void *ctx, int64_t *checkpoint, bool *more);

/* The seq of client `client_id`'s last change (0 when none), or -errno. */
int64_t store_sync_client_last_seq(struct store *st, int64_t client_id);

/* Calls `fn` once per client with changes after `since`, with that client's
 * last seq. Returns the highest seq seen (`since` when none) or -errno. */
typedef int (*store_client_seq_fn)(void *ctx, int64_t client_id, int64_t last_seq);
int64_t store_sync_changed_clients(struct store *st, int64_t since, store_client_seq_fn fn,
                                   void *ctx);

#endif
