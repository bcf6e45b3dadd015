/* fs_files.c - the handlers of record files: open, create, read, write,
 * flush, fsync, release, setattr; and the handles that hold what is
 * written until FLUSH commits it (see fs_ops.c for what all handlers share).
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

/* An open file. Writable handles are on fs->writers, so getattr can report
 * the size of unflushed writes; the others are on fs->readers. Every handle
 * is on one of the two until it is released or retired, so a daemon stopped
 * while files are open (a RELEASE still on its way at unmount, or SIGTERM)
 * frees them all. */
struct handle {
	uint64_t ino;
	pthread_mutex_t lock;
	bool writable;
	/* Changed since the last commit, and the size then: written under
	 * h->lock, read by getattr (fs_dirty_size) under fs->handles_lock only,
	 * which may not take h->lock (pending_retire holds h->lock and takes
	 * handles_lock). ThreadSanitizer saw the plain reads race. */
	atomic_bool dirty;
	atomic_size_t dirty_len;
	bool written;  /* write() or truncate since open, not just O_TRUNC */
	bool loaded;   /* `data` holds the content */
	bool pending;  /* the inode's shared copy (no-open mode), not an open */
	int failed;    /* errno of a refused write: the copy lost data, so it is
	                  never committed and every FLUSH reports this */
	bool retired;  /* pending, committed: no longer on fs->writers */
	unsigned refs; /* pending: requests using it (under handles_lock) */
	struct buf data;
	/* Made by CREATE: the name it made in directory `dir`, taken away
	 * again while `dropped` (see handle_commit). NULL otherwise. */
	char *name;
	uint64_t dir;
	bool dropped;
	struct handle *prev, *next;
};

static struct handle *fi_handle(const struct fuse_file_info *fi)
{
	return fi ? (struct handle *)(uintptr_t)fi->fh : NULL;
}

/* Marks a handle changed after its data changed (under h->lock). */
static void handle_set_dirty(struct handle *h)
{
	atomic_store(&h->dirty_len, h->data.len);
	atomic_store(&h->dirty, true);
}

/* The size of unflushed writes on `ino`, if any handle has them. */
bool fs_dirty_size(struct fs *fs, uint64_t ino, uint64_t *size)
{
	bool found = false;
	pthread_mutex_lock(&fs->handles_lock);
	for (struct handle *h = fs->writers; h; h = h->next) {
		if (h->ino == ino && atomic_load(&h->dirty)) {
			*size = atomic_load(&h->dirty_len);
			found = true;
		}
	}
	pthread_mutex_unlock(&fs->handles_lock);
	return found;
}

/* ---- commits ------------------------------------------------------------- */

/* Commits a handle's copy if it changed. Returns 0 or -errno. */
static int commit_copy(struct fs *fs, struct store *st, struct handle *h)
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
		fs_log_refusal(st, "commit", "", rc);
	/* The kernel cached what was written; if the store holds something
	 * else (refused, or the key was added), drop it before close returns. */
	if ((rc || rewritten) && fs->notifier)
		notifier_inval_inode_wait(fs->notifier, h->ino);
	if (rc == 0)
		view_forget_content(fs, st, h->ino);
	return rc;
}

/* Tells the kernel (and the view) that the name of the file `h` created
 * went or came back: it caches the entry and the listing for a day. */
static void forget_created_name(struct fs *fs, struct handle *h)
{
	if (fs->notifier)
		notifier_forget_name_wait(fs->notifier, h->dir, h->name);
	view_forget_name(fs, h->dir, h->name);
}

/* Commits a handle's copy if it changed. Returns 0 or -errno.
 *
 * A `<key>.json` this open created and whose commit is refused is taken
 * away again before close returns, so a rejected first write leaves no
 * empty file that is no record (and that sync, `idbmountctl` and the view
 * never show) on the mount, not even after a restart. A later commit
 * through the same open file gives the name back first: in
 * `(cmd; printf '}') > f.json` the exiting `cmd` closes its copy of the
 * descriptor on half a value, and the shell's last close commits it all. */
static int handle_commit(struct fs *fs, struct store *st, struct handle *h)
{
	if (h->dropped && h->dirty && !h->failed) {
		int rc = store_relink_file(st, h->ino, h->dir, h->name);
		if (rc) {
			atomic_store(&h->dirty, false);
			fprintf(stderr, "idbmount: commit %s: %s: %s\n", h->name, strerror(-rc),
			        rc == -EEXIST ? "made again by another program meanwhile"
			                      : store_last_error(st));
			return rc;
		}
		h->dropped = false;
		forget_created_name(fs, h); /* the kernel may cache "no such file" */
	}
	int rc = commit_copy(fs, st, h);
	if (rc && h->name && !h->dropped && store_drop_new_file(st, h->ino) == 0) {
		h->dropped = true;
		forget_created_name(fs, h);
		fprintf(stderr, "idbmount: %s: removed again: it never held a record\n", h->name);
	}
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
	/* A record stored over the mount's cap (put by idbmountctl, or before
	 * the cap was lowered) is still read whole: the cap bounds what writes
	 * make, and its commit refuses such a record. */
	if (len > h->data.max)
		h->data.max = len;
	rc = buf_append(&h->data, data, len);
	free(data);
	if (rc == 0)
		h->loaded = true;
	return rc;
}

/* The list a handle belongs on (fs->handles_lock held): fs->writers, the
 * handles whose unflushed size getattr reports and the pending copies, or
 * fs->readers. */
static struct handle **handle_list(struct fs *fs, const struct handle *h)
{
	return h->writable ? &fs->writers : &fs->readers;
}

