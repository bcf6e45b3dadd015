/* checkpointer.c - see checkpointer.h. */
#include "idbmount/checkpointer.h"

#include "idbmount/store.h"

#include <errno.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>

struct checkpointer {
	struct store *st;
	pthread_t thread;
	pthread_mutex_t lock;
	pthread_cond_t wake;
	bool due;
	bool stop;
};

/* Called by SQLite's commit hook in whichever thread committed. */
static void on_wal_long(void *ctx)
{
	struct checkpointer *c = ctx;
	pthread_mutex_lock(&c->lock);
	c->due = true;
	pthread_cond_signal(&c->wake);
	pthread_mutex_unlock(&c->lock);
}

static void *checkpointer_main(void *arg)
{
	struct checkpointer *c = arg;
	pthread_mutex_lock(&c->lock);
	while (!c->stop) {
		if (!c->due) {
			pthread_cond_wait(&c->wake, &c->lock);
			continue;
		}
		c->due = false;
		pthread_mutex_unlock(&c->lock);
		if (store_checkpoint(c->st) != 0)
			fprintf(stderr, "idbmount: checkpoint: %s\n", store_last_error(c->st));
		pthread_mutex_lock(&c->lock);
	}
	pthread_mutex_unlock(&c->lock);
	return NULL;
}

int checkpointer_start(const char *datadir, struct checkpointer **out)
{
	*out = NULL;
	struct checkpointer *c = calloc(1, sizeof(*c));
	if (!c)
		return -ENOMEM;
	char err[512];
	int rc = store_open(datadir, &c->st, err, sizeof(err));
	if (rc) {
		fprintf(stderr, "idbmount: checkpointer: %s\n", err);
		free(c);
		return rc;
	}
	pthread_mutex_init(&c->lock, NULL);
	pthread_cond_init(&c->wake, NULL);
	rc = -pthread_create(&c->thread, NULL, checkpointer_main, c);
	if (rc) {
		store_close(c->st);
		pthread_mutex_destroy(&c->lock);
		pthread_cond_destroy(&c->wake);
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
	pthread_mutex_lock(&c->lock);
	c->stop = true;
	pthread_cond_signal(&c->wake);
	pthread_mutex_unlock(&c->lock);
	pthread_join(c->thread, NULL);
	store_close(c->st);
	pthread_mutex_destroy(&c->lock);
	pthread_cond_destroy(&c->wake);
	free(c);
}
