/* store_sync_internal.h - what the store's sync files share (see
 * store_sync.c): their statements, and a push under way (store_push.c
 * writes it, store_push_ahead.c parses ahead of it, store_push_mutation.c
 * reads one mutation, store_push_results.c says and remembers what each
 * mutation did).
 */
#ifndef IDBMOUNT_STORE_SYNC_INTERNAL_H
#define IDBMOUNT_STORE_SYNC_INTERNAL_H

#include "store_internal.h"

#include "idbmount/store/store_sync.h"

#include <pthread.h>
#include <stdatomic.h>

/* The sync files' statements, one table (store_sync.c), in the store's
 * range of slots STORE_SLOTS_SYNC. */
enum sync_stmt {
	Q_PIPELINE_INSERT,
	Q_PIPELINE_LIST,
	Q_PIPELINE_BY_TOKEN,
	Q_CLIENT_BY_TOKEN,
	Q_CLIENT_NAME,
	Q_RESULT_GET,
	Q_RESULT_PUT,
	Q_RESULT_PRUNE,
	Q_RESULT_PRUNE_DUE,
	Q_RESULT_OLD_ANY,
	Q_RESULT_GET_OLD,
	Q_RESULT_PRUNE_OLD,
	Q_RECORD_VALUE,
	Q_DB_VERSION,
	Q_DB_SET_VERSION,
	Q_DB_STORES,
	Q_STORE_SET_SHAPE,
	Q_STORE_SET_INDEXES,
	Q_STORE_COUNT_LIVE,
	Q_STORE_NEXT_KEY,
	Q_STORE_SET_NEXT_KEY,
	Q_CLIENT_LAST_SEQ,
	Q_PULL,
	Q_CHANGED_CLIENTS,
	Q_COUNT
};

/* The statement `id`, reset (NULL with the error set when it does not
 * prepare). */
sqlite3_stmt *store_sync_stmt(struct store *st, enum sync_stmt id);
/* Steps one-integer query `id` with ?1 = `a`; *out is kept when there is no
 * row. Returns 0 or -errno. */
int store_sync_step_int(struct store *st, enum sync_stmt id, int64_t a, int64_t *out);

/* ---- a push under way ---- */

/* A (db, store) of this push, resolved once. */
struct target {
	char *db;
	char *store;
	int64_t store_id;
	char *keypath;
	bool autoincrement;
};

/* A push of at least this many mutations is parsed and prepared ahead by
 * the thread it arrived on (push_ahead) while the writer's thread writes
 * it: on two CPUs the JSON work and the SQL work overlap. A small push is
 * parsed by the writer as it goes. */
#define PUSH_AHEAD_MIN 16

/* ---- a mutation read (store_push_mutation.c) ---- */

/* What the writer needs of a mutation but its value. */
struct mutation {
	const char *id, *db, *store; /* no U+0000 in them */
	bool put;                    /* else a delete */
	const json_t *key;           /* NULL when absent */
	const json_t *base;          /* NULL when absent */
};

/* A mutation read, and what `mu` points into. */
struct mutation_read {
	bool malformed; /* not JSON: `why` says where, in jansson's words */
	char why[200];
	/* Else NULL, or what is wrong with its shape; mu.id is then set
	 * when the id is a string, to name the mutation. */
	const char *wrong;
	struct mutation mu;
	bool has_value;              /* whether it has a "value" member */
	struct json_span value_text; /* its text; {NULL, 0} when read whole */
	json_t *value_parsed;        /* the value, when parsed */
	json_t *doc;                 /* jansson's reading, when not read quickly */
	char *names;                 /* the quick reading's id, db and store */
	json_t *key, *base;          /* the quick reading's key and base */
};

/* Reads mutation text `t` into *r: quickly when it is written plainly,
 * else by jansson. Never fails: r->malformed or r->wrong say what is
 * wrong. */
