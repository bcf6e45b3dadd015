/* store_sinks.c - the store's part for the flusher (see store_internal.h
 * for how the store is split, store_sinks.h for what it promises).
 *
 * Two tables: `sinks` (one row per configured sink: cursor, generation,
 * statistics) and `sink_intents` (batches not yet taken: pending, staged,
 * parked, or published and awaiting a consumer that acknowledges). A taken
 * intent is deleted (a delivered one in the transaction that moves its
 * sink's cursor), so the table stays as small as the number of batches in
 * flight plus those parked or not yet taken.
 *
 * Those rows are also what keeps the delivered mark honest: a pipeline's
 * mark never passes the first seq of one of its intents (MARK_SQL), so a
 * batch parked, in flight or not yet taken holds it back however far
 * later batches got.
 */
#include "idbmount/store/store_sinks.h"

#include "store_internal.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

const char store_sinks_schema_sql[] =
        "CREATE TABLE IF NOT EXISTS sinks(name TEXT PRIMARY KEY, type TEXT NOT NULL,"
        " cursor INTEGER NOT NULL DEFAULT 0, generation INTEGER NOT NULL DEFAULT 0,"
        " delivered_seq INTEGER NOT NULL DEFAULT 0,"
        " delivered_batches INTEGER NOT NULL DEFAULT 0,"
        " delivered_changes INTEGER NOT NULL DEFAULT 0,"
        " delivered_bytes INTEGER NOT NULL DEFAULT 0, retries INTEGER NOT NULL DEFAULT 0,"
        " failures INTEGER NOT NULL DEFAULT 0, long_lines INTEGER NOT NULL DEFAULT 0,"
        " last_error TEXT NOT NULL DEFAULT '', last_error_ms INTEGER NOT NULL DEFAULT 0,"
        " last_delivery_ms INTEGER NOT NULL DEFAULT 0,"
        " open_partition TEXT NOT NULL DEFAULT '', replay_to INTEGER NOT NULL DEFAULT 0);"
        /* state: 0 pending, 1 staged, 2 published (awaiting its consumer),
         * 3 parked; taken rows are deleted. */
        "CREATE TABLE IF NOT EXISTS sink_intents(id INTEGER PRIMARY KEY AUTOINCREMENT,"
        " sink TEXT NOT NULL, generation INTEGER NOT NULL, state INTEGER NOT NULL,"
        " from_seq INTEGER NOT NULL, to_seq INTEGER NOT NULL, first_seq INTEGER NOT NULL,"
        " last_seq INTEGER NOT NULL, changes INTEGER NOT NULL, bytes INTEGER NOT NULL,"
        " created_ms INTEGER NOT NULL, name TEXT NOT NULL, partition TEXT NOT NULL,"
        " error TEXT NOT NULL DEFAULT '');"
        "CREATE INDEX IF NOT EXISTS sink_intents_by_sink ON sink_intents(sink, state, id);"
        /* Partitioned sinks with a done flag: every period that starts
         * before flags_from_ms has its flag. A table of its own, so that
         * data directories made before it need no migration. */
        "CREATE TABLE IF NOT EXISTS sink_periods(sink TEXT PRIMARY KEY,"
        " flags_from_ms INTEGER NOT NULL);"
        /* Sinks that the daemon's config file no longer names: kept (with
         * their cursor, should they come back), shown as removed. */
        "CREATE TABLE IF NOT EXISTS sinks_removed(name TEXT PRIMARY KEY,"
        " removed_ms INTEGER NOT NULL);";

enum stmt_id {
	S_REGISTER,
	S_LOAD,
	S_LIST,
	S_PARKED_COUNT,
	S_FIRST_AFTER,
	S_LAST_SEQ,
	S_ADVANCE,
	S_INTENT_ADD,
	S_INTENT_STAGED,
	S_INTENT_DELETE,
	S_DONE_STATS,
	S_INTENT_PARK,
	S_PARK_STATS,
	S_INTENT_NEXT,
	S_INTENTS,
	S_RETRY,
	S_OPEN_PARTITION,
	S_UNPARK_ALL,
	S_UNPARK_ONE,
	S_REPLAY,
	S_INTENT_PUBLISHED,
	S_INTENT_TAKEN,
	S_TAKEN,
	S_TAKEN_RANGE,
	S_REPLAY_PARKED,
	S_FLAGS_FROM,
	S_SET_FLAGS_FROM,
	S_INTENT_MOVE,
	S_NAMES,
	S_MARK_REMOVED,
	S_MARK_CONFIGURED,
	STMT_COUNT
};

