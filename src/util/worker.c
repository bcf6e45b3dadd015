/* worker.c - see worker.h. */
#include "idbmount/util/worker.h"

#include "idbmount/store/store.h"
#include "idbmount/util/clock.h"
#include "idbmount/util/thread_name.h"

#include <errno.h> /* program_invocation_short_name */
#include <stdio.h>
#include <time.h>

int worker_open(struct worker *w, const char *datadir, const char *who)
{
	char err[512];
	int rc = store_open(datadir, &w->st, err, sizeof(err));
	if (rc) {
		fprintf(stderr, "%s: %s: %s\n", program_invocation_short_name, who, err);
		return rc;
	}
	snprintf(w->name, sizeof(w->name), "%s", who);
	w->stop = false;
	w->woken = false;
	pthread_mutex_init(&w->lock, NULL);
	pthread_cond_init(&w->wake, NULL);
	return 0;
}

static void *worker_rounds_main(void *arg)
{
	struct worker *w = arg;
	thread_name_set(w->name, NULL);
	pthread_mutex_lock(&w->lock);
	while (!w->stop) {
		if (!w->woken) {
			if (w->period_ms > 0) {
				struct timespec until =
				        clock_deadline(CLOCK_REALTIME, w->period_ms);
				pthread_cond_timedwait(&w->wake, &w->lock, &until);
			} else {
				pthread_cond_wait(&w->wake, &w->lock);
			}
			if (w->stop)
				break;
		}
		bool woken = w->woken;
		w->woken = false;
		/* A wait without a wake and without a period is spurious. */
		if (woken || w->period_ms > 0)
			w->round(w, woken, w->arg);
	}
	pthread_mutex_unlock(&w->lock);
	return NULL;
}

int worker_start_rounds(struct worker *w, int period_ms, worker_round_fn *round, void *arg)
{
	w->period_ms = period_ms;
	w->round = round;
	w->arg = arg;
	return -pthread_create(&w->thread, NULL, worker_rounds_main, w);
}

void worker_wake_locked(struct worker *w)
{
	w->woken = true;
	pthread_cond_signal(&w->wake);
}

void worker_wake(struct worker *w, bool *flag)
{
	pthread_mutex_lock(&w->lock);
	if (flag)
		*flag = true;
	worker_wake_locked(w);
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

void worker_finish(struct worker *w)
{
	worker_stop(w);
	worker_close(w);
}
