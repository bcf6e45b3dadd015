/* fs_ops.c - the FUSE view: one handler per low-level operation, each
 * translating a file operation into store calls and answering with exactly
 * one fuse_reply_*. The ops table is at the end of the file.
 *
 * Inodes are the store's node numbers (store.h). Each worker thread has its
 * own SQLite connection, opened on first use and closed when the thread
 * ends; handlers touch only SQLite, never the network.
 *
 * Writes: the content is copied into a handle; writes change the copy;
 * FLUSH (every close) commits it as one revision when it changed. So
 * `close` is where bad JSON is refused (EINVAL), and the stored record
 * keeps its value.
 *
 * With cache=always (the default) files are not opened at all: OPEN
 * answers ENOSYS, and the kernel then stops sending OPEN and RELEASE
 * (FUSE_CAP_NO_OPEN_SUPPORT) and keeps the page cache. A warm `grep -r`
 * then costs one FLUSH per file, answered without touching SQLite: each
 * round trip to the daemon costs as much as the whole read of a small file,
 * and OPEN + RELEASE made warm reads 6x slower than plain files. Writes
 * then go to one shared copy per inode (a "pending" handle, like the page
 * cache of a local file system), created by the first write or truncate
 * and committed by the next FLUSH. A pending handle that only holds an
 * O_TRUNC (a shell's `> f` closes one descriptor before writing) waits for
 * the first write; one that is never written is dropped at unmount and the
 * record keeps its value. Files made with CREATE still get a handle of
 * their own and a RELEASE. Other cache modes, and -o private_writes, open
 * every file, so they can ask for direct_io (never) or fresh pages (auto)
 * per open, or give each writer a private copy (src/DESIGN.md, "Writes
 * from shell tools and editors": two processes rewriting one file at once
 * each commit a whole revision, where a shared copy interleaves their bytes
 * as a local file system does).
 *
 * Caching (cache=always, the default): a day of entry, attribute and
 * negative-entry timeouts, kept pages and cached listings. Changes made
 * through the mount are seen by the kernel itself; the others are
 * invalidated by the notifier thread (fs_notifier.c).
 */
#include "fs_internal.h"

#include "idbmount/util/buf.h"
#include "idbmount/fs/fs.h"
#include "idbmount/store/store.h"

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

#define XATTR_PREFIX  "user.idbmount."
#define XATTR_REV     "user.idbmount.rev"
#define XATTR_SEQ     "user.idbmount.seq"
#define XATTR_ORIGIN  "user.idbmount.origin"
#define XATTR_KEYPATH "user.idbmount.keypath"
#define XATTR_AUTOINC "user.idbmount.autoincrement"

/* An open file. Writable handles are also on fs->writers, so getattr can
 * report the size of unflushed writes. */
struct handle {
	uint64_t ino;
	pthread_mutex_t lock;
	bool writable;
	/* Changed since the last commit, and the size then: written under
	 * h->lock, read by getattr (dirty_size) under fs->writers_lock only,
	 * which may not take h->lock (pending_retire holds h->lock and takes
	 * writers_lock). ThreadSanitizer saw the plain reads race. */
	atomic_bool dirty;
	atomic_size_t dirty_len;
	bool written;  /* write() or truncate since open, not just O_TRUNC */
	bool loaded;   /* `data` holds the content */
	bool pending;  /* the inode's shared copy (no-open mode), not an open */
	int failed;    /* errno of a refused write: the copy lost data, so it is
	                  never committed and every FLUSH reports this */
	bool retired;  /* pending, committed: no longer on fs->writers */
	unsigned refs; /* pending: requests using it (under writers_lock) */
	struct buf data;
	struct handle *prev, *next;
};

/* This thread's connection, opened on first use; NULL (logged) on failure. */
static struct store *thread_store(struct fs *fs)
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

static struct fs_session *req_session(fuse_req_t req)
{
	return fuse_req_userdata(req);
}

static struct fs *req_fs(fuse_req_t req)
{
	return req_session(req)->fs;
}

/* This thread's connection for a request that needs one; NULL after
 * answering the request with EIO. */
static struct store *req_store(fuse_req_t req, struct fs *fs)
{
	struct store *st = thread_store(fs);
	if (!st)
		fuse_reply_err(req, EIO);
	return st;
}

static struct handle *fi_handle(const struct fuse_file_info *fi)
{
	return fi ? (struct handle *)(uintptr_t)fi->fh : NULL;
}

/* Logs why an operation was refused: the only message the person who ran
 * `cp` or `vim` gets beyond the errno. */
