/* main.c - the idbmount daemon: parses the command line, opens the store,
 * mounts the FUSE view and serves it until unmounted or signalled.
 *
 *   idbmount [-f] [-d] [--data DIR] [--config FILE] [-o OPTIONS] MOUNTPOINT
 *
 * -o takes sshfs-style options: ours (cache=, max_record=, threads=) are
 * consumed here, the rest (allow_other, default_permissions, fsname=, ...)
 * go to libfuse, which refuses what it does not know. allow_other is only
 * accepted together with default_permissions, so that the kernel checks
 * file modes for the other users.
 *
 * --config FILE names the sinks (config.h); it is read and every sink is
 * built before mounting, so a bad file stops the daemon at once with
 * "FILE:LINE: ..." on stderr. The flusher's threads start in the serving
 * process once the mount is up and stop after the FUSE loop ends, having
 * delivered what was ready (flusher.h).
 */
#include "idbmount/config.h"
#include "idbmount/datadir.h"
#include "idbmount/flusher.h"
#include "idbmount/fs.h"
#include "idbmount/store.h"

#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void usage(FILE *out)
{
	fprintf(out, "usage: idbmount [-f] [-d] [--data DIR] [--config FILE] [-o OPTIONS] "
	             "MOUNTPOINT\n"
	             "\n"
	             "Mounts every client's IndexedDB stores as directories of JSON files.\n"
	             "\n"
	             "  -f, --foreground    stay in the foreground (log to stderr)\n"
	             "  -d, --debug         print every FUSE request (implies -f)\n"
	             "      --data DIR      data directory (default $IDBMOUNT_DATA, else\n"
	             "                      ~/.local/share/idbmount)\n"
	             "      --config FILE   sinks to ship every change to (INI: one\n"
	             "                      [sink NAME] section each; 'idbmountctl sink list'\n"
	             "                      shows the types and their keys); default: none\n"
	             "  -o OPTIONS          comma-separated mount options:\n"
	             "      cache=never|auto|always   kernel caching (default always)\n"
	             "      max_record=BYTES          largest record file (default 16777216)\n"
	             "      threads=N                 FUSE worker threads (default 8)\n"
	             "      allow_other,default_permissions and other FUSE options\n"
	             "  -h, --help          this text\n"
	             "\n"
	             "Stop with 'fusermount3 -u MOUNTPOINT' or SIGTERM.\n");
}

/* Parses a decimal size with an optional k/M/G suffix. */
static bool parse_size(const char *text, size_t *out)
{
	char *end = NULL;
	errno = 0;
	unsigned long long v = strtoull(text, &end, 10);
	if (errno || end == text || text[0] == '-')
		return false;
	unsigned long long mult = 1;
	if (*end == 'k' || *end == 'K')
		mult = 1024, end++;
	else if (*end == 'M')
		mult = 1024 * 1024, end++;
	else if (*end == 'G')
		mult = 1024ull * 1024 * 1024, end++;
	if (*end || v == 0 || v > (1ull << 40) / mult)
		return false;
	*out = (size_t)(v * mult);
	return true;
}

struct options {
	struct fs_config fs;
	bool allow_other;
	bool default_permissions;
	char fuse_opts[4096];
};

/* Takes one -o list apart: ours into `o`, the rest into o->fuse_opts.
 * Returns false (with a message) on a bad value. */
static bool parse_mount_options(struct options *o, const char *list)
{
	char *copy = strdup(list);
	if (!copy)
		return false;
	bool ok = true;
	char *save = NULL;
	for (char *opt = strtok_r(copy, ",", &save); opt && ok; opt = strtok_r(NULL, ",", &save)) {
		if (strncmp(opt, "cache=", 6) == 0) {
			const char *v = opt + 6;
			if (strcmp(v, "never") == 0)
				o->fs.cache = FS_CACHE_NEVER;
			else if (strcmp(v, "auto") == 0)
				o->fs.cache = FS_CACHE_AUTO;
			else if (strcmp(v, "always") == 0)
				o->fs.cache = FS_CACHE_ALWAYS;
			else {
				fprintf(stderr, "idbmount: cache=%s: use never, auto or always\n",
				        v);
				ok = false;
			}
			continue;
		}
		if (strncmp(opt, "max_record=", 11) == 0) {
			if (!parse_size(opt + 11, &o->fs.max_record)) {
				fprintf(stderr, "idbmount: %s: not a size in bytes\n", opt);
				ok = false;
			}
			continue;
		}
		if (strncmp(opt, "threads=", 8) == 0) {
			char *end = NULL;
			long n = strtol(opt + 8, &end, 10);
			if (*end || n < 1 || n > 64) {
				fprintf(stderr, "idbmount: %s: use 1 to 64\n", opt);
				ok = false;
			}
			o->fs.max_threads = (unsigned)n;
			continue;
		}
		if (strcmp(opt, "allow_other") == 0)
			o->allow_other = true;
		if (strcmp(opt, "default_permissions") == 0)
			o->default_permissions = true;
		size_t used = strlen(o->fuse_opts);
		int n = snprintf(o->fuse_opts + used, sizeof(o->fuse_opts) - used, "%s%s",
		                 used ? "," : "", opt);
		if (n < 0 || (size_t)n >= sizeof(o->fuse_opts) - used) {
			fprintf(stderr, "idbmount: -o: too many options\n");
			ok = false;
		}
	}
	free(copy);
	return ok;
}

