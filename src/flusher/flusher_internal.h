/* flusher_internal.h - what the files of src/flusher/ share: a sink's
 * runner, its batches and its reader. Internal to src/flusher/ (and its
 * unit tests).
 *
 *   flusher.c     the flusher's life (new, start, stop) and each sink's
 *                 runner thread: its loop, its state, its waits;
 *   batch.c       what goes into a batch, when it is due, its name;
 *   read_ahead.c  the thread that reads the next batch while one ships;
 *   intents.c     shipping a batch as an intent, and finishing those a
 *                 crash or an unpark left;
 *   periods.c     done flags of closed partition periods;
 *   sweep.c       removing what given-up attempts left (webhdfs);
 *   retry.c       the one retry policy;
 *   metrics.c     /metrics.
 */
#ifndef IDBMOUNT_FLUSHER_INTERNAL_H
#define IDBMOUNT_FLUSHER_INTERNAL_H

#include "retry.h"

#include "idbmount/flusher/flusher.h"
#include "idbmount/sinks/config.h"
#include "idbmount/sinks/partition.h"
#include "idbmount/sinks/sink.h"
#include "idbmount/store/store.h"
#include "idbmount/store/store_sinks.h"
#include "idbmount/util/buf.h"

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

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
 * (read_ahead.c). The runner asks for a batch that starts after `start`,
 * ships its own, then waits for the answer. */
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

/* One sink's thread and state. */
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
	bool looked_for_taken; /* see note_taken */
	int64_t next_sweep_ms; /* monotonic; see sweep.c */
	struct batch open;
	struct read_ahead ahead;
	struct selector *selectors;
	size_t n_selectors;
	unsigned rng;
	struct retry store_retry; /* failures of the store itself, in a row */
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

/* ---- flusher.c: the runner's waits, log and sink calls ---- */

/* Whether the flusher is stopping. */
bool flusher_stopping(struct flusher *f);

/* Sleeps up to `ms`, waking early when the flusher is stopped. Returns
 * whether it is stopping. */
bool flusher_wait_ms(struct flusher *f, int64_t ms);

/* "idbmount: sink NAME: message" on stderr. */
__attribute__((format(printf, 2, 3))) void runner_log(const struct runner *r, const char *fmt, ...);

enum sink_op {
	SINK_OP_STAGE,
	SINK_OP_DELIVER,
	SINK_OP_RECOVER,
	SINK_OP_CLOSE_PERIOD,
};

/* One call of the sink, its arguments and (recover) its finding. */
struct sink_call {
	enum sink_op op;
	const struct sink_batch *batch;
	bool staged;
	enum sink_recovery found;
	const char *partition;
};

/* Calls the sink until it answers OK or ERROR, as the retry policy says
 * (retry.h): each failed attempt is counted in the store and logged, then
 * waited for; gives up (answering RETRY) when the flusher stops. `msg`
 * holds the last message. */
enum sink_result runner_call(struct runner *r, struct sink_call *c, char *msg, size_t msg_len);

/* ---- batch.c ---- */

/* A change line holds a value of up to 2 x 16 MiB plus its fields: one
 * line always fits next to max_bytes of others. */
#define BATCH_LINE_ROOM (40u * 1024 * 1024)

void batch_init(struct batch *b);
/* Empties `b` for the changes after `scan_seq`. */
void batch_reset(struct batch *b, int64_t scan_seq, size_t max_bytes);
void batch_free(struct batch *b);

/* Adds the line of change `c` (selected, seq after b->scan_seq) to `b`.
 * With `limited`, a batch closes at cfg's max_records or max_bytes: a line
 * that would take a batch past max_bytes is not added (it starts the next
 * one), unless the batch is empty. Returns 0 when there is room for more,
 * 1 when the batch is full (b->full), or -errno. */
int batch_add(struct batch *b, const struct store_change *c, const char *node,
              const struct sink_config *cfg, bool limited);

/* Whether `b` should ship at wall time `now_ms`: it holds changes and is
 * full, or its first change is `max_age_ms` old (by the change's own time,
 * so a backlog found after a restart ships at once). */
bool batch_due(const struct batch *b, int64_t now_ms, int64_t max_age_ms);

/* Reads changes after b->scan_seq (up to `upto`) that the runner's sink
 * selects into `b`, through connection `st` (the runner's, or its
 * reader's: only the runner's read-only fields are used). Returns 0 or
 * -errno. */
int batch_read(const struct runner *r, struct store *st, struct batch *b, int64_t upto,
               bool limited);

/* Splits the sink's select patterns for batch_read. 0 or -ENOMEM. */
int batch_selectors_make(struct runner *r);
void batch_selectors_free(struct runner *r);

/* PREFIX-NODE-EPOCH: how every batch name of this data directory starts. */
void batch_owner(const struct runner *r, char *out, size_t outlen);

/* OWNER[.GEN]-FIRST-LAST.jsonl, the seqs zero-padded to 20 digits so
 * names sort in seq order. */
void batch_name(const struct runner *r, int64_t generation, int64_t first, int64_t last, char *out,
                size_t outlen);

/* ---- read_ahead.c ---- */

/* Opens the reader's connection and starts its thread. 0 or -errno. */
int read_ahead_start(struct runner *r);
void read_ahead_stop(struct runner *r);

/* Starts reading the batch after seq `start` on the reader's thread.
 * Returns whether it did (there is no reader when it could not start). */
bool read_ahead_ask(struct runner *r, int64_t start);

/* Waits for the batch asked for and makes it the open batch when `take`
 * (the one shipped before it is done with); else drops it. Returns
 * whether the open batch was replaced. */
bool read_ahead_finish(struct runner *r, bool take);

/* ---- intents.c ---- */

/* Ships the open batch: intent, stage, deliver; an empty one moves the
 * cursor over what the sink does not select. Returns 0 when the intent is
 * finished (delivered or parked), -EAGAIN when it was left for later (the
 * flusher stops), or -errno from the store. */
int intents_ship_open_batch(struct runner *r);

/* Finishes every pending or staged intent: those a crash left, and those
 * `idbmountctl sink unpark` re-queued. Returns 0, or -EAGAIN/-errno. */
int intents_recover(struct runner *r);

/* ---- periods.c ---- */

/* Loads where the done flags go on from (at the runner's start). */
int periods_load(struct runner *r, const struct store_sink *k);

/* Writes the done flags of the periods that ended by `upto_ms`, in order,
 * stopping at the first whose flag cannot be written now. */
void periods_close_finished(struct runner *r, int64_t upto_ms);

/* Whether the period of a batch closed at `created_ms` has its flag. */
bool periods_flagged(const struct runner *r, int64_t created_ms);

/* ---- sweep.c ---- */

/* Lets the sink remove what its given-up attempts left, when it is time. */
void sweep_leftovers(struct runner *r);

#endif
