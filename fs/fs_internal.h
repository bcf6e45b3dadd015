/* fs_internal.h - what the files of fs/ share with each other. */
#ifndef IDBMOUNT_FS_INTERNAL_H
#define IDBMOUNT_FS_INTERNAL_H

#include "idbmount/fs/fs.h"
#include "idbmount/store/store.h"

#include <fuse_lowlevel.h>
#include <limits.h>
#include <pthread.h>
#include <stdatomic.h>
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

/* ---- what one mount's kernel holds (fs_inodes.c) ----
 * Lookup counts: +1 for every entry handed to the kernel (lookup, create,
 * readdirplus), -n at forget. A removed record's row may be deleted only
 * once no mount counts it. Directories are not counted: their rows are
 * never deleted. Memory: 4 bytes per row id, in 256 KiB pages made on
 * first use.
 *
 * What may be stale: the notifier tells the kernel to forget only what it
 * may hold: an inode it has a lookup count of, a name in a directory it
 * asked about by name (a negative entry, or one turned negative by unlink).
 * Without these, a push of 1,000 new records cost 2,000 notify calls and
 * 1,000 lookups before its answer. A listing (readdirplus) counts its
 * entries only as it fills them, after reading the store; while one is
 * under way every inode counts as held, so a listing that read a record
 * just before a commit is not missed. */
#define INODES_ASKED_DIRS_MAX 256
struct inodes {
	pthread_mutex_t lock;
	uint32_t **pages;
	size_t page_count;
	/* Directories asked about by name. A mount has few stores, so a short
	 * list searched in order; past its size every directory counts. */
	uint64_t asked_dirs[INODES_ASKED_DIRS_MAX];
	size_t asked_len;
	bool asked_overflow;
	unsigned listings; /* readdirplus requests under way */
};
void inodes_init(struct inodes *in);
void inodes_destroy(struct inodes *in);
void inodes_ref(struct inodes *in, uint64_t ino);
/* Returns the count left. */
uint64_t inodes_unref(struct inodes *in, uint64_t ino, uint64_t n);
uint64_t inodes_count(struct inodes *in, uint64_t ino);
void inodes_listing_begin(struct inodes *in);
void inodes_listing_end(struct inodes *in);
bool inodes_maybe_held(struct inodes *in, uint64_t ino);
/* A request names a child of `dir` (lookup, create, unlink, rename...):
 * called before the store is read. */
void inodes_names_asked(struct inodes *in, uint64_t dir);
bool inodes_names_maybe_cached(struct inodes *in, uint64_t dir);

/* ---- the mounts (fs_session.c builds them, fs_ops.c and fs_view.c serve
 * them) ----
 * A daemon serves up to two FUSE sessions from one data directory: the
 * read-write mount, and the read-only view (fs_view.c). Each request's
 * userdata is its session. */
struct fs_session {
	struct fs *fs;
	struct fuse_session *se; /* NULL: not made */
	bool view;
	const char *name;      /* "mount" or "view", for messages */
	double timeout;        /* entry and attribute timeouts */
	struct inodes inodes;  /* what this mount's kernel holds */
	struct fs_mount_id id; /* as the kernel lists it, once mounted */
	bool mounted;
	/* Its loop, on a thread of its own (fs_session.c). */
	pthread_t loop_thread;
	bool loop_started;
	int loop_rc;
	atomic_bool loop_ended;
};

struct fs {
	struct fs_config cfg;
	struct fs_session rw, view;
	struct notifier *notifier;
	char datadir[PATH_MAX];
	char log_path[PATH_MAX + 32]; /* "" when logging to the terminal */
	struct fs_watchdog watchdog;
	pthread_t main_thread; /* the one that mounted: waits for signals */
	pthread_key_t store_key;
	pthread_mutex_t handles_lock;
	struct handle *writers, *readers; /* open files (fs_files.c) */
	bool no_open;                     /* cache=always and the kernel skips OPEN/RELEASE */
};

/* Whether any mount's kernel may still hold `ino` (an orphan row may be
 * deleted only when none does). */