void mutation_read(struct json_span t, struct mutation_read *r);
/* Reads `t` again, whole, by jansson: for a value whose text alone does
 * not parse, so that the error says where in the mutation. */
void mutation_read_whole(struct json_span t, struct mutation_read *r);
void mutation_read_free(struct mutation_read *r);

enum slot_state { SLOT_FREE, SLOT_TAKEN, SLOT_READY };

/* One mutation, read and, when it can be done without SQL, prepared. */
struct slot {
	atomic_int state;
	struct mutation_read read; /* read.value_parsed NULL: laid out from its text */
	bool prepped;
	struct store_put_prep prep; /* for a put with a key, when prepped */
};

/* A push under way (store_sync_push). */
struct push {
	/* The caller's connection until the writer's thread takes the push,
	 * then the writer's: push_ahead never touches it. */
	struct store *st;
	size_t max_record;
	int64_t client_id;
	int64_t now_ms;
	const struct json_span *texts;
	size_t count;
	struct slot *slots;
	/* targets grows under the lock (the writer's thread, and the push's
	 * own before it is queued) and is read by push_ahead. */
	pthread_mutex_t targets_lock;
	struct target *targets;
	size_t ntargets, cap;
	atomic_size_t next;         /* push_ahead's next slot, from the front */
	pthread_mutex_t ready_lock; /* with `ready`: push_ahead filled a slot */
	pthread_cond_t ready;
	size_t back; /* the writer's next slot to fill, from the back */
	atomic_bool stop;
	/* The hand-off at the end, under ready_lock with `handoff`: push_ahead
	 * says it has stopped filling (so no longer reads `texts`, which the
	 * caller frees once the push returns); the writer says whether it is
	 * done with the slots (push_ahead then frees them) or abandons them
	 * to be filled again (push_drop_hints). */
	pthread_cond_t handoff;
	bool ahead_parked;
	enum { WRITER_BUSY, WRITER_DONE, WRITER_REFILLS } writer;
	struct store_push_outcome *outcome;
	store_push_result_fn result_fn;
	void *result_ctx;
	struct buf value; /* the value of the result being handed over */
	bool old_results; /* sync_mutations holds rows (Q_RESULT_GET_OLD) */
};

/* The target of (db, store) resolved so far in this push, or NULL
 * (store_push.c). push_ahead calls it holding targets_lock; the writer,
 * which alone grows the targets while push_ahead runs, without. */
struct target *push_target_find(struct push *p, const char *db, const char *store);

/* Parsing ahead (store_push_ahead.c). push_ahead is what the push's own
 * thread does while the writer writes; take_slot gives slot `i` filled, by
 * the writer when push_ahead has not taken it; push_slots_free frees the
 * slots when no thread fills them. push_ahead_finish tells push_ahead the
 * writer is done with the slots: push_ahead frees them, off the writer's
 * path, and returns. */
void push_ahead(struct push *p);
struct slot *push_take_slot(struct push *p, size_t i);
void push_slots_free(struct push *p);
void push_ahead_finish(struct push *p);
/* Stops push_ahead filling, and lets it return; the slots stay. */
void push_ahead_abandon(struct push *p);
/* Empties every slot, to be filled again (push_ahead has stopped). */
void push_slots_reset(struct push *p);

/* Results (store_push_results.c). push_recall fills `res` with the result
 * remembered for mutation `id`, if any (*found); push_remember remembers
 * one; push_forget_old drops those past SYNC_MUTATION_RETENTION_DAYS. */
int push_recall(struct push *p, const char *id, struct store_push_result *res, bool *found);
int push_remember(struct push *p, const char *id, const struct store_push_result *res);
int push_forget_old(struct push *p);
/* The result of a mutation whose base disagrees: the record as it is. */
int push_conflict_result(struct push *p, const struct store_record_state *now,
                         struct store_push_result *res);
/* The result of a mutation that was applied. */
void push_ok_result(struct push *p, int64_t rev, int64_t seq, const json_t *generated_key,
                    struct store_push_result *res);

#endif
