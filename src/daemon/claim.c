/* claim.c - the data directory's lock and a predecessor's leftovers (see
 * claim.h). */
#include "idbmount/daemon/claim.h"

#include "idbmount/util/datadir.h"
#include "idbmount/fs/fs.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <time.h>
#include <unistd.h>

#define MAX_RECORDED_MOUNTS 4

/* What the lock file says of its holder. */
struct record {
	int pid;
	struct fs_mount_id mounts[MAX_RECORDED_MOUNTS];
	size_t n;
};

static void read_record(int fd, struct record *r)
{
	memset(r, 0, sizeof(*r));
	FILE *f = fdopen(dup(fd), "r");
	if (!f)
		return;
	rewind(f);
	char line[PATH_MAX + 64];
	while (fgets(line, sizeof(line), f)) {
		if (strncmp(line, "pid ", 4) == 0)
			r->pid = (int)strtol(line + 4, NULL, 10);
		else if (strncmp(line, "mount ", 6) == 0 && r->n < MAX_RECORDED_MOUNTS &&
		         fs_mount_id_parse(line + 6, &r->mounts[r->n]) == 0)
			r->n++;
	}
	fclose(f);
}

/* Clears the recorded mounts still listed with their device numbers.
 * Appends what it did to `note`. */
static void clear_recorded(const struct record *r, const char *why, char *note, size_t notelen)
{
	for (size_t i = 0; i < r->n; i++) {
		int rc = fs_mount_clear(&r->mounts[i]);
		size_t used = strlen(note);
		if (rc > 0)
			snprintf(note + used, notelen - used, "%scleared the mount %s of %s",
			         used ? "; " : "", r->mounts[i].path, why);
		else if (rc < 0)
			snprintf(note + used, notelen - used,
			         "%scannot clear the mount %s of %s: %s", used ? "; " : "",
			         r->mounts[i].path, why, strerror(-rc));
	}
}

static int64_t now_ms(void)
{
	struct timespec t;
	clock_gettime(CLOCK_MONOTONIC, &t);
	return (int64_t)t.tv_sec * 1000 + t.tv_nsec / 1000000;
}

int claim_take(const char *datadir, struct claim *out, char *err, size_t errlen, char *note,
               size_t notelen)
{
	out->fd = -1;
	note[0] = '\0';
	char path[PATH_MAX];
	if (snprintf(path, sizeof(path), "%s/idbmount.lock", datadir) >= (int)sizeof(path)) {
		snprintf(err, errlen, "data directory %s: path too long", datadir);
		return -ENAMETOOLONG;
	}
	int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
	if (fd < 0) {
		int e = errno;
		snprintf(err, errlen, "%s: %s", path, strerror(e));
		return -e;
	}
	struct record r;
	if (flock(fd, LOCK_EX | LOCK_NB) != 0) {
		read_record(fd, &r);
		enum process_state state = process_state(r.pid);
		if (state == PROCESS_ALIVE) {
			snprintf(err, errlen, "data directory %s is already served by pid %d",
			         datadir, r.pid);
			close(fd);
			return -EBUSY;
		}
		char why[64];
		snprintf(why, sizeof(why), "pid %d, which %s", r.pid,
		         state == PROCESS_DYING ? "was killed and is stuck dying" : "died");
		/* Its watchdog should be doing this; it may have been killed
		 * too. Clearing twice is harmless. */
		clear_recorded(&r, why, note, notelen);
		int64_t deadline = now_ms() + CLAIM_WAIT_MS;
		while (flock(fd, LOCK_EX | LOCK_NB) != 0) {
			if (errno != EWOULDBLOCK || now_ms() > deadline) {
				snprintf(err, errlen,
				         "data directory %s: the lock %s is still held, though its "
				         "daemon (pid %d) is gone; is another process holding it?",
				         datadir, path, r.pid);
				close(fd);
				return -EBUSY;
			}
			struct timespec pause = {0, 20 * 1000000};
			nanosleep(&pause, NULL);
		}
	}
	/* A holder that let go without emptying the record died, and its
	 * watchdog with it: its mounts are dead (nothing serves them) and
	 * still in the way. */
	read_record(fd, &r);
	if (r.pid > 0 && r.pid != getpid()) {
		char why[64];
		snprintf(why, sizeof(why), "pid %d, which died", r.pid);
		clear_recorded(&r, why, note, notelen);
	}
	out->fd = fd;
	return 0;
}

int claim_record(struct claim *c, const struct fs_mount_id *mounts, size_t n)
{
	char text[MAX_RECORDED_MOUNTS * (PATH_MAX * 4 + 64) + 32];
	size_t at = (size_t)snprintf(text, sizeof(text), "pid %d\n", (int)getpid());
	for (size_t i = 0; i < n && i < MAX_RECORDED_MOUNTS; i++) {
		char line[PATH_MAX * 4 + 32];
		int rc = fs_mount_id_format(&mounts[i], line, sizeof(line));
		if (rc)
			return rc;
		at += (size_t)snprintf(text + at, sizeof(text) - at, "mount %s\n", line);
	}
	if (ftruncate(c->fd, 0) != 0 || pwrite(c->fd, text, at, 0) != (ssize_t)at)
		return -errno;
	return 0;
}

void claim_release(struct claim *c)
{
	if (c->fd < 0)
		return;
	if (ftruncate(c->fd, 0) != 0)
		fprintf(stderr, "idbmount: cannot empty the lock file: %s\n", strerror(errno));
	close(c->fd);
	c->fd = -1;
}
