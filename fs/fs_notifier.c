/* fs_notifier.c - keeps the kernel's caches true to the store.
 *
 * The mount runs with long entry and attribute timeouts, cached negative
 * lookups, kept page caches and cached listings (cache=always). That is only
 * correct if the kernel hears of every change made elsewhere: by
 * idbmountctl (another process) or by the HTTP endpoint (another thread).
 * This thread is the one place that tells it.
 *
 * The daemon's one watch thread (src/store/watch.c) polls SQLite's data_version
 * and wakes this thread when any connection committed; it then reads the
 * change log and the tree log past what it has seen. For each change not made through the
 * mount it drops the name's dentry (also a cached negative one), the
 * record's pages and attributes, and the directory's cached listing. It
 * then records how far it got: in the store, which is how idbmountctl knows
 * when its write is visible in the mount, and in the daemon's `shown` mark
 * (shown.h), on which the HTTP threads wait without reading the store.
 *
 * It also serves FLUSH handlers that must drop pages the kernel cached from
 * a write that did not commit as written (notifier_inval_inode_wait), or
 * the name of a new file whose first commit was refused
 * (notifier_forget_name_wait), and deletes orphan rows the kernel never
 * held, every GC_MS.
 */
#include "fs_internal.h"

#include "idbmount/store/watch.h"
#include "idbmount/util/clock.h"
#include "idbmount/util/shown.h"
#include "idbmount/util/worker.h"

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define GC_MS            5000
#define CHANGES_PER_READ 1000

/* An inode to drop, or (name set) a name in directory `ino`. */
struct ask {
	uint64_t ino;
	char *name;
};

struct notifier {
	struct fs *fs;
	struct worker worker;
	struct watch *watch;
	struct shown *shown; /* the daemon's; moved after each catch-up */
	bool halted;         /* notifier_halt ran: the thread is gone */
	atomic_bool halting; /* no new invalidation may start */
	bool changed;        /* the watch saw a commit since the last catch-up */
	int64_t next_gc;     /* clock_mono_ms of the next orphan sweep */
	pthread_cond_t done;
	/* What FLUSH handlers asked for; served in ticket order. */
	struct ask *queue;
	size_t queue_len, queue_cap;
	uint64_t tickets_issued, tickets_done;
	/* How far the logs have been read. */
	int64_t seq;
	int64_t tree_id;
	/* Store directories whose listing changed in this round. */
	uint64_t *dirs;
	size_t dirs_len, dirs_cap;
};

static void add_dir(struct notifier *n, uint64_t ino)
{
	for (size_t i = 0; i < n->dirs_len; i++)
		if (n->dirs[i] == ino)
			return;
	if (n->dirs_len == n->dirs_cap) {
		size_t cap = n->dirs_cap ? n->dirs_cap * 2 : 16;
		uint64_t *grown = realloc(n->dirs, cap * sizeof(*grown));
		if (!grown)
			return;
		n->dirs = grown;
		n->dirs_cap = cap;
	}
	n->dirs[n->dirs_len++] = ino;
}

/* The kernel answers -ENOENT for what it does not hold: not an error.
 * Once halting, nothing is sent: a stop must not wait for the rest of a
 * long catch-up. */
static void inval_entry(struct notifier *n, struct fs_session *s, uint64_t parent, const char *name)
{
	if (s->se && !atomic_load(&n->halting))
		fuse_lowlevel_notify_inval_entry(s->se, parent, name, strlen(name));
}

static void inval_inode(struct notifier *n, struct fs_session *s, uint64_t ino)
{
	if (s->se && !atomic_load(&n->halting))
		fuse_lowlevel_notify_inval_inode(s->se, ino, 0, 0);
}