/* The one place for the rule of the delivered mark (store_sinks.h): the
 * highest seq S such that every change <= S was taken by the pipeline of
 * the row of `sinks` in scope. delivered_seq is the highest last seq it
 * took; an intent still in the table (pending, staged, published but not
 * taken, parked) was not taken, so the mark stays below its first seq. */
#define MARK_SQL                                                                                   \
	"min(delivered_seq, coalesce((SELECT min(i.first_seq) - 1 FROM sink_intents i "            \
	"WHERE i.sink = sinks.name), delivered_seq))"

#define SINK_COLS                                                                                  \
	"name, type, cursor, generation, " MARK_SQL ", delivered_batches, delivered_changes, "     \
	"delivered_bytes, retries, failures, long_lines, last_error, last_error_ms, "              \
	"last_delivery_ms, open_partition, replay_to, "                                            \
	"coalesce((SELECT removed_ms FROM sinks_removed r WHERE r.name = sinks.name), 0)"
#define INTENT_COLS                                                                                \
	"id, generation, state, from_seq, to_seq, first_seq, last_seq, changes, bytes, "           \
	"created_ms, name, partition, error"

static const char *const stmt_sql[STMT_COUNT] = {
        [S_REGISTER] = "INSERT INTO sinks(name, type) VALUES (?1, ?2) "
                       "ON CONFLICT(name) DO UPDATE SET type = excluded.type",
        [S_LOAD] = "SELECT " SINK_COLS " FROM sinks WHERE name = ?1",
        [S_LIST] = "SELECT " SINK_COLS " FROM sinks ORDER BY name",
        [S_PARKED_COUNT] = "SELECT count(*) FROM sink_intents WHERE sink = ?1 AND state = 3",
        [S_FIRST_AFTER] = "SELECT ts_ms FROM changes WHERE seq > ?1 ORDER BY seq LIMIT 1",
        [S_LAST_SEQ] = "SELECT coalesce(max(seq), 0) FROM changes",
        [S_ADVANCE] = "UPDATE sinks SET cursor = ?3 WHERE name = ?1 AND generation = ?2 "
                      "AND cursor < ?3",
        [S_INTENT_ADD] = "INSERT INTO sink_intents(sink, generation, state, from_seq, to_seq, "
                         "first_seq, last_seq, changes, bytes, created_ms, name, partition) "
                         "VALUES (?1, ?2, 0, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)",
        [S_INTENT_STAGED] = "UPDATE sink_intents SET state = 1 WHERE id = ?1",
        [S_INTENT_DELETE] = "DELETE FROM sink_intents WHERE id = ?1",
        [S_DONE_STATS] = "UPDATE sinks SET delivered_batches = delivered_batches + 1, "
                         "delivered_changes = delivered_changes + ?2, "
                         "delivered_bytes = delivered_bytes + ?3, long_lines = long_lines + ?4, "
                         "delivered_seq = max(delivered_seq, ?5), last_delivery_ms = ?6, "
                         "open_partition = CASE WHEN ?7 = '' THEN open_partition ELSE ?7 END "
                         "WHERE name = ?1",
        [S_INTENT_PARK] = "UPDATE sink_intents SET state = 3, error = ?2 WHERE id = ?1",
        [S_PARK_STATS] = "UPDATE sinks SET failures = failures + 1, last_error = ?2, "
                         "last_error_ms = ?3 WHERE name = ?1",
        [S_INTENT_NEXT] = "SELECT " INTENT_COLS " FROM sink_intents WHERE sink = ?1 "
                          "AND state IN (0, 1) ORDER BY id LIMIT 1",
        [S_INTENTS] = "SELECT " INTENT_COLS " FROM sink_intents WHERE sink = ?1 AND state = ?2 "
                      "ORDER BY id",
        [S_RETRY] = "UPDATE sinks SET retries = retries + 1, last_error = ?2, "
                    "last_error_ms = ?3 WHERE name = ?1",
        [S_OPEN_PARTITION] = "UPDATE sinks SET open_partition = ?2 WHERE name = ?1",
        [S_UNPARK_ALL] = "UPDATE sink_intents SET state = 0, error = '' WHERE sink = ?1 "
                         "AND state = 3",
        [S_UNPARK_ONE] = "UPDATE sink_intents SET state = 0, error = '' WHERE sink = ?1 "
                         "AND state = 3 AND id = ?2",
        [S_INTENT_PUBLISHED] = "UPDATE sink_intents SET state = 2 WHERE id = ?1",
        [S_INTENT_TAKEN] = "DELETE FROM sink_intents WHERE id = ?1 AND state = 2",
        [S_TAKEN] = "UPDATE sinks SET delivered_seq = max(delivered_seq, ?2) WHERE name = ?1",
        [S_TAKEN_RANGE] = "SELECT coalesce(min(" MARK_SQL "), 0), coalesce(max(" MARK_SQL "), 0) "
                          "FROM sinks WHERE name NOT IN (SELECT name FROM sinks_removed)",
        /* A replay from ?2 ships a parked batch's changes again (under a
         * new generation's name): the parked copy would be a second one. */
        [S_REPLAY_PARKED] = "DELETE FROM sink_intents WHERE sink = ?1 AND state = 3 "
                            "AND first_seq >= ?2",
        [S_NAMES] = "SELECT name FROM sinks ORDER BY name",
        [S_MARK_REMOVED] = "INSERT INTO sinks_removed(name, removed_ms) VALUES (?1, ?2) "
                           "ON CONFLICT(name) DO NOTHING",
        [S_MARK_CONFIGURED] = "DELETE FROM sinks_removed WHERE name = ?1",
        [S_FLAGS_FROM] = "SELECT flags_from_ms FROM sink_periods WHERE sink = ?1",
        [S_SET_FLAGS_FROM] =
                "INSERT INTO sink_periods(sink, flags_from_ms) VALUES (?1, ?2) "
                "ON CONFLICT(sink) DO UPDATE SET flags_from_ms = excluded.flags_from_ms",
        [S_INTENT_MOVE] = "UPDATE sink_intents SET partition = ?2, created_ms = ?3 WHERE id = ?1",
        [S_REPLAY] = "UPDATE sinks SET cursor = ?2, generation = generation + 1, "
                     "replay_to = ?3 WHERE name = ?1",
};