/* fs_run's hooks: the flusher runs while the mount is served. */
static int start_flusher(void *arg)
{
	struct flusher **f = arg;
	return flusher_start(*f);
}

static void stop_flusher(void *arg)
{
	struct flusher **f = arg;
	flusher_stop(*f);
	*f = NULL;
}

int main(int argc, char **argv)
{
	static const struct option longopts[] = {
	        {"foreground", no_argument, NULL, 'f'}, {"debug", no_argument, NULL, 'd'},
	        {"data", required_argument, NULL, 'D'}, {"config", required_argument, NULL, 'C'},
	        {"help", no_argument, NULL, 'h'},       {NULL, 0, NULL, 0},
	};
	struct options o;
	memset(&o, 0, sizeof(o));
	o.fs.cache = FS_CACHE_ALWAYS;
	const char *datadir = NULL;
	const char *config_path = NULL;
	int c;
	while ((c = getopt_long(argc, argv, "+fdo:h", longopts, NULL)) != -1) {
		switch (c) {
		case 'f':
			o.fs.foreground = true;
			break;
		case 'd':
			o.fs.debug = true;
			o.fs.foreground = true;
			break;
		case 'D':
			datadir = optarg;
			break;
		case 'C':
			config_path = optarg;
			break;
		case 'o':
			if (!parse_mount_options(&o, optarg))
				return 2;
			break;
		case 'h':
			usage(stdout);
			return 0;
		default:
			usage(stderr);
			return 2;
		}
	}
	if (optind != argc - 1) {
		fprintf(stderr, "idbmount: %s\n",
		        optind >= argc ? "missing MOUNTPOINT" : "more than one MOUNTPOINT");
		usage(stderr);
		return 2;
	}
	const char *mountpoint = argv[optind];
	if (o.allow_other && !o.default_permissions) {
		fprintf(stderr, "idbmount: allow_other needs default_permissions, so that the "
		                "kernel checks file modes for other users\n");
		return 2;
	}

	char defdir[PATH_MAX];
	if (!datadir) {
		int rc = datadir_default(defdir, sizeof(defdir));
		if (rc) {
			fprintf(stderr, "idbmount: cannot make the data directory %s: %s\n", defdir,
			        strerror(-rc));
			return 1;
		}
		datadir = defdir;
	}
	/* Open once here: a bad data directory fails before mounting. */
	struct store *st = NULL;
	char err[512];
	if (store_open(datadir, &st, err, sizeof(err)) != 0) {
		fprintf(stderr, "idbmount: %s\n", err);
		return 1;
	}
	int pid = 0;
	int64_t seq = 0, tree = 0;
	store_daemon_status(st, &pid, &seq, &tree);
	store_close(st);
	if (pid > 0) {
		fprintf(stderr, "idbmount: data directory %s is already served by pid %d\n",
		        datadir, pid);
		return 1;
	}
	o.fs.datadir = datadir;

	struct config *cfg = NULL;
	struct flusher *flusher = NULL;
	if (config_path) {
		char cerr[8192];
		int crc = config_load(config_path, &cfg, cerr, sizeof(cerr));
		if (crc == 0)
			crc = flusher_new(cfg, datadir, &flusher, cerr, sizeof(cerr));
		if (crc) {
			fprintf(stderr, "%s\nidbmount: not started: fix %s\n", cerr, config_path);
			config_free(cfg);
			return 2;
		}
		o.fs.on_serving = start_flusher;
		o.fs.on_stopped = stop_flusher;
		o.fs.hook_arg = &flusher;
	}

	char *fuse_argv[8];
	int fuse_argc = 0;
	fuse_argv[fuse_argc++] = argv[0];
	char base_opts[4200];
	snprintf(base_opts, sizeof(base_opts), "fsname=idbmount,subtype=idbmount%s%s",
	         o.fuse_opts[0] ? "," : "", o.fuse_opts);
	fuse_argv[fuse_argc++] = "-o";
	fuse_argv[fuse_argc++] = base_opts;
	if (o.fs.debug)
		fuse_argv[fuse_argc++] = "-d";
	fuse_argv[fuse_argc] = NULL;

	struct fs *fs = NULL;
	if (fs_new(&o.fs, fuse_argc, fuse_argv, &fs) != 0) {
		fprintf(stderr, "idbmount: bad mount options: %s\n", base_opts);
		flusher_stop(flusher);
		config_free(cfg);
		return 2;
	}
	int rc = fs_run(fs, mountpoint);
	fs_destroy(fs);
	/* Not started, or already stopped by stop_flusher (NULL then). */
	flusher_stop(flusher);
	config_free(cfg);
	if (rc) {
		fprintf(stderr, "idbmount: %s: %s\n", mountpoint, strerror(-rc));
		return 1;
	}
	return 0;
}
