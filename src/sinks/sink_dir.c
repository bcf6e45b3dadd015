/* sink_dir.c - the dir sink: batches as files in a local directory, for Flume's
 * Spooling Directory source, NiFi GetFile/ListFile, Flink's FileSource and
 * any reader of files (src/DESIGN.md, "What each consumer demands").
 *
 * A batch is written as ".NAME.tmp" in the directory it will live in
 * (hidden: every one of those readers skips names starting with '.'; a
 * staging subdirectory would not do, NiFi GetFile recurses into it), then
 * fsynced: that is `stage`. `deliver` sets the file's mtime to now (NiFi
 * ListFile tracks mtimes, and a rename keeps the old one), renames it to
 * NAME without replacing anything (RENAME_NOREPLACE) and fsyncs the
 * directory. The file is never touched again. NAME is unique for ever and
 * the flusher never makes an empty batch, and change lines hold no blank
 * lines and end in "\n" only.
 *
 * Recovery (see sink.h): the final name, or the name a consumer gave it
 * after taking it (NAME + completed_suffix, Flume's ".COMPLETED"), means
 * delivered. A staged intent whose temp file is gone was delivered too
 * (only the rename removes it: readers do not touch hidden files), and
 * then possibly taken and deleted (NiFi GetFile). A pending intent's temp
 * file may be partial: it is removed and the batch written again.
 *
 * Taken. With `acknowledge = rename` (Flume renames what it took to
 * NAME.COMPLETED) or `= delete` (NiFi GetFile deletes it), the sink
 * watches its directories with inotify and notes the names renamed away
 * or deleted (poll_taken); the flusher then asks about each batch the
 * store holds as published and not taken (`taken`), so a batch taken
 * before an earlier one does not count the earlier one. What inotify
 * cannot have seen (takes while the daemon was down, a queue that
 * overflowed) is looked for instead: a batch whose NAME is gone was taken.
 *
 * Errors are all RETRY: a full disk, a missing permission or a directory
 * removed by hand are fixed by a person, and the backlog waits in order
 * in the change log meanwhile. Nothing in a batch's content can make it
 * undeliverable here.
 */
#include "idbmount/sinks/config.h"
#include "idbmount/sinks/sink.h"
#include "idbmount/util/mkdirs.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/inotify.h>
#include <sys/stat.h>
#include <unistd.h>

/* In the order of the option's choices. */
enum acknowledge {
	ACK_PUBLISH,
	ACK_RENAME,
	ACK_DELETE,
};

struct dir_sink {
	/* Bound from the options (dir_options). */
	const char *configured_path;
	const char *completed_suffix;
	bool fsync;
	int acknowledge; /* enum acknowledge */

	char path[PATH_MAX]; /* configured_path without trailing slashes */
	const char *done_flag;
	int inotify; /* -1 unless acknowledge is rename or delete */
	/* The names the last poll_taken saw go ("a\0b\0"), and whether the
	 * watch overflowed (then dir_taken looks at the files instead). */
	char *gone;
	size_t gone_len, gone_cap;
	bool overflowed;
	/* The batch renamed into place whose directory sync then failed: the
	 * retry must only sync again. Its temp copy is gone because it was
	 * published, and a consumer may already have taken the file; writing
	 * it again would publish a name a second time (Flume stops on that). */
	char published_unsynced[NAME_MAX + 1];
};

static void watch_dir(struct dir_sink *d, const char *dir)
{
	if (d->inotify < 0)
		return;
	/* Watching a directory twice returns the same watch. */
	inotify_add_watch(d->inotify, dir,
	                  d->acknowledge == ACK_RENAME ? IN_MOVED_FROM : IN_DELETE);
}

static int fsync_dir(const char *dir)
{
	int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	int rc = fsync(fd) == 0 ? 0 : -errno;
	close(fd);
	return rc;
}

/* mkdir -p `dir` (below the sink's path, which exists); a directory made
 * here is fsynced into its parent, so a batch inside it survives a crash. */
static int make_dirs(const struct dir_sink *d, const char *dir)
{
	struct stat sb;
	if (stat(dir, &sb) == 0)
		return S_ISDIR(sb.st_mode) ? 0 : -ENOTDIR;
	return mkdirs(dir, 0755, d->fsync, NULL, 0);
}