STORE_SLOTS_FIT(SINKS, STMT_COUNT);

static sqlite3_stmt *stmt(struct store *st, enum stmt_id id)
{
	return store_stmt(st, STORE_SLOTS_SINKS + (int)id, stmt_sql[id]);
}

static int64_t wall_ms(void)
{
	return store_now_ns() / 1000000;
}

static void copy_col(sqlite3_stmt *s, int i, char *out, size_t outlen)
{
	const unsigned char *t = sqlite3_column_text(s, i);
	snprintf(out, outlen, "%s", t ? (const char *)t : "");
}

static void sink_from_row(sqlite3_stmt *s, void *out)
{
	struct store_sink *k = out;
	memset(k, 0, sizeof(*k));
	copy_col(s, 0, k->name, sizeof(k->name));
	copy_col(s, 1, k->type, sizeof(k->type));
	k->cursor = sqlite3_column_int64(s, 2);
	k->generation = sqlite3_column_int64(s, 3);
	k->delivered_seq = sqlite3_column_int64(s, 4);
	k->delivered_batches = sqlite3_column_int64(s, 5);
	k->delivered_changes = sqlite3_column_int64(s, 6);
	k->delivered_bytes = sqlite3_column_int64(s, 7);
	k->retries = sqlite3_column_int64(s, 8);
	k->failures = sqlite3_column_int64(s, 9);
	k->long_lines = sqlite3_column_int64(s, 10);
	copy_col(s, 11, k->last_error, sizeof(k->last_error));
	k->last_error_ms = sqlite3_column_int64(s, 12);
	k->last_delivery_ms = sqlite3_column_int64(s, 13);
	copy_col(s, 14, k->open_partition, sizeof(k->open_partition));
	k->replay_to = sqlite3_column_int64(s, 15);
	k->removed_ms = sqlite3_column_int64(s, 16);
}

