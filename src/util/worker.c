/* worker.c - see worker.h. */
#include "idbmount/util/worker.h"

#include "idbmount/store/store.h"

#include <stdio.h>

int worker_open(struct worker *w, const char *datadir, const char *who)
{
	char err[512];
	int rc = store_open(datadir, &w->st, err, sizeof(err));
	if (rc) {
		fprintf(stderr, "idbmount: %s: %s\n", who, err);
		return rc;
	}
	w->stop = false;
	pthread_mutex_init(&w->lock, NULL);
	pthread_cond_init(&w->wake, NULL);
	return 0;
}

int worker_start(struct worker *w, void *(*thread_main)(void *), void *arg)
{
	return -pthread_create(&w->thread, NULL, thread_main, arg);
}

void worker_wake(struct worker *w, bool *flag)
{
	pthread_mutex_lock(&w->lock);
	if (flag)
		*flag = true;
	pthread_cond_signal(&w->wake);
	pthread_mutex_unlock(&w->lock);
}

void worker_stop(struct worker *w)
{
	worker_wake(w, &w->stop);
	pthread_join(w->thread, NULL);
}

void worker_close(struct worker *w)
{
	store_close(w->st);
	w->st = NULL;
	pthread_mutex_destroy(&w->lock);
	pthread_cond_destroy(&w->wake);
}
