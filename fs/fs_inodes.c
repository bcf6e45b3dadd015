/* fs_inodes.c - the kernel's lookup count per file inode.
 *
 * Row ids are dense and never reused, so the counts live in an array
 * indexed by row id, split into pages allocated on first use: 1,000,000
 * records cost 4 MB, with no hashing and no per-entry allocation. One
 * mutex guards it; each operation is a few instructions.
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

static pthread_mutex_t inodes_lock = PTHREAD_MUTEX_INITIALIZER;
static uint32_t **pages;
static size_t page_count;

/* Directories asked about by name. A mount has few stores, so a short
 * list searched in order; past its size every directory counts. */
#define ASKED_DIRS_MAX 256

static uint64_t asked_dirs[ASKED_DIRS_MAX];
static size_t asked_dirs_len;
static bool asked_dirs_overflow;
static unsigned listings; /* readdirplus requests under way */

/* Returns the counter of row `id`, making its page when `create`. */
static uint32_t *counter(int64_t id, int create)
{
	size_t page = (size_t)id >> PAGE_BITS;
	if (page >= page_count) {
		if (!create)
			return NULL;
		size_t n = page_count ? page_count : 16;
		while (n <= page)
			n *= 2;
		uint32_t **grown = realloc(pages, n * sizeof(*pages));
		if (!grown)
			return NULL;
		memset(grown + page_count, 0, (n - page_count) * sizeof(*pages));
		pages = grown;
		page_count = n;
	}
	if (!pages[page]) {
		if (!create)
			return NULL;
		pages[page] = calloc(PAGE_SIZE_ENTRIES, sizeof(uint32_t));
		if (!pages[page])
			return NULL;
	}
	return &pages[page][(size_t)id & (PAGE_SIZE_ENTRIES - 1)];
}

void inodes_ref(uint64_t ino)
{
	if (store_ino_kind(ino) != STORE_FILE)
		return;
	pthread_mutex_lock(&inodes_lock);
	uint32_t *c = counter(store_ino_id(ino), 1);
	if (c)
		(*c)++;
	pthread_mutex_unlock(&inodes_lock);
}

uint64_t inodes_unref(uint64_t ino, uint64_t n)
{
	if (store_ino_kind(ino) != STORE_FILE)
		return 1;
	pthread_mutex_lock(&inodes_lock);
	uint32_t *c = counter(store_ino_id(ino), 0);
	uint64_t left = 0;
	if (c) {
		*c = *c > n ? *c - (uint32_t)n : 0;
		left = *c;
	}
	pthread_mutex_unlock(&inodes_lock);
	return left;
}

uint64_t inodes_count(uint64_t ino)
{
	if (store_ino_kind(ino) != STORE_FILE)
		return 1;
	pthread_mutex_lock(&inodes_lock);
	uint32_t *c = counter(store_ino_id(ino), 0);
	uint64_t v = c ? *c : 0;
	pthread_mutex_unlock(&inodes_lock);
	return v;
}

void inodes_free_all(void)
{
	pthread_mutex_lock(&inodes_lock);
	for (size_t i = 0; i < page_count; i++)
		free(pages[i]);
	free(pages);
	pages = NULL;
	page_count = 0;
	asked_dirs_len = 0;
	asked_dirs_overflow = false;
	pthread_mutex_unlock(&inodes_lock);
}

/* ---- what the kernel may hold stale ------------------------------------- */

void inodes_listing_begin(void)
{
	pthread_mutex_lock(&inodes_lock);
	listings++;
	pthread_mutex_unlock(&inodes_lock);
}

void inodes_listing_end(void)
{
	pthread_mutex_lock(&inodes_lock);
	listings--;
	pthread_mutex_unlock(&inodes_lock);
}

bool inodes_maybe_held(uint64_t ino)
{
	if (store_ino_kind(ino) != STORE_FILE)
		return true;
	pthread_mutex_lock(&inodes_lock);
	uint32_t *c = counter(store_ino_id(ino), 0);
	bool held = listings > 0 || (c && *c > 0);
	pthread_mutex_unlock(&inodes_lock);
	return held;
}

/* Whether `dir` was asked about by name (inodes_lock held). */
static bool dir_asked(uint64_t dir)
{
	bool asked = asked_dirs_overflow;
	for (size_t i = 0; i < asked_dirs_len && !asked; i++)
		asked = asked_dirs[i] == dir;
	return asked;
}

void inodes_names_asked(uint64_t dir)
{
	pthread_mutex_lock(&inodes_lock);
	if (!dir_asked(dir)) {
		if (asked_dirs_len < ASKED_DIRS_MAX)
			asked_dirs[asked_dirs_len++] = dir;
		else
			asked_dirs_overflow = true;
	}
	pthread_mutex_unlock(&inodes_lock);
}

bool inodes_names_maybe_cached(uint64_t dir)
{
	pthread_mutex_lock(&inodes_lock);
	bool asked = dir_asked(dir);
	pthread_mutex_unlock(&inodes_lock);
	return asked;
}