/* Fills the lag and parked count of a loaded sink. */
static int fill_derived(struct store *st, struct store_sink *k)
{
	int64_t last = 0, first_ts = 0;
	sqlite3_stmt *s = stmt(st, S_LAST_SEQ);
	int rc = s ? store_step_int(st, s, &last) : -EIO;
	if (!rc) {
		s = stmt(st, S_FIRST_AFTER);
		if (!s)
			return -EIO;
		sqlite3_bind_int64(s, 1, k->cursor);
		rc = store_step_int(st, s, &first_ts);
	}
	if (!rc) {
		s = stmt(st, S_PARKED_COUNT);
		if (!s)
			return -EIO;
		store_bind_text(s, 1, k->name);
		rc = store_step_int(st, s, &k->parked);
	}
	if (rc)
		return rc;
	k->lag_changes = last > k->cursor ? last - k->cursor : 0;
	int64_t now = wall_ms();
	k->lag_ms = first_ts > 0 && now > first_ts ? now - first_ts : 0;
	return 0;
}

int store_sink_register(struct store *st, const char *name, const char *type)
{
	sqlite3_stmt *s = stmt(st, S_REGISTER);
	if (!s)
		return -EIO;
	store_bind_text(s, 1, name);
	store_bind_text(s, 2, type);
	return store_step_done(st, s);
}

int store_sink_load(struct store *st, const char *name, struct store_sink *out)
{
	sqlite3_stmt *s = stmt(st, S_LOAD);
	if (!s)
		return -EIO;
	store_bind_text(s, 1, name);
	int res = store_step_row(st, s, sink_from_row, out);
	if (res == -ENOENT)
		store_set_error(st, "no sink named '%s' in this data directory", name);
	return res ? res : fill_derived(st, out);
}

int store_sinks_list(struct store *st, store_sink_fn fn, void *ctx)
{
	/* Rows first, then the derived numbers: the list statement must be
	 * done before the same connection runs the others. */
	struct store_sink *all = NULL;
	size_t n = 0;
	sqlite3_stmt *s = stmt(st, S_LIST);
	if (!s)
		return -EIO;
	int rc;
	int res = 0;
	while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
		struct store_sink *grown = realloc(all, (n + 1) * sizeof(*grown));
		if (!grown) {
			res = -ENOMEM;
			break;
		}
		all = grown;
		sink_from_row(s, &all[n++]);
	}
	if (!res && rc != SQLITE_DONE)
		res = store_sql_fail(st, rc);
	sqlite3_reset(s);
	for (size_t i = 0; i < n && !res; i++) {
		res = fill_derived(st, &all[i]);
		if (!res && fn(ctx, &all[i]))
			break;
	}
	free(all);
	return res;
}

int store_sink_advance(struct store *st, const char *sink, int64_t generation, int64_t cursor)
{
	sqlite3_stmt *s = stmt(st, S_ADVANCE);
	if (!s)
		return -EIO;
	store_bind_text(s, 1, sink);
	sqlite3_bind_int64(s, 2, generation);
	sqlite3_bind_int64(s, 3, cursor);
	return store_step_done(st, s);
}

