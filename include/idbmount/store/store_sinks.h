/* store_sinks.h - what the flusher, `idbmountctl status/sink` and /metrics
 * need from the store: per-sink cursors, batch intents and statistics.
 *
 * A sink's cursor is the seq up to which every change has been handled:
 * delivered, parked, or not selected by the sink. A batch is recorded as an
 * intent (the range of seqs it covers and its final name) BEFORE any part
 * of it becomes visible, marked staged when its hidden copy is durable, and
 * deleted in the same transaction that moves the cursor past it when it
 * was delivered. So after a crash the store says exactly which batch may be
 * half-done, and the sink checks how far it got (see sink.h).
 *
 * A replay (`idbmountctl sink replay`) moves the cursor back and bumps the
 * sink's generation; the generation goes into new file names (unique for
 * ever) and keeps an intent of the old generation from moving the cursor.
 */
#ifndef IDBMOUNT_STORE_SINKS_H
#define IDBMOUNT_STORE_SINKS_H

#include "idbmount/store/store.h"

#include <stdbool.h>
#include <stdint.h>

#define STORE_SINK_NAME_MAX  65
#define STORE_SINK_TEXT_MAX  512
#define STORE_SINK_LABEL_MAX 256

/* A sink's state and statistics, as status and /metrics show them. */
struct store_sink {
	char name[STORE_SINK_NAME_MAX];
	char type[16];
	int64_t cursor;
	int64_t generation;
	int64_t delivered_seq; /* the pipeline took every change up to it */
	int64_t delivered_batches;
	int64_t delivered_changes;
	int64_t delivered_bytes;
	int64_t retries;                      /* failed attempts that were retried */
	int64_t failures;                     /* batches parked */
	int64_t parked;                       /* batches parked now */
	int64_t long_lines;                   /* delivered lines over the sink's max_line */
	char last_error[STORE_SINK_TEXT_MAX]; /* "" when none */
	int64_t last_error_ms;                /* wall clock, 0 when none */
	int64_t last_delivery_ms;
	char open_partition[STORE_SINK_LABEL_MAX]; /* awaiting its done flag */
	int64_t replay_to;                         /* the last seq when a replay was asked for */
	int64_t removed_ms; /* when the config file stopped naming it; 0: configured */
	/* Filled by store_sinks_list and store_sink_load: */
	int64_t lag_changes; /* changes after the cursor */
	int64_t lag_ms;      /* age of the oldest change after the cursor */
};

enum store_intent_state {
	STORE_INTENT_PENDING = 0,
	STORE_INTENT_STAGED = 1,
	STORE_INTENT_PUBLISHED = 2, /* delivered; its consumer has not taken it yet */
	STORE_INTENT_PARKED = 3,
};

struct store_sink_intent {
	int64_t id;
	int64_t generation;
	enum store_intent_state state;
	int64_t from_seq; /* the batch covers seqs (from_seq, to_seq] */
	int64_t to_seq;
	int64_t first_seq; /* of the first and last change in the batch */
	int64_t last_seq;
	int64_t changes;
	int64_t bytes;
	int64_t created_ms;
	char name[STORE_SINK_LABEL_MAX];
	char partition[STORE_SINK_LABEL_MAX];
	char error[STORE_SINK_TEXT_MAX];
};

/* Makes sink `name` known (cursor 0) or updates its type. */
int store_sink_register(struct store *st, const char *name, const char *type);

/* Says which sinks the daemon's config file names (`n` of them): every
 * other sink is marked removed (its row, cursor and intents are kept, for
 * status and in case it comes back), those named are marked configured
 * again. Removed sinks do not count for store_sinks_taken/_delivered. */
int store_sinks_configured(struct store *st, const char *const *names, size_t n);

/* Loads one sink. Returns 0 or -ENOENT. */
int store_sink_load(struct store *st, const char *name, struct store_sink *out);

/* Calls `fn` for every sink, by name; stops when it returns nonzero. */
typedef int (*store_sink_fn)(void *ctx, const struct store_sink *sink);
int store_sinks_list(struct store *st, store_sink_fn fn, void *ctx);