/* The batch's directory, temp and final paths. */
static int batch_paths(const struct dir_sink *d, const struct sink_batch *b, char *dir, char *tmp,
                       char *final)
{
	int n = snprintf(dir, PATH_MAX, "%s%s%s", d->path, b->partition[0] ? "/" : "",
	                 b->partition);
	int t = snprintf(tmp, PATH_MAX, "%s/.%s.tmp", dir, b->name);
	int f = snprintf(final, PATH_MAX, "%s/%s", dir, b->name);
	return n >= PATH_MAX || t >= PATH_MAX || f >= PATH_MAX ? -ENAMETOOLONG : 0;
}

/* A batch or partition whose path does not fit: no retry can change it. */
static enum sink_result too_long(char *msg, size_t msg_len, const char *name)
{
	snprintf(msg, msg_len, "%s: path too long", name);
	return SINK_ERROR;
}

static enum sink_result fail(char *msg, size_t msg_len, const char *what, const char *path, int err)
{
	snprintf(msg, msg_len, "%s %s: %s", what, path, strerror(err));
	return SINK_RETRY;
}

static enum sink_result write_temp(struct dir_sink *d, const struct sink_batch *b, const char *dir,
                                   const char *tmp, char *msg, size_t msg_len)
{
	if (!b->data || b->len == 0) {
		snprintf(msg, msg_len, "refusing to write an empty batch %s", b->name);
		return SINK_ERROR;
	}
	int rc = make_dirs(d, dir);
	if (rc)
		return fail(msg, msg_len, "making", dir, -rc);
	int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (fd < 0)
		return fail(msg, msg_len, "creating", tmp, errno);
	size_t done = 0;
	int err = 0;
	while (done < b->len) {
		ssize_t n = write(fd, b->data + done, b->len - done);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			err = n < 0 ? errno : EIO;
			break;
		}
		done += (size_t)n;
	}
	if (!err && d->fsync && fsync(fd) != 0)
		err = errno;
	if (close(fd) != 0 && !err)
		err = errno;
	if (err) {
		/* A partial temp file helps nobody and takes space. */
		unlink(tmp);
		return fail(msg, msg_len, "writing", tmp, err);
	}
	return SINK_OK;
}

static enum sink_result dir_stage(void *ctx, const struct sink_batch *b, char *msg, size_t msg_len)
{
	struct dir_sink *d = ctx;
	char dir[PATH_MAX], tmp[PATH_MAX], final[PATH_MAX];
	if (batch_paths(d, b, dir, tmp, final))
		return too_long(msg, msg_len, b->name);
	return write_temp(d, b, dir, tmp, msg, msg_len);
}

static enum sink_result dir_deliver(void *ctx, const struct sink_batch *b, char *msg,
                                    size_t msg_len)
{
	struct dir_sink *d = ctx;
	char dir[PATH_MAX], tmp[PATH_MAX], final[PATH_MAX];
	if (batch_paths(d, b, dir, tmp, final))
		return too_long(msg, msg_len, b->name);
	bool published = strcmp(d->published_unsynced, b->name) == 0;
	if (!published && access(tmp, F_OK) != 0) {
		/* Staged, then removed by hand: write it again from the log. */
		enum sink_result res = write_temp(d, b, dir, tmp, msg, msg_len);
		if (res != SINK_OK)
			return res;
	}
	/* Watched before the file shows there, so that no take of it, however
	 * quick, goes unseen in a partition directory new to this run. */
	watch_dir(d, dir);
	/* NiFi ListFile goes by mtime, which a rename would keep. */
	if (!published && utimensat(AT_FDCWD, tmp, NULL, 0) != 0)
		return fail(msg, msg_len, "setting the time of", tmp, errno);
	if (!published && renameat2(AT_FDCWD, tmp, AT_FDCWD, final, RENAME_NOREPLACE) != 0) {
		int err = errno;
		if (err != EEXIST)
			return fail(msg, msg_len, "renaming to", final, err);
		/* The name is this batch's alone: it is already there. */
		unlink(tmp);
	}
	if (d->fsync) {
		int rc = fsync_dir(dir);
		if (rc) {
			snprintf(d->published_unsynced, sizeof(d->published_unsynced), "%s",
			         b->name);
			return fail(msg, msg_len, "syncing", dir, -rc);
		}
	}
	d->published_unsynced[0] = '\0';
	return SINK_OK;
}