int store_sink_intent_add(struct store *st, const char *sink, struct store_sink_intent *in)
{
	sqlite3_stmt *s = stmt(st, S_INTENT_ADD);
	if (!s)
		return -EIO;
	if (in->created_ms <= 0)
		in->created_ms = wall_ms();
	store_bind_text(s, 1, sink);
	sqlite3_bind_int64(s, 2, in->generation);
	sqlite3_bind_int64(s, 3, in->from_seq);
	sqlite3_bind_int64(s, 4, in->to_seq);
	sqlite3_bind_int64(s, 5, in->first_seq);
	sqlite3_bind_int64(s, 6, in->last_seq);
	sqlite3_bind_int64(s, 7, in->changes);
	sqlite3_bind_int64(s, 8, in->bytes);
	sqlite3_bind_int64(s, 9, in->created_ms);
	store_bind_text(s, 10, in->name);
	store_bind_text(s, 11, in->partition);
	int rc = store_step_done(st, s);
	if (!rc) {
		in->id = sqlite3_last_insert_rowid(st->db);
		in->state = STORE_INTENT_PENDING;
	}
	return rc;
}

int store_sink_intent_staged(struct store *st, int64_t id)
{
	sqlite3_stmt *s = stmt(st, S_INTENT_STAGED);
	if (!s)
		return -EIO;
	sqlite3_bind_int64(s, 1, id);
	return store_step_done(st, s);
}

int store_sink_intent_done(struct store *st, const char *sink, const struct store_sink_intent *in,
                           int64_t long_lines, bool taken_later)
{
	int rc = store_txn_begin(st);
	if (rc)
		return rc;
	/* A batch a consumer still has to take keeps its row (PUBLISHED):
	 * it holds the delivered mark back until store_sink_intent_taken. */
	sqlite3_stmt *s = stmt(st, taken_later ? S_INTENT_PUBLISHED : S_INTENT_DELETE);
	rc = s ? 0 : -EIO;
	if (!rc) {
		sqlite3_bind_int64(s, 1, in->id);
		rc = store_step_done(st, s);
	}
	if (!rc)
		rc = store_sink_advance(st, sink, in->generation, in->to_seq);
	if (!rc && (s = stmt(st, S_DONE_STATS)) == NULL)
		rc = -EIO;
	if (!rc) {
		store_bind_text(s, 1, sink);
		sqlite3_bind_int64(s, 2, in->changes);
		sqlite3_bind_int64(s, 3, in->bytes);
		sqlite3_bind_int64(s, 4, long_lines);
		sqlite3_bind_int64(s, 5, taken_later ? 0 : in->last_seq);
		sqlite3_bind_int64(s, 6, wall_ms());
		store_bind_text(s, 7, in->partition);
		rc = store_step_done(st, s);
	}
	return store_txn_end(st, rc);
}

int store_sink_intent_park(struct store *st, const char *sink, const struct store_sink_intent *in,
                           const char *error)
{
	int rc = store_txn_begin(st);
	if (rc)
		return rc;
	sqlite3_stmt *s = stmt(st, S_INTENT_PARK);
	rc = s ? 0 : -EIO;
	if (!rc) {
		sqlite3_bind_int64(s, 1, in->id);
		store_bind_text(s, 2, error);
		rc = store_step_done(st, s);
	}
	if (!rc)
		rc = store_sink_advance(st, sink, in->generation, in->to_seq);
	if (!rc && (s = stmt(st, S_PARK_STATS)) == NULL)
		rc = -EIO;
	if (!rc) {
		store_bind_text(s, 1, sink);
		store_bind_text(s, 2, error);
		sqlite3_bind_int64(s, 3, wall_ms());
		rc = store_step_done(st, s);
	}
	return store_txn_end(st, rc);
}

static void intent_from_row(sqlite3_stmt *s, void *out)
{
	struct store_sink_intent *in = out;
	memset(in, 0, sizeof(*in));
	in->id = sqlite3_column_int64(s, 0);
	in->generation = sqlite3_column_int64(s, 1);
	in->state = (enum store_intent_state)sqlite3_column_int(s, 2);
	in->from_seq = sqlite3_column_int64(s, 3);
	in->to_seq = sqlite3_column_int64(s, 4);
	in->first_seq = sqlite3_column_int64(s, 5);
	in->last_seq = sqlite3_column_int64(s, 6);
	in->changes = sqlite3_column_int64(s, 7);
	in->bytes = sqlite3_column_int64(s, 8);
	in->created_ms = sqlite3_column_int64(s, 9);
	copy_col(s, 10, in->name, sizeof(in->name));
	copy_col(s, 11, in->partition, sizeof(in->partition));
	copy_col(s, 12, in->error, sizeof(in->error));
}

