/* round_trip.c - the cost of one round trip on this machine, for
 * bench_fs.py (compiled at bench time):
 *
 *   round_trip pipe N          N ping-pongs of one byte between two
 *                              processes over two pipes
 *   round_trip open-close F N  N open(F, O_RDONLY) + close pairs
 *
 * Prints microseconds per round trip (per pair). On a warm idbmount mount
 * with cache=always an open + close of a record is exactly one FUSE round
 * trip (the FLUSH of close: no OPEN in the kernel's no-open mode), so the
 * two figures side by side show what a round trip to any other process
 * costs here, against what a whole small file costs plain grep. */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static double now_us(void)
{
	struct timespec t;
	clock_gettime(CLOCK_MONOTONIC, &t);
	return (double)t.tv_sec * 1e6 + (double)t.tv_nsec / 1e3;
}

static int pipe_round_trips(long n)
{
	int ping[2], pong[2];
	char c = 0;
	if (pipe(ping) || pipe(pong)) {
		perror("pipe");
		return 1;
	}
	pid_t child = fork();
	if (child < 0) {
		perror("fork");
		return 1;
	}
	if (child == 0) {
		for (long i = 0; i < n; i++)
			if (read(ping[0], &c, 1) != 1 || write(pong[1], &c, 1) != 1)
				_exit(1);
		_exit(0);
	}
	double t0 = now_us();
	for (long i = 0; i < n; i++)
		if (write(ping[1], &c, 1) != 1 || read(pong[0], &c, 1) != 1) {
			perror("pipe round trip");
			return 1;
		}
	double us = (now_us() - t0) / (double)n;
	int status = 0;
	waitpid(child, &status, 0);
	printf("%.2f\n", us);
	return status != 0;
}

static int open_close(const char *path, long n)
{
	double t0 = now_us();
	for (long i = 0; i < n; i++) {
		int fd = open(path, O_RDONLY);
		if (fd < 0 || close(fd) != 0) {
			perror(path);
			return 1;
		}
	}
	printf("%.2f\n", (now_us() - t0) / (double)n);
	return 0;
}

int main(int argc, char **argv)
{
	if (argc == 3 && strcmp(argv[1], "pipe") == 0)
		return pipe_round_trips(atol(argv[2]));
	if (argc == 4 && strcmp(argv[1], "open-close") == 0)
		return open_close(argv[2], atol(argv[3]));
	fprintf(stderr, "usage: round_trip pipe N | round_trip open-close FILE N\n");
	return 2;
}
