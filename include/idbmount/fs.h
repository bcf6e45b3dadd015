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
	bool foreground;
	bool debug;
	/* Optional: called by fs_run in the process that serves (after it
	 * daemonized, so threads started there survive) once the mount is up,
	 * and again when the loop has ended, before fs_run returns. For the
	 * parts that run beside the mount (the flusher). A nonzero return
	 * from on_serving unmounts and makes fs_run fail. */
	int (*on_serving)(void *arg);
	void (*on_stopped)(void *arg);
	void *hook_arg;
};

struct fs;

/* Builds the session from `fuse_argv` (options for libfuse, e.g.
 * "-o allow_other,default_permissions"). Returns 0 or -errno with a message
 * on stderr. */
int fs_new(const struct fs_config *cfg, int fuse_argc, char **fuse_argv, struct fs **out);

/* Mounts at `mountpoint`, detaches unless foreground, starts the notifier
 * and serves until unmounted (fusermount3 -u) or signalled (SIGTERM,
 * SIGINT, SIGHUP). Returns 0 or -errno. */
int fs_run(struct fs *fs, const char *mountpoint);

void fs_destroy(struct fs *fs);

#endif
