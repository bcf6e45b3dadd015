/* shown.h - how far this process's mount shows the store, for the threads
 * of the same process that wait on it.
 *
 * The notifier (fs/fs_notifier.c) invalidates the kernel's caches for each
 * change made elsewhere and then advances this mark to the change log's
 * seq and the tree log's id it has dealt with; a push or a schema call
 * (src/http/http_sync.c) waits here until the mark reaches what it wrote,
 * so that its answer comes once the mount shows it. One condition variable
 * wakes the waiters as the mark moves: they do not poll. idbmountctl, which
 * is another process, reads the same progress from the store's `daemon`
 * row instead (store_daemon_wait_shown).
 *
 * The daemon's main() makes the mark and hands it to both sides, so the
 * sync endpoint knows nothing of fs/. While no notifier serves (before it
 * starts, after it halts) nothing is waited for: no cache can then be
 * stale, and a stopping daemon must not keep a waiter.
 */
#ifndef IDBMOUNT_SHOWN_H
#define IDBMOUNT_SHOWN_H

#include <stdint.h>

struct shown;

/* Returns 0 or -ENOMEM. */
int shown_new(struct shown **out);
/* After every waiter returned and the notifier is gone (NULL is fine). */
void shown_free(struct shown *s);

/* The notifier's side. shown_serve: a notifier serves from here on and has
 * dealt with the logs up to (seq, tree_id), their ends when it started.
 * shown_advance: it has dealt with them up to (seq, tree_id); wakes the
 * waiters. shown_halt: it serves no more; wakes every waiter, each returns
 * at once. All take NULL as nothing to do. */
void shown_serve(struct shown *s, int64_t seq, int64_t tree_id);
void shown_advance(struct shown *s, int64_t seq, int64_t tree_id);
void shown_halt(struct shown *s);

/* Waits until the notifier has dealt with change `seq` and tree-log entry
 * `tree_id` (0 for either: nothing to wait for in that log). Returns 0 once
 * it has, or at once when no notifier serves (or `s` is NULL); -ETIMEDOUT
 * when the mark did not move for `idle_ms`. */
int shown_wait(struct shown *s, int64_t seq, int64_t tree_id, int idle_ms);

#endif
