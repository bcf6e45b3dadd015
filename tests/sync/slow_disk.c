/* slow_disk.c - a disk whose syncs of the database file are slow, for a
 * daemon started with LD_PRELOAD pointing at this library
 * (tests/sync/test_limits.py builds it).
 *
 * In WAL mode with synchronous=NORMAL a commit syncs nothing; a checkpoint
 * syncs the database file after copying the WAL into it. Slowing only that
 * sync makes every checkpoint round slower than the pushes beside it, as a
 * busy disk does, without slowing the pushes themselves.
 *
 * SLOW_DISK_SYNC_MS: how long each sync of a file named *idbmount.db waits.
 * Each slowed sync writes one line to stderr, so a test can tell that the
 * library was loaded and did its work.
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static int is_database_file(int fd)
{
	char link[64], path[4096];
	snprintf(link, sizeof(link), "/proc/self/fd/%d", fd);
	ssize_t n = readlink(link, path, sizeof(path) - 1);
	if (n <= 0)
		return 0;
	path[n] = '\0';
	const char *name = "idbmount.db";
	size_t len = strlen(name);
	return (size_t)n >= len && strcmp(path + n - len, name) == 0;
}

static void wait_if_database(int fd)
{
	const char *ms = getenv("SLOW_DISK_SYNC_MS");
	if (!ms || !is_database_file(fd))
		return;
	long wait = strtol(ms, NULL, 10);
	struct timespec t = {wait / 1000, (wait % 1000) * 1000000L};
	nanosleep(&t, NULL);
	fprintf(stderr, "slow_disk: a sync of the database waited %ld ms\n", wait);
}

int fsync(int fd)
{
	static int (*real)(int);
	if (!real)
		*(void **)&real = dlsym(RTLD_NEXT, "fsync");
	wait_if_database(fd);
	return real(fd);
}

int fdatasync(int fd)
{
	static int (*real)(int);
	if (!real)
		*(void **)&real = dlsym(RTLD_NEXT, "fdatasync");
	wait_if_database(fd);
	return real(fd);
}
