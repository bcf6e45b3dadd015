/* store_push_ahead.c - a push's mutations parsed, and their puts
 * prepared, on a second thread while the first writes (store_push.c).
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
#include "idbmount/util/thread_name.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

static void slot_clear(struct slot *sl)
{
	json_decref(sl->m);
	sl->m = NULL;
	json_decref(sl->value);
	sl->value = NULL;
	if (sl->prepped)
		store_put_prep_free(&sl->prep);
	sl->prepped = false;
}

/* The key path of a target already resolved, or NULL: for push_ahead,
 * which cannot resolve one (that takes SQL). The text lives until the
 * push ends. */
static const char *resolved_keypath(struct push *p, const char *db, const char *store)
{
	const char *keypath = NULL;
	pthread_mutex_lock(&p->targets_lock);
	for (size_t i = 0; i < p->ntargets && !keypath; i++)
		if (strcmp(p->targets[i].db, db) == 0 && strcmp(p->targets[i].store, store) == 0)
			keypath = p->targets[i].keypath;
	pthread_mutex_unlock(&p->targets_lock);
	return keypath;
}

int store_sync_mutation_parse(struct json_span t, json_t **m, struct json_span *value)
{
	struct json_member *members = NULL;
	size_t n = 0;
	*m = NULL;
	*value = (struct json_span){NULL, 0};
	if (json_text_members(t.text, t.len, &members, &n) != 0)
		return -EINVAL;
	json_t *obj = json_object();
	int rc = obj ? 0 : -ENOMEM;
	for (size_t k = 0; k < n && !rc; k++) {
		/* A name written plainly is its own text (jansson checks its
		 * UTF-8 when it is set); others are parsed. */
		struct json_span lit = members[k].name;
		const char *s = lit.text + 1;
		size_t len = lit.len - 2;
		bool plain = json_text_plain_string(lit.text, lit.len);
		json_t *name = plain ? NULL : json_text_parse(lit.text, lit.len, NULL, 0);
		if (!plain) {
			s = json_string_value(name);
			len = json_string_length(name);
		}
		json_t *v = NULL;
		if (!plain && (!s || strlen(s) != len)) {
			/* a name that does not parse, or holds U+0000, which
			 * jansson refuses in a member name */
			rc = -EINVAL;
		} else if (len == 5 && memcmp(s, "value", 5) == 0) {
			/* The last one counts, as in jansson; an earlier one
			 * must still parse. */
			if (value->text && !(v = json_text_parse(value->text, value->len, NULL, 0)))
				rc = -EINVAL;
			json_decref(v);
			*value = members[k].value;
		} else {
			v = json_text_parse(members[k].value.text, members[k].value.len, NULL, 0);
			rc = v && json_object_setn_new(obj, s, len, v) == 0 ? 0 : -EINVAL;
		}
		json_decref(name);
	}
	free(members);
	if (rc) {
		json_decref(obj);
		*value = (struct json_span){NULL, 0};
		return rc;
	}
	*m = obj;
	return 0;
}

/* Parses mutation `i` whole, as jansson does: for a text that does not
 * split into members that parse, so that the error says where. */
static void parse_whole(struct push *p, size_t i)
{
	struct slot *sl = &p->slots[i];
	json_decref(sl->m);
	json_decref(sl->value);
	sl->m = json_text_parse(p->texts[i].text, p->texts[i].len, sl->why, sizeof(sl->why));
	sl->value = json_incref(json_object_get(sl->m, "value"));
	sl->has_value = sl->value != NULL;
}

/* Parses mutation `i` and, for a put with a key into a store whose key
 * path is known, prepares the write (key encoding, the value's file text
 * and compact form): from the value's text when json_text_pretty_text is
 * sure of it, else from the parsed value. Anything wrong is left for
 * push_one to find and report in order. */
static void fill_slot(struct push *p, size_t i)
{
	struct slot *sl = &p->slots[i];
	struct json_span value_text;
	if (store_sync_mutation_parse(p->texts[i], &sl->m, &value_text) != 0) {
		parse_whole(p, i);
	} else {
		sl->has_value = value_text.text != NULL;
	}
	if (!json_is_object(sl->m))
		return;
	const char *op = json_string_value(json_object_get(sl->m, "op"));
	const char *db = json_string_value(json_object_get(sl->m, "db"));
	const char *store = json_string_value(json_object_get(sl->m, "store"));
	const json_t *key = json_object_get(sl->m, "key");
	bool put_with_key = op && strcmp(op, "put") == 0 && db && store && key &&
	                    !json_is_null(key) && sl->has_value;
	const char *keypath = put_with_key ? resolved_keypath(p, db, store) : NULL;
	if (keypath && value_text.text) {
		if (store_put_prepare_text(p->max_record, keypath, key, value_text, &sl->prep) ==
		    0) {
			sl->prepped = true;
			return;
		}
		store_put_prep_free(&sl->prep);
	}
	if (value_text.text) {
		sl->value = json_text_parse(value_text.text, value_text.len, NULL, 0);
		if (!sl->value) {
			parse_whole(p, i);
			if (!json_is_object(sl->m))
				return;
		}
	}
	if (keypath) {
		store_put_prepare(p->max_record, keypath, key, sl->value, &sl->prep);
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

/* The second thread: fills slots ahead of the writer, then, once the
 * writer is done with them, frees them. Freeing a push's thousand parsed
 * mutations took the writer's thread 5-6% of its time (twice that with
 * four connections, their slots parsed long before and cold); here it is
 * off the path every push waits on, and in this thread's own malloc arena,
 * where no other thread allocates by then. */
void *push_ahead(void *arg)
{
	struct push *p = arg;
	thread_name_set("push-parse", NULL);
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
	push_release(p);
	return NULL;
}

/* Stops push_ahead filling and waits until it has (it may be in the middle
 * of a slot), then says what the writer does with the slots. */
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

void push_ahead_finish(struct push *p, pthread_t ahead)
{
	ahead_stop(p, WRITER_DONE);
	pthread_detach(ahead);
}

void push_ahead_abandon(struct push *p, pthread_t ahead)
{
	ahead_stop(p, WRITER_REFILLS);
	pthread_join(ahead, NULL);
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