bool fs_inode_counted(struct fs *fs, uint64_t ino);

/* ---- what every handler uses (fs_ops.c) ---- */
struct fs_session *req_session(fuse_req_t req);
struct fs *req_fs(fuse_req_t req);
/* This thread's connection, opened on first use; NULL (logged) on failure. */
struct store *fs_thread_store(struct fs *fs);
/* This thread's connection for a request that needs one; NULL after
 * answering the request with EIO. */
struct store *req_store(fuse_req_t req, struct fs *fs);
/* Logs why an operation was refused: the only message the person who ran
 * `cp` or `vim` gets beyond the errno. */
void fs_log_refusal(struct store *st, const char *op, const char *name, int rc);
/* Answers an operation that has no result but its errno (logged if any). */
void fs_reply_result(fuse_req_t req, struct store *st, const char *op, const char *name, int rc);
void fs_fill_stat(struct fs_session *s, const struct store_node *n, struct stat *stbuf);
void fs_fill_entry(struct fs_session *s, const struct store_node *n, struct fuse_entry_param *e);
/* Answers with the entry of `n`, which the kernel then holds. */
void fs_reply_entry(fuse_req_t req, struct fs_session *s, const struct store_node *n);

/* ---- the handlers of files (fs_files.c) ---- */
/* The size of unflushed writes on `ino`, if any handle has them. */
bool fs_dirty_size(struct fs *fs, uint64_t ino, uint64_t *size);
void fs_setattr(fuse_req_t req, fuse_ino_t ino, struct stat *attr, int to_set,
                struct fuse_file_info *fi);
void fs_open(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi);
void fs_create(fuse_req_t req, fuse_ino_t parent, const char *name, mode_t mode,
               struct fuse_file_info *fi);
void fs_mknod(fuse_req_t req, fuse_ino_t parent, const char *name, mode_t mode, dev_t rdev);
void fs_read(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off, struct fuse_file_info *fi);
void fs_write(fuse_req_t req, fuse_ino_t ino, const char *data, size_t size, off_t off,
              struct fuse_file_info *fi);
void fs_flush(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi);
void fs_fsync(fuse_req_t req, fuse_ino_t ino, int datasync, struct fuse_file_info *fi);
void fs_release(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi);

/* ---- the handlers of names and directories (fs_dirs.c) ---- */
void fs_unlink(fuse_req_t req, fuse_ino_t parent, const char *name);
void fs_rename(fuse_req_t req, fuse_ino_t parent, const char *name, fuse_ino_t newparent,
               const char *newname, unsigned int flags);
void fs_mkdir(fuse_req_t req, fuse_ino_t parent, const char *name, mode_t mode);
void fs_rmdir(fuse_req_t req, fuse_ino_t parent, const char *name);
void fs_symlink(fuse_req_t req, const char *link, fuse_ino_t parent, const char *name);
void fs_link(fuse_req_t req, fuse_ino_t ino, fuse_ino_t newparent, const char *newname);
void fs_opendir(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi);
void fs_releasedir(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi);
void fs_fsyncdir(fuse_req_t req, fuse_ino_t ino, int datasync, struct fuse_file_info *fi);

/* ---- the handlers of extended attributes (fs_xattrs.c) ---- */
void fs_setxattr(fuse_req_t req, fuse_ino_t ino, const char *name, const char *value, size_t size,
                 int flags);
void fs_removexattr(fuse_req_t req, fuse_ino_t ino, const char *name);

/* ---- the handlers (fs_ops.c, fs_files.c, fs_dirs.c, fs_xattrs.c) ----
 * The read-write mount's table, and the handlers the view shares with it
 * (reads of the tree that do not depend on how the mount caches). */
extern const struct fuse_lowlevel_ops fs_ops;
void fs_lookup(fuse_req_t req, fuse_ino_t parent, const char *name);
void fs_forget(fuse_req_t req, fuse_ino_t ino, uint64_t nlookup);
void fs_forget_multi(fuse_req_t req, size_t count, struct fuse_forget_data *forgets);
void fs_getattr(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi);
void fs_readdir(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off, struct fuse_file_info *fi);
void fs_readdirplus(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
                    struct fuse_file_info *fi);
