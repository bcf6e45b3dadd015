/* fs_session.c - the mount's life: made, mounted, served, stopped.
 *
 * The FUSE loop (fuse_session_loop_mt) runs on a thread of its own; the
 * thread that mounted waits for what ends it: a signal, or the loop
 * returning because the file system was unmounted. Stopping goes in an
 * order that cannot hang: first the notifier, whose invalidations may wait
 * in the kernel for a directory lock held by a process whose request is
 * still queued (only a worker's answer frees it, so the workers must still
 * run), then the workers. libfuse's own signal handlers would end the loop
 * first and leave the notifier waiting for ever.
 *
 * A daemon that is killed cannot stop in order; its watchdog process
 * (fs_watchdog.c) then aborts the connection, which frees whatever waits
 * on it.
 */
#include "fs_internal.h"

#include "idbmount/fs.h"
#include "idbmount/store.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

/* Sent by the loop thread to the main thread when the loop has returned. */
#define SIG_LOOP_ENDED SIGUSR1
/* Sent to the loop thread to interrupt its wait once the session is told
 * to exit (libfuse's loop waits on a semaphore that only a signal ends). */
#define SIG_LOOP_KICK SIGUSR2

static void close_thread_store(void *st)
{
	store_close(st);
}

/* The signals the main thread waits for; blocked in every thread. */
static void served_signals(sigset_t *set)
{
	sigemptyset(set);
	sigaddset(set, SIGTERM);
	sigaddset(set, SIGINT);
	sigaddset(set, SIGHUP);
	sigaddset(set, SIG_LOOP_ENDED);
	sigaddset(set, SIG_LOOP_KICK);
}

static void on_loop_kick(int sig)
{
	(void)sig; /* only there to interrupt a wait */
}

/* Points stderr at the log file (made 0600), so that logrotate can move
 * the file away and SIGHUP start a new one. Returns 0 or -errno. */
static int open_log(const char *path)
{
	int fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0600);
	if (fd < 0)
		return -errno;
	fflush(stderr);
	int rc = dup2(fd, STDERR_FILENO) < 0 ? -errno : 0;
	close(fd);
	return rc;
}

int fs_new(const struct fs_config *cfg, int fuse_argc, char **fuse_argv, struct fs **out)
{
	struct fs *fs = calloc(1, sizeof(*fs));
	if (!fs)
		return -ENOMEM;
	fs->cfg = *cfg;
	fs->watchdog.pid = -1;
	fs->watchdog.pipe_wr = -1;
	if (!realpath(cfg->datadir, fs->datadir)) {
		int e = errno;
		fprintf(stderr, "idbmount: data directory %s: %s\n", cfg->datadir, strerror(e));
		free(fs);
		return -e;
	}
	fs->cfg.datadir = fs->datadir;
	fs->timeout = cfg->cache == FS_CACHE_ALWAYS ? 86400.0
	              : cfg->cache == FS_CACHE_AUTO ? 1.0
	                                            : 0.0;
	pthread_key_create(&fs->store_key, close_thread_store);
	pthread_mutex_init(&fs->writers_lock, NULL);
	struct fuse_args args = FUSE_ARGS_INIT(fuse_argc, fuse_argv);
	fs->se = fuse_session_new(&args, &fs_ops, sizeof(fs_ops), fs);
	fuse_opt_free_args(&args);
	if (!fs->se) {
		pthread_key_delete(fs->store_key);
		pthread_mutex_destroy(&fs->writers_lock);
		free(fs);
		return -EINVAL;
	}
	*out = fs;
	return 0;
}

int fs_mount(struct fs *fs, const char *mountpoint)
{
	char canonical[PATH_MAX];
	int rc = fs_mount_canonical_path(mountpoint, canonical, sizeof(canonical));
	if (rc)
		return rc;
	if (fuse_session_mount(fs->se, mountpoint) != 0)
		return -EIO;
	rc = fs_mount_find(canonical, &fs->mount_id);
	if (rc) {
		fprintf(stderr, "idbmount: %s: mounted, but not in /proc/self/mountinfo\n",
		        canonical);
		goto unmount;
	}
	if (fuse_daemonize(fs->cfg.foreground) != 0) {
		rc = -EIO;
		goto unmount;
	}
	if (!fs->cfg.foreground) {
		/* Keep the daemon's messages: in the data directory. */
		snprintf(fs->log_path, sizeof(fs->log_path), "%s/idbmount.log", fs->datadir);
		rc = open_log(fs->log_path);
		if (rc)
			goto unmount;
		setvbuf(stderr, NULL, _IOLBF, 0);
	}
	/* Nothing can hold an orphan of an earlier mount. */
	struct store *st = NULL;
	char err[512];
	if (store_open(fs->datadir, &st, err, sizeof(err)) == 0) {
		store_drop_all_orphans(st);
		store_close(st);
	}
	/* Every thread started from here on inherits the blocked set, so the
	 * signals reach fs_serve's sigwaitinfo and nothing else. */
	sigset_t set;
	served_signals(&set);
	pthread_sigmask(SIG_BLOCK, &set, NULL);
	struct sigaction kick = {.sa_handler = on_loop_kick};
	sigemptyset(&kick.sa_mask);
	sigaction(SIG_LOOP_KICK, &kick, NULL);
	signal(SIGPIPE, SIG_IGN);
	fs->main_thread = pthread_self();
	rc = fs_watchdog_start(&fs->mount_id, 1, fs->cfg.lock_fd, &fs->watchdog);
	if (rc) {
		fprintf(stderr, "idbmount: cannot start the watchdog: %s\n", strerror(-rc));
		goto unmount;
	}
	fs->mounted = true;
	return 0;
unmount:
	fuse_session_unmount(fs->se);
	return rc;
}

