/* store_push.c - POST /v1/push in the store (store_sync.h): a push's
 * mutations checked, their targets resolved, their keys generated for
 * autoIncrement stores, and each applied in one transaction through
 * store_records.c's record functions after the `base` check, by the push
 * writer's thread on its connection. Each mutation is read by
 * store_push_mutation.c, ahead of the writer by the thread the push
 * arrived on (store_push_ahead.c) from before the writer is free; what
 * each one did is said and remembered by store_push_results.c.
 */
#include "idbmount/store/store_sync.h"

#include "store_internal.h"
#include "store_sync_internal.h"

#include "idbmount/codec/json_text.h"
#include "idbmount/util/thread_name.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Forgets the targets resolved so far (the array stays). */
static void push_targets_clear(struct push *p)
{
	for (size_t i = 0; i < p->ntargets; i++) {
		free(p->targets[i].db);
		free(p->targets[i].store);
		free(p->targets[i].keypath);
	}
	p->ntargets = 0;
}

static void push_free(struct push *p)
{
	push_slots_free(p);
	push_targets_clear(p);
	free(p->targets);
	buf_free(&p->value);
	pthread_mutex_destroy(&p->targets_lock);
	pthread_mutex_destroy(&p->ready_lock);
	pthread_cond_destroy(&p->ready);
	pthread_cond_destroy(&p->handoff);
}

/* ---- the push writer ------------------------------------------------------ */

/* A push handed to the writer's thread; `taken` and `done` under the
 * writer's lock. Each job has its own condition, so that the writer wakes
 * only the thread a change concerns: with one condition for all, four
 * client connections made three threads wake for nothing twice a push,
 * and each wake-up could take the writer's CPU. */
struct writer_job {
	struct push *p;
	bool ahead; /* the push's own thread runs push_ahead meanwhile */
	int rc;
	bool taken; /* the writer is on it */
	bool done;
	pthread_cond_t moved; /* next in line, taken, or done */
	struct writer_job *next;
};

/* One thread writes every push, one after another, through one
 * connection, while the thread each push arrived on parses it
 * (push_ahead). Before, the thread a push arrived on wrote it and started
 * a thread to parse it: with several client connections the writing moved
 * from thread to thread, and cost 7% more CPU than on one (the page cache
 * and statements last used on the other CPU). */
struct store_writer {
	pthread_mutex_t lock;
	pthread_cond_t wake; /* a job was queued, or stopping */
	struct writer_job *head, *last;
	bool started, stopping;
	pthread_t thread;
	struct store *st; /* the writer's thread's; opened on first use */
	char *datadir;
	size_t max_record;
};

int store_writer_new(const char *datadir, size_t max_record, struct store_writer **out)
{
	*out = NULL;
	struct store_writer *w = calloc(1, sizeof(*w));
	if (w)
		w->datadir = strdup(datadir);
	if (!w || !w->datadir) {
		free(w);
		return -ENOMEM;
	}
	w->max_record = max_record;
	pthread_mutex_init(&w->lock, NULL);
	pthread_cond_init(&w->wake, NULL);
	*out = w;
	return 0;
}

void store_writer_free(struct store_writer *w)
{
	if (!w)
		return;
	pthread_mutex_lock(&w->lock);
	w->stopping = true;
	pthread_cond_signal(&w->wake);
	pthread_mutex_unlock(&w->lock);
	if (w->started)
		pthread_join(w->thread, NULL);
	store_close(w->st);
	pthread_cond_destroy(&w->wake);
	pthread_mutex_destroy(&w->lock);
	free(w->datadir);
	free(w);
}

static int push_write(struct push *p, bool ahead_runs);

/* Writes job `j` through the writer's connection, which it opens the first
 * time; a reason goes to the caller's connection. */
static void writer_do(struct store_writer *w, struct writer_job *j)
{
	struct push *p = j->p;
	struct store *own = p->st;
	if (!w->st) {
		char err[512];
		if (store_open(w->datadir, &w->st, err, sizeof(err)) != 0) {
			store_set_error(own, "the push writer cannot open the store: %s", err);
			if (j->ahead)
				push_ahead_finish(p);
			j->rc = -EIO;
			return;
		}
		if (w->max_record)
			store_set_max_record(w->st, w->max_record);
	}
	p->st = w->st;
	j->rc = push_write(p, j->ahead);
	if (j->rc)
		store_set_error(own, "%s", store_last_error(w->st));
}

