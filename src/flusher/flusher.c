/* flusher.c - walks the change log for every sink and delivers batches.
 *
 * Design. Each configured sink gets its own thread with its own store
 * connection (a sink runner). A sink that is down (connection refused, 503,
 * a full disk) then only stalls its own thread, sleeping in its backoff,
 * while the others go on: no sink can slow another, and a blocking curl
 * call needs no event loop. The sinks share nothing but the change log.
 *
 * A runner keeps one open batch in memory: the change lines it selected
 * after the sink's cursor, rendered by the one renderer (changeline.c).
 * The batch closes when it holds max_records changes or max_bytes bytes,
 * or when its first change is max_age old (by the change's own time, so
 * a backlog found after a restart ships at once), and then goes out as an
 * intent (store_sinks.h): recorded before anything is visible, staged,
 * delivered, and deleted with the cursor move; on a crash the next start
 * finishes or redoes it (sink.h). A batch's name, partition and content
 * derive from the change log and the intent, so a redo writes the same
 * bytes under the same name: no change twice, none lost.
 *
 * New changes are found by polling: every POLL_MS a runner asks SQLite
 * whether another connection committed (PRAGMA data_version, a read of
 * shared memory, as fs/fs_notifier.c does) and only then reads the log.
 * This costs nothing when idle and adds at most POLL_MS of latency.
 *
 * Reading ahead. Reading and rendering a batch from SQLite costs about as
 * much as writing and fsyncing it, so while a batch is shipped, a second
 * thread of the sink (reading only, through a connection of its own) reads
 * the next one from the log; the runner takes it as its open batch once
 * the shipped one is done with. Only reading overlaps: intents, sink calls
 * and cursor moves stay on the runner's thread, one batch at a time, in
 * order, so the exactly-once argument above is unchanged (a batch read
 * ahead is what the runner would have read itself: the log after the
 * intent's to_seq).
 *
 * Retries have one policy, backoff_ms() below: the wait doubles from
 * retry_initial up to retry_max, with equal jitter (half fixed, half
 * random), so sinks that failed together do not retry in step. SINK_ERROR
 * parks the batch (kept in the store with its error, the cursor moves on;
 * `idbmountctl sink unpark` re-queues it, and it is then delivered again
 * out of order). Every failed attempt is logged on stderr and counted.
 *
 * Sweeping. A sink with a `sweep` (webhdfs) removes what attempts it gave
 * up on left where consumers never look: at start, before the unfinished
 * intents are recovered, and every SWEEP_EVERY_MS, always between batches
 * on the runner's thread, keeping the staged copies of STAGED intents.
 *
 * Shutdown (SIGTERM, fusermount3 -u): each runner reads the log to its
 * end and ships its batches at once, one attempt each, for at most
 * SHUTDOWN_MS; whatever does not go stays in the change log for the next
 * start.
 *
 * Partitions and done flags. A batch goes into the partition of the UTC
 * time at which it closed (the time the intent was recorded, so a redo
 * lands in the same place). A period is the span of the template's finest
 * variable (a minute for ${MINUTE}). The store keeps, per sink, the start
 * of the first period without its flag (flags_from); once the clock is past
 * that period's end, and no batch of it is in flight (the runner ships one
 * batch at a time, and recovers unfinished intents before anything else),
 * its flag is written and flags_from moves on, period by period: with
 * flag_empty_periods (the default) every period gets its directory and
 * flag, batches or not, from the sink's first period on (the first start
 * with a done flag sets flags_from to the period then open, never the
 * epoch); without it, only periods where a batch landed. A batch whose
 * period is already flagged (one parked, then unparked later) would be
 * data that consumers of that period never see, so it goes into the open
 * period instead, with a warning in the log: late data, as Falcon calls it.
 */
#include "idbmount/flusher/flusher.h"
#include "idbmount/util/clock.h"

#include "idbmount/util/buf.h"
#include "idbmount/codec/changeline.h"
#include "idbmount/util/datadir.h"
#include "idbmount/sinks/partition.h"
#include "idbmount/store/store.h"
#include "idbmount/store/store_sinks.h"

#include <assert.h>
#include <errno.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>

#define POLL_MS          5
#define READ_CHUNK       1000
#define ADVANCE_EVERY_MS 500
#define SHUTDOWN_MS      5000
/* How often a sink with a sweep looks for what given-up attempts left
 * (after a failed look, sooner). */
#define SWEEP_EVERY_MS (10 * 60 * 1000)
#define SWEEP_RETRY_MS (60 * 1000)
/* A change line holds a value of up to 2 x 16 MiB plus its fields: one
 * line always fits next to max_bytes of others. */
#define LINE_ROOM (40u * 1024 * 1024)

/* The lines of one batch. */
struct batch {
	struct buf lines;
	size_t *ends;
	size_t n, cap;
	int64_t first_seq, last_seq;
	int64_t first_ts_ms;
	int64_t scan_seq; /* every change up to here was looked at */
	int64_t long_lines;
	bool full; /* reading stopped at a limit */
};

/* The batch after the one being shipped, read on a thread of its own
 * (see "Reading ahead" above). The runner asks for a batch that starts
 * after `start`, ships its own, then waits for the answer. */
struct read_ahead {
	pthread_t thread;
	bool started;
	struct store *st; /* the reader's own connection */
	pthread_mutex_t lock;
	pthread_cond_t changed;
	bool asked, ready, quit;
	struct batch next;
	int rc;
};

/* A select pattern split into its three levels. */
struct selector {
	char *level[3];
	bool all;
};

