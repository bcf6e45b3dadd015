/* retry.h - the flusher's one retry policy (retry.c): after each attempt,
 * whether to stop, give up, leave the work for the next start, or wait
 * and try again, and how long. */
#ifndef IDBMOUNT_FLUSHER_RETRY_H
#define IDBMOUNT_FLUSHER_RETRY_H

#include "idbmount/sinks/sink.h"

#include <stdbool.h>
#include <stdint.h>

/* The failures in a row of one kind of work (a sink call, the store). */
struct retry {
	int64_t initial_ms; /* the wait after the first failure, about */
	int64_t max_ms;     /* the longest wait */
	unsigned failures;  /* in a row, since the last success */
	unsigned *rng;      /* rand_r state for the jitter (the runner's) */
};

enum retry_verdict {
	RETRY_DONE,    /* the attempt worked: the count of failures starts again */
	RETRY_GIVE_UP, /* refused for good (SINK_ERROR): no attempt can work */
	RETRY_LEAVE,   /* failed while the flusher stops: left for the next start */
	RETRY_WAIT,    /* failed: wait *wait_ms, then try again */
};

void retry_init(struct retry *r, int64_t initial_ms, int64_t max_ms, unsigned *rng);

/* Decides what follows an attempt that answered `result`. For RETRY_WAIT,
 * *wait_ms is the backoff: it doubles with each failure in a row from
 * initial_ms up to max_ms, with equal jitter (half fixed, half random, so
 * sinks that failed together do not retry in step); r->failures then
 * counts this failure. `stopping` says whether the flusher is stopping. */
enum retry_verdict retry_after(struct retry *r, enum sink_result result, bool stopping,
                               int64_t *wait_ms);

#endif
