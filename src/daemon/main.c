/* main.c - the idbmount daemon: parses the command line, opens the store,
 * mounts the FUSE view and serves it until unmounted or signalled.
 *
 *   idbmount [-f] [-d] [--data DIR] [--listen ADDR:PORT|none]
 *            [--tls-cert FILE --tls-key FILE] [--allow-origin LIST]
 *            [--server-name LIST]
 *            [--max-body BYTES] [--max-buffered BYTES] [--http-timeout SECONDS]
 *            [--keepalive SECONDS] [--max-connections N] [--config FILE]
 *            [-o OPTIONS]
 *            [--view DIR] MOUNTPOINT | --view DIR
 *
 * MOUNTPOINT gets the read-write tree; --view DIR (or -o view=DIR) the same
 * tree read-only, for readers at the speed of local files (fs_view.c). A
 * daemon may serve only the view: --view DIR without MOUNTPOINT, or
 * -o view_only with MOUNTPOINT (for fstab and mount -t, which always name
 * one mount point).
 *
 * The daemon serves the mount and the sync endpoint (src/http/) from one
 * process; both follow the store through one watch thread (watch.h), and
 * a push waits on the notifier's progress (shown.h) to answer once the
 * mount shows it. The HTTP socket is bound and the TLS files are read
 * before mounting, so a busy port or a bad path fails on the terminal; the
 * threads start after the daemon detached (detaching forks).
 *
 * -o takes sshfs-style options: ours (cache=, max_record=, threads=,
 * private_writes, listen=, server_name=, config=, tls_cert=, tls_key=,
 * uid=, gid=, umask=, view=, view_only) are consumed here, the rest
 * (allow_other, default_permissions, fsname=, ...) go to libfuse, which
 * refuses what it does not know. allow_other is only accepted together
 * with default_permissions, so that the kernel checks file modes for the
 * other users.
 *
 * --config FILE names the sinks (config.h); it is read and every sink is
 * built before mounting, so a bad file stops the daemon at once with
 * "FILE:LINE: ..." on stderr. The flusher's threads start in the serving
 * process once the mount is up and stop after the FUSE loop ends, having
 * delivered what was ready (flusher.h).
 */
#include "idbmount/daemon/claim.h"
#include "idbmount/flusher/flusher.h"
#include "idbmount/fs/fs.h"
#include "idbmount/http/http.h"
#include "idbmount/sinks/config.h"
#include "idbmount/store/checkpointer.h"
#include "idbmount/store/store.h"
#include "idbmount/store/store_backup.h"
#include "idbmount/store/watch.h"
#include "idbmount/util/datadir.h"
#include "idbmount/util/shown.h"

#include <errno.h>
#include <getopt.h>
#include <grp.h>
#include <limits.h>
#include <malloc.h>
#include <pwd.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>

