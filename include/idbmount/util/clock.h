/* clock.h - milliseconds, as every part that waits or stamps needs them:
 * one definition instead of one per file. */
#ifndef IDBMOUNT_CLOCK_H
#define IDBMOUNT_CLOCK_H

#include <stdint.h>
#include <time.h>

/* For timeouts and intervals: never jumps with the wall clock. */
static inline int64_t clock_mono_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* For stamps that leave the process (change times, file names, lag). */
static inline int64_t clock_wall_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* The moment `ms` from now on `clock`, as pthread_cond_timedwait and
 * pthread_timedjoin_np want it (on the clock their condition or call
 * measures with). */
static inline struct timespec clock_deadline(clockid_t clock, int64_t ms)
{
	struct timespec t;
	clock_gettime(clock, &t);
	t.tv_sec += ms / 1000;
	t.tv_nsec += (ms % 1000) * 1000000L;
	if (t.tv_nsec >= 1000000000L) {
		t.tv_sec++;
		t.tv_nsec -= 1000000000L;
	}
	return t;
}

#endif
