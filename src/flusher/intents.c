/* intents.c - shipping a batch exactly once.
 *
 * A closed batch goes out as an intent (store_sinks.h): recorded before
 * anything is visible, staged, delivered, and deleted with the cursor move;
 * on a crash the next start finishes or redoes it (sink.h). A batch's name,
 * partition and content derive from the change log and the intent, so a
 * redo writes the same bytes under the same name: no change twice, none
 * lost. SINK_ERROR parks the batch (kept in the store with its error, the
 * cursor moves on; `idbmountctl sink unpark` re-queues it, and it is then
 * delivered again out of order). A batch whose period already has its done
 * flag (one parked, then unparked later) would be data that consumers of
 * that period never see, so it goes into the open period instead, with a
 * warning in the log: late data, as Falcon calls it.
 */
#include "flusher_internal.h"

#include "idbmount/util/clock.h"

#include <assert.h>
#include <errno.h>
#include <stdio.h>
#include <string.h>

static void batch_view(const struct batch *b, const struct store_sink_intent *in,
                       struct sink_batch *out)
{
	memset(out, 0, sizeof(*out));
	out->name = in->name;
	out->partition = in->partition;
	out->first_seq = in->first_seq;
	out->last_seq = in->last_seq;
	if (b) {
		out->data = b->lines.data;
		out->len = b->lines.len;
		out->line_ends = b->ends;
		out->lines = b->n;
	}
}

/* After the cursor moved past an intent found unfinished at start, the
 * open batch (empty then) must not read those changes again. */
static void follow_cursor(struct runner *r)
{
	if (r->open.scan_seq < r->cursor) {
		assert(r->open.n == 0);
		batch_reset(&r->open, r->cursor, (size_t)r->cfg->max_bytes);
	}
}

/* Commits a delivered intent and follows the cursor. */
static int finish_intent(struct runner *r, const struct store_sink_intent *in, int64_t long_lines)
{
	int rc = store_sink_intent_done(r->st, r->cfg->name, in, long_lines, r->taken_later);
	if (rc) {
		runner_log(r, "cannot record the delivery of %s: %s", in->name,
		           store_last_error(r->st));
		return rc;
	}
	if (in->generation == r->generation && in->to_seq > r->cursor)
		r->cursor = in->to_seq;
	follow_cursor(r);
	if (in->partition[0])
		snprintf(r->open_partition, sizeof(r->open_partition), "%s", in->partition);
	if (long_lines > 0)
		runner_log(r,
		           "%s: %lld lines longer than max_line (%lld characters); raise the "
		           "reader's limit (Flume: deserializer.maxLineLength)",
		           in->name, (long long)long_lines, (long long)r->cfg->max_line);
	return 0;
}

static void park_intent(struct runner *r, const struct store_sink_intent *in, const char *msg)
{
	runner_log(r, "%s (seqs %lld-%lld) parked: %s; 'idbmountctl sink unpark %s' retries it",
	           in->name, (long long)in->first_seq, (long long)in->last_seq, msg, r->cfg->name);
	if (store_sink_intent_park(r->st, r->cfg->name, in, msg) == 0 &&
	    in->generation == r->generation && in->to_seq > r->cursor)
		r->cursor = in->to_seq;
	follow_cursor(r);
}

/* Has the sink do `op` (stage or deliver) on the batch of intent `in`,
 * with the engine's retries. Returns true when it did; else *answer is
 * run_intent's: 0 once the intent is parked (the sink refused it for
 * good), -EAGAIN when it is left for later (the flusher stops). */
static bool sink_did(struct runner *r, const struct store_sink_intent *in, enum sink_op op,
                     const struct sink_batch *view, int *answer)
{
	char msg[1024];
	struct sink_call c = {.op = op, .batch = view};
	enum sink_result res = runner_call(r, &c, msg, sizeof(msg));
	if (res == SINK_OK)
		return true;
	*answer = -EAGAIN;
	if (res == SINK_ERROR) {
		park_intent(r, in, msg);
		*answer = 0;
	}
	return false;
}

/* Stages (unless `staged`) and delivers the batch of intent `in`. Returns
 * 0 when the intent is finished (delivered or parked), -EAGAIN when it was
 * left for later (the flusher stops), or -errno from the store. */
static int run_intent(struct runner *r, const struct store_sink_intent *in, const struct batch *b,
                      bool staged)
{
	struct sink_batch view;
	batch_view(b, in, &view);
	/* The periods that ended before this batch closed are flagged first
	 * (none of their batches is in flight: this one is the only one). */
	periods_close_finished(r, in->created_ms);
	int answer;
	if (r->type->stage && !staged) {
		if (!sink_did(r, in, SINK_OP_STAGE, &view, &answer))
			return answer;
		int rc = store_sink_intent_staged(r->st, in->id);
		if (rc)
			return rc;
	}
	if (!sink_did(r, in, SINK_OP_DELIVER, &view, &answer))
		return answer;
	return finish_intent(r, in, b ? b->long_lines : 0);
}

