/* flusher.c - walks the change log for every sink and delivers batches
 * (flusher.h): the flusher's life, and each sink's runner thread.
 *
 * Each configured sink gets its own thread with its own store connection
 * (a sink runner). A sink that is down (connection refused, 503, a full
 * disk) then only stalls its own thread, sleeping in its backoff, while
 * the others go on: no sink can slow another, and a blocking curl call
 * needs no event loop. The sinks share nothing but the change log. What a
 * runner does with a batch is in batch.c and intents.c; the other files
 * of this folder are listed in flusher_internal.h.
 *
 * New changes are found by polling: every POLL_MS a runner asks SQLite
 * whether another connection committed (PRAGMA data_version, a read of
 * shared memory, as fs/fs_notifier.c does) and only then reads the log.
 * This costs nothing when idle and adds at most POLL_MS of latency.
 *
 * Shutdown (SIGTERM, fusermount3 -u): each runner reads the log to its
 * end and ships its batches at once, one attempt each, for at most
 * SHUTDOWN_MS; whatever does not go stays in the change log for the next
 * start.
 */
#include "flusher_internal.h"

#include "idbmount/util/clock.h"
#include "idbmount/util/datadir.h"
#include "idbmount/util/thread_name.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>

#define POLL_MS          5
#define ADVANCE_EVERY_MS 500
#define SHUTDOWN_MS      5000

bool flusher_stopping(struct flusher *f)
{
	pthread_mutex_lock(&f->lock);
	bool s = f->stopping;
	pthread_mutex_unlock(&f->lock);
	return s;
}

bool flusher_wait_ms(struct flusher *f, int64_t ms)
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

void runner_log(const struct runner *r, const char *fmt, ...)
{
	char msg[1024];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	fprintf(stderr, "idbmount: sink %s: %s\n", r->cfg->name, msg);
}

/* ---- calling the sink ------------------------------------------------------------ */

static const char *const op_name[] = {"stage", "deliver", "recover", "close period"};

static enum sink_result call_once(struct runner *r, struct sink_call *c, char *msg, size_t msg_len)
{
	switch (c->op) {
	case SINK_OP_STAGE:
		return r->type->stage(r->ctx, c->batch, msg, msg_len);
	case SINK_OP_DELIVER:
		return r->type->deliver(r->ctx, c->batch, msg, msg_len);
	case SINK_OP_RECOVER:
		return r->type->recover(r->ctx, c->batch, c->staged, &c->found, msg, msg_len);
	case SINK_OP_CLOSE_PERIOD:
		return r->type->close_period(r->ctx, c->partition, msg, msg_len);
	}
	return SINK_ERROR;
}

enum sink_result runner_call(struct runner *r, struct sink_call *c, char *msg, size_t msg_len)
{
	/* Each call starts its count of failures afresh. */
	struct retry retry;
	retry_init(&retry, r->cfg->retry_initial_ms, r->cfg->retry_max_ms, &r->rng);
	for (;;) {
		msg[0] = '\0';
		enum sink_result res = call_once(r, c, msg, msg_len);
		bool stopping = false;
		if (res == SINK_RETRY) {
			if (!msg[0])
				snprintf(msg, msg_len, "%s failed", op_name[c->op]);
			store_sink_note_retry(r->st, r->cfg->name, msg);
			stopping = flusher_stopping(r->f);
		}
		int64_t wait;
		switch (retry_after(&retry, res, stopping, &wait)) {
		case RETRY_DONE:
		case RETRY_GIVE_UP:
			return res;
		case RETRY_LEAVE:
			runner_log(r, "%s: %s (left for the next start)", op_name[c->op], msg);
			return SINK_RETRY;
		case RETRY_WAIT:
			runner_log(r, "%s: %s (retry %u in %lld ms)", op_name[c->op], msg,
			           retry.failures, (long long)wait);
			if (flusher_wait_ms(r->f, wait))
				return SINK_RETRY;
			break;
		}
	}
}

/* ---- the runner ------------------------------------------------------------------ */

/* Re-reads the sink's row: a replay (new generation) restarts reading. */
static int sync_state(struct runner *r)
{
	struct store_sink k;
	int rc = store_sink_load(r->st, r->cfg->name, &k);
	if (rc)
		return rc;
	if (k.generation != r->generation) {
		runner_log(r, "replay from seq %lld", (long long)k.cursor + 1);
		r->generation = k.generation;
		r->cursor = k.cursor;
		batch_reset(&r->open, r->cursor, (size_t)r->cfg->max_bytes);
	}
	return 0;
}

struct published {
	struct store_sink_intent *in;
	size_t n, cap;
	bool short_of_memory;
};

static int collect_published(void *ctx, const struct store_sink_intent *in)
{
	struct published *p = ctx;
	if (p->n == p->cap) {
		size_t cap = p->cap ? p->cap * 2 : 8;
		struct store_sink_intent *grown = realloc(p->in, cap * sizeof(*grown));
		if (!grown) {
			p->short_of_memory = true;
			return 1;
		}
		p->in = grown;
		p->cap = cap;
	}
	p->in[p->n++] = *in;
	return 0;
}

/* Records what consumers took, for sinks that watch for it: every batch
 * published and not yet taken is asked about once the sink saw something
 * move, and the first time (after the intents found at start were
 * finished) with `look`, for what was taken while the daemon was down.
 * Each one taken is recorded on its own, so one taken before an earlier
 * batch moves the delivered mark only once the earlier one is taken too. */