static void log_refusal(struct store *st, const char *op, const char *name, int rc)
{
	const char *why = store_last_error(st);
	if (rc == -ENOENT || rc == -EEXIST || rc == -ENOTEMPTY)
		return;
	fprintf(stderr, "idbmount: %s%s%s: %s%s%s\n", op, name && *name ? " " : "",
	        name ? name : "", strerror(-rc), *why ? ": " : "", why);
}

/* Answers `op` on `name` with its result `rc` (0 or -errno), logging a
 * refusal first; `st` is NULL when the thread had no connection. */
static void reply_result(fuse_req_t req, struct store *st, const char *op, const char *name, int rc)
{
	if (rc && st)
		log_refusal(st, op, name, rc);
	fuse_reply_err(req, -rc);
}

static void fill_stat(struct fs_session *s, const struct store_node *n, struct stat *stbuf)
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

/* Marks a handle changed after its data changed (under h->lock). */
static void handle_set_dirty(struct handle *h)
{
	atomic_store(&h->dirty_len, h->data.len);
	atomic_store(&h->dirty, true);
}

/* The size of unflushed writes on `ino`, if any handle has them. */
static bool dirty_size(struct fs *fs, uint64_t ino, uint64_t *size)
{
	bool found = false;
	pthread_mutex_lock(&fs->writers_lock);
	for (struct handle *h = fs->writers; h; h = h->next) {
		if (h->ino == ino && atomic_load(&h->dirty)) {
			*size = atomic_load(&h->dirty_len);
			found = true;
		}
	}
	pthread_mutex_unlock(&fs->writers_lock);
	return found;
}

static void fill_entry(struct fs_session *s, const struct store_node *n, struct fuse_entry_param *e)
{
	memset(e, 0, sizeof(*e));
	e->ino = session_node_id(s, n);
	e->generation = session_generation(s, n);
	e->attr_timeout = s->timeout;
	e->entry_timeout = s->timeout;
	fill_stat(s, n, &e->attr);
}

static void reply_entry(fuse_req_t req, struct fs_session *s, const struct store_node *n)
{
	struct fuse_entry_param e;
	fill_entry(s, n, &e);
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
	reply_entry(req, s, &n);
}

static void fs_forget_one(struct fs_session *s, fuse_ino_t node, uint64_t nlookup)
{
	int64_t rev;
	uint64_t ino = session_store_ino(s, node, &rev);
	if (inodes_unref(&s->inodes, ino, nlookup) != 0 || fs_inode_counted(s->fs, ino))
		return;
	struct store *st = thread_store(s->fs);
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
		dirty_size(fs, n.ino, &n.size);
	struct stat stbuf;
	fill_stat(s, &n, &stbuf);
	fuse_reply_attr(req, &stbuf, s->timeout);
}

/* ---- commits ------------------------------------------------------------- */

/* Commits a handle's copy if it changed. Returns 0 or -errno. */
static int handle_commit(struct fs *fs, struct store *st, struct handle *h)
{
	if (h->failed) {
		/* The kernel cached the bytes that were taken: drop them, so the
		 * file shows the stored value again. */
		if (atomic_exchange(&h->dirty, false) && fs->notifier)
			notifier_inval_inode_wait(fs->notifier, h->ino);
		return -h->failed;
	}
	if (!h->dirty)
		return 0;
	bool rewritten = false;
	int rc = store_commit_file(st, h->ino, h->data.data, h->data.len, &rewritten, NULL);
	atomic_store(&h->dirty, false);
	if (rc)
		log_refusal(st, "commit", "", rc);
	/* The kernel cached what was written; if the store holds something
	 * else (refused, or the key was added), drop it before close returns. */
	if ((rc || rewritten) && fs->notifier)
		notifier_inval_inode_wait(fs->notifier, h->ino);
	if (rc == 0)
		view_forget_content(fs, st, h->ino);
	return rc;
}

static int handle_load(struct store *st, struct handle *h)
{
	if (h->loaded)
		return 0;
	char *data = NULL;
	size_t len = 0;
	int rc = store_read_file(st, h->ino, &data, &len);
	if (rc)
		return rc;
	buf_reset(&h->data);
	rc = buf_append(&h->data, data, len);
	free(data);
	if (rc == 0)
		h->loaded = true;
	return rc;
}

/* fs->writers, with writers_lock held: the handles whose unflushed size
 * getattr reports, and the pending copies. */
static void writers_link(struct fs *fs, struct handle *h)
{
	h->prev = NULL;
	h->next = fs->writers;
	if (fs->writers)
		fs->writers->prev = h;
	fs->writers = h;
}