int store_sink_intent_next(struct store *st, const char *sink, struct store_sink_intent *out)
{
	sqlite3_stmt *s = stmt(st, S_INTENT_NEXT);
	if (!s)
		return -EIO;
	store_bind_text(s, 1, sink);
	return store_step_row(st, s, intent_from_row, out);
}

int store_sink_intents(struct store *st, const char *sink, enum store_intent_state state,
                       store_intent_fn fn, void *ctx)
{
	sqlite3_stmt *s = stmt(st, S_INTENTS);
	if (!s)
		return -EIO;
	store_bind_text(s, 1, sink);
	sqlite3_bind_int(s, 2, (int)state);
	int rc;
	while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
		struct store_sink_intent in;
		intent_from_row(s, &in);
		if (fn(ctx, &in))
			break;
	}
	int res = rc == SQLITE_ROW || rc == SQLITE_DONE ? 0 : store_sql_fail(st, rc);
	sqlite3_reset(s);
	return res;
}

int store_sink_note_retry(struct store *st, const char *sink, const char *error)
{
	sqlite3_stmt *s = stmt(st, S_RETRY);
	if (!s)
		return -EIO;
	store_bind_text(s, 1, sink);
	store_bind_text(s, 2, error);
	sqlite3_bind_int64(s, 3, wall_ms());
	return store_step_done(st, s);
}

int store_sink_set_open_partition(struct store *st, const char *sink, const char *partition)
{
	sqlite3_stmt *s = stmt(st, S_OPEN_PARTITION);
	if (!s)
		return -EIO;
	store_bind_text(s, 1, sink);
	store_bind_text(s, 2, partition);
	return store_step_done(st, s);
}

int store_sink_unpark(struct store *st, const char *sink, int64_t id, int64_t *count)
{
	*count = 0;
	struct store_sink k;
	int rc = store_sink_load(st, sink, &k);
	if (rc)
		return rc;
	sqlite3_stmt *s = stmt(st, id > 0 ? S_UNPARK_ONE : S_UNPARK_ALL);
	if (!s)
		return -EIO;
	store_bind_text(s, 1, sink);
	if (id > 0)
		sqlite3_bind_int64(s, 2, id);
	rc = store_step_done(st, s);
	if (!rc)
		*count = sqlite3_changes(st->db);
	return rc;
}

int store_sink_intent_taken(struct store *st, const char *sink, const struct store_sink_intent *in)
{
	int rc = store_txn_begin(st);
	if (rc)
		return rc;
	sqlite3_stmt *s = stmt(st, S_INTENT_TAKEN);
	rc = s ? 0 : -EIO;
	if (!rc) {
		sqlite3_bind_int64(s, 1, in->id);
		rc = store_step_done(st, s);
	}
	if (!rc && (s = stmt(st, S_TAKEN)) == NULL)
		rc = -EIO;
	if (!rc) {
		store_bind_text(s, 1, sink);
		sqlite3_bind_int64(s, 2, in->last_seq);
		rc = store_step_done(st, s);
	}
	return store_txn_end(st, rc);
}

int store_sinks_taken(struct store *st, int64_t *lowest, int64_t *highest)
{
	*lowest = *highest = 0;
	sqlite3_stmt *s = stmt(st, S_TAKEN_RANGE);
	if (!s)
		return -EIO;
	int rc = sqlite3_step(s);
	if (rc == SQLITE_ROW) {
		*lowest = sqlite3_column_int64(s, 0);
		*highest = sqlite3_column_int64(s, 1);
	}
	int res = rc == SQLITE_ROW || rc == SQLITE_DONE ? 0 : store_sql_fail(st, rc);
	sqlite3_reset(s);
	return res;
}

int store_sinks_delivered(struct store *st, int64_t *seq)
{
	int64_t highest = 0;
	int rc = store_sinks_taken(st, seq, &highest);
	if (rc == 0 && highest == 0)
		rc = -ENOENT;
	return rc;
}

