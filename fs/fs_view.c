/* fs_view.c - the view: the same tree as the mount, read-only, for people
 * and programs that only read (grep -r, jq, find, pipelines).
 *
 * Why a second mount: the read-write mount commits a file when it is
 * closed, so every close() is a round trip to the daemon (a FLUSH), which
 * costs as much as reading a whole small file; `grep -r` over a store was
 * several times slower than over plain files. The view never commits, so
 * it asks for nothing on close: it answers the first FLUSH with ENOSYS,
 * after which the kernel sends no FLUSH on that mount again; OPEN and
 * OPENDIR get ENOSYS too (no open or release round trips); names,
 * attributes, pages and listings are kept for a day. A warm `grep -r` then
 * reads the page cache only, as on a local disk.
 *
 * Each revision of a record is a node of its own: the record's row id and
 * the low bits of its revision make the node id (session_node_id), so a
 * node's content and size never change. That is what makes every read
 * whole: the kernel reads a file's size and its pages at different times,
 * and had they been allowed to change in between (a commit landing
 * between the two), a reader would get the new content cut to the old
 * size, or padded. Instead a commit only makes the view forget the name:
 * the next lookup finds the new node, while a reader that opened the old
 * one goes on reading it from the page cache, as from a file replaced by
 * rename(2) on a local disk. A page of an old node that is not cached any
 * more cannot be read (the store keeps only the latest revision): ESTALE,
 * never a mix. (Directories and scratch files keep one node.)
 *
 * What keeps it current: every change reaches the view's kernel as an
 * invalidation of the name. Changes made elsewhere (HTTP, idbmountctl)
 * come through the notifier (fs_notifier.c), as for the mount. Changes
 * made through the mount are told by the mount's handler itself, before it
 * answers (view_forget_*), so a reader of the view sees a record's new
 * content as soon as the writer's close() has returned. The invalidation
 * of a name takes the kernel's lock of its directory, which a LOOKUP or
 * READDIRPLUS holds until its answer is in place, so an answer that read
 * the record before the commit cannot bring the old node back after it. A
 * handler of the mount may notify the view's session: the kernel holds
 * locks of the mount's inodes while it waits for the answer, never of the
 * view's, and the view's own workers answer whatever holds a view lock
 * meanwhile (they stop after the mount's, fs_session.c).
 *
 * The view shows what is committed: a write in progress on the mount (a
 * shared copy not yet flushed) is not seen, nor its size, nor a record
 * file made and not yet closed (view_hides); a reader never gets an empty
 * or partial record.
 */
#include "fs_internal.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

static void view_init(void *userdata, struct fuse_conn_info *conn)
{
	(void)userdata;
	conn->want &= ~FUSE_CAP_WRITEBACK_CACHE;
	/* No OPEN: the kernel keeps the page cache as FOPEN_KEEP_CACHE would
	 * and sends no RELEASE. With atomic O_TRUNC the kernel would skip
	 * the truncation it expects OPEN to do; it cannot happen on a
	 * read-only mount, but nothing here relies on that. */
	conn->want &= ~FUSE_CAP_ATOMIC_O_TRUNC;
	if (conn->capable & FUSE_CAP_READDIRPLUS)
		conn->want |= FUSE_CAP_READDIRPLUS;
	conn->want &= ~FUSE_CAP_READDIRPLUS_AUTO;
	/* No ACLs, as on the mount (fs_init says why). */
	conn->want &= ~FUSE_CAP_POSIX_ACL;
}

/* ENOSYS on the first OPEN, OPENDIR or FLUSH makes the kernel stop sending
 * them on this mount (no_open, no_opendir, no_flush). */
static void view_open(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	(void)ino;
	(void)fi;
	fuse_reply_err(req, ENOSYS);
}

static void view_flush(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	(void)ino;
	(void)fi;
	fuse_reply_err(req, ENOSYS);
}

static void view_read(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
                      struct fuse_file_info *fi)
{
	(void)fi;
	fs_read_node(req, ino, size, off);
}

/* What would change the tree: the kernel refuses it on a read-only mount
 * before asking; should a request come anyway, the answer is the same. */
static void view_refuse_name(fuse_req_t req, fuse_ino_t parent, const char *name)
{
	(void)parent;
	(void)name;
	fuse_reply_err(req, EROFS);
}

static void view_refuse_setattr(fuse_req_t req, fuse_ino_t ino, struct stat *attr, int to_set,
                                struct fuse_file_info *fi)
{
	(void)ino;
	(void)attr;
	(void)to_set;
	(void)fi;
	fuse_reply_err(req, EROFS);
}

static void view_refuse_write(fuse_req_t req, fuse_ino_t ino, const char *buf, size_t size,
                              off_t off, struct fuse_file_info *fi)
{
	(void)ino;
	(void)buf;
	(void)size;
	(void)off;
	(void)fi;
	fuse_reply_err(req, EROFS);
}

static void view_refuse_create(fuse_req_t req, fuse_ino_t parent, const char *name, mode_t mode,
                               struct fuse_file_info *fi)
{
	(void)parent;
	(void)name;
	(void)mode;
	(void)fi;
	fuse_reply_err(req, EROFS);
}

static void view_refuse_mknod(fuse_req_t req, fuse_ino_t parent, const char *name, mode_t mode,
                              dev_t rdev)
{
	(void)mode;
	(void)rdev;
	view_refuse_name(req, parent, name);
}

