/* worker.h - a thread with a store connection of its own that sleeps until
 * it is woken, a period passes, or it is stopped: what the checkpointer, the
 * watch, the fs notifier and the HTTP event streams each are. One place for
 * how such a thread starts, waits and stops, so that none of them can stop
 * without waking its thread or close its store while the thread still runs.
 *
 * The owner embeds a struct worker and keeps its own state under `lock`.
 * The loop is this file's (worker_start_rounds): the thread calls the
 * owner's round each time it is woken or its period passes, until it is
 * stopped. The connection belongs to the thread once it runs.
 */
#ifndef IDBMOUNT_WORKER_H
#define IDBMOUNT_WORKER_H

#include <pthread.h>
#include <stdbool.h>

struct store;
struct worker;

/* One round of a worker's thread. Called with w->lock held; it may drop the
 * lock around slow work but holds it again when it returns. `woken` says
 * whether worker_wake (or worker_wake_locked) ran since the last round;
 * false when the period passed without one. */
typedef void worker_round_fn(struct worker *w, bool woken, void *arg);

struct worker {
	struct store *st;
	char name[16]; /* the thread's, from worker_open's `who` */
	pthread_t thread;
	pthread_mutex_t lock;
	pthread_cond_t wake;
	bool stop;  /* under lock */
	bool woken; /* under lock: a wake the thread has not yet acted on */
	int period_ms;
	worker_round_fn *round;
	void *arg;
};

/* Opens the worker's connection to the store in `datadir` and makes its
 * lock and condition. Returns 0, or -errno after a message on stderr
 * naming `who`, with nothing left to close. */
int worker_open(struct worker *w, const char *datadir, const char *who);

/* Runs the loop on the worker's thread: until stopped, wait to be woken
 * (at most `period_ms` when it is above 0, else for ever; no wait when a
 * wake came while the last round ran), then call round(w, woken, arg).
 * Returns 0 or -errno; on failure the worker is still open (worker_close
 * it). */
int worker_start_rounds(struct worker *w, int period_ms, worker_round_fn *round, void *arg);


/* Sets *flag (if not NULL) under the lock and wakes the thread. */
void worker_wake(struct worker *w, bool *flag);

/* The same, for a caller that holds the lock. */
void worker_wake_locked(struct worker *w);

/* Sets `stop`, wakes the thread and waits until it has returned. */
void worker_stop(struct worker *w);

/* Closes the connection, the lock and the condition: after worker_stop,
 * or after worker_start_rounds failed. */
void worker_close(struct worker *w);

/* worker_stop then worker_close. */
void worker_finish(struct worker *w);

#endif
