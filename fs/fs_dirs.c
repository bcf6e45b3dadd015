/* fs_dirs.c - the handlers of names and directories: unlink, rename,
 * mkdir, rmdir, symlink, link, and listing a directory (see fs_ops.c for
 * what all handlers share).
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

/* ---- names ------------------------------------------------------------------ */

void fs_unlink(fuse_req_t req, fuse_ino_t parent, const char *name)
{
	struct fs_session *s = req_session(req);
	inodes_names_asked(&s->inodes, parent);
	struct store *st = fs_thread_store(s->fs);
	int rc = st ? store_unlink(st, parent, name) : -EIO;
	if (rc == 0)
		view_forget_name(s->fs, parent, name);
	fs_reply_result(req, st, "unlink", name, rc);
}

void fs_rename(fuse_req_t req, fuse_ino_t parent, const char *name, fuse_ino_t newparent,
               const char *newname, unsigned int flags)
{
	struct fs_session *s = req_session(req);
	inodes_names_asked(&s->inodes, parent);
	inodes_names_asked(&s->inodes, newparent);
	struct store *st = fs_thread_store(s->fs);
	if (flags & ~(unsigned)(RENAME_NOREPLACE | RENAME_EXCHANGE)) {
		fuse_reply_err(req, EINVAL);
		return;
	}
	int rc = st ? store_rename(st, parent, name, newparent, newname, flags) : -EIO;
	if (rc == 0) {
		view_forget_name(s->fs, parent, name);
		view_forget_name(s->fs, newparent, newname);
	}
	fs_reply_result(req, st, "rename", name, rc);
}

void fs_mkdir(fuse_req_t req, fuse_ino_t parent, const char *name, mode_t mode)
{
	struct fs_session *s = req_session(req);
	inodes_names_asked(&s->inodes, parent);
	(void)mode;
	struct store *st = req_store(req, s->fs);
	if (!st)
		return;
	struct store_node n;
	int rc = store_mkdir(st, parent, name, &n);
	if (rc) {
		fs_reply_result(req, st, "mkdir", name, rc);
		return;
	}
	view_forget_name(s->fs, parent, name);
	fs_reply_entry(req, s, &n);
}

void fs_rmdir(fuse_req_t req, fuse_ino_t parent, const char *name)
{
	struct fs_session *s = req_session(req);
	inodes_names_asked(&s->inodes, parent);
	struct store *st = fs_thread_store(s->fs);
	int rc = st ? store_rmdir(st, parent, name) : -EIO;
	if (rc == 0)
		view_forget_name(s->fs, parent, name);
	fs_reply_result(req, st, "rmdir", name, rc);
}

void fs_symlink(fuse_req_t req, const char *link, fuse_ino_t parent, const char *name)
{
	(void)link;
	(void)parent;
	fprintf(stderr, "idbmount: symlink %s: links are not supported\n", name);
	fuse_reply_err(req, EPERM);
}

void fs_link(fuse_req_t req, fuse_ino_t ino, fuse_ino_t newparent, const char *newname)
{
	(void)ino;
	(void)newparent;
	fprintf(stderr, "idbmount: link %s: links are not supported\n", newname);
	fuse_reply_err(req, EPERM);
}

/* ---- directories ------------------------------------------------------------ */

void fs_opendir(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	struct fs *fs = req_fs(req);
	if (store_ino_kind(ino) == STORE_FILE) {
		fuse_reply_err(req, ENOTDIR);
		return;
	}
	fi->cache_readdir = fs->cfg.cache == FS_CACHE_ALWAYS;
	fi->keep_cache = fs->cfg.cache == FS_CACHE_ALWAYS;
	fuse_reply_open(req, fi);
}

/* Directory offsets: 1 after ".", 2 after "..", row id + 2 after a child.
 * A child's offset is its row id: one indexed range query per call. */
#define DOT_OFFSETS 2

struct dir_fill {
	fuse_req_t req;
	struct fs_session *s;
	char *buf;
	size_t size;
	size_t len;
	bool plus;
};

static bool dir_add(struct dir_fill *f, const char *name, const struct store_node *n, off_t next)
{
	size_t room = f->size - f->len;
	size_t used;
	if (f->plus) {
		struct fuse_entry_param e;
		fs_fill_entry(f->s, n, &e);
		used = fuse_add_direntry_plus(f->req, f->buf + f->len, room, name, &e, next);
	} else {
		struct stat stbuf;
		fs_fill_stat(f->s, n, &stbuf);
		used = fuse_add_direntry(f->req, f->buf + f->len, room, name, &stbuf, next);
	}
	if (used > room)
		return false;
	f->len += used;
	return true;
}

static int dir_fill_child(void *ctx, const char *name, const struct store_node *n, int64_t cursor)
{
	struct dir_fill *f = ctx;
	if (f->s->view && view_hides(name, n))
		return 0;
	if (!dir_add(f, name, n, (off_t)(cursor + DOT_OFFSETS)))
		return 1;
	if (f->plus)
		inodes_ref(&f->s->inodes, n->ino);
	return 0;
}

static void do_readdir(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off, bool plus)
{
	struct fs_session *s = req_session(req);
	struct store *st = req_store(req, s->fs);
	if (!st)
		return;
	struct dir_fill f = {.req = req, .s = s, .size = size, .plus = plus};
	f.buf = malloc(size);
	if (!f.buf) {
		fuse_reply_err(req, ENOMEM);
		return;
	}
	struct store_node self;
	int rc = store_getattr(st, ino, &self);
	if (rc == 0 && off < 1 && !dir_add(&f, ".", &self, 1))
		goto reply;
	if (rc == 0 && off < 2) {
		struct store_node parent;
		if (store_getattr(st, self.parent, &parent) != 0)
			parent = self;
		if (!dir_add(&f, "..", &parent, 2))
			goto reply;
	}
	if (rc == 0)
		rc = store_readdir(st, ino, off > DOT_OFFSETS ? off - DOT_OFFSETS : 0,
		                   dir_fill_child, &f);
reply:
	if (rc)
		fuse_reply_err(req, -rc);
	else
		fuse_reply_buf(req, f.buf, f.len);
	free(f.buf);
}

void fs_readdir(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off, struct fuse_file_info *fi)
{
	(void)fi;
	do_readdir(req, ino, size, off, false);
}

void fs_readdirplus(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
                    struct fuse_file_info *fi)
{
	(void)fi;
	struct inodes *in = &req_session(req)->inodes;
	inodes_listing_begin(in);
	do_readdir(req, ino, size, off, true);
	inodes_listing_end(in);
}

void fs_releasedir(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	(void)ino;
	(void)fi;
	fuse_reply_err(req, 0);
}

void fs_fsyncdir(fuse_req_t req, fuse_ino_t ino, int datasync, struct fuse_file_info *fi)
{
	(void)ino;
	(void)datasync;
	(void)fi;
	fuse_reply_err(req, 0);
}

void fs_statfs(fuse_req_t req, fuse_ino_t ino)
{
	(void)ino;
	struct fs *fs = req_fs(req);
	struct store *st = fs_thread_store(fs);
	struct statvfs sv;
	memset(&sv, 0, sizeof(sv));
	/* Space is the data directory's; the file count is the records'. */
	if (statvfs(fs->datadir, &sv) != 0) {
		fuse_reply_err(req, errno);
		return;
	}
	uint64_t files = 0, bytes = 0;
	if (st)
		store_count_files(st, &files, &bytes);
	sv.f_files = files + sv.f_ffree;
	sv.f_namemax = 255;
	fuse_reply_statfs(req, &sv);
}