const struct fs_mount_id *fs_mount_id(const struct fs *fs)
{
	return &fs->mount_id;
}

/* One FUSE session's loop, on its own thread. */
struct session_loop {
	struct fs *fs;
	pthread_t thread;
	int rc;
	atomic_bool ended;
};

static void *session_loop_main(void *arg)
{
	struct session_loop *l = arg;
	sigset_t kick;
	sigemptyset(&kick);
	sigaddset(&kick, SIG_LOOP_KICK);
	pthread_sigmask(SIG_UNBLOCK, &kick, NULL);
	struct fuse_loop_config *cfg = fuse_loop_cfg_create();
	unsigned threads = l->fs->cfg.max_threads ? l->fs->cfg.max_threads : 8;
	fuse_loop_cfg_set_clone_fd(cfg, 1);
	fuse_loop_cfg_set_max_threads(cfg, threads);
	fuse_loop_cfg_set_idle_threads(cfg, threads);
	l->rc = fuse_session_loop_mt(l->fs->se, cfg);
	fuse_loop_cfg_destroy(cfg);
	atomic_store(&l->ended, true);
	pthread_kill(l->fs->main_thread, SIG_LOOP_ENDED);
	return NULL;
}

/* Ends the loop (if it has not ended) and waits for its thread. libfuse
 * cancels idle workers and lets busy ones finish their request. */
static void session_loop_stop(struct session_loop *l)
{
	fuse_session_exit(l->fs->se);
	for (;;) {
		/* The kick may land just before the loop starts waiting: repeat
		 * it until the thread is gone. */
		pthread_kill(l->thread, SIG_LOOP_KICK);
		struct timespec until;
		clock_gettime(CLOCK_REALTIME, &until);
		until.tv_nsec += 50 * 1000000;
		if (until.tv_nsec >= 1000000000) {
			until.tv_sec++;
			until.tv_nsec -= 1000000000;
		}
		if (pthread_timedjoin_np(l->thread, NULL, &until) == 0)
			return;
	}
}

/* Waits until the daemon must stop: returns the signal that says so, or 0
 * when the loop ended by itself (unmounted). */
static int wait_for_stop(struct fs *fs, struct session_loop *l)
{
	sigset_t set;
	served_signals(&set);
	sigdelset(&set, SIG_LOOP_KICK);
	for (;;) {
		if (atomic_load(&l->ended))
			return 0;
		int sig = sigwaitinfo(&set, NULL);
		if (sig < 0)
			continue; /* EINTR */
		if (sig == SIG_LOOP_ENDED)
			continue; /* looked at above */
		if (sig == SIGHUP && fs->log_path[0]) {
			int rc = open_log(fs->log_path);
			fprintf(stderr, "idbmount: SIGHUP: %s %s%s%s\n",
			        rc ? "cannot reopen" : "reopened", fs->log_path, rc ? ": " : "",
			        rc ? strerror(-rc) : "");
			continue;
		}
		return sig;
	}
}

int fs_serve(struct fs *fs, struct watch *watch)
{
	int rc = notifier_start(fs->se, fs->datadir, watch, &fs->notifier);
	if (rc)
		return rc;
	struct session_loop loop = {.fs = fs};
	rc = -pthread_create(&loop.thread, NULL, session_loop_main, &loop);
	if (rc) {
		notifier_free(fs->notifier);
		fs->notifier = NULL;
		return rc;
	}
	int sig = wait_for_stop(fs, &loop);
	if (sig)
		fprintf(stderr, "idbmount: %s: stopping\n", strsignal(sig));
	notifier_halt(fs->notifier);
	session_loop_stop(&loop);
	notifier_free(fs->notifier);
	fs->notifier = NULL;
	return loop.rc < 0 ? loop.rc : 0;
}

void fs_unmount(struct fs *fs)
{
	if (!fs->mounted)
		return;
	fuse_session_unmount(fs->se);
	fs->mounted = false;
	fs_watchdog_release(&fs->watchdog);
}

void fs_destroy(struct fs *fs)
{
	if (!fs)
		return;
	fuse_session_destroy(fs->se);
	fs_free_handles(fs);
	struct store *st = pthread_getspecific(fs->store_key);
	if (st) {
		store_close(st);
		pthread_setspecific(fs->store_key, NULL);
	}
	pthread_key_delete(fs->store_key);
	pthread_mutex_destroy(&fs->writers_lock);
	inodes_free_all();
	free(fs);
}
