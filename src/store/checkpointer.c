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
};

/* Called by SQLite's commit hook in whichever thread committed. */
static void on_wal_long(void *ctx)
{
	struct checkpointer *c = ctx;
	worker_wake(&c->worker, NULL);
}

/* A round runs only when woken: the WAL has grown past the threshold. */
static void checkpoint_round(struct worker *w, bool woken, void *arg)
{
	(void)woken;
	(void)arg;
	pthread_mutex_unlock(&w->lock);
	if (store_checkpoint(w->st) != 0)
		fprintf(stderr, "idbmount: checkpoint: %s\n", store_last_error(w->st));
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
	rc = worker_start_rounds(&c->worker, 0, checkpoint_round, NULL);
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
