/* worker.h - a thread with a store connection of its own that sleeps until
 * it is woken or stopped: what the checkpointer, the watch, the fs notifier
 * and the HTTP event streams each are. One place for how such a thread
 * starts and stops, so that none of them can stop without waking its
 * thread or close its store while the thread still runs.
 *
 * The owner embeds a struct worker, keeps its own state under `lock`, and
 * its thread loops until `stop`, waiting on `wake` while there is nothing
 * to do. The connection belongs to the thread once it runs.
 */
#ifndef IDBMOUNT_WORKER_H
#define IDBMOUNT_WORKER_H

#include <pthread.h>
#include <stdbool.h>

struct store;

struct worker {
	struct store *st;
	pthread_t thread;
	pthread_mutex_t lock;
	pthread_cond_t wake;
	bool stop; /* under lock */
};

/* Opens the worker's connection to the store in `datadir` and makes its
 * lock and condition. Returns 0, or -errno after a message on stderr
 * naming `who`, with nothing left to close. */
int worker_open(struct worker *w, const char *datadir, const char *who);

/* Runs `thread_main(arg)` on the worker's thread. Returns 0 or -errno; on failure
 * the worker is still open (worker_close it). */
int worker_start(struct worker *w, void *(*thread_main)(void *), void *arg);

/* Sets *flag (if not NULL) under the lock and wakes the thread. */
void worker_wake(struct worker *w, bool *flag);

/* Sets `stop`, wakes the thread and waits until it has returned. */
void worker_stop(struct worker *w);

/* Closes the connection, the lock and the condition: after worker_stop,
 * or after worker_start failed. */
void worker_close(struct worker *w);

#endif
