/* shown.c - the mark of how far the mount shows the store (see shown.h).
 *
 * A mutex, a condition on the monotonic clock, and the mark. The notifier
 * broadcasts on each advance; a waiter that wakes to a mark that moved but
 * is not yet its own restarts its idle deadline, as the polling wait of
 * store_daemon_wait_shown does, so a long catch-up that keeps moving is
 * waited for and a stuck one is not.
 */
#include "idbmount/util/shown.h"

#include "idbmount/util/clock.h"

#include <errno.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>

struct shown {
	pthread_mutex_t lock;
	pthread_cond_t moved; /* on CLOCK_MONOTONIC */
	bool serving;         /* under lock */
	int64_t seq;          /* under lock */
	int64_t tree_id;      /* under lock */
};

int shown_new(struct shown **out)
{
	struct shown *s = calloc(1, sizeof(*s));
	if (!s)
		return -ENOMEM;
	pthread_condattr_t attr;
	pthread_condattr_init(&attr);
	pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
	pthread_cond_init(&s->moved, &attr);
	pthread_condattr_destroy(&attr);
	pthread_mutex_init(&s->lock, NULL);
	*out = s;
	return 0;
}

void shown_free(struct shown *s)
{
	if (!s)
		return;
	pthread_cond_destroy(&s->moved);
	pthread_mutex_destroy(&s->lock);
	free(s);
}

void shown_serve(struct shown *s, int64_t seq, int64_t tree_id)
{
	if (!s)
		return;
	pthread_mutex_lock(&s->lock);
	s->serving = true;
	s->seq = seq;
	s->tree_id = tree_id;
	pthread_cond_broadcast(&s->moved);
	pthread_mutex_unlock(&s->lock);
}

void shown_advance(struct shown *s, int64_t seq, int64_t tree_id)
{
	if (!s)
		return;
	pthread_mutex_lock(&s->lock);
	if (s->serving) {
		s->seq = seq;
		s->tree_id = tree_id;
		pthread_cond_broadcast(&s->moved);
	}
	pthread_mutex_unlock(&s->lock);
}

void shown_halt(struct shown *s)
{
	if (!s)
		return;
	pthread_mutex_lock(&s->lock);
	s->serving = false;
	pthread_cond_broadcast(&s->moved);
	pthread_mutex_unlock(&s->lock);
}

int shown_wait(struct shown *s, int64_t seq, int64_t tree_id, int idle_ms)
{
	if (!s)
		return 0;
	int rc = 0;
	pthread_mutex_lock(&s->lock);
	struct timespec until = clock_deadline(CLOCK_MONOTONIC, idle_ms);
	while (s->serving && (s->seq < seq || s->tree_id < tree_id)) {
		int64_t seen_seq = s->seq, seen_tree = s->tree_id;
		int waited = pthread_cond_timedwait(&s->moved, &s->lock, &until);
		if (s->seq != seen_seq || s->tree_id != seen_tree) {
			until = clock_deadline(CLOCK_MONOTONIC, idle_ms);
		} else if (waited == ETIMEDOUT && s->serving) {
			rc = -ETIMEDOUT;
			break;
		}
	}
	pthread_mutex_unlock(&s->lock);
	return rc;
}