static void writers_unlink(struct fs *fs, struct handle *h)
{
	if (h->prev)
		h->prev->next = h->next;
	else
		fs->writers = h->next;
	if (h->next)
		h->next->prev = h->prev;
	h->prev = h->next = NULL;
}

static size_t record_cap(struct fs *fs)
{
	return fs->cfg.max_record ? fs->cfg.max_record : STORE_DEFAULT_MAX_RECORD;
}

/* A handle not yet on any list. */
static struct handle *handle_alloc(struct fs *fs, uint64_t ino, bool writable)
{
	struct handle *h = calloc(1, sizeof(*h));
	if (!h)
		return NULL;
	h->ino = ino;
	h->writable = writable;
	pthread_mutex_init(&h->lock, NULL);
	buf_init(&h->data, record_cap(fs));
	return h;
}

static void handle_destroy(struct handle *h)
{
	buf_free(&h->data);
	pthread_mutex_destroy(&h->lock);
	free(h);
}

/* Frees an open's handle (or, at unmount, any handle still listed). */
static void handle_free(struct fs *fs, struct handle *h)
{
	if (h->writable && !h->retired) {
		pthread_mutex_lock(&fs->writers_lock);
		writers_unlink(fs, h);
		pthread_mutex_unlock(&fs->writers_lock);
	}
	handle_destroy(h);
}

static struct handle *handle_new(struct fs *fs, uint64_t ino, bool writable)
{
	struct handle *h = handle_alloc(fs, ino, writable);
	if (h && writable) {
		pthread_mutex_lock(&fs->writers_lock);
		writers_link(fs, h);
		pthread_mutex_unlock(&fs->writers_lock);
	}
	return h;
}

/* ---- pending handles (no-open mode) ---------------------------------------- */

/* The inode's pending handle, with a reference taken; made (empty, not
 * loaded) when there is none and `create` is set. NULL if none or out of
 * memory. */
static struct handle *pending_get(struct fs *fs, uint64_t ino, bool create)
{
	pthread_mutex_lock(&fs->writers_lock);
	struct handle *h = fs->writers;
	while (h && !(h->pending && h->ino == ino))
		h = h->next;
	if (!h && create && (h = handle_alloc(fs, ino, true)) != NULL) {
		h->pending = true;
		writers_link(fs, h);
	}
	if (h)
		h->refs++;
	pthread_mutex_unlock(&fs->writers_lock);
	return h;
}

/* Takes a pending handle off fs->writers once its content is committed (or
 * refused): the next write starts from the store again. Called with h->lock
 * held, so a writer that got `h` just before sees `retired` and retries. */
static void pending_retire(struct fs *fs, struct handle *h)
{
	pthread_mutex_lock(&fs->writers_lock);
	if (!h->retired) {
		writers_unlink(fs, h);
		h->retired = true;
	}
	pthread_mutex_unlock(&fs->writers_lock);
}

static void pending_put(struct fs *fs, struct handle *h)
{
	pthread_mutex_lock(&fs->writers_lock);
	bool last = --h->refs == 0 && h->retired;
	pthread_mutex_unlock(&fs->writers_lock);
	if (last)
		handle_destroy(h);
}

/* The inode's pending handle, locked and loaded with the record's content
 * (the content at the first write, as for a file opened without O_TRUNC).
 * Release with pending_unlock. */
static int pending_lock(struct fs *fs, struct store *st, uint64_t ino, struct handle **out)
{
	for (;;) {
		struct handle *h = pending_get(fs, ino, true);
		if (!h)
			return -ENOMEM;
		pthread_mutex_lock(&h->lock);
		if (h->retired) { /* committed meanwhile: start again */
			pthread_mutex_unlock(&h->lock);
			pending_put(fs, h);
			continue;
		}
		int rc = handle_load(st, h);
		if (rc) {
			pthread_mutex_unlock(&h->lock);
			pending_put(fs, h);
			return rc;
		}
		*out = h;
		return 0;
	}
}

static void pending_unlock(struct fs *fs, struct handle *h)
{
	pthread_mutex_unlock(&h->lock);
	pending_put(fs, h);
}

/* Whether `ino` is a scratch file, for which empty is a valid content to
 * commit at once (a record's would be refused). */
static bool pending_is_scratch(struct fs *fs, uint64_t ino)
{
	struct store *st = thread_store(fs);
	struct store_node n;
	return st && store_getattr(st, ino, &n) == 0 && n.state == STORE_SCRATCH;
}

/* Commits the inode's pending copy at a FLUSH or fsync. One that holds
 * only an O_TRUNC waits for its first write (see the top of the file). */
