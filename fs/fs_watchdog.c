/* fs_watchdog.c - a small process that clears the daemon's mounts if the
 * daemon dies without unmounting them (see fs_mounts.c for why a killed
 * daemon can otherwise leave a mount that hangs every process touching it).
 *
 * It is forked by the daemon's main thread once the mounts are up and runs
 * the daemon's binary again as `idbmount --watchdog PARENT DEV PATH...`
 * (so that ps tells it apart, and it holds none of the daemon's memory),
 * keeps no descriptor of /dev/fuse (holding one would keep the connection
 * alive: the very thing it must undo), and waits for one of two things:
 *
 *   - a byte on its pipe: the daemon stopped cleanly and unmounted; it
 *     exits;
 *   - its parent-death signal (PR_SET_PDEATHSIG, sent when the thread that
 *     forked it ends, even while another thread of the process is stuck in
 *     the kernel), or the pipe's end closing without that byte: the daemon
 *     died. It aborts and detaches every mount the daemon had, which also
 *     lets a stuck thread finish dying, then exits.
 *
 * It keeps the data directory's lock (inherited) until it exits, so a new
 * daemon on the same data directory starts only after the mounts of the
 * old one are cleared and never has its own mount taken for the old one's
 * (a device number is reused by the next FUSE mount).
 *
 * Signals that stop the daemon (SIGTERM from systemd's control group,
 * SIGINT from a terminal's process group) are ignored here: the daemon
 * decides, and says so on the pipe.
 */
#include "fs_internal.h"

#include "idbmount/fs/fs.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/signalfd.h>
#include <sys/wait.h>
#include <unistd.h>

#define WATCHDOG_PIPE_FD 3
#define WATCHDOG_LOCK_FD 4

/* Waits as described at the top of the file; returns when the daemon has
 * died (true) or stopped cleanly (false). */
static bool wait_for_parent(pid_t parent)
{
	sigset_t death;
	sigemptyset(&death);
	sigaddset(&death, SIGUSR1);
	int sfd = signalfd(-1, &death, SFD_CLOEXEC);
	/* The parent may have died before the death signal was asked for. */
	if (getppid() != parent)
		return true;
	for (;;) {
		struct pollfd p[2] = {{.fd = WATCHDOG_PIPE_FD, .events = POLLIN},
		                      {.fd = sfd, .events = POLLIN}};
		/* Without a signalfd, look at the parent every second. */
		if (poll(p, sfd >= 0 ? 2 : 1, sfd >= 0 ? -1 : 1000) < 0) {
			if (errno == EINTR)
				continue;
			return true;
		}
		if (p[0].revents) {
			char byte;
			ssize_t got = read(WATCHDOG_PIPE_FD, &byte, 1);
			if (got == 1)
				return false; /* a clean stop */
			if (got == 0 || (errno != EINTR && errno != EAGAIN))
				return true;
		}
		if (sfd >= 0 ? p[1].revents != 0 : getppid() != parent)
			return true;
	}
}

int fs_watchdog_main(int argc, char **argv)
{
	/* idbmount --watchdog PARENT MAJOR:MINOR PATH [MAJOR:MINOR PATH...] */
	struct fs_mount_id mounts[4];
	size_t n = 0;
	if (argc < 3)
		return 2;
	prctl(PR_SET_NAME, "idbmount-watch");
	pid_t parent = (pid_t)strtol(argv[2], NULL, 10);
	for (int i = 3; i + 1 < argc && n < sizeof(mounts) / sizeof(*mounts); i += 2) {
		struct fs_mount_id *m = &mounts[n];
		if (sscanf(argv[i], "%u:%u", &m->major, &m->minor) != 2 ||
		    snprintf(m->path, sizeof(m->path), "%s", argv[i + 1]) >= (int)sizeof(m->path))
			return 2;
		n++;
	}
	if (!wait_for_parent(parent))
		return 0;
	for (size_t i = 0; i < n; i++) {
		int rc = fs_mount_clear(&mounts[i]);
		if (rc > 0)
			fprintf(stderr,
			        "idbmount: watchdog: the daemon died; cleared its mount %s\n",
			        mounts[i].path);
		else if (rc < 0)
			fprintf(stderr, "idbmount: watchdog: cannot clear the mount %s: %s\n",
			        mounts[i].path, strerror(-rc));
	}
	return 0;
}

/* In the forked child: becomes `idbmount --watchdog ...` with only the
 * pipe, the lock and stderr open. */
static void __attribute__((noreturn))
become_watchdog(pid_t parent, int pipe_rd, int lock_fd, const struct fs_mount_id *mounts, size_t n)
{
	sigset_t all;
	sigfillset(&all);
	sigprocmask(SIG_BLOCK, &all, NULL); /* kept across exec */
	prctl(PR_SET_PDEATHSIG, SIGUSR1);   /* kept across exec too */
	/* Above 4 first, so that the dup2s below cannot close each other. */
	int pipe_high = fcntl(pipe_rd, F_DUPFD, 10);
	int lock_high = lock_fd >= 0 ? fcntl(lock_fd, F_DUPFD, 10) : -1;
	if (pipe_high < 0 || dup2(pipe_high, WATCHDOG_PIPE_FD) < 0 ||
	    (lock_high >= 0 && dup2(lock_high, WATCHDOG_LOCK_FD) < 0))
		_exit(1);
	close_range(lock_high >= 0 ? WATCHDOG_LOCK_FD + 1 : WATCHDOG_PIPE_FD + 1, ~0U, 0);
	char parent_text[16];
	snprintf(parent_text, sizeof(parent_text), "%d", (int)parent);
	char devs[4][32];
	char *argv[4 + 2 * 4 + 1];
	int argc = 0;
	argv[argc++] = "idbmount";
	argv[argc++] = "--watchdog";
	argv[argc++] = parent_text;
	for (size_t i = 0; i < n && i < 4; i++) {
		snprintf(devs[i], sizeof(devs[i]), "%u:%u", mounts[i].major, mounts[i].minor);
		argv[argc++] = devs[i];
		argv[argc++] = (char *)mounts[i].path;
	}
	argv[argc] = NULL;
	execv("/proc/self/exe", argv);
	/* No exec (a binary that cannot be run again): watch from here. */
	_exit(fs_watchdog_main(argc, argv));
}

int fs_watchdog_start(const struct fs_mount_id *mounts, size_t n, int lock_fd,
                      struct fs_watchdog *out)
{
	out->pid = -1;
	out->pipe_wr = -1;
	int fds[2];
	if (pipe2(fds, O_CLOEXEC) != 0)
		return -errno;
	pid_t parent = getpid();
	pid_t pid = fork();
	if (pid < 0) {
		int e = errno;
		close(fds[0]);
		close(fds[1]);
		return -e;
	}
	if (pid == 0)
		become_watchdog(parent, fds[0], lock_fd, mounts, n);
	close(fds[0]);
	out->pid = pid;
	out->pipe_wr = fds[1];
	return 0;
}

void fs_watchdog_release(struct fs_watchdog *w)
{
	if (w->pid <= 0)
		return;
	ssize_t put;
	do
		put = write(w->pipe_wr, "c", 1);
	while (put < 0 && errno == EINTR);
	close(w->pipe_wr);
	while (waitpid(w->pid, NULL, 0) < 0 && errno == EINTR)
		;
	w->pid = -1;
	w->pipe_wr = -1;
}