struct runner {
	struct flusher *f;
	const struct sink_config *cfg;
	const struct sink_type *type;
	void *ctx;
	pthread_t thread;
	bool started;
	struct store *st;
	char node[256];
	char name_node[64]; /* the node as it may appear in a file name */
	char epoch[17];
	int64_t generation;
	int64_t cursor;
	char open_partition[STORE_SINK_LABEL_MAX];
	enum partition_period period;
	int64_t flags_from_ms; /* every period before has its done flag */
	int64_t last_advance_ms;
	bool taken_later;      /* the sink reports what consumers took */
	int64_t next_sweep_ms; /* monotonic; see sweep_leftovers */
	struct batch open;
	struct read_ahead ahead;
	struct selector *selectors;
	size_t n_selectors;
	unsigned rng;
};

struct flusher {
	const struct config *cfg;
	char datadir[4096];
	struct runner *runners;
	size_t n;
	pthread_mutex_t lock;
	pthread_cond_t wake;
	bool stopping;
	int64_t stop_deadline_ms;
	/* /metrics: a connection of its own, opened at the first scrape (in
	 * the serving process), one scrape at a time. */
	pthread_mutex_t metrics_lock;
	struct store *metrics_st;
};

static bool stopping(struct flusher *f)
{
	pthread_mutex_lock(&f->lock);
	bool s = f->stopping;
	pthread_mutex_unlock(&f->lock);
	return s;
}

/* Sleeps up to `ms`, waking early when the flusher is stopped. Returns
 * whether it is stopping. */
static bool wait_ms(struct flusher *f, int64_t ms)
{
	/* f->wake waits on CLOCK_MONOTONIC (flusher_new). */
	struct timespec until = clock_deadline(CLOCK_MONOTONIC, ms);
	pthread_mutex_lock(&f->lock);
	while (!f->stopping) {
		if (pthread_cond_timedwait(&f->wake, &f->lock, &until) == ETIMEDOUT)
			break;
	}
	bool s = f->stopping;
	pthread_mutex_unlock(&f->lock);
	return s;
}

__attribute__((format(printf, 2, 3))) static void logf_sink(const struct runner *r, const char *fmt,
                                                            ...)
{
	char msg[1024];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	fprintf(stderr, "idbmount: sink %s: %s\n", r->cfg->name, msg);
}

/* ---- the retry policy ----------------------------------------------------------- */

/* The wait before attempt `attempt` + 1 (attempt 0 failed first): doubles
 * from retry_initial to retry_max; equal jitter. */
static int64_t backoff_ms(const struct sink_config *c, unsigned attempt, unsigned *rng)
{
	int64_t d = c->retry_initial_ms;
	for (unsigned i = 0; i < attempt && d < c->retry_max_ms; i++)
		d *= 2;
	if (d > c->retry_max_ms)
		d = c->retry_max_ms;
	return d / 2 + (int64_t)((unsigned)rand_r(rng) % (unsigned)(d / 2 + 1));
}

enum op {
	OP_STAGE,
	OP_DELIVER,
	OP_RECOVER,
	OP_CLOSE_PERIOD,
};

static const char *const op_name[] = {"stage", "deliver", "recover", "close period"};

struct call {
	enum op op;
	const struct sink_batch *batch;
	bool staged;
	enum sink_recovery found;
	const char *partition;
};

static enum sink_result call_once(struct runner *r, struct call *c, char *msg, size_t msg_len)
{
	switch (c->op) {
	case OP_STAGE:
		return r->type->stage(r->ctx, c->batch, msg, msg_len);
	case OP_DELIVER:
		return r->type->deliver(r->ctx, c->batch, msg, msg_len);
	case OP_RECOVER:
		return r->type->recover(r->ctx, c->batch, c->staged, &c->found, msg, msg_len);
	case OP_CLOSE_PERIOD:
		return r->type->close_period(r->ctx, c->partition, msg, msg_len);
	}
	return SINK_ERROR;
}

/* Calls the sink until it answers OK or ERROR, backing off after each
 * RETRY; gives up (answering RETRY) when the flusher stops. `msg` holds
 * the last message. */
static enum sink_result call_with_retries(struct runner *r, struct call *c, char *msg,
                                          size_t msg_len)
{
	for (unsigned attempt = 0;; attempt++) {
		msg[0] = '\0';
		enum sink_result res = call_once(r, c, msg, msg_len);
		if (res != SINK_RETRY)
			return res;
		if (!msg[0])
			snprintf(msg, msg_len, "%s failed", op_name[c->op]);
		store_sink_note_retry(r->st, r->cfg->name, msg);
		if (stopping(r->f)) {
			logf_sink(r, "%s: %s (left for the next start)", op_name[c->op], msg);
			return SINK_RETRY;
		}
		int64_t wait = backoff_ms(r->cfg, attempt, &r->rng);
		logf_sink(r, "%s: %s (retry %u in %lld ms)", op_name[c->op], msg, attempt + 1,
		          (long long)wait);
		if (wait_ms(r->f, wait))
			return SINK_RETRY;
	}
}

/* ---- batches ---------------------------------------------------------------------- */

static void batch_init(struct batch *b)
{
	memset(b, 0, sizeof(*b));
	buf_init(&b->lines, 0);
}

static void batch_reset(struct batch *b, int64_t scan_seq, size_t max_bytes)
{
	buf_reset(&b->lines);
	b->lines.max = max_bytes + LINE_ROOM;
	b->n = 0;
	b->first_seq = b->last_seq = 0;
	b->first_ts_ms = 0;
	b->long_lines = 0;
	b->scan_seq = scan_seq;
	b->full = false;
}

static void batch_free(struct batch *b)
{
	buf_free(&b->lines);
	free(b->ends);
	memset(b, 0, sizeof(*b));
}

/* Characters of a UTF-8 line without its "\n": every byte but the
 * continuation bytes starts one (Flume counts characters). */
static size_t line_chars(const char *line, size_t len)
{
	size_t n = 0;
	for (size_t i = 0; i + 1 < len; i++)
		n += ((unsigned char)line[i] & 0xc0) != 0x80;
	return n;
}