static int pending_commit(struct fs *fs, uint64_t ino)
{
	struct handle *h = pending_get(fs, ino, false);
	if (!h)
		return 0; /* a reader's close: no SQLite at all */
	int rc = 0;
	pthread_mutex_lock(&h->lock);
	if (!h->retired && h->failed) {
		/* A write was refused (EFBIG): the kernel may have told the
		 * writer only of a short write, so close says it too. The copy
		 * is dropped and the kernel made to forget the size and pages
		 * it cached, so the record shows its stored value again. */
		rc = -h->failed;
		pending_retire(fs, h);
		if (fs->notifier)
			notifier_inval_inode_wait(fs->notifier, ino);
	} else if (!h->retired && (h->written || h->data.len || pending_is_scratch(fs, ino))) {
		struct store *st = thread_store(fs);
		rc = st ? handle_commit(fs, st, h) : -EIO;
		pending_retire(fs, h);
	}
	pthread_mutex_unlock(&h->lock);
	pending_put(fs, h);
	return rc;
}

static void set_open_flags(struct fs *fs, struct fuse_file_info *fi, bool writable)
{
	fi->keep_cache = fs->cfg.cache == FS_CACHE_ALWAYS;
	fi->direct_io = fs->cfg.cache == FS_CACHE_NEVER;
	/* Nothing to commit when reading: skip the FLUSH round trip. */
	fi->noflush = !writable;
}

/* ---- files ----------------------------------------------------------------- */

static void fs_setattr(fuse_req_t req, fuse_ino_t ino, struct stat *attr, int to_set,
                       struct fuse_file_info *fi)
{
	struct fs *fs = req_fs(req);
	struct store *st = req_store(req, fs);
	if (!st)
		return;
	int rc = 0;
	/* chmod, chown and utimens succeed without effect (cp -p, rsync -a). */
	if (to_set & FUSE_SET_ATTR_SIZE) {
		if (store_ino_kind(ino) != STORE_FILE) {
			fuse_reply_err(req, EISDIR);
			return;
		}
		if ((uint64_t)attr->st_size > record_cap(fs)) {
			fuse_reply_err(req, EFBIG);
			return;
		}
		struct handle *h = fi_handle(fi);
		if (h && h->writable) {
			pthread_mutex_lock(&h->lock);
			rc = handle_load(st, h);
			if (!rc)
				rc = buf_set_len(&h->data, (size_t)attr->st_size);
			if (!rc) {
				h->written = true;
				handle_set_dirty(h);
			}
			pthread_mutex_unlock(&h->lock);
		} else if (fs->no_open) {
			/* ftruncate, open's O_TRUNC or truncate(2): the kernel sends
			 * the last two alike (no file, no time), so both wait for
			 * the next FLUSH of the file, like a write. */
			rc = pending_lock(fs, st, ino, &h);
			if (!rc) {
				rc = buf_set_len(&h->data, (size_t)attr->st_size);
				if (!rc) {
					handle_set_dirty(h);
					/* O_TRUNC alone is not a write (see fs_flush). */
					h->written = h->written || fi || attr->st_size;
				}
				pending_unlock(fs, h);
			}
		} else {
			/* truncate(path): commit at once, as one revision. */
			struct handle *tmp = handle_new(fs, ino, false);
			rc = tmp ? handle_load(st, tmp) : -ENOMEM;
			if (!rc)
				rc = buf_set_len(&tmp->data, (size_t)attr->st_size);
			if (!rc) {
				handle_set_dirty(tmp);
				rc = handle_commit(fs, st, tmp);
			}
			if (tmp)
				handle_free(fs, tmp);
		}
	}
	if (rc) {
		fuse_reply_err(req, -rc);
		return;
	}
	fs_getattr(req, ino, fi);
}

static void fs_open(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	struct fs *fs = req_fs(req);
	struct store *st = req_store(req, fs);
	if (!st)
		return;
	if (store_ino_kind(ino) != STORE_FILE) {
		fuse_reply_err(req, EISDIR);
		return;
	}
	if (fs->no_open) {
		/* The kernel goes on without a handle and never opens again. */
		fuse_reply_err(req, ENOSYS);
		return;
	}
	bool writable = (fi->flags & O_ACCMODE) != O_RDONLY;
	struct handle *h = handle_new(fs, ino, writable);
	if (!h) {
		fuse_reply_err(req, ENOMEM);
		return;
	}
	int rc = 0;
	if (writable && (fi->flags & O_TRUNC)) {
		h->loaded = true;
		handle_set_dirty(h);
	} else if (writable) {
		rc = handle_load(st, h);
	}
	if (rc) {
		handle_free(fs, h);
		fuse_reply_err(req, -rc);
		return;
	}
	fi->fh = (uintptr_t)h;
	set_open_flags(fs, fi, writable);
	if (fuse_reply_open(req, fi) == -ENOENT)
		handle_free(fs, h);
}

