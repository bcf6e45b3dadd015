/* watch.c - the one poller of the store's data_version (see watch.h).
 *
 * Why polling: SQLite has no cross-process commit notification, and
 * idbmountctl is another process. data_version is the cheapest probe there
 * is; at 5 ms it costs nothing measurable and keeps a change made anywhere
 * visible in the mount and on event streams well within 100 ms.
 */
#include "idbmount/store/watch.h"

#include "idbmount/store/store.h"
#include "idbmount/util/worker.h"

#include <errno.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>

struct subscriber {
	watch_fn fn;
	void *ctx;
};

struct watch {
	struct worker worker; /* its lock guards the subscribers */
	struct subscriber *subs;
	size_t nsubs, cap;
};

/* Every WATCH_POLL_MS, or sooner when poked. */
static void watch_round(struct worker *t, bool woken, void *arg)
{
	struct watch *w = arg;
	(void)woken;
	/* The store is this thread's alone; the lock only guards the
	 * subscriber list, so probing under it is harmless. */
	if (!store_changed_elsewhere(t->st))
		return;
	for (size_t i = 0; i < w->nsubs; i++)
		w->subs[i].fn(w->subs[i].ctx);
}

int watch_start(const char *datadir, struct watch **out)
{
	*out = NULL;
	struct watch *w = calloc(1, sizeof(*w));
	if (!w)
		return -ENOMEM;
	int rc = worker_open(&w->worker, datadir, "watch");
	if (rc) {
		free(w);
		return rc;
	}
	store_changed_elsewhere(w->worker.st);
	rc = worker_start_rounds(&w->worker, WATCH_POLL_MS, watch_round, w);
	if (rc) {
		worker_close(&w->worker);
		free(w);
		return rc;
	}
	*out = w;
	return 0;
}

int watch_subscribe(struct watch *w, watch_fn fn, void *ctx)
{
	pthread_mutex_lock(&w->worker.lock);
	int rc = 0;
	if (w->nsubs == w->cap) {
		size_t cap = w->cap ? w->cap * 2 : 4;
		struct subscriber *grown = realloc(w->subs, cap * sizeof(*grown));
		if (grown) {
			w->subs = grown;
			w->cap = cap;
		} else {
			rc = -ENOMEM;
		}
	}
	if (!rc)
		w->subs[w->nsubs++] = (struct subscriber){fn, ctx};
	pthread_mutex_unlock(&w->worker.lock);
	return rc;
}

void watch_unsubscribe(struct watch *w, watch_fn fn, void *ctx)
{
	pthread_mutex_lock(&w->worker.lock);
	for (size_t i = 0; i < w->nsubs; i++) {
		if (w->subs[i].fn == fn && w->subs[i].ctx == ctx) {
			w->subs[i] = w->subs[--w->nsubs];
			break;
		}
	}
	pthread_mutex_unlock(&w->worker.lock);
}

void watch_poke(struct watch *w)
{
	if (w)
		worker_wake(&w->worker, NULL);
}

void watch_stop(struct watch *w)
{
	if (!w)
		return;
	worker_finish(&w->worker);
	free(w->subs);
	free(w);
}
