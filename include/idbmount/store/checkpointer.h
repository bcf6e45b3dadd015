/* checkpointer.h - the daemon's WAL checkpoints, on a thread of their own.
 *
 * SQLite's default copies the WAL back into the database inside the commit
 * that makes it pass 1,000 pages, so one push in ten paid for it (12% of
 * the push path). The daemon instead starts one checkpointer after it has
 * mounted (and perhaps forked) and before its other threads open stores:
 * their commits then only wake this thread (store.h, "checkpoints"), which
 * checkpoints on its own connection, on the other CPU. It is not the watch
 * thread: a checkpoint takes milliseconds, and the watch must keep waking
 * the notifier every 5 ms meanwhile.
 */
#ifndef IDBMOUNT_CHECKPOINTER_H
#define IDBMOUNT_CHECKPOINTER_H

/* The WAL length (pages) past which the checkpointer runs: SQLite's own
 * default for automatic checkpoints. */
#define CHECKPOINTER_PAGES 1000

struct checkpointer;

/* Starts the thread on the store in `datadir`. Returns 0 or -errno (a
 * message on stderr). */
int checkpointer_start(const char *datadir, struct checkpointer **out);

/* Ends the delegation and stops the thread (NULL is fine). */
void checkpointer_stop(struct checkpointer *c);

#endif
