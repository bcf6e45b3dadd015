/* fs_ops.c - the FUSE view: one handler per low-level operation, each
 * translating a file operation into store calls and answering with exactly
 * one fuse_reply_*. This file holds what every handler uses, init, lookups
 * and attributes, and the ops table; the handlers of files are in
 * fs_files.c, of names and directories in fs_dirs.c, of extended
 * attributes in fs_xattrs.c.
 *
 * Inodes are the store's node numbers (store.h). Each worker thread has its
 * own SQLite connection, opened on first use and closed when the thread
 * ends; handlers touch only SQLite, never the network.
 *
 * Caching (cache=always, the default): a day of entry, attribute and
 * negative-entry timeouts, kept pages and cached listings. Changes made
 * through the mount are seen by the kernel itself; the others are
 * invalidated by the notifier thread (fs_notifier.c).
 */
#include "fs_internal.h"

#include "idbmount/fs/fs.h"
#include "idbmount/store/store.h"
#include "idbmount/util/buf.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/xattr.h>
#include <unistd.h>

/* This thread's connection, opened on first use; NULL (logged) on failure. */
struct store *fs_thread_store(struct fs *fs)
{
	struct store *st = pthread_getspecific(fs->store_key);
	if (st)
		return st;
	char err[512];
	if (store_open(fs->datadir, &st, err, sizeof(err)) != 0) {
		fprintf(stderr, "idbmount: %s\n", err);
		return NULL;
	}
	if (fs->cfg.max_record)
		store_set_max_record(st, fs->cfg.max_record);
	pthread_setspecific(fs->store_key, st);
	return st;
}

struct fs_session *req_session(fuse_req_t req)
{
	return fuse_req_userdata(req);
}

struct fs *req_fs(fuse_req_t req)
{
	return req_session(req)->fs;
}

/* This thread's connection for a request that needs one; NULL after
 * answering the request with EIO. */
struct store *req_store(fuse_req_t req, struct fs *fs)
{
	struct store *st = fs_thread_store(fs);
	if (!st)
		fuse_reply_err(req, EIO);
	return st;
}

/* Logs why an operation was refused: the only message the person who ran
 * `cp` or `vim` gets beyond the errno. */
void fs_log_refusal(struct store *st, const char *op, const char *name, int rc)
{
	const char *why = store_last_error(st);
	if (rc == -ENOENT || rc == -EEXIST || rc == -ENOTEMPTY)
		return;
	fprintf(stderr, "idbmount: %s%s%s: %s%s%s\n", op, name && *name ? " " : "",
	        name ? name : "", strerror(-rc), *why ? ": " : "", why);
}

/* Answers `op` on `name` with its result `rc` (0 or -errno), logging a
 * refusal first; `st` is NULL when the thread had no connection. */
void fs_reply_result(fuse_req_t req, struct store *st, const char *op, const char *name, int rc)
{
	if (rc && st)
		fs_log_refusal(st, op, name, rc);
	fuse_reply_err(req, -rc);
}

void fs_fill_stat(struct fs_session *s, const struct store_node *n, struct stat *stbuf)
{
	struct fs *fs = s->fs;
	memset(stbuf, 0, sizeof(*stbuf));
	stbuf->st_ino = session_node_id(s, n);
	stbuf->st_uid = fs->cfg.owner;
	stbuf->st_gid = fs->cfg.group;
	if (n->kind == STORE_FILE) {
		stbuf->st_mode = S_IFREG | (0666 & ~fs->cfg.umask);
		stbuf->st_nlink = n->state == STORE_ORPHAN ? 0 : 1;
		stbuf->st_size = (off_t)n->size;
		stbuf->st_blocks = (blkcnt_t)((n->size + 511) / 512);
	} else {
		stbuf->st_mode = S_IFDIR | (0777 & ~fs->cfg.umask);
		stbuf->st_nlink = 2 + n->subdirs;
	}
	stbuf->st_blksize = 4096;
	stbuf->st_mtim.tv_sec = n->mtime_ns / 1000000000;
	stbuf->st_mtim.tv_nsec = n->mtime_ns % 1000000000;
	stbuf->st_ctim = stbuf->st_mtim;
	stbuf->st_atim = stbuf->st_mtim;
}

void fs_fill_entry(struct fs_session *s, const struct store_node *n, struct fuse_entry_param *e)
{
	memset(e, 0, sizeof(*e));
	e->ino = session_node_id(s, n);
	e->generation = session_generation(s, n);
	e->attr_timeout = s->timeout;
	e->entry_timeout = s->timeout;
	fs_fill_stat(s, n, &e->attr);
}

void fs_reply_entry(fuse_req_t req, struct fs_session *s, const struct store_node *n)
{
	struct fuse_entry_param e;
	fs_fill_entry(s, n, &e);
	inodes_ref(&s->inodes, n->ino);
	if (fuse_reply_entry(req, &e) == -ENOENT)
		inodes_unref(&s->inodes, n->ino, 1); /* the request was interrupted */
}

/* ---- init and lookups ---------------------------------------------------- */