static void note_taken(struct runner *r)
{
	if (!r->taken_later)
		return;
	bool moved = r->type->poll_taken(r->ctx) > 0;
	bool look = !r->looked_for_taken;
	if (!moved && !look)
		return;
	r->looked_for_taken = true;
	struct published p = {0};
	/* Rows first: the list statement must be done before the same
	 * connection records a take. */
	int rc = store_sink_intents(r->st, r->cfg->name, STORE_INTENT_PUBLISHED, collect_published,
	                            &p);
	for (size_t i = 0; i < p.n && !rc; i++) {
		struct sink_batch view = {.name = p.in[i].name,
		                          .partition = p.in[i].partition,
		                          .first_seq = p.in[i].first_seq,
		                          .last_seq = p.in[i].last_seq};
		if (r->type->taken(r->ctx, &view, look) == 1)
			rc = store_sink_intent_taken(r->st, r->cfg->name, &p.in[i]);
	}
	if (rc)
		runner_log(r, "cannot record what was taken: %s", store_last_error(r->st));
	else if (p.short_of_memory)
		runner_log(r, "cannot record what was taken: out of memory");
	free(p.in);
}

/* After a failure of the store itself (a full disk under the data
 * directory, a lock held too long): log it, back off, and start again from
 * what the store holds (its cursor and intents are the truth). Returns
 * whether the flusher is stopping. */
static bool restart_after_error(struct runner *r, int rc)
{
	const char *why = *store_last_error(r->st) ? store_last_error(r->st) : strerror(-rc);
	int64_t wait;
	retry_after(&r->store_retry, SINK_RETRY, false, &wait);
	runner_log(r, "store: %s (trying again in %lld ms)", why, (long long)wait);
	if (flusher_wait_ms(r->f, wait))
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
	int rc = 0;
	thread_name_set("sink ", r->cfg->name);
	while (!flusher_stopping(f)) {
		sweep_leftovers(r);
		if (dirty || store_changed_elsewhere(r->st)) {
			dirty = false;
			rc = sync_state(r);
			if (!rc)
				rc = intents_recover(r);
			if (!rc && !r->open.full)
				rc = batch_read(r, r->st, &r->open, INT64_MAX, true);
		}
		if (!rc && batch_due(&r->open, clock_wall_ms(), r->cfg->max_age_ms)) {
			rc = intents_ship_open_batch(r);
			/* More may be waiting behind a full batch. */
			dirty = true;
			if (!rc) {
				int64_t no_wait;
				retry_after(&r->store_retry, SINK_OK, false, &no_wait);
				continue;
			}
		}
		if (rc == -EAGAIN)
			break; /* stopping */
		if (rc) {
			if (restart_after_error(r, rc))
				break;
			rc = 0;
			dirty = true;
			continue;
		}
		if (r->open.n == 0 && r->open.scan_seq > r->cursor &&
		    clock_mono_ms() - r->last_advance_ms >= ADVANCE_EVERY_MS) {
			r->last_advance_ms = clock_mono_ms();
			intents_ship_open_batch(r);
		}
		periods_close_finished(r, clock_wall_ms());
		note_taken(r);
		int64_t wait = POLL_MS;
		if (r->open.n > 0) {
			int64_t due = r->open.first_ts_ms + r->cfg->max_age_ms - clock_wall_ms();
			if (due < wait)
				wait = due > 0 ? due : 0;
		}
		if (wait > 0)
			flusher_wait_ms(f, wait);
	}
	/* Shutdown: ship what is ready, one attempt per batch, in order: an
	 * intent still pending goes first or nothing goes. */
	if (intents_recover(r) != 0)
		return NULL;
	while (clock_mono_ms() < f->stop_deadline_ms) {
		if (!r->open.full && batch_read(r, r->st, &r->open, INT64_MAX, true) != 0)
			break;
		if (r->open.n == 0) {
			intents_ship_open_batch(r); /* moves the cursor over what is not selected */
			break;
		}
		if (intents_ship_open_batch(r) != 0)
			break;
	}
	return NULL;
}

/* ---- setup ------------------------------------------------------------------------------ */

static void runner_free(struct runner *r)
{
	read_ahead_stop(r);
	if (r->ctx && r->type->close)
		r->type->close(r->ctx);
	r->ctx = NULL;
	store_close(r->st);
	r->st = NULL;
	batch_free(&r->open);
	batch_selectors_free(r);
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
		rc = batch_selectors_make(r);
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

/* Opens the runner's store and loads its state (in the serving process). */
static int runner_open(struct runner *r)
{
	char err[512];
	int rc = store_open(r->f->datadir, &r->st, err, sizeof(err));
	if (rc) {
		runner_log(r, "%s", err);
		return rc;
	}
	rc = store_sink_register(r->st, r->cfg->name, r->type->name);
	struct store_sink k;
	if (!rc)
		rc = store_sink_load(r->st, r->cfg->name, &k);
	if (rc) {
		runner_log(r, "%s", store_last_error(r->st));
		return rc;
	}
	r->cursor = k.cursor;
	r->generation = k.generation;
	snprintf(r->open_partition, sizeof(r->open_partition), "%s", k.open_partition);
	if (*r->cfg->done_flag) {
		rc = periods_load(r, &k);
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
		/* The first call also says whether the sink watches at all; what
		 * was taken while the daemon was down is looked for at the
		 * first note_taken. */
		r->taken_later = r->type->poll_taken(r->ctx) >= 0;
	}
	unsigned seed = 0;
	if (getrandom(&seed, sizeof(seed), 0) != (ssize_t)sizeof(seed))
		seed = (unsigned)getpid() ^ (unsigned)clock_mono_ms();
	r->rng = seed;
	retry_init(&r->store_retry, r->cfg->retry_initial_ms, r->cfg->retry_max_ms, &r->rng);
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
				runner_log(r, "cannot start its thread: %s", strerror(-rc));
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