static bool selected(const struct runner *r, const struct store_change *c)
{
	for (size_t i = 0; i < r->n_selectors; i++) {
		const struct selector *s = &r->selectors[i];
		if (s->all || (config_glob_match(s->level[0], c->client) &&
		               config_glob_match(s->level[1], c->db) &&
		               config_glob_match(s->level[2], c->objstore)))
			return true;
	}
	return false;
}

struct reading {
	struct runner *r;
	struct batch *b;
	struct store *st;
	int64_t upto; /* read changes up to this seq */
	bool limited; /* stop at max_records / max_bytes */
	int error;
};

static int on_change(void *ctx, const struct store_change *c)
{
	struct reading *rd = ctx;
	struct batch *b = rd->b;
	const struct sink_config *cfg = rd->r->cfg;
	if (c->seq > rd->upto)
		return 1;
	if (!selected(rd->r, c)) {
		b->scan_seq = c->seq;
		return 0;
	}
	size_t mark = b->lines.len;
	int rc = changeline_render(&b->lines, c, rd->r->node);
	if (rc) {
		rd->error = rc;
		return 1;
	}
	if (rd->limited && b->n > 0 && b->lines.len > (size_t)cfg->max_bytes) {
		/* This line goes into the next batch. */
		buf_set_len(&b->lines, mark);
		b->full = true;
		return 1;
	}
	if (b->n == b->cap) {
		size_t cap = b->cap ? b->cap * 2 : 1024;
		size_t *grown = realloc(b->ends, cap * sizeof(*grown));
		if (!grown) {
			buf_set_len(&b->lines, mark);
			rd->error = -ENOMEM;
			return 1;
		}
		b->ends = grown;
		b->cap = cap;
	}
	b->ends[b->n++] = b->lines.len;
	/* A line has at most as many characters as bytes: count them only
	 * when the bytes are over. */
	size_t bytes = b->lines.len - mark - 1;
	if (cfg->max_line > 0 && bytes > (size_t)cfg->max_line &&
	    line_chars(b->lines.data + mark, b->lines.len - mark) > (size_t)cfg->max_line)
		b->long_lines++;
	if (b->n == 1) {
		b->first_seq = c->seq;
		b->first_ts_ms = c->ts_ms;
	}
	b->last_seq = c->seq;
	b->scan_seq = c->seq;
	if (rd->limited &&
	    (b->n >= (size_t)cfg->max_records || b->lines.len >= (size_t)cfg->max_bytes)) {
		b->full = true;
		return 1;
	}
	return 0;
}

/* Reads changes after b->scan_seq (up to `upto`) into `b` through
 * connection `st` (the runner's, or its reader's: only the runner's
 * read-only fields are used). Returns 0 or -errno. */
static int batch_read(struct runner *r, struct store *st, struct batch *b, int64_t upto,
                      bool limited)
{
	struct reading rd = {.r = r, .b = b, .st = st, .upto = upto, .limited = limited};
	for (;;) {
		int64_t before = b->scan_seq;
		int64_t n = store_changes_since(st, b->scan_seq, READ_CHUNK, 0, on_change, &rd);
		if (n < 0)
			return (int)n;
		if (rd.error)
			return rd.error;
		if (b->full || n < READ_CHUNK || b->scan_seq >= upto || b->scan_seq == before)
			return 0;
	}
}

/* ---- names and partitions ---------------------------------------------------------- */

/* PREFIX-NODE-EPOCH: how every batch name of this data directory starts
 * (at most 100 + 63 + 16 + 2 bytes: config.c caps the prefix). */
static void batch_owner(const struct runner *r, char *out, size_t outlen)
{
	snprintf(out, outlen, "%s-%s-%s", r->cfg->prefix, r->name_node, r->epoch);
}

/* OWNER[.GEN]-FIRST-LAST.jsonl, the seqs zero-padded to 20 digits so
 * names sort in seq order. */
static void batch_name(const struct runner *r, int64_t generation, int64_t first, int64_t last,
                       char *out, size_t outlen)
{
	char owner[200], gen[32] = "";
	batch_owner(r, owner, sizeof(owner));
	if (generation > 0)
		snprintf(gen, sizeof(gen), ".%lld", (long long)generation);
	/* At most 182 + 21 + 2 x 20 + 10 bytes: it always fits. */
	int n = snprintf(out, outlen, "%s%s-%020lld-%020lld.jsonl", owner, gen, (long long)first,
	                 (long long)last);
	if (n < 0 || (size_t)n >= outlen)
		out[0] = '\0';
}

/* ---- delivering ----------------------------------------------------------------------- */

/* Writes the done flags of the periods that ended by `upto_ms` (see
 * "Partitions and done flags" above): each closed period from flags_from
 * on, in order, stopping at the first whose flag cannot be written now
 * (the flusher stops; a sink that is down is retried with backoff). */
static void close_finished_periods(struct runner *r, int64_t upto_ms)
{
	if (!*r->cfg->done_flag)
		return;
	for (;;) {
		int64_t end = partition_period_end(r->period, r->flags_from_ms);
		if (end > upto_ms)
			return;
		char partition[STORE_SINK_LABEL_MAX];
		partition_render(r->cfg->partition, r->flags_from_ms, partition, sizeof(partition));
		bool landed = strcmp(partition, r->open_partition) == 0;
		if (r->cfg->flag_empty_periods || landed) {
			struct call c = {.op = OP_CLOSE_PERIOD, .partition = partition};
			char msg[512];
			enum sink_result res = call_with_retries(r, &c, msg, sizeof(msg));
			if (res == SINK_RETRY)
				return;
			if (res == SINK_ERROR)
				logf_sink(r, "done flag for %s: %s (not retried)", partition, msg);
		}
		if (landed && store_sink_set_open_partition(r->st, r->cfg->name, "") == 0)
			r->open_partition[0] = '\0';
		if (store_sink_set_flags_from(r->st, r->cfg->name, end) != 0) {
			logf_sink(r, "cannot record the done flag of %s: %s", partition,
			          store_last_error(r->st));
			return;
		}
		r->flags_from_ms = end;
	}
}

