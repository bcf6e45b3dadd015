/* checkpointer.c - see checkpointer.h. */
#include "idbmount/store/checkpointer.h"

#include "idbmount/store/store.h"
#include "idbmount/util/worker.h"

#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>

struct checkpointer {
	struct worker worker;
	bool due; /* under worker.lock */
};

/* Called by SQLite's commit hook in whichever thread committed. */
static void on_wal_long(void *ctx)
{
	struct checkpointer *c = ctx;
	worker_wake(&c->worker, &c->due);
}

static void *checkpointer_main(void *arg)
{
	struct checkpointer *c = arg;
	struct worker *w = &c->worker;
	pthread_mutex_lock(&w->lock);
	while (!w->stop) {
		if (!c->due) {
			pthread_cond_wait(&w->wake, &w->lock);
			continue;
		}
		c->due = false;
		pthread_mutex_unlock(&w->lock);
		if (store_checkpoint(w->st) != 0)
			fprintf(stderr, "idbmount: checkpoint: %s\n", store_last_error(w->st));
		pthread_mutex_lock(&w->lock);
	}
	pthread_mutex_unlock(&w->lock);
	return NULL;
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
	rc = worker_start(&c->worker, checkpointer_main, c);
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
	worker_stop(&c->worker);
	worker_close(&c->worker);
	free(c);
}
