/* read_ahead.c - a sink's second thread, which reads the next batch while
 * the runner ships one.
 *
 * Reading and rendering a batch from SQLite costs about as much as writing
 * and fsyncing it, so while a batch is shipped, the reader (reading only,
 * through a connection of its own) reads the next one from the log; the
 * runner takes it as its open batch once the shipped one is done with.
 * Only reading overlaps: intents, sink calls and cursor moves stay on the
 * runner's thread, one batch at a time, in order, so the exactly-once
 * argument is unchanged (a batch read ahead is what the runner would have
 * read itself: the log after the intent's to_seq).
 */
#include "flusher_internal.h"

#include "idbmount/util/thread_name.h"

#include <assert.h>
#include <string.h>

static void *read_ahead_main(void *arg)
{
	struct runner *r = arg;
	struct read_ahead *a = &r->ahead;
	thread_name_set("read ", r->cfg->name);
	pthread_mutex_lock(&a->lock);
	for (;;) {
		while (!a->asked && !a->quit)
			pthread_cond_wait(&a->changed, &a->lock);
		if (a->quit)
			break;
		pthread_mutex_unlock(&a->lock);
		int rc = batch_read(r, a->st, &a->next, INT64_MAX, true);
		pthread_mutex_lock(&a->lock);
		a->rc = rc;
		a->asked = false;
		a->ready = true;
		pthread_cond_broadcast(&a->changed);
	}
	pthread_mutex_unlock(&a->lock);
	return NULL;
}

bool read_ahead_ask(struct runner *r, int64_t start)
{
	struct read_ahead *a = &r->ahead;
	if (!a->started)
		return false;
	batch_reset(&a->next, start, (size_t)r->cfg->max_bytes);
	pthread_mutex_lock(&a->lock);
	assert(!a->asked && !a->ready);
	a->asked = true;
	pthread_cond_broadcast(&a->changed);
	pthread_mutex_unlock(&a->lock);
	return true;
}

bool read_ahead_finish(struct runner *r, bool take)
{
	struct read_ahead *a = &r->ahead;
	pthread_mutex_lock(&a->lock);
	while (!a->ready)
		pthread_cond_wait(&a->changed, &a->lock);
	a->ready = false;
	int rc = a->rc;
	pthread_mutex_unlock(&a->lock);
	if (!take || rc != 0)
		return false;
	/* Swapped, not copied: the shipped batch's buffers are reused. */
	struct batch shipped = r->open;
	r->open = a->next;
	a->next = shipped;
	return true;
}

int read_ahead_start(struct runner *r)
{
	struct read_ahead *a = &r->ahead;
	char err[512];
	int rc = store_open(r->f->datadir, &a->st, err, sizeof(err));
	if (rc) {
		runner_log(r, "reader: %s", err);
		return rc;
	}
	batch_init(&a->next);
	pthread_mutex_init(&a->lock, NULL);
	pthread_cond_init(&a->changed, NULL);
	rc = -pthread_create(&a->thread, NULL, read_ahead_main, r);
	if (rc) {
		runner_log(r, "cannot start its reader: %s", strerror(-rc));
		pthread_cond_destroy(&a->changed);
		pthread_mutex_destroy(&a->lock);
		store_close(a->st);
		a->st = NULL;
		return rc;
	}
	a->started = true;
	return 0;
}

void read_ahead_stop(struct runner *r)
{
	struct read_ahead *a = &r->ahead;
	if (a->started) {
		pthread_mutex_lock(&a->lock);
		a->quit = true;
		pthread_cond_broadcast(&a->changed);
		pthread_mutex_unlock(&a->lock);
		pthread_join(a->thread, NULL);
		pthread_cond_destroy(&a->changed);
		pthread_mutex_destroy(&a->lock);
		a->started = false;
	}
	store_close(a->st);
	a->st = NULL;
	batch_free(&a->next);
}