static void fs_init(void *userdata, struct fuse_conn_info *conn)
{
	struct fs *fs = ((struct fs_session *)userdata)->fs;
	/* Page cache on, but no writeback cache: every write reaches the
	 * handle's copy before FLUSH commits it. */
	conn->want &= ~FUSE_CAP_WRITEBACK_CACHE;
	fs->no_open = fs->cfg.cache == FS_CACHE_ALWAYS && !fs->cfg.private_writes &&
	              (conn->capable & FUSE_CAP_NO_OPEN_SUPPORT);
	/* Without OPEN, an O_TRUNC must reach us as a SETATTR: with atomic
	 * O_TRUNC the kernel would assume OPEN did it. */
	if (fs->no_open)
		conn->want &= ~FUSE_CAP_ATOMIC_O_TRUNC;
	else if (conn->capable & FUSE_CAP_ATOMIC_O_TRUNC)
		conn->want |= FUSE_CAP_ATOMIC_O_TRUNC;
	if (conn->capable & FUSE_CAP_READDIRPLUS)
		conn->want |= FUSE_CAP_READDIRPLUS;
	/* Always readdirplus: in "auto" the kernel falls back to plain
	 * readdir after the first batch and then looks every name up, one
	 * round trip each, when `grep -r` or `ls -l` walks a store. */
	conn->want &= ~FUSE_CAP_READDIRPLUS_AUTO;
	/* No POSIX ACLs: `ls -l` asks every file for its ACL, and getxattr
	 * answers "not supported" (xattr_namespace_unsupported), after which
	 * ls asks no other file of the mount. With the ACL capability the
	 * kernel would ask us once per inode it makes and again after every
	 * readdirplus that names the file (it drops its cached ACL there):
	 * 100,000 round trips for a cold `ls -l` of 100,000 records, about
	 * half its time. And it could not be told "not supported": with the
	 * capability, permission checks read the ACL too and would fail. */
	conn->want &= ~FUSE_CAP_POSIX_ACL;
}

void fs_lookup(fuse_req_t req, fuse_ino_t parent, const char *name)
{
	struct fs_session *s = req_session(req);
	inodes_names_asked(&s->inodes, parent);
	struct store *st = req_store(req, s->fs);
	if (!st)
		return;
	struct store_node n;
	int rc = store_lookup(st, parent, name, &n);
	if (rc == 0 && s->view && view_hides(name, &n))
		rc = -ENOENT;
	if (rc == -ENOENT) {
		/* A cached negative entry: editors probe many names. */
		struct fuse_entry_param e;
		memset(&e, 0, sizeof(e));
		e.entry_timeout = s->timeout;
		fuse_reply_entry(req, &e);
		return;
	}
	if (rc) {
		fuse_reply_err(req, -rc);
		return;
	}
	fs_reply_entry(req, s, &n);
}

static void fs_forget_one(struct fs_session *s, fuse_ino_t node, uint64_t nlookup)
{
	int64_t rev;
	uint64_t ino = session_store_ino(s, node, &rev);
	if (inodes_unref(&s->inodes, ino, nlookup) != 0 || fs_inode_counted(s->fs, ino))
		return;
	struct store *st = fs_thread_store(s->fs);
	if (st)
		store_drop_orphan(st, ino);
}

void fs_forget(fuse_req_t req, fuse_ino_t ino, uint64_t nlookup)
{
	fs_forget_one(req_session(req), ino, nlookup);
	fuse_reply_none(req);
}

void fs_forget_multi(fuse_req_t req, size_t count, struct fuse_forget_data *forgets)
{
	struct fs_session *s = req_session(req);
	for (size_t i = 0; i < count; i++)
		fs_forget_one(s, forgets[i].ino, forgets[i].nlookup);
	fuse_reply_none(req);
}

int session_getattr(struct fs_session *s, struct store *st, uint64_t node, struct store_node *n)
{
	int64_t rev;
	uint64_t ino = session_store_ino(s, node, &rev);
	int rc = store_getattr(st, ino, n);
	if (rc == 0 && !session_node_current(rev, n))
		rc = -ESTALE;
	return rc;
}

void fs_getattr(fuse_req_t req, fuse_ino_t node, struct fuse_file_info *fi)
{
	(void)fi;
	struct fs_session *s = req_session(req);
	struct fs *fs = s->fs;
	struct store *st = req_store(req, fs);
	if (!st)
		return;
	struct store_node n;
	int rc = session_getattr(s, st, node, &n);
	if (rc) {
		fuse_reply_err(req, -rc);
		return;
	}
	/* The view shows what is committed; the mount, what is written. */
	if (!s->view)
		fs_dirty_size(fs, n.ino, &n.size);
	struct stat stbuf;
	fs_fill_stat(s, &n, &stbuf);
	fuse_reply_attr(req, &stbuf, s->timeout);
}

const struct fuse_lowlevel_ops fs_ops = {
        .init = fs_init,
        .lookup = fs_lookup,
        .forget = fs_forget,
        .forget_multi = fs_forget_multi,
        .getattr = fs_getattr,
        .setattr = fs_setattr,
        .mknod = fs_mknod,
        .mkdir = fs_mkdir,
        .unlink = fs_unlink,
        .rmdir = fs_rmdir,
        .symlink = fs_symlink,
        .rename = fs_rename,
        .link = fs_link,
        .open = fs_open,
        .read = fs_read,
        .write = fs_write,
        .flush = fs_flush,
        .release = fs_release,
        .fsync = fs_fsync,
        .opendir = fs_opendir,
        .readdir = fs_readdir,
        .readdirplus = fs_readdirplus,
        .releasedir = fs_releasedir,
        .fsyncdir = fs_fsyncdir,
        .statfs = fs_statfs,
        .setxattr = fs_setxattr,
        .getxattr = fs_getxattr,
        .listxattr = fs_listxattr,
        .removexattr = fs_removexattr,
        .create = fs_create,
};
