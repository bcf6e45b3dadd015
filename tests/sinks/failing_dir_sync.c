/* failing_dir_sync.c - a disk on which syncing one directory fails, for a
 * daemon started with LD_PRELOAD pointing at this library
 * (tests/sinks/test_dir.py builds it).
 *
 * FAIL_DIR_SYNC: the directory (its canonical path) whose fsync answers
 * EIO; FAIL_DIR_SYNC_TIMES: how many times (default 1), after which it
 * syncs as usual. Each failure writes one line to stderr, so a test can
 * tell that the library was loaded and did its work.
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static atomic_int failed;

static int is_the_directory(int fd)
{
	const char *want = getenv("FAIL_DIR_SYNC");
	struct stat st;
	if (!want || fstat(fd, &st) != 0 || !S_ISDIR(st.st_mode))
		return 0;
	char link[64], path[4096];
	snprintf(link, sizeof(link), "/proc/self/fd/%d", fd);
	ssize_t n = readlink(link, path, sizeof(path) - 1);
	if (n <= 0)
		return 0;
	path[n] = '\0';
	return strcmp(path, want) == 0;
}

int fsync(int fd)
{
	static int (*real)(int);
	if (!real)
		*(void **)&real = dlsym(RTLD_NEXT, "fsync");
	const char *times = getenv("FAIL_DIR_SYNC_TIMES");
	int limit = times ? atoi(times) : 1;
	if (is_the_directory(fd) && atomic_fetch_add(&failed, 1) < limit) {
		fprintf(stderr, "failing_dir_sync: a sync of %s failed\n", getenv("FAIL_DIR_SYNC"));
		errno = EIO;
		return -1;
	}
	return real(fd);
}