/* Whether the period of a batch closed at `created_ms` has its flag. */
static bool period_flagged(const struct runner *r, int64_t created_ms)
{
	return *r->cfg->done_flag &&
	       partition_period_end(r->period, created_ms) <= r->flags_from_ms;
}

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
		logf_sink(r, "cannot record the delivery of %s: %s", in->name,
		          store_last_error(r->st));
		return rc;
	}
	if (in->generation == r->generation && in->to_seq > r->cursor)
		r->cursor = in->to_seq;
	follow_cursor(r);
	if (in->partition[0])
		snprintf(r->open_partition, sizeof(r->open_partition), "%s", in->partition);
	if (long_lines > 0)
		logf_sink(r,
		          "%s: %lld lines longer than max_line (%lld characters); raise the "
		          "reader's limit (Flume: deserializer.maxLineLength)",
		          in->name, (long long)long_lines, (long long)r->cfg->max_line);
	return 0;
}

static void park_intent(struct runner *r, const struct store_sink_intent *in, const char *msg)
{
	logf_sink(r, "%s (seqs %lld-%lld) parked: %s; 'idbmountctl sink unpark %s' retries it",
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
static bool sink_did(struct runner *r, const struct store_sink_intent *in, enum op op,
                     const struct sink_batch *view, int *answer)
{
	char msg[1024];
	struct call c = {.op = op, .batch = view};
	enum sink_result res = call_with_retries(r, &c, msg, sizeof(msg));
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
	close_finished_periods(r, in->created_ms);
	int answer;
	if (r->type->stage && !staged) {
		if (!sink_did(r, in, OP_STAGE, &view, &answer))
			return answer;
		int rc = store_sink_intent_staged(r->st, in->id);
		if (rc)
			return rc;
	}
	if (!sink_did(r, in, OP_DELIVER, &view, &answer))
		return answer;
	return finish_intent(r, in, b ? b->long_lines : 0);
}

/* ---- reading ahead ------------------------------------------------------------------- */

static void *read_ahead_main(void *arg)
{
	struct runner *r = arg;
	struct read_ahead *a = &r->ahead;
	pthread_mutex_lock(&a->lock);
	for (;;) {
		while (!a->asked && !a->quit)
			pthread_cond_wait(&a->changed, &a->lock);
		if (a->quit)
			break;
		pthread_mutex_unlock(&a->lock);
		int rc = batch_read(r, a->st, &a->next, INT64_MAX, true);
		pthread_mutex_lock(&a->lock);
		a->rc = rc;
		a->asked = false;
		a->ready = true;
		pthread_cond_broadcast(&a->changed);
	}
	pthread_mutex_unlock(&a->lock);
	return NULL;
}

/* Starts reading the batch after seq `start` on the reader's thread.
 * Returns whether it did (there is no reader when it could not start). */
static bool read_ahead_ask(struct runner *r, int64_t start)
{
	struct read_ahead *a = &r->ahead;
	if (!a->started)
		return false;
	batch_reset(&a->next, start, (size_t)r->cfg->max_bytes);
	pthread_mutex_lock(&a->lock);
	assert(!a->asked && !a->ready);
	a->asked = true;
	pthread_cond_broadcast(&a->changed);
	pthread_mutex_unlock(&a->lock);
	return true;
}

/* Waits for the batch asked for and makes it the open batch when `take`
 * (the one shipped before it is done with); else drops it. Returns
 * whether the open batch was replaced. */
static bool read_ahead_finish(struct runner *r, bool take)
{
	struct read_ahead *a = &r->ahead;
	pthread_mutex_lock(&a->lock);
	while (!a->ready)
		pthread_cond_wait(&a->changed, &a->lock);
	a->ready = false;
	int rc = a->rc;
	pthread_mutex_unlock(&a->lock);
	if (!take || rc != 0)
		return false;
	/* Swapped, not copied: the shipped batch's buffers are reused. */
	struct batch shipped = r->open;
	r->open = a->next;
	a->next = shipped;
	return true;
}

static int read_ahead_start(struct runner *r)
{
	struct read_ahead *a = &r->ahead;
	char err[512];
	int rc = store_open(r->f->datadir, &a->st, err, sizeof(err));
	if (rc) {
		logf_sink(r, "reader: %s", err);
		return rc;
	}
	batch_init(&a->next);
	pthread_mutex_init(&a->lock, NULL);
	pthread_cond_init(&a->changed, NULL);
	rc = -pthread_create(&a->thread, NULL, read_ahead_main, r);
	if (rc) {
		logf_sink(r, "cannot start its reader: %s", strerror(-rc));
		pthread_cond_destroy(&a->changed);
		pthread_mutex_destroy(&a->lock);
		store_close(a->st);
		a->st = NULL;
		return rc;
	}
	a->started = true;
	return 0;
}

static void read_ahead_stop(struct runner *r)
{
	struct read_ahead *a = &r->ahead;
	if (a->started) {
		pthread_mutex_lock(&a->lock);
		a->quit = true;
		pthread_cond_broadcast(&a->changed);
		pthread_mutex_unlock(&a->lock);
		pthread_join(a->thread, NULL);
		pthread_cond_destroy(&a->changed);
		pthread_mutex_destroy(&a->lock);
		a->started = false;
	}
	store_close(a->st);
	a->st = NULL;
	batch_free(&a->next);
}

/* Ships the open batch: intent, stage, deliver. Returns as run_intent. */
static int ship_open_batch(struct runner *r)
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
		logf_sink(r, "cannot record a batch intent: %s", store_last_error(r->st));
		return rc;
	}
	/* The next batch is read while this one is written (the log after
	 * to_seq is the same whatever happens to this intent). */
	bool reading_ahead = read_ahead_ask(r, in.to_seq);
	rc = run_intent(r, &in, b, false);
	/* Delivered, parked or left pending: either way these lines now
	 * belong to the intent (recover_intents finishes a pending one). */
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
		logf_sink(r, "late data: %s goes into %s, whose done flag is already written",
		          in->name, in->partition);
		return 0;
	}
	int64_t now = clock_wall_ms();
	char partition[STORE_SINK_LABEL_MAX];
	partition_render(r->cfg->partition, now, partition, sizeof(partition));
	logf_sink(r,
	          "late data: %s (seqs %lld-%lld) belonged to %s, whose done flag is already "
	          "written; it goes into the open period %s",
	          in->name, (long long)in->first_seq, (long long)in->last_seq, in->partition,
	          partition);
	int rc = store_sink_intent_move(r->st, in, partition, now);
	if (rc)
		logf_sink(r, "cannot move %s: %s", in->name, store_last_error(r->st));
	return rc;
}