static void usage(FILE *out)
{
	fprintf(out,
	        "usage: idbmount [-f] [-d] [--data DIR] [--listen ADDR:PORT] [-o OPTIONS]\n"
	        "                [--view DIR] MOUNTPOINT\n"
	        "       idbmount [OPTIONS] --view DIR\n"
	        "\n"
	        "Mounts every client's IndexedDB stores as directories of JSON files and\n"
	        "serves the browser sync endpoint.\n"
	        "\n"
	        "      --view DIR      also mount the same tree read-only at DIR, for\n"
	        "                      readers (grep -r, jq, pipelines) at local-disk speed;\n"
	        "                      without MOUNTPOINT, only the view; also -o view=DIR,\n"
	        "                      or -o view_only to take MOUNTPOINT as the view\n"
	        "  -f, --foreground    stay in the foreground (log to stderr)\n"
	        "  -d, --debug         print every FUSE request (implies -f)\n"
	        "      --data DIR      data directory (default $IDBMOUNT_DATA, else\n"
	        "                      $XDG_DATA_HOME/idbmount, else ~/.local/share/idbmount)\n"
	        "      --listen ADDR:PORT  HTTP address (default $IDBMOUNT_LISTEN, else\n"
	        "                      " HTTP_DEFAULT_LISTEN "; [::1]:PORT for IPv6; port 0 picks\n"
	        "                      a free one; 'none' serves no HTTP; also -o listen=)\n"
	        "      --tls-cert FILE, --tls-key FILE\n"
	        "                      serve HTTPS with this PEM certificate and key\n"
	        "      --allow-origin LIST  comma-separated origins that may call from other\n"
	        "                      pages (CORS), or '*'; default: same origin only\n"
	        "      --server-name LIST  host names (comma-separated) the daemon answers\n"
	        "                      for besides its listen address, e.g. the public\n"
	        "                      name behind a proxy; also -o server_name=NAME\n"
	        "      --max-body BYTES    largest request body (default 32M)\n"
	        "      --max-buffered BYTES  request bodies held at once, all connections\n"
	        "                      together (default 4 x --max-body); past it 503\n"
	        "      --http-timeout SECONDS  close idle or stalled connections (default 30)\n"
	        "      --keepalive SECONDS     comment on quiet event streams (default 15)\n"
	        "      --max-connections N  HTTP connections (event streams too) open at once;\n"
	        "                      more are answered 503 (default: the descriptor limit\n"
	        "                      less 576; the log says the figure at start)\n"
	        "      --config FILE   sinks to ship every change to (INI: one\n"
	        "                      [sink NAME] section each; 'idbmountctl sink list'\n"
	        "                      shows the types and their keys); default: none\n"
	        "  -o OPTIONS          comma-separated mount options:\n"
	        "      cache=never|auto|always   kernel caching (default always)\n"
	        "      listen=ADDR:PORT          as --listen (for fstab lines)\n"
	        "      server_name=NAME          as --server-name, one name each\n"
	        "      config=FILE, tls_cert=FILE, tls_key=FILE  as --config, --tls-cert,\n"
	        "                                --tls-key (for fstab lines)\n"
	        "      max_record=BYTES          largest record file (default 16M; k, M, G)\n"
	        "      threads=N                 FUSE worker threads (default 8)\n"
	        "      uid=USER, gid=GROUP       owner and group of every file (default:\n"
	        "                                the daemon's)\n"
	        "      umask=MASK                mode bits taken away (default 077: only the\n"
	        "                                owner may read or write)\n"
	        "      private_writes            a copy of its own for every open for\n"
	        "                                writing (slower reads: see README)\n"
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

/* A thousand event streams are a thousand sockets: take the hard limit of
 * open files (distributions set the soft one to 1024). */
static void raise_fd_limit(void)
{
	struct rlimit rl;
	if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
		rl.rlim_cur = rl.rlim_max;
		setrlimit(RLIMIT_NOFILE, &rl);
	}
}

struct options {
	struct fs_config fs;
	char listen[320];        /* -o listen= */
	char view[PATH_MAX];     /* --view, -o view= */
	bool view_only;          /* -o view_only: MOUNTPOINT is the view */
	char server_names[4096]; /* --server-name and -o server_name=, comma-separated */
	/* -o config=, tls_cert=, tls_key=: what fstab and mount -t cannot
	 * say any other way; the long options win. */
	char config[PATH_MAX];
	char tls_cert[PATH_MAX];
	char tls_key[PATH_MAX];
	bool allow_other;
	bool default_permissions;
	char fuse_opts[4096];
};

/* uid=USER|NUMBER or gid=GROUP|NUMBER into cfg. */
static bool parse_owner(const char *opt, struct fs_config *cfg)
{
	const char *v = opt + 4;
	char *end = NULL;
	errno = 0;
	unsigned long id = strtoul(v, &end, 10);
	bool numeric = *v && !*end && !errno && id < 0xffffffffUL && v[0] != '-';
	if (opt[0] == 'u') {
		struct passwd *pw = numeric ? NULL : getpwnam(v);
		if (!numeric && !pw)
			return false;
		cfg->owner = numeric ? (uid_t)id : pw->pw_uid;
	} else {
		struct group *gr = numeric ? NULL : getgrnam(v);
		if (!numeric && !gr)
			return false;
		cfg->group = numeric ? (gid_t)id : gr->gr_gid;
	}
	return true;
}

/* Adds `names` (one or a comma-separated list) to o->server_names. */
static bool add_server_names(struct options *o, const char *names)
{
	size_t used = strlen(o->server_names);
	int n = snprintf(o->server_names + used, sizeof(o->server_names) - used, "%s%s",
	                 used ? "," : "", names);
	if (n < 0 || (size_t)n >= sizeof(o->server_names) - used) {
		fprintf(stderr, "idbmount: --server-name: too many names\n");
		return false;
	}
	return true;
}

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
		if (strcmp(opt, "private_writes") == 0) {
			o->fs.private_writes = true;
			continue;
		}
		if (strncmp(opt, "listen=", 7) == 0) {
			/* For fstab lines and mount -t, which pass only -o. */
			if (snprintf(o->listen, sizeof(o->listen), "%s", opt + 7) >=
			    (int)sizeof(o->listen)) {
				fprintf(stderr, "idbmount: %s: too long\n", opt);
				ok = false;
			}
			continue;
		}
		char *file = strncmp(opt, "config=", 7) == 0     ? o->config
		             : strncmp(opt, "tls_cert=", 9) == 0 ? o->tls_cert
		             : strncmp(opt, "tls_key=", 8) == 0  ? o->tls_key
		                                                 : NULL;
		if (file) {
			const char *v = strchr(opt, '=') + 1;
			if (!*v || snprintf(file, PATH_MAX, "%s", v) >= PATH_MAX) {
				fprintf(stderr, "idbmount: %s: want a file\n", opt);
				ok = false;
			}
			continue;
		}
		if (strncmp(opt, "uid=", 4) == 0 || strncmp(opt, "gid=", 4) == 0) {
			if (!parse_owner(opt, &o->fs)) {
				fprintf(stderr, "idbmount: %s: not a known %s or a number\n", opt,
				        opt[0] == 'u' ? "user" : "group");
				ok = false;
			}
			continue;
		}
		if (strncmp(opt, "umask=", 6) == 0) {
			char *end = NULL;
			long m = strtol(opt + 6, &end, 8);
			if (!opt[6] || *end || m < 0 || m > 0777) {
				fprintf(stderr,
				        "idbmount: %s: want an octal mask, e.g. umask=027\n", opt);
				ok = false;
			}
			o->fs.umask = (mode_t)m;
			continue;
		}
		if (strncmp(opt, "view=", 5) == 0) {
			if (!opt[5] || snprintf(o->view, sizeof(o->view), "%s", opt + 5) >=
			                       (int)sizeof(o->view)) {
				fprintf(stderr, "idbmount: %s: want a directory\n", opt);
				ok = false;
			}
			continue;
		}
		if (strcmp(opt, "view_only") == 0) {
			o->view_only = true;
			continue;
		}
		if (strncmp(opt, "server_name=", 12) == 0) {
			/* One name each (-o splits on commas); repeat for more. */
			ok = add_server_names(o, opt + 12);
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

/* What the command line says. */
struct command_line {
	struct options o;
	struct http_config http;
	const char *datadir;     /* NULL: the default */
	const char *config_path; /* NULL: no sinks */
	const char *argv0;
};

/* Everything the daemon starts, so that one path stops it. */
struct daemon {
	struct claim claim;
	struct config *cfg;
	struct flusher *flusher;
	struct http *http;
	struct fs *fs;
	struct checkpointer *checkpointer;
	struct watch *watch;
	struct shown *shown;    /* the notifier moves it; HTTP waits on it */
	char realdir[PATH_MAX]; /* the data directory, as every part is given it */
	char node[256];         /* this host's name in change lines */
};

/* Stops what was started, in the order that loses nothing: the mount goes
 * first (nobody waits on a mount with no workers), then HTTP (no new
 * changes), then the flusher delivers what is ready, then the rest. */
static void daemon_stop(struct daemon *d)
{
	if (d->fs)
		fs_unmount(d->fs);
	http_stop(d->http);
	flusher_stop(d->flusher);
	config_free(d->cfg);
	watch_stop(d->watch);
	fs_destroy(d->fs);
	shown_free(d->shown); /* the notifier and HTTP are gone */
	checkpointer_stop(d->checkpointer);
	claim_release(&d->claim);
}

/* The lines a start logs about the data directory: a migration of its
 * schema, that it was restored from a backup. */
static void start_notes(struct store *st, char *out, size_t outlen)
{
	char restored[1024];
	int n = 0;
	if (*store_open_notice(st))
		n = snprintf(out, outlen, "idbmount: %s\n", store_open_notice(st));
	if (n < 0 || (size_t)n >= outlen)
		return;
	if (store_restore_note(st, restored, sizeof(restored)) == 0 && restored[0])
		snprintf(out + n, outlen - (size_t)n, "idbmount: %s\n", restored);
}

/* Opens the data directory, checks the config and the HTTP address, mounts
 * and starts the threads. Returns 0 when the daemon is up, else the exit
 * status: 1 (could not start), 2 (bad command line or config); what was
 * started is daemon_stop's to stop either way. */
static int daemon_start(struct daemon *d, struct command_line *cl)
{
	struct options *o = &cl->o;
	struct http_config *http_cfg = &cl->http;
	const char *datadir = cl->datadir;
	int status = 1;
	int rc;
	char err[8192] = "";
	char defdir[PATH_MAX];
	if (!datadir) {
		rc = datadir_default(defdir, sizeof(defdir));
		if (rc) {
			fprintf(stderr, "idbmount: cannot make the data directory %s: %s\n", defdir,
			        strerror(-rc));
			return 1;
		}
		datadir = defdir;
	}
	/* Its files are 0600 (the store makes them so), but say so when the
	 * directory itself lets others in. */
	char warning[PATH_MAX * 2 + 200];
	if (datadir_open_to_others(datadir, warning, sizeof(warning)))
		fprintf(stderr, "idbmount: %s\n", warning);
	/* Open once here: a bad data directory fails before mounting. */
	struct store *st = NULL;
	if (store_open(datadir, &st, err, sizeof(err)) != 0) {
		fprintf(stderr, "idbmount: %s\n", err);
		return 1;
	}
	/* What the operator must hear of this data directory (a migration, a
	 * restore) goes to stderr now and, once detached, into the log too. */
	char notes[2048] = "";
	start_notes(st, notes, sizeof(notes));
	fputs(notes, stderr);
	store_close(st);
	/* Detaching changes the working directory: every part gets the full
	 * path. */
	char *realdir = d->realdir;
	if (!realpath(datadir, realdir)) {
		fprintf(stderr, "idbmount: data directory %s: %s\n", datadir, strerror(errno));
		return 1;
	}
	char note[2048];
	if (claim_take(realdir, &d->claim, err, sizeof(err), note, sizeof(note)) != 0) {
		fprintf(stderr, "idbmount: %s\n", err);
		return 1;
	}
	if (note[0])
		fprintf(stderr, "idbmount: %s\n", note);
	if (!o->fs.foreground) {
		/* The log (opened by fs_mount once detached) is made 0600 here,
		 * whatever the umask, also when it exists: it holds paths and
		 * names of records. */
		char log[PATH_MAX + 32];
		snprintf(log, sizeof(log), "%s/idbmount.log", realdir);
		rc = datadir_private_file(log, true);
		if (rc) {
			fprintf(stderr, "idbmount: %s: %s\n", log, strerror(-rc));
			return status;
		}
	}
	o->fs.datadir = realdir;
	o->fs.lock_fd = d->claim.fd;
	raise_fd_limit();
	char *node = d->node;
	datadir_node_name(node, sizeof(d->node));
	http_cfg->datadir = realdir;
	http_cfg->max_record = o->fs.max_record;
	http_cfg->node = node;
	/* The sinks are checked before anything is mounted: a bad config file
	 * stops the start with its FILE:LINE messages. Without a file there
	 * is a flusher too (with no sinks): it marks the sinks of an earlier
	 * run as removed. */
	rc = cl->config_path ? config_load(cl->config_path, &d->cfg, err, sizeof(err)) : 0;
	if (rc == 0)
		rc = flusher_new(d->cfg, realdir, &d->flusher, err, sizeof(err));
	if (rc) {
		if (cl->config_path)
			fprintf(stderr, "%s\nidbmount: not started: fix %s\n", err,
			        cl->config_path);
		else
			fprintf(stderr, "idbmount: %s\n", err);
		status = cl->config_path ? 2 : 1;
		return status;
	}
	http_cfg->extra_metrics = flusher_metrics;
	http_cfg->extra_metrics_ctx = d->flusher;
	rc = http_prepare(http_cfg, &d->http, err, sizeof(err));
	if (rc) {
		fprintf(stderr, "idbmount: %s\n", err);
		status = rc == -EINVAL ? 2 : 1; /* 2: the command line is wrong */
		return status;
	}

	char *fuse_argv[8];
	int fuse_argc = 0;
	fuse_argv[fuse_argc++] = (char *)cl->argv0;
	char base_opts[4200];
	snprintf(base_opts, sizeof(base_opts), "fsname=idbmount,subtype=idbmount%s%s",
	         o->fuse_opts[0] ? "," : "", o->fuse_opts);
	fuse_argv[fuse_argc++] = "-o";
	fuse_argv[fuse_argc++] = base_opts;
	if (o->fs.debug)
		fuse_argv[fuse_argc++] = "-d";
	fuse_argv[fuse_argc] = NULL;
	if (fs_new(&o->fs, fuse_argc, fuse_argv, &d->fs) != 0) {
		fprintf(stderr, "idbmount: bad mount options: %s\n", base_opts);
		status = 2;
		return status;
	}
	/* Threads start after fs_mount, which may detach (fork). */
	rc = fs_mount(d->fs);
	if (rc) {
		fprintf(stderr, "idbmount: %s%s%s: %s\n", o->fs.mountpoint ? o->fs.mountpoint : "",
		        o->fs.mountpoint && o->fs.view ? ", " : "", o->fs.view ? o->fs.view : "",
		        strerror(-rc));
		return status;
	}
	if (!o->fs.foreground)
		fputs(notes, stderr);
	struct fs_mount_id ids[2];
	rc = claim_record(&d->claim, ids, fs_mount_ids(d->fs, ids));
	if (rc)
		fprintf(stderr, "idbmount: cannot write the lock file: %s\n", strerror(-rc));
	rc = checkpointer_start(realdir, &d->checkpointer);
	if (!rc)
		rc = watch_start(realdir, &d->watch);
	if (!rc)
		rc = shown_new(&d->shown);
	/* The mounts serve, and the daemon is registered in the store, before
	 * anything that makes changes starts: whoever sees a change HTTP took
	 * or the flusher shipped sees a daemon that will show it. */
	if (!rc) {
		rc = fs_start(d->fs, d->watch, d->shown);
		if (rc)
			fprintf(stderr, "idbmount: cannot serve the mounts: %s\n", strerror(-rc));
	}
	if (!rc) {
		rc = http_start(d->http, d->watch, d->shown, err, sizeof(err));
		if (rc)
			fprintf(stderr, "idbmount: %s\n", err);
	}
	if (!rc) {
		rc = flusher_start(d->flusher);
		if (rc)
			fprintf(stderr, "idbmount: cannot start the flusher: %s\n", strerror(-rc));
	}
	if (rc)
		return status;
	if (d->http) {
		/* The address as a URL a user can open: with the port the kernel
		 * picked for ":0", not the 0. */
		const char *colon = strrchr(http_cfg->listen, ':');
		int host_len =
		        colon ? (int)(colon - http_cfg->listen) : (int)strlen(http_cfg->listen);
		fprintf(stderr, "idbmount: serving %s://%.*s:%u (port %u)\n",
		        http_cfg->tls_cert_file ? "https" : "http", host_len, http_cfg->listen,
		        http_port(d->http), http_port(d->http));
	}
	return 0;
}

/* Serves the mounts until an unmount or a signal. Returns the exit status:
 * 0, or 1 when serving failed. */
static int daemon_run(struct daemon *d)
{
	int rc = fs_serve(d->fs);
	if (rc) {
		fprintf(stderr, "idbmount: serving: %s\n", strerror(-rc));
		return 1;
	}
	return 0;
}

/* Reads the command line into `cl`. Returns -1 to go on, else the exit
 * status: 0 after --help, 2 for a bad command line (after a message). */
static int parse_command_line(int argc, char **argv, struct command_line *cl)
{
	enum {
		OPT_LISTEN = 256,
		OPT_TLS_CERT,
		OPT_TLS_KEY,
		OPT_ALLOW_ORIGIN,
		OPT_MAX_BODY,
		OPT_MAX_BUFFERED,
		OPT_SERVER_NAME,
		OPT_HTTP_TIMEOUT,
		OPT_KEEPALIVE,
		OPT_MAX_CONNECTIONS,
		OPT_CONFIG,
		OPT_VIEW,
	};
	static const struct option longopts[] = {
	        {"foreground", no_argument, NULL, 'f'},
	        {"debug", no_argument, NULL, 'd'},
	        {"data", required_argument, NULL, 'D'},
	        {"listen", required_argument, NULL, OPT_LISTEN},
	        {"tls-cert", required_argument, NULL, OPT_TLS_CERT},
	        {"tls-key", required_argument, NULL, OPT_TLS_KEY},
	        {"allow-origin", required_argument, NULL, OPT_ALLOW_ORIGIN},
	        {"max-body", required_argument, NULL, OPT_MAX_BODY},
	        {"max-buffered", required_argument, NULL, OPT_MAX_BUFFERED},
	        {"server-name", required_argument, NULL, OPT_SERVER_NAME},
	        {"http-timeout", required_argument, NULL, OPT_HTTP_TIMEOUT},
	        {"keepalive", required_argument, NULL, OPT_KEEPALIVE},
	        {"max-connections", required_argument, NULL, OPT_MAX_CONNECTIONS},
	        {"config", required_argument, NULL, OPT_CONFIG},
	        {"view", required_argument, NULL, OPT_VIEW},
	        {"help", no_argument, NULL, 'h'},
	        {NULL, 0, NULL, 0},
	};
	memset(cl, 0, sizeof(*cl));
	cl->argv0 = argv[0];
	struct options *o = &cl->o;
	struct http_config *http_cfg = &cl->http;
	http_config_defaults(http_cfg);
	/* $IDBMOUNT_LISTEN sets the default, as $IDBMOUNT_DATA does for --data
	 * (the test suites use 127.0.0.1:0 so parallel runs never collide). */
	const char *env_listen = getenv("IDBMOUNT_LISTEN");
	if (env_listen && *env_listen)
		http_cfg->listen = env_listen;
	size_t seconds = 0;
	o->fs.cache = FS_CACHE_ALWAYS;
	o->fs.lock_fd = -1;
	/* Nothing for anybody but the owner unless granted (-o umask=, uid=,
	 * gid=): an allow_other mount must not show every client's records
	 * to every local user. */
	o->fs.owner = getuid();
	o->fs.group = getgid();
	o->fs.umask = 077;
	int c;
	while ((c = getopt_long(argc, argv, "+fdo:h", longopts, NULL)) != -1) {
		switch (c) {
		case 'f':
			o->fs.foreground = true;
			break;
		case 'd':
			o->fs.debug = true;
			o->fs.foreground = true;
			break;
		case 'D':
			cl->datadir = optarg;
			break;
		case 'o':
			if (!parse_mount_options(o, optarg))
				return 2;
			break;
		case OPT_LISTEN:
			http_cfg->listen = optarg;
			break;
		case OPT_VIEW:
			if (snprintf(o->view, sizeof(o->view), "%s", optarg) >=
			    (int)sizeof(o->view)) {
				fprintf(stderr, "idbmount: --view %s: too long\n", optarg);
				return 2;
			}
			break;
		case OPT_CONFIG:
			cl->config_path = optarg;
			break;
		case OPT_TLS_CERT:
			http_cfg->tls_cert_file = optarg;
			break;
		case OPT_TLS_KEY:
			http_cfg->tls_key_file = optarg;
			break;
		case OPT_ALLOW_ORIGIN:
			http_cfg->allow_origins = optarg;
			break;
		case OPT_MAX_BODY:
			if (!parse_size(optarg, &http_cfg->max_body)) {
				fprintf(stderr, "idbmount: --max-body %s: not a size in bytes\n",
				        optarg);
				return 2;
			}
			break;
		case OPT_SERVER_NAME:
			if (!add_server_names(o, optarg))
				return 2;
			break;
		case OPT_MAX_BUFFERED:
			if (!parse_size(optarg, &http_cfg->max_buffered)) {
				fprintf(stderr,
				        "idbmount: --max-buffered %s: not a size in bytes\n",
				        optarg);
				return 2;
			}
			break;
		case OPT_MAX_CONNECTIONS: {
			size_t n = 0;
			if (!parse_size(optarg, &n) || n > 1000000 ||
			    optarg[strspn(optarg, "0123456789")]) {
				fprintf(stderr,
				        "idbmount: --max-connections %s: want 1 to 1000000\n",
				        optarg);
				return 2;
			}
			http_cfg->max_connections = (unsigned)n;
			break;
		}
		case OPT_HTTP_TIMEOUT:
		case OPT_KEEPALIVE:
			if (!parse_size(optarg, &seconds) || seconds > 86400 ||
			    optarg[strspn(optarg, "0123456789")]) {
				fprintf(stderr, "idbmount: %s %s: want 1 to 86400 seconds\n",
				        c == OPT_KEEPALIVE ? "--keepalive" : "--http-timeout",
				        optarg);
				return 2;
			}
			if (c == OPT_KEEPALIVE)
				http_cfg->keepalive_s = (unsigned)seconds;
			else
				http_cfg->timeout_s = (unsigned)seconds;
			break;
		case 'h':
			usage(stdout);
			return 0;
		default:
			usage(stderr);
			return 2;
		}
	}
	if (optind < argc - 1 || (optind == argc && !o->view[0]) ||
	    (o->view_only && (optind == argc || o->view[0]))) {
		fprintf(stderr, "idbmount: %s\n",
		        optind < argc - 1 ? "more than one MOUNTPOINT"
		        : optind < argc   ? "view_only takes MOUNTPOINT as the view: no view= too"
		        : o->view_only || !o->view[0] ? "missing MOUNTPOINT"
		                                      : "");
		usage(stderr);
		return 2;
	}
	o->fs.mountpoint = optind < argc && !o->view_only ? argv[optind] : NULL;
	o->fs.view = o->view_only ? argv[optind] : o->view[0] ? o->view : NULL;
	if (o->fs.mountpoint && o->fs.view && strcmp(o->fs.mountpoint, o->fs.view) == 0) {
		fprintf(stderr, "idbmount: the view needs a mount point of its own\n");
		return 2;
	}
	if (o->allow_other && !o->default_permissions) {
		fprintf(stderr, "idbmount: allow_other needs default_permissions, so that the "
		                "kernel checks file modes for other users\n");
		return 2;
	}
	if (o->listen[0])
		http_cfg->listen = o->listen;
	if (o->config[0] && !cl->config_path)
		cl->config_path = o->config;
	if (o->tls_cert[0] && !http_cfg->tls_cert_file)
		http_cfg->tls_cert_file = o->tls_cert;
	if (o->tls_key[0] && !http_cfg->tls_key_file)
		http_cfg->tls_key_file = o->tls_key;
	http_cfg->server_names = o->server_names;
	return -1;
}

/* The allocator's tuning for the daemon's pattern of allocation. */
static void tune_malloc(void)
{
	/* A push of 1,000 records allocates and frees a few MiB on two
	 * threads. With glibc's defaults each thread's heap was given back to
	 * the kernel after every push and faulted in again by the next (twice
	 * the page faults, ~15% of a push's CPU time). Keep up to 8 MiB free
	 * per heap instead, and serve bodies under 4 MiB from the heap. The
	 * daemon's RSS target (64 MiB with 1,000,000 records) leaves room. */
	mallopt(M_TRIM_THRESHOLD, 8 << 20);
	mallopt(M_TOP_PAD, 1 << 20);
	mallopt(M_MMAP_THRESHOLD, 4 << 20);
}

int main(int argc, char **argv)
{
	if (argc > 1 && strcmp(argv[1], "--watchdog") == 0)
		return fs_watchdog_main(argc, argv);
	tune_malloc();
	struct command_line cl;
	int status = parse_command_line(argc, argv, &cl);
	if (status >= 0)
		return status;
	struct daemon d = {.claim = {.fd = -1}};
	status = daemon_start(&d, &cl);
	if (status == 0)
		status = daemon_run(&d);
	daemon_stop(&d);
	return status;
}
