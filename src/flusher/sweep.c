/* sweep.c - removing what given-up attempts left.
 *
 * A sink with a `sweep` (webhdfs) removes what attempts it gave up on left
 * where consumers never look: at start, before the unfinished intents are
 * recovered, and every SWEEP_EVERY_MS, always between batches on the
 * runner's thread, keeping the staged copies of STAGED intents.
 */
#include "flusher_internal.h"

#include "idbmount/util/clock.h"

#include <stdio.h>
#include <stdlib.h>

/* How often a sink with a sweep looks for what given-up attempts left
 * (after a failed look, sooner). */
#define SWEEP_EVERY_MS (10 * 60 * 1000)
#define SWEEP_RETRY_MS (60 * 1000)

struct staged_names {
	char (*names)[STORE_SINK_LABEL_MAX];
	size_t n, cap;
	bool short_of_memory; /* the list is incomplete: nothing may be swept */
};

static int collect_staged(void *ctx, const struct store_sink_intent *in)
{
	struct staged_names *k = ctx;
	if (k->n == k->cap) {
		size_t cap = k->cap ? k->cap * 2 : 4;
		char(*grown)[STORE_SINK_LABEL_MAX] = realloc(k->names, cap * sizeof(*grown));
		if (!grown) {
			k->short_of_memory = true;
			return 1;
		}
		k->names = grown;
		k->cap = cap;
	}
	snprintf(k->names[k->n++], STORE_SINK_LABEL_MAX, "%s", in->name);
	return 0;
}

/* A failure is logged and counted like a retry; it does not hold up
 * deliveries. */
void sweep_leftovers(struct runner *r)
{
	if (!r->type->sweep || clock_mono_ms() < r->next_sweep_ms)
		return;
	struct staged_names k = {0};
	char msg[1024] = "";
	enum sink_result res = SINK_RETRY;
	if (store_sink_intents(r->st, r->cfg->name, STORE_INTENT_STAGED, collect_staged, &k) != 0) {
		snprintf(msg, sizeof(msg), "%s", store_last_error(r->st));
	} else {
		const char **keep = k.short_of_memory ? NULL : calloc(k.n ? k.n : 1, sizeof(*keep));
		if (keep) {
			for (size_t i = 0; i < k.n; i++)
				keep[i] = k.names[i];
			char owner[200];
			batch_owner(r, owner, sizeof(owner));
			res = r->type->sweep(r->ctx, owner, keep, k.n, msg, sizeof(msg));
			free(keep);
		} else {
			snprintf(msg, sizeof(msg), "out of memory");
		}
	}
	free(k.names);
	if (res == SINK_OK) {
		if (msg[0])
			runner_log(r, "%s", msg);
		r->next_sweep_ms = clock_mono_ms() + SWEEP_EVERY_MS;
		return;
	}
	store_sink_note_retry(r->st, r->cfg->name, msg);
	runner_log(r, "sweep: %s (tried again in %d s)", msg, SWEEP_RETRY_MS / 1000);
	r->next_sweep_ms = clock_mono_ms() + SWEEP_RETRY_MS;
}
