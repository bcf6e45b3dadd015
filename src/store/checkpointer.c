/* checkpointer.c - see checkpointer.h. */
#include "idbmount/store/checkpointer.h"

#include "idbmount/store/store.h"
#include "idbmount/util/worker.h"

#include <errno.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>

struct checkpointer {
	struct worker worker;
	/* The WAL length (pages) at which to make it start over. Written by
	 * this thread, read by committing ones. */
	_Atomic int restart_at;
};

/* The WAL starts over from its beginning only when a write begins with
 * every frame copied back and no reader in it. Pushes sent back to back
 * never leave such a moment (the next one begins before a checkpoint is
 * done), and it grew without end: 59 MB after 200,000 puts on one
 * connection, 140 MB on four, 457 MB after 48 pushes of 1,000 4 KB values.
 * Past STORE_WAL_LIMIT_PAGES this thread makes it start over, queued as a
 * writer: the pushes wait for it, about as long as it takes to copy one
 * push back, once per 64 MiB. A reader that holds the WAL longer than
 * RESTART_WAIT_MS (a backup) makes it give up; it tries again once the WAL
 * has grown by RESTART_RETRY_PAGES (16 MiB), so the pushes under a long
 * backup wait that little, that seldom.
 * A round can take longer than the pushes beside it: its checkpoint syncs
 * the database file, which on a busy disk took seconds while the WAL grew
 * to 150 MB. Once the WAL is HOLD_PAGES (16 MiB) past the length at which
 * it should have started over, new transactions wait for the round, as
 * they would with SQLite's own checkpoints in the commit. */
#define RESTART_WAIT_MS     20
#define RESTART_RETRY_PAGES 4096
#define HOLD_PAGES          4096

/* Called by SQLite's commit hook in whichever thread committed. */
static bool on_wal_long(void *ctx, int pages)
{
	struct checkpointer *c = ctx;
	worker_wake(&c->worker, NULL);
	return pages >= c->restart_at + HOLD_PAGES;
}

/* A round runs only when woken: the WAL has grown past the threshold. */
static void checkpoint_round(struct worker *w, bool woken, void *arg)
{
	(void)woken;
	struct checkpointer *c = arg;
	pthread_mutex_unlock(&w->lock);
	int pages = 0;
	if (store_checkpoint(w->st, &pages) != 0)
		fprintf(stderr, "%s: checkpoint: %s\n", program_invocation_short_name,
		        store_last_error(w->st));
	if (pages < STORE_WAL_LIMIT_PAGES) {
		c->restart_at = STORE_WAL_LIMIT_PAGES;
	} else if (pages >= c->restart_at) {
		int rc = store_wal_restart(w->st, RESTART_WAIT_MS);
		if (rc && rc != -EBUSY)
			fprintf(stderr, "%s: checkpoint: %s\n", program_invocation_short_name,
			        store_last_error(w->st));
		c->restart_at = rc ? pages + RESTART_RETRY_PAGES : STORE_WAL_LIMIT_PAGES;
	}
	store_wal_hold_release();
	pthread_mutex_lock(&w->lock);
}

int checkpointer_start(const char *datadir, struct checkpointer **out)
{
	*out = NULL;
	struct checkpointer *c = calloc(1, sizeof(*c));
	if (!c)
		return -ENOMEM;
	int rc = worker_open(&c->worker, datadir, "checkpointer");
	if (rc) {
		free(c);
		return rc;
	}
	c->restart_at = STORE_WAL_LIMIT_PAGES;
	rc = worker_start_rounds(&c->worker, 0, checkpoint_round, c);
	if (rc) {
		worker_close(&c->worker);
		free(c);
		return rc;
	}
	store_checkpoints_elsewhere(on_wal_long, c, CHECKPOINTER_PAGES);
	*out = c;
	return 0;
}

void checkpointer_stop(struct checkpointer *c)
{
	if (!c)
		return;
	store_checkpoints_elsewhere(NULL, NULL, 0);
	worker_finish(&c->worker);
	free(c);
}
