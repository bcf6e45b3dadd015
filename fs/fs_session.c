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

#include "idbmount/fs/fs.h"
#include "idbmount/store/store.h"
#include "idbmount/util/thread_name.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
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

/* Makes one session with `argv` (+ "-o ro" for the view). */
static int session_new(struct fs *fs, struct fs_session *s, bool view, int argc, char **argv)
{
	s->fs = fs;
	s->view = view;
	s->name = view ? "view" : "mount";
	/* The view always caches for a day: its whole point is reading at the
	 * speed of local files, and every change reaches it as an
	 * invalidation. */
	s->timeout = view || fs->cfg.cache == FS_CACHE_ALWAYS ? 86400.0
	             : fs->cfg.cache == FS_CACHE_AUTO         ? 1.0
	                                                      : 0.0;
	atomic_init(&s->loop_ended, false);
	inodes_init(&s->inodes);
	char *view_argv[16];
	if (view) {
		if (argc + 3 > (int)(sizeof(view_argv) / sizeof(*view_argv)))
			return -E2BIG;
		memcpy(view_argv, argv, sizeof(*argv) * (size_t)argc);
		view_argv[argc] = "-o";
		view_argv[argc + 1] = "ro";
		view_argv[argc + 2] = NULL;
		argv = view_argv;
		argc += 2;
	}
	struct fuse_args args = FUSE_ARGS_INIT(argc, argv);
	const struct fuse_lowlevel_ops *ops = view ? &fs_view_ops : &fs_ops;
	s->se = fuse_session_new(&args, ops, sizeof(*ops), s);
	fuse_opt_free_args(&args);
	if (!s->se) {
		inodes_destroy(&s->inodes);
		return -EINVAL;
	}
	return 0;
}

static void session_destroy(struct fs_session *s)
{
	if (!s->se)
		return;
	fuse_session_destroy(s->se);
	s->se = NULL;
	inodes_destroy(&s->inodes);
}

int fs_new(const struct fs_config *cfg, int fuse_argc, char **fuse_argv, struct fs **out)
{
	if (!cfg->mountpoint && !cfg->view)
		return -EINVAL;
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
	pthread_key_create(&fs->store_key, close_thread_store);
	pthread_mutex_init(&fs->handles_lock, NULL);
	int rc = 0;
	if (cfg->mountpoint)
		rc = session_new(fs, &fs->rw, false, fuse_argc, fuse_argv);
	if (!rc && cfg->view)
		rc = session_new(fs, &fs->view, true, fuse_argc, fuse_argv);
	if (rc) {
		session_destroy(&fs->rw);
		pthread_key_delete(fs->store_key);
		pthread_mutex_destroy(&fs->handles_lock);
		free(fs);
		return rc;
	}
	*out = fs;
	return 0;
}

/* Mounts one session at `path` and finds it in mountinfo. */
static int session_mount(struct fs_session *s, const char *path)
{
	char canonical[PATH_MAX];
	int rc = fs_mount_canonical_path(path, canonical, sizeof(canonical));
	if (rc)
		return rc;
	struct stat where;
	if (stat(canonical, &where) != 0 && errno == ENOTCONN) {
		fprintf(stderr,
		        "idbmount: %s: a dead mount is still there; unmount it first "
		        "(fusermount3 -u %s)\n",
		        canonical, canonical);
		return -ENOTCONN;
	}
	/* libfuse unmounts by the name it mounted: a relative one no longer
	 * names the mount point once the daemon has left its directory. */
	if (fuse_session_mount(s->se, canonical) != 0)
		return -EIO;
	s->mounted = true;
	rc = fs_mount_find(canonical, &s->id);
	if (rc)
		fprintf(stderr, "idbmount: %s: mounted, but not in /proc/self/mountinfo\n",
		        canonical);
	return rc;
}

static void session_unmount(struct fs_session *s)
{
	if (!s->mounted)
		return;
	fuse_session_unmount(s->se);
	s->mounted = false;
}

int fs_mount(struct fs *fs)
{
	int rc = 0;
	if (fs->rw.se)
		rc = session_mount(&fs->rw, fs->cfg.mountpoint);
	if (!rc && fs->view.se)
		rc = session_mount(&fs->view, fs->cfg.view);
	if (rc)
		goto unmount;
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
	struct fs_mount_id ids[2];
	size_t n = fs_mount_ids(fs, ids);
	rc = fs_watchdog_start(ids, n, fs->cfg.lock_fd, &fs->watchdog);
	if (rc) {
		fprintf(stderr, "idbmount: cannot start the watchdog: %s\n", strerror(-rc));
		goto unmount;
	}
	return 0;
unmount:
	session_unmount(&fs->view);
	session_unmount(&fs->rw);
	return rc;
}

size_t fs_mount_ids(const struct fs *fs, struct fs_mount_id *out)
{
	size_t n = 0;
	if (fs->rw.mounted)
		out[n++] = fs->rw.id;
	if (fs->view.mounted)
		out[n++] = fs->view.id;
	return n;
}