static void fs_create(fuse_req_t req, fuse_ino_t parent, const char *name, mode_t mode,
                      struct fuse_file_info *fi)
{
	struct fs_session *s = req_session(req);
	inodes_names_asked(&s->inodes, parent);
	(void)mode;
	struct fs *fs = s->fs;
	struct store *st = req_store(req, fs);
	if (!st)
		return;
	struct store_node n;
	int rc = store_create_file(st, parent, name, &n);
	if (rc) {
		reply_result(req, st, "create", name, rc);
		return;
	}
	view_forget_name(fs, parent, name);
	struct handle *h = handle_new(fs, n.ino, true);
	if (!h) {
		fuse_reply_err(req, ENOMEM);
		return;
	}
	h->loaded = true;
	fi->fh = (uintptr_t)h;
	set_open_flags(fs, fi, true);
	struct fuse_entry_param e;
	fill_entry(s, &n, &e);
	inodes_ref(&s->inodes, n.ino);
	if (fuse_reply_create(req, &e, fi) == -ENOENT) {
		inodes_unref(&s->inodes, n.ino, 1);
		handle_free(fs, h);
	}
}

static void fs_mknod(fuse_req_t req, fuse_ino_t parent, const char *name, mode_t mode, dev_t rdev)
{
	struct fs_session *s = req_session(req);
	inodes_names_asked(&s->inodes, parent);
	(void)rdev;
	struct store *st = req_store(req, s->fs);
	if (!st)
		return;
	if (!S_ISREG(mode)) {
		fuse_reply_err(req, EPERM);
		return;
	}
	struct store_node n;
	int rc = store_create_file(st, parent, name, &n);
	if (rc) {
		reply_result(req, st, "mknod", name, rc);
		return;
	}
	view_forget_name(s->fs, parent, name);
	reply_entry(req, s, &n);
}

/* Where a READ of `size` bytes at `off` starts in `len` bytes of content;
 * *n is how many of them it gets (none past the end). */
static inline size_t read_window(size_t len, size_t size, off_t off, size_t *n)
{
	size_t start = (uint64_t)off < len ? (size_t)off : len;
	*n = len - start < size ? len - start : size;
	return start;
}

/* Answers a READ from `len` bytes at `data`. */
static void reply_range(fuse_req_t req, const char *data, size_t len, size_t size, off_t off)
{
	size_t n;
	size_t start = read_window(len, size, off, &n);
	fuse_reply_buf(req, data ? data + start : "", n);
}

/* Answers a READ from a locked handle's copy and unlocks it. The reply goes
 * from a copy, made before unlocking: once the kernel has the reply it may
 * close the file, and a RELEASE on another thread frees `h` while this one
 * is still returning from the reply. */
static void reply_slice(fuse_req_t req, struct handle *h, size_t size, off_t off)
{
	size_t n;
	size_t start = read_window(h->data.len, size, off, &n);
	char *copy = n ? malloc(n) : NULL;
	if (n && !copy) {
		pthread_mutex_unlock(&h->lock);
		fuse_reply_err(req, ENOMEM);
		return;
	}
	if (n)
		memcpy(copy, h->data.data + start, n);
	pthread_mutex_unlock(&h->lock);
	reply_range(req, copy, n, n, 0);
	free(copy);
}

/* Answers a READ from the stored record (no-open mode, nothing pending).
 * The page cache keeps what it gets, so this runs once per page. */
static void read_stored(fuse_req_t req, struct store *st, uint64_t ino, size_t size, off_t off)
{
	char *data = NULL;
	size_t len = 0;
	int rc = store_read_file(st, ino, &data, &len);
	if (rc)
		fuse_reply_err(req, -rc);
	else
		reply_range(req, data, len, size, off);
	free(data);
}

void fs_read_node(fuse_req_t req, uint64_t node, size_t size, off_t off)
{
	struct fs_session *s = req_session(req);
	struct store *st = req_store(req, s->fs);
	if (!st)
		return;
	int64_t want;
	uint64_t ino = session_store_ino(s, node, &want);
	char *data = NULL;
	size_t len = 0;
	int64_t rev = 0;
	int rc = store_read_file_rev(st, ino, &data, &len, &rev);
	struct store_node n = {.rev = rev};
	if (rc == 0 && !session_node_current(want, &n))
		rc = -ESTALE; /* a revision the view has replaced: see fs_view.c */
	if (rc)
		fuse_reply_err(req, -rc);
	else
		reply_range(req, data, len, size, off);
	free(data);
}

