/* fs_internal.h - what the files of fs/ share with each other. */
#ifndef IDBMOUNT_FS_INTERNAL_H
#define IDBMOUNT_FS_INTERNAL_H

#include "idbmount/fs.h"
#include "idbmount/store.h"

#include <fuse_lowlevel.h>
#include <limits.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

struct handle;

/* ---- the watchdog process (fs_watchdog.c) ---- */
struct fs_watchdog {
	pid_t pid; /* -1: none */
	int pipe_wr;
};
/* Forks the watchdog, which clears `mounts` (fs_mount_clear) if the
 * calling thread ends before fs_watchdog_release, keeping `lock_fd` (if
 * >= 0) open until it is done. Call it while no other thread runs.
 * Returns 0 or -errno. */
int fs_watchdog_start(const struct fs_mount_id *mounts, size_t n, int lock_fd,
                      struct fs_watchdog *out);
/* A clean stop: the watchdog exits without touching the mounts. */
void fs_watchdog_release(struct fs_watchdog *w);

/* ---- the mount (fs_session.c builds it, fs_ops.c serves it) ---- */
struct fs {
	struct fs_config cfg;
	struct fuse_session *se;
	struct notifier *notifier;
	bool mounted; /* fs_mount succeeded and fs_unmount has not run */
	double timeout;
	char datadir[PATH_MAX];
	char log_path[PATH_MAX + 32]; /* "" when logging to the terminal */
	struct fs_mount_id mount_id;  /* as the kernel lists it */
	struct fs_watchdog watchdog;
	pthread_t main_thread; /* the one that mounted: waits for signals */
	pthread_key_t store_key;
	pthread_mutex_t writers_lock;
	struct handle *writers;
	bool no_open; /* cache=always and the kernel skips OPEN/RELEASE */
};

/* ---- the handlers (fs_ops.c) ---- */
extern const struct fuse_lowlevel_ops fs_ops;
/* Frees every handle still listed (at unmount: writes never flushed are
 * dropped, and the records keep their values). */
void fs_free_handles(struct fs *fs);

/* ---- lookup counts (fs_inodes.c) ----
 * The kernel's lookup count per file inode: +1 for every entry we hand it
 * (lookup, create, readdirplus), -n at forget. A removed record's row may
 * be deleted only once its count is 0. Directories are not counted: their
 * rows are never deleted. Memory: 4 bytes per row id, in 256 KiB pages
 * made on first use. */
void inodes_ref(uint64_t ino);
/* Returns the count left. */
uint64_t inodes_unref(uint64_t ino, uint64_t n);
uint64_t inodes_count(uint64_t ino);
void inodes_free_all(void);

/* ---- what the kernel may hold stale (fs_inodes.c) ----
 * The notifier tells the kernel to forget only what it may hold: an inode
 * it has a lookup count of, a name in a directory it asked about by name
 * (a negative entry, or one turned negative by unlink). Without these, a
 * push of 1,000 new records cost 2,000 notify calls and 1,000 lookups
 * before its answer.
 *
 * A listing (readdirplus) counts its entries only as it fills them, after
 * reading the store; while one is under way every inode counts as held,
 * so a listing that read a record just before a commit is not missed. */
void inodes_listing_begin(void);
void inodes_listing_end(void);
bool inodes_maybe_held(uint64_t ino);
/* A request names a child of `dir` (lookup, create, unlink, rename...):
 * called before the store is read. */
void inodes_names_asked(uint64_t dir);
bool inodes_names_maybe_cached(uint64_t dir);

/* ---- the notifier (fs_notifier.c) ----
 * One thread that tells the kernel about changes that did not come through
 * the mount (idbmountctl, HTTP), so long cache timeouts stay correct. It
 * never runs inside a request handler: libfuse's notify calls can deadlock
 * there. */
struct notifier;
struct watch;
/* Subscribes to the daemon's watch (src/watch.c), which says when to look. */
int notifier_start(struct fuse_session *se, const char *datadir, struct watch *watch,
                   struct notifier **out);
/* Stops the thread: returns once no invalidation is under way and none
 * will start, so the FUSE workers may stop after it (an invalidation can
 * wait for a directory lock that a request in the kernel's queue holds,
 * and only a worker's answer frees it). FLUSH handlers may still call
 * notifier_inval_inode_wait, which then returns at once. */
void notifier_halt(struct notifier *n);
/* Frees it, once the FUSE workers have stopped. NULL is fine. */
void notifier_free(struct notifier *n);
/* Asks for an invalidation of `ino`'s pages and attributes and waits until
 * it is done (at most a second). For a FLUSH handler whose commit failed or
 * rewrote the content: the kernel holds no lock of that inode while it
 * waits for FLUSH's reply, so this cannot deadlock. */
void notifier_inval_inode_wait(struct notifier *n, uint64_t ino);

#endif
