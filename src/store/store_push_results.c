/* store_push_results.c - what a push says of each mutation
 * (store_push_result), and its memory of them per mutation id, so that a
 * retry is answered as the first time and applied once (src/DESIGN.md,
 * "Sync protocol").
 *
 * A result is kept in columns of its own (sync_results), never as the
 * endpoint's text: src/http/ renders it, the first time and on a retry
 * alike. A conflict's value is the record's last change's, compact, as a
 * pull carries it; the record's file is neither read nor parsed.
 */
#include "idbmount/store/store_sync.h"

#include "store_internal.h"
#include "store_sync_internal.h"

#include <errno.h>
#include <string.h>

/* Copies `len` bytes of a column into p->value, where res->value then
 * points (until the next mutation). */
static int value_copy(struct push *p, sqlite3_stmt *s, int col, struct store_push_result *res)
{
	buf_reset(&p->value);
	int rc = buf_append(&p->value, sqlite3_column_text(s, col),
	                    (size_t)sqlite3_column_bytes(s, col));
	res->value = p->value.data;
	res->value_len = p->value.len;
	return rc;
}

/* Reads a row of Q_RESULT_GET or Q_RESULT_GET_OLD into `res`. */
static int result_of_row(struct push *p, sqlite3_stmt *s, struct store_push_result *res)
{
	res->status = sqlite3_column_int(s, 0) ? STORE_PUSH_CONFLICT : STORE_PUSH_OK;
	res->rev = sqlite3_column_int64(s, 1);
	res->seq = sqlite3_column_int64(s, 2);
	res->has_key = sqlite3_column_type(s, 3) != SQLITE_NULL;
	res->key = sqlite3_column_int64(s, 3);
	res->deleted = sqlite3_column_int(s, 4) != 0;
	res->replayed = true;
	if (sqlite3_column_type(s, 5) == SQLITE_NULL)
		return 0;
	return value_copy(p, s, 5, res);
}

/* Looks up the result remembered for mutation `id` in `q`; *found says
 * whether there is one. */
static int recall_in(struct push *p, enum sync_stmt q, const char *id,
                     struct store_push_result *res, bool *found)
{
	sqlite3_stmt *s = store_sync_stmt(p->st, q);
	if (!s)
		return -EIO;
	sqlite3_bind_int64(s, 1, p->client_id);
	store_bind_text(s, 2, id);
	int rc = sqlite3_step(s);
	int out = 0;
	*found = rc == SQLITE_ROW;
	if (rc == SQLITE_ROW)
		out = result_of_row(p, s, res);
	else if (rc != SQLITE_DONE)
		out = store_sql_fail(p->st, rc);
	sqlite3_reset(s);
	return out;
}

/* Fills `res` with the result remembered for mutation `id`, if there is
 * one: *found says so. */
int push_recall(struct push *p, const char *id, struct store_push_result *res, bool *found)
{
	int rc = recall_in(p, Q_RESULT_GET, id, res, found);
	if (!rc && !*found && p->old_results)
		rc = recall_in(p, Q_RESULT_GET_OLD, id, res, found);
	if (!rc && *found)
		p->outcome->replayed++;
	return rc;
}

/* Remembers result `res` of mutation `id`. */
int push_remember(struct push *p, const char *id, const struct store_push_result *res)
{
	sqlite3_stmt *s = store_sync_stmt(p->st, Q_RESULT_PUT);
	if (!s)
		return -EIO;
	sqlite3_bind_int64(s, 1, p->client_id);
	store_bind_text(s, 2, id);
	sqlite3_bind_int(s, 3, res->status == STORE_PUSH_CONFLICT);
	sqlite3_bind_int64(s, 4, res->rev);
	sqlite3_bind_int64(s, 5, res->seq);
	if (res->has_key)
		sqlite3_bind_int64(s, 6, res->key);
	sqlite3_bind_int(s, 7, res->deleted);
	if (res->value)
		sqlite3_bind_text(s, 8, res->value, (int)res->value_len, SQLITE_STATIC);
	sqlite3_bind_int64(s, 9, p->now_ms);
	return store_step_done(p->st, s);
}

/* Drops the results remembered longer than SYNC_MUTATION_RETENTION_DAYS,
 * the oldest thousand at most (a push at a time keeps up), when the oldest
 * is due. */
int push_forget_old(struct push *p)
{
	int64_t before = p->now_ms - (int64_t)SYNC_MUTATION_RETENTION_DAYS * 86400000;
	int64_t due = 0;
	int rc = store_sync_step_int(p->st, Q_RESULT_PRUNE_DUE, before, &due);
	for (int old = 0; old < 2 && !rc; old++) {
		if ((!old && !due) || (old && !p->old_results))
			continue;
		sqlite3_stmt *s = store_sync_stmt(p->st, old ? Q_RESULT_PRUNE_OLD : Q_RESULT_PRUNE);
		rc = s ? 0 : -EIO;
		if (!rc) {
			sqlite3_bind_int64(s, 1, before);
			rc = store_step_done(p->st, s);
		}
	}
	return rc;
}

/* The result of a mutation whose base disagrees: the record as it is. */
int push_conflict_result(struct push *p, const struct store_record_state *now,
                         struct store_push_result *res)
{
	res->status = STORE_PUSH_CONFLICT;
	res->rev = now->exists ? now->rev : 0;
	res->deleted = !now->live;
	p->outcome->conflicts++;
	if (!now->live)
		return 0;
	sqlite3_stmt *s = store_sync_stmt(p->st, Q_RECORD_VALUE);
	if (!s)
		return -EIO;
	sqlite3_bind_int64(s, 1, now->seq);
	int rc = sqlite3_step(s);
	int out = 0;
	if (rc == SQLITE_ROW && sqlite3_column_type(s, 0) != SQLITE_NULL)
		out = value_copy(p, s, 0, res);
	else if (rc != SQLITE_ROW && rc != SQLITE_DONE)
		out = store_sql_fail(p->st, rc);
	sqlite3_reset(s);
	return out;
}

/* The result of a mutation that was applied. */
void push_ok_result(struct push *p, int64_t rev, int64_t seq, const json_t *generated_key,
                    struct store_push_result *res)
{
	res->status = STORE_PUSH_OK;
	res->rev = rev;
	res->seq = seq;
	res->has_key = generated_key != NULL;
	res->key = generated_key ? (int64_t)json_integer_value(generated_key) : 0;
	p->outcome->ok++;
	if (seq > p->outcome->last_seq)
		p->outcome->last_seq = seq;
}
