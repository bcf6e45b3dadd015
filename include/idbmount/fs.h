/* fs.h - the FUSE view, as the daemon's main() drives it. */
#ifndef IDBMOUNT_FS_H
#define IDBMOUNT_FS_H

#include <stdbool.h>
#include <stddef.h>

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
	enum fs_cache_mode cache;
	size_t max_record;    /* bytes; 0 = the store's default */
	unsigned max_threads; /* FUSE worker threads */
	/* Every open for writing gets a copy of its own (DESIGN.md's private
	 * copy), at the price of OPEN and RELEASE round trips on every open.
	 * Off by default with cache=always: see fs_ops.c. */
	bool private_writes;
	bool foreground;
	bool debug;
};

struct fs;

/* Builds the session from `fuse_argv` (options for libfuse, e.g.
 * "-o allow_other,default_permissions"). Returns 0 or -errno with a message
 * on stderr. */
int fs_new(const struct fs_config *cfg, int fuse_argc, char **fuse_argv, struct fs **out);

/* Mounts at `mountpoint`, detaches unless foreground (stderr then goes to
 * DATADIR/idbmount.log) and installs the signal handlers. Threads are
 * started only after it: detaching forks. Returns 0 or -errno. */
int fs_mount(struct fs *fs, const char *mountpoint);

/* Starts the notifier on `watch` (watch.h) and serves until unmounted
 * (fusermount3 -u) or signalled (SIGTERM, SIGINT, SIGHUP). Returns 0 or
 * -errno. */
struct watch;
int fs_serve(struct fs *fs, struct watch *watch);

/* Unmounts (when mounted) and removes the signal handlers. */
void fs_unmount(struct fs *fs);

void fs_destroy(struct fs *fs);

#endif