int intents_ship_open_batch(struct runner *r)
{
	struct batch *b = &r->open;
	if (b->n == 0) {
		if (b->scan_seq > r->cursor &&
		    store_sink_advance(r->st, r->cfg->name, r->generation, b->scan_seq) == 0)
			r->cursor = b->scan_seq;
		return 0;
	}
	struct store_sink_intent in;
	memset(&in, 0, sizeof(in));
	in.generation = r->generation;
	in.from_seq = r->cursor;
	in.to_seq = b->scan_seq;
	in.first_seq = b->first_seq;
	in.last_seq = b->last_seq;
	in.changes = (int64_t)b->n;
	in.bytes = (int64_t)b->lines.len;
	batch_name(r, r->generation, b->first_seq, b->last_seq, in.name, sizeof(in.name));
	in.created_ms = clock_wall_ms();
	if (*r->cfg->partition)
		partition_render(r->cfg->partition, in.created_ms, in.partition,
		                 sizeof(in.partition));
	int rc = store_sink_intent_add(r->st, r->cfg->name, &in);
	if (rc) {
		runner_log(r, "cannot record a batch intent: %s", store_last_error(r->st));
		return rc;
	}
	/* The next batch is read while this one is written (the log after
	 * to_seq is the same whatever happens to this intent). */
	bool reading_ahead = read_ahead_ask(r, in.to_seq);
	rc = run_intent(r, &in, b, false);
	/* Delivered, parked or left pending: either way these lines now
	 * belong to the intent (intents_recover finishes a pending one). */
	if (!reading_ahead || !read_ahead_finish(r, rc == 0))
		batch_reset(&r->open, in.to_seq, (size_t)r->cfg->max_bytes);
	return rc;
}

/* A batch whose period already has its done flag (it was parked and then
 * unparked): its consumers have moved on, so it goes into the period open
 * now, with a warning. A staged copy cannot move (only a crash leaves one,
 * and a crash never leaves a batch of a flagged period): it is delivered
 * where it is, also with a warning. Returns 0 or -errno from the store. */
static int move_late_batch(struct runner *r, struct store_sink_intent *in, enum sink_recovery found)
{
	if (found == SINK_RECOVER_STAGED) {
		runner_log(r, "late data: %s goes into %s, whose done flag is already written",
		           in->name, in->partition);
		return 0;
	}
	int64_t now = clock_wall_ms();
	char partition[STORE_SINK_LABEL_MAX];
	partition_render(r->cfg->partition, now, partition, sizeof(partition));
	runner_log(r,
	           "late data: %s (seqs %lld-%lld) belonged to %s, whose done flag is already "
	           "written; it goes into the open period %s",
	           in->name, (long long)in->first_seq, (long long)in->last_seq, in->partition,
	           partition);
	int rc = store_sink_intent_move(r->st, in, partition, now);
	if (rc)
		runner_log(r, "cannot move %s: %s", in->name, store_last_error(r->st));
	return rc;
}

int intents_recover(struct runner *r)
{
	struct store_sink_intent in;
	int rc;
	while ((rc = store_sink_intent_next(r->st, r->cfg->name, &in)) == 0) {
		struct sink_batch view;
		batch_view(NULL, &in, &view);
		struct sink_call c = {.op = SINK_OP_RECOVER,
		                      .batch = &view,
		                      .staged = in.state == STORE_INTENT_STAGED};
		char msg[1024];
		enum sink_result res = runner_call(r, &c, msg, sizeof(msg));
		if (res == SINK_RETRY)
			return -EAGAIN;
		if (res == SINK_ERROR) {
			park_intent(r, &in, msg);
			continue;
		}
		if (c.found == SINK_RECOVER_DELIVERED) {
			runner_log(r, "%s was delivered before the restart", in.name);
			rc = finish_intent(r, &in, 0);
			if (rc)
				return rc;
			continue;
		}
		/* The same lines, from the change log. */
		struct batch b;
		batch_init(&b);
		batch_reset(&b, in.from_seq, (size_t)r->cfg->max_bytes);
		rc = batch_read(r, r->st, &b, in.to_seq, false);
		if (!rc && (b.first_seq != in.first_seq || b.last_seq != in.last_seq))
			runner_log(r,
			           "%s: the selection changed since it was made; it now holds "
			           "seqs %lld-%lld",
			           in.name, (long long)b.first_seq, (long long)b.last_seq);
		if (!rc && in.partition[0] && periods_flagged(r, in.created_ms))
			rc = move_late_batch(r, &in, c.found);
		if (!rc) {
			runner_log(r, "%s: %s after a restart", in.name,
			           c.found == SINK_RECOVER_STAGED ? "delivering the staged copy"
			                                          : "writing it again");
			rc = run_intent(r, &in, &b, c.found == SINK_RECOVER_STAGED);
		}
		batch_free(&b);
		if (rc)
			return rc;
	}
	return rc == -ENOENT ? 0 : rc;
}
