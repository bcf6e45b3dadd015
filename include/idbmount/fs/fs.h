/* fs.h - the FUSE view, as the daemon's main() drives it. */
#ifndef IDBMOUNT_FS_H
#define IDBMOUNT_FS_H

#include <limits.h>
#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

/* sshfs's cache=never|auto|always. ALWAYS (the default) keeps entries,
 * attributes, pages and listings cached for a day: safe because every change
 * made outside the mount is invalidated by the notifier thread. */
enum fs_cache_mode {
	FS_CACHE_NEVER,
	FS_CACHE_AUTO,
	FS_CACHE_ALWAYS,
};

struct fs_config {
	const char *datadir;
	/* Where to mount: the read-write tree and/or the read-only view (the
	 * same tree, for readers: fs_view.c). At least one. */
	const char *mountpoint;
	const char *view;
	enum fs_cache_mode cache;
	size_t max_record;    /* bytes; 0 = the store's default */
	unsigned max_threads; /* FUSE worker threads */
	/* Every open for writing gets a copy of its own (src/DESIGN.md,
	 * "Writes from shell tools and editors"), at the price of OPEN and
	 * RELEASE round trips on every open. Off by default with
	 * cache=always: see fs_ops.c. */
	bool private_writes;
	/* Who every file and directory belongs to, and the mode bits taken
	 * away from 0666 (files) and 0777 (directories), as FAT's uid=,
	 * gid= and umask= (with default_permissions, what the kernel checks
	 * for other users of an allow_other mount). */
	uid_t owner;
	gid_t group;
	mode_t umask;
	bool foreground;
	bool debug;
	/* The data directory's lock (claim.h), or -1. The watchdog process
	 * keeps it until the mounts of a daemon that died are cleared. */
	int lock_fd;
};

struct fs;
struct fs_mount_id;

/* Builds the sessions from `fuse_argv` (options for libfuse, e.g.
 * "-o allow_other,default_permissions"; the view gets "ro" on top).
 * Returns 0 or -errno with a message on stderr. */
int fs_new(const struct fs_config *cfg, int fuse_argc, char **fuse_argv, struct fs **out);

/* Mounts at `mountpoint`, detaches unless foreground (stderr then goes to
 * DATADIR/idbmount.log, 0600), blocks the signals fs_serve waits for and
 * starts the watchdog process (fs_watchdog.c) that clears the mount if
 * the daemon dies. Call it before starting any thread: detaching forks,
 * and threads started later inherit the blocked signals, so only
 * fs_serve's thread takes them. Returns 0 or -errno. */
int fs_mount(struct fs *fs);

/* The mounts as the kernel lists them (after fs_mount): up to 2 into
 * `out`; returns how many. */
size_t fs_mount_ids(const struct fs *fs, struct fs_mount_id *out);

/* Starts serving the mounts: the notifier on `watch` (watch.h), which
 * registers the daemon in the store (idbmountctl sees it from then on) and
 * moves `shown` (shown.h; may be NULL) as it shows changes, and the FUSE
 * loops, each on a thread of its own. Call it before anything that makes
 * changes others wait to see (HTTP, the flusher). Returns 0 or -errno
 * (then nothing of it runs). */
struct watch;
struct shown;
int fs_start(struct fs *fs, struct watch *watch, struct shown *shown);

/* Waits, on the calling thread, until a mount is unmounted (fusermount3 -u)
 * or the daemon is told to stop (SIGTERM, SIGINT; SIGHUP with -f, where it
 * is the terminal going away), then stops serving. SIGHUP without -f
 * reopens the log file (for logrotate). Stopping ends every invalidation
 * before the FUSE workers stop, so a stop never waits for an answer only a
 * worker could give; `shown` is halted before the workers stop. Returns 0
 * or -errno. */
int fs_serve(struct fs *fs);

/* Stops serving (when fs_start ran and fs_serve did not stop it), unmounts
 * (when mounted) and lets the watchdog go. */
void fs_unmount(struct fs *fs);

void fs_destroy(struct fs *fs);

/* The watchdog process's main (fs_watchdog.c): the daemon's main() calls
 * it when run as `idbmount --watchdog ...`, which only the daemon does. */
int fs_watchdog_main(int argc, char **argv);

/* ---- mounts whose daemon died (fs_mounts.c) ----
 * A mount is named by its canonical path and the device number the kernel
 * gave its FUSE connection (reused by later mounts, so always checked
 * together with the path). Nothing here looks at a path inside a mount: a
 * hung mount would hang the caller too. */
struct fs_mount_id {
	unsigned major, minor;
	char path[PATH_MAX];
};

/* A mount id as one line of text ("MAJOR:MINOR PATH", the path escaped as
 * in mountinfo) and back, for the data directory's lock file. Return 0 or
 * -errno. */
int fs_mount_id_format(const struct fs_mount_id *id, char *out, size_t outlen);
int fs_mount_id_parse(const char *text, struct fs_mount_id *out);

/* `path` made absolute without resolving its last component (which may be
 * a hung mount): realpath of its parent plus its name. Returns 0 or
 * -errno. */
int fs_mount_canonical_path(const char *path, char *out, size_t outlen);

/* The topmost FUSE mount at `canonical_path`. Returns 0, or -ENOENT when
 * there is none, or -errno. */
int fs_mount_find(const char *canonical_path, struct fs_mount_id *out);

/* Aborts the connection of the mount `id` (which frees every process
 * waiting on it, and a daemon thread stuck in the kernel) and detaches it,
 * if it is still mounted with that device number: as root with
 * umount2(MNT_FORCE | MNT_DETACH), else through
 * /sys/fs/fuse/connections/N/abort (where fusectl is mounted) and
 * fusermount3 -u -z. Returns 1 when it cleared the mount, 0 when there was
 * nothing to clear, -errno when it could not. */
int fs_mount_clear(const struct fs_mount_id *id);

#endif
