/* retry.c - the flusher's one retry policy (retry.h): every sink call and
 * every failure of the store goes through retry_after, so there is one
 * place that says what a failure leads to and how long the wait is. */
#include "retry.h"

#include <stdlib.h>

void retry_init(struct retry *r, int64_t initial_ms, int64_t max_ms, unsigned *rng)
{
	r->initial_ms = initial_ms;
	r->max_ms = max_ms;
	r->failures = 0;
	r->rng = rng;
}

/* The wait after failure number `attempt` + 1 in a row: the doubled
 * initial wait, capped, of which half is fixed and half random. */
static int64_t backoff_ms(const struct retry *r, unsigned attempt)
{
	int64_t d = r->initial_ms;
	for (unsigned i = 0; i < attempt && d < r->max_ms; i++)
		d *= 2;
	if (d > r->max_ms)
		d = r->max_ms;
	return d / 2 + (int64_t)((unsigned)rand_r(r->rng) % (unsigned)(d / 2 + 1));
}

enum retry_verdict retry_after(struct retry *r, enum sink_result result, bool stopping,
                               int64_t *wait_ms)
{
	*wait_ms = 0;
	switch (result) {
	case SINK_OK:
		r->failures = 0;
		return RETRY_DONE;
	case SINK_ERROR:
		return RETRY_GIVE_UP;
	case SINK_RETRY:
		break;
	}
	if (stopping)
		return RETRY_LEAVE;
	*wait_ms = backoff_ms(r, r->failures++);
	return RETRY_WAIT;
}