static void view_refuse_mkdir(fuse_req_t req, fuse_ino_t parent, const char *name, mode_t mode)
{
	(void)mode;
	view_refuse_name(req, parent, name);
}

static void view_refuse_rename(fuse_req_t req, fuse_ino_t parent, const char *name,
                               fuse_ino_t newparent, const char *newname, unsigned int flags)
{
	(void)newparent;
	(void)newname;
	(void)flags;
	view_refuse_name(req, parent, name);
}

static void view_refuse_setxattr(fuse_req_t req, fuse_ino_t ino, const char *name,
                                 const char *value, size_t size, int flags)
{
	(void)ino;
	(void)name;
	(void)value;
	(void)size;
	(void)flags;
	fuse_reply_err(req, EROFS);
}

static void view_refuse_removexattr(fuse_req_t req, fuse_ino_t ino, const char *name)
{
	(void)ino;
	(void)name;
	fuse_reply_err(req, EROFS);
}

const struct fuse_lowlevel_ops fs_view_ops = {
        .init = view_init,
        .lookup = fs_lookup,
        .forget = fs_forget,
        .forget_multi = fs_forget_multi,
        .getattr = fs_getattr,
        .setattr = view_refuse_setattr,
        .mknod = view_refuse_mknod,
        .mkdir = view_refuse_mkdir,
        .unlink = view_refuse_name,
        .rmdir = view_refuse_name,
        .rename = view_refuse_rename,
        .open = view_open,
        .read = view_read,
        .write = view_refuse_write,
        .flush = view_flush,
        .opendir = view_open,
        .readdir = fs_readdir,
        .readdirplus = fs_readdirplus,
        .statfs = fs_statfs,
        .setxattr = view_refuse_setxattr,
        .getxattr = fs_getxattr,
        .listxattr = fs_listxattr,
        .removexattr = view_refuse_removexattr,
        .create = view_refuse_create,
};

bool view_hides(const char *name, const struct store_node *n)
{
	size_t len = strlen(name);
	return n->kind == STORE_FILE && n->state == STORE_SCRATCH && len > 5 &&
	       strcmp(name + len - 5, ".json") == 0;
}

/* A revision's node id: a kind of its own (the store's kinds end at
 * FILE), the row id shifted up, the low bits of the revision below. Row
 * ids stay far below 2^40; revisions wrap after 2^20, and the generation
 * (the revision's high bits) tells a wrapped node from one the kernel may
 * still hold. Scratch files, which have no revisions, keep the store's
 * inode number (their node changes its content in place). */
#define VIEW_KIND_REVISION ((enum store_kind)(STORE_FILE + 1))
#define VIEW_REV_BITS      20
#define VIEW_REV_MASK      ((1u << VIEW_REV_BITS) - 1)

static bool is_revision(const struct fs_session *s, const struct store_node *n)
{
	return s->view && n->kind == STORE_FILE && n->state != STORE_SCRATCH;
}

uint64_t session_node_id(const struct fs_session *s, const struct store_node *n)
{
	if (!is_revision(s, n))
		return n->ino;
	uint64_t id = (uint64_t)store_ino_id(n->ino);
	uint64_t rev = (uint64_t)n->rev & VIEW_REV_MASK;
	return store_ino(VIEW_KIND_REVISION, (int64_t)((id << VIEW_REV_BITS) | rev));
}

uint32_t session_generation(const struct fs_session *s, const struct store_node *n)
{
	if (!is_revision(s, n))
		return 1;
	return (uint32_t)((uint64_t)n->rev >> VIEW_REV_BITS) + 1;
}

uint64_t session_store_ino(const struct fs_session *s, uint64_t node, int64_t *rev)
{
	*rev = -1;
	if (!s->view || store_ino_kind(node) != VIEW_KIND_REVISION)
		return node;
	uint64_t id = (uint64_t)store_ino_id(node);
	*rev = (int64_t)(id & VIEW_REV_MASK);
	return store_ino(STORE_FILE, (int64_t)(id >> VIEW_REV_BITS));
}

bool session_node_current(int64_t rev, const struct store_node *n)
{
	return rev < 0 || ((uint64_t)n->rev & VIEW_REV_MASK) == (uint64_t)rev;
}

void view_forget_name(struct fs *fs, uint64_t dir, const char *name)
{
	struct fuse_session *se = fs->view.se;
	if (!se)
		return;
	/* The kernel answers ENOENT when it holds no such entry. The listing
	 * and the directory's attributes (its mtime) are dropped too. */
	fuse_lowlevel_notify_inval_entry(se, dir, name, strlen(name));
	fuse_lowlevel_notify_inval_inode(se, dir, 0, 0);
}

void view_forget_content(struct fs *fs, struct store *st, uint64_t ino)
{
	/* A new revision is a new node: only the name must go (see the top
	 * of the file). */
	uint64_t dir;
	char *name;
	if (fs->view.se && store_file_name(st, ino, &dir, &name) == 0) {
		view_forget_name(fs, dir, name);
		free(name);
		/* A scratch file's one node (no-op for a record's). */
		if (inodes_maybe_held(&fs->view.inodes, ino))
			fuse_lowlevel_notify_inval_inode(fs->view.se, ino, 0, 0);
	}
}