static void *writer_main(void *arg)
{
	struct store_writer *w = arg;
	thread_name_set("push-writer", NULL);
	pthread_mutex_lock(&w->lock);
	while (w->head || !w->stopping) {
		struct writer_job *j = w->head;
		if (!j) {
			pthread_cond_wait(&w->wake, &w->lock);
			continue;
		}
		w->head = j->next;
		j->taken = true;
		pthread_cond_signal(&j->moved);
		if (w->head) /* the next in line may parse */
			pthread_cond_signal(&w->head->moved);
		pthread_mutex_unlock(&w->lock);
		writer_do(w, j);
		pthread_mutex_lock(&w->lock);
		j->done = true;
		pthread_cond_signal(&j->moved);
	}
	pthread_mutex_unlock(&w->lock);
	return NULL;
}

/* Queues job `j` for the writer's thread, which starts on first use.
 * Returns 0, or -errno when the thread cannot start (the reason in
 * `own`). */
static int writer_queue(struct store_writer *w, struct writer_job *j, struct store *own)
{
	pthread_mutex_lock(&w->lock);
	int rc = 0;
	if (!w->started) {
		rc = -pthread_create(&w->thread, NULL, writer_main, w);
		w->started = rc == 0;
	}
	if (!rc) {
		if (w->head)
			w->last->next = j;
		else
			w->head = j;
		w->last = j;
		pthread_cond_signal(&w->wake);
	}
	pthread_mutex_unlock(&w->lock);
	if (rc)
		store_set_error(own, "the push writer's thread cannot start: %s", strerror(-rc));
	return rc;
}

/* Waits until job `j` is next in line, or being written. A push waiting
 * behind others is parsed only then: on two CPUs, three pushes parsed at
 * once (four client connections) took CPU time from the writer, the one
 * thread every push waits for, and what they laid out was cold in the
 * caches by the time the writer got to it. Measured with four connections:
 * the writer's time a push 3% shorter, its CPU time 2.5% less. */
static void writer_wait_turn(struct store_writer *w, struct writer_job *j)
{
	pthread_mutex_lock(&w->lock);
	while (w->head != j && !j->taken)
		pthread_cond_wait(&j->moved, &w->lock);
	pthread_mutex_unlock(&w->lock);
}

/* Waits until job `j` is written, and returns what the writer said. */
static int writer_wait(struct store_writer *w, struct writer_job *j)
{
	pthread_mutex_lock(&w->lock);
	while (!j->done)
		pthread_cond_wait(&j->moved, &w->lock);
	pthread_mutex_unlock(&w->lock);
	return j->rc;
}

/* ---- a push ------------------------------------------------------------------- */

/* Looks up where object store `store` of database `db` is: its id, key path
 * and key generator. -ENOENT for one this client does not have. */
static int target_resolve(struct store *st, int64_t client_id, const char *db, const char *store,
                          struct target *t)
{
	int64_t db_id = 0;
	int rc = store_db_resolve(st, client_id, db, false, ORIGIN_BROWSER, &db_id);
	if (!rc)
		rc = store_objstore_ensure(st, db_id, store, "null", false, false, false,
		                           ORIGIN_BROWSER, &t->store_id);
	if (rc == -ENOENT) {
		store_set_error(st, "no store '%s' in database '%s' (POST /v1/schema first)", store,
		                db);
		return rc;
	}
	if (!rc)
		rc = store_keypath_of(st, t->store_id, &t->keypath, &t->autoincrement);
	return rc;
}

struct target *push_target_find(struct push *p, const char *db, const char *store)
{
	for (size_t i = 0; i < p->ntargets; i++)
		if (strcmp(p->targets[i].db, db) == 0 && strcmp(p->targets[i].store, store) == 0)
			return &p->targets[i];
	return NULL;
}