/* Tells one mount's kernel of a change made elsewhere. */
static void forget_changed_file(struct notifier *n, struct fs_session *s,
                                const struct store_changed_file *c)
{
	if (!s->se)
		return;
	bool held = c->ino && inodes_maybe_held(&s->inodes, c->ino);
	/* A delete may have left an orphan row the kernel still holds under
	 * this name: always drop the name then. */
	if (held || c->deleted || inodes_names_maybe_cached(&s->inodes, c->dir))
		inval_entry(n, s, c->dir, c->name);
	/* The view's records get a new node with each revision (fs_view.c):
	 * forgetting the name is enough there. */
	if (held && !s->view)
		inval_inode(n, s, c->ino);
}

/* Changes made through the mount are not told: its kernel saw them, and
 * the handler that made them told the view before answering. */
static int on_change(void *ctx, const struct store_changed_file *c)
{
	struct notifier *n = ctx;
	n->seq = c->seq;
	if (c->origin == ORIGIN_FS)
		return 0;
	forget_changed_file(n, &n->fs->rw, c);
	forget_changed_file(n, &n->fs->view, c);
	add_dir(n, c->dir);
	return 0;
}

static int on_tree_change(void *ctx, int64_t id, uint64_t parent, const char *name,
                          enum store_origin origin)
{
	struct notifier *n = ctx;
	n->tree_id = id;
	if (origin == ORIGIN_FS)
		return 0;
	inval_entry(n, &n->fs->rw, parent, name);
	inval_entry(n, &n->fs->view, parent, name);
	add_dir(n, parent);
	return 0;
}

static int drop_unheld_orphan(void *ctx, uint64_t ino)
{
	struct notifier *n = ctx;
	if (!fs_inode_counted(n->fs, ino))
		store_drop_orphan(n->worker.st, ino);
	return 0;
}

/* Reads both logs past what was seen; returns true if anything moved. */
static bool catch_up(struct notifier *n)
{
	int64_t seq0 = n->seq, tree0 = n->tree_id;
	n->dirs_len = 0;
	int64_t got;
	do {
		got = store_changed_files_since(n->worker.st, n->seq, CHANGES_PER_READ, on_change,
		                                n);
	} while (got == CHANGES_PER_READ);
	store_tree_changes_since(n->worker.st, n->tree_id, on_tree_change, n);
	for (size_t i = 0; i < n->dirs_len; i++) {
		inval_inode(n, &n->fs->rw, n->dirs[i]);
		inval_inode(n, &n->fs->view, n->dirs[i]);
	}
	if (n->seq == seq0 && n->tree_id == tree0)
		return false;
	/* The waiters in this process first: recording the progress in the
	 * store may wait for the write lock behind other commits. */
	shown_advance(n->shown, n->seq, n->tree_id);
	store_daemon_set_notified(n->worker.st, n->seq, n->tree_id);
	return true;
}

/* Called by the watch thread: note it and wake the notifier. */
static void on_commit(void *ctx)
{
	struct notifier *n = ctx;
	worker_wake(&n->worker, &n->changed);
}

/* Each time a commit or a FLUSH handler wakes it, and every GC_MS. */
static void notifier_round(struct worker *w, bool woken, void *arg)
{
	struct notifier *n = arg;
	(void)woken;
	struct ask *queue = n->queue;
	size_t queue_len = n->queue_len;
	uint64_t ticket = n->tickets_issued;
	bool changed = n->changed;
	n->changed = false;
	n->queue = NULL;
	n->queue_len = n->queue_cap = 0;
	pthread_mutex_unlock(&w->lock);

	for (size_t i = 0; i < queue_len; i++) {
		if (queue[i].name) {
			/* The name, and the directory's cached listing. */
			inval_entry(n, &n->fs->rw, queue[i].ino, queue[i].name);
			free(queue[i].name);
		}
		inval_inode(n, &n->fs->rw, queue[i].ino);
	}
	free(queue);
	if (changed)
		catch_up(n);
	if (clock_mono_ms() >= n->next_gc) {
		store_list_orphans(w->st, drop_unheld_orphan, n);
		n->next_gc = clock_mono_ms() + GC_MS;
	}

	pthread_mutex_lock(&w->lock);
	n->tickets_done = ticket;
	pthread_cond_broadcast(&n->done);
}

