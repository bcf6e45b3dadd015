/* watch.h - notices every commit to the store, whoever made it.
 *
 * One thread polls SQLite's data_version (a read of the WAL index in shared
 * memory, no I/O) every WATCH_POLL_MS on its own connection and, when any
 * other connection committed (an idbmountctl process, a FUSE worker, an
 * HTTP thread), calls every subscriber. The daemon runs exactly one: the
 * FUSE notifier (kernel cache invalidation) and the HTTP server's event
 * streams both subscribe, so the store is polled once however many parts
 * want to know.
 *
 * A callback runs on the watch thread with the subscriber list locked: it
 * must only note the news and wake its own thread (set a flag, signal a
 * condition variable), never call back into the watch or the store.
 */
#ifndef IDBMOUNT_WATCH_H
#define IDBMOUNT_WATCH_H

#define WATCH_POLL_MS 5

struct watch;

typedef void (*watch_fn)(void *ctx);

/* Starts the thread on the store in `datadir`. Returns 0 or -errno (a
 * message on stderr). */
int watch_start(const char *datadir, struct watch **out);

/* Adds / removes a subscriber. After watch_unsubscribe returns, `fn` is
 * not running and will not be called again with `ctx`. */
int watch_subscribe(struct watch *w, watch_fn fn, void *ctx);
void watch_unsubscribe(struct watch *w, watch_fn fn, void *ctx);

/* Makes the thread look now rather than at its next poll: for a thread of
 * this process that has just committed and waits for its change to show
 * (a push answers only once the mount shows it). NULL is fine. */
void watch_poke(struct watch *w);

/* Stops the thread (subscribers should have left). */
void watch_stop(struct watch *w);

#endif