/* Finds or resolves, on connection `st`, the target of a mutation. -ENOENT
 * for a database or store this client does not have. */
static int push_target(struct push *p, struct store *st, const char *db, const char *store,
                       struct target **out)
{
	*out = push_target_find(p, db, store);
	if (*out)
		return 0;
	struct target t = {0};
	int rc = target_resolve(st, p->client_id, db, store, &t);
	if (rc)
		return rc;
	t.db = strdup(db);
	t.store = strdup(store);
	pthread_mutex_lock(&p->targets_lock);
	if (t.db && t.store && p->ntargets == p->cap) {
		size_t cap = p->cap ? p->cap * 2 : 8;
		struct target *grown = realloc(p->targets, cap * sizeof(*grown));
		if (grown) {
			p->targets = grown;
			p->cap = cap;
		}
	}
	if (t.db && t.store && p->ntargets < p->cap) {
		p->targets[p->ntargets] = t;
		*out = &p->targets[p->ntargets++];
	} else {
		rc = -ENOMEM;
	}
	pthread_mutex_unlock(&p->targets_lock);
	if (rc) {
		free(t.db);
		free(t.store);
		free(t.keypath);
	}
	return rc;
}

/* Moves the store's key generator past number key `key` (IndexedDB:
 * an explicit number key >= the generator sets it to floor(key) + 1). */
static int advance_generator(struct push *p, struct target *t, const json_t *key)
{
	if (!t->autoincrement || !json_is_number(key))
		return 0;
	double k = json_number_value(key);
	int64_t next = 0;
	int rc = store_sync_step_int(p->st, Q_STORE_NEXT_KEY, t->store_id, &next);
	if (rc || !(k >= (double)next))
		return rc;
	double want = floor(k) + 1;
	next = want > 9007199254740992.0 ? INT64_MAX : (int64_t)want;
	sqlite3_stmt *s = store_sync_stmt(p->st, Q_STORE_SET_NEXT_KEY);
	if (!s)
		return -EIO;
	sqlite3_bind_int64(s, 1, t->store_id);
	sqlite3_bind_int64(s, 2, next);
	return store_step_done(p->st, s);
}

/* Makes the next key of an autoIncrement store, stepping over numbers a
 * live record already holds. */
static int generate_key(struct push *p, struct target *t, json_t **key)
{
	int64_t next = 1;
	int rc = store_sync_step_int(p->st, Q_STORE_NEXT_KEY, t->store_id, &next);
	while (!rc) {
		if (next > 9007199254740992LL) {
			store_set_error(p->st, "the key generator of store '%s' is exhausted",
			                t->store);
			return -EINVAL;
		}
		json_t *k = json_integer(next);
		struct store_record_state now;
		rc = store_record_state(p->st, t->store_id, k, &now);
		if (!rc && !now.live) {
			*key = k;
			return advance_generator(p, t, k);
		}
		json_decref(k);
		next++;
	}
	return rc;
}

/* Whether the record's state is what `base` (the mutation's member, or
 * NULL when absent) says the browser saw: the write may go on. */
static bool base_agrees(void *ctx, const struct store_record_state *now)
{
	const json_t *base = ctx;
	if (!base)
		return true;
	if (json_is_null(base))
		return !now->live;
	return json_integer_value(base) == (now->exists ? now->rev : 0);
}

