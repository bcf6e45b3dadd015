/* faulty_disk.c - a disk that is slow or fails where a test says, for a
 * daemon started with LD_PRELOAD pointing at this library
 * (preload_faulty_disk in tests/fs/conftest.py builds and preloads it).
 * Each fault it makes writes one line to stderr, so a test can tell that
 * the library was loaded and did its work.
 *
 * SLOW_DISK_SYNC_MS: each sync of a file named *idbmount.db waits this
 * long. In WAL mode with synchronous=NORMAL a commit syncs nothing and a
 * checkpoint syncs the database file, so every checkpoint round becomes
 * slower than the pushes beside it, as on a busy disk.
 *
 * FAIL_DIR_SYNC: the directory (its canonical path) whose fsync answers
 * EIO, FAIL_DIR_SYNC_TIMES times (default 1); after that it syncs.
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

static atomic_int dir_syncs_failed;

/* The path `fd` was opened by, into `path`; false if unknown. */
static bool fd_path(int fd, char *path, size_t len)
{
	char link[64];
	snprintf(link, sizeof(link), "/proc/self/fd/%d", fd);
	ssize_t n = readlink(link, path, len - 1);
	if (n <= 0)
		return false;
	path[n] = '\0';
	return true;
}

static bool ends_with(const char *s, const char *end)
{
	size_t n = strlen(s), m = strlen(end);
	return n >= m && strcmp(s + n - m, end) == 0;
}

/* Whether this sync is one to fail; waits first if it is one to slow. */
static bool fault(int fd)
{
	char path[4096];
	const char *slow = getenv("SLOW_DISK_SYNC_MS");
	const char *failing = getenv("FAIL_DIR_SYNC");
	if ((!slow && !failing) || !fd_path(fd, path, sizeof(path)))
		return false;
	if (slow && ends_with(path, "idbmount.db")) {
		long ms = strtol(slow, NULL, 10);
		struct timespec t = {ms / 1000, (ms % 1000) * 1000000L};
		nanosleep(&t, NULL);
		fprintf(stderr, "faulty_disk: a sync of the database waited %ld ms\n", ms);
	}
	struct stat st;
	if (!failing || strcmp(path, failing) != 0 || fstat(fd, &st) != 0 || !S_ISDIR(st.st_mode))
		return false;
	const char *times = getenv("FAIL_DIR_SYNC_TIMES");
	if (atomic_fetch_add(&dir_syncs_failed, 1) >= (times ? atoi(times) : 1))
		return false;
	fprintf(stderr, "faulty_disk: a sync of %s failed\n", path);
	return true;
}

/* The sync `name` of libc, or the fault this one is. */
static int faulty_sync(int (**real)(int), const char *name, int fd)
{
	if (!*real)
		*(void **)real = dlsym(RTLD_NEXT, name);
	if (fault(fd)) {
		errno = EIO;
		return -1;
	}
	return (*real)(fd);
}

int fsync(int fd)
{
	static int (*real)(int);
	return faulty_sync(&real, "fsync", fd);
}

int fdatasync(int fd)
{
	static int (*real)(int);
	return faulty_sync(&real, "fdatasync", fd);
}