void fs_statfs(fuse_req_t req, fuse_ino_t ino);
void fs_getxattr(fuse_req_t req, fuse_ino_t ino, const char *name, size_t size);
void fs_listxattr(fuse_req_t req, fuse_ino_t ino, size_t size);
/* Answers a READ of node `node` from the store (the view's reads). */
void fs_read_node(fuse_req_t req, uint64_t node, size_t size, off_t off);
/* The attributes of node `node` of session `s`; -ESTALE for a revision of
 * a record that the view has replaced. */
int session_getattr(struct fs_session *s, struct store *st, uint64_t node, struct store_node *n);
/* Frees every handle still listed (at unmount: writes never flushed are
 * dropped, and the records keep their values). */
void fs_free_handles(struct fs *fs);

/* ---- the view (fs_view.c) ---- */
extern const struct fuse_lowlevel_ops fs_view_ops;
/* Whether the view leaves out `name`: a record being written (a ".json"
 * file made through the mount whose first close has not committed it),
 * which holds no record yet, only an empty or partial file. */
bool view_hides(const char *name, const struct store_node *n);
/* Node ids: what the kernel calls a node of session `s`. The mount uses
 * the store's inode numbers; the view gives each revision of a record a
 * node of its own (see fs_view.c). */
uint64_t session_node_id(const struct fs_session *s, const struct store_node *n);
uint32_t session_generation(const struct fs_session *s, const struct store_node *n);
/* The store inode of a node id, and in *rev the revision it stands for
 * (its low bits; -1 when any revision). */
uint64_t session_store_ino(const struct fs_session *s, uint64_t node, int64_t *rev);
/* Whether `n` (just read) is the revision node id stood for. */
bool session_node_current(int64_t rev, const struct store_node *n);
/* The read-write mount changed what `name` in directory `dir` is (made,
 * removed, renamed): the view forgets the name and the listing. Called by
 * the handler before it answers, so whoever made the change sees it on the
 * view once the call returns. */
void view_forget_name(struct fs *fs, uint64_t dir, const char *name);
/* The read-write mount committed new content for `ino` (before FLUSH, or
 * whatever committed, answers); `st` is the calling thread's connection. */
void view_forget_content(struct fs *fs, struct store *st, uint64_t ino);

/* ---- the notifier (fs_notifier.c) ----
 * One thread that tells the kernel about changes that did not come through
 * the mount (idbmountctl, HTTP), so long cache timeouts stay correct. It
 * never runs inside a request handler: libfuse's notify calls can deadlock
 * there. */
struct notifier;
struct watch;
struct shown;
/* Subscribes to the daemon's watch (src/store/watch.c), which says when to
 * look, and advances `shown` (may be NULL) past each change it dealt with,
 * for the daemon's threads that wait until a change shows. */
int notifier_start(struct fs *fs, struct watch *watch, struct shown *shown, struct notifier **out);
/* Stops the thread and halts `shown` (its waiters return at once): returns
 * once no invalidation is under way and none will start, so the FUSE
 * workers may stop after it (an invalidation can wait for a directory lock
 * that a request in the kernel's queue holds, and only a worker's answer
 * frees it). FLUSH handlers may still call notifier_inval_inode_wait,
 * which then returns at once. */
void notifier_halt(struct notifier *n);
/* Frees it, once the FUSE workers have stopped. NULL is fine. */
void notifier_free(struct notifier *n);
/* Asks for an invalidation of `ino`'s pages and attributes and waits until
 * it is done (at most a second). For a FLUSH handler whose commit failed or
 * rewrote the content: the kernel holds no lock of that inode while it
 * waits for FLUSH's reply, so this cannot deadlock. */
void notifier_inval_inode_wait(struct notifier *n, uint64_t ino);
/* The same for a name in directory `dir` and the directory's listing: for
 * a FLUSH handler that took away the name of a file it created. */
void notifier_forget_name_wait(struct notifier *n, uint64_t dir, const char *name);

#endif
