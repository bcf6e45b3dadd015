/* mkdirs.c - mkdir -p (mkdirs.h). */
#include "idbmount/util/mkdirs.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* fsyncs the directory that holds `dir`, whose last '/' is at `slash`. */
static int sync_parent(char *dir, char *slash)
{
	*slash = '\0';
	int fd = open(slash == dir ? "/" : dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	int rc = fd < 0 ? -errno : fsync(fd) == 0 ? 0 : -errno;
	if (fd >= 0)
		close(fd);
	*slash = '/';
	return rc;
}

/* Makes `dir` unless it exists; with `sync`, fsyncs its parent when made. */
static int make_one(char *dir, mode_t mode, bool sync)
{
	if (mkdir(dir, mode) != 0)
		return errno == EEXIST ? 0 : -errno;
	return sync ? sync_parent(dir, strrchr(dir, '/')) : 0;
}

int mkdirs(const char *path, mode_t mode, bool sync, char *failed, size_t failed_len)
{
	char copy[PATH_MAX];
	int n = snprintf(copy, sizeof(copy), "%s", path);
	int rc = n < 0 || (size_t)n >= sizeof(copy) ? -ENAMETOOLONG : 0;
	/* Each parent in turn, then the directory itself. */
	for (char *p = copy + 1; !rc && *p; p++) {
		if (*p != '/')
			continue;
		*p = '\0';
		rc = make_one(copy, mode, sync);
		if (!rc)
			*p = '/';
	}
	if (!rc)
		rc = make_one(copy, mode, sync);
	if (rc && failed)
		snprintf(failed, failed_len, "%s", copy);
	return rc;
}
