/* fs_inodes.c - what one mount's kernel holds: its lookup count per file
 * inode, and the directories it asked about by name.
 *
 * Row ids are dense and never reused, so the counts live in an array
 * indexed by row id, split into pages allocated on first use: 1,000,000
 * records cost 4 MB, with no hashing and no per-entry allocation. One
 * mutex per mount guards it; each operation is a few instructions.
 *
 * The same mutex orders the notifier's questions (inodes_maybe_held,
 * inodes_names_maybe_cached) after the marks handlers make before they
 * read the store.
 */
#include "fs_internal.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#define PAGE_BITS         16
#define PAGE_SIZE_ENTRIES (1u << PAGE_BITS)

void inodes_init(struct inodes *in)
{
	memset(in, 0, sizeof(*in));
	pthread_mutex_init(&in->lock, NULL);
}

/* Returns the counter of row `id`, making its page when `create`. */
static uint32_t *counter(struct inodes *in, int64_t id, int create)
{
	size_t page = (size_t)id >> PAGE_BITS;
	if (page >= in->page_count) {
		if (!create)
			return NULL;
		size_t n = in->page_count ? in->page_count : 16;
		while (n <= page)
			n *= 2;
		uint32_t **grown = realloc(in->pages, n * sizeof(*in->pages));
		if (!grown)
			return NULL;
		memset(grown + in->page_count, 0, (n - in->page_count) * sizeof(*in->pages));
		in->pages = grown;
		in->page_count = n;
	}
	if (!in->pages[page]) {
		if (!create)
			return NULL;
		in->pages[page] = calloc(PAGE_SIZE_ENTRIES, sizeof(uint32_t));
		if (!in->pages[page])
			return NULL;
	}
	return &in->pages[page][(size_t)id & (PAGE_SIZE_ENTRIES - 1)];
}

void inodes_ref(struct inodes *in, uint64_t ino)
{
	if (store_ino_kind(ino) != STORE_FILE)
		return;
	pthread_mutex_lock(&in->lock);
	uint32_t *c = counter(in, store_ino_id(ino), 1);
	if (c)
		(*c)++;
	pthread_mutex_unlock(&in->lock);
}

uint64_t inodes_unref(struct inodes *in, uint64_t ino, uint64_t n)
{
	if (store_ino_kind(ino) != STORE_FILE)
		return 1;
	pthread_mutex_lock(&in->lock);
	uint32_t *c = counter(in, store_ino_id(ino), 0);
	uint64_t left = 0;
	if (c) {
		*c = *c > n ? *c - (uint32_t)n : 0;
		left = *c;
	}
	pthread_mutex_unlock(&in->lock);
	return left;
}

uint64_t inodes_count(struct inodes *in, uint64_t ino)
{
	if (store_ino_kind(ino) != STORE_FILE)
		return 1;
	pthread_mutex_lock(&in->lock);
	uint32_t *c = counter(in, store_ino_id(ino), 0);
	uint64_t v = c ? *c : 0;
	pthread_mutex_unlock(&in->lock);
	return v;
}

void inodes_destroy(struct inodes *in)
{
	for (size_t i = 0; i < in->page_count; i++)
		free(in->pages[i]);
	free(in->pages);
	pthread_mutex_destroy(&in->lock);
	memset(in, 0, sizeof(*in));
}

/* ---- what the kernel may hold stale ------------------------------------- */

void inodes_listing_begin(struct inodes *in)
{
	pthread_mutex_lock(&in->lock);
	in->listings++;
	pthread_mutex_unlock(&in->lock);
}

void inodes_listing_end(struct inodes *in)
{
	pthread_mutex_lock(&in->lock);
	in->listings--;
	pthread_mutex_unlock(&in->lock);
}

bool inodes_maybe_held(struct inodes *in, uint64_t ino)
{
	if (store_ino_kind(ino) != STORE_FILE)
		return true;
	pthread_mutex_lock(&in->lock);
	uint32_t *c = counter(in, store_ino_id(ino), 0);
	bool held = in->listings > 0 || (c && *c > 0);
	pthread_mutex_unlock(&in->lock);
	return held;
}

/* Whether `dir` was asked about by name (in->lock held). */
static bool dir_asked(struct inodes *in, uint64_t dir)
{
	bool asked = in->asked_overflow;
	for (size_t i = 0; i < in->asked_len && !asked; i++)
		asked = in->asked_dirs[i] == dir;
	return asked;
}

void inodes_names_asked(struct inodes *in, uint64_t dir)
{
	pthread_mutex_lock(&in->lock);
	if (!dir_asked(in, dir)) {
		if (in->asked_len < INODES_ASKED_DIRS_MAX)
			in->asked_dirs[in->asked_len++] = dir;
		else
			in->asked_overflow = true;
	}
	pthread_mutex_unlock(&in->lock);
}

bool inodes_names_maybe_cached(struct inodes *in, uint64_t dir)
{
	pthread_mutex_lock(&in->lock);
	bool asked = dir_asked(in, dir);
	pthread_mutex_unlock(&in->lock);
	return asked;
}