/* Applies mutation number `i` and fills its result. */
static int push_one(struct push *p, size_t i)
{
	struct slot *sl = push_take_slot(p, i);
	const struct mutation_read *r = &sl->read;
	if (r->malformed) {
		store_set_error(p->st, "malformed JSON: mutation %zu: %s", i, r->why);
		p->outcome->malformed = true;
		p->outcome->malformed_index = i;
		snprintf(p->outcome->malformed_why, sizeof(p->outcome->malformed_why), "%s",
		         r->why);
		return -EINVAL;
	}
	if (r->wrong) {
		if (r->mu.id)
			store_set_error(p->st, "mutation %zu (id %.64s): %s", i, r->mu.id,
			                r->wrong);
		else
			store_set_error(p->st, "mutation %zu: %s", i, r->wrong);
		return -EINVAL;
	}
	const struct mutation *mu = &r->mu;
	const char *id = mu->id;
	bool put = mu->put;
	struct store_push_result res = {.id = id, .id_len = strlen(id)};
	bool known = false;
	int rc = push_recall(p, id, &res, &known);
	if (!rc && known)
		rc = p->result_fn(p->result_ctx, i, &res);
	if (rc || known)
		return rc;
	struct target *t = NULL;
	rc = push_target(p, p->st, mu->db, mu->store, &t);
	const json_t *given = mu->key;
	json_t *key = NULL;
	const json_t *value = r->value_parsed; /* NULL when prepared from its text */
	bool generated = false;
	if (!rc && (!given || json_is_null(given))) {
		bool inline_keys = strcmp(t->keypath, "null") != 0;
		if (inline_keys && store_keypath_extract(p->st, t->keypath, value, &key) == 0) {
			/* the key is in the value */
		} else if (t->autoincrement) {
			rc = generate_key(p, t, &key);
			generated = rc == 0;
		} else {
			if (!inline_keys)
				store_set_error(p->st,
				                "store '%s' has out-of-line keys and no "
				                "key generator: "
				                "the mutation needs a key",
				                t->store);
			rc = -EINVAL;
		}
	} else if (!rc) {
		key = json_incref((json_t *)given);
	}
	struct store_record_state now = {0};
	void *base = (void *)mu->base; /* base_agrees' context */
	int64_t rev = 0, seq = 0;
	if (!rc && put && sl->prepped) {
		/* push_ahead did the key and the value (the key was given). */
		rc = store_record_put_prepared(p->st, t->store_id, &sl->prep, value, ORIGIN_BROWSER,
		                               base_agrees, base, &now, &rev, &seq);
		if (!rc)
			rc = advance_generator(p, t, key);
	} else if (!rc && put) {
		rc = store_record_put(p->st, t->store_id, t->keypath, key, value, ORIGIN_BROWSER,
		                      base_agrees, base, &now, &rev, &seq);
		if (!rc && !generated)
			rc = advance_generator(p, t, key);
	} else if (!rc) {
		rc = store_record_delete(p->st, t->store_id, key, ORIGIN_BROWSER, base_agrees, base,
		                         &now, &rev, &seq);
	}
	if (rc == STORE_REFUSED)
		rc = push_conflict_result(p, &now, &res);
	else if (!rc)
		push_ok_result(p, rev, seq, generated ? key : NULL, &res);
	json_decref(key);
	if (!rc)
		rc = push_remember(p, id, &res);
	if (!rc) {
		rc = p->result_fn(p->result_ctx, i, &res);
		if (rc)
			return rc; /* the callback's reason, not the store's */
	}
	if (rc) {
		/* Name the mutation in the reason. */
		char reason[sizeof(((struct store *)0)->err)];
		snprintf(reason, sizeof(reason), "%s", store_last_error(p->st));
		store_set_error(p->st, "mutation %zu (id %.64s): %s", i, id,
		                reason[0] ? reason : strerror(-rc));
	}
	return rc;
}

/* Before the writer is free: looks up on the caller's own connection where
 * the first mutation goes, so that push_ahead can lay out the puts into
 * that store meanwhile (the key path decides a record's file text). Only a
 * hint: push_hints_hold checks it again inside the transaction. */
static void push_hint_target(struct push *p, struct store *own)
{
	struct mutation_read r;
	mutation_read(p->texts[0], &r);
	struct target *t = NULL;
	if (r.mu.db && r.mu.store) {
		push_target(p, own, r.mu.db, r.mu.store, &t);
		store_set_error(own, "%s", ""); /* the writer will say what is wrong */
	}
	mutation_read_free(&r);
}

/* Whether the targets looked up before the transaction are still what they
 * were: a schema change may have come between. */
static int push_hints_hold(struct push *p, bool *hold)
{
	*hold = true;
	for (size_t i = 0; i < p->ntargets && *hold; i++) {
		const struct target *hint = &p->targets[i];
		struct target now = {0};
		int rc = target_resolve(p->st, p->client_id, hint->db, hint->store, &now);
		if (rc && rc != -ENOENT)
			return rc;
		*hold = !rc && now.store_id == hint->store_id &&
		        now.autoincrement == hint->autoincrement &&
		        strcmp(now.keypath, hint->keypath) == 0;
		free(now.keypath);
	}
	store_set_error(p->st, "%s", "");
	return 0;
}

