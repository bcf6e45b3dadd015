/* fs_internal.h - what the files of fs/ share with each other. */
#ifndef IDBMOUNT_FS_INTERNAL_H
#define IDBMOUNT_FS_INTERNAL_H

#include "idbmount/store.h"

#include <fuse_lowlevel.h>
#include <stdbool.h>
#include <stdint.h>

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
void notifier_stop(struct notifier *n);
/* Asks for an invalidation of `ino`'s pages and attributes and waits until
 * it is done (at most a second). For a FLUSH handler whose commit failed or
 * rewrote the content: the kernel holds no lock of that inode while it
 * waits for FLUSH's reply, so this cannot deadlock. */
void notifier_inval_inode_wait(struct notifier *n, uint64_t ino);

#endif