bool fs_inode_counted(struct fs *fs, uint64_t ino)
{
	return (fs->rw.se && inodes_count(&fs->rw.inodes, ino) > 0) ||
	       (fs->view.se && inodes_count(&fs->view.inodes, ino) > 0);
}

static void *session_loop_main(void *arg)
{
	struct fs_session *s = arg;
	/* libfuse's workers, started from this thread, take its name. */
	thread_name_set("fuse ", s->name);
	sigset_t kick;
	sigemptyset(&kick);
	sigaddset(&kick, SIG_LOOP_KICK);
	pthread_sigmask(SIG_UNBLOCK, &kick, NULL);
	struct fuse_loop_config *cfg = fuse_loop_cfg_create();
	unsigned threads = s->fs->cfg.max_threads ? s->fs->cfg.max_threads : 8;
	fuse_loop_cfg_set_clone_fd(cfg, 1);
	fuse_loop_cfg_set_max_threads(cfg, threads);
	fuse_loop_cfg_set_idle_threads(cfg, threads);
	s->loop_rc = fuse_session_loop_mt(s->se, cfg);
	fuse_loop_cfg_destroy(cfg);
	atomic_store(&s->loop_ended, true);
	pthread_kill(s->fs->main_thread, SIG_LOOP_ENDED);
	return NULL;
}

static int session_loop_start(struct fs_session *s)
{
	if (!s->se)
		return 0;
	int rc = -pthread_create(&s->loop_thread, NULL, session_loop_main, s);
	s->loop_started = rc == 0;
	return rc;
}

/* Ends the loop (if it has not ended) and waits for its thread. libfuse
 * cancels idle workers and lets busy ones finish their request. */
static void session_loop_stop(struct fs_session *s)
{
	if (!s->loop_started)
		return;
	fuse_session_exit(s->se);
	for (;;) {
		/* The kick may land just before the loop starts waiting: repeat
		 * it until the thread is gone. */
		pthread_kill(s->loop_thread, SIG_LOOP_KICK);
		struct timespec until;
		clock_gettime(CLOCK_REALTIME, &until);
		until.tv_nsec += 50 * 1000000;
		if (until.tv_nsec >= 1000000000) {
			until.tv_sec++;
			until.tv_nsec -= 1000000000;
		}
		if (pthread_timedjoin_np(s->loop_thread, NULL, &until) == 0)
			break;
	}
	s->loop_started = false;
}

/* Waits until the daemon must stop: returns the signal that says so, or 0
 * when a loop ended by itself (its mount was unmounted: both go). */
static int wait_for_stop(struct fs *fs)
{
	sigset_t set;
	served_signals(&set);
	sigdelset(&set, SIG_LOOP_KICK);
	for (;;) {
		if (atomic_load(&fs->rw.loop_ended) || atomic_load(&fs->view.loop_ended))
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

/* Ends the serving in the order the top of the file gives: the notifier,
 * then the read-write mount's workers (its handlers invalidate the view),
 * then the view's. Does nothing when nothing serves. */
static void fs_stop(struct fs *fs)
{
	notifier_halt(fs->notifier);
	session_loop_stop(&fs->rw);
	session_loop_stop(&fs->view);
	notifier_free(fs->notifier);
	fs->notifier = NULL;
}

int fs_start(struct fs *fs, struct watch *watch, struct shown *shown)
{
	int rc = notifier_start(fs, watch, shown, &fs->notifier);
	if (!rc)
		rc = session_loop_start(&fs->rw);
	if (!rc)
		rc = session_loop_start(&fs->view);
	if (rc)
		fs_stop(fs);
	return rc;
}

int fs_serve(struct fs *fs)
{
	int sig = wait_for_stop(fs);
	if (sig)
		fprintf(stderr, "idbmount: %s: stopping\n", strsignal(sig));
	fs_stop(fs);
	if (fs->rw.loop_rc < 0)
		return fs->rw.loop_rc;
	return fs->view.loop_rc < 0 ? fs->view.loop_rc : 0;
}

void fs_unmount(struct fs *fs)
{
	fs_stop(fs);
	if (!fs->rw.mounted && !fs->view.mounted)
		return;
	session_unmount(&fs->rw);
	session_unmount(&fs->view);
	fs_watchdog_release(&fs->watchdog);
}

void fs_destroy(struct fs *fs)
{
	if (!fs)
		return;
	session_destroy(&fs->rw);
	session_destroy(&fs->view);
	fs_free_handles(fs);
	struct store *st = pthread_getspecific(fs->store_key);
	if (st) {
		store_close(st);
		pthread_setspecific(fs->store_key, NULL);
	}
	pthread_key_delete(fs->store_key);
	pthread_mutex_destroy(&fs->handles_lock);
	free(fs);
}