/* Moves the cursor forward over changes the sink does not select (only
 * if `generation` is still the sink's). */
int store_sink_advance(struct store *st, const char *sink, int64_t generation, int64_t cursor);

/* Records a new intent (state PENDING); sets intent->id, and
 * intent->created_ms unless the caller set it (the time its partition was
 * rendered from). */
int store_sink_intent_add(struct store *st, const char *sink, struct store_sink_intent *intent);

/* Marks an intent STAGED. */
int store_sink_intent_staged(struct store *st, int64_t id);

/* One transaction: deletes the intent and raises the delivered seq (or,
 * with `taken_later`, marks it PUBLISHED: its consumer has yet to take it,
 * see store_sink_intent_taken), moves the cursor past it (same generation
 * only), counts the delivery and `long_lines` and, for a partitioned sink,
 * notes its open partition. */
int store_sink_intent_done(struct store *st, const char *sink,
                           const struct store_sink_intent *intent, int64_t long_lines,
                           bool taken_later);

/* A consumer took the PUBLISHED intent `intent`: deletes it and raises the
 * sink's delivered seq to its last seq (the mark still stays below any
 * earlier batch not taken yet). */
int store_sink_intent_taken(struct store *st, const char *sink,
                            const struct store_sink_intent *intent);

/* Parks an intent that can never be delivered: keeps it with `error`,
 * moves the cursor past it and counts the failure. */
int store_sink_intent_park(struct store *st, const char *sink,
                           const struct store_sink_intent *intent, const char *error);

/* The oldest PENDING or STAGED intent of `sink`. 0, or -ENOENT. */
int store_sink_intent_next(struct store *st, const char *sink, struct store_sink_intent *out);

/* Calls `fn` for every intent of `sink` in `state`, oldest first. */
typedef int (*store_intent_fn)(void *ctx, const struct store_sink_intent *intent);
int store_sink_intents(struct store *st, const char *sink, enum store_intent_state state,
                       store_intent_fn fn, void *ctx);

/* Counts a failed attempt that will be retried, with its message. */
int store_sink_note_retry(struct store *st, const char *sink, const char *error);

/* Sets (or, with "", clears) the partition awaiting its done flag. */
int store_sink_set_open_partition(struct store *st, const char *sink, const char *partition);

/* Puts parked intents back to PENDING (all of them with id 0); the
 * daemon then delivers them again. *count says how many. -ENOENT for an
 * unknown sink. */
int store_sink_unpark(struct store *st, const char *sink, int64_t id, int64_t *count);

/* For pull/events: over every configured sink, the lowest and the highest
 * delivered mark (a change <= lowest was taken by every pipeline, <= highest
 * by at least one); both 0 when there are no sinks. A sink's mark is the
 * highest seq S such that it took every change <= S: it never passes the
 * first seq of a batch of its that is in flight, parked or not yet taken
 * by its consumer, whatever later batches did. */
int store_sinks_taken(struct store *st, int64_t *lowest, int64_t *highest);

/* What the browser is told is delivered (src/DESIGN.md, "Delivered"):
 * every change up to *seq was taken by every pipeline. -ENOENT while no
 * pipeline has taken anything (or there are no sinks): then nothing is
 * said. */
int store_sinks_delivered(struct store *st, int64_t *seq);

/* Partitioned sinks with a done flag: every period starting before *ms
 * has its flag. 0, or -ENOENT when the sink has not flagged any yet. */
int store_sink_flags_from(struct store *st, const char *sink, int64_t *ms);
int store_sink_set_flags_from(struct store *st, const char *sink, int64_t ms);

/* Gives a pending intent another partition and time (a batch unparked
 * after its period's flag was written goes into the open period). */
int store_sink_intent_move(struct store *st, struct store_sink_intent *intent,
                           const char *partition, int64_t created_ms);

/* Re-ships history: cursor = from_seq - 1, generation + 1, replay_to = the
 * last seq now; parked intents from from_seq on are dropped (the replay
 * ships their changes again, and parks them again should they still be
 * refused). -ENOENT for an unknown sink. */
int store_sink_replay(struct store *st, const char *sink, int64_t from_seq);

#endif