int store_sink_replay(struct store *st, const char *sink, int64_t from_seq)
{
	int rc = store_txn_begin(st);
	if (rc)
		return rc;
	struct store_sink k;
	rc = store_sink_load(st, sink, &k);
	int64_t last = 0;
	sqlite3_stmt *s = NULL;
	if (!rc && (s = stmt(st, S_LAST_SEQ)) == NULL)
		rc = -EIO;
	if (!rc)
		rc = store_step_int(st, s, &last);
	if (!rc && (s = stmt(st, S_REPLAY)) == NULL)
		rc = -EIO;
	if (!rc) {
		store_bind_text(s, 1, sink);
		sqlite3_bind_int64(s, 2, from_seq > 0 ? from_seq - 1 : 0);
		sqlite3_bind_int64(s, 3, last);
		rc = store_step_done(st, s);
	}
	if (!rc && (s = stmt(st, S_REPLAY_PARKED)) == NULL)
		rc = -EIO;
	if (!rc) {
		store_bind_text(s, 1, sink);
		sqlite3_bind_int64(s, 2, from_seq);
		rc = store_step_done(st, s);
	}
	return store_txn_end(st, rc);
}

static void int64_from_row(sqlite3_stmt *s, void *out)
{
	*(int64_t *)out = sqlite3_column_int64(s, 0);
}

int store_sink_flags_from(struct store *st, const char *sink, int64_t *ms)
{
	sqlite3_stmt *s = stmt(st, S_FLAGS_FROM);
	if (!s)
		return -EIO;
	store_bind_text(s, 1, sink);
	return store_step_row(st, s, int64_from_row, ms);
}

int store_sink_set_flags_from(struct store *st, const char *sink, int64_t ms)
{
	sqlite3_stmt *s = stmt(st, S_SET_FLAGS_FROM);
	if (!s)
		return -EIO;
	store_bind_text(s, 1, sink);
	sqlite3_bind_int64(s, 2, ms);
	return store_step_done(st, s);
}

int store_sink_intent_move(struct store *st, struct store_sink_intent *in, const char *partition,
                           int64_t created_ms)
{
	sqlite3_stmt *s = stmt(st, S_INTENT_MOVE);
	if (!s)
		return -EIO;
	sqlite3_bind_int64(s, 1, in->id);
	store_bind_text(s, 2, partition);
	sqlite3_bind_int64(s, 3, created_ms);
	int rc = store_step_done(st, s);
	if (!rc) {
		snprintf(in->partition, sizeof(in->partition), "%s", partition);
		in->created_ms = created_ms;
	}
	return rc;
}

int store_sinks_configured(struct store *st, const char *const *names, size_t n)
{
	int rc = store_txn_begin(st);
	if (rc)
		return rc;
	/* The names first: the list statement must be done before the
	 * others run on the same connection. */
	char **known = NULL;
	size_t n_known = 0;
	sqlite3_stmt *s = stmt(st, S_NAMES);
	int step = SQLITE_DONE;
	rc = s ? 0 : -EIO;
	while (!rc && (step = sqlite3_step(s)) == SQLITE_ROW) {
		char **grown = realloc(known, (n_known + 1) * sizeof(*grown));
		char *name = grown ? store_col_strdup(s, 0) : NULL;
		if (grown)
			known = grown;
		if (!name) {
			rc = -ENOMEM;
			break;
		}
		known[n_known++] = name;
	}
	if (!rc && step != SQLITE_DONE)
		rc = store_sql_fail(st, step);
	if (s)
		sqlite3_reset(s);
	for (size_t i = 0; i < n_known && !rc; i++) {
		bool configured = false;
		for (size_t k = 0; k < n && !configured; k++)
			configured = strcmp(known[i], names[k]) == 0;
		s = stmt(st, configured ? S_MARK_CONFIGURED : S_MARK_REMOVED);
		if (!s) {
			rc = -EIO;
			break;
		}
		store_bind_text(s, 1, known[i]);
		if (!configured)
			sqlite3_bind_int64(s, 2, wall_ms());
		rc = store_step_done(st, s);
	}
	for (size_t i = 0; i < n_known; i++)
		free(known[i]);
	free(known);
	return store_txn_end(st, rc);
}