/* Finishes every pending or staged intent: those a crash left, and those
 * `idbmountctl sink unpark` re-queued. Returns 0, or -EAGAIN/-errno. */
static int recover_intents(struct runner *r)
{
	struct store_sink_intent in;
	int rc;
	while ((rc = store_sink_intent_next(r->st, r->cfg->name, &in)) == 0) {
		struct sink_batch view;
		batch_view(NULL, &in, &view);
		struct call c = {.op = OP_RECOVER,
		                 .batch = &view,
		                 .staged = in.state == STORE_INTENT_STAGED};
		char msg[1024];
		enum sink_result res = call_with_retries(r, &c, msg, sizeof(msg));
		if (res == SINK_RETRY)
			return -EAGAIN;
		if (res == SINK_ERROR) {
			park_intent(r, &in, msg);
			continue;
		}
		if (c.found == SINK_RECOVER_DELIVERED) {
			logf_sink(r, "%s was delivered before the restart", in.name);
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
			logf_sink(r,
			          "%s: the selection changed since it was made; it now holds "
			          "seqs %lld-%lld",
			          in.name, (long long)b.first_seq, (long long)b.last_seq);
		if (!rc && in.partition[0] && period_flagged(r, in.created_ms))
			rc = move_late_batch(r, &in, c.found);
		if (!rc) {
			logf_sink(r, "%s: %s after a restart", in.name,
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

struct staged_names {
	char (*names)[STORE_SINK_LABEL_MAX];
	size_t n, cap;
	bool short_of_memory; /* the list is incomplete: nothing may be swept */
};

static int collect_staged(void *ctx, const struct store_sink_intent *in)
{
	struct staged_names *k = ctx;
	if (k->n == k->cap) {
		size_t cap = k->cap ? k->cap * 2 : 4;
		char(*grown)[STORE_SINK_LABEL_MAX] = realloc(k->names, cap * sizeof(*grown));
		if (!grown) {
			k->short_of_memory = true;
			return 1;
		}
		k->names = grown;
		k->cap = cap;
	}
	snprintf(k->names[k->n++], STORE_SINK_LABEL_MAX, "%s", in->name);
	return 0;
}

/* Lets the sink remove what its given-up attempts left (sink.h, sweep):
 * at start, before the unfinished intents are recovered, then every
 * SWEEP_EVERY_MS, always between batches. The staged intents' copies are
 * kept. A failure is logged and counted like a retry; it does not hold up
 * deliveries. */
static void sweep_leftovers(struct runner *r)
{
	if (!r->type->sweep || clock_mono_ms() < r->next_sweep_ms)
		return;
	struct staged_names k = {0};
	char msg[1024] = "";
	enum sink_result res = SINK_RETRY;
	if (store_sink_intents(r->st, r->cfg->name, STORE_INTENT_STAGED, collect_staged, &k) != 0) {
		snprintf(msg, sizeof(msg), "%s", store_last_error(r->st));
	} else {
		const char **keep = k.short_of_memory ? NULL : calloc(k.n ? k.n : 1, sizeof(*keep));
		if (keep) {
			for (size_t i = 0; i < k.n; i++)
				keep[i] = k.names[i];
			char owner[200];
			batch_owner(r, owner, sizeof(owner));
			res = r->type->sweep(r->ctx, owner, keep, k.n, msg, sizeof(msg));
			free(keep);
		} else {
			snprintf(msg, sizeof(msg), "out of memory");
		}
	}
	free(k.names);
	if (res == SINK_OK) {
		if (msg[0])
			logf_sink(r, "%s", msg);
		r->next_sweep_ms = clock_mono_ms() + SWEEP_EVERY_MS;
		return;
	}
	store_sink_note_retry(r->st, r->cfg->name, msg);
	logf_sink(r, "sweep: %s (tried again in %d s)", msg, SWEEP_RETRY_MS / 1000);
	r->next_sweep_ms = clock_mono_ms() + SWEEP_RETRY_MS;
}

/* Re-reads the sink's row: a replay (new generation) restarts reading. */
static int sync_state(struct runner *r)
{
	struct store_sink k;
	int rc = store_sink_load(r->st, r->cfg->name, &k);
	if (rc)
		return rc;
	if (k.generation != r->generation) {
		logf_sink(r, "replay from seq %lld", (long long)k.cursor + 1);
		r->generation = k.generation;
		r->cursor = k.cursor;
		batch_reset(&r->open, r->cursor, (size_t)r->cfg->max_bytes);
	}
	return 0;
}

/* Records what consumers took, for sinks that watch for it. */
static void note_taken(struct runner *r)
{
	if (!r->taken_later)
		return;
	int64_t seq = r->type->poll_taken(r->ctx);
	if (seq > 0 && store_sink_set_taken(r->st, r->cfg->name, seq) != 0)
		logf_sink(r, "cannot record what was taken: %s", store_last_error(r->st));
}

static bool batch_due(const struct runner *r, int64_t now_wall)
{
	const struct batch *b = &r->open;
	return b->n > 0 && (b->full || now_wall - b->first_ts_ms >= r->cfg->max_age_ms);
}

/* After a failure of the store itself (a full disk under the data
 * directory, a lock held too long): log it, back off, and start again from
 * what the store holds (its cursor and intents are the truth). Returns
 * whether the flusher is stopping. */
static bool restart_after_error(struct runner *r, int rc, unsigned *errors)
{
	const char *why = *store_last_error(r->st) ? store_last_error(r->st) : strerror(-rc);
	int64_t wait = backoff_ms(r->cfg, (*errors)++, &r->rng);
	logf_sink(r, "store: %s (trying again in %lld ms)", why, (long long)wait);
	if (wait_ms(r->f, wait))
		return true;
	struct store_sink k;
	if (store_sink_load(r->st, r->cfg->name, &k) == 0) {
		r->generation = k.generation;
		r->cursor = k.cursor;
	}
	batch_reset(&r->open, r->cursor, (size_t)r->cfg->max_bytes);
	return false;
}

static void *runner_main(void *arg)
{
	struct runner *r = arg;
	struct flusher *f = r->f;
	bool dirty = true; /* read the log and the sink's row */
	unsigned errors = 0;
	int rc = 0;
	while (!stopping(f)) {
		sweep_leftovers(r);
		if (dirty || store_changed_elsewhere(r->st)) {
			dirty = false;
			rc = sync_state(r);
			if (!rc)
				rc = recover_intents(r);
			if (!rc && !r->open.full)
				rc = batch_read(r, r->st, &r->open, INT64_MAX, true);
		}
		if (!rc && batch_due(r, clock_wall_ms())) {
			rc = ship_open_batch(r);
			/* More may be waiting behind a full batch. */
			dirty = true;
			if (!rc) {
				errors = 0;
				continue;
			}
		}
		if (rc == -EAGAIN)
			break; /* stopping */
		if (rc) {
			if (restart_after_error(r, rc, &errors))
				break;
			rc = 0;
			dirty = true;
			continue;
		}
		if (r->open.n == 0 && r->open.scan_seq > r->cursor &&
		    clock_mono_ms() - r->last_advance_ms >= ADVANCE_EVERY_MS) {
			r->last_advance_ms = clock_mono_ms();
			ship_open_batch(r);
		}
		close_finished_periods(r, clock_wall_ms());
		note_taken(r);
		int64_t wait = POLL_MS;
		if (r->open.n > 0) {
			int64_t due = r->open.first_ts_ms + r->cfg->max_age_ms - clock_wall_ms();
			if (due < wait)
				wait = due > 0 ? due : 0;
		}
		if (wait > 0)
			wait_ms(f, wait);
	}
	/* Shutdown: ship what is ready, one attempt per batch, in order: an
	 * intent still pending goes first or nothing goes. */
	if (recover_intents(r) != 0)
		return NULL;
	while (clock_mono_ms() < f->stop_deadline_ms) {
		if (!r->open.full && batch_read(r, r->st, &r->open, INT64_MAX, true) != 0)
			break;
		if (r->open.n == 0) {
			ship_open_batch(r); /* moves the cursor over what is not selected */
			break;
		}
		if (ship_open_batch(r) != 0)
			break;
	}
	return NULL;
}

/* ---- setup ------------------------------------------------------------------------------ */

static int split_selectors(struct runner *r)
{
	r->selectors = calloc(r->cfg->n_select, sizeof(*r->selectors));
	if (!r->selectors)
		return -ENOMEM;
	r->n_selectors = r->cfg->n_select;
	for (size_t i = 0; i < r->n_selectors; i++) {
		struct selector *s = &r->selectors[i];
		const char *p = r->cfg->select[i];
		s->all = strcmp(p, "*/*/*") == 0;
		for (int level = 0; level < 3; level++) {
			const char *slash = level < 2 ? strchr(p, '/') : NULL;
			size_t len = slash ? (size_t)(slash - p) : strlen(p);
			s->level[level] = strndup(p, len);
			if (!s->level[level])
				return -ENOMEM;
			p = slash ? slash + 1 : p + len;
		}
	}
	return 0;
}

static void runner_free(struct runner *r)
{
	read_ahead_stop(r);
	if (r->ctx && r->type->close)
		r->type->close(r->ctx);
	r->ctx = NULL;
	store_close(r->st);
	r->st = NULL;
	batch_free(&r->open);
	for (size_t i = 0; i < r->n_selectors; i++)
		for (int level = 0; level < 3; level++)
			free(r->selectors[i].level[level]);
	free(r->selectors);
	r->selectors = NULL;
}

int flusher_new(const struct config *cfg, const char *datadir, struct flusher **out, char *err,
                size_t err_len)
{
	*out = NULL;
	struct flusher *f = calloc(1, sizeof(*f));
	if (!f)
		return -ENOMEM;
	f->cfg = cfg;
	snprintf(f->datadir, sizeof(f->datadir), "%s", datadir);
	pthread_mutex_init(&f->lock, NULL);
	pthread_mutex_init(&f->metrics_lock, NULL);
	pthread_condattr_t attr;
	pthread_condattr_init(&attr);
	pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
	pthread_cond_init(&f->wake, &attr);
	pthread_condattr_destroy(&attr);
	f->n = cfg ? cfg->n_sinks : 0;
	f->runners = calloc(f->n ? f->n : 1, sizeof(*f->runners));
	if (!f->runners) {
		free(f);
		return -ENOMEM;
	}
	int rc = 0;
	for (size_t i = 0; i < f->n && !rc; i++) {
		struct runner *r = &f->runners[i];
		r->f = f;
		r->cfg = cfg->sinks[i];
		r->type = r->cfg->type;
		batch_init(&r->open);
		rc = split_selectors(r);
		if (rc) {
			snprintf(err, err_len, "out of memory");
			break;
		}
		char why[512] = "";
		rc = r->type->init(r->cfg, &r->ctx, why, sizeof(why));
		if (rc)
			snprintf(err, err_len, "%s:%d: [sink %s]: %s", r->cfg->file, r->cfg->line,
			         r->cfg->name, why[0] ? why : strerror(-rc));
	}
	if (!rc) {
		/* The sinks are known to the store before the mount appears, so
		 * `idbmountctl status` lists them from the first moment, and
		 * those the file no longer names show as removed. The
		 * connection is closed again: it must not cross the fork. */
		struct store *st = NULL;
		const char **names = calloc(f->n ? f->n : 1, sizeof(*names));
		rc = names ? store_open(datadir, &st, err, err_len) : -ENOMEM;
		for (size_t i = 0; i < f->n && !rc; i++) {
			names[i] = cfg->sinks[i]->name;
			rc = store_sink_register(st, cfg->sinks[i]->name,
			                         cfg->sinks[i]->type->name);
			if (rc)
				snprintf(err, err_len, "registering sink %s: %s",
				         cfg->sinks[i]->name, store_last_error(st));
		}
		if (!rc && (rc = store_sinks_configured(st, names, f->n)) != 0)
			snprintf(err, err_len, "marking removed sinks: %s", store_last_error(st));
		if (rc == -ENOMEM)
			snprintf(err, err_len, "out of memory");
		store_close(st);
		free(names);
	}
	if (rc) {
		for (size_t i = 0; i < f->n; i++)
			runner_free(&f->runners[i]);
		free(f->runners);
		free(f);
		return rc;
	}
	*out = f;
	return 0;
}

/* Where the done flags go on from: the store's flags_from, or for a sink
 * flagging for the first time the period open now. A data directory made
 * before flags_from existed may have an open partition waiting for its
 * flag: then its period (that of the last delivery, or the one before it
 * when the delivery came just after the period ended) comes first. */
static int load_flags_from(struct runner *r, const struct store_sink *k)
{
	r->period = partition_period_of(r->cfg->partition);
	int rc = store_sink_flags_from(r->st, r->cfg->name, &r->flags_from_ms);
	if (rc != -ENOENT)
		return rc;
	int64_t from = partition_period_start(r->period, clock_wall_ms());
	if (k->open_partition[0] && k->last_delivery_ms > 0) {
		char partition[STORE_SINK_LABEL_MAX];
		int64_t last = partition_period_start(r->period, k->last_delivery_ms);
		partition_render(r->cfg->partition, last, partition, sizeof(partition));
		if (strcmp(partition, k->open_partition) != 0)
			last = partition_period_start(r->period, last - 1);
		from = last < from ? last : from;
	}
	r->flags_from_ms = from;
	rc = store_sink_set_flags_from(r->st, r->cfg->name, from);
	if (rc)
		logf_sink(r, "%s", store_last_error(r->st));
	return rc;
}

/* Opens the runner's store and loads its state (in the serving process). */
static int runner_open(struct runner *r)
{
	char err[512];
	int rc = store_open(r->f->datadir, &r->st, err, sizeof(err));
	if (rc) {
		logf_sink(r, "%s", err);
		return rc;
	}
	rc = store_sink_register(r->st, r->cfg->name, r->type->name);
	struct store_sink k;
	if (!rc)
		rc = store_sink_load(r->st, r->cfg->name, &k);
	if (rc) {
		logf_sink(r, "%s", store_last_error(r->st));
		return rc;
	}
	r->cursor = k.cursor;
	r->generation = k.generation;
	snprintf(r->open_partition, sizeof(r->open_partition), "%s", k.open_partition);
	if (*r->cfg->done_flag) {
		rc = load_flags_from(r, &k);
		if (rc)
			return rc;
	}
	snprintf(r->epoch, sizeof(r->epoch), "%s", store_epoch(r->st));
	datadir_node_name(r->node, sizeof(r->node));
	/* In a file name the node keeps only characters safe everywhere. */
	size_t node_len = strnlen(r->node, sizeof(r->name_node) - 1);
	memcpy(r->name_node, r->node, node_len);
	r->name_node[node_len] = '\0';
	for (char *p = r->name_node; *p; p++)
		if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') ||
		      (*p >= '0' && *p <= '9') || *p == '.' || *p == '_'))
			*p = '_';
	batch_reset(&r->open, r->cursor, (size_t)r->cfg->max_bytes);
	if (r->type->poll_taken) {
		/* The first call also says whether the sink watches at all. */
		int64_t seq = r->type->poll_taken(r->ctx);
		r->taken_later = seq >= 0;
		if (seq > 0)
			store_sink_set_taken(r->st, r->cfg->name, seq);
	}
	unsigned seed = 0;
	if (getrandom(&seed, sizeof(seed), 0) != (ssize_t)sizeof(seed))
		seed = (unsigned)getpid() ^ (unsigned)clock_mono_ms();
	r->rng = seed;
	return 0;
}

int flusher_start(struct flusher *f)
{
	for (size_t i = 0; i < f->n; i++) {
		struct runner *r = &f->runners[i];
		int rc = runner_open(r);
		if (!rc)
			rc = read_ahead_start(r);
		if (!rc) {
			rc = -pthread_create(&r->thread, NULL, runner_main, r);
			if (rc)
				logf_sink(r, "cannot start its thread: %s", strerror(-rc));
		}
		if (rc)
			return rc;
		r->started = true;
	}
	return 0;
}

void flusher_stop(struct flusher *f)
{
	if (!f)
		return;
	pthread_mutex_lock(&f->lock);
	f->stopping = true;
	f->stop_deadline_ms = clock_mono_ms() + SHUTDOWN_MS;
	pthread_cond_broadcast(&f->wake);
	pthread_mutex_unlock(&f->lock);
	/* Each runner ships what is ready until the deadline; a sink still
	 * busy then (a server that does not answer) is cancelled. */
	struct timespec deadline = clock_deadline(CLOCK_REALTIME, SHUTDOWN_MS + 1000);
	for (size_t i = 0; i < f->n; i++) {
		struct runner *r = &f->runners[i];
		if (!r->started)
			continue;
		if (pthread_timedjoin_np(r->thread, NULL, &deadline) != 0) {
			if (r->type->cancel)
				r->type->cancel(r->ctx);
			pthread_join(r->thread, NULL);
		}
	}
	for (size_t i = 0; i < f->n; i++)
		runner_free(&f->runners[i]);
	free(f->runners);
	store_close(f->metrics_st);
	pthread_cond_destroy(&f->wake);
	pthread_mutex_destroy(&f->lock);
	pthread_mutex_destroy(&f->metrics_lock);
	free(f);
}

/* ---- /metrics ----------------------------------------------------------------------------- */

/* A label value in Prometheus text: backslash, quote and newline escaped. */
static int append_label_value(struct buf *out, const char *text)
{
	int rc = 0;
	for (const char *p = text; *p && !rc; p++) {
		if (*p == '\\' || *p == '"')
			rc = buf_append_char(out, '\\');
		if (!rc)
			rc = *p == '\n' ? buf_append_str(out, "\\n") : buf_append_char(out, *p);
	}
	return rc;
}

struct metric {
	const char *name, *type, *help;
};

static const struct metric sink_metrics[] = {
        {"idbmount_sink_lag_changes", "gauge", "Changes in the log after the sink's cursor."},
        {"idbmount_sink_lag_seconds", "gauge", "Age of the oldest change after the cursor."},
        {"idbmount_sink_cursor", "gauge", "Every change up to this seq is handled."},
        {"idbmount_sink_delivered_seq", "gauge", "The highest seq a pipeline has taken."},
        {"idbmount_sink_delivered_batches_total", "counter", "Batches delivered."},
        {"idbmount_sink_delivered_changes_total", "counter", "Changes delivered."},
        {"idbmount_sink_delivered_bytes_total", "counter", "Bytes of change lines delivered."},
        {"idbmount_sink_retries_total", "counter", "Failed attempts that were retried."},
        {"idbmount_sink_failures_total", "counter", "Batches parked as undeliverable."},
        {"idbmount_sink_parked_batches", "gauge", "Batches parked now."},
        {"idbmount_sink_long_lines_total", "counter", "Delivered lines over max_line."},
        {"idbmount_sink_last_error_timestamp_seconds", "gauge",
         "When the last error happened (0: never)."},
        {"idbmount_sink_last_error_info", "gauge",
         "The last error's message (e.g. a WebHDFS RemoteException), value 1."},
};

struct metrics_pass {
	struct buf *out;
	size_t metric;
	int rc;
};

static int metric_line(void *ctx, const struct store_sink *k)
{
	struct metrics_pass *m = ctx;
	/* Sinks the config file no longer names are left out: their lag
	 * would only grow (idbmountctl status still shows them). */
	if (k->removed_ms > 0)
		return 0;
	double values[] = {
	        (double)k->lag_changes,
	        (double)k->lag_ms / 1000,
	        (double)k->cursor,
	        (double)k->delivered_seq,
	        (double)k->delivered_batches,
	        (double)k->delivered_changes,
	        (double)k->delivered_bytes,
	        (double)k->retries,
	        (double)k->failures,
	        (double)k->parked,
	        (double)k->long_lines,
	        (double)k->last_error_ms / 1000,
	        1,
	};
	bool info = m->metric == sizeof(values) / sizeof(*values) - 1;
	if (info && !k->last_error[0])
		return 0;
	int rc = buf_printf(m->out, "%s{sink=\"", sink_metrics[m->metric].name);
	if (!rc)
		rc = append_label_value(m->out, k->name);
	if (!rc)
		rc = buf_printf(m->out, "\",type=\"%s\"", k->type);
	if (!rc && info) {
		rc = buf_append_str(m->out, ",error=\"");
		if (!rc)
			rc = append_label_value(m->out, k->last_error);
		if (!rc)
			rc = buf_append_char(m->out, '"');
	}
	if (!rc)
		rc = buf_printf(m->out, "} %.17g\n", values[m->metric]);
	m->rc = rc;
	return rc;
}

int flusher_metrics(void *ctx, struct buf *out)
{
	struct flusher *f = ctx;
	pthread_mutex_lock(&f->metrics_lock);
	int rc = 0;
	if (!f->metrics_st) {
		char err[512];
		rc = store_open(f->datadir, &f->metrics_st, err, sizeof(err));
	}
	for (size_t i = 0; !rc && i < sizeof(sink_metrics) / sizeof(*sink_metrics); i++) {
		rc = buf_printf(out, "# HELP %s %s\n# TYPE %s %s\n", sink_metrics[i].name,
		                sink_metrics[i].help, sink_metrics[i].name, sink_metrics[i].type);
		struct metrics_pass m = {.out = out, .metric = i};
		if (!rc)
			rc = store_sinks_list(f->metrics_st, metric_line, &m);
		if (!rc)
			rc = m.rc;
	}
	pthread_mutex_unlock(&f->metrics_lock);
	return rc;
}
