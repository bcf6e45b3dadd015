/* fs_internal.h - what the files of fs/ share with each other. */
#ifndef IDBMOUNT_FS_INTERNAL_H
#define IDBMOUNT_FS_INTERNAL_H

#include "idbmount/store.h"

#include <fuse_lowlevel.h>
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