/* Adds `name` to the names seen going; false when out of memory. */
static bool note_gone(struct dir_sink *d, const char *name)
{
	size_t len = strlen(name) + 1;
	if (d->gone_len + len > d->gone_cap) {
		size_t cap = (d->gone_len + len) * 2;
		char *grown = realloc(d->gone, cap);
		if (!grown)
			return false;
		d->gone = grown;
		d->gone_cap = cap;
	}
	memcpy(d->gone + d->gone_len, name, len);
	d->gone_len += len;
	return true;
}

static int dir_poll_taken(void *ctx)
{
	struct dir_sink *d = ctx;
	if (d->acknowledge == ACK_PUBLISH)
		return -1;
	d->gone_len = 0;
	d->overflowed = false;
	char events[16384] __attribute__((aligned(__alignof__(struct inotify_event))));
	ssize_t n;
	while ((n = read(d->inotify, events, sizeof(events))) > 0) {
		for (char *p = events; p < events + n;) {
			const struct inotify_event *ev = (const struct inotify_event *)p;
			/* Watches are asked for IN_MOVED_FROM (rename) or
			 * IN_DELETE (delete) only: a rename away is not a delete. */
			if (ev->mask & IN_Q_OVERFLOW)
				d->overflowed = true;
			else if (ev->len && ev->name[0] != '.' && !note_gone(d, ev->name))
				d->overflowed = true; /* lost it: look instead */
			p += sizeof(*ev) + ev->len;
		}
	}
	return d->overflowed || d->gone_len > 0;
}

static int dir_taken(void *ctx, const struct sink_batch *b, bool look)
{
	struct dir_sink *d = ctx;
	if (!look && !d->overflowed) {
		for (size_t i = 0; i < d->gone_len; i += strlen(d->gone + i) + 1)
			if (strcmp(d->gone + i, b->name) == 0)
				return 1;
		return 0;
	}
	char dir[PATH_MAX], tmp[PATH_MAX], final[PATH_MAX];
	if (batch_paths(d, b, dir, tmp, final))
		return 1; /* never published under such a name */
	struct stat sb;
	if (stat(final, &sb) != 0 && errno == ENOENT)
		return 1; /* renamed (Flume's .COMPLETED) or deleted (NiFi) */
	/* After a restart, its directory is watched again. */
	watch_dir(d, dir);
	return 0;
}

static enum sink_result dir_recover(void *ctx, const struct sink_batch *b, bool staged,
                                    enum sink_recovery *found, char *msg, size_t msg_len)
{
	struct dir_sink *d = ctx;
	char dir[PATH_MAX], tmp[PATH_MAX], final[PATH_MAX], completed[PATH_MAX + 64];
	if (batch_paths(d, b, dir, tmp, final))
		return too_long(msg, msg_len, b->name);
	snprintf(completed, sizeof(completed), "%s%s", final, d->completed_suffix);
	struct stat sb;
	if (stat(final, &sb) == 0 || (d->completed_suffix[0] && stat(completed, &sb) == 0)) {
		*found = SINK_RECOVER_DELIVERED;
		if (unlink(tmp) != 0 && errno != ENOENT)
			return fail(msg, msg_len, "removing", tmp, errno);
		return SINK_OK;
	}
	bool have_tmp = stat(tmp, &sb) == 0;
	if (!have_tmp && errno != ENOENT)
		return fail(msg, msg_len, "checking", tmp, errno);
	if (staged) {
		*found = have_tmp ? SINK_RECOVER_STAGED : SINK_RECOVER_DELIVERED;
		return SINK_OK;
	}
	if (have_tmp && unlink(tmp) != 0)
		return fail(msg, msg_len, "removing", tmp, errno);
	*found = SINK_RECOVER_REDO;
	return SINK_OK;
}