static void handle_link(struct fs *fs, struct handle *h)
{
	struct handle **head = handle_list(fs, h);
	h->prev = NULL;
	h->next = *head;
	if (*head)
		(*head)->prev = h;
	*head = h;
}

static void handle_unlink(struct fs *fs, struct handle *h)
{
	if (h->prev)
		h->prev->next = h->next;
	else
		*handle_list(fs, h) = h->next;
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
	free(h->name);
	buf_free(&h->data);
	pthread_mutex_destroy(&h->lock);
	free(h);
}

/* Frees an open's handle (or, at unmount, any handle still listed). */
static void handle_free(struct fs *fs, struct handle *h)
{
	if (!h->retired) {
		pthread_mutex_lock(&fs->handles_lock);
		handle_unlink(fs, h);
		pthread_mutex_unlock(&fs->handles_lock);
	}
	handle_destroy(h);
}

static struct handle *handle_new(struct fs *fs, uint64_t ino, bool writable)
{
	struct handle *h = handle_alloc(fs, ino, writable);
	if (h) {
		pthread_mutex_lock(&fs->handles_lock);
		handle_link(fs, h);
		pthread_mutex_unlock(&fs->handles_lock);
	}
	return h;
}

/* ---- pending handles (no-open mode) ---------------------------------------- */

/* The inode's pending handle, with a reference taken; made (empty, not
 * loaded) when there is none and `create` is set. NULL if none or out of
 * memory. */
static struct handle *pending_get(struct fs *fs, uint64_t ino, bool create)
{
	pthread_mutex_lock(&fs->handles_lock);
	struct handle *h = fs->writers;
	while (h && !(h->pending && h->ino == ino))
		h = h->next;
	if (!h && create && (h = handle_alloc(fs, ino, true)) != NULL) {
		h->pending = true;
		handle_link(fs, h);
	}
	if (h)
		h->refs++;
	pthread_mutex_unlock(&fs->handles_lock);
	return h;
}

/* Takes a pending handle off fs->writers once its content is committed (or
 * refused): the next write starts from the store again. Called with h->lock
 * held, so a writer that got `h` just before sees `retired` and retries. */
static void pending_retire(struct fs *fs, struct handle *h)
{
	pthread_mutex_lock(&fs->handles_lock);
	if (!h->retired) {
		handle_unlink(fs, h);
		h->retired = true;
	}
	pthread_mutex_unlock(&fs->handles_lock);
}

static void pending_put(struct fs *fs, struct handle *h)
{
	pthread_mutex_lock(&fs->handles_lock);
	bool last = --h->refs == 0 && h->retired;
	pthread_mutex_unlock(&fs->handles_lock);
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
	struct store *st = fs_thread_store(fs);
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
		struct store *st = fs_thread_store(fs);
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

void fs_setattr(fuse_req_t req, fuse_ino_t ino, struct stat *attr, int to_set,
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

void fs_open(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
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

void fs_create(fuse_req_t req, fuse_ino_t parent, const char *name, mode_t mode,
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
		fs_reply_result(req, st, "create", name, rc);
		return;
	}
	view_forget_name(fs, parent, name);
	struct handle *h = handle_new(fs, n.ino, true);
	if (!h) {
		fuse_reply_err(req, ENOMEM);
		return;
	}
	h->loaded = true;
	/* Out of memory, a refused first commit leaves the empty file. */
	h->name = strdup(name);
	h->dir = parent;
	fi->fh = (uintptr_t)h;
	set_open_flags(fs, fi, true);
	struct fuse_entry_param e;
	fs_fill_entry(s, &n, &e);
	inodes_ref(&s->inodes, n.ino);
	if (fuse_reply_create(req, &e, fi) == -ENOENT) {
		inodes_unref(&s->inodes, n.ino, 1);
		handle_free(fs, h);
	}
}

void fs_mknod(fuse_req_t req, fuse_ino_t parent, const char *name, mode_t mode, dev_t rdev)
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
		fs_reply_result(req, st, "mknod", name, rc);
		return;
	}
	view_forget_name(s->fs, parent, name);
	fs_reply_entry(req, s, &n);
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

void fs_read(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off, struct fuse_file_info *fi)
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

void fs_write(fuse_req_t req, fuse_ino_t ino, const char *data, size_t size, off_t off,
              struct fuse_file_info *fi)
{
	struct fs *fs = req_fs(req);
	struct handle *h = fi_handle(fi);
	if (!h && fs->no_open) {
		struct store *st = fs_thread_store(fs);
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

void fs_flush(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	struct fs *fs = req_fs(req);
	struct handle *h = fi_handle(fi);
	if (!h && fs->no_open) {
		fuse_reply_err(req, -pending_commit(fs, ino));
		return;
	}
	struct store *st = fs_thread_store(fs);
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

void fs_fsync(fuse_req_t req, fuse_ino_t ino, int datasync, struct fuse_file_info *fi)
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

void fs_release(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	(void)ino;
	struct fs *fs = req_fs(req);
	struct handle *h = fi_handle(fi);
	if (h) {
		/* Writes after the last FLUSH (through a shared mmap, say). */
		struct store *st = fs_thread_store(fs);
		if (st && h->dirty)
			handle_commit(fs, st, h);
		handle_free(fs, h);
	}
	fuse_reply_err(req, 0);
}

void fs_free_handles(struct fs *fs)
{
	while (fs->writers)
		handle_free(fs, fs->writers);
	while (fs->readers)
		handle_free(fs, fs->readers);
}