static void fs_read(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
                    struct fuse_file_info *fi)
{
	struct fs *fs = req_fs(req);
	struct store *st = req_store(req, fs);
	struct handle *h = fi_handle(fi);
	if (!st)
		return;
	if (!h) {
		/* No-open mode: the pending copy if there is one, else the
		 * record itself. */
		h = pending_get(fs, ino, false);
		if (!h) {
			read_stored(req, st, ino, size, off);
			return;
		}
		pthread_mutex_lock(&h->lock);
		int rc = h->retired ? -EAGAIN : handle_load(st, h);
		if (rc) {
			pthread_mutex_unlock(&h->lock);
			pending_put(fs, h);
			if (rc == -EAGAIN)
				read_stored(req, st, ino, size, off);
			else
				fuse_reply_err(req, -rc);
			return;
		}
		reply_slice(req, h, size, off); /* unlocks */
		pending_put(fs, h);
		return;
	}
	pthread_mutex_lock(&h->lock);
	int rc = handle_load(st, h);
	if (rc) {
		pthread_mutex_unlock(&h->lock);
		fuse_reply_err(req, -rc);
		return;
	}
	reply_slice(req, h, size, off); /* unlocks */
}

/* Writes into a locked handle's copy, unlocks it and answers the WRITE. */
static void write_locked(fuse_req_t req, struct fs *fs, struct handle *h, const char *data,
                         size_t size, off_t off)
{
	char *at = NULL;
	if ((uint64_t)off <= record_cap(fs) && size <= record_cap(fs) - (uint64_t)off)
		at = buf_reserve_at(&h->data, (size_t)off, size);
	if (!at) {
		/* A big write() reaches us in pieces: the kernel reports the
		 * pieces taken before this one as a short write, so the error
		 * must also come back from close. */
		h->failed = EFBIG;
		pthread_mutex_unlock(&h->lock);
		fprintf(stderr, "idbmount: write: file would be over the cap of %zu bytes\n",
		        record_cap(fs));
		fuse_reply_err(req, EFBIG);
		return;
	}
	memcpy(at, data, size);
	handle_set_dirty(h);
	h->written = true;
	pthread_mutex_unlock(&h->lock);
	fuse_reply_write(req, size);
}

static void fs_write(fuse_req_t req, fuse_ino_t ino, const char *data, size_t size, off_t off,
                     struct fuse_file_info *fi)
{
	struct fs *fs = req_fs(req);
	struct handle *h = fi_handle(fi);
	if (!h && fs->no_open) {
		struct store *st = thread_store(fs);
		int rc = st ? pending_lock(fs, st, ino, &h) : -EIO;
		if (rc) {
			fuse_reply_err(req, -rc);
			return;
		}
		write_locked(req, fs, h, data, size, off);
		pending_put(fs, h);
		return;
	}
	if (!h || !h->writable) {
		fuse_reply_err(req, EBADF);
		return;
	}
	pthread_mutex_lock(&h->lock);
	write_locked(req, fs, h, data, size, off);
}

static void fs_flush(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	struct fs *fs = req_fs(req);
	struct handle *h = fi_handle(fi);
	if (!h && fs->no_open) {
		fuse_reply_err(req, -pending_commit(fs, ino));
		return;
	}
	struct store *st = thread_store(fs);
	if (!st || !h) {
		fuse_reply_err(req, EIO);
		return;
	}
	pthread_mutex_lock(&h->lock);
	/* A shell's `> file` opens with O_TRUNC, then closes the first
	 * descriptor after dup2 before anything is written: that FLUSH must
	 * not commit an empty record. The empty content is committed (and
	 * refused for a record) at release if nothing is written. */
	int rc = h->failed || h->written || h->data.len ? handle_commit(fs, st, h) : 0;
	pthread_mutex_unlock(&h->lock);
	fuse_reply_err(req, -rc);
}

static void fs_fsync(fuse_req_t req, fuse_ino_t ino, int datasync, struct fuse_file_info *fi)
{
	(void)datasync;
	struct fs *fs = req_fs(req);
	struct store *st = req_store(req, fs);
	struct handle *h = fi_handle(fi);
	if (!st)
		return;
	int rc = 0;
	if (h) {
		pthread_mutex_lock(&h->lock);
		rc = handle_commit(fs, st, h);
		pthread_mutex_unlock(&h->lock);
	} else if (fs->no_open) {
		rc = pending_commit(fs, ino);
	}
	/* Commits are durable against a crash of the daemon at once; fsync
	 * makes them durable against power loss too by syncing the WAL. */
	if (rc == 0) {
		int fd = open(store_wal_path(st), O_RDONLY | O_CLOEXEC);
		if (fd >= 0) {
			if (fsync(fd) != 0)
				rc = -errno;
			close(fd);
		}
	}
	fuse_reply_err(req, -rc);
}

