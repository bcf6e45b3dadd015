/* store_push_ahead.c - a push's mutations parsed, and their puts
 * prepared, on the thread it arrived on while the writer's thread writes
 * it (store_push.c).
 *
 * Each mutation has a slot. push_ahead takes slots from the front, the
 * writer takes the one it needs next, or, when push_ahead is on it, fills
 * one from the back rather than wait: parsing is the larger half of the
 * work, so on two CPUs it overlaps the SQL. A slot is taken by one thread
 * only (a compare-and-swap on its state).
 */
#include "idbmount/store/store_sync.h"

#include "store_internal.h"
#include "store_sync_internal.h"

#include "idbmount/codec/json_text.h"

#include <stdlib.h>

static void slot_clear(struct slot *sl)
{
	mutation_read_free(&sl->read);
	if (sl->prepped)
		store_put_prep_free(&sl->prep);
	sl->prepped = false;
}

/* The key path of the store a valid put with a key goes to, when it is
 * resolved already; else NULL (push_ahead cannot resolve one: that takes
 * SQL). The text lives until the push ends. */
static const char *known_keypath(struct push *p, const struct mutation_read *r)
{
	if (r->malformed || r->wrong || !r->mu.put || !r->mu.key || json_is_null(r->mu.key))
		return NULL;
	pthread_mutex_lock(&p->targets_lock);
	const struct target *t = push_target_find(p, r->mu.db, r->mu.store);
	const char *keypath = t ? t->keypath : NULL;
	pthread_mutex_unlock(&p->targets_lock);
	return keypath;
}

/* Reads mutation `i` and, for a put with a key into a store whose key path
 * is known, prepares the write (key encoding, the value's file text and
 * compact form): from the value's text when json_text_pretty_text is sure
 * of it, else from the parsed value. Anything wrong is left for push_one
 * to find and report in order. */
static void fill_slot(struct push *p, size_t i)
{
	struct slot *sl = &p->slots[i];
	struct mutation_read *r = &sl->read;
	mutation_read(p->texts[i], r);
	const char *keypath = known_keypath(p, r);
	if (keypath && r->value_text.text) {
		if (store_put_prepare_text(p->max_record, keypath, r->mu.key, r->value_text,
		                           &sl->prep) == 0) {
			sl->prepped = true;
			return;
		}
		store_put_prep_free(&sl->prep);
	}
	if (r->value_text.text) {
		r->value_parsed = json_text_parse(r->value_text.text, r->value_text.len, NULL, 0);
		if (!r->value_parsed) {
			mutation_read_whole(p->texts[i], r);
			keypath = known_keypath(p, r);
		}
	}
	if (keypath && r->value_parsed) {
		store_put_prepare(p->max_record, keypath, r->mu.key, r->value_parsed, &sl->prep);
		sl->prepped = true;
	}
}

/* Fills slot `i` if no thread has taken it yet, and says it is ready to
 * a writer that may sleep on it. Returns whether this thread filled it. */
static bool fill_if_free(struct push *p, size_t i)
{
	struct slot *sl = &p->slots[i];
	int free_state = SLOT_FREE;
	if (!atomic_compare_exchange_strong(&sl->state, &free_state, SLOT_TAKEN))
		return false;
	fill_slot(p, i);
	pthread_mutex_lock(&p->ready_lock);
	atomic_store(&sl->state, SLOT_READY);
	pthread_cond_signal(&p->ready);
	pthread_mutex_unlock(&p->ready_lock);
	return true;
}

/* The thread the push arrived on, while the writer's thread writes it:
 * fills slots ahead of the writer, then, once the writer is done with
 * them, frees them. Freeing a push's thousand parsed mutations took the
 * writer's thread 5-6% of its time; here it is off the path every push
 * waits on, while the writer commits. */
void push_ahead(struct push *p)
{
	while (!atomic_load(&p->stop)) {
		size_t i = atomic_fetch_add(&p->next, 1);
		if (i >= p->count)
			break;
		fill_if_free(p, i);
	}
	pthread_mutex_lock(&p->ready_lock);
	p->ahead_parked = true;
	pthread_cond_broadcast(&p->handoff);
	while (p->writer == WRITER_BUSY)
		pthread_cond_wait(&p->handoff, &p->ready_lock);
	bool free_here = p->writer == WRITER_DONE;
	pthread_mutex_unlock(&p->ready_lock);
	if (free_here)
		push_slots_free(p);
}

/* Stops push_ahead filling and waits until it has (it may be in the middle
 * of a slot), then says what the writer does with the slots: after this,
 * push_ahead touches them only to free them after WRITER_DONE. */
static void ahead_stop(struct push *p, int writer)
{
	atomic_store(&p->stop, true);
	pthread_mutex_lock(&p->ready_lock);
	while (!p->ahead_parked)
		pthread_cond_wait(&p->handoff, &p->ready_lock);
	p->writer = writer;
	pthread_cond_broadcast(&p->handoff);
	pthread_mutex_unlock(&p->ready_lock);
}

void push_ahead_finish(struct push *p)
{
	ahead_stop(p, WRITER_DONE);
}

void push_ahead_abandon(struct push *p)
{
	ahead_stop(p, WRITER_REFILLS);
}

/* Slot `i`, filled: by this thread if push_ahead has not taken it yet. */
struct slot *push_take_slot(struct push *p, size_t i)
{
	struct slot *sl = &p->slots[i];
	fill_if_free(p, i);
	while (atomic_load(&sl->state) != SLOT_READY) {
		/* push_ahead is on it: rather than wait, fill one from the far
		 * end (parsing is the larger half of the work). */
		bool filled = false;
		while (!filled && p->back > i + 1)
			filled = fill_if_free(p, --p->back);
		if (!filled) {
			/* Nothing left to fill: sleep until push_ahead has done
			 * a slot, rather than spin (on a busy machine it may be
			 * waiting for a CPU this thread would be burning). */
			pthread_mutex_lock(&p->ready_lock);
			while (atomic_load(&sl->state) != SLOT_READY)
				pthread_cond_wait(&p->ready, &p->ready_lock);
			pthread_mutex_unlock(&p->ready_lock);
		}
	}
	return sl;
}

void push_slots_reset(struct push *p)
{
	for (size_t i = 0; i < p->count; i++) {
		slot_clear(&p->slots[i]);
		atomic_store(&p->slots[i].state, SLOT_FREE);
	}
	p->back = p->count;
}

void push_slots_free(struct push *p)
{
	for (size_t i = 0; p->slots && i < p->count; i++)
		slot_clear(&p->slots[i]);
	free(p->slots);
	p->slots = NULL;
}
