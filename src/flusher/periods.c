/* periods.c - done flags of closed partition periods.
 *
 * A batch goes into the partition of the UTC time at which it closed (the
 * time the intent was recorded, so a redo lands in the same place). A
 * period is the span of the template's finest variable (a minute for
 * ${MINUTE}). The store keeps, per sink, the start of the first period
 * without its flag (flags_from); once the clock is past that period's end,
 * and no batch of it is in flight (the runner ships one batch at a time,
 * and recovers unfinished intents before anything else), its flag is
 * written and flags_from moves on, period by period: with
 * flag_empty_periods (the default) every period gets its directory and
 * flag, batches or not, from the sink's first period on (the first start
 * with a done flag sets flags_from to the period then open, never the
 * epoch); without it, only periods where a batch landed. A batch whose
 * period is already flagged goes into the open period instead (intents.c,
 * late data).
 */
#include "flusher_internal.h"

#include "idbmount/util/clock.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

/* Where the done flags go on from: the store's flags_from, or for a sink
 * flagging for the first time the period open now. A data directory made
 * before flags_from existed may have an open partition waiting for its
 * flag: then its period (that of the last delivery, or the one before it
 * when the delivery came just after the period ended) comes first. */
int periods_load(struct runner *r, const struct store_sink *k)
{
	r->period = partition_period_of(r->cfg->partition);
	int rc = store_sink_flags_from(r->st, r->cfg->name, &r->flags_from_ms);
	if (rc != -ENOENT)
		return rc;
	int64_t from = partition_period_start(r->period, clock_wall_ms());
	if (k->open_partition[0] && k->last_delivery_ms > 0) {
		char partition[STORE_SINK_LABEL_MAX];
		int64_t last = partition_period_start(r->period, k->last_delivery_ms);
		partition_render(r->cfg->partition, last, partition, sizeof(partition));
		if (strcmp(partition, k->open_partition) != 0)
			last = partition_period_start(r->period, last - 1);
		from = last < from ? last : from;
	}
	r->flags_from_ms = from;
	rc = store_sink_set_flags_from(r->st, r->cfg->name, from);
	if (rc)
		runner_log(r, "%s", store_last_error(r->st));
	return rc;
}

void periods_close_finished(struct runner *r, int64_t upto_ms)
{
	if (!*r->cfg->done_flag)
		return;
	for (;;) {
		int64_t end = partition_period_end(r->period, r->flags_from_ms);
		if (end > upto_ms)
			return;
		char partition[STORE_SINK_LABEL_MAX];
		partition_render(r->cfg->partition, r->flags_from_ms, partition, sizeof(partition));
		bool landed = strcmp(partition, r->open_partition) == 0;
		if (r->cfg->flag_empty_periods || landed) {
			struct sink_call c = {.op = SINK_OP_CLOSE_PERIOD, .partition = partition};
			char msg[512];
			enum sink_result res = runner_call(r, &c, msg, sizeof(msg));
			if (res == SINK_RETRY)
				return;
			if (res == SINK_ERROR)
				runner_log(r, "done flag for %s: %s (not retried)", partition, msg);
		}
		if (landed && store_sink_set_open_partition(r->st, r->cfg->name, "") == 0)
			r->open_partition[0] = '\0';
		if (store_sink_set_flags_from(r->st, r->cfg->name, end) != 0) {
			runner_log(r, "cannot record the done flag of %s: %s", partition,
			           store_last_error(r->st));
			return;
		}
		r->flags_from_ms = end;
	}
}

bool periods_flagged(const struct runner *r, int64_t created_ms)
{
	return *r->cfg->done_flag &&
	       partition_period_end(r->period, created_ms) <= r->flags_from_ms;
}