static void fs_release(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	(void)ino;
	struct fs *fs = req_fs(req);
	struct handle *h = fi_handle(fi);
	if (h) {
		/* Writes after the last FLUSH (through a shared mmap, say). */
		struct store *st = thread_store(fs);
		if (st && h->dirty)
			handle_commit(fs, st, h);
		handle_free(fs, h);
	}
	fuse_reply_err(req, 0);
}

/* ---- names ------------------------------------------------------------------ */

static void fs_unlink(fuse_req_t req, fuse_ino_t parent, const char *name)
{
	struct fs_session *s = req_session(req);
	inodes_names_asked(&s->inodes, parent);
	struct store *st = thread_store(s->fs);
	int rc = st ? store_unlink(st, parent, name) : -EIO;
	if (rc == 0)
		view_forget_name(s->fs, parent, name);
	reply_result(req, st, "unlink", name, rc);
}

static void fs_rename(fuse_req_t req, fuse_ino_t parent, const char *name, fuse_ino_t newparent,
                      const char *newname, unsigned int flags)
{
	struct fs_session *s = req_session(req);
	inodes_names_asked(&s->inodes, parent);
	inodes_names_asked(&s->inodes, newparent);
	struct store *st = thread_store(s->fs);
	if (flags & ~(unsigned)(RENAME_NOREPLACE | RENAME_EXCHANGE)) {
		fuse_reply_err(req, EINVAL);
		return;
	}
	int rc = st ? store_rename(st, parent, name, newparent, newname, flags) : -EIO;
	if (rc == 0) {
		view_forget_name(s->fs, parent, name);
		view_forget_name(s->fs, newparent, newname);
	}
	reply_result(req, st, "rename", name, rc);
}

static void fs_mkdir(fuse_req_t req, fuse_ino_t parent, const char *name, mode_t mode)
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
		reply_result(req, st, "mkdir", name, rc);
		return;
	}
	view_forget_name(s->fs, parent, name);
	reply_entry(req, s, &n);
}

static void fs_rmdir(fuse_req_t req, fuse_ino_t parent, const char *name)
{
	struct fs_session *s = req_session(req);
	inodes_names_asked(&s->inodes, parent);
	struct store *st = thread_store(s->fs);
	int rc = st ? store_rmdir(st, parent, name) : -EIO;
	if (rc == 0)
		view_forget_name(s->fs, parent, name);
	reply_result(req, st, "rmdir", name, rc);
}

static void fs_symlink(fuse_req_t req, const char *link, fuse_ino_t parent, const char *name)
{
	(void)link;
	(void)parent;
	fprintf(stderr, "idbmount: symlink %s: links are not supported\n", name);
	fuse_reply_err(req, EPERM);
}

static void fs_link(fuse_req_t req, fuse_ino_t ino, fuse_ino_t newparent, const char *newname)
{
	(void)ino;
	(void)newparent;
	fprintf(stderr, "idbmount: link %s: links are not supported\n", newname);
	fuse_reply_err(req, EPERM);
}

/* ---- directories ------------------------------------------------------------ */