int notifier_start(struct fs *fs, struct watch *watch, struct shown *shown, struct notifier **out)
{
	struct notifier *n = calloc(1, sizeof(*n));
	if (!n)
		return -ENOMEM;
	int rc = worker_open(&n->worker, fs->datadir, "notifier");
	if (rc) {
		free(n);
		return rc;
	}
	n->fs = fs;
	n->watch = watch;
	n->shown = shown;
	/* A commit between reading the logs' ends below and subscribing must
	 * not wait for the next one: look once at start. */
	worker_wake(&n->worker, &n->changed);
	n->seq = store_last_seq(n->worker.st);
	n->tree_id = store_last_tree_id(n->worker.st);
	rc = store_daemon_register(n->worker.st, (int)getpid());
	if (rc) {
		fprintf(stderr, "idbmount: notifier: %s\n", store_last_error(n->worker.st));
		worker_close(&n->worker);
		free(n);
		return rc;
	}
	pthread_cond_init(&n->done, NULL);
	n->next_gc = clock_mono_ms() + GC_MS;
	/* Before the thread runs: it alone advances the mark after this. */
	shown_serve(shown, n->seq, n->tree_id);
	rc = worker_start_rounds(&n->worker, GC_MS, notifier_round, n);
	if (!rc) {
		rc = watch_subscribe(watch, on_commit, n);
		if (rc)
			worker_stop(&n->worker);
	}
	if (rc) {
		shown_halt(shown);
		store_daemon_unregister(n->worker.st);
		worker_close(&n->worker);
		pthread_cond_destroy(&n->done);
		free(n);
		return rc;
	}
	*out = n;
	return 0;
}

void notifier_halt(struct notifier *n)
{
	if (!n || n->halted)
		return;
	atomic_store(&n->halting, true);
	/* Nothing more will be shown: no waiter may wait for its deadline. */
	shown_halt(n->shown);
	watch_unsubscribe(n->watch, on_commit, n);
	worker_stop(&n->worker);
	/* A FLUSH handler still waiting must not wait for its deadline: its
	 * ticket will not be served, and it looks at `stop` when woken. */
	pthread_mutex_lock(&n->worker.lock);
	pthread_cond_broadcast(&n->done);
	pthread_mutex_unlock(&n->worker.lock);
	store_daemon_unregister(n->worker.st);
	n->halted = true;
}

void notifier_free(struct notifier *n)
{
	if (!n)
		return;
	notifier_halt(n);
	worker_close(&n->worker);
	pthread_cond_destroy(&n->done);
	for (size_t i = 0; i < n->queue_len; i++)
		free(n->queue[i].name);
	free(n->queue);
	free(n->dirs);
	free(n);
}

/* Queues `ino` (and `name`, taken over) and waits until it is served. */
static void ask_wait(struct notifier *n, uint64_t ino, char *name)
{
	pthread_mutex_lock(&n->worker.lock);
	if (n->queue_len == n->queue_cap) {
		size_t cap = n->queue_cap ? n->queue_cap * 2 : 8;
		struct ask *grown = realloc(n->queue, cap * sizeof(*grown));
		if (!grown) {
			pthread_mutex_unlock(&n->worker.lock);
			free(name);
			return;
		}
		n->queue = grown;
		n->queue_cap = cap;
	}
	n->queue[n->queue_len++] = (struct ask){.ino = ino, .name = name};
	uint64_t ticket = ++n->tickets_issued;
	worker_wake_locked(&n->worker);
	struct timespec until = clock_deadline(CLOCK_REALTIME, 1000);
	while (n->tickets_done < ticket && !n->worker.stop)
		if (pthread_cond_timedwait(&n->done, &n->worker.lock, &until) == ETIMEDOUT)
			break;
	pthread_mutex_unlock(&n->worker.lock);
}

void notifier_inval_inode_wait(struct notifier *n, uint64_t ino)
{
	ask_wait(n, ino, NULL);
}

void notifier_forget_name_wait(struct notifier *n, uint64_t dir, const char *name)
{
	char *copy = strdup(name);
	if (copy)
		ask_wait(n, dir, copy);
}
