/* fs_mounts.c - the daemon's mounts as the kernel lists them, and how a
 * mount whose daemon died or is dying is cleared (see fs.h).
 *
 * Why this is needed at all: a FUSE connection is aborted by the kernel
 * only when the last descriptor of /dev/fuse closes. A daemon killed while
 * one of its threads sits in an uninterruptible wait inside the kernel (an
 * invalidation waiting for a directory lock that a process creating a file
 * holds while it waits for an answer nobody will give any more) never
 * closes it: the process cannot finish dying, the mount hangs, and so does
 * every process that touches it. Aborting the connection by hand frees
 * all of them at once. Root does it with umount2(MNT_FORCE), which calls
 * FUSE's umount_begin (an abort) and, with MNT_DETACH, takes the mount away
 * in the same call; anyone else writes to the connection's abort file
 * under /sys/fs/fuse/connections (when fusectl is mounted there, as
 * systemd does) and then asks fusermount3 to detach.
 *
 * Nothing here stats a path on the mount: on a hung mount that would hang
 * too. Mounts are found in /proc/self/mountinfo by their canonical path and
 * told apart by their device number, which the kernel gives each FUSE
 * connection.
 */
#include "fs_internal.h"

#include "idbmount/fs/fs.h"

#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <limits.h>
#include <spawn.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/wait.h>
#include <unistd.h>

extern char **environ;

int fs_mount_canonical_path(const char *path, char *out, size_t outlen)
{
	/* The mount point itself may be a hung mount: resolve its parent
	 * only, which lies outside it. */
	char copy_dir[PATH_MAX], copy_base[PATH_MAX];
	if (snprintf(copy_dir, sizeof(copy_dir), "%s", path) >= (int)sizeof(copy_dir))
		return -ENAMETOOLONG;
	snprintf(copy_base, sizeof(copy_base), "%s", path);
	char parent[PATH_MAX];
	if (!realpath(dirname(copy_dir), parent))
		return -errno;
	const char *base = basename(copy_base);
	if (strcmp(base, "/") == 0 || strcmp(base, ".") == 0 || strcmp(base, "..") == 0)
		return -EINVAL;
	int n = snprintf(out, outlen, "%s/%s", strcmp(parent, "/") == 0 ? "" : parent, base);
	return n < 0 || (size_t)n >= outlen ? -ENAMETOOLONG : 0;
}

/* Undoes mountinfo's octal escapes (\040 for a space, \012 for a newline,
 * \134 for a backslash) in place. */
static void unescape_mountinfo(char *s)
{
	char *out = s;
	for (char *in = s; *in; in++) {
		if (in[0] == '\\' && in[1] >= '0' && in[1] <= '3' && in[2] >= '0' && in[2] <= '7' &&
		    in[3] >= '0' && in[3] <= '7') {
			*out++ = (char)((in[1] - '0') * 64 + (in[2] - '0') * 8 + (in[3] - '0'));
			in += 3;
		} else {
			*out++ = *in;
		}
	}
	*out = '\0';
}

int fs_mount_id_format(const struct fs_mount_id *id, char *out, size_t outlen)
{
	size_t at = 0;
	int n = snprintf(out, outlen, "%u:%u ", id->major, id->minor);
	if (n < 0 || (size_t)n >= outlen)
		return -ENAMETOOLONG;
	at = (size_t)n;
	for (const char *p = id->path; *p; p++) {
		unsigned char c = (unsigned char)*p;
		bool escape = c == ' ' || c == '\t' || c == '\n' || c == '\\';
		if (at + 5 > outlen)
			return -ENAMETOOLONG;
		if (escape)
			at += (size_t)snprintf(out + at, outlen - at, "\\%03o", c);
		else
			out[at++] = (char)c;
	}
	out[at] = '\0';
	return 0;
}

int fs_mount_id_parse(const char *text, struct fs_mount_id *out)
{
	int used = 0;
	if (sscanf(text, "%u:%u %n", &out->major, &out->minor, &used) != 2 || !text[used])
		return -EINVAL;
	if (snprintf(out->path, sizeof(out->path), "%s", text + used) >= (int)sizeof(out->path))
		return -ENAMETOOLONG;
	out->path[strcspn(out->path, "\n")] = '\0';
	unescape_mountinfo(out->path);
	return out->path[0] == '/' ? 0 : -EINVAL;
}

int fs_mount_find(const char *canonical_path, struct fs_mount_id *out)
{
	FILE *f = fopen("/proc/self/mountinfo", "re");
	if (!f)
		return -errno;
	int rc = -ENOENT;
	char *line = NULL;
	size_t cap = 0;
	while (getline(&line, &cap, f) > 0) {
		/* ID PARENT MAJOR:MINOR ROOT MOUNTPOINT OPTIONS [OPTIONAL...] - TYPE ... */
		unsigned major, minor;
		char *save = NULL;
		char *field[5];
		int got = 0;
		for (char *t = strtok_r(line, " ", &save); t && got < 5;
		     t = strtok_r(NULL, " ", &save))
			field[got++] = t;
		if (got < 5 || sscanf(field[2], "%u:%u", &major, &minor) != 2)
			continue;
		char *type = NULL;
		for (char *t = strtok_r(NULL, " ", &save); t; t = strtok_r(NULL, " ", &save)) {
			if (strcmp(t, "-") == 0) {
				type = strtok_r(NULL, " ", &save);
				break;
			}
		}
		if (!type || strncmp(type, "fuse", 4) != 0)
			continue;
		unescape_mountinfo(field[4]);
		if (strcmp(field[4], canonical_path) != 0)
			continue;
		/* Later lines are mounted on top of earlier ones: keep the last. */
		out->major = major;
		out->minor = minor;
		snprintf(out->path, sizeof(out->path), "%s", canonical_path);
		rc = 0;
	}
	free(line);
	fclose(f);
	return rc;
}

/* Runs `fusermount3 -u -z PATH` and waits for it. */
static int run_fusermount_detach(const char *path)
{
	char *argv[] = {"fusermount3", "-u", "-z", "--", (char *)path, NULL};
	pid_t pid;
	int rc = posix_spawnp(&pid, "fusermount3", NULL, NULL, argv, environ);
	if (rc)
		return -rc;
	int status = 0;
	while (waitpid(pid, &status, 0) < 0)
		if (errno != EINTR)
			return -errno;
	return WIFEXITED(status) && WEXITSTATUS(status) == 0 ? 0 : -EIO;
}

/* Writes to the connection's abort file; -ENOENT when fusectl is not
 * mounted (or the connection is gone). */
static int abort_connection(unsigned minor)
{
	char path[64];
	snprintf(path, sizeof(path), "/sys/fs/fuse/connections/%u/abort", minor);
	int fd = open(path, O_WRONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	int rc = write(fd, "1", 1) == 1 ? 0 : -errno;
	close(fd);
	return rc;
}

int fs_mount_clear(const struct fs_mount_id *id)
{
	struct fs_mount_id now;
	if (fs_mount_find(id->path, &now) != 0 || now.major != id->major || now.minor != id->minor)
		return 0; /* gone already, or somebody else's mount now */
	if (geteuid() == 0) {
		if (umount2(id->path, MNT_FORCE | MNT_DETACH) == 0)
			return 1;
		if (errno == EINVAL || errno == ENOENT)
			return 0; /* unmounted meanwhile */
		                  /* Not allowed here (a user namespace): try the other way. */
	}
	int aborted = abort_connection(id->minor);
	int rc = run_fusermount_detach(id->path);
	if (rc && aborted)
		return rc;
	return 1;
}