static void fs_opendir(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
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
		fill_entry(f->s, n, &e);
		used = fuse_add_direntry_plus(f->req, f->buf + f->len, room, name, &e, next);
	} else {
		struct stat stbuf;
		fill_stat(f->s, n, &stbuf);
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

static void fs_releasedir(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	(void)ino;
	(void)fi;
	fuse_reply_err(req, 0);
}

static void fs_fsyncdir(fuse_req_t req, fuse_ino_t ino, int datasync, struct fuse_file_info *fi)
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
	struct store *st = thread_store(fs);
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

/* ---- extended attributes ---------------------------------------------------- */

/* Builds the xattrs of `node` as "name\0value\0..." pairs into `out`. */
static int collect_xattrs(struct fs_session *s, struct store *st, fuse_ino_t node, struct buf *out)
{
	int64_t rev;
	uint64_t ino = session_store_ino(s, node, &rev);
	if (store_ino_kind(ino) == STORE_FILE) {
		struct store_node n;
		int rc = session_getattr(s, st, node, &n);
		if (rc)
			return rc;
		if (n.state != STORE_LIVE)
			return 0;
		buf_printf(out, "%s%c%lld%c", XATTR_REV, 0, (long long)n.rev, 0);
		buf_printf(out, "%s%c%lld%c", XATTR_SEQ, 0, (long long)n.seq, 0);
		buf_printf(out, "%s%c%s%c", XATTR_ORIGIN, 0, store_origin_name(n.origin), 0);
		return 0;
	}
	if (store_ino_kind(ino) == STORE_OBJSTORE) {
		char *keypath = NULL;
		bool autoinc = false;
		int rc = store_objstore_info(st, ino, &keypath, &autoinc);
		if (rc)
			return rc;
		buf_printf(out, "%s%c%s%c", XATTR_KEYPATH, 0, keypath, 0);
		buf_printf(out, "%s%c%s%c", XATTR_AUTOINC, 0, autoinc ? "true" : "false", 0);
		free(keypath);
	}
	return 0;
}

/* The pair of collect_xattrs' output at *at, moving *at past it; false
 * at the end. */
static bool xattr_next(const struct buf *all, size_t *at, const char **name, const char **value)
{
	if (*at >= all->len)
		return false;
	*name = all->data + *at;
	*value = *name + strlen(*name) + 1;
	*at = (size_t)(*value - all->data) + strlen(*value) + 1;
	return true;
}

static void reply_sized(fuse_req_t req, const char *data, size_t len, size_t size)
{
	if (size == 0)
		fuse_reply_xattr(req, len);
	else if (size < len)
		fuse_reply_err(req, ERANGE);
	else
		fuse_reply_buf(req, data, len);
}

/* Attribute namespaces the mount does not have at all. `ls -l` asks every
 * file for its SELinux label (security.selinux) and its ACL
 * (system.posix_acl_access); told "not supported" once, it stops asking
 * for the rest of that file system, where "no such attribute" made it ask
 * again for every file (a round trip each). */
static bool xattr_namespace_unsupported(const char *name)
{
	return strncmp(name, "security.", 9) == 0 || strncmp(name, "trusted.", 8) == 0 ||
	       strncmp(name, "system.posix_acl_", 17) == 0;
}

void fs_getxattr(fuse_req_t req, fuse_ino_t ino, const char *name, size_t size)
{
	if (xattr_namespace_unsupported(name)) {
		fuse_reply_err(req, ENOTSUP);
		return;
	}
	if (strncmp(name, XATTR_PREFIX, strlen(XATTR_PREFIX)) != 0) {
		/* Ours are all user.idbmount.*: no need to read the record. */
		fuse_reply_err(req, ENODATA);
		return;
	}
	struct store *st = req_store(req, req_fs(req));
	if (!st)
		return;
	struct buf all;
	buf_init(&all, 1 << 16);
	int rc = collect_xattrs(req_session(req), st, ino, &all);
	if (rc) {
		buf_free(&all);
		fuse_reply_err(req, -rc);
		return;
	}
	const char *n, *v;
	for (size_t at = 0; xattr_next(&all, &at, &n, &v);) {
		if (strcmp(n, name) == 0) {
			reply_sized(req, v, strlen(v), size);
			buf_free(&all);
			return;
		}
	}
	buf_free(&all);
	fuse_reply_err(req, ENODATA);
}

void fs_listxattr(fuse_req_t req, fuse_ino_t ino, size_t size)
{
	struct store *st = req_store(req, req_fs(req));
	if (!st)
		return;
	struct buf all, names;
	buf_init(&all, 1 << 16);
	buf_init(&names, 1 << 16);
	int rc = collect_xattrs(req_session(req), st, ino, &all);
	const char *n, *v;
	for (size_t at = 0; rc == 0 && xattr_next(&all, &at, &n, &v);)
		buf_append(&names, n, strlen(n) + 1);
	if (rc)
		fuse_reply_err(req, -rc);
	else
		reply_sized(req, names.data ? names.data : "", names.len, size);
	buf_free(&all);
	buf_free(&names);
}

static void fs_setxattr(fuse_req_t req, fuse_ino_t ino, const char *name, const char *value,
                        size_t size, int flags)
{
	(void)ino;
	(void)value;
	(void)size;
	(void)flags;
	/* Ours are read-only; others are not kept (like a filesystem without
	 * user xattrs, which cp and rsync handle quietly). */
	fuse_reply_err(req,
	               strncmp(name, XATTR_PREFIX, strlen(XATTR_PREFIX)) == 0 ? EPERM : ENOTSUP);
}

static void fs_removexattr(fuse_req_t req, fuse_ino_t ino, const char *name)
{
	(void)ino;
	fuse_reply_err(req,
	               strncmp(name, XATTR_PREFIX, strlen(XATTR_PREFIX)) == 0 ? EPERM : ENOTSUP);
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

void fs_free_handles(struct fs *fs)
{
	while (fs->writers)
		handle_free(fs, fs->writers);
}