static enum sink_result dir_close_period(void *ctx, const char *partition, char *msg,
                                         size_t msg_len)
{
	struct dir_sink *d = ctx;
	char dir[PATH_MAX], flag[PATH_MAX + 300];
	int n = snprintf(dir, sizeof(dir), "%s/%s", d->path, partition);
	if (n < 0 || (size_t)n >= sizeof(dir))
		return too_long(msg, msg_len, partition);
	snprintf(flag, sizeof(flag), "%s/%s", dir, d->done_flag);
	int rc = make_dirs(d, dir);
	if (rc)
		return fail(msg, msg_len, "making", dir, -rc);
	int fd = open(flag, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
	if (fd < 0) {
		if (errno == EEXIST)
			return SINK_OK;
		return fail(msg, msg_len, "creating", flag, errno);
	}
	close(fd);
	if (d->fsync && (rc = fsync_dir(dir)) != 0)
		return fail(msg, msg_len, "syncing", dir, -rc);
	return SINK_OK;
}

static bool check_suffix(const char *value, char *why, size_t why_len)
{
	if (strchr(value, '/')) {
		snprintf(why, why_len, "must not hold '/'");
		return false;
	}
	return true;
}

static const struct sink_option dir_options[] = {
        {.name = "path",
         .kind = SINK_OPT_PATH,
         .help = "the directory the batches go to (made if missing)",
         SINK_BIND(struct dir_sink, configured_path)},
        {.name = "completed_suffix",
         .kind = SINK_OPT_STRING,
         .default_value = ".COMPLETED",
         .help = "what a consumer appends to a file it took (Flume spooldir's fileSuffix); a "
                 "batch found under that name counts as delivered after a crash",
         .check = check_suffix,
         SINK_BIND(struct dir_sink, completed_suffix)},
        {.name = "acknowledge",
         .kind = SINK_OPT_CHOICE,
         .default_value = "publish",
         .help = "when a batch counts as taken (the delivered seq): when published, when a "
                 "consumer renames it (Flume), or deletes it (NiFi GetFile)",
         .choices = "publish|rename|delete",
         SINK_BIND(struct dir_sink, acknowledge)},
        {.name = "fsync",
         .kind = SINK_OPT_BOOL,
         .default_value = "true",
         .help = "fsync each file and its directory before it counts as delivered",
         SINK_BIND(struct dir_sink, fsync)},
        {0},
};

static int dir_init(const struct sink_config *cfg, void **ctx, char *err, size_t err_len)
{
	struct dir_sink *d = calloc(1, sizeof(*d));
	if (!d)
		return -ENOMEM;
	sink_options_bind(cfg, dir_options, d);
	snprintf(d->path, sizeof(d->path), "%s", d->configured_path);
	size_t len = strlen(d->path);
	while (len > 1 && d->path[len - 1] == '/')
		d->path[--len] = '\0';
	d->done_flag = cfg->done_flag;
	d->inotify = -1;
	/* The directory itself is made here, with its parents, so that a
	 * path that cannot be made stops the daemon at start. */
	char failed[PATH_MAX];
	int rc = mkdirs(d->path, 0755, false, failed, sizeof(failed));
	if (rc) {
		snprintf(err, err_len, "cannot make %s: %s", failed, strerror(-rc));
		free(d);
		return -EINVAL;
	}
	if (access(d->path, W_OK | X_OK) != 0) {
		snprintf(err, err_len, "cannot write into %s: %s", d->path, strerror(errno));
		free(d);
		return -EACCES;
	}
	if (d->acknowledge != ACK_PUBLISH) {
		d->inotify = inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
		if (d->inotify < 0) {
			snprintf(err, err_len, "inotify: %s", strerror(errno));
			free(d);
			return -EIO;
		}
		watch_dir(d, d->path);
	}
	*ctx = d;
	return 0;
}

static void dir_close(void *ctx)
{
	struct dir_sink *d = ctx;
	if (d && d->inotify >= 0)
		close(d->inotify);
	if (d)
		free(d->gone);
	free(d);
}

const struct sink_type sink_type_dir = {
        .name = "dir",
        .summary = "files in a local directory (Flume spooldir, NiFi GetFile/ListFile, Flink "
                   "FileSource)",
        .options = dir_options,
        .files = true,
        .init = dir_init,
        .stage = dir_stage,
        .deliver = dir_deliver,
        .recover = dir_recover,
        .close_period = dir_close_period,
        .poll_taken = dir_poll_taken,
        .taken = dir_taken,
        .close = dir_close,
};