/* Drops what was done from stale hints: push_ahead stops and every
 * mutation is parsed again, on this thread. */
static void push_drop_hints(struct push *p, bool *ahead_runs)
{
	if (*ahead_runs)
		push_ahead_abandon(p);
	*ahead_runs = false;
	push_slots_reset(p);
	push_targets_clear(p);
}

/* The writer's part of a push: its mutations applied in one transaction
 * on p->st, the writer's connection. */
static int push_write(struct push *p, bool ahead_runs)
{
	int rc = store_txn_begin(p->st);
	bool in_txn = !rc;
	bool hints_hold = true;
	if (!rc && p->ntargets)
		rc = push_hints_hold(p, &hints_hold);
	if (!rc && !hints_hold)
		push_drop_hints(p, &ahead_runs);
	if (!rc) {
		sqlite3_stmt *s = store_sync_stmt(p->st, Q_RESULT_OLD_ANY);
		int64_t any = 0;
		rc = s ? store_step_int(p->st, s, &any) : -EIO;
		p->old_results = any != 0;
	}
	for (size_t i = 0; i < p->count && !rc; i++)
		rc = push_one(p, i);
	/* From here on neither thread reads the mutations' texts; push_ahead
	 * frees the slots while this thread commits. */
	if (ahead_runs)
		push_ahead_finish(p);
	if (!rc)
		rc = push_forget_old(p);
	if (in_txn)
		rc = store_txn_end(p->st, rc);
	return rc;
}

int store_sync_push(struct store *st, struct store_writer *writer, int64_t client_id,
                    const struct json_span *mutations, size_t count, store_push_result_fn fn,
                    void *ctx, struct store_push_outcome *outcome)
{
	store_set_error(st, "%s", "");
	memset(outcome, 0, sizeof(*outcome));
	struct push push = {.st = st,
	                    .client_id = client_id,
	                    .max_record = st->max_record,
	                    .now_ms = store_now_ns() / 1000000,
	                    .texts = mutations,
	                    .count = count,
	                    .back = count,
	                    .outcome = outcome,
	                    .result_fn = fn,
	                    .result_ctx = ctx,
	                    /* a record's compact form (prepared_value) */
	                    .value = BUF_INIT(st->max_record * 2 + 64)};
	struct push *p = &push;
	pthread_mutex_init(&p->targets_lock, NULL);
	pthread_mutex_init(&p->ready_lock, NULL);
	pthread_cond_init(&p->ready, NULL);
	pthread_cond_init(&p->handoff, NULL);
	p->slots = calloc(count ? count : 1, sizeof(*p->slots));
	int rc = p->slots ? 0 : -ENOMEM;
	if (rc)
		store_set_error(st, "out of memory");
	struct writer_job job = {.p = p, .ahead = !rc && count >= PUSH_AHEAD_MIN};
	/* Where the first mutation goes, looked up on this thread's own
	 * connection, lets push_ahead lay out the puts before the writer has
	 * resolved anything. */
	pthread_cond_init(&job.moved, NULL);
	if (job.ahead)
		push_hint_target(p, st);
	if (!rc)
		rc = writer_queue(writer, &job, st);
	if (!rc) {
		/* While the push before this one is written, and while this
		 * one is, this thread parses it. */
		if (job.ahead) {
			writer_wait_turn(writer, &job);
			push_ahead(p);
		}
		rc = writer_wait(writer, &job);
	}
	pthread_cond_destroy(&job.moved);
	push_free(p);
	if (rc) {
		struct store_push_outcome failed = *outcome;
		memset(outcome, 0, sizeof(*outcome));
		outcome->malformed = failed.malformed;
		outcome->malformed_index = failed.malformed_index;
		memcpy(outcome->malformed_why, failed.malformed_why, sizeof(failed.malformed_why));
	}
	return rc;
}
